"""Consent source (schema D) and consent state history (contract "Valid consent").

The consent database is read by DuckDB (a SQLite file) or through SQLAlchemy in chunks (PostgreSQL),
staged in DuckDB and validated there. A missing, unreadable or empty source yields an empty state: no consent for
anyone (fail closed), reported through the returned status, never "everyone consented".
"""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import duckdb
import pandas as pd
import sqlalchemy as sa

from .ingest import ensure_shared_tables, sql_str
from .policy import CONSENT_PURPOSES
from .warehouse import temp_table_from_rows

CONSENT_STATUSES = ("granted", "denied", "withdrawn")
CONSENT_COLUMNS = ("event_id", "user_id", "purpose", "status", "recorded_at", "expires_at", "source",
                   "notice_version", "jurisdiction", "tc_string")
# The contract stores UTC text; an explicit offset is converted, a bare time is taken as UTC.
ISO_UTC = r"^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?)?\s*(Z|z|[+-]\d{2}(:?\d{2})?)?$"


def _sqlite_file(url: str) -> Path | None:
    parsed = sa.engine.make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        return Path(parsed.database)
    return None


def stage_source(con: duckdb.DuckDBPyConnection, url: str, since: str | None = None,
                 chunk_rows: int = 200_000) -> tuple[str, int]:
    """Copy consent_events (all of it, or the rows recorded at or after `since`) into temp table
    _consent_src, all text. Returns the source status (ok | empty | missing | unreadable) and the
    number of rows the source holds.

    A SQLite file is read by DuckDB itself (its sqlite extension, from the duckdb-extension-sqlite-scanner
    wheel): 0.35 s for 242k rows, against 1.7-2.1 s through SQLAlchemy and pandas chunks. Other databases
    (PostgreSQL) and a DuckDB without the extension go through SQLAlchemy."""
    cols = ", ".join(f"{c} varchar" for c in CONSENT_COLUMNS)
    con.execute(f"create or replace temp table _consent_src ({cols})")
    sqlite_path = _sqlite_file(url)
    if sqlite_path is not None and not sqlite_path.exists():
        return "missing", 0  # SQLAlchemy would silently create an empty database file
    if sqlite_path is not None and _sqlite_scanner(con):
        return _stage_sqlite(con, sqlite_path, since)
    try:
        engine = sa.create_engine(url)
        where = " where recorded_at >= :since" if since else ""
        select = sa.text("select " + ", ".join(CONSENT_COLUMNS) + f" from consent_events{where} order by event_id")
        with engine.connect() as conn:
            total = int(conn.execute(sa.text("select count(*) from consent_events")).scalar() or 0)
            casts = ", ".join(f"cast({c} as varchar)" for c in CONSENT_COLUMNS)
            for chunk in pd.read_sql(select, conn, chunksize=chunk_rows, params={"since": since} if since else None):
                con.register("_consent_chunk", chunk)
                con.execute(f"insert into _consent_src select {casts} from _consent_chunk")
                con.unregister("_consent_chunk")
        engine.dispose()
    except (sa.exc.SQLAlchemyError, OSError):
        con.execute("delete from _consent_src")
        return "unreadable", 0
    return ("ok" if total else "empty"), total


def _sqlite_scanner(con: duckdb.DuckDBPyConnection) -> bool:
    """Whether DuckDB's sqlite extension loads (offline, from its wheel). Whatever stops it (the wheel not
    installed, an extension folder that cannot be written) leaves the SQLAlchemy path, which reads the same."""
    from .lake import load_extension

    try:
        load_extension(con, "sqlite_scanner")
    except Exception:  # noqa: BLE001 - any failure to load falls back to a path that works without it
        return False
    return True


