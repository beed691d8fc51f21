"""Raw layer: the landing-zone sources loaded into DuckDB, the quarantine and the ingestion summary."""

import dagster as dg
from dagster_duckdb import DuckDBResource

from streamgov_dagster.defs.common import OWNERS, POOL, STATE_POOL, schema_check, table_metadata, tags
from streamgov_dagster.defs.partitions import daily_partitions, day_range, partition_bounds, run_day_range
from streamgov_dagster.defs.resources import GovernanceConfig, warehouse
from streamgov_dagster.lib import consent, directory, formats, identifiers, ingest, masking
from streamgov_dagster.lib.validation import validate

def _landing(name: str, kinds: set[str], description: str) -> dg.AssetSpec:
    """A landing-zone input: data the streaming service delivers, which Dagster does not produce."""
    return dg.AssetSpec(key=["landing", name], group_name="landing", owners=OWNERS, kinds=kinds,
                        description=description, tags=tags("landing", True))


landing_access = _landing("access_logs", {"file"}, "Application and API access events as JSON lines, dropped "
                          "into <landing>/access by the service.")
landing_audit = _landing("audit_trail", {"file"}, "Internal admin-tool audit trail as JSON lines in <landing>/audit.")
landing_cdn = _landing("cdn_logs", {"file"}, "CloudFront standard access logs (W3C, plain or gzip) in <landing>/cdn.")
landing_weblogs = _landing("web_logs", {"file"}, "nginx / Apache common, combined and vhost_combined logs (plain or "
                           "gzip) in <landing>/weblogs.")
landing_cloudtrail = _landing("cloudtrail", {"file"}, "AWS CloudTrail delivery files and one-record-per-line files "
                              "(plain or gzip) in <landing>/cloudtrail.")
landing_directory = _landing("staff_directory", {"csv"}, "Workforce directory <landing>/directory/staff.csv: roles "
                             "and employment dates.")
landing_consent = _landing("consent_db", {"sqlite", "postgres"}, "The consent database of record (table "
                           "consent_events), read through STREAMGOV_CONSENT_DB_URL.")

_SOURCES = {"access": (ingest.ACCESS, ("access", "cdn", "weblogs")), "audit": (ingest.AUDIT, ("audit", "cloudtrail"))}


def _load_sources(context: dg.AssetExecutionContext, duckdb: DuckDBResource, governance: GovernanceConfig,
                  name: str) -> dg.MaterializeResult:
    """Load every source feeding one raw table: the JSON-lines source, then the log formats."""
    src, sources = _SOURCES[name]
    first, last = day_range(context)
    policy = governance.policy()
    meta: dict[str, object] = {}
    with warehouse(duckdb, governance) as con:
        for source in sources:
            if source == src.name:
                files = ingest.list_files(governance.landing / source, ingest.JSON_PATTERNS)
                stats = ingest.load(con, src, governance.landing, files, first, last, partition_bounds())
            else:
                stats = formats.load(con, source, governance.landing, policy, first, last, partition_bounds())
            meta.update({f"{source}/{k}": v for k, v in stats.items()})
            context.log.info(f"{source}: {stats['rows_loaded']} rows loaded for {first}..{last}, "
                             f"{stats['rows_quarantined']} quarantined, {stats['duplicates']} duplicates, "
                             f"{stats['files']} files")
        # the raw identifiers of the days loaded, hashed for the leak checks (identifiers.py)
        indexed = identifiers.sync(con, {src.table: masking.indexed_identifier_columns(policy)[src.table]},
                                   rebuild=(first, last))
        meta["identifier_index/days_hashed"] = indexed.get(src.table, 0)
        meta = table_metadata(con, src.table, **meta)
    return dg.MaterializeResult(metadata=meta)


