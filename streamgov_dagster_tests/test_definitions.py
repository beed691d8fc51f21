import dagster as dg

from streamgov_dagster.definitions import defs

EXPECTED_ASSETS = {
    "raw/access_events": "raw", "raw/audit_events": "raw", "raw/staff_directory": "raw",
    "raw/consent_events": "raw", "raw/quarantine": "raw", "governance/ingestion_summary": "raw",
    "consent/consent_state": "consent", "consent/consent_log": "consent",
    "governance/violations": "audit",
    "masked/access_events": "masked", "masked/audit_events": "masked",
    "reports/access_audit_summary": "reports", "reports/compliance_kpis": "reports",
    "reports/consent_kpis": "reports", "reports/compliance_report": "reports",
    "reports/retention_status": "reports", "reports/detection_quality": "reports",
    "governance/pii_leak_scan": "reports", "consent/signal_mismatches": "consent",
    "masked/personalization_events": "masked", "masked/analytics_events": "masked", "masked/advertising_events": "masked",
    "raw/dsar_requests": "dsar", "reports/dsar_exports": "dsar", "governance/erasures": "dsar",
    "reports/dsar_status": "dsar", "governance/erasure_verification": "dsar",
}


def test_definitions_load_with_expected_graph() -> None:
    d = defs()
    dg.Definitions.validate_loadable(d)
    graph = d.resolve_asset_graph()
    keys = {k.to_user_string() for k in graph.get_all_asset_keys()}
    assert set(EXPECTED_ASSETS) <= keys
    for key, group in EXPECTED_ASSETS.items():
        node = graph.get(dg.AssetKey.from_user_string(key))
        assert node.group_name == group, key
        assert node.owners == ["team:data-governance"], key
        assert node.description, key
        assert node.kinds, key
        assert node.tags.get("layer") and node.tags.get("pii") in ("true", "false"), key
    # one lineage graph: the report depends transitively on every raw source
    report = dg.AssetKey(["reports", "compliance_report"])
    upstream = {k.to_user_string() for k in dg.AssetSelection.assets(report).upstream().resolve(graph)}
    assert {"raw/access_events", "raw/audit_events", "raw/consent_events", "raw/staff_directory",
            "masked/access_events", "governance/violations", "consent/consent_state", "reports/dsar_status"} <= upstream
    # erasure runs after the raw loads and before everything derived from them
    downstream = {k.to_user_string() for k in
                  dg.AssetSelection.assets(dg.AssetKey(["governance", "erasures"])).downstream().resolve(graph)}
    assert {"consent/consent_state", "masked/access_events", "masked/audit_events", "governance/violations",
            "raw/quarantine", "governance/erasure_verification"} <= downstream


def test_checks_sensors_schedules_and_job() -> None:
    d = defs()
    checks = {k.name for k in d.resolve_asset_graph().asset_check_keys}
    assert {"raw_access_events_contract", "masked_access_events_no_raw_identifiers",
            "masked_audit_events_no_raw_identifiers", "ingestion_summary_balanced", "violations_schema",
            "consent_events_source_available", "erased_subjects_absent", "dsar_none_overdue"} <= checks
    assert d.resolve_job_def("governance_job") is not None
    sensors = {s.name for s in d.sensors}
    assert {"violation_alert_sensor", "run_failure_alert_sensor", "check_failure_alert_sensor",
            "streamgov_automation_sensor", "dsar_deadline_sensor"} <= sensors
    assert {s.name for s in d.schedules} == {"daily_governance_refresh", "daily_retention_purge"}
    assert d.resolve_job_def("retention_purge_job") is not None


POOLS = """
import json
from streamgov_dagster.definitions import defs
d = defs()
checks = {key.name for key in d.resolve_asset_graph().asset_check_keys}
nodes = d.resolve_job_def("governance_job").graph.node_defs
print(json.dumps({node.name: [node.pool, any(node.name.endswith("_" + c) for c in checks)] for node in nodes}))
"""


def test_pools_follow_the_warehouse_backend() -> None:
    """DuckDB file: every step in pool "duckdb" (one writer). DuckLake: the partitioned event-level assets and
    the checks in no pool; the unpartitioned assets, which carry state between runs, in "ducklake_state".
    Pools are fixed when the definitions load, so each backend is loaded in a fresh interpreter."""
    import json
    import os
    import subprocess
    import sys

    pools = {}
    for backend in ("duckdb", "ducklake"):
        env = {**os.environ, "STREAMGOV_WAREHOUSE": backend}
        done = subprocess.run([sys.executable, "-c", POOLS], env=env, capture_output=True, text=True, check=True)
        pools[backend] = json.loads(done.stdout.strip().splitlines()[-1])
    assert {pool for pool, _ in pools["duckdb"].values()} == {"duckdb"}
    lake = pools["ducklake"]
    partitioned = {"raw__access_events", "raw__audit_events", "masked__access_events", "masked__audit_events"}
    checks = {n for n, (_, is_check) in lake.items() if is_check}
    assert len(checks) >= 15
    assert {n for n, (pool, _) in lake.items() if pool is None} == partitioned | checks
    assert {pool for n, (pool, _) in lake.items() if n not in partitioned | checks} == {"ducklake_state"}
    assert {"consent__consent_log", "governance__erasures", "raw__dsar_requests", "governance__violations"} <= set(lake)


START = """
from streamgov_dagster.defs.partitions import daily_partitions, partition_bounds
print(daily_partitions.get_first_partition_key(), partition_bounds()[0].isoformat())
"""


def test_partitions_start_follows_the_setting(monkeypatch) -> None:
    """The daily partitions (and so the ingest's ts_out_of_range bound) start on 2020-01-01, or on
    STREAMGOV_PARTITIONS_START; a value that is not a date stops the definitions from loading."""
    import os
    import subprocess
    import sys

    import pytest

    from streamgov_dagster.lib.settings import ConfigError, partitions_start

    def first(value: str | None) -> subprocess.CompletedProcess:
        env = {k: v for k, v in os.environ.items() if k != "STREAMGOV_PARTITIONS_START"}
        if value is not None:
            env["STREAMGOV_PARTITIONS_START"] = value
        return subprocess.run([sys.executable, "-c", START], env=env, capture_output=True, text=True)

    assert first(None).stdout.split() == ["2020-01-01", "2020-01-01"]
    assert first("2012-03-01").stdout.split() == ["2012-03-01", "2012-03-01"]
    bad = first("March 2012")
    assert bad.returncode != 0 and "STREAMGOV_PARTITIONS_START must be a date" in bad.stderr
    monkeypatch.setenv("STREAMGOV_PARTITIONS_START", " ")
    assert partitions_start().isoformat() == "2020-01-01"
    monkeypatch.setenv("STREAMGOV_PARTITIONS_START", "2020-13-01")
    with pytest.raises(ConfigError):
        partitions_start()