def _stage_sqlite(con: duckdb.DuckDBPyConnection, path: Path, since: str | None) -> tuple[str, int]:
    """stage_source for a SQLite file, read by DuckDB: every column as text (sqlite_all_varchar, so a value
    stored with another type than its column's comes as its text, as through SQLAlchemy), the file attached
    read-only for the copy and detached after. A file DuckDB cannot read is 'unreadable'."""
    where = " where recorded_at >= $since" if since else ""
    con.execute("SET sqlite_all_varchar = true")
    try:
        con.execute(f"ATTACH {sql_str(str(path))} AS _consent_source (TYPE sqlite, READ_ONLY)")
        try:
            total = int(con.execute("select count(*) from _consent_source.consent_events").fetchone()[0])
            con.execute(f"insert into _consent_src select {', '.join(CONSENT_COLUMNS)} from _consent_source.consent_events"
                        f"{where} order by event_id", {"since": since} if since else {})
        finally:
            con.execute("DETACH DATABASE IF EXISTS _consent_source")
    except duckdb.Error:
        con.execute("delete from _consent_src")
        return "unreadable", 0
    finally:
        con.execute("RESET sqlite_all_varchar")
    return ("ok" if total else "empty"), total


def _watermark(con: duckdb.DuckDBPyConnection) -> str | None:
    exists = con.execute("select count(*) from information_schema.tables where table_schema = 'raw' "
                         "and table_name = 'consent_events'").fetchone()[0]
    if not exists:
        return None
    row = con.execute("select max(recorded_at) from raw.consent_events").fetchone()
    return row[0] if row and row[0] else None


def load_raw(con: duckdb.DuckDBPyConnection, url: str, lookback_days: int | None = None) -> dict:
    """Bring raw.consent_events up to date with the consent source; bad rows go to the quarantine.

    With `lookback_days`, a run after the first reads only the rows recorded since the newest one it
    holds minus the lookback (late corrections within it are merged by event_id); when the copy and the
    source then disagree on the number of rows (a late row older than the lookback, a deletion), it
    reloads everything. Without it, every run reloads everything.
    """
    watermark = _watermark(con) if lookback_days is not None else None
    since = (watermark - timedelta(days=lookback_days)).strftime("%Y-%m-%dT%H:%M:%S") if watermark else None
    status, total = stage_source(con, url, since)
    if status != "ok":
        since = None  # fail closed: an unreadable or empty source leaves no consent at all
    con.execute(
        "create table if not exists raw.consent_events (event_id varchar, user_id varchar, purpose varchar, "
        "status varchar, recorded_at timestamp, expires_at timestamp, source varchar, notice_version varchar, "
        "jurisdiction varchar, tc_string varchar)"
    )
    ensure_shared_tables(con)
    # Rows of erased data subjects are not copied again (they count as quarantined, without their content).
    from .dsar import ERASED, erased_values

    erased_values(con, "select trim(user_id) as v from _consent_src")
    con.execute(
        f"""
        create or replace temp table _consent_checked as
        select *,
               case when coalesce(trim(event_id), '') = '' then 'missing_event_id'
                    when coalesce(trim(user_id), '') = '' then 'missing_user_id'
                    when trim(user_id) in (select v from _erased) then '{ERASED}'
                    when purpose is null or purpose not in {CONSENT_PURPOSES!r} then 'invalid_purpose'
                    when status is null or status not in ('granted', 'denied', 'withdrawn') then 'invalid_status'
                    when recorded_at is null or not regexp_matches(trim(recorded_at), ?) or try_cast(trim(recorded_at) as timestamptz) is null then 'invalid_recorded_at'
                    when expires_at is not null and trim(expires_at) <> '' and (not regexp_matches(trim(expires_at), ?) or try_cast(trim(expires_at) as timestamptz) is null) then 'invalid_expires_at'
               end as reason
        from _consent_src
        """,
        [ISO_UTC, ISO_UTC],
    )
    quarantined_id = "json_extract_string(raw_line, '$.event_id')"
    con.execute("begin transaction")
    try:
        if since:
            con.execute("delete from raw.consent_events where event_id in (select trim(event_id) from _consent_checked)")
            con.execute(f"delete from raw.quarantine_lines where source = 'consent' and {quarantined_id} in "
                        "(select event_id from _consent_checked)")
        else:
            con.execute("delete from raw.consent_events")
            con.execute("delete from raw.quarantine_lines where source = 'consent'")
        con.execute(
            """
            insert into raw.consent_events
            select trim(event_id), trim(user_id), purpose, status,
                   try_cast(trim(recorded_at) as timestamptz)::timestamp,
                   try_cast(nullif(trim(expires_at), '') as timestamptz)::timestamp,
                   source, notice_version, jurisdiction, tc_string
            from _consent_checked where reason is null
            """
        )
        # The quarantine names a consent row by its event_id (a database row has no line number).
        con.execute(
            "insert into raw.quarantine_lines select 'consent', 'consent_events', null, reason, null, "
            "case when reason = ? then to_json(struct_pack(event_id))::varchar "
            "else to_json(struct_pack(event_id, purpose, status, recorded_at, expires_at))::varchar end "
            "from _consent_checked where reason is not null", [ERASED]
        )
        loaded, quarantined = con.execute(
            "select (select count(*) from raw.consent_events), "
            "(select count(*) from raw.quarantine_lines where source = 'consent')").fetchone()
        if since and loaded + quarantined != total:
            con.execute("rollback")
            con.execute("drop table if exists _consent_checked; drop table if exists _consent_src")
            return {**load_raw(con, url, None), "mode": "full (the incremental copy disagreed with the source)"}
        con.execute("delete from raw.ingest_ledger where source = 'consent'")
        con.execute("insert into raw.ingest_ledger values ('consent', 'consent_events', ?, ?, ?, 0, 0, ?)",
                    [loaded + quarantined, loaded, quarantined,
                     None if status in ("ok", "empty") else f"unreadable_source:{status}"])
        con.execute("commit")
    except Exception:
        con.execute("rollback")
        raise
    fetched = con.execute("select count(*) from _consent_checked").fetchone()[0]
    con.execute("drop table if exists _consent_checked; drop table if exists _consent_src; drop table if exists _erased")
    return {"source_status": status, "mode": "incremental" if since else "full", "rows_fetched": int(fetched),
            "rows_read": int(loaded + quarantined), "rows_loaded": int(loaded), "rows_quarantined": int(quarantined)}


