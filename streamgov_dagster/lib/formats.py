"""The log formats streaming services really produce, parsed inside DuckDB.

- CloudFront standard access logs (W3C, parsed by each file's own `#Fields:` header),
- nginx / Apache common, combined and vhost_combined logs,
- AWS CloudTrail: delivery files `{"Records": [...]}` and one record per line.

Each loader projects its records onto the access or audit schema (a select over _lines); `finish` types
and validates the projection like the JSON sources into _parsed, and `ingest.write_out` publishes it with
the same quarantine and ledger accounting. Python touches files (headers, format sniffing), never rows.
"""

from __future__ import annotations

import gzip
import re
import time
from datetime import date
from pathlib import Path

import duckdb

from . import ingest
from .ingest import ACCESS, AUDIT, JsonSource
from .policy import Policy

CDN_PATTERNS = ("*.log", "*.log.gz", "*.gz", "*.txt")
WEBLOG_PATTERNS = ("*.log", "*.log.gz", "*.gz", "*.txt", "*.log.[0-9]", "access.log*")
CLOUDTRAIL_PATTERNS = ("*.json", "*.json.gz", "*.jsonl", "*.jsonl.gz", "*.ndjson", "*.ndjson.gz")

# Common/combined/vhost_combined: [vhost] client ident user [time] "request" status bytes rest
WEBLOG_LINE = (r'^(?:(\S+) )?(\S+) (\S+) (\S+) \[([^\]]+)\] "((?:[^"\\]|\\.)*)" (\d{3}) (\d+|-)'
               r'(?: \d+)?(?: "((?:[^"\\]|\\.)*)" "((?:[^"\\]|\\.)*)")?(.*)$')
WEBLOG_REQUEST = r'^([A-Z]+) (\S+)(?: (\S+))?$'
# The shape nearly every line has: common or combined, no vhost, no escaped quote, no trailing field, a
# METHOD target [protocol] request. Its first three fields and the time hold no bracket, quote or
# backslash, so WEBLOG_LINE cannot take the first field for a vhost, and every group of WEBLOG_LINE and
# WEBLOG_REQUEST is the text between two separators: string_split cuts it out. Matching this pattern needs
# no submatches (one DFA pass); extracting WEBLOG_LINE's eleven groups costs ten times more.
WEBLOG_SIMPLE = (r'[^\s\[\]"\\]+ [^\s\[\]"\\]+ [^\s\[\]"\\]+ \[[^\[\]"\\]+\] "[A-Z]+ [^\s"\\]+(?: [^\s"\\]+)?" '
                 r'\d{3} (?:\d+|-)(?: "[^"\\]*" "[^"\\]*")?')
ACCESS_STRINGS = ("event_id", "user_id", "session_id", "device_id", "client_ip", "email", "country", "user_agent",
                  "action", "content_id", "auth_token_id", "purpose", "http_method", "uri_path", "uri_query", "host",
                  "referrer", "xff_first")
AUDIT_STRINGS = ("audit_id", "actor_id", "actor_role", "action", "subject_user_id", "ticket_id", "source_ip", "outcome",
                 "event_name", "identity_type")


def _peek(path: Path, size: int = 65536) -> str:
    """The first bytes of a file (decompressed when gzip), as text; empty when unreadable."""
    try:
        with open(path, "rb") as fh:
            compressed = fh.read(2) == b"\x1f\x8b"
        with (gzip.open if compressed else open)(path, "rb") as fh:
            return fh.read(size).decode("utf-8", errors="replace")
    except (OSError, EOFError):
        return ""


def _not_blank(expr: str) -> str:
    """trim(expr) <> '': DuckDB's trim walks the whole string (for its last non-space), so a string starting
    with a visible ASCII character, never blank, skips it."""
    return f"(case when ascii({expr}) between 33 and 126 then true else trim({expr}) <> '' end)"


def _blank(expr: str) -> str:
    """trim(expr) = '', the cheap way (see _not_blank)."""
    return f"(case when ascii({expr}) between 33 and 126 then false else trim({expr}) = '' end)"


PROJ_COLUMNS = ("file", "line_no", "line", "pre_reason", "ts_str", "ts_fmt", "status_str", "bytes_str", "records_str")


