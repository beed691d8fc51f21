"""Warehouse layout: the DuckDB schemas (one per layer), where the warehouse is, and connection set-up.

Two backends hold the same schemas and tables: the embedded DuckDB file (default), or a DuckLake (a
catalog database plus Parquet files, lib/lake.py) attached to an in-memory DuckDB session and made its
default catalog. Either way the SQL is the same DuckDB SQL on schema-qualified names (raw.access_events,
masked.*, ...), and temp tables live in the session's own temp catalog.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import duckdb

SCHEMAS = ("raw", "consent", "governance", "masked", "reports")

# A new warehouse file is written in DuckDB 1.5's storage format instead of the default, v0.10.2-compatible
# one: its newer string compression makes every bulk write cheaper (10M masked events: 15.0 -> 11.1 s) and
# the file 43 % smaller. A file keeps the format it was created with; only DuckDB >= 1.5 opens a new one.
STORAGE_CONFIG = {"storage_compatibility_version": "v1.5.0"}


@dataclass(frozen=True)
class Target:
    """Where the warehouse is: `backend` duckdb (the file `duckdb_path`) or ducklake (`catalog`, the DuckLake
    catalog connection string, which may hold a password and is never printed; `data_path`, a folder or URL)."""

    backend: str
    duckdb_path: str
    catalog: str | None = None
    data_path: str | None = None

    @property
    def is_lake(self) -> bool:
        return self.backend == "ducklake"

    def describe(self) -> str:
        """For messages and metadata: never the catalog connection string."""
        if not self.is_lake:
            return f"DuckDB file {self.duckdb_path}"
        from .lake import catalog_kind

        return f"DuckLake ({catalog_kind(self.catalog)} catalog, data path {self.data_path or 'as recorded in the catalog'})"


def connect(target: Target, read_only: bool = False) -> duckdb.DuckDBPyConnection:
    """The one place a warehouse session is opened, for both backends (the Dagster resource, the CLI and
    the sensors come here). A DuckLake session is an in-memory DuckDB with the lake attached and in USE."""
    if target.is_lake:
        from .lake import connect as lake_connect

        return lake_connect(target.catalog, target.data_path, read_only=read_only)
    if target.backend != "duckdb":
        raise ValueError(f"unknown warehouse backend {target.backend!r} (duckdb or ducklake)")
    return duckdb.connect(target.duckdb_path, read_only=read_only, config=dict(STORAGE_CONFIG))


def scrub(exc: BaseException, target: Target) -> BaseException | None:
    """For an error naming the DuckLake catalog's connection string: the same error without it (and without
    any password), to raise instead. None when there is nothing to hide."""
    if not target.is_lake or not target.catalog:
        return None
    from .lake import redact

    text = str(exc)
    clean = redact(text, target.catalog)
    if clean == text:
        return None
    try:
        return type(exc)(clean)
    except Exception:  # noqa: BLE001 - an exception type that cannot be built from a message
        return RuntimeError(clean)


def is_write_conflict(exc: BaseException) -> bool:
    """A commit that lost to a concurrent writer of the same DuckLake table (DuckLake detects it at commit
    and aborts the transaction). The asset is idempotent, so the step can simply run again. The conflict
    may be the context of a later error (the ROLLBACK that follows a failed COMMIT), so the chain is walked."""
    seen: BaseException | None = exc
    for _ in range(10):
        if seen is None:
            return False
        text = str(seen)
        if isinstance(seen, duckdb.TransactionException) and (
                "conflict" in text.lower() or "maximum retry count" in text):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


DEFAULT_MEMORY_LIMIT = "4GB"

# DuckDB files this process holds open for a whole run (defs.resources.held_open): absolute path -> the
# connection that keeps the database instance alive between the steps' own connections.
_HELD: dict[str, duckdb.DuckDBPyConnection] = {}


def hold(path: str | Path, con: duckdb.DuckDBPyConnection) -> None:
    _HELD[str(Path(path).resolve())] = con


def release(path: str | Path) -> bool:
    """Close the connection holding the DuckDB file open, if this process holds it (held_open): before another
    process must lock the file (the erasure compaction). The steps after it open and close the file each."""
    con = _HELD.pop(str(Path(path).resolve()), None)
    if con is None:
        return False
    con.close()
    return True


def prepare(con: duckdb.DuckDBPyConnection) -> duckdb.DuckDBPyConnection:
    """Every timestamp the warehouse stores is UTC; make the session agree. DuckDB's memory is capped
    (STREAMGOV_DUCKDB_MEMORY_LIMIT, default 4GB): beyond it, work spills to disk instead of growing."""
    con.execute("SET TimeZone = 'UTC'")
    # The progress bar is for interactive shells; in a pipeline it only costs time (~0.5 s per 2M lines).
    con.execute("SET enable_progress_bar = false")
    con.execute("SET memory_limit = ?", [os.environ.get("STREAMGOV_DUCKDB_MEMORY_LIMIT") or DEFAULT_MEMORY_LIMIT])
    # No row-group merging at checkpoints: after the first append to a table since it was last checkpointed,
    # DuckDB rewrites the partly filled row groups at the next checkpoint, ~1 s per 300k access events
    # appended (a daily run appends several times per table). Row groups left empty by deletes still go;
    # the partly filled ones are merged by the retention purge job (vacuum()) and the erasure compaction.
    con.execute("SET max_vacuum_tasks = 0")
    for schema in SCHEMAS:
        con.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
    return con


CLAIMS = "raw.write_claims"


def is_lake_session(con: duckdb.DuckDBPyConnection) -> bool:
    row = con.execute("select type from duckdb_databases() where database_name = current_database()").fetchone()
    return bool(row) and row[0] == "ducklake"


def begin(con: duckdb.DuckDBPyConnection, claim: str | None = None) -> None:
    """BEGIN TRANSACTION; on DuckLake, with `claim`, one that two concurrent writers of the same shared state
    cannot both commit.

    Snapshot isolation does not serialize "delete these rows, insert their replacement" when there is
    nothing to delete yet: two transactions then both only insert, DuckLake sees no conflict, and the rows
    land twice (the per-file ingest ledger written by two partition runs at once, on a new table). So each
    such transaction also updates the claim's row in raw.write_claims, which exists (committed) before it
    begins: of two concurrent transactions that update it, DuckLake lets one commit and aborts the other,
    whose step is then retried. The DuckDB file has one writer, so there the claim is not needed."""
    lake = bool(claim) and is_lake_session(con)
    if lake:
        con.execute(f"create table if not exists {CLAIMS} (name varchar, claims bigint)")
        con.execute(f"insert into {CLAIMS} select ?, 0 where not exists (select 1 from {CLAIMS} where name = ?)",
                    [claim, claim])
    con.execute("begin transaction")
    if lake:
        con.execute(f"update {CLAIMS} set claims = claims + 1 where name = ?", [claim])


def vacuum(con: duckdb.DuckDBPyConnection) -> bool:
    """Merge partly filled row groups and reclaim deleted rows (a checkpoint with DuckDB's vacuum on), on the
    DuckDB file; DuckLake has its own maintenance (nothing to do: True). False when another transaction of
    this process kept the checkpoint from running: the merge is housekeeping, the next day's job does it."""
    if is_lake_session(con):
        return True
    con.execute("SET max_vacuum_tasks = 100")
    try:
        con.execute("CHECKPOINT")
        return True
    except duckdb.TransactionException:
        return False
    finally:
        con.execute("SET max_vacuum_tasks = 0")


def table_exists(con: duckdb.DuckDBPyConnection, schema: str, table: str) -> bool:
    row = con.execute(
        "select count(*) from information_schema.tables where table_schema = ? and table_name = ?",
        [schema, table],
    ).fetchone()
    return bool(row and row[0])


def temp_table_exists(con: duckdb.DuckDBPyConnection, name: str) -> bool:
    return bool(con.execute("select count(*) from duckdb_tables() where temporary and table_name = ?",
                            [name]).fetchone()[0])


def row_count(con: duckdb.DuckDBPyConnection, qualified: str) -> int:
    return int(con.execute(f"select count(*) from {qualified}").fetchone()[0])


def column_types(con: duckdb.DuckDBPyConnection, schema: str, table: str) -> list[tuple[str, str]]:
    return [
        (r[0], r[1])
        for r in con.execute(
            "select column_name, data_type from information_schema.columns "
            "where table_schema = ? and table_name = ? order by ordinal_position",
            [schema, table],
        ).fetchall()
    ]


def temp_table_from_rows(con: duckdb.DuckDBPyConnection, name: str, columns: dict[str, str], rows: list) -> None:
    """Temp table `name` (columns: name -> SQL type) holding rows computed in Python, passed as one Arrow
    batch: DuckDB's executemany inserts parameter rows one at a time (18 s for 25k rows here)."""
    import pyarrow as pa

    batch = pa.table({c: [r[i] for r in rows] for i, c in enumerate(columns)}) if rows else None
    select = ", ".join(f"{c}::{t} as {c}" for c, t in columns.items())
    if batch is None:
        con.execute(f"create or replace temp table {name} ({', '.join(f'{c} {t}' for c, t in columns.items())})")
        return
    con.register(f"{name}_batch", batch)
    try:
        con.execute(f"create or replace temp table {name} as select {select} from {name}_batch")
    finally:
        con.unregister(f"{name}_batch")
