"""Configuration from STREAMGOV_* environment variables (data contract, section 1).

The Dagster resources take the same variables through dg.EnvVar; this module serves the CLI and
the plain-Python library, and holds the defaults in one place.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import date
from pathlib import Path

DEMO_PSEUDONYM_KEY = "streamgov-demo-key-NOT-FOR-PRODUCTION"
DEMO_KEY_ID = "demo"
# The erasure register's key: separate from the pseudonym key, so the register cannot be joined to pseudonyms.
DEMO_ERASURE_KEY = "streamgov-demo-erasure-key-NOT-FOR-PRODUCTION"

# The warehouse backends: the embedded DuckDB file, or DuckLake (a catalog database plus Parquet files).
BACKENDS = ("duckdb", "ducklake")

DEFAULTS: dict[str, str] = {
    "STREAMGOV_WAREHOUSE": "duckdb",
    "STREAMGOV_LANDING_DIR": "data/landing",
    "STREAMGOV_DUCKDB_PATH": "data/warehouse.duckdb",
    "STREAMGOV_REPORTS_DIR": "data/reports",
    "STREAMGOV_ALERTS_PATH": "data/alerts/alerts.jsonl",
}


def env(name: str) -> str | None:
    value = os.environ.get(name)
    if value is not None and value.strip() == "":
        return None
    return value if value is not None else DEFAULTS.get(name)


class ConfigError(ValueError):
    """A STREAMGOV_* variable holds a value the product cannot use."""


def warehouse_backend() -> str:
    """STREAMGOV_WAREHOUSE: `duckdb` (default) or `ducklake`; anything else is a configuration error."""
    backend = (env("STREAMGOV_WAREHOUSE") or "").strip().lower()
    if backend not in BACKENDS:
        raise ConfigError(f"STREAMGOV_WAREHOUSE must be one of {', '.join(BACKENDS)}, not {backend!r}")
    return backend


# The first day that has a daily partition (events before it are quarantined as ts_out_of_range). Every run
# pays for it: Dagster lists every partition key of an input read over all partitions, 23 times a run (0.11 s
# from 2000-01-01, 0.03 s from 2020-01-01 here). 2020 is before anything the default retention keeps (the
# violations' six years); a deployment loading older archives sets STREAMGOV_PARTITIONS_START.
DEFAULT_PARTITIONS_START = date(2020, 1, 1)


def partitions_start() -> date:
    """STREAMGOV_PARTITIONS_START (YYYY-MM-DD), default DEFAULT_PARTITIONS_START. Read when the definitions
    load: the code server and the run workers must see the same value."""
    raw = (env("STREAMGOV_PARTITIONS_START") or "").strip()
    if not raw:
        return DEFAULT_PARTITIONS_START
    try:
        return date.fromisoformat(raw)
    except ValueError:
        raise ConfigError(f"STREAMGOV_PARTITIONS_START must be a date (YYYY-MM-DD), not {raw!r}") from None


def default_consent_url(landing_dir: str | Path) -> str:
    return f"sqlite:///{Path(landing_dir).resolve() / 'consent.db'}"


@dataclass(frozen=True)
class Settings:
    landing_dir: Path
    warehouse: str
    duckdb_path: Path
    ducklake_catalog: str | None
    ducklake_data_path: str | None
    reports_dir: Path
    alerts_path: Path
    consent_db_url: str
    policy_dir: Path | None
    pseudonym_key_set: bool
    alert_webhook_url: str | None

    @classmethod
    def from_env(cls) -> "Settings":
        landing = Path(env("STREAMGOV_LANDING_DIR"))
        policy = env("STREAMGOV_POLICY_DIR")
        return cls(
            landing_dir=landing,
            warehouse=warehouse_backend(),
            duckdb_path=Path(env("STREAMGOV_DUCKDB_PATH")),
            ducklake_catalog=env("STREAMGOV_DUCKLAKE_CATALOG"),
            ducklake_data_path=env("STREAMGOV_DUCKLAKE_DATA_PATH"),
            reports_dir=Path(env("STREAMGOV_REPORTS_DIR")),
            alerts_path=Path(env("STREAMGOV_ALERTS_PATH")),
            consent_db_url=env("STREAMGOV_CONSENT_DB_URL") or default_consent_url(landing),
            policy_dir=Path(policy) if policy else None,
            pseudonym_key_set=env("STREAMGOV_PSEUDONYM_KEY") is not None,
            alert_webhook_url=env("STREAMGOV_ALERT_WEBHOOK_URL"),
        )
