"""The PII leak guard: nothing outside the raw and quarantine zones may hold personal data.

Two nets, over every text column of every published table (and over report files and alert
payloads): exact matches against the raw identifiers present in the raw zone (user, session, device
and token ids, emails, IPs, actor ids), and patterns (email addresses, full IPv4 and IPv6 addresses,
E.164 phone numbers, card numbers that pass the Luhn check). Results are counts, never values.
"""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path

import duckdb

from . import identifiers
from .warehouse import table_exists, temp_table_exists

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
    """(table, column, is_list) of every text column of every table and view in the published schemas, but
    the consent-gated datasets' views while they are streamgov's query (consent.intact_gated_views): their
    rows are rows of masked.access_events, which is scanned. Any other view is scanned as a table is."""
    from .consent import intact_gated_views

    covered = intact_gated_views(con)
    rows = con.execute(
        "select table_schema || '.' || table_name, column_name, data_type from information_schema.columns "
        "where list_contains(?, table_schema) "
        "and (data_type = 'VARCHAR' or data_type = 'VARCHAR[]') order by 1, 2", [list(PUBLISHED_SCHEMAS)]).fetchall()
    return [(t, c, dt.endswith("[]")) for t, c, dt in rows if t not in covered]


def raw_identifiers(con: duckdb.DuckDBPyConnection, columns: dict[str, tuple[str, ...]] = RAW_ID_COLUMNS,
                    min_length: int = 4) -> None:
    """Temp table _raw_ids(h): the 64-bit hashes of every distinct value of the given raw columns (by default
    every raw identifier of the raw zone) at least min_length characters long, read from the identifier index
    (identifiers.py) where it is up to date and from the raw tables elsewhere. A value matching one of them
    is confirmed with raw_identifier_values before it counts."""
    identifiers.load(con, columns, min_length, "_raw_ids")


def raw_identifier_values(con: duckdb.DuckDBPyConnection, columns: dict[str, tuple[str, ...]] = RAW_ID_COLUMNS,
                          min_length: int = 4) -> None:
    """Temp table _raw_id_values(v): the values themselves, for the exact count of the hits found by hash. A
    pass over the whole raw zone: only when a hash matched."""
    if temp_table_exists(con, "_raw_id_values"):
        return
    parts = []
    for table, cols in columns.items():
        if table_exists(con, *table.split(".")):
            parts += [f"select {c} as v from {table} where {c} is not null and length({c}) >= {int(min_length)}"
                      for c in cols]
    # One distinct over all the columns together: a distinct per column and a union (a distinct again) cost
    # 2.7x as much CPU over 10M events.
    con.execute("create or replace temp table _raw_id_values as " + (
        f"select distinct v from ({' union all '.join(parts)})" if parts else "select null::varchar as v where false"))


def drop_raw_identifiers(con: duckdb.DuckDBPyConnection) -> None:
    con.execute("drop table if exists _raw_ids; drop table if exists _raw_id_values")


# A pattern can only match a value holding this character: the regular expression runs on those alone.
_NEEDS = {"email": "@", "ipv4": ".", "ipv6": ":", "phone": "+"}


def _prefilter(kinds: list[str]) -> str:
    """A regular expression every value that one of the patterns `kinds` or CARD_CANDIDATE matches also matches."""
    chars = "".join(re.escape(_NEEDS[k]) for k in kinds)
    return (f"[{chars}]|" if chars else "") + "[0-9]{13}"


def pattern_kinds(network: bool) -> list[str]:
    """The patterns looked for in a column: all, but no IP address in a network column (a.b.c.0/24 is the
    released form of an address)."""
    return [k for k in PATTERNS if not (network and k.startswith("ipv"))]


def prefilter(network: bool) -> str:
    """What a value must match for the scan to find anything in it but a raw identifier (_prefilter of the
    column's pattern_kinds): a value that does not match it holds no pattern and no card number."""
    return _prefilter(pattern_kinds(network))


# Columns holding one value per row (the event ids): a distinct over their values costs more than it saves.
ROW_IDS = frozenset({"event_id", "audit_id"})


