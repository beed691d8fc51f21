"""Alerting: violations at or above the policy threshold, failed runs and failed checks go to the alert sink.

Payloads carry pseudonyms, rule ids, counts and event ids, never raw personal data or error text
(an error message can quote the data that caused it).
"""

import json
from datetime import datetime, timedelta

import dagster as dg
import duckdb as duckdb_lib
from dagster_duckdb import DuckDBResource

from streamgov_dagster.defs.jobs import governance_job
from streamgov_dagster.defs.reports.retention import retention_purge_job
from streamgov_dagster.defs.resources import AlertSinkResource, GovernanceConfig, read_only_connection
from streamgov_dagster.lib.alerts import check_failure_payload, run_failure_payload, violation_payloads
from streamgov_dagster.lib.dsar import deadline_payloads

VIOLATIONS = dg.AssetKey(["governance", "violations"])
# Violations detected this long before the newest one already alerted are re-examined on each tick, so
# one committed late by a concurrent run is still sent (the sink's ledger keeps each alert to one delivery).
REEXAMINE = timedelta(hours=1)


@dg.sensor(
    name="violation_alert_sensor", minimum_interval_seconds=60, default_status=dg.DefaultSensorStatus.RUNNING,
    description="Sends each new violation at or above the policy's alert severity to the alert sink, exactly once.",
)
def violation_alert_sensor(context: dg.SensorEvaluationContext, duckdb: DuckDBResource,
                           governance: GovernanceConfig, alert_sink: AlertSinkResource) -> dg.SkipReason | None:
    cursor = json.loads(context.cursor) if context.cursor else {"watermark": None}
    latest = context.instance.get_latest_materialization_event(VIOLATIONS)
    if latest is None:
        return dg.SkipReason("governance/violations has not been materialized yet")
    watermark = datetime.fromisoformat(cursor["watermark"]) if cursor["watermark"] else None
    since = watermark - REEXAMINE if watermark else None
    try:
        con = read_only_connection(duckdb)
    except duckdb_lib.Error:
        return dg.SkipReason("the warehouse is locked by a writer; retrying on the next tick")
    try:
        payloads = violation_payloads(con, governance.policy().min_alert_severity, since)
    finally:
        con.close()
    sent = alert_sink.send(payloads)
    if payloads:
        watermark = max(p["detected_at"] for p in payloads)
    context.update_cursor(json.dumps({"watermark": watermark.isoformat() if watermark else None}))
    context.log.info(f"sent {sent} violation alerts")
    return None if sent else dg.SkipReason("no new violations at or above the alert threshold")


@dg.sensor(
    name="dsar_deadline_sensor", minimum_interval_seconds=3600, default_status=dg.DefaultSensorStatus.RUNNING,
    description="Alerts once when an unanswered data-subject request comes within the policy's warning window "
                "(7 days) of its one-month deadline, and once more if it passes it.",
)
def dsar_deadline_sensor(context: dg.SensorEvaluationContext, duckdb: DuckDBResource,
                         governance: GovernanceConfig, alert_sink: AlertSinkResource) -> dg.SkipReason | None:
    # Time-driven, not run-driven: the deadline approaches whether or not a run happens.
    try:
        con = read_only_connection(duckdb)
    except duckdb_lib.Error:
        return dg.SkipReason("the warehouse is absent or locked by a writer; retrying on the next tick")
    try:
        payloads = deadline_payloads(con, governance.policy().alerting["dsar_warning_days"])
    finally:
        con.close()
    sent = alert_sink.send(payloads)
    return None if sent else dg.SkipReason("no data-subject request newly near or past its deadline")


@dg.run_failure_sensor(name="run_failure_alert_sensor", default_status=dg.DefaultSensorStatus.RUNNING,
                       monitor_all_code_locations=False, monitored_jobs=[governance_job, retention_purge_job])
def run_failure_alert_sensor(context: dg.RunFailureSensorContext, alert_sink: AlertSinkResource) -> None:
    """A failed governance run (including a failed blocking check) is an alert."""
    failed_steps = sorted({e.step_key for e in context.get_step_failure_events() if e.step_key})
    checks = failed_checks(context.instance, context.dagster_run.run_id)
    data = context.failure_event.event_specific_data
    error_class = data.error.cls_name if data is not None and data.error is not None else None
    alert_sink.send([run_failure_payload(context.dagster_run.run_id, context.dagster_run.job_name, failed_steps,
                                         checks, error_class)])


def failed_checks(instance: dg.DagsterInstance, run_id: str) -> list[dict]:
    records = instance.get_records_for_run(run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION).records
    out = []
    for rec in records:
        evaluation = rec.event_log_entry.dagster_event.event_specific_data
        if not evaluation.passed:
            out.append({"asset": evaluation.asset_key.to_user_string(), "check": evaluation.check_name,
                        "severity": evaluation.severity.value})
    return out


@dg.run_status_sensor(name="check_failure_alert_sensor", run_status=dg.DagsterRunStatus.SUCCESS,
                      default_status=dg.DefaultSensorStatus.RUNNING, monitored_jobs=[governance_job])
def check_failure_alert_sensor(context: dg.RunStatusSensorContext, alert_sink: AlertSinkResource) -> None:
    """A run can succeed with a failed non-blocking check (e.g. the consent source is missing): alert on it."""
    checks = failed_checks(context.instance, context.dagster_run.run_id)
    if checks:
        alert_sink.send([check_failure_payload(context.dagster_run.run_id, checks)])
