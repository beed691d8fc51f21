"""The PII leak guard, end to end: canary personal data in a released column stops the run before any
report is written, and no canary value reaches the Dagster instance (event log, metadata, checks)."""

import json

import dagster as dg
from dagster._serdes import serialize_value

from streamgov_dagster.lib.leakguard import luhn, scan_text
from streamgov_dagster_tests.conftest import run_pipeline
from streamgov_dagster_tests.landing import access, audit, write_landing

CANARY_EMAIL = "canary.person@example.org"
CANARY_PHONE = "+4915112345678"
CANARY_CARD = "4111111111111111"
CANARY_USER = "canary-user-7781"


def test_patterns() -> None:
    assert luhn(CANARY_CARD) and not luhn("4111111111111112")
    assert scan_text(f"x {CANARY_EMAIL} y", set()) == {"email": 1}
    assert scan_text("203.0.113.0/24 and 2001:db8:42::/48 are networks", set()) == {}
    assert scan_text("from 203.0.113.77", set()) == {"ipv4": 1}
    assert scan_text("62121bb583834890b92337dbb69972918eeaeb399ed6280b35f523ef2c908f80", set()) == {}
    assert scan_text(f"id {CANARY_USER}.", {CANARY_USER}) == {"raw_identifier": 1}


def test_the_prefilter_keeps_every_value_a_pattern_matches(con) -> None:
    from streamgov_dagster.lib.leakguard import CARD_CANDIDATE, PATTERNS, _prefilter

    samples = [CANARY_EMAIL, CANARY_PHONE, CANARY_CARD, f"x{CANARY_CARD}y", "203.0.113.77", "2001:db8::1", "fe80::1",
               "call +1 415 555 0100", "abc", "ev_8b35a52e74ad", "1234567890123", "62121bb583834890b92337dbb6997291"]
    for kinds in (list(PATTERNS), ["email", "phone"]):
        rows = con.execute(
            "select v, regexp_matches(v, ?) as kept, regexp_matches(v, ?) as card, "
            + ", ".join("regexp_matches(v, ?)" for _ in kinds) + " from unnest(?) t(v)",
            [_prefilter(kinds), CARD_CANDIDATE] + [PATTERNS[k] for k in kinds] + [samples]).fetchall()
        assert any(any(r[2:]) for r in rows)
        for v, kept, *matches in rows:
            assert kept or not any(matches), v


def test_row_id_columns_are_scanned_without_a_distinct_and_count_the_same(con) -> None:
    """An event id column is probed row by row (leakguard.ROW_IDS): the hits are those of the distinct scan,
    one per distinct value, for raw identifiers and patterns alike, and a clean column finds nothing."""
    from streamgov_dagster.lib.leakguard import PATTERNS, _scan_values

    con.execute("create temp table _raw_ids as select hash(v) as h from unnest(?) t(v)", [[CANARY_USER, "u-1"]])
    con.execute("create temp table _raw_id_values as select v from unnest(?) t(v)", [[CANARY_USER, "u-1"]])
    leaky = [f"ev_{i:012x}" for i in range(5000)] + [CANARY_USER, CANARY_USER, CANARY_EMAIL, CANARY_EMAIL,
                                                    f"ev-{CANARY_CARD}", "203.0.113.77", None]
    kinds = list(PATTERNS)
    for rows, expected in ((leaky, {"raw_identifier": 1, "email": 1, "ipv4": 1, "card_number": 1}),
                           (leaky[:5000], {})):
        sql = f"select unnest({'[' + ', '.join('NULL' if v is None else repr(v) for v in rows) + ']'}::varchar[]) as v"
        assert _scan_values(con, sql, kinds) == expected
        assert _scan_values(con, sql, kinds, distinct=False) == expected


