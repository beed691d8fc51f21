"""Refresh automation: a daily schedule for the whole graph, and the automation sensor for eager assets."""

from datetime import timedelta

import dagster as dg

from streamgov_dagster.defs.jobs import governance_job
from streamgov_dagster.defs.partitions import PARTITIONS_START
from streamgov_dagster.defs.resources import GovernanceConfig


@dg.schedule(job=governance_job, cron_schedule="0 3 * * *", execution_timezone="UTC", name="daily_governance_refresh",
             default_status=dg.DefaultScheduleStatus.RUNNING)
def daily_governance_refresh(context: dg.ScheduleEvaluationContext, governance: GovernanceConfig) -> dg.RunRequest:
    """Every day at 03:00 UTC: re-process the last days (policy: schedule_lookback_days) and every report."""
    today = context.scheduled_execution_time.date()
    lookback = governance.policy().alerting["schedule_lookback_days"]
    start = max(today - timedelta(days=lookback), PARTITIONS_START)
    return dg.RunRequest(
        run_key=f"daily-{today.isoformat()}",
        tags={"dagster/asset_partition_range_start": start.isoformat(),
              "dagster/asset_partition_range_end": today.isoformat()},
    )


automation_sensor = dg.AutomationConditionSensorDefinition(
    "streamgov_automation_sensor", target=dg.AssetSelection.all(), default_status=dg.DefaultSensorStatus.RUNNING,
)