def _projection(strings: tuple[str, ...], columns: dict[str, str], source_sql: str) -> str:
    """A select of every projection column (PROJ_COLUMNS, then the format's strings) from source_sql;
    the columns a format does not fill are null. finish() reads it as a subquery: the projection is
    never materialized on its own (a copy of 2M projected rows of ~20 strings costs ~1.3 s)."""
    exprs = [f"({columns[c]})::bigint as {c}" if c == "line_no" else f"({columns.get(c, 'null')})::varchar as {c}"
             for c in PROJ_COLUMNS + strings]
    return f"select {', '.join(exprs)} from {source_sql}"


def _url_decode(expr: str) -> str:
    """url_decode(expr): it only rewrites %XX sequences, so a string without '%' is returned as it is.
    Escapes that decode to bytes which are not UTF-8 (e.g. %E8%F1 in Windows-1251, seen in real logs)
    leave the value as logged: url_decode would otherwise fail the whole load."""
    return f"(case when contains({expr}, '%') then coalesce(try(url_decode({expr})), {expr}) else {expr} end)"


def _path_action(policy: Policy, path_sql: str) -> tuple[str, list[str]]:
    """The action of a path (sql, params): the first policy pattern that matches it wins."""
    rules = policy.formats["path_actions"]
    if not rules:
        return "?", [policy.formats["default_action"]]
    branches = " ".join("when regexp_matches(coalesce(" + path_sql + ", ''), ?) then ?" for _ in rules)
    params = [v for r in rules for v in (r["pattern"], r["action"])]
    return f"case {branches} else ? end", params + [policy.formats["default_action"]]


# --------------------------------------------------------------------------------------------- CDN

def _fields_header(text: str) -> list[str] | None:
    for line in text.splitlines():
        if line.startswith("#Fields:"):
            return line[len("#Fields:"):].split()
        if line and not line.startswith("#"):
            return None
    return None


def project_cdn(con: duckdb.DuckDBPyConnection, files: list[Path], landing: Path, policy: Policy) -> tuple[str, list]:
    """The projection of the CloudFront lines (sql, params): one select per distinct #Fields header."""
    groups: dict[tuple[str, ...], list[str]] = {}
    for path in files:
        rel = path.relative_to(landing).as_posix()
        fields = _fields_header(_peek(path))
        if fields is None:
            known = con.execute("select count(*) from _file_errors where file = ?", [rel]).fetchone()[0]
            if not known and con.execute("select count(*) from _lines where file = ?", [rel]).fetchone()[0]:
                con.execute("insert into _file_errors values (?, 'not_cloudfront:missing_fields_header')", [rel])
            con.execute("delete from _lines where file = ?", [rel])
            continue
        groups.setdefault(tuple(fields), []).append(rel)
    selects: list[str] = []
    params: list = []
    for fields, rels in groups.items():
        pos = {name: i + 1 for i, name in enumerate(fields)}

        def f(name: str) -> str:
            return f"nullif(p[{pos[name]}], '-')" if name in pos else "null::varchar"

        action, action_params = _path_action(policy, _url_decode(f('cs-uri-stem')))
        columns = {
            "file": "file", "line_no": "line_no", "line": "line",
            "pre_reason": f"coalesce(pre_reason, case when len(p) <> {len(fields)} then 'wrong_field_count' end)",
            "event_id": f("x-edge-request-id"),
            "ts_str": f"{f('date')} || 'T' || {f('time')} || 'Z'", "ts_fmt": "'iso'",
            "client_ip": f("c-ip"), "xff_first": f"trim(split_part({f('x-forwarded-for')}, ',', 1))",
            "status_str": f("sc-status"), "bytes_str": f("sc-bytes"),
            "user_agent": _url_decode(f('cs(User-Agent)')), "referrer": _url_decode(f('cs(Referer)')),
            "http_method": f("cs-method"), "host": f("cs(Host)"),
            "uri_path": _url_decode(f('cs-uri-stem')), "uri_query": _url_decode(f('cs-uri-query')),
            "action": action,
        }
        # The lines left in _lines all come from files with a header: one header needs no file filter.
        in_group = "" if len(groups) == 1 else f"file in ({', '.join('?' for _ in rels)}) and "
        selects.append(_projection(ACCESS_STRINGS, columns,
                                   f"(select *, string_split(line, chr(9)) as p from _lines where {in_group}"
                                   f"(pre_reason is not null or ({_not_blank('line')} and line not like '#%')))"))
        params += action_params + (rels if in_group else [])
    if not selects:
        selects.append(_projection(ACCESS_STRINGS, {"file": "file", "line_no": "line_no"}, "_lines where false"))
    return " union all ".join(selects), params


