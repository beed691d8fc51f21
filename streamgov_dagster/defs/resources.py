"""Every resource, configured from STREAMGOV_* environment variables through dg.EnvVar."""

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
import duckdb
from dagster_duckdb import DuckDBResource

from streamgov_dagster.lib import alerts
from streamgov_dagster.lib.policy import Policy, load_policy
from streamgov_dagster.lib.pseudonym import register_udfs, unregister_udfs
from streamgov_dagster.lib.settings import DEFAULTS, DEMO_KEY_ID, DEMO_PSEUDONYM_KEY, default_consent_url
from streamgov_dagster.lib.warehouse import prepare


class GovernanceConfig(dg.ConfigurableResource):
    """Where the landing zone, reports and policies are, and the pseudonym key."""

    landing_dir: str
    reports_dir: str
    consent_db_url: str | None = None
    policy_dir: str | None = None
    pseudonym_key: str | None = None
    pseudonym_key_id: str | None = None
    erasure_key: str | None = None

    @property
    def landing(self) -> Path:
        return Path(self.landing_dir)

    @property
    def consent_url(self) -> str:
        return self.consent_db_url or default_consent_url(self.landing_dir)

    @property
    def demo_key(self) -> bool:
        return not self.pseudonym_key

    @property
    def key(self) -> str:
        return self.pseudonym_key or DEMO_PSEUDONYM_KEY

    @property
    def key_id(self) -> str:
        if self.demo_key:
            return DEMO_KEY_ID
        return self.pseudonym_key_id or "unnamed"

    def policy(self) -> Policy:
        return load_policy(self.policy_dir)


class AlertSinkResource(dg.ConfigurableResource):
    """Append-only JSON-lines alert file, plus a webhook POST when a URL is configured."""

    path: str
    webhook_url: str | None = None
    timeout_seconds: int = 10

    @property
    def file(self) -> Path:
        return Path(self.path)

    def send(self, payloads: list[dict]) -> int:
        return alerts.send(Path(self.path), payloads, self.webhook_url, self.timeout_seconds)


@contextmanager
def warehouse(db: DuckDBResource, config: GovernanceConfig) -> Iterator[duckdb.DuckDBPyConnection]:
    """A warehouse connection with UTC session time and the pseudonym UDFs registered."""
    Path(db.database).parent.mkdir(parents=True, exist_ok=True)
    with db.get_connection() as con:
        prepare(con)
        register_udfs(con, config.key, config.erasure_key)
        try:
            yield con
        finally:
            unregister_udfs(con)


def _env(name: str, default: str | None = None) -> dg.EnvVar | str | None:
    # EnvVar fails a run when the variable is unset, so fall back to the contract's default instead;
    # the value itself is still resolved by Dagster at launch, never read here.
    return dg.EnvVar(name) if os.environ.get(name) else default


@dg.definitions
def resources() -> dg.Definitions:
    return dg.Definitions(
        resources={
            "duckdb": DuckDBResource(database=_env("STREAMGOV_DUCKDB_PATH", DEFAULTS["STREAMGOV_DUCKDB_PATH"])),
            "governance": GovernanceConfig(
                landing_dir=_env("STREAMGOV_LANDING_DIR", DEFAULTS["STREAMGOV_LANDING_DIR"]),
                reports_dir=_env("STREAMGOV_REPORTS_DIR", DEFAULTS["STREAMGOV_REPORTS_DIR"]),
                consent_db_url=_env("STREAMGOV_CONSENT_DB_URL"),
                policy_dir=_env("STREAMGOV_POLICY_DIR"),
                pseudonym_key=_env("STREAMGOV_PSEUDONYM_KEY"),
                pseudonym_key_id=_env("STREAMGOV_PSEUDONYM_KEY_ID"),
                erasure_key=_env("STREAMGOV_ERASURE_KEY"),
            ),
            "alert_sink": AlertSinkResource(
                path=_env("STREAMGOV_ALERTS_PATH", DEFAULTS["STREAMGOV_ALERTS_PATH"]),
                webhook_url=_env("STREAMGOV_ALERT_WEBHOOK_URL"),
            ),
        }
    )
