"""Partitions, declared once: event-level assets are partitioned by UTC event day."""

from datetime import date, datetime, timedelta, timezone

import dagster as dg

from streamgov_dagster.lib.settings import partitions_start

# STREAMGOV_PARTITIONS_START, default 2020-01-01 (see settings.partitions_start); a run only touches the days
# present in the landing zone.
PARTITIONS_START = partitions_start()

daily_partitions = dg.DailyPartitionsDefinition(
    start_date=PARTITIONS_START.isoformat(), end_offset=1, timezone="UTC", fmt="%Y-%m-%d"
)


def partition_bounds() -> tuple[date, date]:
    """The span of days that has partitions: events outside it are quarantined (ts_out_of_range)."""
    return PARTITIONS_START, datetime.now(timezone.utc).date()


def day_range(context: dg.AssetExecutionContext) -> tuple[date, date]:
    """First and last UTC day (inclusive) of the partition range this run materializes."""
    window = context.partition_time_window
    return window.start.date(), (window.end - timedelta(days=1)).date()


RANGE_START, RANGE_END, PARTITION = ("dagster/asset_partition_range_start", "dagster/asset_partition_range_end",
                                     "dagster/partition")


def run_day_range(context: dg.AssetCheckExecutionContext) -> tuple[date, date] | None:
    """The UTC days (inclusive) whose partitions the check's run materializes, from the run's tags; None when
    the run names no partitions (then a check looks at the whole table)."""
    tags = context.run.tags
    first, last = tags.get(RANGE_START), tags.get(RANGE_END)
    if not (first and last) and tags.get(PARTITION):
        first = last = tags[PARTITION]
    if not (first and last):
        return None
    try:
        return date.fromisoformat(first), date.fromisoformat(last)
    except ValueError:
        return None


def days_text(days: tuple[date, date] | None) -> str:
    """A run's day range as the checks' `days_checked` metadata gives it: "all" (None) or "first..last"."""
    return "all" if days is None else f"{days[0].isoformat()}..{days[1].isoformat()}"


def days_of(text: str) -> tuple[date, date] | None:
    """The day range days_text wrote."""
    if text == "all":
        return None
    first, last = text.split("..")
    return date.fromisoformat(first), date.fromisoformat(last)