# ----------------------------------------------------------------------------------------- weblogs

def project_weblogs(con: duckdb.DuckDBPyConnection, policy: Policy) -> tuple[str, list]:
    """The projection of the web-log lines (sql, params)."""
    keep = f"pre_reason is not null or {_not_blank('line')}"
    # Identical lines within one file are distinct requests: number the occurrences, so the same file
    # delivered again repeats the same ids. Only repeated lines need the window; grouping a 64-bit hash of
    # file and line finds the candidates cheaply (lines with equal md5 in one file are among them).
    con.execute(
        f"""
        create or replace temp table _occ as
        select file as ofile, line_no as oline, row_number() over (partition by file, md5(line) order by line_no) as occ
        from _lines
        where ({keep}) and hash(file, line) in (select hash(file, line) from _lines where {keep} group by 1 having count(*) > 1)
        qualify occ > 1
        """
    )
    occ = con.execute("select count(*) from _occ").fetchone()[0] > 0
    names = ["vhost", "client", "ident", "user", "time", "request", "status", "bytes", "referrer_q", "agent_q", "rest"]
    # A simple line (WEBLOG_SIMPLE) split on its quotes is [fields [time] , request,  status bytes [, referrer,  , agent, ]];
    # other lines go through the full patterns (g, rq). Its client ends at its first space, its time lies
    # between its first '[' and the '] ' before its first quote: substring() cuts them out of the line for
    # half the cost of splitting or slicing q[1] (~0.25 s of CPU per 2M lines).
    simple = {"vhost": "''", "client": "substring(line, 1, strpos(line, ' ') - 1)",
              "time": "substring(line, strpos(line, '[') + 1, strpos(line, '\"') - strpos(line, '[') - 3)",
              "request": "q[2]", "status": "string_split(q[3], ' ')[2]", "bytes": "string_split(q[3], ' ')[3]",
              "referrer_q": "coalesce(q[4], '')", "agent_q": "coalesce(q[6], '')", "rest": "''"}
    fields = ", ".join(f"case when simple then {e} else g.{n} end as {n}" for n, e in simple.items())
    parsed = f"""(select *, case when simple then r[1] else rq.method end as method,
                         case when simple then r[2] else rq.uri end as uri
                  from (select *, case when simple then string_split(request, ' ') end as r,
                               case when not simple then regexp_extract(request, ?, ['method', 'uri', 'protocol']) end as rq
                        from (select file, line_no, line, pre_reason, simple, {fields}
                              from (select *, case when simple then string_split(line, '"') end as q,
                                           case when not simple then regexp_extract(coalesce(line, ''), ?, {names!r}) end as g
                                    from (select *, coalesce(regexp_full_match(line, ?), false) as simple
                                          from _lines where {keep})))))"""
    # the request target is path?query: the action is derived from the path alone
    path = _url_decode("nullif(split_part(uri, '?', 1), '')")
    action, params = _path_action(policy, path)
    columns = {
        "file": "file", "line_no": "line_no", "line": "line",
        "pre_reason": "coalesce(pre_reason, case when client = '' then 'not_a_log_line' end)",
        # No id in the format: the line's content and its occurrence in the file identify it, so a file
        # delivered twice yields duplicates, not new events.
        "event_id": "'wl-' || md5(line) || " + ("'-' || coalesce(o.occ, 1)" if occ else "'-1'"),  # the occurrence in the file
        "ts_str": "time", "ts_fmt": "'clf'",
        # a client logged with a port (1.2.3.4:80, [::1]:80, host:80) is the address without it (no colon, no port)
        "client_ip": r"""case when not contains(client, ':') then client
                              when regexp_matches(client, '^\[.*\]:\d+$') then regexp_extract(client, '^\[(.*)\]', 1)
                              when regexp_matches(client, '^[^:]+:\d+$') then split_part(client, ':', 1)
                              else client end""",
        # X-Forwarded-For, logged as X-Forwarded-For="a, b" or as a third quoted field: the client is the first
        "xff_first": r"""case when rest <> '' then nullif(trim(split_part(coalesce(
                             nullif(regexp_extract(rest, 'X-Forwarded-For="([^"]*)"', 1), ''),
                             nullif(regexp_extract(rest, '^ "([^"]*)"', 1), '')), ',', 1)), '-') end""",
        "status_str": "status", "bytes_str": "nullif(bytes, '-')",
        "referrer": "nullif(nullif(referrer_q, ''), '-')", "user_agent": "nullif(nullif(agent_q, ''), '-')",
        "http_method": "nullif(method, '')", "uri_path": path,
        "uri_query": "case when contains(uri, '?') then " + _url_decode("nullif(substr(uri, strpos(uri, '?') + 1), '')") + " end",
        "host": "nullif(vhost, '')",
        "action": action,
    }
    if occ:
        parsed += " left join _occ o on o.ofile = file and o.oline = line_no"
    return _projection(ACCESS_STRINGS, columns, parsed), params + [WEBLOG_REQUEST, WEBLOG_LINE, WEBLOG_SIMPLE]


