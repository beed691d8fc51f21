"""Log formats: the third-party conformance samples, and robustness on hand-made files."""

import gzip
import shutil
from datetime import date
from pathlib import Path

import pytest

from streamgov_dagster.lib import formats
from streamgov_dagster.lib.policy import load_policy
from streamgov_dagster_tests.conftest import CONFORMANCE

BOUNDS = (date(2000, 1, 1), date(2030, 1, 1))
needs_conformance = pytest.mark.skipif(not CONFORMANCE.is_dir(), reason="shared/conformance is absent")


def _landing(tmp_path: Path, source: str, files: dict[str, bytes]) -> Path:
    root = tmp_path / "landing"
    (root / source).mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        (root / source / name).write_bytes(data)
    return root


def _load(con, root: Path, source: str) -> dict[str, int]:
    return formats.load(con, source, root, load_policy(), BOUNDS[0], BOUNDS[1], BOUNDS)


def _ledger_balances(con) -> None:
    bad = con.execute("select count(*) from raw.ingest_ledger "
                      "where lines_read <> rows_loaded + rows_quarantined + duplicates").fetchone()[0]
    assert bad == 0


@needs_conformance
def test_cloudfront_conformance(tmp_path, con) -> None:
    root = tmp_path / "landing"
    shutil.copytree(CONFORMANCE / "cdn", root / "cdn")
    stats = _load(con, root, "cdn")
    assert stats["lines_read"] == 12 and stats["rows_loaded"] == 11 and stats["rows_quarantined"] == 1
    assert con.execute("select line_no, reason from raw.quarantine_lines").fetchall() == [(14, "wrong_field_count")]
    first = con.execute("select event_id, ts, client_ip, status, bytes, http_method, uri_path, user_agent, action "
                        "from raw.access_events where source_line = 3").fetchone()
    assert first == ("SOX4xwn4XV6Q4rgb7XiVGOHms_BGlTAC4KyHmureZmBNrjGdRLiNIQ==", __import__("datetime").datetime(2019, 12, 4, 21, 2, 31),
                     "89.160.20.112", 200, 392, "GET", "/index.html",
                     "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
                     "Chrome/78.0.3904.108 Safari/537.36", "browse")
    ipv6 = con.execute("select client_ip from raw.access_events where source_line = 4").fetchone()[0]
    assert ipv6 == "2a02:cf40:add:4002:91f2:a9b2:e09a:6fc6"
    assert con.execute("select count(*) from raw.access_events where status = 502").fetchone()[0] == 3
    _ledger_balances(con)


@needs_conformance
def test_weblog_conformance(tmp_path, con) -> None:
    root = tmp_path / "landing"
    shutil.copytree(CONFORMANCE / "weblogs", root / "weblogs")
    stats = _load(con, root, "weblogs")
    assert stats["rows_quarantined"] == 0 and stats["rows_loaded"] == stats["lines_read"] == 33
    rows = {r[0]: r[1:] for r in con.execute(
        "select source_file || ':' || source_line, client_ip, status, http_method, uri_path, host, action "
        "from raw.access_events").fetchall()}
    assert rows["weblogs/apache-test-access-basic.log:1"] == ("::1", 404, "GET", "/favicon.ico", None, "browse")
    assert rows["weblogs/apache-test-access-basic.log:3"] == ("::1", 408, None, None, None, "browse")  # empty request
    assert rows["weblogs/apache-test-access-basic.log:5"][0] == "monitoring-server"                   # host name client
    assert rows["weblogs/apache-test-access-basic.log:8"][0] == "10.0.0.2"                            # X-Forwarded-For
    assert rows["weblogs/apache-test-access-basic.log:7"][3:] == (
        "/A Beka G1 Howe/029_AND_30/15 reading elephants.mp4", None, "play")
    vhost = rows["weblogs/apache-test-access-vhost.log:1"]
    assert vhost[0] == "192.168.33.2" and vhost[4] == "vhost1.domaine.fr"
    # raw TLS bytes and an XSS probe in the request are valid log lines with status 400
    assert con.execute("select count(*) from raw.access_events where status = 400 and http_method is null").fetchone()[0] >= 3
    _ledger_balances(con)


