"""Every resource, configured from STREAMGOV_* environment variables through dg.EnvVar."""

import os
import random
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
from streamgov_dagster.lib.warehouse import (STORAGE_CONFIG, Target, connect, hold, is_write_conflict, prepare,
                                             release, scrub)

# A step whose DuckLake commit lost to a concurrent writer of the same table runs again (the assets are
# idempotent: delete-then-insert of their partitions, or create-or-replace), after a short pause.
CONFLICT_RETRIES = 10  # writers of one source's ledger commit in turn: room for several at once
CONFLICT_WAIT_SECONDS = (1.0, 4.0)  # a random pause, so two losers do not retry in step


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


class WarehouseResource(DuckDBResource):
    """The warehouse: the DuckDB file `database` (backend `duckdb`, the default), or a DuckLake (backend
    `ducklake`: the catalog `ducklake_catalog`, Parquet files under `ducklake_data_path`) attached to an
    in-memory DuckDB session as its default catalog. Either way a DuckDB connection with the same schemas,
    so every asset's SQL runs unchanged. It stays a DuckDBResource (key `duckdb`): DuckDB is the engine."""

    backend: str = "duckdb"
    ducklake_catalog: str | None = None
    ducklake_data_path: str | None = None

    @classmethod
    def _is_dagster_maintained(cls) -> bool:
        return False

    @property
    def target(self) -> Target:
        return target_of(self)

    @contextmanager
    def get_connection(self) -> Iterator[duckdb.DuckDBPyConnection]:
        if not self.target.is_lake:
            # The DuckDB file: DuckDBResource's connect, which waits (with backoff) for a lock held elsewhere.
            with super().get_connection() as con:
                yield con
            return
        con = connect(self.target)
        try:
            yield con
        finally:
            con.close()


def target_of(db: DuckDBResource) -> Target:
    """Where a resource's warehouse is; a plain DuckDBResource is the DuckDB file."""
    return Target(backend=(getattr(db, "backend", None) or "duckdb").strip().lower(), duckdb_path=db.database,
                  catalog=getattr(db, "ducklake_catalog", None), data_path=getattr(db, "ducklake_data_path", None))


@contextmanager
def held_open(db: DuckDBResource) -> Iterator[None]:
    """Hold the DuckDB file open for the duration (`streamgov run` around its in-process run). Each step still
    opens and closes its own connection, but the database stays loaded in between: a step no longer reads
    the catalog when it opens the file nor checkpoints when it closes it (DuckDB checkpoints when its
    write-ahead log outgrows 16 MB, and when the run ends); 27 ms per step on a 10M-event file. The file is
    locked for the whole run instead of for each step. The erasure compaction, which must lock the file from
    a child process, lets it go first (lib.warehouse.release). On DuckLake, nothing to hold."""
    if target_of(db).is_lake:
        yield
        return
    Path(db.database).parent.mkdir(parents=True, exist_ok=True)
    # DuckDBResource's own connect: the same configuration as the steps' connections, so they share the
    # database instance (DuckDB refuses a second instance of a file with another configuration)
    try:
        connection = db.get_connection()
        con = connection.__enter__()
    except (RuntimeError, duckdb.Error):
        # another process holds the file: the run goes on without holding it, and its first step meets the
        # lock as before (a failed run, its alert and exit status), rather than a traceback here
        yield
        return
    hold(db.database, con)
    try:
        yield
    finally:
        release(db.database)
        connection.__exit__(None, None, None)


def read_only_connection(db: DuckDBResource) -> duckdb.DuckDBPyConnection:
    """A read-only session on the resource's warehouse (sensors): no lock taken on the DuckDB file beyond
    a reader's, and a DuckLake attached READ_ONLY."""
    return connect(target_of(db), read_only=True)


@contextmanager
def warehouse(db: DuckDBResource, config: GovernanceConfig) -> Iterator[duckdb.DuckDBPyConnection]:
    """A warehouse connection with UTC session time and the pseudonym UDFs registered. On DuckLake, a commit
    that conflicts with a concurrent writer asks Dagster to run the step again instead of failing it."""
    if not target_of(db).is_lake:
        Path(db.database).parent.mkdir(parents=True, exist_ok=True)
    scrubbed = None
    try:
        with db.get_connection() as con:
            prepare(con)
            register_udfs(con, config.key, config.erasure_key)
            try:
                yield con
            finally:
                unregister_udfs(con)
    except duckdb.Error as exc:
        if is_write_conflict(exc):
            raise dg.RetryRequested(max_retries=CONFLICT_RETRIES,
                                     seconds_to_wait=random.uniform(*CONFLICT_WAIT_SECONDS)) from exc
        scrubbed = scrub(exc, target_of(db))
        if scrubbed is None:
            raise
    if scrubbed is not None:
        # A lost catalog connection is reported with its connection string (and any password in it): the
        # event log gets the error without it, and without the original chained to it.
        raise scrubbed


def _env(name: str, default: str | None = None) -> dg.EnvVar | str | None:
    # EnvVar fails a run when the variable is unset, so fall back to the contract's default instead;
    # the value itself is still resolved by Dagster at launch, never read here.
    return dg.EnvVar(name) if os.environ.get(name) else default


def warehouse_resource(database, backend, ducklake_catalog, ducklake_data_path) -> WarehouseResource:
    """The warehouse resource, for the definitions (values from the environment, EnvVar) and for `streamgov run`
    (resolved settings, held_open): one connection configuration for both, since DuckDB refuses a second
    instance of a file with another one."""
    return WarehouseResource(database=database, backend=backend, ducklake_catalog=ducklake_catalog,
                             ducklake_data_path=ducklake_data_path, connection_config=dict(STORAGE_CONFIG))


@dg.definitions
def resources() -> dg.Definitions:
    return dg.Definitions(
        resources={
            "duckdb": warehouse_resource(
                database=_env("STREAMGOV_DUCKDB_PATH", DEFAULTS["STREAMGOV_DUCKDB_PATH"]),
                backend=_env("STREAMGOV_WAREHOUSE", DEFAULTS["STREAMGOV_WAREHOUSE"]),
                ducklake_catalog=_env("STREAMGOV_DUCKLAKE_CATALOG"),
                ducklake_data_path=_env("STREAMGOV_DUCKLAKE_DATA_PATH"),
            ),
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
