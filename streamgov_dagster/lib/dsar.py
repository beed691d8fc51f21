"""Data-subject requests (contract schema E): access exports, erasure, deadlines.

Intake: <landing>/dsar/*.jsonl, one request per line (request_id, user_id, type, received_at). A request
is copied once (by request_id) into raw.dsar_requests, the raw zone, since it names the user; bad
lines are quarantined with the same ledger accounting as every source.

- Access: an export folder <reports>/dsar/<request_id>/ holds the user's access events, consent history
  and every audit-trail entry in which staff touched their data (who, when, what, under which ticket).
- Erasure: the user's rows leave every table, the raw zone included; the audit trail keeps the staff
  member's action with the subject removed (a record kept under a legal obligation, Art. 17(3)(b));
  the consent log keeps tombstones (payload blanked, payload_hash kept, so the chain verifies) and one
  `erasure` entry; the local alert file is redacted. What depends on the rows is rebuilt downstream in
  the same run. The fact of the erasure is kept as an HMAC of the user id under a separate key
  (STREAMGOV_ERASURE_KEY): not the user id, not joinable to the pseudonyms, but enough to keep a
  re-delivered file or a consent-database row from bringing the user back at ingestion.
- Deadlines: one month after received_at (GDPR Art. 12(3)); reports.dsar_status shows open, answered
  and overdue requests; alerts fire when an open request is within the warning window of its deadline.

Everything is SQL over whole tables; Python loops over requests and tables, never over rows.
"""

from __future__ import annotations

import json
import shutil
from datetime import datetime, timezone
from pathlib import Path

import duckdb

from . import identifiers, ingest
from .ingest import sql_str
from .consentlog import GENESIS, LOG_COLUMNS, PAYLOAD_JSON, chain_hash
from .warehouse import table_exists, temp_table_from_rows

DSAR_PATTERNS = ("*.jsonl", "*.jsonl.gz", "*.json", "*.json.gz")
TYPES = ("access", "erasure")
EXPORT_DIR = "dsar"  # under the reports directory; excluded from the published-report leak scan
ERASED = "erased_subject"
# Raw columns that name a data subject, and how erasure treats their rows.
SUBJECT_COLUMNS = {
    "raw.access_events": ("user_id", "delete"),
    "raw.consent_events": ("user_id", "delete"),
    "raw.audit_events": ("subject_user_id", "redact"),
}


def ensure_tables(con: duckdb.DuckDBPyConnection) -> None:
    ingest.ensure_shared_tables(con)
    con.execute("create table if not exists raw.dsar_requests (request_id varchar, type varchar, user_id varchar, "
                "received_at timestamp, deadline timestamp, source_file varchar, source_line bigint, "
                "loaded_at timestamp)")
    # Tokens of erasures executed and not yet verified: raw zone, emptied once verification passes (after the
    # warehouse is rewritten). pending_since dates the wait for that rewrite (erasure_compaction_delay_days).
    con.execute("create table if not exists raw.erasure_pending (request_id varchar, kind varchar, token varchar, "
                "pending_since timestamp)")
    con.execute("alter table raw.erasure_pending add column if not exists pending_since timestamp")
    con.execute("create table if not exists governance.dsar_log (request_id varchar, type varchar, "
                "received_at timestamp, deadline timestamp, answered_at timestamp, rows_affected bigint, "
                "detail varchar, verified_at timestamp)")
    con.execute("create table if not exists governance.erasure_register (subject_hash varchar, request_id varchar, "
                "erased_at timestamp)")


# ------------------------------------------------------------------------------------------ intake