@needs_conformance
def test_cloudtrail_conformance(tmp_path, con) -> None:
    root = tmp_path / "landing"
    shutil.copytree(CONFORMANCE / "cloudtrail", root / "cloudtrail")
    stats = _load(con, root, "cloudtrail")
    assert stats["rows_loaded"] == 4 and stats["rows_quarantined"] == 0
    rows = {r[0]: r[1:] for r in con.execute(
        "select actor_id, actor_role, action, outcome, event_name, identity_type from raw.audit_events").fetchall()}
    assert rows["JohnDoe"] == ("iamuser", "login", "success", "ConsoleLogin", "IAMUser")
    assert rows["JaneDoe"] == ("iamuser", "login", "denied", "ConsoleLogin", "IAMUser")  # failed console login
    assert rows["MySessionName"][:2] == ("RoleToBeAssumed", "login") and rows["MySessionName"][4] == "AssumedRole"
    assert rows["Alice"] == ("iamuser", "other", "success", "StartInstances", "IAMUser")
    # no credential recorded by CloudTrail reaches the table
    text = str(con.execute("select * from raw.audit_events").fetchall())
    assert "AKIAIOSFODNN7EXAMPLE" not in text and "EXAMPLE_KEY_ID" not in text


def test_cloudtrail_tampering_and_denials(tmp_path, con) -> None:
    import json
    recs = [{"eventID": f"e{i}", "eventTime": f"2026-10-29T10:0{i}:00Z", "eventName": name,
             "userIdentity": {"type": "IAMUser", "userName": "ops1"}, "sourceIPAddress": "198.51.100.1",
             **({"errorCode": "AccessDenied"} if denied else {})}
            for i, (name, denied) in enumerate([("StopLogging", False), ("DeleteTrail", True), ("GetSecretValue", True),
                                               ("GetSecretValue", True), ("ListBuckets", False)])]
    root = _landing(tmp_path, "cloudtrail", {"trail.json.gz": gzip.compress(json.dumps({"Records": recs}).encode())})
    assert _load(con, root, "cloudtrail")["rows_loaded"] == 5
    rows = con.execute("select audit_id, action, outcome from raw.audit_events order by audit_id").fetchall()
    assert rows == [("e0", "other", "success"), ("e1", "other", "denied"), ("e2", "query_pii", "denied"),
                    ("e3", "query_pii", "denied"), ("e4", "other", "success")]


def test_robustness_crlf_utf8_gzip_truncation_and_redelivery(tmp_path, con) -> None:
    good = b'127.0.0.1 - - [29/Oct/2026:10:00:00 +0000] "GET /watch/1.m4s HTTP/1.1" 206 100 "-" "UA"'
    lines = [good, b'10.1.2.3 - - [29/Oct/2026:10:00:01 +0000] "GET /login HTTP/1.1" 401 10 "-" "UA \xff\xfe"',
             b"this is not a log line", good.replace(b"10:00:00", b"10:00:02")]
    data = b"\r\n".join(lines)  # CRLF and no final newline
    root = _landing(tmp_path, "weblogs", {"a.log": data, "b-redelivered.log.gz": gzip.compress(data),
                                          "binary.log": bytes(range(256)) * 4 + b"\n" + b"\x00garbage\n"})
    stats = _load(con, root, "weblogs")
    ledger = {r[0]: r[1:] for r in con.execute(
        "select file, lines_read, rows_loaded, rows_quarantined, duplicates, file_error from raw.ingest_ledger").fetchall()}
    assert ledger["weblogs/a.log"] == (4, 2, 2, 0, None)
    assert ledger["weblogs/b-redelivered.log.gz"] == (4, 0, 2, 2, None)     # the same file delivered twice: loaded once
    assert ledger["weblogs/binary.log"][-1] == "not_weblogs_format"   # not the format at all: quarantined whole
    reasons = dict(con.execute("select line_no, reason from raw.quarantine_lines where file = 'weblogs/a.log'").fetchall())
    assert reasons == {2: "invalid_utf8", 3: "not_a_log_line"}
    assert stats["rows_loaded"] == 2
    _ledger_balances(con)