@dg.asset(
    key=["raw", "access_events"], deps=[landing_access, landing_cdn, landing_weblogs], group_name="raw", owners=OWNERS,
    kinds={"duckdb", "json"}, tags=tags("raw", True), partitions_def=daily_partitions,
    backfill_policy=dg.BackfillPolicy.single_run(), pool=POOL,
)
def raw_access_events(context: dg.AssetExecutionContext, duckdb: DuckDBResource,
                      governance: GovernanceConfig) -> dg.MaterializeResult:
    """Access events (schema A) from the app, the CDN and the web tier, in UTC, one row per event."""
    return _load_sources(context, duckdb, governance, "access")


@dg.asset(
    key=["raw", "audit_events"], deps=[landing_audit, landing_cloudtrail], group_name="raw", owners=OWNERS,
    kinds={"duckdb", "json"}, tags=tags("raw", True), partitions_def=daily_partitions,
    backfill_policy=dg.BackfillPolicy.single_run(), pool=POOL,
)
def raw_audit_events(context: dg.AssetExecutionContext, duckdb: DuckDBResource,
                     governance: GovernanceConfig) -> dg.MaterializeResult:
    """Audit events (schema B) from the admin tools and AWS CloudTrail, in UTC, one row per audit_id."""
    return _load_sources(context, duckdb, governance, "audit")


@dg.asset(
    key=["raw", "staff_directory"], deps=[landing_directory], group_name="raw", owners=OWNERS,
    kinds={"duckdb", "csv"}, tags=tags("raw", True), pool=STATE_POOL,
)
def raw_staff_directory(context: dg.AssetExecutionContext, duckdb: DuckDBResource,
                        governance: GovernanceConfig) -> dg.MaterializeResult:
    """The workforce directory (schema C): each actor's role and employment dates."""
    with warehouse(duckdb, governance) as con:
        stats = directory.load(con, governance.landing)
        meta = table_metadata(con, "raw.staff_directory", **{f"run/{k}": v for k, v in stats.items()})
    return dg.MaterializeResult(metadata=meta)


@dg.asset(
    key=["raw", "consent_events"], deps=[landing_consent], group_name="raw", owners=OWNERS,
    kinds={"duckdb", "sqlite"}, tags=tags("raw", True), pool=STATE_POOL,
    check_specs=[dg.AssetCheckSpec("consent_events_source_available", asset=["raw", "consent_events"],
                                   description="The consent source was readable and not empty; otherwise "
                                               "nobody has consent (fail closed).")],
)
def raw_consent_events(context: dg.AssetExecutionContext, duckdb: DuckDBResource,
                       governance: GovernanceConfig) -> dg.MaterializeResult:
    """Consent events (schema D) copied from the consent database of record and validated."""
    with warehouse(duckdb, governance) as con:
        stats = consent.load_raw(con, governance.consent_url,
                                 governance.policy().consent["incremental_lookback_days"])
        meta = table_metadata(con, "raw.consent_events", **{f"run/{k}": v for k, v in stats.items()})
    ok = stats["source_status"] == "ok"
    if not ok:
        context.log.error(f"consent source {stats['source_status']}: no consent for anyone (fail closed)")
    return dg.MaterializeResult(
        metadata=meta,
        check_results=[dg.AssetCheckResult(
            check_name="consent_events_source_available", passed=ok, severity=dg.AssetCheckSeverity.ERROR,
            metadata={"source_status": stats["source_status"], "rows_loaded": stats["rows_loaded"]},
        )],
    )


@dg.asset(
    key=["raw", "quarantine"],
    deps=[raw_access_events, raw_audit_events, raw_staff_directory, raw_consent_events, ["raw", "dsar_requests"],
          ["governance", "erasures"]],
    group_name="raw", owners=OWNERS, kinds={"duckdb"}, tags=tags("quarantine", True), pool=STATE_POOL,
)
def raw_quarantine(context: dg.AssetExecutionContext, duckdb: DuckDBResource,
                   governance: GovernanceConfig) -> dg.MaterializeResult:
    """Every line, row or file that could not be loaded: source, file, line number and reason."""
    with warehouse(duckdb, governance) as con:
        ingest.ensure_shared_tables(con)
        con.execute("create or replace view raw.quarantine as select source, file, line_no, reason, event_date, raw_line "
                    "from raw.quarantine_lines")
        by_reason = con.execute("select source || ':' || reason, count(*) from raw.quarantine group by all order by 1").fetchall()
        meta = table_metadata(con, "raw.quarantine", **{f"reason/{k}": int(v) for k, v in by_reason})
    return dg.MaterializeResult(metadata=meta)


