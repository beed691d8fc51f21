"""Audit layer: the access-audit rules over access logs and audit trails -> governance.violations."""

import dagster as dg
from dagster_duckdb import DuckDBResource

from streamgov_dagster.defs.common import OWNERS, POOL, STATE_POOL, schema_check, table_metadata, tags
from streamgov_dagster.defs.resources import GovernanceConfig, warehouse
from streamgov_dagster.lib import rules


@dg.asset(
    key=["governance", "violations"],
    deps=[["raw", "access_events"], ["raw", "audit_events"], ["raw", "staff_directory"], ["consent", "consent_state"],
          ["governance", "erasures"]],
    group_name="audit", owners=OWNERS, kinds={"duckdb", "sql"}, tags=tags("governance", False), pool=STATE_POOL,
    automation_condition=dg.AutomationCondition.eager(),
)
def violations(context: dg.AssetExecutionContext, duckdb: DuckDBResource,
               governance: GovernanceConfig) -> dg.MaterializeResult:
    """Detected violations: one row per incident, with rule, severity, pseudonymous subject and evidence ids."""
    policy = governance.policy()
    with warehouse(duckdb, governance) as con:
        per_rule = rules.detect(con, policy)
        by_severity = dict(con.execute("select severity, count(*) from governance.violations group by all").fetchall())
        meta = table_metadata(con, "governance.violations", policy_source=policy.source_dir,
                              detection_mode=str(rules.LAST_RUN["mode"]),
                              days_recomputed=int(rules.LAST_RUN["recomputed_days"]),
                              **{f"rule/{k}": v for k, v in per_rule.items()},
                              **{f"severity/{k}": int(v) for k, v in by_severity.items()})
    context.log.info(f"{sum(per_rule.values())} violations across {sum(1 for v in per_rule.values() if v)} rules "
                     f"({rules.LAST_RUN['mode']} detection, {rules.LAST_RUN['recomputed_days']} days of access events recomputed)")
    return dg.MaterializeResult(metadata=meta)


@dg.asset_check(asset=violations, blocking=True, pool=POOL,
                description="governance.violations conforms to the contract (ids, severities, pseudonymous subjects).")
def violations_schema(duckdb: DuckDBResource, governance: GovernanceConfig) -> dg.AssetCheckResult:
    with warehouse(duckdb, governance) as con:
        result = schema_check(con, "governance.violations")
        # Row-level invariants pandera's ibis backend cannot express on list columns.
        bad = con.execute("select count(*) filter (where window_start > window_end), "
                          "count(*) filter (where len(event_ids) <> event_count or event_count < 1) "
                          "from governance.violations").fetchone()
    return dg.AssetCheckResult(passed=result.passed and bad[0] == 0 and bad[1] == 0,
                               metadata={**result.metadata, "window_not_ordered": int(bad[0]),
                                         "evidence_mismatch": int(bad[1])})
