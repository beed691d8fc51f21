"""Masked datasets built from the masking policy (policies/masking.yaml).

The policy decides every released column; the SQL, the column lineage and the leak checks are all
derived from it, so they cannot disagree. Pseudonyms and IP truncations are computed once per
distinct value (a Python UDF over the distinct set) and joined back.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import duckdb

from .leakguard import RAW_ID_COLUMNS, drop_raw_identifiers, raw_identifier_values, raw_identifiers
from .policy import Policy

UA_FAMILY = """case
    when {c} is null or trim({c}) = '' then null
    when regexp_matches({c}, '(?i)bot|crawler|spider|curl|wget|python-requests') then 'bot'
    when regexp_matches({c}, '(?i)smart-?tv|tizen|web0s|webos|roku|appletv|tvos|bravia|hbbtv|aft[a-z]|crkey') then 'tv'
    when regexp_matches({c}, '(?i)iphone|ipad|ios') then 'ios'
    when regexp_matches({c}, '(?i)android') then 'android'
    when regexp_matches({c}, '(?i)edg/') then 'edge'
    when regexp_matches({c}, '(?i)firefox/') then 'firefox'
    when regexp_matches({c}, '(?i)chrome/|chromium/') then 'chrome'
    when regexp_matches({c}, '(?i)safari/') then 'safari'
    else 'other' end"""

SOURCES = {"access_events": "raw.access_events", "audit_events": "raw.audit_events"}
# The event id each masked dataset keeps: unique per row.
UNIQUE_IDS = {"masked.access_events": "event_id", "masked.audit_events": "audit_id"}
PARTITION_COLUMN = "event_date"


@dataclass(frozen=True)
class MaskedColumn:
    name: str
    method: str
    source: str | None  # raw column it derives from (None for added columns)
    to: str | None = None  # generalize: user_agent_family | hour | day


def plan(policy: Policy, dataset: str) -> list[MaskedColumn]:
    cols = [MaskedColumn(spec["as"], spec["method"], src, spec.get("to"))
            for src, spec in policy.masking[dataset].items() if spec["method"] != "drop"]
    return cols + [MaskedColumn("pseudonym_key_id", "constant", None)]


def dropped(policy: Policy, dataset: str) -> list[str]:
    return [src for src, spec in policy.masking[dataset].items() if spec["method"] == "drop"]


def identifier_columns(policy: Policy, dataset: str) -> list[str]:
    """Raw columns holding personal data (anything not kept as is)."""
    return [src for src, spec in policy.masking[dataset].items() if spec["method"] != "keep"]


def build(con: duckdb.DuckDBPyConnection, policy: Policy, dataset: str, first_day: date, last_day: date,
          key_id: str) -> int:
    """Rewrite days [first_day, last_day] of masked.<dataset>; returns the rows written."""
    source = SOURCES[dataset]
    columns = plan(policy, dataset)
    select, joins = [], []
    for i, col in enumerate(columns):
        if col.method == "keep":
            select.append(f"r.{col.source} as {col.name}")
        elif col.method in ("pseudonymize", "truncate_ip"):
            fn = {"pseudonymize": "sg_pseudonym_email" if col.source == "email" else "sg_pseudonym",
                  "truncate_ip": "sg_ip_network"}[col.method]
            con.execute(
                f"create or replace temp table _map{i} as select v, {fn}(v) as m from "
                f"(select distinct {col.source} as v from {source} where {PARTITION_COLUMN} between ? and ? "
                f"and {col.source} is not null)",
                [first_day, last_day],
            )
            joins.append(f"left join _map{i} on _map{i}.v = r.{col.source}")
            select.append(f"_map{i}.m as {col.name}")
        elif col.method == "generalize" and col.to in ("hour", "day"):
            select.append(f"date_trunc('{col.to}', r.{col.source}) as {col.name}")
        elif col.method == "redact":
            select.append(f"case when r.{col.source} is not null then '[redacted]' end as {col.name}")
        elif col.method == "generalize":
            # a handful of regular expressions per distinct agent string, not per event
            con.execute(
                f"create or replace temp table _map{i} as select v, {UA_FAMILY.format(c='v')} as m from "
                f"(select distinct {col.source} as v from {source} where {PARTITION_COLUMN} between ? and ? "
                f"and {col.source} is not null)",
                [first_day, last_day],
            )
            joins.append(f"left join _map{i} on _map{i}.v = r.{col.source}")
            select.append(f"_map{i}.m as {col.name}")
        elif col.method == "constant":
            select.append(f"$key_id as {col.name}")
        else:  # pragma: no cover - the policy loader rejects other methods
            raise ValueError(col.method)
    query = (f"select {', '.join(select)} from {source} r {' '.join(joins)} "
             f"where r.{PARTITION_COLUMN} between $first and $last")
    con.execute(f"create table if not exists masked.{dataset} as {query} limit 0",
                {"key_id": key_id, "first": first_day, "last": last_day})
    con.execute("begin transaction")
    try:
        con.execute(f"delete from masked.{dataset} where {PARTITION_COLUMN} between ? and ?", [first_day, last_day])
        con.execute(f"insert into masked.{dataset} {query}",
                    {"key_id": key_id, "first": first_day, "last": last_day})
        con.execute("commit")
    except Exception:
        con.execute("rollback")
        raise
    for i in range(len(columns)):
        con.execute(f"drop table if exists _map{i}")
    return int(con.execute(f"select count(*) from masked.{dataset} where {PARTITION_COLUMN} between ? and ?",
                           [first_day, last_day]).fetchone()[0])


def policy_identifier_columns(policy: Policy) -> dict[str, tuple[str, ...]]:
    """Per raw table, the columns the masking policy does not keep (user ids, emails, session/device/token
    ids, IPs, actor ids, dropped paths), the agent string aside."""
    return {SOURCES[d]: tuple(c for c in identifier_columns(policy, d) if c != "user_agent") for d in policy.masking}


def indexed_identifier_columns(policy: Policy) -> dict[str, tuple[str, ...]]:
    """The raw columns the identifier index covers: the leak guard's and the masking policy's."""
    out = {t: set(c) for t, c in policy_identifier_columns(policy).items()}
    for table, cols in RAW_ID_COLUMNS.items():
        out.setdefault(table, set()).update(cols)
    return {t: tuple(sorted(c)) for t, c in out.items()}


def network_names(policy: Policy) -> set[str]:
    """The masked columns holding truncated networks (the truncate_ip outputs): a.b.c.0/24 there is no leak."""
    return {spec["as"] for d in policy.masking.values() for spec in d.values() if spec["method"] == "truncate_ip"}


def probe_released(con: duckdb.DuckDBPyConnection, policy: Policy, table: str, string_columns: list[str],
                   days: tuple[date, date] | None = None,
                   prefilters: dict[str, str] | None = None) -> tuple[dict[str, int], dict[str, int]]:
    """Per column of a table (or of its rows of `days`): the values equal to a raw identifier of any source
    (exact match), and for the columns in `prefilters` (column -> regular expression) the values matching
    theirs (rows for the unique id column, distinct values for the others).

    The raw identifiers are every value of the raw columns the masking policy does not keep
    (user ids, emails, session/device/token ids, IPs, actor ids), across access and audit events, and of
    those the leak scan looks for (leakguard.RAW_ID_COLUMNS), whatever their length: what this check
    finds covers what the leak scan would find in those rows (see leakguard.scan_tables, `verified`).
    They are matched by 64-bit hash (the identifier index), and a column with a match is counted again on
    the values.
    """
    prefilters = prefilters or {}
    columns = indexed_identifier_columns(policy)
    raw_identifiers(con, columns, min_length=0)
    table_name = table
    if days is not None:
        table = f"(select * from {table} where {PARTITION_COLUMN} between date '{days[0].isoformat()}' " \
                f"and date '{days[1].isoformat()}')"
    # Every column's values in one probe of the raw identifiers' hashes (one join instead of one per column:
    # 1.6-2.0 -> 1.1 s for the 15 text columns of 10M events). The unique id column, one value per
    # row, is probed row by row (a distinct over it costs 6x as much); the others by their distinct values:
    # as hashes (a pseudonym column has one per person), or as values where a prefilter is matched too.
    parts, params = [], []
    for i, column in enumerate(string_columns):
        matched = "regexp_matches(v, ?)" if column in prefilters else "false"
        params += [prefilters[column]] if column in prefilters else []
        if column == UNIQUE_IDS.get(table_name):
            parts.append(f"select {i} as c, hash(v) as h, {matched} as p from (select t.{column} as v from {table} t)")
        elif column in prefilters:
            parts.append(f"select {i} as c, hash(v) as h, {matched} as p from (select distinct {column} as v "
                         f"from {table} t where {column} is not null)")
        else:
            parts.append(f"select {i} as c, h, false as p from (select distinct hash({column}) as h from {table} t "
                         f"where {column} is not null)")
    # The raw identifiers that are among the values first (DuckDB builds its hash table on the smaller side),
    # then each value against those few: a filter `h in (select h from _raw_ids)` built a table of every raw
    # identifier whatever the size of the table probed: the audit events 0.21 -> 0.055 s; a day of access events
    # (300k, check 1.06-1.22 s before, 1.12-1.15 after) and the 10M access events (2.6-3.3 s either way, measured
    # alternating) take about as long.
    probed = {c: (n, m) for c, n, m in con.execute(
        f"with v as materialized ({' union all '.join(parts)}), "
        "hits as (select distinct r.h from _raw_ids r semi join v on v.h = r.h) "
        "select c, count(*) filter (where h in (select h from hits)), count(*) filter (where p) from v group by c",
        params).fetchall()} if parts else {}
    counts: dict[str, int] = {}
    for i, column in enumerate(string_columns):
        n = probed.get(i, (0, 0))[0]
        if n:
            # the rows, counted on the values themselves: a hash collision is no leak
            raw_identifier_values(con, columns, min_length=0)
            n = con.execute(f"select count(*) from {table} t semi join _raw_id_values i on t.{column} = i.v").fetchone()[0]
        counts[column] = int(n)
    drop_raw_identifiers(con)
    return counts, {c: int(probed.get(i, (0, 0))[1]) for i, c in enumerate(string_columns) if c in prefilters}
