"""Reports layer: reports.* tables and the report files a DPO and auditors read."""

import shutil
from datetime import datetime, timedelta, timezone
from pathlib import Path

import dagster as dg
from dagster_duckdb import DuckDBResource

from streamgov_dagster.defs.common import OWNERS, POOL, STATE_POOL, schema_check, table_metadata, tags
from streamgov_dagster.defs.masking.assets import verified_in_run
from streamgov_dagster.defs.partitions import days_text, run_day_range
from streamgov_dagster.defs.resources import GovernanceConfig, warehouse
from streamgov_dagster.lib import leakguard, masking, quality, reports
from streamgov_dagster.lib.warehouse import table_exists

REPORT_TABLES = ("access_audit_summary", "compliance_kpis", "consent_kpis", "consent_activity", "top_subjects",
                 "violation_trend")
_DESCRIPTIONS = {
    "access_audit_summary": "Per day: access and audit volumes, failed-versus-successful logins and violations by severity.",
    "compliance_kpis": "Violations by rule, severity and day, with evidence and subject counts.",
    "consent_kpis": "Current opt-in rate per purpose, jurisdiction and source, with withdrawals, expiries and "
                    "consents expiring soon.",
    "consent_activity": "Per day: grants, denials, withdrawals, expiries reached and consent signal mismatches.",
    "top_subjects": "The 20 pseudonymous subjects (users, IPs, staff) with the most violations.",
    "violation_trend": "Violations per rule in the latest period (7 days) against the period before.",
}


@dg.multi_asset(
    specs=[
        dg.AssetSpec(["reports", name], group_name="reports", owners=OWNERS, kinds={"duckdb"},
                     tags=tags("reports", False), description=_DESCRIPTIONS[name],
                     deps=[["governance", "violations"], ["masked", "access_events"], ["masked", "audit_events"],
                           ["consent", "consent_state"], ["consent", "signal_mismatches"]],
                     automation_condition=dg.AutomationCondition.eager())
        for name in REPORT_TABLES
    ],
    pool=STATE_POOL,
)
def report_tables(context: dg.AssetExecutionContext, duckdb: DuckDBResource, governance: GovernanceConfig):
    """The KPI tables behind the compliance report."""
    with warehouse(duckdb, governance) as con:
        policy = governance.policy()
        reports.build_tables(con, policy.consent["expiring_within_days"], policy.reports["small_cell_k"])
        for name in REPORT_TABLES:
            yield dg.MaterializeResult(asset_key=["reports", name], metadata=table_metadata(con, f"reports.{name}"))


PUBLISHED = ([["reports", n] for n in REPORT_TABLES]
             + [["reports", "detection_quality"], ["consent", "consent_log"], ["consent", "signal_mismatches"],
                ["governance", "ingestion_summary"], ["governance", "violations"], ["masked", "access_events"],
                ["masked", "audit_events"], ["reports", "dsar_status"]] + [["masked", f"{p}_events"] for p in ("personalization", "analytics",
                                                                                   "advertising")])


