"""The PII leak guard: nothing outside the raw and quarantine zones may hold personal data.

Two nets, over every text column of every published table (and over report files and alert
payloads): exact matches against the raw identifiers present in the raw zone (user, session, device
and token ids, emails, IPs, actor ids), and patterns (email addresses, full IPv4 and IPv6 addresses,
E.164 phone numbers, card numbers that pass the Luhn check). Results are counts, never values.
"""

from __future__ import annotations

import re
from pathlib import Path

import duckdb

from .warehouse import table_exists

PUBLISHED_SCHEMAS = ("masked", "governance", "consent", "reports")
RAW_ID_COLUMNS = {
    "raw.access_events": ("user_id", "session_id", "device_id", "email", "auth_token_id", "client_ip"),
    "raw.audit_events": ("actor_id", "subject_user_id", "source_ip"),
    "raw.consent_events": ("user_id",),
}
EMAIL = r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}"
IPV4 = r"(^|[^0-9.])((25[0-5]|2[0-4][0-9]|1?[0-9]?[0-9])\.){3}(25[0-5]|2[0-4][0-9]|1?[0-9]?[0-9])($|[^0-9./])"
IPV6 = (r"(^|[^0-9A-Fa-f:])(([0-9A-Fa-f]{1,4}:){7}[0-9A-Fa-f]{1,4}"
        r"|([0-9A-Fa-f]{1,4}:){1,6}(:[0-9A-Fa-f]{1,4}){1,6})($|[^0-9A-Fa-f:/])")
PHONE = r"\+[1-9][0-9]{7,14}($|[^0-9])"
CARD_CANDIDATE = r"(^|[^0-9])[0-9]{13,19}($|[^0-9])"
# Pseudonyms and ids are long hex or digit strings by design: a digit run inside them is not a card.
HEXISH = r"^[0-9a-f]{16,64}$"
PATTERNS = {"email": EMAIL, "ipv4": IPV4, "ipv6": IPV6, "phone": PHONE}


def luhn(digits: str) -> bool:
    total, parity = 0, len(digits) % 2
    for i, ch in enumerate(digits):
        d = int(ch)
        if i % 2 == parity:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def text_columns(con: duckdb.DuckDBPyConnection) -> list[tuple[str, str, bool]]:
    """(table, column, is_list) of every text column in the published schemas."""
    rows = con.execute(
        "select table_schema || '.' || table_name, column_name, data_type from information_schema.columns "
        "where list_contains(?, table_schema) "
        "and (data_type = 'VARCHAR' or data_type = 'VARCHAR[]') order by 1, 2", [list(PUBLISHED_SCHEMAS)]).fetchall()
    return [(t, c, dt.endswith("[]")) for t, c, dt in rows]


def raw_identifiers(con: duckdb.DuckDBPyConnection, columns: dict[str, tuple[str, ...]] = RAW_ID_COLUMNS,
                    min_length: int = 4) -> None:
    """Temp table _raw_ids(v): every distinct value of the given raw columns (by default every raw
    identifier of the raw zone) at least min_length characters long."""
    parts = []
    for table, cols in columns.items():
        if table_exists(con, *table.split(".")):
            parts += [f"select distinct {c} as v from {table} where {c} is not null and length({c}) >= {int(min_length)}"
                      for c in cols]
    con.execute("create or replace temp table _raw_ids as " + (" union ".join(parts) if parts else "select null::varchar as v where false"))


def scan_tables(con: duckdb.DuckDBPyConnection, network_columns: set[str]) -> dict[str, int]:
    """Hits per 'table.column:kind' over the published zones (empty dict = clean)."""
    raw_identifiers(con)
    hits: dict[str, int] = {}
    for table, column, is_list in text_columns(con):
        values = f"(select distinct unnest({column}) as v from {table})" if is_list else \
                 f"(select distinct {column} as v from {table})"
        con.execute(f"create or replace temp table _vals as select v from {values} where v is not null")
        n = con.execute("select count(*) from _vals semi join _raw_ids using (v)").fetchone()[0]
        if n:
            hits[f"{table}.{column}:raw_identifier"] = int(n)
        for kind, pattern in PATTERNS.items():
            if kind.startswith("ipv") and f"{table}.{column}" in network_columns:
                continue  # truncated networks (a.b.c.0/24) are the released form of an address
            n = con.execute("select count(*) from _vals where regexp_matches(v, ?)", [pattern]).fetchone()[0]
            if n:
                hits[f"{table}.{column}:{kind}"] = int(n)
        candidates = con.execute(
            "select distinct unnest(regexp_extract_all(v, '[0-9]{13,19}')) from _vals "
            "where regexp_matches(v, ?) and not regexp_matches(v, ?)", [CARD_CANDIDATE, HEXISH]).fetchall()
        n = sum(1 for (digits,) in candidates if luhn(digits))
        if n:
            hits[f"{table}.{column}:card_number"] = n
    con.execute("drop table if exists _vals; drop table if exists _raw_ids")
    return hits


def scan_text(text: str, raw_ids: set[str]) -> dict[str, int]:
    """Hits per kind in a text (a report file, an alert payload)."""
    hits: dict[str, int] = {}
    tokens = set(re.findall(r"[\w.@:+%-]{4,}", text))
    exact = sum(1 for t in tokens if t in raw_ids or t.strip(".:") in raw_ids)
    if exact:
        hits["raw_identifier"] = exact
    for kind, pattern in PATTERNS.items():
        n = sum(1 for line in text.splitlines() if re.search(pattern, line))
        if n:
            hits[kind] = n
    cards = [d for d in re.findall(r"(?<![0-9a-f])[0-9]{13,19}(?![0-9a-f])", text) if luhn(d)]
    if cards:
        hits["card_number"] = len(cards)
    return hits


def scan_files(paths: list[Path], raw_ids: set[str]) -> dict[str, int]:
    hits: dict[str, int] = {}
    for path in paths:
        for kind, n in scan_text(path.read_text(encoding="utf-8", errors="replace"), raw_ids).items():
            hits[f"{path.name}:{kind}"] = n
    return hits


def raw_identifier_set(con: duckdb.DuckDBPyConnection) -> set[str]:
    raw_identifiers(con)
    values = {r[0] for r in con.execute("select v from _raw_ids").fetchall()}
    con.execute("drop table if exists _raw_ids")
    return values