def load_requests(con: duckdb.DuckDBPyConnection, landing: Path) -> dict[str, int]:
    """Copy new requests from <landing>/dsar into raw.dsar_requests; quarantine the bad lines."""
    ensure_tables(con)
    files = ingest.list_files(landing / "dsar", DSAR_PATTERNS)
    ingest.read_lines(con, files, landing)
    j = "nullif(trim(json_extract_string(line, '$.{}')), '')".format
    con.execute(
        f"""
        create or replace temp table _dsar as
        with l as (
            select file, line_no, line,
                   coalesce(pre_reason, case when not json_valid(line) then 'invalid_json'
                                             when json_type(line) <> 'OBJECT' then 'not_an_object' end) as pre_reason
            from _lines where pre_reason is not null or trim(line) <> ''
        ),
        t as (
            select file, line_no, line, pre_reason,
                   case when pre_reason is null then {j('request_id')} end as request_id,
                   case when pre_reason is null then {j('user_id')} end as user_id,
                   case when pre_reason is null then lower({j('type')}) end as type,
                   case when pre_reason is null then {j('received_at')} end as received_str
            from l
        ),
        c as (
            select *, coalesce(pre_reason, case
                when request_id is null then 'missing_request_id'
                when user_id is null then 'missing_user_id'
                when type is null or type not in {TYPES!r} then 'invalid_type'
                when received_str is null then 'missing_received_at'
                when not regexp_matches(received_str, ?) or try_cast(received_str as timestamptz) is null
                    then 'invalid_received_at' end) as reason
            from t
        )
        select *, reason is null and row_number() over (partition by case when reason is null then request_id end
                                                         order by file, line_no) > 1 as is_duplicate
        from c
        """,
        [ingest.TS_WITH_OFFSET],
    )
    con.execute("begin transaction")
    try:
        # One row per request, first seen wins; a request already held is not re-read, so the user id of
        # a completed erasure is never copied back from the intake file.
        con.execute(
            """
            insert into raw.dsar_requests
            select d.request_id, d.type, d.user_id, try_cast(d.received_str as timestamptz)::timestamp,
                   try_cast(d.received_str as timestamptz)::timestamp + interval 1 month, d.file, d.line_no,
                   date_trunc('second', now()::timestamp)
            from _dsar d
            where d.reason is null and not d.is_duplicate
              and d.request_id not in (select request_id from raw.dsar_requests)
            """
        )
        con.execute("delete from raw.quarantine_lines where source = 'dsar'")
        # A malformed request line naming an erased user keeps its reason, not its text.
        erased_values(con, f"select nullif({_json_subject('user_id')}, '') as v from _dsar where reason is not null")
        con.execute("insert into raw.quarantine_lines select 'dsar', file, line_no, reason, null, "
                    f"case when {_json_subject('user_id')} in (select v from _erased) then null else left(line, 4096) end "
                    "from _dsar where reason is not null union all "
                    "select 'dsar', file, null, reason, null, null from _file_errors")
        con.execute("delete from raw.ingest_ledger where source = 'dsar'")
        con.execute(
            """
            insert into raw.ingest_ledger
            select 'dsar', f.file, count(d.file), count(*) filter (where d.reason is null and not d.is_duplicate),
                   count(*) filter (where d.reason is not null), count(*) filter (where d.is_duplicate), 0,
                   any_value(e.reason)
            from _files f left join _dsar d on d.file = f.file left join _file_errors e on e.file = f.file
            group by f.file
            """
        )
        con.execute("commit")
    except Exception:
        con.execute("rollback")
        raise
    stats = con.execute("select count(*), count(*) filter (where reason is null and not is_duplicate), "
                        "count(*) filter (where reason is not null), count(*) filter (where is_duplicate) "
                        "from _dsar").fetchone()
    held = con.execute("select count(*) filter (where type = 'access'), count(*) filter (where type = 'erasure') "
                       "from raw.dsar_requests").fetchone()
    con.execute("drop table if exists _dsar; drop table if exists _lines; drop table if exists _files; "
                "drop table if exists _file_errors; drop table if exists _erased")
    return {"lines_read": stats[0], "requests_valid": stats[1], "rows_quarantined": stats[2],
            "duplicates": stats[3], "files": len(files), "access_requests": held[0], "erasure_requests": held[1]}


# ------------------------------------------------------------------------------- keeping them out

def erased_values(con: duckdb.DuckDBPyConnection, values_sql: str, out: str = "_erased") -> int:
    """Temp table `out`(v): the distinct values of `values_sql` (a query with one column v) that belong
    to an erased subject. Only distinct values are hashed; nothing is hashed when nobody was erased."""
    registered = table_exists(con, "governance", "erasure_register") and \
        con.execute("select count(*) from governance.erasure_register").fetchone()[0] > 0
    if not registered:
        con.execute(f"create or replace temp table {out} (v varchar)")
        return 0
    con.execute(
        f"""
        create or replace temp table {out} as
        select v from (select distinct v from ({values_sql}) where v is not null)
        where sg_erasure_hash(v) in (select subject_hash from governance.erasure_register)
        """
    )
    return int(con.execute(f"select count(*) from {out}").fetchone()[0])