def build_state(con: duckdb.DuckDBPyConnection) -> int:
    """consent.consent_state: per user pseudonym and purpose, the intervals [valid_from, valid_to) of
    each state (granted, denied, withdrawn, expired). valid_to null means still in force.

    The latest event at or before t decides; events with the same recorded_at are decided by the
    larger event_id (the others never take effect); a grant lapses at expires_at (exclusive).
    """
    con.execute(
        """
        create or replace table consent.consent_state as
        with ev as (
            select c.*, row_number() over (partition by user_id, purpose, recorded_at order by event_id desc) as tie_rank
            from raw.consent_events c
        ),
        seq as (
            select *, lead(recorded_at) over (partition by user_id, purpose order by recorded_at) as next_at
            from ev where tie_rank = 1
        ),
        intervals as (
            select user_id, purpose, status as state, recorded_at as valid_from,
                   case when status = 'granted' and expires_at is not null and (next_at is null or expires_at < next_at)
                        then expires_at else next_at end as valid_to,
                   event_id, expires_at, jurisdiction, source, notice_version
            from seq
            where not (status = 'granted' and expires_at is not null and expires_at <= recorded_at)
            union all
            select user_id, purpose, 'expired', greatest(expires_at, recorded_at), next_at,
                   event_id, expires_at, jurisdiction, source, notice_version
            from seq
            where status = 'granted' and expires_at is not null and (next_at is null or expires_at < next_at)
        ),
        users as (select distinct user_id, sg_pseudonym(user_id) as user_pseudonym
                  from (select distinct user_id from raw.consent_events))
        select u.user_pseudonym, i.purpose, i.state, i.valid_from, i.valid_to, i.expires_at,
               i.jurisdiction, i.source, i.notice_version,
               sha256(i.event_id)[:16] as decided_by
        from intervals i join users u using (user_id)
        order by u.user_pseudonym, i.purpose, i.valid_from
        """
    )
    return int(con.execute("select count(*) from consent.consent_state").fetchone()[0])


GATED_PURPOSES = ("personalization", "analytics", "advertising")

# Valid consent at an event's instant, written as a range join: an independent formulation of the
# as-of join that defines the gated datasets, used by their check.
VALID_AT = """exists (select 1 from consent.consent_state s where s.user_pseudonym = {e}.user_pseudonym
              and s.purpose = {e}.purpose and s.state = 'granted' and s.valid_from <= {e}.ts
              and (s.valid_to is null or {e}.ts < s.valid_to))"""

