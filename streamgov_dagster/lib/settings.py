"""Configuration from STREAMGOV_* environment variables (data contract, section 1).

The Dagster resources take the same variables through dg.EnvVar; this module serves the CLI and
the plain-Python library, and holds the defaults in one place.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

DEMO_PSEUDONYM_KEY = "streamgov-demo-key-NOT-FOR-PRODUCTION"
DEMO_KEY_ID = "demo"
# The erasure register's key: separate from the pseudonym key, so the register cannot be joined to pseudonyms.
DEMO_ERASURE_KEY = "streamgov-demo-erasure-key-NOT-FOR-PRODUCTION"

DEFAULTS: dict[str, str] = {
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


def default_consent_url(landing_dir: str | Path) -> str:
    return f"sqlite:///{Path(landing_dir).resolve() / 'consent.db'}"


@dataclass(frozen=True)
class Settings:
    landing_dir: Path
    duckdb_path: Path
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
            duckdb_path=Path(env("STREAMGOV_DUCKDB_PATH")),
            reports_dir=Path(env("STREAMGOV_REPORTS_DIR")),
            alerts_path=Path(env("STREAMGOV_ALERTS_PATH")),
            consent_db_url=env("STREAMGOV_CONSENT_DB_URL") or default_consent_url(landing),
            policy_dir=Path(policy) if policy else None,
            pseudonym_key_set=env("STREAMGOV_PSEUDONYM_KEY") is not None,
            alert_webhook_url=env("STREAMGOV_ALERT_WEBHOOK_URL"),
        )