def _json_subject(field: str) -> str:
    return f"""regexp_extract(line, '"{field}"\\s*:\\s*"([^"]*)"', 1)"""


def suppress_parsed(con: duckdb.DuckDBPyConnection, access: bool) -> int:
    """In temp table _parsed (a load about to be published): events of erased users become quarantine
    rows `erased_subject` without their text; the audit trail loses the subject only. Quarantined lines
    that name an erased user lose their text too. Returns the number of rows touched."""
    column = "user_id" if access else "subject_user_id"
    values = (f"select {column} as v from _parsed where reason is null union all "
              f"select nullif({_json_subject(column)}, '') from _parsed where reason is not null and line is not null")
    if not erased_values(con, values):
        con.execute("drop table if exists _erased")
        return 0
    before = con.execute("select count(*) from _parsed where (reason is null and "
                         f"{column} in (select v from _erased)) or (reason is not null and line is not null and "
                         f"{_json_subject(column)} in (select v from _erased))").fetchone()[0]
    if access:
        con.execute(f"update _parsed set reason = '{ERASED}', is_duplicate = false, line = null, user_id = null, "
                    "email = null where reason is null and user_id in (select v from _erased)")
    else:
        con.execute("update _parsed set subject_user_id = null where reason is null and "
                    "subject_user_id in (select v from _erased)")
    con.execute(f"update _parsed set line = null where reason is not null and line is not null and "
                f"{_json_subject(column)} in (select v from _erased)")
    con.execute("drop table if exists _erased")
    return int(before)


# ------------------------------------------------------------------------------------------ access

def _export_queries(user: str, access_rows: str = "raw.access_events") -> dict[str, tuple[str, str]]:
    """name -> (source table, query) of the export files, for the user id given as a SQL literal; the access
    events are read from `access_rows` (the requesters' rows, selected once for all the requests)."""
    return {
        "access_events": ("raw.access_events", "select * exclude (source_file, source_line, drift_fields, id_hash) "
                          f"from {access_rows} where user_id = {user} order by ts, event_id"),
        "consent_history": ("raw.consent_events", f"select * from raw.consent_events where user_id = {user} "
                            "order by recorded_at, event_id"),
        "staff_access": ("raw.audit_events", "select ts, actor_id, actor_role, action, outcome, ticket_id, records, "
                         f"source, audit_id from raw.audit_events where subject_user_id = {user} order by ts, audit_id"),
    }


def answer_access_requests(con: duckdb.DuckDBPyConnection, reports_dir: Path) -> list[dict]:
    """Write the export of every access request not answered yet; returns counts per request."""
    ensure_tables(con)
    pending = con.execute(
        "select request_id, user_id, received_at, deadline from raw.dsar_requests r "
        "where type = 'access' and user_id is not null "
        "and request_id not in (select request_id from governance.dsar_log where answered_at is not null) "
        "order by received_at, request_id"
    ).fetchall()
    root = reports_dir / EXPORT_DIR
    done = []
    access_rows = "raw.access_events"
    if pending and table_exists(con, "raw", "access_events"):
        # the requesters' access events in one scan of the table (a scan per request: 0.13 s each at 10M events)
        con.execute("create or replace temp table _requesters_events as select * from raw.access_events "
                    "where list_contains(?, user_id)", [sorted({row[1] for row in pending})])
        access_rows = "_requesters_events"
    for request_id, user_id, received_at, deadline in pending:
        folder = root / _safe_name(request_id)
        staging = root / f".staging-{_safe_name(request_id)}"
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        counts = {}
        for name, (table, query) in _export_queries(sql_str(user_id), access_rows).items():
            if not table_exists(con, *table.split(".")):
                counts[name] = 0
                (staging / f"{name}.csv").write_text("", encoding="utf-8")
                continue
            # COPY streams from DuckDB to the file (the user's rows never pass through Python) and
            # answers with the number of rows it wrote.
            counts[name] = int(con.execute(f"copy ({query}) to '{staging / (name + '.csv')}' "
                                           "(header, delimiter ',')").fetchone()[0])
        answered_at = datetime.now(timezone.utc).replace(tzinfo=None, microsecond=0)
        manifest = {"request_id": request_id, "type": "access", "received_at": received_at.isoformat() + "Z",
                    "deadline": deadline.isoformat() + "Z", "generated_at": answered_at.isoformat() + "Z",
                    "files": {f"{k}.csv": v for k, v in counts.items()},
                    "note": "staff_access lists every audit-trail entry in which staff touched this user's data."}
        (staging / "manifest.json").write_text(json.dumps(manifest, indent=2), encoding="utf-8")
        shutil.rmtree(folder, ignore_errors=True)
        staging.rename(folder)
        con.execute("delete from governance.dsar_log where request_id = ?", [request_id])
        con.execute("insert into governance.dsar_log values (?, 'access', ?, ?, ?, ?, ?, null)",
                    [request_id, received_at, deadline, answered_at, sum(counts.values()), json.dumps(counts)])
        done.append({"request_id": request_id, **counts})
    con.execute("drop table if exists _requesters_events")
    return done