# Written by the versions that stored the gated datasets as tables: what they were last built from.
_LEGACY_GATED_TABLES = ("governance.gated_inputs", "governance.gated_consent_inputs")


def gated_select(purpose: str) -> str:
    """The query of masked.<purpose>_events: the released events of that purpose whose user had valid consent
    at the event's instant (anonymous events cannot prove consent and are left out), by one as-of join with
    the consent state history."""
    if purpose not in GATED_PURPOSES:
        raise ValueError(purpose)
    return f"""select e.* from (select * from masked.access_events e
                   where e.purpose = '{purpose}' and e.user_pseudonym is not null) e
               asof join consent.consent_state s
                 on s.user_pseudonym = e.user_pseudonym and s.purpose = e.purpose and e.ts >= s.valid_from
               where s.state = 'granted' and (s.valid_to is null or e.ts < s.valid_to)"""


def _relation_type(con: duckdb.DuckDBPyConnection, schema: str, name: str) -> str | None:
    row = con.execute("select table_type from information_schema.tables where table_schema = ? and table_name = ?",
                      [schema, name]).fetchone()
    return row[0] if row else None


def gated_view_intact(con: duckdb.DuckDBPyConnection, purpose: str) -> bool:
    """Whether masked.<purpose>_events is a view whose query is exactly gated_select(purpose), compared in
    DuckDB's own normal form (the catalog keeps a view's query re-rendered from its parse tree; the DuckDB
    file prefixes the view's name with its schema, DuckLake does not)."""
    row = con.execute("select sql from duckdb_views() where database_name = current_database() and "
                      "schema_name = 'masked' and view_name = ?", [f"{purpose}_events"]).fetchone()
    if row is None or " AS " not in row[0]:
        return False
    expected = con.execute("select json_deserialize_sql(json_serialize_sql(?))", [gated_select(purpose)]).fetchone()[0]
    return row[0].split(" AS ", 1)[1].rstrip(";").strip() == expected


def intact_gated_views(con: duckdb.DuckDBPyConnection) -> set[str]:
    """The gated datasets (qualified names) that are views with streamgov's query: their rows are rows of
    masked.access_events, so a scan of that table covers them (leakguard)."""
    return {f"masked.{p}_events" for p in GATED_PURPOSES if gated_view_intact(con, p)}


def build_gated(con: duckdb.DuckDBPyConnection, purposes: tuple[str, ...] = GATED_PURPOSES) -> list[str]:
    """masked.<purpose>_events for each purpose, as a view (gated_select): a gated dataset is always exactly the
    released events that had valid consent, as the warehouse holds them now. Nothing to bring up to date after
    a new day, an erasure, the retention purge or a consent change; no copy of the events to store.

    Until 2026-11-28 (fifth session) the datasets were tables, recomputed in part every run: 2.15M rows
    copied at 10M events, 7-12 s per run, and two fingerprint tables to know what to recompute. A reader
    now pays the as-of join instead; a filter on event_date reaches the scan of masked.access_events.

    A view is (re)created only when missing or not streamgov's query, so a run on DuckLake writes nothing to
    the catalog when nothing changed. Returns the views (re)created."""
    unknown = set(purposes) - set(GATED_PURPOSES)
    if unknown:
        raise ValueError(sorted(unknown))
    created = []
    con.execute("begin transaction")
    try:
        for purpose in purposes:
            name = f"{purpose}_events"
            if _relation_type(con, "masked", name) == "BASE TABLE":
                con.execute(f"drop table masked.{name}")  # stored by an earlier version
            elif gated_view_intact(con, purpose):
                continue
            con.execute(f"create or replace view masked.{name} as {gated_select(purpose)}")
            created.append(f"masked.{name}")
        for legacy in _LEGACY_GATED_TABLES:
            con.execute(f"drop table if exists {legacy}")
        con.execute("commit")
    except Exception:
        con.execute("rollback")
        raise
    return created