# -------------------------------------------------------------------------------------- CloudTrail

def _is_records_wrapper(path: Path) -> bool:
    return re.match(r'^\s*\{\s*"Records"\s*:', _peek(path, 4096)) is not None


def read_cloudtrail(con: duckdb.DuckDBPyConnection, files: list[Path], landing: Path) -> None:
    """Fill _lines with one CloudTrail record per row: a line of a one-record-per-line file, or a
    record of a delivery file (line_no is then the record's position in Records, from 1)."""
    ndjson = [p for p in files if not _is_records_wrapper(p)]
    ingest.read_lines(con, ndjson, landing)
    for path in files:
        if path in ndjson:
            continue
        rel = path.relative_to(landing).as_posix()
        con.execute("insert into _files values (?)", [rel])
        try:
            con.execute(
                "insert into _lines select ?, i, rec::varchar, null from ("
                "select unnest(Records) as rec, generate_subscripts(Records, 1) as i from read_json(?, "
                "columns={'Records': 'JSON[]'}, format='auto', maximum_object_size=1073741824))",
                [rel, str(path)],
            )
        except duckdb.Error as exc:
            con.execute("insert into _file_errors values (?, ?)", [rel, "unparseable_cloudtrail_file:" + type(exc).__name__])


def project_cloudtrail(con: duckdb.DuckDBPyConnection, policy: Policy) -> tuple[str, list]:
    """The projection of the CloudTrail records (sql, params), over temp tables _ct and _ct_actions."""
    ct = policy.formats["cloudtrail"]
    con.execute("create or replace temp table _ct_actions (event_name varchar, action varchar)")
    if ct["event_actions"]:
        con.executemany("insert into _ct_actions values (?, ?)", [[k, v] for k, v in ct["event_actions"].items()])
    con.execute(
        f"""
        create or replace temp table _ct as
        select *, case when pre_reason is null then line end as js from (
            select file, line_no, line,
                   coalesce(pre_reason, case when not json_valid(line) then 'invalid_json'
                                             when json_type(line) <> 'OBJECT' then 'not_an_object' end) as pre_reason
            from _lines where pre_reason is not null or {_not_blank('line')})
        """
    )
    # Fields are read from js, the text of valid records only: a line that is not JSON is quarantined,
    # it must not reach the JSON functions (they raise on it and would fail the whole load).
    j = "json_extract_string(js, '{}')".format
    columns = {
        "file": "file", "line_no": "line_no", "line": "line",
        "pre_reason": f"coalesce(pre_reason, case when {j('$.eventName')} is null then 'missing_eventName' end)",
        # A record without eventID (seen in the wild) is identified by its content.
        "audit_id": f"case when pre_reason is null then coalesce({j('$.eventID')}, 'ct-' || sha256(line)[:32]) end",
        "ts_str": j("$.eventTime"), "ts_fmt": "'iso'",
        "identity_type": j("$.userIdentity.type"),
        "actor_id": f"""case {j('$.userIdentity.type')}
                          when 'IAMUser' then coalesce({j('$.userIdentity.userName')}, {j('$.userIdentity.arn')})
                          when 'AssumedRole' then regexp_extract({j('$.userIdentity.arn')}, '[^/]+$')
                          when 'Root' then 'root:' || {j('$.userIdentity.accountId')}
                          when 'AWSService' then {j('$.userIdentity.invokedBy')}
                          else coalesce({j('$.userIdentity.userName')}, {j('$.userIdentity.principalId')},
                                        {j('$.userIdentity.invokedBy')}, {j('$.userIdentity.type')}) end""",
        "actor_role": f"""case when {j('$.userIdentity.type')} = 'AssumedRole'
                               then coalesce({j('$.userIdentity.sessionContext.sessionIssuer.userName')}, 'assumed_role')
                               else lower(coalesce({j('$.userIdentity.type')}, 'unknown')) end""",
        "event_name": j("$.eventName"),
        "action": f"coalesce((select a.action from _ct_actions a where a.event_name = {j('$.eventName')}), 'other')",
        "outcome": f"""case when list_contains(?, {j('$.errorCode')}) then 'denied'
                            when {j('$.eventName')} = 'ConsoleLogin' and {j('$.responseElements.ConsoleLogin')} = 'Failure' then 'denied'
                            when {j('$.errorCode')} is not null then 'error' else 'success' end""",
        "source_ip": j("$.sourceIPAddress"),
    }
    return _projection(AUDIT_STRINGS, columns, "_ct"), [ct["denied_error_codes"]]