def _safe_name(request_id: str) -> str:
    """A request id as a folder name: path separators and dots at the start are not allowed through."""
    cleaned = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in request_id).lstrip(".")
    return cleaned or "_"


# ----------------------------------------------------------------------------------------- erasure

def execute_erasures(con: duckdb.DuckDBPyConnection, reports_dir: Path, alerts_path: Path | None,
                     key_id: str) -> list[dict]:
    """Erase the subject of every erasure request not executed yet; returns rows touched per request."""
    ensure_tables(con)
    pending = con.execute(
        "select request_id, user_id, received_at, deadline from raw.dsar_requests "
        "where type = 'erasure' and user_id is not null "
        "and request_id not in (select request_id from governance.erasure_register) order by received_at, request_id"
    ).fetchall()
    done = []
    for request_id, user_id, received_at, deadline in pending:
        counts = _erase_one(con, request_id, user_id, reports_dir, alerts_path, key_id)
        erased_at = datetime.now(timezone.utc).replace(tzinfo=None, microsecond=0)
        con.execute("delete from governance.dsar_log where request_id = ?", [request_id])
        con.execute("insert into governance.dsar_log values (?, 'erasure', ?, ?, ?, ?, ?, null)",
                    [request_id, received_at, deadline, erased_at, sum(counts.values()), json.dumps(counts)])
        done.append({"request_id": request_id, **counts})
    # A restored backup (or rows written around the register) can hold users erased since: every run
    # finds them by their erasure hash over the distinct subject ids of the raw zone, and erases them again.
    subjects = [f"select {column} as v from {table}" for table, (column, _) in SUBJECT_COLUMNS.items()
                if table_exists(con, *table.split("."))]
    if subjects and erased_values(con, " union ".join(subjects), "_resurfaced"):
        for (user_id,) in con.execute("select v from _resurfaced order by v").fetchall():
            counts = _erase_one(con, REAPPLIED, user_id, reports_dir, alerts_path, key_id, register=False)
            done.append({"request_id": REAPPLIED, **counts})
    con.execute("drop table if exists _resurfaced")
    return done


REAPPLIED = "(register)"  # the request id recorded for an erasure applied again to resurfaced rows