def gated_check(con: duckdb.DuckDBPyConnection, purposes: tuple[str, ...] = GATED_PURPOSES,
                days: tuple[date, date] | None = None) -> dict[str, dict[str, int | bool]]:
    """Per purpose, over the events of `days` (every event when None): the dataset's rows, its rows that had no
    valid consent at their instant or are no released event, and the consented events it misses, found with
    VALID_AT, a range join independent of the view's as-of join; and whether the view is streamgov's query.

    A run checks the days it loaded. The other days are given by the same query (checked intact every run)
    over inputs that have their own checks (masked.access_events, consent.consent_state's contract)."""
    scope = "true" if days is None else \
        f"e.event_date between date '{days[0].isoformat()}' and date '{days[1].isoformat()}'"
    consented = (f"select e.purpose, e.event_id from masked.access_events e where {scope} and list_contains(?, e.purpose) "
                 f"and e.user_pseudonym is not null and {VALID_AT.format(e='e')}")

    # Both sides as a count and a sum of 64-bit hashes of the event ids per purpose: equal, the two sets of
    # events are the same (event ids are unique, a checked column). Only when they differ are the rows joined
    # to count what lacks consent and what is missing (a full join per purpose always: 5.3-6.5 s instead of
    # 4.3-4.5 s at 10M events, measured alternating).
    def sums(sql: str, params: list) -> dict[str, tuple[int, int]]:
        return {p: (int(n), int(h)) for p, n, h in con.execute(
            f"select purpose, count(*), sum(hash(event_id)) from ({sql}) group by 1", params).fetchall()}

    views = " union all ".join(f"select '{p}' as purpose, e.event_id from masked.{p}_events e where {scope}"
                               for p in purposes)
    got, expected = sums(views, []), sums(consented, [list(purposes)])
    out = {}
    for purpose in purposes:
        rows, _ = side = got.get(purpose, (0, 0))
        lacking = missing = 0
        if side != expected.get(purpose, (0, 0)):
            lacking, missing = con.execute(
                f"""select count(*) filter (where x.event_id is null), count(*) filter (where g.event_id is null)
                    from (select e.event_id from masked.{purpose}_events e where {scope}) g
                    full join (select event_id from ({consented}) where purpose = ?) x on x.event_id = g.event_id""",
                [list(purposes), purpose]).fetchone()
        out[purpose] = {"rows": int(rows), "without_valid_consent": int(lacking), "consented_missing": int(missing),
                        "definition_intact": gated_view_intact(con, purpose)}
    return out


def build_signal_mismatches(con: duckdb.DuckDBPyConnection, purpose_map: dict[str, list[int]]) -> int:
    """consent.signal_mismatches: consent rows whose TC string disagrees with their status.

    The distinct TC strings of the rows of the mapped purposes (the only rows compared) are decoded in Python
    (one per consent decision: 42k of 242k rows here, 0.6 s); rows are joined back in SQL.
    """
    from .tcf import TCFError, decode, granted_purposes

    strings = [r[0] for r in con.execute(
        "select distinct tc_string from raw.consent_events where tc_string is not null and trim(tc_string) <> '' "
        "and list_contains(?, purpose)", [list(purpose_map)]).fetchall()]
    decoded = []
    for tc in strings:
        try:
            granted = granted_purposes(decode(tc))
            decoded.append((tc, True, [p for p, ids in purpose_map.items() if set(ids) <= granted]))
        except TCFError:
            decoded.append((tc, False, []))
    temp_table_from_rows(con, "_tc", {"tc_string": "varchar", "decodable": "boolean", "grants": "varchar[]"}, decoded)
    con.execute("create or replace temp table _tcmap (purpose varchar)")
    con.executemany("insert into _tcmap values (?)", [[p] for p in purpose_map])
    con.execute(
        """
        create or replace table consent.signal_mismatches as
        select sha256(c.event_id)[:16] as consent_event, sg_pseudonym(c.user_id) as user_pseudonym, c.purpose,
               c.status, c.recorded_at, c.source, c.jurisdiction,
               case when not t.decodable then 'undecodable_tc_string'
                    when c.status = 'granted' then 'granted_but_tc_string_withholds'
                    else 'withheld_but_tc_string_grants' end as finding
        from raw.consent_events c join _tc t using (tc_string)
        where c.purpose in (select purpose from _tcmap)
          and (not t.decodable or (c.status = 'granted') <> list_contains(t.grants, c.purpose))
        order by recorded_at, consent_event
        """
    )
    con.execute("drop table _tc; drop table _tcmap")
    return int(con.execute("select count(*) from consent.signal_mismatches").fetchone()[0])
