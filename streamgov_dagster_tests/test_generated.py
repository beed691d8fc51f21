"""The whole job on generated landing zones: exact detection, and no raw identifier outside the raw zone."""

import json
from datetime import date

import dagster as dg
import duckdb
import pytest
from dagster._serdes import serialize_value

from streamgov_dagster.lib import alerts, dsar
from streamgov_dagster.lib.generator import generate
from streamgov_dagster_tests.conftest import run_pipeline

RAW_ID_COLUMNS = {
    "raw.access_events": ["user_id", "session_id", "device_id", "email", "auth_token_id", "client_ip"],
    "raw.audit_events": ["actor_id", "subject_user_id", "source_ip"],
    "raw.consent_events": ["user_id"],
}


@pytest.mark.parametrize("seed,users,days,start", [(11, 60, 3, date(2026, 10, 30)), (23, 90, 4, date(2026, 3, 27))])
def test_generated_landing_zone_is_detected_exactly_and_masked(env, seed, users, days, start) -> None:
    generate(env["landing"], seed=seed, users=users, days=days, start=start, staff=20)
    span_end = date.fromordinal(start.toordinal() + days)  # a few events spill into the next day's file
    span_start = date.fromordinal(start.toordinal() - 1)
    instance = dg.DagsterInstance.ephemeral()
    result = run_pipeline(span_start.isoformat(), span_end.isoformat(), instance)
    assert result.success
    con = duckdb.connect(str(env["warehouse"]), read_only=True)
    try:
        quality = con.execute("select rule_id, planted, found, exact_matches, false_positives, near_misses_fired "
                              "from reports.detection_quality order by rule_id").fetchall()
        assert len(quality) == 11
        for rule_id, planted, found, exact, false_positives, fired in quality:
            assert planted > 0 and found == planted and exact == planted, rule_id
            assert false_positives == 0 and fired == 0, rule_id
        truth = [json.loads(line) for line in (env["landing"] / "ground_truth.jsonl").read_text().splitlines()]
        bad = {(t["file"], t["line"]) for t in truth if t["kind"] == "quarantine"}
        # the generator's erasure requests are executed: those users' lines are quarantined as erased_subject
        quarantined = set(con.execute("select file, line_no from raw.quarantine where source in ('access', 'audit') "
                                      "and reason <> 'erased_subject'").fetchall())
        erasures = con.execute("select count(*) from raw.dsar_requests where type = 'erasure'").fetchone()[0]
        # executed in this run; the rewrite that purges the file's deleted bytes waits for its batch (7 days)
        assert erasures == con.execute("select count(*) from governance.dsar_log where type = 'erasure' "
                                       "and answered_at is not null and verified_at is null").fetchone()[0]
        assert quarantined == bad
        assert con.execute("select count(*) from governance.ingestion_summary where not balanced").fetchone()[0] == 0
        assert con.execute("select sum(duplicates) from governance.ingestion_summary").fetchone()[0] == \
            sum(1 for t in truth if t["kind"] == "duplicate")

        parts = [f"select distinct {c}::varchar as v from {t} where {c} is not null"
                 for t, cols in RAW_ID_COLUMNS.items() for c in cols]
        raw_ids = {r[0] for r in con.execute(" union ".join(parts)).fetchall()}
        assert len(raw_ids) > users
        for schema, table, column in con.execute(
                "select table_schema, table_name, column_name from information_schema.columns "
                "where table_schema in ('masked', 'governance', 'consent', 'reports') "
                "and (data_type like 'VARCHAR%')").fetchall():
            values = con.execute(f"select distinct unnest(case when typeof({column}) like '%[]' then {column}::varchar[] "
                                 f"else [{column}::varchar] end) from {schema}.{table}").fetchall()
            leaked = raw_ids & {v[0] for v in values}
            assert not leaked, f"{schema}.{table}.{column} holds {len(leaked)} raw identifiers"
        # the alerts `streamgov run` and the sensors would send
        sent = alerts.send(env["alerts"], alerts.violation_payloads(con, "low") + dsar.deadline_payloads(con, 7))
        assert sent > 0
    finally:
        con.close()
    # report files (the access-request exports under dsar/ are the requesters' own data, by design),
    # the alert file and everything the run stored in the Dagster instance
    texts = [p.read_text(encoding="utf-8") for p in env["reports"].iterdir() if p.is_file()]
    texts.append(env["alerts"].read_text(encoding="utf-8"))
    texts.append(json.dumps([serialize_value(entry) for entry in instance.all_logs(result.run_id)]))
    assert len(texts) >= 6
    for text in texts:
        assert not any(raw in text for raw in raw_ids if len(raw) > 6)