def test_report_files_are_scanned_in_duckdb_as_scan_text_reads_them(con, tmp_path) -> None:
    """A report file's words are split in DuckDB (leakguard.scan_files_in_warehouse): a raw id alone, before a
    full stop or a colon, next to non-ASCII letters, is found as scan_text finds it; a longer word holding it
    is not that id; patterns and card numbers are counted per line, values never returned."""
    from streamgov_dagster.lib.leakguard import scan_files_in_warehouse

    con.execute("create schema if not exists raw")
    con.execute("create table raw.access_events (user_id varchar, session_id varchar, device_id varchar, email varchar, "
                "auth_token_id varchar, client_ip varchar, event_date date)")
    con.execute("insert into raw.access_events values (?, 's-000001', 'd-000001', ?, 't-000001', '198.51.100.7', "
                "date '2026-10-29')", [CANARY_USER, CANARY_EMAIL])
    lines = [f"user {CANARY_USER}.", f"Grüße {CANARY_USER}: ok", f"x{CANARY_USER}y is another word",
             f"mail {CANARY_EMAIL}", f"card {CANARY_CARD}", "clean line, 203.0.113.0/24", "s-000001",
             # digits inside a hex string are no card number; a card alone on its line is one
             f"hash deadbeef{CANARY_CARD}cafe", CANARY_CARD,
             # a CSV row (split on its commas first): the id between two commas is a word of its own
             f"7,{CANARY_USER},granted 2026-10-29 10:00:00,"]
    text = "\n".join(lines) + "\n"
    report = tmp_path / "report.md"
    report.write_text(text, encoding="utf-8")
    ids = {CANARY_USER, CANARY_EMAIL, "s-000001", "d-000001", "t-000001", "198.51.100.7"}
    expected = scan_text(text, ids)
    # distinct words: the id with its full stop, with its colon, alone (the CSV row), the email, the session id
    assert expected == {"raw_identifier": 5, "email": 1, "card_number": 2}
    assert scan_files_in_warehouse(con, [report]) == {f"report.md:{k}": n for k, n in expected.items()}
    report.write_text("nothing personal here: 2026-10-29, 42 events\n", encoding="utf-8")
    assert scan_files_in_warehouse(con, [report]) == {}


def test_ip_networks(con) -> None:
    """IPv4 to /24 (in SQL), IPv6 to /48 (Python's ipaddress), IPv4-mapped IPv6 as IPv4; not an address: null."""
    cases = {"203.0.113.77": "203.0.113.0/24", "2001:db8:42:1::5": "2001:db8:42::/48", " 2001:DB8::1 ": "2001:db8::/48",
             "::ffff:198.51.100.9": "198.51.100.0/24", "2804:d41:1aad:4129:cb72:7979:1769:8844": "2804:d41:1aad::/48",
             "::1": "::/48", "not-an-ip": None}
    got = dict(con.execute("select v, sg_ip_network(v) from unnest(?) t(v)", [list(cases)]).fetchall())
    assert got == cases


def test_canary_stops_the_run_before_reports_and_never_reaches_dagster(env, capfd) -> None:
    # content_id and ticket_id are released as they are (masking policy: keep): canaries planted there
    ev = [access("e1", "2026-10-29T10:00:00Z", user_id=CANARY_USER, content_id=CANARY_EMAIL)]
    au = [audit("a1", "2026-10-29T10:00:00Z", ticket_id=f"call {CANARY_PHONE} card {CANARY_CARD}")]
    write_landing(env["landing"], access_events=ev, audit_events=au)
    instance = dg.DagsterInstance.ephemeral()
    result = run_pipeline("2026-10-29", "2026-10-29", instance=instance)
    assert not result.success
    evaluations = {e.event_specific_data.check_name: e.event_specific_data for e in result.all_events
                   if e.event_type_value == "ASSET_CHECK_EVALUATION"}
    assert not evaluations["pii_leak_scan_clean"].passed
    assert not (env["reports"] / "compliance_report.html").exists()
    # the instance holds counts and locations, never the values
    stored = json.dumps([serialize_value(entry) for entry in instance.all_logs(result.run_id)])
    assert len(stored) > 10_000  # the whole run's event log, with metadata and check results
    # compute logs are the steps' stdout and stderr: what the run printed, Dagster's own log lines included
    captured = capfd.readouterr()
    printed = captured.out + captured.err
    assert "pii_leak_scan" in printed
    for canary in (CANARY_EMAIL, CANARY_PHONE, CANARY_CARD, CANARY_USER):
        assert canary not in stored, canary
        assert canary not in printed, canary
    meta = {k: v.value for k, v in evaluations["pii_leak_scan_clean"].metadata.items()}
    assert meta["hits"] >= 3


