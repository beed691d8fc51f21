"""Data-subject requests end to end: an access export, an erasure that reaches every zone (and the bytes
of the warehouse file), a consent log that still verifies, re-delivered files that do not bring the
user back, and deadlines with their alerts."""

import csv
import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import dagster as dg
import duckdb
from dagster._serdes import serialize_value

from streamgov_dagster.lib import alerts, dsar
from streamgov_dagster.lib.consentlog import verify
from streamgov_dagster.lib.pseudonym import pseudonym
from streamgov_dagster_tests.conftest import TEST_KEY, run_pipeline
from streamgov_dagster_tests.landing import access, audit, write_landing

GONE = "u-erase-42"
GONE_EMAIL = "Erase.Me@example.org"
KEPT = "u-keep-7"
DAY = "2026-10-29"


def _landing(env) -> None:
    ev = [access(f"g{i}", f"{DAY}T10:0{i}:00Z", user_id=GONE, email=GONE_EMAIL, session_id="s-gone",
                 purpose="analytics", client_ip="203.0.113.9") for i in range(3)]
    # a failed-login burst of the erased user: a violation (and an alert) that must disappear with them
    ev += [access(f"f{i}", f"{DAY}T11:0{i}:00Z", user_id=GONE, action="login", status=401) for i in range(5)]
    ev += [access(f"k{i}", f"{DAY}T12:0{i}:00Z", user_id=KEPT, purpose="analytics") for i in range(4)]
    au = [audit("a1", f"{DAY}T13:00:00Z", subject_user_id=GONE, ticket_id="SUP-9"),
          audit("a2", f"{DAY}T13:05:00Z", subject_user_id=KEPT)]
    # a malformed line naming the erased user sits in the quarantine with its text
    bad = [json.dumps({"event_id": "bad1", "ts": "not-a-time", "user_id": GONE, "client_ip": "203.0.113.9",
                       "action": "play", "status": 200})]
    consent = [("c1", GONE, "analytics", "granted", "2026-10-01T00:00:00Z", None),
               ("c2", KEPT, "analytics", "granted", "2026-10-01T00:00:00Z", None),
               ("c3", GONE, "advertising", "denied", "2026-10-02T00:00:00Z", None)]
    write_landing(env["landing"], access_events=ev, audit_events=au, consent=consent, raw_access_lines=bad)


def _requests(env, *rows: tuple[str, str, str, str]) -> None:
    folder = env["landing"] / "dsar"
    folder.mkdir(exist_ok=True)
    with (folder / "requests.jsonl").open("a", encoding="utf-8") as fh:
        for rid, user, kind, received in rows:
            fh.write(json.dumps({"request_id": rid, "user_id": user, "type": kind, "received_at": received}) + "\n")


def _read(env, sql: str, params: list | None = None) -> list[tuple]:
    con = duckdb.connect(str(env["warehouse"]), read_only=True)
    try:
        return con.execute(sql, params or []).fetchall()
    finally:
        con.close()


def _verification_metadata(result) -> dict[str, object]:
    events = [e for e in result.get_asset_materialization_events()
              if e.asset_key == dg.AssetKey(["governance", "erasure_verification"])]
    return {k: v.value for k, v in events[-1].materialization.metadata.items()}


def _age_pending_erasures(env, days: int) -> None:
    """As if the erasures awaiting the rewrite of the file had been waiting `days` longer."""
    con = duckdb.connect(str(env["warehouse"]))
    try:
        con.execute("update raw.erasure_pending set pending_since = pending_since - to_days(?)", [days])
    finally:
        con.close()


def _everything_naming(env, needles: set[str], file_bytes: bool = True) -> dict[str, int]:
    """Every table of every zone, every report file, the alert file, the warehouse bytes (file_bytes)."""
    hits: dict[str, int] = {}
    con = duckdb.connect(str(env["warehouse"]), read_only=True)
    try:
        cols = con.execute("select table_schema || '.' || table_name, column_name from information_schema.columns "
                           "where data_type in ('VARCHAR', 'VARCHAR[]')").fetchall()
        for table, column in cols:
            n = con.execute(f"select count(*) from {table} where list_has_any(?, "
                            f"string_split(regexp_replace({column}::varchar, '[^A-Za-z0-9@._-]+', ' ', 'g'), ' '))",
                            [sorted(needles)]).fetchone()[0]
            if n:
                hits[f"{table}.{column}"] = n
    finally:
        con.close()
    files = [p for p in env["reports"].rglob("*") if p.is_file()] + [p for p in [env["alerts"]] if p.exists()]
    files += [env["warehouse"]] if file_bytes else []
    for path in files:
        data = path.read_bytes()
        for needle in needles:
            if needle.encode() in data:
                hits[f"file:{path.name}"] = hits.get(f"file:{path.name}", 0) + 1
    return hits