@dg.asset(
    key=["governance", "pii_leak_scan"], deps=PUBLISHED, group_name="reports", owners=OWNERS, kinds={"duckdb"},
    tags=tags("governance", False), pool=STATE_POOL,
    check_specs=[dg.AssetCheckSpec("pii_leak_scan_clean", asset=["governance", "pii_leak_scan"], blocking=True,
                                   description="No published table holds a raw identifier or a personal-data pattern; "
                                               "a hit stops the run before the report files are written.")],
)
def pii_leak_scan(context: dg.AssetExecutionContext, duckdb: DuckDBResource,
                  governance: GovernanceConfig) -> dg.MaterializeResult:
    """Where personal data was found outside the raw zone: hits per table, column and kind (counts only)."""
    policy = governance.policy()
    with warehouse(duckdb, governance) as con:
        network_names = masking.network_names(policy)
        networks = {f"{t}.{c}" for t, c in con.execute(
            "select table_schema || '.' || table_name, column_name from information_schema.columns "
            "where table_schema = 'masked'").fetchall() if c in network_names}
        # A run of some days scans those days of the masked datasets (every row is scanned by the run that
        # writes it) and every other published table whole. A full scan instead when the run names no days,
        # when the last scan found something (its hits must be seen again until they are gone), or when the
        # last full scan is older than FULL_SCAN_EVERY_DAYS.
        days = run_day_range(context)
        # the latest full scan, one row (not a history: a re-run of the same days leaves the warehouse as it was)
        con.execute("create table if not exists governance.pii_leak_full_scan (scanned_at timestamp, hits bigint)")
        last_full, = con.execute("select max(scanned_at) from governance.pii_leak_full_scan").fetchone()
        previous_hits = con.execute("select count(*) from governance.pii_leak_scan").fetchone()[0] \
            if table_exists(con, "governance", "pii_leak_scan") else 1
        full = days is None or previous_hits > 0 or last_full is None or \
            last_full < datetime.now(timezone.utc).replace(tzinfo=None) - timedelta(days=leakguard.FULL_SCAN_EVERY_DAYS)
        # the pseudonyms of the masked rows this run's blocking masked checks have just verified are not read
        # again (leakguard.scan_tables, verified)
        verified = verified_in_run(context.instance, context.run.run_id)
        hits = leakguard.scan_tables(con, networks, None if full else days, verified)
        con.execute("create or replace table governance.pii_leak_scan (location varchar, kind varchar, hits bigint, "
                    "scanned_at timestamp)")
        if hits:
            con.executemany("insert into governance.pii_leak_scan values (?, ?, ?, now()::timestamp)",
                            [[k.rsplit(":", 1)[0], k.rsplit(":", 1)[1], v] for k, v in hits.items()])
        if full:
            con.execute("delete from governance.pii_leak_full_scan")
            con.execute("insert into governance.pii_leak_full_scan values (now()::timestamp, ?)", [sum(hits.values())])
        scanned = len(leakguard.text_columns(con))
    scope = "full" if full else f"days {days[0]}..{days[1]} of the masked datasets, every row of the other tables"
    return dg.MaterializeResult(
        metadata={"columns_scanned": int(scanned), "scope": scope, "hits": sum(hits.values()),
                  "verified_by_masked_checks": "; ".join(f"{t}: {len(c)} columns, days {days_text(d)}"
                                                         for t, (c, d) in sorted(verified.items())) or "none",
                  **{f"hits/{k}": v for k, v in hits.items()}},
        check_results=[dg.AssetCheckResult(check_name="pii_leak_scan_clean", passed=not hits,
                                           metadata={"hits": sum(hits.values()), "locations": len(hits)})],
    )


@dg.asset(
    key=["reports", "compliance_report"],
    deps=PUBLISHED + [["governance", "pii_leak_scan"]],
    group_name="reports", owners=OWNERS, kinds={"html", "markdown", "csv"}, tags=tags("reports", False), pool=STATE_POOL,
    automation_condition=dg.AutomationCondition.eager(),
)
def compliance_report(context: dg.AssetExecutionContext, duckdb: DuckDBResource,
                      governance: GovernanceConfig) -> dg.MaterializeResult:
    """The compliance report files: HTML and Markdown report, access audit summary and consent management log CSVs."""
    ctx = reports.ReportContext(key_id=governance.key_id, demo_key=governance.demo_key,
                                policy_source=governance.policy().source_dir, generated_at=reports.now_utc())
    target = Path(governance.reports_dir)
    staging = target / f".staging-{context.run.run_id}"
    with warehouse(duckdb, governance) as con:
        figures = reports.kpis(con)
        staged = reports.write_files(con, staging, ctx, figures)
        # The files are scanned before they are published: a hit keeps them out of the reports folder.
        hits = leakguard.scan_files_in_warehouse(con, list(staged.values()))
    if hits:
        shutil.rmtree(staging, ignore_errors=True)
        raise dg.Failure(description="personal data found in report files; nothing was published",
                         metadata={"hits": sum(hits.values()), **{f"hits/{k}": v for k, v in hits.items()}})
    paths = {}
    for key, path in staged.items():
        paths[key] = target / path.name
        path.replace(paths[key])
    staging.rmdir()
    return dg.MaterializeResult(metadata={
        **{f"file/{k}": dg.MetadataValue.path(str(p.resolve())) for k, p in paths.items()},
        **{f"kpi/{k}": v for k, v in figures.items() if v is not None},
        "demo_key": governance.demo_key,
    })