@dg.asset(
    key=["governance", "ingestion_summary"], deps=[raw_quarantine], group_name="raw", owners=OWNERS,
    kinds={"duckdb"}, tags=tags("governance", False), pool=STATE_POOL,
)
def ingestion_summary(context: dg.AssetExecutionContext, duckdb: DuckDBResource,
                      governance: GovernanceConfig) -> dg.MaterializeResult:
    """Per source and file: lines read, rows loaded, rows quarantined and duplicates, which must balance."""
    with warehouse(duckdb, governance) as con:
        ingest.ensure_shared_tables(con)
        con.execute(
            "create or replace table governance.ingestion_summary as "
            "select source, file, lines_read, rows_loaded, rows_quarantined, duplicates, drift_rows, file_error, "
            "lines_read = rows_loaded + rows_quarantined + duplicates as balanced "
            "from raw.ingest_ledger order by source, file"
        )
        totals = con.execute("select coalesce(sum(lines_read),0), coalesce(sum(rows_loaded),0), "
                             "coalesce(sum(rows_quarantined),0), coalesce(sum(duplicates),0), "
                             "count(*) filter (where file_error is not null) from governance.ingestion_summary").fetchone()
        meta = table_metadata(con, "governance.ingestion_summary", lines_read=int(totals[0]), rows_loaded=int(totals[1]),
                              rows_quarantined=int(totals[2]), duplicates=int(totals[3]), unreadable_files=int(totals[4]))
    return dg.MaterializeResult(metadata=meta)


def _schema_check_for(asset_key: list[str], table: str, name: str, blocking: bool = True, by_day: bool = False):
    description = f"{table} conforms to its pandera model (validated in DuckDB; counts only)."
    if by_day:
        description += (" In a run of some days, the rows of those days: the other days were validated when written, "
                        "and only erasure and the retention purge change them afterwards, by deleting rows.")

    @dg.asset_check(asset=asset_key, name=name, blocking=blocking, pool=POOL, description=description)
    def _check(context: dg.AssetCheckExecutionContext, duckdb: DuckDBResource,
               governance: GovernanceConfig) -> dg.AssetCheckResult:
        with warehouse(duckdb, governance) as con:
            return schema_check(con, table, days=run_day_range(context) if by_day else None)

    return _check


raw_access_events_contract = _schema_check_for(["raw", "access_events"], "raw.access_events", "raw_access_events_contract",
                                               by_day=True)
raw_audit_events_contract = _schema_check_for(["raw", "audit_events"], "raw.audit_events", "raw_audit_events_contract",
                                              by_day=True)
raw_staff_directory_contract = _schema_check_for(["raw", "staff_directory"], "raw.staff_directory", "raw_staff_directory_contract")
raw_consent_events_contract = _schema_check_for(["raw", "consent_events"], "raw.consent_events", "raw_consent_events_contract")
raw_quarantine_schema = _schema_check_for(["raw", "quarantine"], "raw.quarantine", "raw_quarantine_schema")


@dg.asset_check(asset=ingestion_summary, blocking=True, pool=POOL,
                description="For every source and file: lines read = rows loaded + rows quarantined + duplicates.")
def ingestion_summary_balanced(duckdb: DuckDBResource, governance: GovernanceConfig) -> dg.AssetCheckResult:
    with warehouse(duckdb, governance) as con:
        result = validate(con, "governance.ingestion_summary")
        unbalanced = con.execute("select count(*) from governance.ingestion_summary where not balanced").fetchone()[0]
    return dg.AssetCheckResult(passed=result.passed and unbalanced == 0,
                               metadata={**result.metadata(), "unbalanced_files": int(unbalanced)})