def test_access_export_then_erasure_everywhere(env) -> None:
    _landing(env)
    instance = dg.DagsterInstance.ephemeral()
    assert run_pipeline(DAY, DAY, instance).success
    gone_pseudonym = pseudonym(TEST_KEY, GONE)
    assert _read(env, f"select count(*) from governance.violations where subject = '{gone_pseudonym}'")[0][0] == 1
    con = duckdb.connect(str(env["warehouse"]), read_only=True)
    try:  # deliver the violation alerts, as the sensor (or `streamgov run`) does
        assert alerts.send(env["alerts"], alerts.violation_payloads(con, "high")) == 1
    finally:
        con.close()
    alerts_before = env["alerts"].read_text(encoding="utf-8")

    now = datetime.now(timezone.utc)
    _requests(env, ("REQ-ACC-1", KEPT, "access", (now - timedelta(days=2)).strftime("%Y-%m-%dT%H:%M:%SZ")),
              ("REQ-ERA-1", GONE, "erasure", (now - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%S+02:00")))
    result = run_pipeline(DAY, DAY, instance)
    assert result.success
    gone = {GONE, GONE_EMAIL, gone_pseudonym, pseudonym(TEST_KEY, GONE_EMAIL, email=True), "s-gone"}
    gone_session = pseudonym(TEST_KEY, "s-gone")

    # The user's rows are gone at once and the run found them in no table, report or alert. The rewrite of
    # the file that purges its deleted bytes is batched (erasure_compaction_delay_days, 7): until then only
    # the raw zone's list of pending tokens names the user, and the erasure is answered, not yet verified.
    waiting = _everything_naming(env, gone | {gone_session}, file_bytes=False)
    assert set(waiting) == {"raw.erasure_pending.token"}
    # the raw-identifier index (hashes) forgot the user's id, email and session; another user's id stays
    hashed = "select count(*) from raw.identifier_index where h = hash(?::varchar)"
    assert [_read(env, hashed, [v])[0][0] for v in (GONE, GONE_EMAIL, "s-gone")] == [0, 0, 0]
    assert _read(env, hashed, [KEPT])[0][0] > 0
    assert _verification_metadata(result)["erasures_awaiting_compaction"] == 1
    assert not _verification_metadata(result)["warehouse_compacted"]
    assert _read(env, "select count(*) from governance.dsar_log where verified_at is not null")[0][0] == 0
    _age_pending_erasures(env, days=6)  # not yet due
    assert run_pipeline(DAY, DAY, instance).success
    assert _read(env, "select count(*) from raw.erasure_pending")[0][0] > 0
    _age_pending_erasures(env, days=2)  # waited 8 days: the next run rewrites the file
    purge = run_pipeline(DAY, DAY, instance)
    assert purge.success and _verification_metadata(purge)["warehouse_compacted"]

    # access: the user's events, consent history and the staff who touched their data
    folder = env["reports"] / "dsar" / "REQ-ACC-1"
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["files"] == {"access_events.csv": 4, "consent_history.csv": 1, "staff_access.csv": 1}
    staff = list(csv.DictReader((folder / "staff_access.csv").open()))
    assert [(r["actor_id"], r["action"], r["ticket_id"]) for r in staff] == [("emp_1", "view_profile", "SUP-1")]
    assert {r["user_id"] for r in csv.DictReader((folder / "access_events.csv").open())} == {KEPT}

    # erasure: nothing names the user anywhere, raw zone and warehouse bytes included
    assert _everything_naming(env, gone | {gone_session}) == {}
    assert gone_pseudonym in alerts_before and "[erased]" in env["alerts"].read_text(encoding="utf-8")
    # ... while the other user and the staff record stay (the audit row loses only its subject)
    assert _read(env, "select count(*) from raw.access_events")[0][0] == 4
    assert _read(env, "select audit_id, subject_user_id from raw.audit_events order by 1") == [("a1", None), ("a2", KEPT)]
    assert _read(env, "select count(*) from governance.violations")[0][0] == 0
    # counts still balance: the erased rows are quarantined as erased_subject, without content
    assert _read(env, "select count(*) from governance.ingestion_summary where not balanced")[0][0] == 0
    assert _read(env, "select count(*), count(raw_line) from raw.quarantine where reason = 'erased_subject' "
                      "and source = 'access'")[0] == (8, 0)
    # the consent log keeps tombstones and one erasure entry; the chain verifies
    con = duckdb.connect(str(env["warehouse"]), read_only=True)
    try:
        assert verify(con).intact
        log = con.execute("select erased, change, user_pseudonym from consent.consent_log order by seq").fetchall()
    finally:
        con.close()
    assert sum(1 for e, _, _ in log if e) == 2 and [c for _, c, _ in log].count("erasure") == 1
    # the register names nobody: a hash under the separate erasure key, not the id and not the pseudonym
    register = _read(env, "select subject_hash, request_id from governance.erasure_register")
    assert len(register) == 1 and register[0][0] not in gone and register[0][1] == "REQ-ERA-1"
    status = dict(_read(env, "select request_id, status from reports.dsar_status"))
    assert status == {"REQ-ACC-1": "answered", "REQ-ERA-1": "answered"}
    assert _read(env, "select count(*) from governance.dsar_log where verified_at is not null")[0][0] == 1
    evaluations = {e.event_specific_data.check_name: e.event_specific_data.passed for e in result.all_events
                   if e.event_type_value == "ASSET_CHECK_EVALUATION"}
    assert evaluations["erased_subjects_absent"] and evaluations["dsar_none_overdue"]
    # the Dagster instance never saw the ids
    stored = json.dumps([serialize_value(entry) for entry in instance.all_logs(result.run_id)])
    assert GONE not in stored and GONE_EMAIL not in stored and gone_pseudonym not in stored

    # the same landing files (and the consent database) delivered again do not bring the user back
    assert run_pipeline(DAY, DAY, instance).success
    assert _everything_naming(env, gone | {gone_session}) == {}
    assert _read(env, "select count(*) from raw.access_events")[0][0] == 4
    assert _read(env, "select count(*) from raw.consent_events")[0][0] == 1
    assert _read(env, "select count(*) from governance.ingestion_summary where not balanced")[0][0] == 0
    assert _read(env, "select count(*) from governance.erasure_register")[0][0] == 1

    # a restored backup brings a row of the erased user back into the raw zone: the next run erases it again
    con = duckdb.connect(str(env["warehouse"]))
    con.execute("insert into raw.access_events (event_id, ts, user_id, client_ip, action, status, event_date, source, "
                "source_file, source_line) values ('restored-1', '2026-10-20 09:00:00', ?, '203.0.113.9', 'play', 200, "
                "'2026-10-20', 'access', 'access/old.jsonl', 1)",
                [GONE])
    con.close()
    assert run_pipeline(DAY, DAY, instance).success  # the restored day is not reloaded: the register finds it
    assert set(_everything_naming(env, gone | {gone_session}, file_bytes=False)) == {"raw.erasure_pending.token"}
    _age_pending_erasures(env, days=8)
    assert run_pipeline(DAY, DAY, instance).success
    assert _everything_naming(env, gone | {gone_session}) == {}
    assert _read(env, "select count(*) from governance.dsar_log where type = 'erasure' and verified_at is null")[0][0] == 0
    assert _read(env, "select count(*) from raw.erasure_pending")[0][0] == 0


def test_deadlines_status_and_alerts(con) -> None:
    dsar.ensure_tables(con)
    now = datetime.now(timezone.utc).replace(tzinfo=None)
    rows = [("R-fresh", "access", now - timedelta(days=2)), ("R-near", "access", now - timedelta(days=26)),
            ("R-over", "erasure", now - timedelta(days=40)), ("R-done", "access", now - timedelta(days=40)),
            ("R-late", "access", now - timedelta(days=45))]
    for rid, kind, received in rows:
        con.execute("insert into raw.dsar_requests values (?, ?, 'u', ?, ?::timestamp + interval 1 month, 'f', 1, ?)",
                    [rid, kind, received, received, now])
    con.execute("insert into governance.dsar_log values ('R-done', 'access', null, null, ?, 0, '{}', null), "
                "('R-late', 'access', null, null, ?, 0, '{}', null)", [now - timedelta(days=20), now])
    counts = dsar.build_status(con)
    assert counts == {"open": 2, "overdue": 1, "answered": 1, "answered_late": 1}
    status = dict(con.execute("select request_id, status from reports.dsar_status").fetchall())
    assert status["R-near"] == "open" and status["R-over"] == "overdue" and status["R-late"] == "answered_late"
    alerts = {p["alert_id"]: p for p in dsar.deadline_payloads(con, 7)}
    assert set(alerts) == {"dsar-due:R-near", "dsar-overdue:R-over"}
    assert 0 <= alerts["dsar-due:R-near"]["days_to_deadline"] <= 7 and "user_id" not in alerts["dsar-due:R-near"]
    assert dsar.deadline_payloads(con, 3) == [alerts["dsar-overdue:R-over"]]


def test_intake_quarantines_bad_requests_and_keeps_one_per_id(con, tmp_path: Path) -> None:
    folder = tmp_path / "landing" / "dsar"
    folder.mkdir(parents=True)
    lines = [
        {"request_id": "R1", "user_id": "u1", "type": "access", "received_at": "2026-11-01T10:00:00Z"},
        {"request_id": "R1", "user_id": "u1", "type": "access", "received_at": "2026-11-01T10:00:00Z"},
        {"request_id": "R2", "user_id": "u2", "type": "rectify", "received_at": "2026-11-01T10:00:00Z"},
        {"request_id": "R3", "user_id": "u3", "type": "erasure", "received_at": "2026-11-01 10:00:00"},
        {"request_id": "R4", "type": "erasure", "received_at": "2026-11-01T10:00:00Z"},
    ]
    (folder / "a.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines) + "{not json\n", encoding="utf-8")
    stats = dsar.load_requests(con, tmp_path / "landing")
    assert (stats["lines_read"], stats["requests_valid"], stats["rows_quarantined"], stats["duplicates"]) == (6, 1, 4, 1)
    reasons = sorted(r[0] for r in con.execute("select reason from raw.quarantine_lines where source = 'dsar'").fetchall())
    assert reasons == ["invalid_json", "invalid_received_at", "invalid_type", "missing_user_id"]
    assert con.execute("select request_id, deadline from raw.dsar_requests").fetchall() == [
        ("R1", datetime(2026, 12, 1, 10, 0))]
    # loading again changes nothing
    dsar.load_requests(con, tmp_path / "landing")
    assert con.execute("select count(*) from raw.dsar_requests").fetchone()[0] == 1
    # once u2 is erased, its malformed request line stays quarantined without its text
    con.execute("insert into governance.erasure_register values (sg_erasure_hash('u2'), 'R9', now()::timestamp)")
    dsar.load_requests(con, tmp_path / "landing")
    texts = dict(con.execute("select reason, raw_line from raw.quarantine_lines where source = 'dsar'").fetchall())
    assert texts["invalid_type"] is None and '"u3"' in texts["invalid_received_at"]


def test_compaction_refuses_a_file_in_use(tmp_path: Path) -> None:
    db = tmp_path / "w.duckdb"
    holder = duckdb.connect(str(db))
    holder.execute("create table t as select 'secret-token-xyz' as v")
    holder.execute("delete from t")
    holder.execute("checkpoint")
    assert dsar.compact(db) is not None  # another holder: nothing swapped
    holder.close()
    assert dsar.compact(db) is None
    assert dsar.file_hits(db, {"secret-token-xyz"}) == 0
    check = duckdb.connect(str(db), read_only=True)
    assert check.execute("select count(*) from t").fetchone()[0] == 0
    # the rewritten file is in the warehouse's storage format, whatever format the old one had
    tags = check.execute("select tags from duckdb_databases() where database_name = current_database()").fetchone()[0]
    assert tags["storage_version"].startswith("v1.5.0"), tags
    check.close()


def test_deadline_sensor_alerts_once(tmp_path: Path) -> None:
    from dagster_duckdb import DuckDBResource

    from streamgov_dagster.defs.alerting.sensors import dsar_deadline_sensor
    from streamgov_dagster.defs.resources import AlertSinkResource, GovernanceConfig
    from streamgov_dagster.lib.warehouse import prepare

    db = tmp_path / "w.duckdb"
    con = prepare(duckdb.connect(str(db)))
    dsar.ensure_tables(con)
    received = datetime.now(timezone.utc).replace(tzinfo=None) - timedelta(days=27)
    con.execute("insert into raw.dsar_requests values ('R-near', 'erasure', 'u-secret-9', ?, "
                "?::timestamp + interval 1 month, 'f', 1, ?)", [received, received, received])
    dsar.build_status(con)
    con.close()
    alerts_path = tmp_path / "alerts.jsonl"
    resources = {"duckdb": DuckDBResource(database=str(db)),
                 "governance": GovernanceConfig(landing_dir=str(tmp_path), reports_dir=str(tmp_path / "r")),
                 "alert_sink": AlertSinkResource(path=str(alerts_path))}
    instance = dg.DagsterInstance.ephemeral()
    dsar_deadline_sensor(dg.build_sensor_context(instance=instance, resources=resources))
    dsar_deadline_sensor(dg.build_sensor_context(instance=instance, resources=resources))
    sent = [json.loads(line) for line in alerts_path.read_text().splitlines()]
    assert [a["alert_id"] for a in sent] == ["dsar-due:R-near"]
    assert sent[0]["request_type"] == "erasure" and "u-secret-9" not in alerts_path.read_text()


def test_cli_submit_run_and_status(env, capsys) -> None:
    from streamgov_dagster.cli import main

    _landing(env)
    assert main(["dsar", "submit", "--type", "access", "--user-id", KEPT, "--request-id", "CLI-1"]) == 0
    assert main(["run"]) == 0
    out = capsys.readouterr().out
    assert "dsar_answered        1" in out and "1 access-request export(s)" in out
    assert main(["dsar", "status"]) == 0
    status = capsys.readouterr().out
    assert "CLI-1" in status and "answered" in status and KEPT not in status
    assert (env["reports"] / "dsar" / "CLI-1" / "manifest.json").exists()


def test_streamgov_run_holds_the_file_open_and_lets_it_go_for_the_compaction(env, capsys) -> None:
    """`streamgov run` keeps the warehouse file open between steps (defs.resources.held_open); the erasure
    compaction, which locks the file from a child process, makes it let go, and the steps after it work on
    the rewritten file: the erasure is verified and the file holds no byte of the user."""
    from streamgov_dagster.cli import main
    from streamgov_dagster.lib import warehouse

    _landing(env)
    now = datetime.now(timezone.utc)
    _requests(env, ("REQ-ERA-2", GONE, "erasure", (now - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")))
    assert main(["run"]) == 0
    assert _read(env, "select count(*) from raw.erasure_pending")[0][0] > 0  # awaiting the rewrite
    _age_pending_erasures(env, days=8)
    assert main(["run"]) == 0
    assert not warehouse._HELD  # let go when the run ended
    assert _read(env, "select count(*) from raw.erasure_pending")[0][0] == 0
    assert _read(env, "select count(*) from governance.dsar_log where type = 'erasure' and verified_at is not null")[0][0] == 1
    assert _everything_naming(env, {GONE, GONE_EMAIL, "s-gone"}) == {}
    capsys.readouterr()


def test_a_run_that_cannot_hold_the_file_goes_on_without_it(tmp_path) -> None:
    """held_open: when the file cannot be opened (another process has it), the run is not stopped there; its
    steps meet the lock themselves, as a run did before it held the file."""
    from contextlib import contextmanager

    import duckdb as duckdb_lib

    from streamgov_dagster.defs.resources import WarehouseResource, held_open
    from streamgov_dagster.lib import warehouse

    class Locked(WarehouseResource):
        @contextmanager
        def get_connection(self):
            raise duckdb_lib.IOException("Could not set lock on file")
            yield

    with held_open(Locked(database=str(tmp_path / "w.duckdb"))):
        assert not warehouse._HELD
    db = WarehouseResource(database=str(tmp_path / "w.duckdb"), connection_config=dict(warehouse.STORAGE_CONFIG))
    with held_open(db):
        assert len(warehouse._HELD) == 1
        with db.get_connection() as con:  # a step's connection shares the held instance
            con.execute("create table t as select 1 as x")
    assert not warehouse._HELD
    with db.get_connection() as con:
        assert con.execute("select x from t").fetchall() == [(1,)]


def test_erasure_verification_reads_the_report_files_for_every_token(con, tmp_path) -> None:
    """An erased user's id, email and pseudonym, and the pseudonym's 12-character report prefix, are each counted
    once per file that holds them (the whole pseudonym is looked for only where its prefix is); values never
    leave the counts."""
    dsar.ensure_tables(con)
    gone_pseudonym = pseudonym(GONE, TEST_KEY)
    con.execute("insert into raw.erasure_pending values ('R1', 'user_id', ?, now()::timestamp), "
                "('R1', 'email', ?, now()::timestamp), ('R1', 'pseudonym', ?, now()::timestamp)",
                [GONE, GONE_EMAIL, gone_pseudonym])
    reports = tmp_path / "reports"
    reports.mkdir()
    files = {"prefix.md": f"subject {gone_pseudonym[:12]}… 3 violations\n",
             "whole.csv": f"seq,user_pseudonym\n1,{gone_pseudonym}\n",
             "mixed.csv": f"{GONE_EMAIL},{KEPT}\nuser {GONE}\n",
             "clean.md": f"{KEPT} {pseudonym(KEPT, TEST_KEY)}\n"}
    for name, text in files.items():
        (reports / name).write_text(text, encoding="utf-8")
    alerts_file = tmp_path / "alerts.jsonl"
    alerts_file.write_text(json.dumps({"subject": gone_pseudonym[:12]}) + "\n", encoding="utf-8")
    hits, pending = dsar.verify_erasures(con, reports, alerts_file, purge=True)
    assert hits == {"file:prefix.md": 1, "file:whole.csv": 2, "file:mixed.csv": 2, "file:alerts.jsonl": 1}
    assert len(pending) == 3 and con.execute("select count(*) from raw.erasure_pending").fetchone()[0] == 3
    # once the files are clean, the erasure is verified and its tokens leave the warehouse
    for name in ("prefix.md", "whole.csv", "mixed.csv"):
        (reports / name).unlink()
    alerts_file.write_text("", encoding="utf-8")
    assert dsar.verify_erasures(con, reports, alerts_file, purge=True)[0] == {}
    assert con.execute("select count(*) from raw.erasure_pending").fetchone()[0] == 0


def test_erasure_of_derived_rows_reads_every_text_column(con) -> None:
    """The derived tables lose every row naming a token of the user in any text column (one statement per
    column), a row counted once per table; the audit trail's subject is redacted, not deleted."""
    token = pseudonym(GONE, TEST_KEY)
    other = pseudonym(KEPT, TEST_KEY)
    con.execute("create schema if not exists masked")
    con.execute("create table masked.access_events (event_id varchar, user_pseudonym varchar, session_pseudonym varchar, "
                "device_pseudonym varchar, token_pseudonym varchar, country varchar)")
    con.execute("insert into masked.access_events values ('e1', ?, ?, null, null, 'DE'), ('e2', ?, null, null, ?, 'FR'), "
                "('e3', ?, ?, ?, null, 'US'), ('e4', ?, null, null, null, ?), ('e5', null, null, null, null, 'ES')",
                [token, other, other, token, token, token, token, other, GONE])
    con.execute("create table masked.audit_events (audit_id varchar, actor_pseudonym varchar, subject_pseudonym varchar)")
    con.execute("insert into masked.audit_events values ('a1', ?, ?), ('a2', ?, ?)", [other, token, token, other])
    con.execute("create temp table _tokens as select * from (values ('user_id', ?), ('pseudonym', ?)) t(kind, token)",
                [GONE, token])
    counts = dsar._erase_derived(con)
    # e1 by its user, e2 by its token pseudonym, e3 by three columns (once), e4 by its country column
    assert counts == {"masked.access_events": 4, "masked.audit_events": 2}
    assert con.execute("select event_id from masked.access_events").fetchall() == [("e5",)]
    assert con.execute("select audit_id, subject_pseudonym from masked.audit_events").fetchall() == [("a1", None)]