def _erase_one(con: duckdb.DuckDBPyConnection, request_id: str, user_id: str, reports_dir: Path,
               alerts_path: Path | None, key_id: str, register: bool = True) -> dict[str, int]:
    counts: dict[str, int] = {}
    # The tokens that identify the user: the id, the emails seen with it, and their pseudonyms.
    emails = "select null::varchar as email where false"
    if table_exists(con, "raw", "access_events"):
        emails = "select distinct email from raw.access_events where user_id = $user and email is not null"
    con.execute(
        f"""
        create or replace temp table _tokens as
        with e as ({emails})
        select 'user_id' as kind, $user as token
        union all select 'email', email from e
        union all select 'pseudonym', sg_pseudonym($user)
        union all select 'pseudonym', sg_pseudonym_email(email) from e
        """,
        {"user": user_id},
    )
    con.execute("insert into raw.erasure_pending select ?, kind, token, date_trunc('second', now()::timestamp) "
                "from _tokens", [request_id])
    con.execute("begin transaction")
    try:
        for table, (column, how) in SUBJECT_COLUMNS.items():
            if not table_exists(con, *table.split(".")):
                continue
            # the identifier index forgets the user's values (identifiers.forget, in this transaction)
            identifiers.capture(con, table, f"{column} = ?", [user_id])
            if how == "redact":
                counts[table] = _count_update(con, f"update {table} set {column} = null where {column} = ?", [user_id])
                continue
            source = "'consent'" if table == "raw.consent_events" else "source"
            where = f"{column} = ?"
            if table == "raw.consent_events":
                # A consent row is named in the quarantine by its event_id (the consent database's row id).
                quarantine = (f"select 'consent', 'consent_events', null, '{ERASED}', null, "
                              f"to_json(struct_pack(event_id))::varchar from {table} where {where}")
                ledger = f"select 'consent' as s, 'consent_events' as f, count(*) as n from {table} where {where}"
            else:
                quarantine = (f"select {source}, source_file, source_line, '{ERASED}', event_date, null "
                              f"from {table} where {where}")
                ledger = f"select {source} as s, source_file as f, count(*) as n from {table} where {where} group by all"
            # The loaded rows become quarantine rows of reason erased_subject: the counts still balance.
            con.execute(f"create or replace temp table _moved as {ledger}", [user_id])
            con.execute("update raw.ingest_ledger set rows_loaded = rows_loaded - m.n, "
                        "rows_quarantined = rows_quarantined + m.n from _moved m "
                        "where raw.ingest_ledger.source = m.s and raw.ingest_ledger.file = m.f")
            con.execute(f"insert into raw.quarantine_lines {quarantine}", [user_id])
            counts[table] = _count_update(con, f"delete from {table} where {where}", [user_id])
        # Quarantined text naming the user (a malformed line of theirs) loses its text.
        counts["raw.quarantine_lines"] = _count_update(
            con, "update raw.quarantine_lines set raw_line = null where raw_line is not null and exists "
                 "(select 1 from _tokens t where t.kind in ('user_id', 'email') and contains(raw_line, t.token))", [])
        # Every derived table: rows naming the user or their pseudonyms go (rebuilt downstream anyway).
        counts.update(_erase_derived(con))
        counts["consent.consent_log"] = _tombstone(con, request_id, key_id)
        identifiers.forget(con)
        con.execute("update raw.dsar_requests set user_id = null where user_id = ? and type = 'erasure' "
                    "and request_id = ?", [user_id, request_id])
        if register:
            con.execute("insert into governance.erasure_register values (sg_erasure_hash(?), ?, "
                        "date_trunc('second', now()::timestamp))", [user_id, request_id])
        con.execute("commit")
    except Exception:
        con.execute("rollback")
        raise
    # Files: the user's earlier access exports, and the local alert file.
    exports = con.execute("select request_id from raw.dsar_requests where type = 'access' and user_id = ?",
                          [user_id]).fetchall()
    for (rid,) in exports:
        shutil.rmtree(reports_dir / EXPORT_DIR / _safe_name(rid), ignore_errors=True)
    con.execute("update raw.dsar_requests set user_id = null where user_id = ?", [user_id])
    counts["export_folders"] = len(exports)
    counts["alert_lines"] = _redact_alerts(con, alerts_path)
    con.execute("drop table if exists _tokens; drop table if exists _moved")
    return counts


def _count_update(con: duckdb.DuckDBPyConnection, sql: str, params: list) -> int:
    row = con.execute(sql, params).fetchone()
    return int(row[0]) if row else 0


def text_columns(con: duckdb.DuckDBPyConnection, schemas: tuple[str, ...]) -> list[tuple[str, str, bool]]:
    """(table, column, is_list) of every text column of the base tables in the schemas."""
    rows = con.execute(
        "select c.table_schema || '.' || c.table_name, c.column_name, c.data_type from information_schema.columns c "
        "join information_schema.tables t using (table_schema, table_name) "
        "where list_contains(?, c.table_schema) and t.table_type = 'BASE TABLE' "
        "and c.data_type in ('VARCHAR', 'VARCHAR[]') order by 1, 2", [list(schemas)]).fetchall()
    return [(t, c, dt.endswith("[]")) for t, c, dt in rows]


DERIVED_SCHEMAS = ("masked", "consent", "governance", "reports")


# Derived tables whose rows are records of someone else's action: the subject is removed, the row stays.
REDACT_ONLY = {("masked.audit_events", "subject_pseudonym")}
SKIP = {"consent.consent_log", "governance.erasure_register", "governance.dsar_log"}


