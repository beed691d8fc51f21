"""The production instance profile (deploy/dagster.production.yaml) loads, and the governance job runs
on it with its runs, events and check results stored in PostgreSQL."""

import shutil
import uuid
from pathlib import Path

import dagster as dg
import pytest

from streamgov_dagster_tests.conftest import require_postgres, run_pipeline
from streamgov_dagster_tests.landing import access, write_landing

PROFILE = Path(__file__).resolve().parents[1] / "deploy" / "dagster.production.yaml"


def _postgres_database() -> str:
    """A fresh database on the local server (trust auth), or skip when there is no server."""
    try:
        import psycopg2

        con = psycopg2.connect(host="127.0.0.1", port=5432, user="postgres", dbname="test", connect_timeout=3)
    except Exception as exc:  # noqa: BLE001 - any connection failure means no server here
        if require_postgres():
            raise
        pytest.skip(f"no PostgreSQL at 127.0.0.1:5432 ({type(exc).__name__})")
    name = f"streamgov_prod_{uuid.uuid4().hex[:8]}"
    con.autocommit = True
    con.cursor().execute(f"create database {name}")
    con.close()
    return name


def _drop(name: str) -> None:
    import psycopg2

    con = psycopg2.connect(host="127.0.0.1", port=5432, user="postgres", dbname="test")
    con.autocommit = True
    con.cursor().execute(f"drop database if exists {name} with (force)")
    con.close()


def test_production_profile_runs_the_job_on_postgres(env, tmp_path, monkeypatch) -> None:
    db = _postgres_database()
    try:
        home = tmp_path / "prod_home"
        home.mkdir()
        shutil.copyfile(PROFILE, home / "dagster.yaml")
        for var, value in {"DAGSTER_PG_HOST": "127.0.0.1", "DAGSTER_PG_PORT": "5432", "DAGSTER_PG_USER": "postgres",
                           "DAGSTER_PG_PASSWORD": "unused-with-trust-auth", "DAGSTER_PG_DB": db,
                           "DAGSTER_COMPUTE_LOG_DIR": str(tmp_path / "compute_logs")}.items():
            monkeypatch.setenv(var, value)
        instance = dg.DagsterInstance.from_config(str(home))
        try:
            assert type(instance.run_storage).__name__ == "PostgresRunStorage"
            assert type(instance.event_log_storage).__name__ == "PostgresEventLogStorage"
            assert type(instance.schedule_storage).__name__ == "PostgresScheduleStorage"
            assert type(instance.run_coordinator).__name__ == "QueuedRunCoordinator"
            assert instance.run_monitoring_enabled and instance.run_retries_enabled
            assert instance.run_retries_max_retries == 2

            write_landing(env["landing"], access_events=[access("e1", "2026-10-29T10:00:00Z")])
            result = run_pipeline("2026-10-29", "2026-10-29", instance=instance)
            assert result.success
            stored = instance.get_run_by_id(result.run_id)
            assert stored is not None and stored.status == dg.DagsterRunStatus.SUCCESS
            event = instance.get_latest_materialization_event(dg.AssetKey(["reports", "compliance_report"]))
            assert event is not None and event.run_id == result.run_id
            checks = instance.get_records_for_run(result.run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION)
            assert len(checks.records) >= 20
        finally:
            instance.dispose()
    finally:
        _drop(db)
