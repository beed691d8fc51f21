"""Data-subject requests: intake, access exports, erasure (before anything is derived) and deadlines.

Order in the graph: the raw sources load (already keeping erased users out), access exports are written
from the raw zone, then pending erasures run, and only then is anything derived (consent state, masked
datasets, violations, reports). The verification runs last, over every table and file.
"""

from pathlib import Path

import dagster as dg
from dagster_duckdb import DuckDBResource

from streamgov_dagster.defs.common import OWNERS, POOL, STATE_POOL, schema_check, table_metadata, tags
from streamgov_dagster.defs.resources import AlertSinkResource, GovernanceConfig, target_of, warehouse
from streamgov_dagster.lib import dsar
from streamgov_dagster.lib import lake as lake_lib

RAW_SOURCES = [["raw", "access_events"], ["raw", "audit_events"], ["raw", "consent_events"]]

landing_dsar = dg.AssetSpec(
    key=["landing", "dsar_requests"], group_name="landing", owners=OWNERS, kinds={"file"},
    tags=tags("landing", True),
    description="Data-subject requests (schema E) as JSON lines in <landing>/dsar: access or erasure.",
)


@dg.asset(
    key=["raw", "dsar_requests"], deps=[landing_dsar], group_name="dsar", owners=OWNERS, kinds={"duckdb", "json"},
    tags=tags("raw", True), pool=STATE_POOL,
)
def raw_dsar_requests(context: dg.AssetExecutionContext, duckdb: DuckDBResource,
                      governance: GovernanceConfig) -> dg.MaterializeResult:
    """Every data-subject request once (by request_id), with its one-month deadline. Raw zone: names the user."""
    with warehouse(duckdb, governance) as con:
        stats = dsar.load_requests(con, governance.landing)
        meta = table_metadata(con, "raw.dsar_requests", **{f"run/{k}": v for k, v in stats.items()})
    return dg.MaterializeResult(metadata=meta)


@dg.asset(
    key=["reports", "dsar_exports"], deps=[raw_dsar_requests, *RAW_SOURCES], group_name="dsar", owners=OWNERS,
    kinds={"csv", "json"}, tags=tags("dsar_export", True), pool=STATE_POOL,
)
def dsar_exports(context: dg.AssetExecutionContext, duckdb: DuckDBResource,
                 governance: GovernanceConfig) -> dg.MaterializeResult:
    """Access requests answered: <reports>/dsar/<request_id>/ with the user's events, consent history and
    the audit-trail entries in which staff touched their data. These folders hold the user's own data."""
    with warehouse(duckdb, governance) as con:
        done = dsar.answer_access_requests(con, Path(governance.reports_dir))
    context.log.info(f"{len(done)} access request(s) answered")
    return dg.MaterializeResult(metadata={
        "answered_this_run": len(done),
        "rows_exported": sum(v for d in done for k, v in d.items() if k != "request_id"),
        "export_root": dg.MetadataValue.path(str((Path(governance.reports_dir) / dsar.EXPORT_DIR).resolve())),
    })


@dg.asset(
    key=["governance", "erasures"], deps=[raw_dsar_requests, dsar_exports, *RAW_SOURCES], group_name="dsar",
    owners=OWNERS, kinds={"duckdb"}, tags=tags("governance", False), pool=STATE_POOL,
)
def erasures(context: dg.AssetExecutionContext, duckdb: DuckDBResource, governance: GovernanceConfig,
             alert_sink: AlertSinkResource) -> dg.MaterializeResult:
    """Erasure requests executed: the user's rows removed from every table (raw zone included), consent-log
    tombstones written, and the erasure registered as a keyed hash that names nobody."""
    with warehouse(duckdb, governance) as con:
        done = dsar.execute_erasures(con, Path(governance.reports_dir), alert_sink.file, governance.key_id)
        meta = table_metadata(con, "governance.erasure_register")
    touched: dict[str, int] = {}
    for d in done:
        for k, v in d.items():
            if k != "request_id":
                touched[k] = touched.get(k, 0) + v
    context.log.info(f"{len(done)} erasure request(s) executed")
    return dg.MaterializeResult(metadata={**meta, "executed_this_run": len(done),
                                          **{f"rows/{k}": v for k, v in touched.items()}})


@dg.asset(
    key=["reports", "dsar_status"], deps=[dsar_exports, erasures], group_name="dsar", owners=OWNERS,
    kinds={"duckdb"}, tags=tags("reports", False), pool=STATE_POOL,
)
def dsar_status(context: dg.AssetExecutionContext, duckdb: DuckDBResource,
                governance: GovernanceConfig) -> dg.MaterializeResult:
    """Every data-subject request: type, received, deadline (one month), answered and status
    (open | answered | answered_late | overdue). No user id."""
    with warehouse(duckdb, governance) as con:
        by_status = dsar.build_status(con)
        meta = table_metadata(con, "reports.dsar_status", **{f"status/{k}": int(v) for k, v in by_status.items()})
    return dg.MaterializeResult(metadata=meta)


