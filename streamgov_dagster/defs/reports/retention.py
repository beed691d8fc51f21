"""Retention: the oldest data each dataset holds (a report table), and the daily purge job."""

from datetime import datetime, timezone

import dagster as dg
from dagster_duckdb import DuckDBResource

from streamgov_dagster.defs.common import OWNERS, STATE_POOL, table_metadata, tags
from streamgov_dagster.defs.resources import GovernanceConfig, target_of, warehouse
from streamgov_dagster.lib import identifiers, lake, retention
from streamgov_dagster.lib.warehouse import vacuum


@dg.asset(
    key=["reports", "retention_status"],
    deps=[["raw", "access_events"], ["raw", "audit_events"], ["raw", "quarantine"], ["masked", "access_events"],
          ["masked", "audit_events"], ["governance", "violations"]],
    group_name="reports", owners=OWNERS, kinds={"duckdb"}, tags=tags("reports", False), pool=STATE_POOL,
    automation_condition=dg.AutomationCondition.eager(),
)
def retention_status(context: dg.AssetExecutionContext, duckdb: DuckDBResource,
                     governance: GovernanceConfig) -> dg.MaterializeResult:
    """Per dataset: its retention in days, the oldest day it holds, and rows past retention awaiting the purge."""
    today = datetime.now(timezone.utc).date()
    with warehouse(duckdb, governance) as con:
        retention.build_report(con, governance.policy().retention, today)
        overdue = con.execute("select coalesce(sum(rows_past_retention), 0) from reports.retention_status").fetchone()[0]
        meta = table_metadata(con, "reports.retention_status", rows_past_retention=int(overdue))
    return dg.MaterializeResult(metadata=meta)


@dg.op(pool=STATE_POOL)
def purge_expired_data(context: dg.OpExecutionContext, duckdb: DuckDBResource, governance: GovernanceConfig) -> None:
    """Delete every row older than its dataset's retention (policies/retention.yaml)."""
    today = datetime.now(timezone.utc).date()
    with warehouse(duckdb, governance) as con:
        deleted = retention.purge(con, governance.policy().retention, today)
        # the purged days leave the identifier index too
        identifiers.sync(con)
        # the daily merge of partly filled row groups (the pipeline's checkpoints skip it: see prepare())
        if not vacuum(con):
            context.log.warning("row groups not merged: another transaction held the checkpoint (next run)")
        retention.build_report(con, governance.policy().retention, today)
        # On DuckLake the deleted rows stay readable in older snapshots (time travel) and their Parquet
        # files until the history is purged; the DuckDB file keeps no history.
        purged = lake.purge_history(con) if target_of(duckdb).is_lake else {}
    context.log.info("purged: " + ", ".join(f"{t} {n}" for t, n in {**deleted, **purged}.items()))


@dg.job(description="Purges data past its retention; the next governance run recomputes what depends on it.")
def retention_purge_job() -> None:
    purge_expired_data()


retention_purge_schedule = dg.ScheduleDefinition(
    name="daily_retention_purge", job=retention_purge_job, cron_schedule="0 4 * * *", execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
)