# ------------------------------------------------------------------------------------------ finish

def finish(con: duckdb.DuckDBPyConnection, src: JsonSource, source: str, bounds: tuple[date, date],
           proj: tuple[str, list]) -> None:
    """Type and validate a projection (sql, params) into _parsed (the shape ingest.write_out publishes)."""
    access = src is ACCESS
    id_col = "event_id" if access else "audit_id"
    lo, hi = (f"date '{d.isoformat()}'" for d in bounds)
    out_of_range = f"(ts::date < {lo} or ts::date > {hi})"
    if access:
        # sg_ip_ok checks an IPv4 address in SQL and anything else with a colon in Python, which must see
        # each distinct string once: rows whose client or X-Forwarded-For address has a colon (and that
        # pass every earlier check) are held as '_ip_pending' and settled below, from the distinct strings.
        client_ok = "sg_ip_ok(p.client_ip)"
        colon = "coalesce(contains(p.client_ip, ':') or contains(p.xff_first, ':'), false)"
        # CloudFront's c-ip is an address; web servers may log a host name instead (kept, masked as such).
        ip_rule = ("when not coalesce({ok}, false) and ({c} is null or " + ("true" if source == "cdn" else "false")
                   + " or not regexp_matches({c}, '^[A-Za-z0-9_.-]+$')) then 'invalid_client_ip'").format
        typed = f"""case when {colon} then null when sg_ip_ok(p.xff_first) then p.xff_first else p.client_ip end as client_ip,
                    p.event_id, p.user_id, p.session_id, p.device_id, p.email, p.country,
                    p.user_agent, p.action, try_cast(p.status_str as integer) as status, p.content_id,
                    try_cast(p.bytes_str as bigint) as bytes, p.auth_token_id, p.purpose, p.http_method, p.uri_path,
                    p.uri_query, p.host, p.referrer"""
        checks = """when try_cast(p.status_str as integer) is null or try_cast(p.status_str as integer) not between 0 and 599 then 'invalid_status'
                    when p.bytes_str is not null and coalesce(try_cast(p.bytes_str as bigint), -1) < 0 then 'invalid_bytes'"""
        last_check = f"when {colon} then '_ip_pending' {ip_rule(ok=client_ok, c='p.client_ip')}"
        pending = (f", case when {colon} then p.client_ip end as client_pending, "
                   f"case when {colon} then p.xff_first end as xff_pending")
    else:
        typed = """p.audit_id, p.actor_id, p.actor_role, p.action, p.subject_user_id,
                   try_cast(p.records_str as bigint) as records, p.ticket_id, p.source_ip, p.outcome,
                   p.event_name, p.identity_type"""
        checks = """when p.actor_id is null then 'missing_actor'
                    when p.source_ip is null then 'missing_source_ip'"""
        last_check = pending = ""
    # The session is UTC (warehouse.prepare): a timestamptz's UTC wall-clock time is its epoch as a timestamp.
    # make_timestamp(epoch_us(..)) costs half of ::timestamp, which converts through ICU's calendar
    # (~0.3 s of CPU per 2M lines). strptime never yields infinity (which epoch_us would make null).
    ts = ("case when p.ts_fmt = 'clf' then make_timestamp(epoch_us(try_strptime(p.ts_str, '%d/%b/%Y:%H:%M:%S %z'))) "
          "else try_cast(p.ts_str as timestamptz)::timestamp end")
    # One pass from the lines to the typed rows; the text of a line is kept only where the quarantine
    # may need it.
    con.execute(
        f"""
        create or replace temp table _parsed as
        select * exclude (line), case when reason is not null then line end as line, false as is_duplicate
        from (
            select * exclude (reason0), ts::date as event_date,
                   case when reason0 is null and {out_of_range} then 'ts_out_of_range' else reason0 end as reason
            from (
                select p.file, p.line_no, p.line, {ts} as ts, p.ts_str as ts_original, 0 as drift_fields, {typed},
                       coalesce(p.pre_reason,
                                case when p.{id_col} is null or {_blank(f"p.{id_col}")} then 'missing_{id_col}'
                                     when p.ts_str is null then 'missing_ts'
                                     when {ts} is null then 'invalid_ts'
                                     {checks}
                                     {last_check} end) as reason0 {pending}
                from ({proj[0]}) p))
        """,
        proj[1],
    )
    if access and con.execute("select count(*) from _parsed where reason = '_ip_pending'").fetchone()[0]:
        con.execute("create or replace temp table _ips as select ip, sg_ip_ok(ip) as ok from ("
                    "select client_pending as ip from _parsed where contains(client_pending, ':') "
                    "union select xff_pending from _parsed where contains(xff_pending, ':'))")

        def ok(col: str, alias: str) -> str:
            return f"case when contains(q.{col}, ':') then {alias}.ok else sg_ip_ok(q.{col}) end"

        con.execute(
            f"""
            update _parsed set client_ip = s.client_ip, reason = s.reason from (
                select q.file, q.line_no,
                       case when {ok('xff_pending', 'xo')} then q.xff_pending else q.client_pending end as client_ip,
                       case {ip_rule(ok=ok('client_pending', 'io'), c='q.client_pending')}
                            when {out_of_range} then 'ts_out_of_range' end as reason
                from _parsed q left join _ips io on io.ip = q.client_pending left join _ips xo on xo.ip = q.xff_pending
                where q.reason = '_ip_pending') s
            where s.file = _parsed.file and s.line_no = _parsed.line_no
            """
        )
    # Only ids seen more than once among the valid rows need ranking: a hash aggregate over 64-bit hashes
    # of the ids finds the candidates, an exact one over those the repeated ids, then small windows.
    # A web-log id (md5 of the line, occurrence in its file) cannot repeat within one file: a load of a
    # single web-log file skips the search (~0.2 s per 2M lines).
    repeats = source != "weblogs" or con.execute("select count(distinct file) from _parsed").fetchone()[0] > 1
    if repeats:
        con.execute(f"create or replace temp table _rep as select {id_col} as rid from _parsed where reason is null "
                    f"and hash({id_col}) in (select hash({id_col}) from _parsed where reason is null group by 1 having count(*) > 1) "
                    f"group by {id_col} having count(*) > 1")
    if repeats and con.execute("select count(*) from _rep").fetchone()[0]:
        con.execute(
            f"""
            create or replace temp table _dup as
            with d as (
                -- among repeated ids only: a record repeated verbatim (a re-delivered file) is a duplicate ...
                select p.file as dfile, p.line_no as dline, p.{id_col} as did,
                       row_number() over (partition by p.{id_col}, md5(x.line) order by p.file, p.line_no) > 1 as dup
                from _parsed p join _lines x on x.file = p.file and x.line_no = p.line_no
                where p.reason is null and p.{id_col} in (select rid from _rep)
            )
            -- ... while a different record reusing an id is a distinct event: its id gets a ~n suffix
            select *, case when not dup then row_number() over (partition by did, dup order by dfile, dline) end as variant
            from d
            """
        )
        con.execute(f"update _parsed set is_duplicate = d.dup, "
                    f"{id_col} = case when d.variant > 1 then {id_col} || '~' || d.variant else {id_col} end "
                    "from _dup d where d.dfile = _parsed.file and d.dline = _parsed.line_no")
    con.execute("drop table if exists _ips; drop table if exists _rep; drop table if exists _dup; drop table if exists _occ; "
                "drop table if exists _ct; drop table if exists _ct_actions")


