"""Masked layer: event-level datasets released for analytics, built from the masking policy."""

from datetime import date

import dagster as dg
from dagster_duckdb import DuckDBResource

from streamgov_dagster.defs.common import OWNERS, POOL, schema_check, table_metadata, tags
from streamgov_dagster.defs.partitions import daily_partitions, day_range, days_of, days_text, run_day_range
from streamgov_dagster.defs.resources import GovernanceConfig, warehouse
from streamgov_dagster.lib import leakguard, masking
from streamgov_dagster.lib.models import PSEUDONYM_COLUMNS
from streamgov_dagster.lib.warehouse import column_types


def _column_lineage(governance: GovernanceConfig, dataset: str) -> dg.TableColumnLineage:
    plan = masking.plan(governance.policy(), dataset)
    return dg.TableColumnLineage(deps_by_column={
        col.name: [dg.TableColumnDep(asset_key=dg.AssetKey(["raw", dataset]), column_name=col.source)]
        for col in plan if col.source is not None
    })


def _build(context: dg.AssetExecutionContext, duckdb: DuckDBResource, governance: GovernanceConfig,
           dataset: str) -> dg.MaterializeResult:
    first, last = day_range(context)
    policy = governance.policy()
    with warehouse(duckdb, governance) as con:
        written = masking.build(con, policy, dataset, first, last, governance.key_id)
        meta = table_metadata(con, f"masked.{dataset}", pseudonym_key_id=governance.key_id,
                              demo_key=governance.demo_key, rows_written=written,
                              dropped_columns=", ".join(masking.dropped(policy, dataset)))
    if governance.demo_key:
        context.log.warning("STREAMGOV_PSEUDONYM_KEY is not set: masked with the public DEMO key (key id 'demo')")
    meta["dagster/column_lineage"] = _column_lineage(governance, dataset)
    return dg.MaterializeResult(metadata=meta)


@dg.asset(
    key=["masked", "access_events"], deps=[["raw", "access_events"], ["governance", "erasures"]], group_name="masked", owners=OWNERS,
    kinds={"duckdb"}, tags=tags("masked", False), partitions_def=daily_partitions,
    backfill_policy=dg.BackfillPolicy.single_run(), pool=POOL,
)
def masked_access_events(context: dg.AssetExecutionContext, duckdb: DuckDBResource,
                         governance: GovernanceConfig) -> dg.MaterializeResult:
    """Access events for analytics: keyed pseudonyms for ids, IPs truncated, emails and raw agents dropped."""
    return _build(context, duckdb, governance, "access_events")


@dg.asset(
    key=["masked", "audit_events"], deps=[["raw", "audit_events"], ["governance", "erasures"]], group_name="masked", owners=OWNERS,
    kinds={"duckdb"}, tags=tags("masked", False), partitions_def=daily_partitions,
    backfill_policy=dg.BackfillPolicy.single_run(), pool=POOL,
)
def masked_audit_events(context: dg.AssetExecutionContext, duckdb: DuckDBResource,
                        governance: GovernanceConfig) -> dg.MaterializeResult:
    """Audit-trail events for review: actors and subjects pseudonymized, source IPs truncated."""
    return _build(context, duckdb, governance, "audit_events")


# (asset, check) -> the table it checks
CHECKED_DATASETS = {("masked/access_events", "masked_access_events_no_raw_identifiers"): "masked.access_events",
                    ("masked/audit_events", "masked_audit_events_no_raw_identifiers"): "masked.audit_events"}
# The check's metadata keys naming the days it read ("all" or "first..last") and the columns it found clear
# there: governance/pii_leak_scan does not read those again when the check passed in its run
# (leakguard.scan_tables, verified).
DAYS_CHECKED = "days_checked"
LEAK_SCAN_CLEAR = "leak_scan_clear"


def _no_raw_identifiers(asset_key: list[str], dataset: str, name: str):
    @dg.asset_check(asset=asset_key, name=name, blocking=True, pool=POOL,
                    description=f"masked.{dataset} conforms to its model and holds no raw identifier from the raw zone "
                                "(exact match against every raw id, email and IP). In a run of some days, the rows "
                                "of those days (the others were checked when written; governance.pii_leak_scan "
                                "scans every row of every published table).")
    def _check(context: dg.AssetCheckExecutionContext, duckdb: DuckDBResource,
               governance: GovernanceConfig) -> dg.AssetCheckResult:
        policy = governance.policy()
        days = run_day_range(context)
        table = f"masked.{dataset}"
        with warehouse(duckdb, governance) as con:
            result = schema_check(con, table, days=days)
            text_cols = [c for c, t in column_types(con, "masked", dataset) if t == "VARCHAR"]
            # The leak scan's prefilter is counted in the same pass over the other columns (the pseudonyms are
            # HEX64, checked above), so that the scan need not read the clear ones again: 0.7 s less for the
            # scan, 0.3 s more here at 10M events.
            pseudonyms, networks = set(PSEUDONYM_COLUMNS[table]), masking.network_names(policy)
            leaks, candidates = masking.probe_released(
                con, policy, table, text_cols, days,
                {c: leakguard.prefilter(network=c in networks) for c in text_cols if c not in pseudonyms})
        total = sum(leaks.values())
        clear = [c for c in text_cols if not leaks[c] and not candidates.get(c, 0)]
        return dg.AssetCheckResult(
            passed=result.passed and total == 0,
            metadata={**result.metadata, "raw_identifier_hits": total, DAYS_CHECKED: days_text(days),
                      LEAK_SCAN_CLEAR: ", ".join(clear), **{f"hits/{c}": n for c, n in leaks.items() if n}},
        )

    return _check


def verified_in_run(instance: dg.DagsterInstance, run_id: str) -> dict[str, tuple[frozenset[str], tuple[date, date] | None]]:
    """The masked datasets whose check (above) passed in this run, as its latest evaluation: the columns it
    found clear and the days it read (None: all). A check that failed, or has not run yet, vouches for
    nothing."""
    out: dict[str, tuple[frozenset[str], tuple[date, date] | None]] = {}
    for rec in instance.get_records_for_run(run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION).records:
        evaluation = rec.event_log_entry.dagster_event.event_specific_data
        dataset = CHECKED_DATASETS.get((evaluation.asset_key.to_user_string(), evaluation.check_name))
        if dataset is None:
            continue
        out.pop(dataset, None)
        meta = evaluation.metadata
        if evaluation.passed and DAYS_CHECKED in meta and LEAK_SCAN_CLEAR in meta:
            clear = frozenset(c for c in meta[LEAK_SCAN_CLEAR].value.split(", ") if c)
            out[dataset] = (clear, days_of(meta[DAYS_CHECKED].value))
    return out


masked_access_events_no_raw_identifiers = _no_raw_identifiers(
    ["masked", "access_events"], "access_events", "masked_access_events_no_raw_identifiers")
masked_audit_events_no_raw_identifiers = _no_raw_identifiers(
    ["masked", "audit_events"], "audit_events", "masked_audit_events_no_raw_identifiers")
