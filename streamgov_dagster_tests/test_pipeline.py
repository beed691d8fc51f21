"""The whole job on a real DuckDB file: quarantine and counts, masking, idempotent re-runs, alerts."""

import json

import dagster as dg
import duckdb

from streamgov_dagster.defs.alerting.sensors import violation_alert_sensor
from streamgov_dagster.defs.resources import AlertSinkResource, GovernanceConfig
from streamgov_dagster_tests.conftest import run_pipeline
from streamgov_dagster_tests.landing import access, audit, write_landing
from dagster_duckdb import DuckDBResource

RAW_IDS = ["u-alice", "alice@example.com", "sess-123", "dev-abc", "tok-xyz", "203.0.113.77", "2001:db8:42:7::5",
           "emp_1", "customer-42"]


def _landing(root):
    ev = [access(f"f{i}", f"2026-10-29T10:0{i}:00Z", user_id="u-alice", client_ip="203.0.113.77", action="login",
                 status=401, email="alice@example.com", session_id="sess-123", device_id="dev-abc",
                 auth_token_id="tok-xyz", user_agent="Mozilla/5.0 (Windows NT 10.0) Chrome/120.0") for i in range(5)]
    ev += [access("p1", "2026-10-30T09:00:00+02:00", user_id="u-alice", client_ip="2001:db8:42:7::5",
                  purpose="advertising", country="DE")]
    au = [audit("a1", "2026-10-29T12:00:00Z", action="view_profile", subject_user_id="customer-42", ticket_id=None)]
    bad = ['{"event_id": "x1", "ts": "2026-10-29T10:00:00Z"', "not json at all", '{"event_id": "p1", "ts": "2026-10-30T07:00:00Z"}',
           json.dumps(access("p1", "2026-10-30T09:00:00+02:00", user_id="u-alice", client_ip="2001:db8:42:7::5",
                             purpose="advertising", country="DE"))]
    return write_landing(root, access_events=ev, audit_events=au, raw_access_lines=bad,
                         consent=[("c1", "u-alice", "advertising", "granted", "2026-10-01T00:00:00Z", None)])


def _dump(path) -> dict[str, list]:
    con = duckdb.connect(str(path), read_only=True)
    try:
        tables = [f"{s}.{t}" for s, t in con.execute(
            "select table_schema, table_name from information_schema.tables where table_schema <> 'main' "
            "order by 1, 2").fetchall()]
        return {t: con.execute(f"select * exclude (detected_at) from {t} order by all").fetchall()
                if t == "governance.violations" else con.execute(f"select * from {t} order by all").fetchall()
                for t in tables}
    finally:
        con.close()


def test_pipeline_quarantine_masking_and_rerun(env) -> None:
    _landing(env["landing"])
    result = run_pipeline("2026-10-29", "2026-10-30")
    assert result.success
    con = duckdb.connect(str(env["warehouse"]), read_only=True)
    try:
        quarantined = con.execute("select line_no, reason from raw.quarantine where source = 'access' order by line_no").fetchall()
        assert quarantined == [(7, "invalid_json"), (8, "invalid_json"), (9, "missing_client_ip")]
        summary = con.execute("select lines_read, rows_loaded, rows_quarantined, duplicates, balanced "
                              "from governance.ingestion_summary where source = 'access'").fetchall()
        assert summary == [(10, 6, 3, 1, True)]
        # no raw identifier in any table outside the raw and quarantine zones
        for schema, table, column in con.execute(
                "select table_schema, table_name, column_name from information_schema.columns "
                "where table_schema in ('masked', 'governance', 'consent', 'reports') "
                "and data_type in ('VARCHAR', 'VARCHAR[]')").fetchall():
            hits = con.execute(f"select count(*) from {schema}.{table} where list_contains(?, {column}::varchar) "
                               f"or exists (select 1 from unnest(?) r(v) where contains({column}::varchar, r.v))",
                               [RAW_IDS, RAW_IDS]).fetchone()[0]
            assert hits == 0, f"{schema}.{table}.{column}"
        networks = {r[0] for r in con.execute("select client_network from masked.access_events").fetchall()}
        assert networks == {"203.0.113.0/24", "2001:db8:42::/48"}
        assert "email" not in {c[0] for c in con.execute("describe masked.access_events").fetchall()}
        keys = {r[0] for r in con.execute("select distinct pseudonym_key_id from masked.access_events").fetchall()}
        assert keys == {"test-2026"}
        # a new warehouse file is written in DuckDB 1.5's storage format (warehouse.STORAGE_CONFIG)
        tags = con.execute("select tags from duckdb_databases() where database_name = current_database()").fetchone()[0]
        assert tags["storage_version"].startswith("v1.5.0"), tags
    finally:
        con.close()
    for path in env["reports"].iterdir():
        text = path.read_text()
        assert not any(raw in text for raw in RAW_IDS), path.name
    first = _dump(env["warehouse"])
    assert run_pipeline("2026-10-29", "2026-10-30").success
    assert _dump(env["warehouse"]) == first
    # re-running one partition alone leaves the same tables too
    assert run_pipeline("2026-10-30", "2026-10-30").success
    assert _dump(env["warehouse"]) == first