def test_weblog_query_string_is_split_from_the_path(tmp_path, con) -> None:
    lines = [b'203.0.113.9 - - [29/Oct/2026:10:00:00 +0000] "GET /search?q=kibana HTTP/1.1" 200 10 "-" "UA"',
             b'203.0.113.9 - - [29/Oct/2026:10:00:01 +0000] "GET /v/movie.mp4?token=abc HTTP/1.1" 206 10 "-" "UA"',
             b'203.0.113.9 - - [29/Oct/2026:10:00:02 +0000] "GET /index.html?next=/login HTTP/1.1" 200 10 "-" "UA"']
    root = _landing(tmp_path, "weblogs", {"q.log": b"\n".join(lines) + b"\n"})
    _load(con, root, "weblogs")
    rows = con.execute("select uri_path, uri_query, action from raw.access_events order by ts").fetchall()
    assert rows == [("/search", "q=kibana", "search"), ("/v/movie.mp4", "token=abc", "play"),
                    ("/index.html", "next=/login", "browse")]


def test_percent_escapes_that_are_not_utf8_stay_as_logged(tmp_path, con) -> None:
    # Seen in a real Apache log: a query in Windows-1251 escapes; decoding it would not be UTF-8.
    lines = [b'203.0.113.9 - - [29/Oct/2026:10:00:00 +0000] "GET /a/+%E8%F1%EF?q=%E4%E5 HTTP/1.1" 200 10 "-" "UA"',
             b'203.0.113.9 - - [29/Oct/2026:10:00:01 +0000] "GET /b%20c?q=caf%C3%A9 HTTP/1.1" 200 10 "-" "UA"']
    root = _landing(tmp_path, "weblogs", {"enc.log": b"\n".join(lines) + b"\n"})
    stats = _load(con, root, "weblogs")
    assert stats["rows_loaded"] == 2
    rows = con.execute("select uri_path, uri_query from raw.access_events order by ts").fetchall()
    assert rows == [("/a/+%E8%F1%EF", "q=%E4%E5"), ("/b c", "q=café")]


def test_cloudtrail_line_that_is_not_json_is_quarantined(tmp_path, con) -> None:
    good = (b'{"eventVersion":"1.08","eventID":"e-1","eventTime":"2026-10-29T10:00:00Z","eventName":"GetObject",'
            b'"sourceIPAddress":"203.0.113.9","userIdentity":{"type":"IAMUser","userName":"alice"}}')
    root = _landing(tmp_path, "cloudtrail", {"ct.jsonl": good + b"\nnot json\n[1, 2]\n"})
    stats = _load(con, root, "cloudtrail")
    assert (stats["rows_loaded"], stats["rows_quarantined"]) == (1, 2)
    reasons = sorted(r[0] for r in con.execute("select reason from raw.quarantine_lines").fetchall())
    assert reasons == ["invalid_json", "not_an_object"]
    _ledger_balances(con)


def test_cloudfront_fields_header_decides_column_order(tmp_path, con) -> None:
    header = b"#Version: 1.0\n#Fields: time date x-edge-request-id sc-status c-ip cs-uri-stem cs(User-Agent) sc-bytes\n"
    rows = b"10:00:00\t2026-10-29\treq-1\t200\t203.0.113.5\t/v/seg-1.ts\tMy%20Player%2F1.0\t5000\n"
    root = _landing(tmp_path, "cdn", {"E1.2026-10-29.gz": gzip.compress(header + rows), "notes.log": b"hello\nworld\n"})
    _load(con, root, "cdn")
    row = con.execute("select event_id, ts::varchar, status, client_ip, action, user_agent, bytes from raw.access_events").fetchone()
    assert row == ("req-1", "2026-10-29 10:00:00", 200, "203.0.113.5", "play", "My Player/1.0", 5000)
    errors = dict(con.execute("select file, file_error from raw.ingest_ledger").fetchall())
    assert errors["cdn/notes.log"] == "not_cloudfront:missing_fields_header"


def _policy_action(path: str | None) -> str:
    import re
    from urllib.parse import unquote

    formats_policy = load_policy().formats
    decoded = unquote(path or "")
    for rule in formats_policy["path_actions"]:
        if re.search(rule["pattern"], decoded):
            return rule["action"]
    return formats_policy["default_action"]