def _scan_values(con: duckdb.DuckDBPyConnection, values_sql: str, kinds: list[str], distinct: bool = True) -> dict[str, int]:
    """Hits per kind among the distinct non-null values of `values_sql` (a query with one column v): raw
    identifiers (a hash probe of every value), then the patterns in `kinds` and card numbers (on the values
    _prefilter keeps). distinct=False, for columns whose values are nearly all distinct: no distinct over
    every value first; one pass counts the rows that match a raw identifier's hash or the prefilter, and only
    when some do are those values made distinct (12M event ids, none matching: 0.9 s instead of 2.1 s)."""
    prefilter = _prefilter(kinds)
    if distinct:
        con.execute(f"create or replace temp table _vals as select distinct v from ({values_sql}) where v is not null")
    else:
        raw_rows, pre_rows = con.execute(
            f"select count(*) filter (where hash(v) in (select h from _raw_ids)), count(*) filter (where regexp_matches(v, ?)) "
            f"from ({values_sql}) where v is not null", [prefilter]).fetchone()
        if not (raw_rows or pre_rows):
            return {}
        con.execute(f"create or replace temp table _vals as select distinct v from ({values_sql}) where v is not null "
                    "and (hash(v) in (select h from _raw_ids) or regexp_matches(v, ?))", [prefilter])
    raw_hits = con.execute("select count(*) from _vals where hash(v) in (select h from _raw_ids)").fetchone()[0]
    # Every pattern needs its character (_NEEDS) and a card number 13 digits in a row: one scan keeps the values
    # that have either, and the patterns run on those alone (10M event ids: 2.85 -> 0.7 s with the hash probe).
    con.execute("create or replace temp table _pvals as select v from _vals where regexp_matches(v, ?)", [prefilter])
    counts = ", ".join(f"count(*) filter (where contains(v, '{_NEEDS[k]}') and regexp_matches(v, ?))" for k in kinds)
    row = con.execute(f"select count(*) filter (where regexp_matches(v, ?) and not regexp_matches(v, ?))"
                      f"{', ' + counts if kinds else ''} from _pvals",
                      [CARD_CANDIDATE, HEXISH] + [PATTERNS[k] for k in kinds]).fetchone()
    exact = 0
    if raw_hits:  # confirmed on the values: a hash collision is no leak
        raw_identifier_values(con)
        exact = con.execute("select count(*) from _vals semi join _raw_id_values using (v)").fetchone()[0]
    hits = {"raw_identifier": int(exact)}
    hits.update({k: int(n) for k, n in zip(kinds, row[1:])})
    if row[0]:
        candidates = con.execute(
            "select distinct unnest(regexp_extract_all(v, '[0-9]{13,19}')) from _pvals "
            "where regexp_matches(v, ?) and not regexp_matches(v, ?)", [CARD_CANDIDATE, HEXISH]).fetchall()
        hits["card_number"] = sum(1 for (digits,) in candidates if luhn(digits))
    return {k: n for k, n in hits.items() if n}


# A scan limited to the run's days (see scan_tables) is replaced by a full one at least this often.
FULL_SCAN_EVERY_DAYS = 7


def day_partitioned_tables(con: duckdb.DuckDBPyConnection) -> set[str]:
    """The published tables whose rows are written by day: the masked datasets (by event_date)."""
    return {t for (t,) in con.execute(
        "select table_schema || '.' || table_name from information_schema.columns "
        "where table_schema = 'masked' and column_name = 'event_date'").fetchall()}


def scan_tables(con: duckdb.DuckDBPyConnection, network_columns: set[str],
                days: tuple[date, date] | None = None,
                verified: dict[str, tuple[frozenset[str], tuple[date, date] | None]] | None = None) -> dict[str, int]:
    """Hits per 'table.column:kind' over the published zones (empty dict = clean).

    With `days`, the day-partitioned tables (day_partitioned_tables) are scanned over those days only,
    every other table whole; the raw identifiers are always those of the whole raw zone.

    `verified`: per masked table, columns and the days (None: every row) that a masked dataset's check of
    the same run has just passed and found clear (masking.probe_released): no value a raw identifier of any
    length (over these raw columns and more), and either every value a 64-character hex string (the
    pseudonym columns, the model's HEX64: no '@', '.', ':' or '+', no card-number candidate) or none matching
    the column's prefilter (prefilter(), the same network rule as here). Those rows are not read again:
    the scan could find nothing in them.

    Columns of the same name are scanned together (masked.access_events and masked.audit_events share
    some): the distinct values of all of them at once, and only a group with a hit is scanned again
    table by table, so the hits are reported per table and column exactly as a scan of each would."""
    raw_identifiers(con)
    by_day = day_partitioned_tables(con) if days is not None else set()
    groups: dict[tuple[str, bool, bool], list[str]] = {}
    for table, column, is_list in text_columns(con):
        network = f"{table}.{column}" in network_columns
        groups.setdefault((column, is_list, network), []).append(table)

    verified = verified or {}

    def values(table: str, column: str, is_list: bool) -> str | None:
        """The query of the column's values to scan; None when there are none (verified)."""
        where = []
        if table in by_day:
            where.append(f"event_date between date '{days[0].isoformat()}' and date '{days[1].isoformat()}'")
        cols, checked = verified.get(table, (frozenset(), None))
        if column in cols:
            if checked is None or (table in by_day and checked[0] <= days[0] and days[1] <= checked[1]):
                return None
            where.append(f"event_date not between date '{checked[0].isoformat()}' and date '{checked[1].isoformat()}'")
        rows = f"(select * from {table} where {' and '.join(where)})" if where else table
        return f"select unnest({column}) as v from {rows}" if is_list else f"select {column} as v from {rows}"

    hits: dict[str, int] = {}
    for (column, is_list, network), all_tables in groups.items():
        kinds = pattern_kinds(network)
        distinct = column not in ROW_IDS
        tables = [t for t in all_tables if values(t, column, is_list) is not None]
        if not tables or not _scan_values(con, " union all ".join(values(t, column, is_list) for t in tables),
                                          kinds, distinct):
            continue
        for table in tables:
            for kind, n in _scan_values(con, values(table, column, is_list), kinds, distinct).items():
                hits[f"{table}.{column}:{kind}"] = n
    con.execute("drop table if exists _vals; drop table if exists _pvals")
    drop_raw_identifiers(con)
    return hits


