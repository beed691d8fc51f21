from __future__ import annotations

import os
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from streamgov_dagster.lib.pseudonym import register_udfs
from streamgov_dagster.lib.warehouse import prepare

TEST_KEY = "test-key-0123456789"
# Third-party samples live beside the checkout (../shared/conformance); tests using them skip when absent.
CONFORMANCE = Path(os.environ.get("STREAMGOV_CONFORMANCE_DIR")
                   or Path(__file__).resolve().parents[2] / "shared" / "conformance")


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    """STREAMGOV_* pointed at tmp_path (landing zone to be written by the test)."""
    paths = {
        "landing": tmp_path / "landing", "warehouse": tmp_path / "warehouse.duckdb",
        "reports": tmp_path / "reports", "alerts": tmp_path / "alerts" / "alerts.jsonl",
    }
    monkeypatch.setenv("STREAMGOV_LANDING_DIR", str(paths["landing"]))
    monkeypatch.setenv("STREAMGOV_DUCKDB_PATH", str(paths["warehouse"]))
    monkeypatch.setenv("STREAMGOV_REPORTS_DIR", str(paths["reports"]))
    monkeypatch.setenv("STREAMGOV_ALERTS_PATH", str(paths["alerts"]))
    monkeypatch.setenv("STREAMGOV_PSEUDONYM_KEY", TEST_KEY)
    monkeypatch.setenv("STREAMGOV_PSEUDONYM_KEY_ID", "test-2026")
    monkeypatch.delenv("STREAMGOV_CONSENT_DB_URL", raising=False)
    monkeypatch.delenv("STREAMGOV_POLICY_DIR", raising=False)
    for name in ("STREAMGOV_WAREHOUSE", "STREAMGOV_DUCKLAKE_CATALOG", "STREAMGOV_DUCKLAKE_DATA_PATH"):
        monkeypatch.delenv(name, raising=False)  # the DuckDB file unless a test chooses DuckLake
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster_home"))
    (tmp_path / "dagster_home").mkdir()
    return paths


@pytest.fixture
def con(tmp_path: Path):
    c = duckdb.connect(str(tmp_path / "unit.duckdb"))
    prepare(c)
    register_udfs(c, TEST_KEY)
    yield c
    c.close()


def run_pipeline(first: str, last: str, instance: dg.DagsterInstance | None = None) -> dg.ExecuteInProcessResult:
    """Run the governance job like `streamgov run` does, over days first..last."""
    from streamgov_dagster.definitions import defs

    job = defs().resolve_job_def("governance_job")
    return job.execute_in_process(
        instance=instance or dg.DagsterInstance.ephemeral(), raise_on_error=False,
        tags={"dagster/asset_partition_range_start": first, "dagster/asset_partition_range_end": last},
    )


def require_postgres() -> bool:
    return os.environ.get("STREAMGOV_REQUIRE_POSTGRES") == "1"


def policy_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, alerting: dict[str, object]) -> Path:
    """STREAMGOV_POLICY_DIR pointed at a copy of the packaged policies with alerting.yaml's keys overridden."""
    import shutil

    import yaml

    from streamgov_dagster.lib import policy

    folder = tmp_path / "policies"
    shutil.copytree(Path(policy.__file__).resolve().parents[1] / "policies", folder)
    data = yaml.safe_load((folder / "alerting.yaml").read_text())
    (folder / "alerting.yaml").write_text(yaml.safe_dump({**data, **alerting}))
    monkeypatch.setenv("STREAMGOV_POLICY_DIR", str(folder))
    return folder
