"""Reports layer: reports.* tables and the report files a DPO and auditors read."""


from pathlib import Path

import dagster as dg
from dagster_duckdb import DuckDBResource

from streamgov_dagster.defs.common import OWNERS, POOL, schema_check, table_metadata, tags
from streamgov_dagster.defs.resources import GovernanceConfig, warehouse
from streamgov_dagster.lib import reports

REPORT_TABLES = ("access_audit_summary", "compliance_kpis", "consent_kpis")
_DESCRIPTIONS = {
    "access_audit_summary": "Per day: access and audit volumes, failed-versus-successful logins and violations by severity.",
    "compliance_kpis": "Violations by rule, severity and day, with evidence and subject counts.",
    "consent_kpis": "Current opt-in rate per purpose and jurisdiction, with withdrawals and expiries.",
}


@dg.multi_asset(
    specs=[
        dg.AssetSpec(["reports", name], group_name="reports", owners=OWNERS, kinds={"duckdb"},
                     tags=tags("reports", False), description=_DESCRIPTIONS[name],
                     deps=[["governance", "violations"], ["masked", "access_events"], ["masked", "audit_events"],
                           ["consent", "consent_state"]],
                     automation_condition=dg.AutomationCondition.eager())
        for name in REPORT_TABLES
    ],
    pool=POOL,
)
def report_tables(context: dg.AssetExecutionContext, duckdb: DuckDBResource, governance: GovernanceConfig):
    """The KPI tables behind the compliance report."""
    with warehouse(duckdb, governance) as con:
        reports.build_tables(con)
        for name in REPORT_TABLES:
            yield dg.MaterializeResult(asset_key=["reports", name], metadata=table_metadata(con, f"reports.{name}"))


@dg.asset(
    key=["reports", "compliance_report"],
    deps=[["reports", n] for n in REPORT_TABLES] + [["consent", "consent_log"], ["governance", "ingestion_summary"]],
    group_name="reports", owners=OWNERS, kinds={"html", "markdown", "csv"}, tags=tags("reports", False), pool=POOL,
    automation_condition=dg.AutomationCondition.eager(),
)
def compliance_report(context: dg.AssetExecutionContext, duckdb: DuckDBResource,
                      governance: GovernanceConfig) -> dg.MaterializeResult:
    """The compliance report files: HTML and Markdown report, access audit summary and consent management log CSVs."""
    ctx = reports.ReportContext(key_id=governance.key_id, demo_key=governance.demo_key,
                                policy_source=governance.policy().source_dir, generated_at=reports.now_utc())
    with warehouse(duckdb, governance) as con:
        paths = reports.write_files(con, Path(governance.reports_dir), ctx)
        figures = reports.kpis(con)
    return dg.MaterializeResult(metadata={
        **{f"file/{k}": dg.MetadataValue.path(str(p.resolve())) for k, p in paths.items()},
        **{f"kpi/{k}": v for k, v in figures.items() if v is not None},
        "demo_key": governance.demo_key,
    })


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