def test_key_rotation_changes_every_pseudonym_in_one_run(env, monkeypatch) -> None:
    import duckdb

    from streamgov_dagster.lib.pseudonym import pseudonym

    ev = [access(f"f{i}", f"2026-10-29T10:0{i}:00Z", user_id="u-rot", action="login", status=401) for i in range(5)]
    ev += [access("p1", "2026-10-29T11:00:00Z", user_id="u-rot", purpose="analytics", session_id="s-rot")]
    write_landing(env["landing"], access_events=ev, consent=[("c1", "u-rot", "analytics", "granted", "2026-10-01T00:00:00Z", None)])

    def snapshot() -> dict[str, set]:
        con = duckdb.connect(str(env["warehouse"]), read_only=True)
        try:
            return {
                "masked": {r for r in con.execute("select user_pseudonym, session_pseudonym, pseudonym_key_id "
                                                  "from masked.access_events").fetchall()},
                "violations": {r[0] for r in con.execute("select subject from governance.violations").fetchall()},
                "consent": {r[0] for r in con.execute("select user_pseudonym from consent.consent_state").fetchall()},
            }
        finally:
            con.close()

    assert run_pipeline("2026-10-29", "2026-10-29").success
    first = snapshot()
    monkeypatch.setenv("STREAMGOV_PSEUDONYM_KEY", "rotated-key-2027")
    monkeypatch.setenv("STREAMGOV_PSEUDONYM_KEY_ID", "k-2027")
    assert run_pipeline("2026-10-29", "2026-10-29").success
    second = snapshot()
    new_user = pseudonym("rotated-key-2027", "u-rot")
    assert {r[0] for r in second["masked"]} == {new_user}
    assert {r[2] for r in second["masked"]} == {"k-2027"}
    assert second["violations"] == {new_user} and second["consent"] == {new_user}
    old = {v for row in first["masked"] for v in row[:2] if v} | first["violations"] | first["consent"]
    new = {v for row in second["masked"] for v in row[:2] if v} | second["violations"] | second["consent"]
    assert old and not (old & new)


def test_masking_policy_methods_and_lineage(tmp_path, con) -> None:
    from datetime import date

    from streamgov_dagster.lib import ingest, masking
    from streamgov_dagster.lib.policy import PACKAGED_DIR, load_policy

    policy_dir = tmp_path / "policy"
    policy_dir.mkdir()
    text = (PACKAGED_DIR / "masking.yaml").read_text()
    text = text.replace("    ts: keep\n    event_date: keep\n    user_id:", "    ts: {method: generalize, to: hour, as: ts_hour}\n"
                        "    event_date: keep\n    user_id:", 1)
    text = text.replace("    content_id: keep", "    content_id: redact", 1)
    (policy_dir / "masking.yaml").write_text(text)
    policy = load_policy(policy_dir)
    root = write_landing(tmp_path / "l", access_events=[access("e1", "2026-10-29T10:42:17Z", content_id="movie-9")])
    ingest.load(con, ingest.ACCESS, root, ingest.list_files(root / "access", ("*.jsonl",)),
                date(2026, 10, 29), date(2026, 10, 29), (date(2000, 1, 1), date(2030, 1, 1)))
    masking.build(con, policy, "access_events", date(2026, 10, 29), date(2026, 10, 29), "k1")
    row = con.execute("select ts_hour::varchar, content_id from masked.access_events").fetchone()
    assert row == ("2026-10-29 10:00:00", "[redacted]")
    lineage = {c.name: c.source for c in masking.plan(policy, "access_events")}
    assert lineage["ts_hour"] == "ts" and lineage["user_pseudonym"] == "user_id" and "email" not in lineage


def test_retention_report_and_purge(tmp_path, con) -> None:
    from datetime import date

    from streamgov_dagster.lib import ingest, retention
    from streamgov_dagster.lib.policy import load_policy

    root = write_landing(tmp_path / "l", access_events=[access("old", "2026-09-01T10:00:00Z"),
                                                        access("new", "2026-11-20T10:00:00Z")])
    ingest.load(con, ingest.ACCESS, root, ingest.list_files(root / "access", ("*.jsonl",)),
                date(2026, 9, 1), date(2026, 11, 27), (date(2000, 1, 1), date(2030, 1, 1)))
    policy = load_policy().retention
    today = date(2026, 11, 27)
    assert retention.build_report(con, policy, today) == len(policy)
    row = con.execute("select oldest_day, rows, rows_past_retention from reports.retention_status "
                      "where dataset = 'raw.access_events'").fetchone()
    assert row == (date(2026, 9, 1), 2, 1)
    assert retention.purge(con, policy, today)["raw.access_events"] == 1
    assert [r[0] for r in con.execute("select event_id from raw.access_events").fetchall()] == ["new"]