def test_action_of_every_line_shape_follows_the_policy(tmp_path, con) -> None:
    # The actions are looked up over the distinct paths of the common line shape; lines of other shapes
    # (vhost, escaped quotes, a trailing field) take the expression itself: both must follow the policy.
    paths = ["/login", "/Auth/Sign-In", "/v/1/seg-00042.ts", "/v/2/master.M3U8", "/search/", "/downloads/x",
             "/account", "/api/v1/profile", "/", "/browse/home", "/%73earch", "/login.php"]
    lines = []
    for i, p in enumerate(paths):
        lines.append(f'203.0.113.9 - - [29/Oct/2026:10:00:{i:02d} +0000] "GET {p}?a=b HTTP/1.1" 200 10 "-" "UA"')
        lines.append(f'www.example.com:443 203.0.113.9 - - [29/Oct/2026:10:01:{i:02d} +0000] "GET {p} HTTP/1.1" 200 10 '
                     f'"-" "UA \\"quoted\\""')
    root = _landing(tmp_path, "weblogs", {"shapes.log": ("\n".join(lines) + "\n").encode()})
    assert _load(con, root, "weblogs")["rows_loaded"] == 2 * len(paths)
    got = con.execute("select uri_path, action from raw.access_events order by ts").fetchall()
    assert [a for _, a in got] == [_policy_action(p) for _ in (0, 1) for p in paths]
    header = b"#Version: 1.0\n#Fields: date time x-edge-request-id sc-status c-ip cs-uri-stem\n"
    rows = "".join(f"2026-10-29\t10:00:{i:02d}\tr{i}\t200\t203.0.113.5\t{p}\n" for i, p in enumerate(paths)).encode()
    root = _landing(tmp_path / "cf", "cdn", {"E1.2026-10-29.log": header + rows + b"2026-10-29\t11:00:00\trx\t200\t203.0.113.5\t-\n"})
    _load(con, root, "cdn")
    got = con.execute("select event_id, action from raw.access_events where source = 'cdn' order by ts").fetchall()
    assert [a for _, a in got] == [_policy_action(p) for p in paths] + [_policy_action(None)]


def test_policy_without_path_patterns_gives_the_default_action(tmp_path, con) -> None:
    policy = load_policy()
    policy.formats["path_actions"] = []
    line = b'203.0.113.9 - - [29/Oct/2026:10:00:00 +0000] "GET /login HTTP/1.1" 200 10 "-" "UA"\n'
    root = _landing(tmp_path, "weblogs", {"a.log": line})
    formats.load(con, "weblogs", root, policy, BOUNDS[0], BOUNDS[1], BOUNDS)
    assert con.execute("select action from raw.access_events").fetchall() == [(policy.formats["default_action"],)]


def test_landing_day_span_in_utc_past_unreadable_files(tmp_path, con) -> None:
    """The day span `streamgov run` processes: UTC days of every readable line, whatever else is there (a
    corrupt gzip file, a file of no JSON at all, lines without a usable ts)."""
    root = _landing(tmp_path, "access", {
        "a.jsonl": b'{"event_id": "e1", "ts": "2026-10-28T23:30:00-03:00"}\n{"event_id": "e2", "ts": "2026-10-30T10:00:00Z"}\n',
        "b.jsonl.gz": b"\x1f\x8b\x08 not really gzip",
        "c.jsonl": b"not json at all\n{broken\n",
        "d.jsonl": b'{"event_id": "e3", "ts": "2026-11-02T01:00:00+02:00"}\n{"event_id": "e4", "ts": 17}\nnope\n',
    })
    (root / "audit").mkdir()
    (root / "audit" / "x.jsonl").write_bytes(b'{"audit_id": "a1", "ts": "2026-10-27T12:00:00Z"}\n')
    # 2026-10-28 23:30 -03:00 is 10-29 UTC; 11-02 01:00 +02:00 is 11-01 UTC; the audit trail starts on 10-27
    assert formats.landing_day_span(con, root) == (date(2026, 10, 27), date(2026, 11, 1))
    (root / "audit" / "x.jsonl").unlink()
    assert formats.landing_day_span(con, root) == (date(2026, 10, 29), date(2026, 11, 1))
