"""Consent layer: point-in-time consent state history and the consent management log."""

import dagster as dg
from dagster_duckdb import DuckDBResource

from streamgov_dagster.defs.common import OWNERS, POOL, STATE_POOL, schema_check, table_metadata, tags
from streamgov_dagster.defs.partitions import days_text, run_day_range
from streamgov_dagster.defs.resources import GovernanceConfig, warehouse
from streamgov_dagster.lib import consent, consentlog


@dg.asset(
    key=["consent", "consent_state"], deps=[["raw", "consent_events"], ["governance", "erasures"]], group_name="consent", owners=OWNERS,
    kinds={"duckdb"}, tags=tags("consent", True), pool=STATE_POOL,
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
    kinds={"duckdb"}, tags=tags("consent", True), pool=STATE_POOL,
    automation_condition=dg.AutomationCondition.eager(),
)
def consent_log(context: dg.AssetExecutionContext, duckdb: DuckDBResource,
                governance: GovernanceConfig) -> dg.MaterializeResult:
    """Consent management log: append-only, hash-chained, one entry per consent change, pseudonymized."""
    with warehouse(duckdb, governance) as con:
        appended = consentlog.append_changes(con, governance.key_id)
        changes = dict(con.execute("select change, count(*) from consent.consent_log group by all").fetchall())
        meta = table_metadata(con, "consent.consent_log", appended=appended,
                              **{f"changes/{k}": int(v) for k, v in changes.items()})
    return dg.MaterializeResult(metadata=meta)


@dg.asset(
    key=["consent", "signal_mismatches"], deps=[["raw", "consent_events"], ["governance", "erasures"]], group_name="consent", owners=OWNERS,
    kinds={"duckdb"}, tags=tags("consent", False), pool=STATE_POOL, automation_condition=dg.AutomationCondition.eager(),
)
def signal_mismatches(context: dg.AssetExecutionContext, duckdb: DuckDBResource,
                      governance: GovernanceConfig) -> dg.MaterializeResult:
    """Consent rows whose IAB TCF string disagrees with their recorded status (consent_signal_mismatch findings)."""
    policy = governance.policy()
    with warehouse(duckdb, governance) as con:
        n = consent.build_signal_mismatches(con, policy.consent["tcf_purpose_map"])
        by_finding = dict(con.execute("select finding, count(*) from consent.signal_mismatches group by all").fetchall())
        meta = table_metadata(con, "consent.signal_mismatches", **{f"finding/{k}": int(v) for k, v in by_finding.items()})
    if n:
        context.log.warning(f"{n} consent rows disagree with their TC string")
    return dg.MaterializeResult(metadata=meta)


@dg.asset_check(asset=signal_mismatches, blocking=False, pool=POOL,
                description="No consent row disagrees with the TC string it carries (WARN: findings for the DPO).")
def consent_signals_agree(duckdb: DuckDBResource, governance: GovernanceConfig) -> dg.AssetCheckResult:
    with warehouse(duckdb, governance) as con:
        n = con.execute("select count(*) from consent.signal_mismatches").fetchone()[0]
    return dg.AssetCheckResult(passed=n == 0, severity=dg.AssetCheckSeverity.WARN, metadata={"mismatches": int(n)})


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


@dg.asset_check(asset=consent_log, blocking=True, pool=POOL,
                description="The hash chain of the consent log verifies: no entry edited, deleted or reordered.")
def consent_log_chain_intact(duckdb: DuckDBResource, governance: GovernanceConfig) -> dg.AssetCheckResult:
    with warehouse(duckdb, governance) as con:
        report = consentlog.verify(con)
    meta: dict[str, object] = {"entries": report.entries}
    if not report.intact:
        meta.update(first_broken_seq=report.first_broken_seq, problem=report.problem)
    return dg.AssetCheckResult(passed=report.intact, metadata=meta)


@dg.multi_asset(
    specs=[
        dg.AssetSpec(["masked", f"{purpose}_events"], group_name="masked", owners=OWNERS, kinds={"duckdb"},
                     tags=tags("masked", False), deps=[["masked", "access_events"], consent_state],
                     description=f"Released {purpose} events: exactly those whose user had valid {purpose} consent "
                                 "at the event's instant (a view over masked.access_events and the consent state).",
                     automation_condition=dg.AutomationCondition.eager())
        for purpose in consent.GATED_PURPOSES
    ],
    check_specs=[
        dg.AssetCheckSpec(f"{purpose}_events_consented", asset=["masked", f"{purpose}_events"], blocking=True,
                          description="The view is streamgov's query, and over the run's days every row had valid consent "
                                      "at its instant and no consented event is missing (an independent range join).")
        for purpose in consent.GATED_PURPOSES
    ],
    pool=STATE_POOL,
)
def consent_gated_events(context: dg.AssetExecutionContext, duckdb: DuckDBResource, governance: GovernanceConfig):
    """Consent-gated datasets: views over masked.access_events and the consent state history, so a withdrawal,
    an erasure or a new day shows in them at once. Each run checks the days it loaded (every day when it names
    none) against an independent formulation, and that each view is streamgov's query."""
    days = run_day_range(context)
    with warehouse(duckdb, governance) as con:
        created = consent.build_gated(con)
        checked = consent.gated_check(con, days=days)
        for purpose in consent.GATED_PURPOSES:
            name = f"masked.{purpose}_events"
            result = checked[purpose]
            meta = table_metadata(con, name, row_count=False, pseudonym_key_id=governance.key_id,
                                  relation="view", view_created=name in created)
            # the view's rows over the whole history would cost its join; the checked days' are known
            meta["dagster/row_count" if days is None else "rows_in_run_days"] = result["rows"]
            yield dg.MaterializeResult(asset_key=["masked", f"{purpose}_events"], metadata=meta)
            yield dg.AssetCheckResult(
                asset_key=["masked", f"{purpose}_events"], check_name=f"{purpose}_events_consented",
                passed=result["without_valid_consent"] == 0 and result["consented_missing"] == 0
                and result["definition_intact"],
                metadata={"rows_checked": result["rows"], "rows_without_valid_consent": result["without_valid_consent"],
                          "consented_events_missing": result["consented_missing"],
                          "definition_intact": result["definition_intact"],
                          "days_checked": days_text(days)})