@dg.asset_check(asset=dsar_status, blocking=False, pool=POOL,
                description="No data-subject request is past its one-month deadline without an answer.")
def dsar_none_overdue(duckdb: DuckDBResource, governance: GovernanceConfig) -> dg.AssetCheckResult:
    with warehouse(duckdb, governance) as con:
        result = schema_check(con, "reports.dsar_status")
        overdue, late = con.execute("select count(*) filter (where status = 'overdue'), "
                                    "count(*) filter (where status = 'answered_late') from reports.dsar_status").fetchone()
    return dg.AssetCheckResult(passed=result.passed and overdue == 0, severity=dg.AssetCheckSeverity.WARN,
                               metadata={**result.metadata, "overdue": int(overdue), "answered_late": int(late)})


@dg.asset(
    key=["governance", "erasure_verification"],
    deps=[erasures, ["reports", "compliance_report"], ["governance", "pii_leak_scan"], ["consent", "consent_log"]],
    group_name="dsar", owners=OWNERS, kinds={"duckdb"}, tags=tags("governance", False), pool=STATE_POOL,
    check_specs=[dg.AssetCheckSpec("erased_subjects_absent", asset=["governance", "erasure_verification"],
                                   description="No table of any zone, report file or alert holds the id, email or "
                                               "pseudonym of an erased user.")],
)
def erasure_verification(context: dg.AssetExecutionContext, duckdb: DuckDBResource, governance: GovernanceConfig,
                         alert_sink: AlertSinkResource) -> dg.MaterializeResult:
    """After everything was rebuilt: what still names an erased user (hits per place, counts only)."""
    lake = target_of(duckdb).is_lake
    delay = governance.policy().alerting["erasure_compaction_delay_days"]
    with warehouse(duckdb, governance) as con:
        # The rewrite of the whole warehouse is batched: it runs once the oldest erasure awaiting it has waited
        # the policy's delay (every table, report and alert is clean of the user from the erasure run on).
        due = dsar.purge_due(con, delay)
        hits, pending_rows = dsar.verify_erasures(con, Path(governance.reports_dir), alert_sink.file, purge=due)
        tokens = {row[2] for row in pending_rows}
        # the physical purge runs in this run: erasures waiting, clean everywhere else, and due
        purge = bool(tokens) and not hits and due
        awaiting = len({row[0] for row in pending_rows}) if tokens and not hits and not due else 0
        if awaiting:
            oldest = min((row[3] for row in pending_rows if row[3] is not None), default=None)
            context.log.info(f"{awaiting} erasure request(s) clean in every table, report and alert; the warehouse "
                             f"rewrite that purges deleted bytes is due {delay} day(s) after {oldest} (UTC)")
        purged: dict[str, int] = {}
        if lake and purge:
            # DuckLake keeps deleted rows in their Parquet files and in older snapshots: purge them with
            # DuckLake's own maintenance, then read every file left under the data path.
            purged = lake_lib.purge_history(con, tokens)
            hits.update(lake_lib.data_file_hits(con, tokens))
            if hits:
                dsar.mark_verified(con, False, pending_rows)
    pending = len({row[0] for row in pending_rows})
    compacted = bool(purged) if lake else None
    if purge and not lake:
        # Deleted rows survive in the file's free blocks until it is rewritten: compact, then look at the bytes.
        db_path = Path(duckdb.database)
        problem = dsar.compact(db_path)
        if problem:
            context.log.warning(f"the warehouse could not be compacted ({problem}); the next run retries")
            hits["warehouse_file:not_compacted"] = 1
        elif n := dsar.file_hits(db_path, tokens):
            hits["warehouse_file:bytes"] = n
        compacted = problem is None
        if hits:
            with warehouse(duckdb, governance) as con:
                dsar.mark_verified(con, False, pending_rows)
    with warehouse(duckdb, governance) as con:
        verified = con.execute("select count(*) from governance.dsar_log where type = 'erasure' "
                               "and verified_at is not null").fetchone()[0]
    return dg.MaterializeResult(
        metadata={"erasures_checked": int(pending), "erasures_verified_total": int(verified),
                  "erasures_awaiting_compaction": int(awaiting), "warehouse_compacted": bool(compacted), **{f"lake/{k}": v for k, v in purged.items()},
                  "hits": sum(hits.values()), **{f"hits/{k}": v for k, v in hits.items()}},
        check_results=[dg.AssetCheckResult(check_name="erased_subjects_absent", passed=not hits,
                                           metadata={"hits": sum(hits.values()), "places": len(hits)})],
    )