@dg.asset(
    key=["reports", "detection_quality"], deps=[["governance", "violations"]], group_name="reports", owners=OWNERS,
    kinds={"duckdb"}, tags=tags("reports", False), pool=STATE_POOL, automation_condition=dg.AutomationCondition.eager(),
)
def detection_quality(context: dg.AssetExecutionContext, duckdb: DuckDBResource,
                      governance: GovernanceConfig) -> dg.MaterializeResult:
    """Per rule: planted incidents, found, recall, false positives and near misses that fired, against a ground truth."""
    with warehouse(duckdb, governance) as con:
        present = quality.build(con, governance.landing)
        totals = con.execute("select coalesce(sum(planted), 0), coalesce(sum(found), 0), coalesce(sum(false_positives), 0), "
                             "coalesce(sum(near_misses_fired), 0) from reports.detection_quality").fetchone()
        meta = table_metadata(con, "reports.detection_quality", ground_truth_present=present,
                              planted=int(totals[0]), found=int(totals[1]), false_positives=int(totals[2]),
                              near_misses_fired=int(totals[3]))
    if not present:
        context.log.info("no ground_truth.jsonl in the landing zone: detection quality not measured")
    return dg.MaterializeResult(metadata=meta)


@dg.asset_check(asset=detection_quality, blocking=False, pool=POOL,
                description="With a ground truth present: recall 1.0, no false positive, no near miss fired.")
def detection_quality_exact(duckdb: DuckDBResource, governance: GovernanceConfig) -> dg.AssetCheckResult:
    with warehouse(duckdb, governance) as con:
        row = con.execute("select count(*) filter (where found < planted), coalesce(sum(false_positives), 0), "
                          "coalesce(sum(near_misses_fired), 0) from reports.detection_quality").fetchone()
    return dg.AssetCheckResult(passed=row[0] == 0 and row[1] == 0 and row[2] == 0, severity=dg.AssetCheckSeverity.WARN,
                               metadata={"rules_missing_incidents": int(row[0]), "false_positives": int(row[1]),
                                         "near_misses_fired": int(row[2])})


@dg.asset_check(asset=["reports", "consent_kpis"], blocking=True, pool=POOL,
                description="No aggregate cell of the reports shows fewer than k distinct people (policy small_cell_k).")
def small_cells_suppressed(duckdb: DuckDBResource, governance: GovernanceConfig) -> dg.AssetCheckResult:
    k = governance.policy().reports["small_cell_k"]
    with warehouse(duckdb, governance) as con:
        n = reports.unsuppressed_small_cells(con, k)
        suppressed = con.execute("select (select count(*) from reports.consent_kpis where suppressed) + "
                                 "(select count(*) from reports.access_audit_summary where suppressed)").fetchone()[0]
    return dg.AssetCheckResult(passed=n == 0, metadata={"k": k, "unsuppressed_small_cells": n,
                                                        "suppressed_cells": int(suppressed)})


def _report_schema(name: str):
    @dg.asset_check(asset=["reports", name], name=f"{name}_schema", blocking=True, pool=POOL,
                    description=f"reports.{name} conforms to its pandera model.")
    def _check(duckdb: DuckDBResource, governance: GovernanceConfig) -> dg.AssetCheckResult:
        with warehouse(duckdb, governance) as con:
            return schema_check(con, f"reports.{name}")

    return _check


access_audit_summary_schema = _report_schema("access_audit_summary")
compliance_kpis_schema = _report_schema("compliance_kpis")
consent_kpis_schema = _report_schema("consent_kpis")
consent_activity_schema = _report_schema("consent_activity")
top_subjects_schema = _report_schema("top_subjects")
violation_trend_schema = _report_schema("violation_trend")
