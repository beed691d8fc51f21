"""Consent layer: point-in-time consent state history and the consent management log."""

import dagster as dg
from dagster_duckdb import DuckDBResource

from streamgov_dagster.defs.common import OWNERS, POOL, schema_check, table_metadata, tags
from streamgov_dagster.defs.resources import GovernanceConfig, warehouse
from streamgov_dagster.lib import consent


@dg.asset(
    key=["consent", "consent_state"], deps=[["raw", "consent_events"]], group_name="consent", owners=OWNERS,
    kinds={"duckdb"}, tags=tags("consent", True), pool=POOL,
    automation_condition=dg.AutomationCondition.eager(),
)
def consent_state(context: dg.AssetExecutionContext, duckdb: DuckDBResource,
                  governance: GovernanceConfig) -> dg.MaterializeResult:
    """Consent state history: per user pseudonym and purpose, which state held from valid_from to valid_to."""
    with warehouse(duckdb, governance) as con:
        n = consent.build_state(con)
        granted_now = con.execute("select count(*) from consent.consent_state where state = 'granted' and valid_to is null").fetchone()[0]
        meta = table_metadata(con, "consent.consent_state", open_grants=int(granted_now), pseudonym_key_id=governance.key_id)
    context.log.info(f"consent state history: {n} intervals")
    return dg.MaterializeResult(metadata=meta)


@dg.asset(
    key=["consent", "consent_log"], deps=[consent_state], group_name="consent", owners=OWNERS,
    kinds={"duckdb"}, tags=tags("consent", True), pool=POOL,
    automation_condition=dg.AutomationCondition.eager(),
)
def consent_log(context: dg.AssetExecutionContext, duckdb: DuckDBResource,
                governance: GovernanceConfig) -> dg.MaterializeResult:
    """Consent management log: one entry per consent change (grant, denial, withdrawal, expiry), pseudonymized."""
    with warehouse(duckdb, governance) as con:
        consent.build_log(con)
        changes = dict(con.execute("select change, count(*) from consent.consent_log group by all").fetchall())
        meta = table_metadata(con, "consent.consent_log", **{f"changes/{k}": int(v) for k, v in changes.items()})
    return dg.MaterializeResult(metadata=meta)


@dg.asset_check(asset=consent_state, blocking=True, pool=POOL,
                description="consent.consent_state conforms to its model and its intervals never overlap.")
def consent_state_schema(duckdb: DuckDBResource, governance: GovernanceConfig) -> dg.AssetCheckResult:
    with warehouse(duckdb, governance) as con:
        result = schema_check(con, "consent.consent_state")
        overlaps = con.execute(
            "select count(*) from (select valid_to, lead(valid_from) over (partition by user_pseudonym, purpose "
            "order by valid_from) as next_from from consent.consent_state) where next_from < valid_to"
        ).fetchone()[0]
    return dg.AssetCheckResult(passed=result.passed and overlaps == 0,
                               metadata={**result.metadata, "overlapping_intervals": int(overlaps)})


@dg.asset_check(asset=consent_log, blocking=True, pool=POOL, description="consent.consent_log conforms to its model.")
def consent_log_schema(duckdb: DuckDBResource, governance: GovernanceConfig) -> dg.AssetCheckResult:
    with warehouse(duckdb, governance) as con:
        return schema_check(con, "consent.consent_log")