def test_small_cells_are_suppressed(env) -> None:
    import duckdb

    ev = [access(f"e{i}", "2026-10-29T10:00:00Z", user_id=f"u{i}", client_ip=f"203.0.113.{i}") for i in range(3)]
    consent = [(f"c{i}", f"u{i}", "analytics", "granted", "2026-10-01T00:00:00Z", None) for i in range(7)]
    write_landing(env["landing"], access_events=ev, consent=consent
                  + [("d1", "u1", "advertising", "granted", "2026-10-01T00:00:00Z", None)])
    result = run_pipeline("2026-10-29", "2026-10-29")
    assert result.success
    con = duckdb.connect(str(env["warehouse"]), read_only=True)
    try:
        kpis = {r[0]: r[1:] for r in con.execute(
            "select purpose, users_with_decision, opt_in_rate, suppressed from reports.consent_kpis").fetchall()}
        summary = con.execute("select authenticated_users, suppressed from reports.access_audit_summary").fetchall()
    finally:
        con.close()
    assert kpis["analytics"] == (7, 1.0, False)          # 7 people: shown
    assert kpis["advertising"] == (None, None, True)     # 1 person: suppressed
    assert summary == [(None, True)]                     # 3 users that day: suppressed
    check = [e.event_specific_data for e in result.all_events if e.event_type_value == "ASSET_CHECK_EVALUATION"
             and e.event_specific_data.check_name == "small_cells_suppressed"][0]
    assert check.passed


def test_a_run_of_some_days_scans_those_days_and_a_full_scan_comes_weekly(env) -> None:
    import duckdb

    write_landing(env["landing"], access_events=[access("e1", "2026-10-29T10:00:00Z", content_id="c-1"),
                                                 access("e2", "2026-10-30T10:00:00Z", content_id="c-2")])
    instance = dg.DagsterInstance.ephemeral()

    verified: list[str] = []

    def run(day: str) -> tuple[bool, str, bool]:
        result = run_pipeline(day, "2026-10-30", instance)
        scan = [e for e in result.get_asset_materialization_events()
                if e.asset_key == dg.AssetKey(["governance", "pii_leak_scan"])][-1].materialization.metadata
        verified.append(scan["verified_by_masked_checks"].value)
        clean = {e.event_specific_data.check_name: e.event_specific_data.passed for e in result.all_events
                 if e.event_type_value == "ASSET_CHECK_EVALUATION"}["pii_leak_scan_clean"]
        return result.success, scan["scope"].value, clean

    def sql(statement: str, params: list | None = None) -> None:
        con = duckdb.connect(str(env["warehouse"]))
        try:
            con.execute(statement, params or [])
        finally:
            con.close()

    assert run("2026-10-29") == (True, "full", True)  # no full scan yet
    # the masked checks of the run passed and found every text column clear (no raw id, nothing the scan's
    # prefilter keeps): the rows they read are not read again
    assert verified[-1] == ("masked.access_events: 15 columns, days 2026-10-29..2026-10-30; "
                            "masked.audit_events: 12 columns, days 2026-10-29..2026-10-30")
    # a released value of 10-29 becomes an email address (as a faulty transformation would make it)
    sql("update masked.access_events set content_id = ? where event_date = '2026-10-29'", [CANARY_EMAIL])
    success, scope, clean = run("2026-10-30")  # the run of 10-30 scans that day of the masked datasets
    assert success and clean and scope.startswith("days 2026-10-30..2026-10-30")
    # once the last full scan is a week old, the next run scans everything, finds it and stops
    sql("update governance.pii_leak_full_scan set scanned_at = scanned_at - interval 8 day")
    assert run("2026-10-30") == (False, "full", False)
    # and every run scans everything while the last scan had hits
    sql("update masked.access_events set content_id = 'c-1' where event_date = '2026-10-29'")
    assert run("2026-10-30") == (True, "full", True)
    assert run("2026-10-30")[1].startswith("days")