def load(con: duckdb.DuckDBPyConnection, source: str, landing: Path, policy: Policy, first_day: date,
         last_day: date, bounds: tuple[date, date], timings: dict[str, float] | None = None) -> dict[str, int]:
    """Load one log-format source (cdn | weblogs | cloudtrail) for days [first_day, last_day].
    `timings`, when given, receives the seconds spent parsing (read, project, type and validate) and
    publishing (quarantine, ledger and the insert into the raw table)."""
    started = time.perf_counter()
    folder = landing / source
    if source == "cdn":
        files = ingest.list_files(folder, CDN_PATTERNS)
        ingest.read_lines(con, files, landing)
        proj = project_cdn(con, files, landing, policy)
        src = ACCESS
    elif source == "weblogs":
        files = ingest.list_files(folder, WEBLOG_PATTERNS)
        ingest.read_lines(con, files, landing, read_only=True)
        proj = project_weblogs(con, policy)
        src = ACCESS
    elif source == "cloudtrail":
        files = ingest.list_files(folder, CLOUDTRAIL_PATTERNS)
        read_cloudtrail(con, files, landing)
        proj = project_cloudtrail(con, policy)
        src = AUDIT
    else:
        raise ValueError(f"unknown log source {source!r}")
    finish(con, src, source, bounds, proj)
    parsed = time.perf_counter()
    stats = ingest.write_out(con, src, source, first_day, last_day, len(files))
    if timings is not None:
        timings.update(parse_seconds=parsed - started, publish_seconds=time.perf_counter() - parsed)
    return stats