def _erase_derived(con: duckdb.DuckDBPyConnection) -> dict[str, int]:
    counts: dict[str, int] = {}
    for table, column, is_list in text_columns(con, DERIVED_SCHEMAS):
        if table in SKIP:
            continue
        if (table, column) in REDACT_ONLY:
            n = _count_update(con, f"update {table} set {column} = null where {column} in (select token from _tokens)", [])
        elif is_list:
            n = _count_update(con, f"delete from {table} where list_has_any({column}, (select list(token) from _tokens))", [])
        else:
            n = _count_update(con, f"delete from {table} where {column} in (select token from _tokens)", [])
        if n:
            counts[table] = counts.get(table, 0) + n
    return counts


def _tombstone(con: duckdb.DuckDBPyConnection, request_id: str, key_id: str) -> int:
    """Blank the user's consent-log payloads (their payload_hash stays, so the chain verifies) and
    append one `erasure` entry that names neither the user nor a pseudonym."""
    con.execute(f"create table if not exists consent.consent_log ({LOG_COLUMNS})")
    n = _count_update(
        con,
        "update consent.consent_log set erased = true, entry_key = sha256('erased|' || seq), changed_at = null, "
        "user_pseudonym = null, purpose = null, change = null, source = null, jurisdiction = null, "
        "notice_version = null where user_pseudonym in (select token from _tokens where kind = 'pseudonym')", [])
    last = con.execute("select seq, row_hash from consent.consent_log order by seq desc limit 1").fetchone()
    seq, prev = (last[0] + 1, last[1]) if last else (1, GENESIS)
    changed_at = datetime.now(timezone.utc).replace(tzinfo=None, microsecond=0)
    payload_hash = con.execute(
        f"select sha256({PAYLOAD_JSON}) from (select ?::timestamp as changed_at, null::varchar as user_pseudonym, "
        "null::varchar as purpose, 'erasure' as change, 'dsar' as source, null::varchar as jurisdiction, "
        "null::varchar as notice_version, ? as pseudonym_key_id)", [changed_at, key_id]).fetchone()[0]
    con.execute(
        "insert into consent.consent_log values (?, sha256('erasure|' || ?), ?, null, null, 'erasure', 'dsar', null, "
        "null, ?, date_trunc('second', now()::timestamp), false, ?, ?, ?)",
        [seq, request_id, changed_at, key_id, payload_hash, prev, chain_hash(seq, payload_hash, prev)],
    )
    return n


def _redact_alerts(con: duckdb.DuckDBPyConnection, alerts_path: Path | None) -> int:
    """The local alert file is ours: alerts naming an erased pseudonym keep everything but the subject."""
    if alerts_path is None or not alerts_path.exists():
        return 0
    tokens = {r[0] for r in con.execute("select token from _tokens").fetchall()}
    lines = alerts_path.read_text(encoding="utf-8").splitlines(keepends=True)
    changed = 0
    out = []
    for line in lines:  # one alert per line; the file is small (one line per alert ever sent)
        if any(t in line for t in tokens):
            for t in tokens:
                line = line.replace(t, "[erased]")
            changed += 1
        out.append(line)
    if changed:
        tmp = alerts_path.with_name(alerts_path.name + ".tmp")
        tmp.write_text("".join(out), encoding="utf-8")
        tmp.replace(alerts_path)
    return changed


# ------------------------------------------------------------------------------------ verification

def purge_due(con: duckdb.DuckDBPyConnection, delay_days: int) -> bool:
    """Whether the erasures waiting in raw.erasure_pending are due for the physical purge (the rewrite of
    the warehouse): the oldest has waited delay_days (0: at once). A row from before pending_since existed
    is due."""
    ensure_tables(con)
    return bool(con.execute(
        "select count(*) from raw.erasure_pending where token is not null and (pending_since is null or "
        "pending_since <= now()::timestamp - to_days(?))", [int(delay_days)]).fetchone()[0])