def scan_files_in_warehouse(con: duckdb.DuckDBPyConnection, paths: list[Path]) -> dict[str, int]:
    """Hits per 'file:kind' in report files, against the raw identifiers of the warehouse, which stay in DuckDB. Each file's lines are
    read into DuckDB, and its words (as scan_text finds them), the patterns and the card-number candidates
    are found there, in parallel: the consent management log CSV grows with the log (107 MB for 250k
    entries), which Python's tokenizer took 17 s of CPU to read. Only lines holding 13 digits in a row go
    back to Python, for the Luhn check."""
    raw_identifiers(con)
    hits: dict[str, int] = {}
    for path in paths:
        con.execute("create or replace temp table _flines as select line from read_csv(?, columns={'line': 'VARCHAR'}, "
                    "delim=E'\\x1f', quote='', escape='', header=false, auto_detect=false, strict_mode=false, "
                    "ignore_errors=true) where line is not null", [str(path)])
        # the words: maximal runs of word characters, 4 or more (what TOKEN finds; a split on the other
        # characters is 20 % faster than extracting the matches). A comma is no word character: the lines are
        # split on commas first (no regular expression), and only the distinct pieces holding another
        # separator are split again (the consent log CSV: 1.22 -> 0.89 s for 107 MB, the same words).
        con.execute("create or replace temp table _ftokens as select distinct t from (select unnest(case when "
                    "regexp_matches(p, $sep) then string_split_regex(p, $sep) else [p] end) as t from (select distinct "
                    "unnest(string_split(line, ',')) as p from _flines)) where length(t) >= 4", {"sep": NOT_TOKEN_SQL})
        # a word, or the word without its trailing dots and colons, among the raw identifiers' hashes (a semi join:
        # DuckDB builds on the smaller side); a union without a distinct (half the time): any hit is counted
        # again exactly below
        words = "select hash(t) as h from _ftokens union all select hash(trim(t, '.:')) from _ftokens where trim(t, '.:') <> t"
        exact = con.execute(f"select count(*) from ({words}) w semi join _raw_ids r on r.h = w.h").fetchone()[0]
        if exact:  # confirmed on the values: a hash collision is no leak
            raw_identifier_values(con)
            exact = con.execute("select count(*) from _ftokens where t in (select v from _raw_id_values) "
                                "or trim(t, '.:') in (select v from _raw_id_values)").fetchone()[0]
        counts = con.execute("select " + ", ".join(f"count(*) filter (where contains(line, '{_NEEDS[k]}') and "
                                                    "regexp_matches(line, ?))" for k in PATTERNS) + " from _flines",
                             list(PATTERNS.values())).fetchone()
        # the lines where CARD_IN_TEXT can match (RE2 has no lookaround: the run's neighbours are matched instead);
        # a 64-character hash holds 13 digits in a row about every tenth time, and those lines stay here
        digit_lines = con.execute("select line from _flines where regexp_matches(line, ?)", [CARD_IN_TEXT_SQL]).fetchall()
        cards = sum(1 for (line,) in digit_lines for d in re.findall(CARD_IN_TEXT, line) if luhn(d))
        found = {"raw_identifier": int(exact), **{k: int(n) for k, n in zip(PATTERNS, counts)}, "card_number": cards}
        hits.update({f"{path.name}:{k}": n for k, n in found.items() if n})
    con.execute("drop table if exists _flines; drop table if exists _ftokens")
    drop_raw_identifiers(con)
    return hits


TOKEN = r"[\w.@:+%-]{4,}"
# What separates the same words in DuckDB's regular expressions (RE2, whose \w is ASCII only).
NOT_TOKEN_SQL = r"[^\pL\pN_.@:+%-]+"
CARD_IN_TEXT = r"(?<![0-9a-f])[0-9]{13,19}(?![0-9a-f])"
# What CARD_IN_TEXT finds somewhere in a line, for DuckDB's regular expressions (RE2, no lookaround): a maximal
# run of 13-19 digits between characters that are not hex digits (or the line's ends).
CARD_IN_TEXT_SQL = r"(^|[^0-9a-f])[0-9]{13,19}($|[^0-9a-f])"


def scan_text(text: str, raw_ids: set[str]) -> dict[str, int]:
    """Hits per kind in a text (a report file, an alert payload)."""
    hits: dict[str, int] = {}
    tokens = set(re.findall(TOKEN, text))
    exact = sum(1 for t in tokens if t in raw_ids or t.strip(".:") in raw_ids)
    if exact:
        hits["raw_identifier"] = exact
    for kind, pattern in PATTERNS.items():
        n = sum(1 for line in text.splitlines() if re.search(pattern, line))
        if n:
            hits[kind] = n
    cards = [d for d in re.findall(CARD_IN_TEXT, text) if luhn(d)]
    if cards:
        hits["card_number"] = len(cards)
    return hits