def landing_day_span(con: duckdb.DuckDBPyConnection, landing: Path,
                     known: dict[str, dict[str, ingest.LedgerFile]] | None = None) -> tuple[date, date] | None:
    """Earliest and latest UTC event day over every event source of the landing zone. `known`: the ledger's
    records of the JSON-lines sources' files (source -> ingest.ledger_files), which are then not scanned
    again while unchanged."""
    known = known or {}
    spans = [
        ingest.event_day_span(con, ingest.list_files(landing / "access", ingest.JSON_PATTERNS),
                              known=known.get("access"), root=landing),
        ingest.event_day_span(con, ingest.list_files(landing / "audit", ingest.JSON_PATTERNS),
                              known=known.get("audit"), root=landing),
        ingest.event_day_span(con, ingest.list_files(landing / "cdn", CDN_PATTERNS), "cdn"),
        ingest.event_day_span(con, ingest.list_files(landing / "weblogs", WEBLOG_PATTERNS), "weblogs"),
    ]
    trail = ingest.list_files(landing / "cloudtrail", CLOUDTRAIL_PATTERNS)
    spans.append(ingest.event_day_span(con, [p for p in trail if not _is_records_wrapper(p)], "cloudtrail"))
    for path in (p for p in trail if _is_records_wrapper(p)):
        try:
            row = con.execute(
                "select min(d), max(d) from (select try_cast(json_extract_string(unnest(Records), '$.eventTime') "
                "as timestamptz)::date as d from read_json(?, columns={'Records': 'JSON[]'}, format='auto', "
                "maximum_object_size=1073741824))", [str(path)]).fetchone()
        except duckdb.Error:
            continue
        spans.append((row[0], row[1]) if row and row[0] else None)
    found = [s for s in spans if s]
    return (min(s[0] for s in found), max(s[1] for s in found)) if found else None