def verify_erasures(con: duckdb.DuckDBPyConnection, reports_dir: Path, alerts_path: Path | None,
                    purge: bool = True) -> tuple[dict[str, int], list[tuple]]:
    """For every erasure not verified yet: count what still names the user (ids, emails, pseudonyms and
    their 12-character report prefixes) in every table of every zone, the report files and the alert
    file. When clean and `purge` (the physical purge is due, see purge_due), the requests are marked
    verified and their tokens leave the warehouse; the pending rows (request_id, kind, token,
    pending_since) are returned so the caller can check the compacted file (`compact`, `file_hits`) and,
    should it fail, put them back (`mark_verified`). When clean and not `purge`, the tokens stay pending
    (raw zone) for the purge of a later run. Counts only."""
    ensure_tables(con)
    pending = con.execute("select request_id, kind, token, pending_since from raw.erasure_pending "
                          "where token is not null").fetchall()
    tokens = {row[2] for row in pending}
    if not tokens:
        return {}, pending
    con.execute("create or replace temp table _tokens as select distinct token from raw.erasure_pending "
                "where token is not null")
    hits: dict[str, int] = {}
    for table, column, is_list in text_columns(con, ("raw", *DERIVED_SCHEMAS)):
        if table == "raw.erasure_pending":
            continue
        if table == "raw.quarantine_lines" and column == "raw_line":
            sql = f"select count(*) from {table} where exists (select 1 from _tokens t where contains({column}, t.token))"
        elif is_list:
            sql = f"select count(*) from {table} where list_has_any({column}, (select list(token) from _tokens))"
        else:
            sql = f"select count(*) from {table} where {column} in (select token from _tokens)"
        n = con.execute(sql).fetchone()[0]
        if n:
            hits[f"{table}.{column}"] = int(n)
    # the identifier index holds hashes, not text: an erased id or email must not be among them (an id still
    # held by another row of the raw zone, as a shared IP, is not a token)
    if table_exists(con, "raw", identifiers.INDEX.split(".")[1]):
        n = con.execute(f"select count(*) from {identifiers.INDEX} where h in "
                        "(select hash(token) from _tokens)").fetchone()[0]
        if n:
            hits[f"{identifiers.INDEX}.h"] = int(n)
    con.execute("drop table _tokens")
    # the tokens, and the 12-character report prefixes of the 64-character ones (pseudonyms); a whole pseudonym
    # is looked for only where its prefix is (it cannot be elsewhere): each search reads the whole file, and the
    # consent log CSV is 107 MB at 250k entries (one search in three less: 0.2 s there)
    long = {t for t in tokens if len(t) == 64}
    needles = (tokens - long) | {t[:12] for t in long}
    files = [p for p in reports_dir.rglob("*") if p.is_file()] if reports_dir.exists() else []
    if alerts_path is not None and alerts_path.exists():
        files.append(alerts_path)
    for path in files:
        text = path.read_text(encoding="utf-8", errors="replace")
        found = {t for t in needles if t in text}
        n = len(found | {t for t in long if t[:12] in found and t in text})
        if n:
            hits[f"file:{path.name}"] = n
    if not hits and purge:
        mark_verified(con, True, pending)
    return hits, pending


def mark_verified(con: duckdb.DuckDBPyConnection, verified: bool, pending: list[tuple]) -> None:
    """Verified: stamp the erasures and drop their tokens (before the file is compacted, so the tokens
    leave it too). Not verified after all (the compacted file still held a token): un-stamp them and put
    the same pending rows back, so the next run checks each request again."""
    requests = sorted({row[0] for row in pending})
    if verified:
        con.execute("update governance.dsar_log set verified_at = date_trunc('second', now()::timestamp) "
                    "where type = 'erasure' and verified_at is null and list_contains(?, request_id)", [requests])
        con.execute("delete from raw.erasure_pending")
        return
    con.execute("update governance.dsar_log set verified_at = null where list_contains(?, request_id)", [requests])
    temp_table_from_rows(con, "_pending_back", {"request_id": "varchar", "kind": "varchar", "token": "varchar",
                                                "pending_since": "timestamp"}, pending)
    con.execute("insert into raw.erasure_pending (request_id, kind, token, pending_since) select * from _pending_back; "
                "drop table _pending_back")


COMPACT_SCRIPT = """
import sys, duckdb
src, dst, memory_limit, storage = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
con = duckdb.connect()
# DuckDB's default is 80% of the machine's memory: the copy stays under the warehouse's cap instead
con.execute("SET memory_limit = ?", [memory_limit])
con.execute(f"attach '{src}' as src")  # read-write: fails unless no other process holds the file
con.execute("checkpoint src")
con.execute(f"attach '{dst}' as dst (storage_version '{storage}')")  # the warehouse's format (STORAGE_CONFIG)
con.execute("copy from database src to dst")
con.execute("detach dst")
con.execute("detach src")
con.close()
"""