def test_consent_source_missing_fails_closed_with_error_check(env) -> None:
    write_landing(env["landing"], access_events=[access("e1", "2026-10-29T10:00:00Z", purpose="analytics")], consent=None)
    result = run_pipeline("2026-10-29", "2026-10-29")
    assert result.success  # the pipeline ran; the ERROR check below makes `streamgov run` exit non-zero
    evaluations = [e.event_specific_data for e in result.all_events if e.event_type_value == "ASSET_CHECK_EVALUATION"]
    source = [ev for ev in evaluations if ev.check_name == "consent_events_source_available"]
    assert len(source) == 1 and not source[0].passed
    con = duckdb.connect(str(env["warehouse"]), read_only=True)
    assert con.execute("select count(*) from governance.violations where rule_id = 'consent_violation'").fetchone()[0] == 1
    con.close()


def test_alert_sensor_sends_each_violation_once(env) -> None:
    _landing(env["landing"])
    instance = dg.DagsterInstance.ephemeral()
    assert run_pipeline("2026-10-29", "2026-10-30", instance=instance).success
    resources = {
        "duckdb": DuckDBResource(database=str(env["warehouse"])),
        "governance": GovernanceConfig(landing_dir=str(env["landing"]), reports_dir=str(env["reports"])),
        "alert_sink": AlertSinkResource(path=str(env["alerts"])),
    }
    ctx = dg.build_sensor_context(instance=instance, resources=resources)
    violation_alert_sensor(ctx)
    first = [json.loads(line) for line in env["alerts"].read_text().splitlines()]
    assert first, "high-severity violations should alert"
    assert {a["severity"] for a in first} <= {"high", "critical"}
    ctx2 = dg.build_sensor_context(instance=instance, resources=resources, cursor=ctx.cursor)
    violation_alert_sensor(ctx2)
    assert run_pipeline("2026-10-29", "2026-10-30", instance=instance).success  # a re-run finds the same ids
    ctx3 = dg.build_sensor_context(instance=instance, resources=resources, cursor=ctx2.cursor)
    violation_alert_sensor(ctx3)
    lines = [json.loads(line) for line in env["alerts"].read_text().splitlines()]
    assert len(lines) == len(first)
    assert len({a["violation_id"] for a in lines}) == len(lines)
    text = env["alerts"].read_text()
    assert not any(raw in text for raw in RAW_IDS)


def test_cli_run_sends_alerts_once_shared_with_the_sensor(env, capsys) -> None:
    from streamgov_dagster.cli import main

    _landing(env["landing"])
    assert main(["run"]) == 0
    first = env["alerts"].read_text().splitlines()
    assert first and all(json.loads(line)["type"] == "violation" for line in first)
    out = capsys.readouterr().out
    assert f"{len(first)} new alert(s)" in out and "KPI summary" in out
    assert main(["run"]) == 0  # a second run finds the same violations: nothing new to send
    instance = dg.DagsterInstance.get()
    resources = {
        "duckdb": DuckDBResource(database=str(env["warehouse"])),
        "governance": GovernanceConfig(landing_dir=str(env["landing"]), reports_dir=str(env["reports"])),
        "alert_sink": AlertSinkResource(path=str(env["alerts"])),
    }
    violation_alert_sensor(dg.build_sensor_context(instance=instance, resources=resources))
    assert env["alerts"].read_text().splitlines() == first


def test_cli_exit_codes(env, tmp_path, monkeypatch) -> None:
    from streamgov_dagster.cli import main

    monkeypatch.setenv("STREAMGOV_LANDING_DIR", str(tmp_path / "nowhere"))
    assert main(["run"]) == 2  # the landing zone cannot be read at all
    monkeypatch.setenv("STREAMGOV_LANDING_DIR", str(env["landing"]))
    write_landing(env["landing"], access_events=[access("e1", "2026-10-29T10:00:00Z", purpose="analytics")], consent=None)
    assert main(["run"]) == 2  # consent source missing: the pipeline ran, fail closed, ERROR check failed
    lines = [json.loads(line) for line in env["alerts"].read_text().splitlines()]
    assert {a["type"] for a in lines} == {"violation", "check_failure"}


def test_query_is_read_only_csv(env, capsys) -> None:
    from streamgov_dagster.cli import main

    _landing(env["landing"])
    assert main(["run"]) == 0
    capsys.readouterr()
    assert main(["query", "select rule_id, count(*) as n from governance.violations group by 1 order by 1"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "rule_id,n" and any(line.startswith("failed_login_burst,") for line in out[1:])
    assert main(["query", "delete from governance.violations"]) == 1
