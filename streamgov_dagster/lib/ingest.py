"""Raw-zone ingestion of JSON-lines sources inside DuckDB.

Every line of every file is accounted for: it is loaded, quarantined with a reason code, or
counted as a duplicate (a re-delivered event_id). Parsing and validation are SQL over the whole
file set; Python only loops over files (to quarantine an unreadable file alone) and over the
distinct IP strings (validation through the ipaddress module).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from pathlib import Path

import duckdb

from .warehouse import begin

ACCESS_ACTIONS = ("login", "logout", "play", "stop", "browse", "search", "download", "profile_view",
                  "profile_update", "api")
PURPOSES = ("service", "personalization", "analytics", "advertising")
AUDIT_ACTIONS = ("login", "view_profile", "view_watch_history", "export_user_data", "query_pii",
                 "update_consent", "delete_user", "grant_role", "disable_audit_logging")
OUTCOMES = ("success", "denied", "error")

# An ISO-8601 timestamp must carry Z or a UTC offset: a local time without one is ambiguous.
TS_WITH_OFFSET = r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?\s*(Z|z|[+-]\d{2}(:?\d{2})?)$"


@dataclass(frozen=True)
class Field:
    name: str
    kind: str  # string | integer | timestamp | ip
    required: bool
    allowed: tuple[str, ...] = ()
    minimum: int | None = None
    maximum: int | None = None
    pattern: str | None = None


@dataclass(frozen=True)
class JsonSource:
    name: str            # source name in the ledger and quarantine: access | audit
    id_field: str        # the unique event id (duplicates share it)
    table: str           # raw table
    fields: tuple[Field, ...]
    # Columns only some formats fill (request line of web logs, CloudTrail event name, ...).
    extra_columns: tuple[tuple[str, str], ...] = ()


ACCESS = JsonSource(
    name="access",
    id_field="event_id",
    table="raw.access_events",
    fields=(
        Field("event_id", "string", True),
        Field("ts", "timestamp", True),
        Field("user_id", "string", False),
        Field("session_id", "string", False),
        Field("device_id", "string", False),
        Field("client_ip", "ip", True),
        Field("email", "string", False),
        Field("country", "string", False, pattern=r"^[A-Za-z]{2}$"),
        Field("user_agent", "string", False),
        Field("action", "string", True, allowed=ACCESS_ACTIONS),
        Field("status", "integer", True, minimum=100, maximum=599),
        Field("content_id", "string", False),
        Field("bytes", "integer", False, minimum=0),
        Field("auth_token_id", "string", False),
        Field("purpose", "string", False, allowed=PURPOSES),
    ),
    extra_columns=(("http_method", "VARCHAR"), ("uri_path", "VARCHAR"), ("uri_query", "VARCHAR"),
                   ("host", "VARCHAR"), ("referrer", "VARCHAR")),
)

AUDIT = JsonSource(
    name="audit",
    id_field="audit_id",
    table="raw.audit_events",
    fields=(
        Field("audit_id", "string", True),
        Field("ts", "timestamp", True),
        Field("actor_id", "string", True),
        Field("actor_role", "string", True),
        Field("action", "string", True, allowed=AUDIT_ACTIONS),
        Field("subject_user_id", "string", False),
        Field("records", "integer", False, minimum=0),
        Field("ticket_id", "string", False),
        Field("source_ip", "ip", True),
        Field("outcome", "string", True, allowed=OUTCOMES),
    ),
    extra_columns=(("event_name", "VARCHAR"), ("identity_type", "VARCHAR")),
)

JSON_PATTERNS = ("*.jsonl", "*.jsonl.gz", "*.json", "*.json.gz")
_SQL_TYPES = {"string": "VARCHAR", "integer": "BIGINT", "timestamp": "TIMESTAMP", "ip": "VARCHAR"}


def list_files(folder: Path, patterns: tuple[str, ...]) -> list[Path]:
    if not folder.is_dir():
        return []
    found = {p for pattern in patterns for p in folder.glob(pattern) if p.is_file()}
    return sorted(found)


def sql_str(value: str) -> str:
    """A SQL string literal."""
    return "'" + value.replace("'", "''") + "'"


def read_lines(con: duckdb.DuckDBPyConnection, files: list[Path], root: Path) -> None:
    """Fill temp tables _lines(file, line_no, line) and _file_errors(file, reason).

    line_no is the physical 1-based line number. Lines with invalid UTF-8 come back from DuckDB's
    reject store (with their physical line) and are kept with line = NULL and reason invalid_utf8.
    """
    con.execute("create or replace temp table _lines (file varchar, line_no bigint, line varchar, pre_reason varchar)")
    con.execute("create or replace temp table _file_errors (file varchar, reason varchar)")
    con.execute("create or replace temp table _files (file varchar)")
    for path in files:
        rel = path.relative_to(root).as_posix()
        con.execute("insert into _files values (?)", [rel])
        con.execute("drop table if exists _rej; drop table if exists _rej_scan")
        # The accepted lines are numbered by the rowids of a fresh table, which follow the file's order as
        # insertion order is preserved: cheaper than a row_number() window over the scan.
        try:
            con.execute("create or replace temp table _read as select line from read_csv(?, "
                        "columns={'line': 'VARCHAR'}, delim=E'\\x1f', quote='', escape='', header=false, "
                        "auto_detect=false, strict_mode=false, store_rejects=true, "
                        "rejects_table='_rej', rejects_scan='_rej_scan')", [str(path)])
        except duckdb.Error as exc:
            con.execute("insert into _file_errors values (?, ?)", [rel, _file_error_reason(exc)])
            continue
        con.execute("insert into _lines select ?, rowid + 1, line, null from _read", [rel])
        con.execute("drop table _read")
        if not con.execute("select count(*) from _rej").fetchone()[0]:
            continue
        # A rejected line (invalid UTF-8) shifts the ordinal of every later line of its file by one: map the
        # ordinals back to physical lines, and keep the rejected lines as quarantine candidates.
        con.execute(
            """
            create or replace temp table _rej_rank as
            select phys, phys - row_number() over (order by phys) as accepted_before
            from (select distinct line as phys from _rej)
            """
        )
        con.execute(
            "update _lines set line_no = line_no + (select count(*) from _rej_rank r where r.accepted_before < _lines.line_no) "
            "where file = ?", [rel])
        con.execute("insert into _lines select ?, phys, null, 'invalid_utf8' from _rej_rank", [rel])
        con.execute("drop table _rej_rank")


def _file_error_reason(exc: Exception) -> str:
    # DuckDB's message can quote file content: keep only a classification, never the text.
    text = str(exc).lower()
    if "gzip" in text or "compress" in text or "zlib" in text:
        return "unreadable_file:corrupt_compression"
    if "no files found" in text or "no such file" in text:
        return "unreadable_file:missing"
    return "unreadable_file:" + type(exc).__name__


def _field_checks(src: JsonSource) -> tuple[list[str], list[str]]:
    """SQL CASE branches (in order) giving the first failing reason, and the typed select list."""
    branches: list[str] = []
    columns: list[str] = []
    for i, f in enumerate(src.fields, start=1):
        t, v = f"t[{i}]", f"v[{i}]"
        present = f"({t} is not null and {t} <> 'NULL')"
        if f.required:
            branches.append(f"when not {present} then 'missing_{f.name}'")
        if f.kind in ("string", "timestamp", "ip"):
            branches.append(f"when {present} and {t} <> 'VARCHAR' then 'invalid_type_{f.name}'")
            if f.required:
                branches.append(f"when trim({v}) = '' then 'missing_{f.name}'")
        elif f.kind == "integer":
            branches.append(f"when {present} and {t} not in ('BIGINT', 'UBIGINT') then 'invalid_type_{f.name}'")
        if f.kind == "timestamp":
            # most timestamps end in Z: only the others pay for the regular expression
            branches.append(f"when right({v}, 1) not in ('Z', 'z') and not regexp_matches(trim({v}), {sql_str(TS_WITH_OFFSET)}) then "
                            f"(case when try_cast({v} as timestamp) is not null then 'ts_without_offset' else 'invalid_ts' end)")
            branches.append(f"when try_cast(trim({v}) as timestamptz) is null then 'invalid_ts'")
        if f.allowed:
            allowed = ", ".join(sql_str(a) for a in f.allowed)
            branches.append(f"when {present} and {v} not in ({allowed}) then 'invalid_{f.name}'")
        if f.minimum is not None:
            branches.append(f"when {present} and try_cast({v} as hugeint) < {int(f.minimum)} then 'invalid_{f.name}'")
        if f.maximum is not None:
            branches.append(f"when {present} and try_cast({v} as hugeint) > {int(f.maximum)} then 'invalid_{f.name}'")
        if f.pattern:
            branches.append(f"when {present} and not regexp_matches({v}, {sql_str(f.pattern)}) then 'invalid_{f.name}'")
        if f.kind == "ip":
            branches.append(f"when not coalesce(ip_ok[{i}], false) then 'invalid_{f.name}'")
        if f.kind == "timestamp":
            columns.append(f"try_cast(trim({v}) as timestamptz)::timestamp as {f.name}")
            columns.append(f"{v} as {f.name}_original")
        elif f.kind == "integer":
            columns.append(f"try_cast({v} as bigint) as {f.name}")
        elif f.name == "country":
            columns.append(f"upper({v}) as {f.name}")
        else:
            columns.append(f"{v} as {f.name}")
    return branches, columns


def parse(con: duckdb.DuckDBPyConnection, src: JsonSource, first_day: date, last_day: date) -> None:
    """Classify every line in _lines into temp table _parsed (reason null = valid)."""
    paths = "[" + ", ".join(sql_str(f"$.{f.name}") for f in src.fields) + "]"
    known = "[" + ", ".join(sql_str(f.name) for f in src.fields) + "]"
    ip_fields = [i for i, f in enumerate(src.fields, start=1) if f.kind == "ip"]
    # Validity, the listed fields as strings and their JSON types, and the key list: one scan of the text.
    con.execute(
        f"""
        create or replace temp table _extracted as
        with j as (
            select file, line_no, line,
                   coalesce(pre_reason,
                            case when not json_valid(line) then 'invalid_json'
                                 when left(ltrim(line), 1) <> '{{' then 'not_an_object' end) as pre_reason
            from _lines
            where pre_reason is not null or trim(line) <> ''
        )
        select file, line_no, pre_reason,
               case when pre_reason is null then json_extract_string(line, {paths}) end as v,
               case when pre_reason is null then json_type(line, {paths}) end as t,
               case when pre_reason is null
                    then len(list_filter(json_keys(line), k -> not list_contains({known}, k))) end as drift_fields
        from j
        """
    )
    # IP validity through Python's ipaddress over the distinct strings only.
    ip_union = " union ".join(f"select v[{i}] as ip from _extracted where pre_reason is null" for i in ip_fields)
    con.execute(f"create or replace temp table _ips as select ip, sg_ip_ok(trim(ip)) as ok from "
                f"(select distinct ip from ({ip_union}) where ip is not null)")
    ip_ok = "[" + ", ".join(f"ip{i}.ok" if i in ip_fields else "null" for i in range(1, len(src.fields) + 1)) + "]"
    ip_joins = " ".join(f"left join _ips ip{i} on ip{i}.ip = e.v[{i}]" for i in ip_fields)
    branches, columns = _field_checks(src)
    reason = "case " + "\n ".join(branches) + " end"
    extras = "".join(f"null::{t} as {n}, " for n, t in src.extra_columns)
    con.execute(
        f"""
        create or replace temp table _parsed as
        with e as (select e.*, {ip_ok} as ip_ok from _extracted e {ip_joins}),
        c as (
            select file, line_no, drift_fields, coalesce(pre_reason, {reason}) as reason, {", ".join(columns)}
            from e
        ),
        ranged as (
            select * exclude (reason), ts::date as event_date,
                   case when reason is null and (ts::date < ?::date or ts::date > ?::date)
                        then 'ts_out_of_range' else reason end as final_reason
            from c
        ),
        -- only ids seen more than once need ranking (a hash aggregate, then a small window)
        repeated as (
            select {src.id_field} as rid from ranged where final_reason is null
            group by {src.id_field} having count(*) > 1
        ),
        ranks as (
            select file as rfile, line_no as rline,
                   row_number() over (partition by {src.id_field} order by file, line_no) > 1 as dup
            from ranged where final_reason is null and {src.id_field} in (select rid from repeated)
        )
        select r.* exclude (final_reason, rfile, rline, dup), r.final_reason as reason, {extras}
               coalesce(r.dup, false) as is_duplicate
        from (select * from ranged left join ranks on rfile = file and rline = line_no) r
        """,
        [first_day, last_day],
    )
    # The text of a line is kept only where the quarantine needs it.
    con.execute("alter table _parsed add column line varchar")
    con.execute("update _parsed set line = l.line from _lines l "
                "where _parsed.reason is not null and l.file = _parsed.file and l.line_no = _parsed.line_no")
    con.execute("drop table if exists _extracted; drop table if exists _ips; drop table if exists _lines")


def raw_columns(src: JsonSource) -> list[tuple[str, str]]:
    cols: list[tuple[str, str]] = []
    for f in src.fields:
        cols.append((f.name, _SQL_TYPES[f.kind]))
        if f.kind == "timestamp":
            cols.append((f"{f.name}_original", "VARCHAR"))
    cols += list(src.extra_columns)
    cols += [("event_date", "DATE"), ("drift_fields", "INTEGER"), ("source", "VARCHAR"), ("source_file", "VARCHAR"),
             ("source_line", "BIGINT")]
    return cols


def ensure_shared_tables(con: duckdb.DuckDBPyConnection) -> None:
    """The quarantine and the per-file ledger, shared by every source."""
    con.execute(
        "create table if not exists raw.quarantine_lines (source varchar, file varchar, line_no bigint, "
        "reason varchar, event_date date, raw_line varchar)"
    )
    con.execute(
        "create table if not exists raw.ingest_ledger (source varchar, file varchar, lines_read bigint, "
        "rows_loaded bigint, rows_quarantined bigint, duplicates bigint, drift_rows bigint, file_error varchar)"
    )


def ensure_tables(con: duckdb.DuckDBPyConnection, src: JsonSource) -> None:
    ensure_shared_tables(con)
    cols = raw_columns(src)
    con.execute(f"create table if not exists {src.table} ({', '.join(f'{n} {t}' for n, t in cols)})")
    for name, sql_type in cols:  # a warehouse from an older version gains the new columns
        con.execute(f"alter table {src.table} add column if not exists {name} {sql_type}")


def load(con: duckdb.DuckDBPyConnection, src: JsonSource, landing_dir: Path, files: list[Path],
         first_day: date, last_day: date, bounds: tuple[date, date]) -> dict[str, int]:
    """Load the events of days [first_day, last_day] from every file of the source.

    Idempotent: the day range is deleted and re-inserted, the source's undated quarantine rows and its
    ledger are rewritten from the same files. `bounds` is the span of days the partitioning covers;
    events outside it are quarantined (ts_out_of_range).
    """
    ensure_tables(con, src)
    read_lines(con, files, landing_dir)
    parse(con, src, bounds[0], bounds[1])
    return write_out(con, src, src.name, first_day, last_day, len(files))


def write_out(con: duckdb.DuckDBPyConnection, src: JsonSource, source: str, first_day: date, last_day: date,
              n_files: int) -> dict[str, int]:
    """Publish temp table _parsed of one source (ledger name `source`) for days [first_day, last_day].

    _parsed holds every raw column (file and line_no standing for source_file and source_line), plus
    reason (null = valid) and is_duplicate. Only this source's rows of the raw table are replaced.
    """
    ensure_tables(con, src)
    # Erased data subjects stay erased: a re-delivered file does not bring them back.
    from .dsar import suppress_parsed

    suppress_parsed(con, access=src is ACCESS)
    # A file none of whose lines even parses as the format is not that format: quarantine it whole.
    con.execute(
        """
        insert into _file_errors
        select file, 'not_' || ? || '_format' from _parsed group by file
        having count(*) > 0 and bool_and(coalesce(reason in ('invalid_json', 'not_an_object', 'not_a_log_line',
                                                             'wrong_field_count', 'invalid_utf8'), false))
        """,
        [source],
    )
    con.execute("delete from _parsed where file in (select file from _file_errors)")
    names = [name for name, _ in raw_columns(src)]
    renames = {"source_file": "file", "source_line": "line_no", "source": "?"}
    select = ", ".join(renames.get(n, n) for n in names)
    # The source's ledger and undated quarantine rows are shared by every partition run of the source.
    begin(con, claim=f"ingest:{source}")
    try:
        con.execute(f"delete from {src.table} where event_date between ? and ? and source = ?",
                    [first_day, last_day, source])
        con.execute(
            f"insert into {src.table} ({', '.join(names)}) select {select} from _parsed "
            "where reason is null and not is_duplicate and event_date between ? and ?",
            [source, first_day, last_day],
        )
        con.execute(
            "delete from raw.quarantine_lines where source = ? and (event_date between ? and ? or event_date is null)",
            [source, first_day, last_day],
        )
        con.execute(
            """
            insert into raw.quarantine_lines
            select ?, file, line_no, reason, case when reason <> 'ts_out_of_range' then event_date end, left(line, 4096)
            from _parsed
            where reason is not null
              and (event_date between ? and ? or event_date is null or reason = 'ts_out_of_range')
            union all
            select ?, file, null, reason, null, null from _file_errors
            """,
            [source, first_day, last_day, source],
        )
        con.execute("delete from raw.ingest_ledger where source = ?", [source])
        con.execute(
            """
            insert into raw.ingest_ledger
            select ?, f.file, count(p.file),
                   count(*) filter (where p.reason is null and not p.is_duplicate),
                   count(*) filter (where p.reason is not null),
                   count(*) filter (where p.is_duplicate),
                   count(*) filter (where p.reason is null and not p.is_duplicate and p.drift_fields > 0),
                   any_value(e.reason)
            from _files f left join _parsed p on p.file = f.file left join _file_errors e on e.file = f.file
            group by f.file
            """,
            [source],
        )
        con.execute("commit")
    except Exception:
        con.execute("rollback")
        raise
    stats = con.execute(
        "select count(*), count(*) filter (where reason is null and not is_duplicate and event_date between ? and ?), "
        "count(*) filter (where reason is not null), count(*) filter (where is_duplicate) from _parsed",
        [first_day, last_day],
    ).fetchone()
    file_errors = con.execute("select count(*) from _file_errors").fetchone()[0]
    con.execute("drop table if exists _parsed; drop table if exists _lines; drop table if exists _files")
    return {"lines_read": stats[0], "rows_loaded": stats[1], "rows_quarantined": stats[2],
            "duplicates": stats[3], "files": n_files, "unreadable_files": file_errors}


# UTC day of a raw line, per source format (a cheap scan to find which partitions hold data).
DAY_OF_LINE = {
    "json": "try_cast(json_extract_string(line, '$.ts') as timestamptz)::date",
    "cdn": "try_cast(split_part(line, chr(9), 1) as date)",
    "weblogs": "try_strptime(regexp_extract(line, '\\[([^\\]]+)\\]', 1), '%d/%b/%Y:%H:%M:%S %z')::date",
    "cloudtrail": "try_cast(json_extract_string(line, '$.eventTime') as timestamptz)::date",
}


def event_day_span(con: duckdb.DuckDBPyConnection, files: list[Path], kind: str = "json") -> tuple[date, date] | None:
    """Earliest and latest UTC event day among the parseable lines of the files (unreadable files and
    lines are skipped here; the load quarantines them)."""
    lo: date | None = None
    hi: date | None = None
    for path in files:
        try:
            row = con.execute(
                f"select min(d), max(d) from (select {DAY_OF_LINE[kind]} as d from read_csv(?, columns={{'line': 'VARCHAR'}}, "
                "delim=E'\\x1f', quote='', escape='', header=false, auto_detect=false, strict_mode=false, "
                "ignore_errors=true) where line is not null and line not like '#%' and "
                + ("json_valid(line))" if kind in ("json", "cloudtrail") else "true)"),
                [str(path)],
            ).fetchone()
        except duckdb.Error:
            continue
        if row and row[0]:
            lo = row[0] if lo is None else min(lo, row[0])
            hi = row[1] if hi is None else max(hi, row[1])
    return (lo, hi) if lo else None