def compact(db_path: Path) -> str | None:
    """Rewrite the warehouse into a fresh file and swap it in: DuckDB leaves deleted rows in free blocks
    of the file, so an erasure is complete only once the file is rewritten. It runs in a child process,
    which cannot lock the file while any process (this one included) still has it open: then nothing is
    swapped and the reason is returned."""
    import os
    import subprocess
    import sys

    from .warehouse import DEFAULT_MEMORY_LIMIT, STORAGE_CONFIG, release

    release(db_path)  # a run holding the file open (streamgov run) lets it go: the swapped-in file is new
    tmp = db_path.with_name(db_path.name + ".compact")
    tmp.unlink(missing_ok=True)

    limit = os.environ.get("STREAMGOV_DUCKDB_MEMORY_LIMIT") or DEFAULT_MEMORY_LIMIT
    done = subprocess.run([sys.executable, "-c", COMPACT_SCRIPT, str(db_path), str(tmp), limit,
                           STORAGE_CONFIG["storage_compatibility_version"]],
                          capture_output=True, text=True, check=False)
    if done.returncode != 0:
        tmp.unlink(missing_ok=True)
        # DuckDB's message names the file and the lock holder, never row content; keep only its first line.
        return (done.stderr.strip().splitlines() or ["compaction failed"])[-1][:300]
    os.replace(tmp, db_path)
    return None


def file_hits(path: Path, tokens: set[str], chunk: int = 64 << 20) -> int:
    """How many of the tokens occur anywhere in the bytes of a file (read in chunks, never whole)."""
    needles = [t.encode("utf-8") for t in tokens if t]
    if not needles or not path.exists():
        return 0
    overlap = max(len(n) for n in needles)
    found: set[bytes] = set()
    tail = b""
    with path.open("rb") as fh:
        while block := fh.read(chunk):
            window = tail + block
            found.update(n for n in needles if n not in found and n in window)
            tail = window[-overlap:]
    return len(found)


# ---------------------------------------------------------------------------------------- deadlines

def build_status(con: duckdb.DuckDBPyConnection) -> dict[str, int]:
    """reports.dsar_status: every request with its deadline and status (no user id)."""
    ensure_tables(con)
    con.execute(
        """
        create or replace table reports.dsar_status as
        select r.request_id, r.type, r.received_at, r.deadline, l.answered_at,
               case when l.answered_at is not null and l.answered_at <= r.deadline then 'answered'
                    when l.answered_at is not null then 'answered_late'
                    when now()::timestamp > r.deadline then 'overdue'
                    else 'open' end as status,
               case when l.answered_at is null
                    then datediff('day', now()::timestamp, r.deadline) end as days_to_deadline,
               date_trunc('second', now()::timestamp) as as_of
        from raw.dsar_requests r left join governance.dsar_log l using (request_id)
        order by r.received_at, r.request_id
        """
    )
    return dict(con.execute("select status, count(*) from reports.dsar_status group by all").fetchall())


def deadline_payloads(con: duckdb.DuckDBPyConnection, warning_days: int) -> list[dict]:
    """Alerts for unanswered requests within `warning_days` of their deadline, or past it."""
    if not table_exists(con, "reports", "dsar_status"):
        return []
    rows = con.execute(
        """
        select request_id, type, received_at, deadline, datediff('day', timezone('UTC', now()), deadline) as days_left
        from reports.dsar_status
        where answered_at is null and deadline - to_days(?) <= timezone('UTC', now())
        order by deadline, request_id
        """,
        [warning_days],
    ).fetchall()
    out = []
    for request_id, kind, received_at, deadline, days_left in rows:
        overdue = days_left < 0
        out.append({
            "alert_id": f"dsar-{'overdue' if overdue else 'due'}:{request_id}",
            "kind": "dsar_deadline_overdue" if overdue else "dsar_deadline_near",
            "severity": "critical" if overdue else "high",
            "request_id": request_id, "request_type": kind,
            "received_at": received_at.isoformat() + "Z", "deadline": deadline.isoformat() + "Z",
            "days_to_deadline": int(days_left),
        })
    return out
