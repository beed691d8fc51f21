"""The DuckLake backend: a catalog database (PostgreSQL for several writers) plus Parquet files under a
data path, attached to an in-memory DuckDB session under the name `lake` and made its default catalog.

Extensions load offline from the duckdb-extension-* wheels (nothing is downloaded). Data inlining is
switched off (DATA_INLINING_ROW_LIMIT 0) so every row lives in a Parquet file under the data path, where
erasure maintenance can rewrite it and the verification can read it; the catalog holds metadata only
(and column statistics, which the verification also checks).

Erasure on DuckLake: a DELETE only marks rows deleted; the rows stay in their Parquet files, and every
older snapshot still references them (time travel). `purge_history` rewrites the files that carry
deletes, rebuilds tables whose column statistics still name an erased value, expires every snapshot but
the current one and deletes the files nothing references any more. `data_file_hits` then reads every
file left under the data path.
"""

from __future__ import annotations

import re
import threading
import time
from pathlib import Path

import duckdb

LAKE = "lake"  # the attached catalog's name; `USE lake` lets schema-qualified SQL resolve into it
METADATA = f"__ducklake_metadata_{LAKE}"  # DuckLake attaches its catalog database under this name
# Files under the data path that no snapshot references and that are younger than this may belong to a
# writer that has not committed yet; older ones are left-overs of aborted writes and are deleted.
ORPHAN_GRACE = "10 minutes"
_URL = re.compile(r"^[a-z][a-z0-9+.-]*://", re.I)
_installed: set[str] = set()
_instances: dict[tuple[str, str | None, bool], duckdb.DuckDBPyConnection] = {}
_lock = threading.Lock()


def catalog_kind(catalog: str | None) -> str:
    """postgres | sqlite | mysql | duckdb: the catalog database type, named without its connection string."""
    body = _strip_prefix(catalog or "")
    for kind in ("postgres", "sqlite", "mysql"):
        if body.startswith(kind + ":"):
            return kind
    return "duckdb"


def _strip_prefix(catalog: str) -> str:
    return catalog[len("ducklake:"):] if catalog.startswith("ducklake:") else catalog


def redact(text: str, catalog: str | None) -> str:
    """An error message without the catalog connection string or any password in it."""
    if catalog:
        body = _strip_prefix(catalog)
        for secret in {catalog, body, body.split(":", 1)[-1]}:
            if secret:
                text = text.replace(secret, "<catalog>")
    return re.sub(r"(password\s*=\s*)('[^']*'|\S+)", r"\1***", text, flags=re.I)


def is_url(path: str | None) -> bool:
    return bool(path and _URL.match(path))


def load_extension(con: duckdb.DuckDBPyConnection, name: str) -> None:
    """LOAD an extension from its duckdb-extension-<name> wheel: INSTALL copies the wheel's file into
    DuckDB's extension folder (once per process), LOAD reads it from there; nothing is downloaded."""
    if name not in _installed:
        try:
            import duckdb_extensions

            duckdb_extensions.import_extension(name, con=con)
        except ModuleNotFoundError as exc:
            raise RuntimeError(f"the DuckDB extension {name!r} is needed: pip install duckdb-extension-{name}=="
                               f"{duckdb.__version__}") from exc
        _installed.add(name)
    con.execute(f"LOAD {name}")


def _literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def connect(catalog: str | None, data_path: str | None, read_only: bool = False) -> duckdb.DuckDBPyConnection:
    """A session on the lake (`lake` attached and in USE), with its own transactions and temp tables.

    Loading the two extensions and attaching the catalog takes ~0.5 s per DuckDB instance, more than most
    steps take: one in-memory instance per process and lake is kept, and every session is a cursor on it
    (a connection of its own, sharing the attached lake). A connection failure is raised without the
    catalog string in its message (it may hold a password)."""
    if not catalog:
        raise ValueError("STREAMGOV_WAREHOUSE=ducklake needs STREAMGOV_DUCKLAKE_CATALOG "
                         "(e.g. postgres:dbname=streamgov host=127.0.0.1 user=postgres)")
    key = (catalog, data_path, read_only)
    with _lock:
        for attempt in (1, 2):
            base = _instances.get(key)
            if base is None:
                base = _instances[key] = _attach(catalog, data_path, read_only)
            con = base.cursor()
            try:
                con.execute(f"USE {LAKE}")
                con.execute(f"SELECT * FROM ducklake_current_snapshot('{LAKE}')").fetchall()
                return con
            except duckdb.Error as exc:
                # The catalog connection died (a server restart): attach afresh, once.
                problem = (type(exc), redact(str(exc), catalog))
                con.close()
                _instances.pop(key, None)
        raise problem[0](problem[1])


def _attach(catalog: str, data_path: str | None, read_only: bool) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    try:
        load_extension(con, "ducklake")
        if catalog_kind(catalog) == "postgres":
            load_extension(con, "postgres")
        if is_url(data_path) and not data_path.startswith("file://"):
            load_extension(con, "httpfs")
    except Exception:
        con.close()
        raise
    options = ["READ_ONLY"] if read_only else ["DATA_INLINING_ROW_LIMIT 0"]
    if data_path and not read_only:
        # A local folder is made absolute, so every worker records and finds the same files.
        path = data_path if is_url(data_path) else str(Path(data_path).expanduser().resolve())
        options.append(f"DATA_PATH {_literal(path)}")
    # ATTACH takes no prepared parameters; the values are quoted literals.
    sql = f"ATTACH {_literal('ducklake:' + _strip_prefix(catalog))} AS {LAKE} ({', '.join(options)})"
    problem = None
    for attempt in range(3):
        try:
            con.execute(sql)
            return con
        except duckdb.Error as exc:
            problem = (type(exc), redact(str(exc), catalog))
        # Two workers attaching an empty catalog at the same moment both create DuckLake's tables; the
        # loser finds them created and attaches on its next try.
        if "Failed to initialize DuckLake" not in problem[1]:
            break
        time.sleep(0.5 * (attempt + 1))
    con.close()
    # Raised outside the handler, so the original message (with the connection string) is not chained.
    raise problem[0](f"cannot attach the DuckLake catalog: {problem[1]}")


# ------------------------------------------------------------------------------------------ erasure

def purge_history(con: duckdb.DuckDBPyConnection, tokens: set[str] = frozenset()) -> dict[str, int]:
    """Make deleted rows physically gone: rewrite every data file with deletes, rebuild tables whose column
    statistics still name a token, expire every older snapshot and delete the files no snapshot needs
    (small files are merged on the way). Returns counts per step. Time travel to before this call is gone
    with it: that is the point (the DuckDB-file backend keeps no history either)."""
    done: dict[str, int] = {}
    con.execute(f"CALL ducklake_flush_inlined_data('{LAKE}')")
    done["files_rewritten"] = len(con.execute(
        f"SELECT * FROM ducklake_rewrite_data_files('{LAKE}', delete_threshold => 0)").fetchall())
    done["files_merged"] = len(con.execute(f"SELECT * FROM ducklake_merge_adjacent_files('{LAKE}')").fetchall())
    rebuilt = 0
    for schema, table in stats_naming(con, tokens) if tokens else []:
        # Table-level min/max statistics are only ever widened by DuckLake: a new table gets fresh ones.
        con.execute(f'CREATE OR REPLACE TABLE "{schema}"."{table}" AS FROM "{schema}"."{table}"')
        rebuilt += 1
    done["tables_rebuilt"] = rebuilt
    done["snapshots_expired"] = len(con.execute(
        f"SELECT * FROM ducklake_expire_snapshots('{LAKE}', older_than => now())").fetchall())
    done["files_deleted"] = len(con.execute(
        f"SELECT * FROM ducklake_cleanup_old_files('{LAKE}', cleanup_all => true)").fetchall())
    done["orphans_deleted"] = len(con.execute(
        f"SELECT * FROM ducklake_delete_orphaned_files('{LAKE}', older_than => now() - INTERVAL '{ORPHAN_GRACE}')"
    ).fetchall())
    return done


def _tokens_table(con: duckdb.DuckDBPyConnection, tokens: set[str]) -> None:
    from .warehouse import temp_table_from_rows

    temp_table_from_rows(con, "_lake_tokens", {"token": "varchar"}, [(t,) for t in sorted(tokens) if t])


def stats_naming(con: duckdb.DuckDBPyConnection, tokens: set[str]) -> list[tuple[str, str]]:
    """(schema, table) of the live tables whose table-level column statistics (min/max) hold a token."""
    _tokens_table(con, tokens)
    rows = con.execute(
        f"""
        SELECT DISTINCT s.schema_name, t.table_name
        FROM {METADATA}.ducklake_table_column_stats c
        JOIN {METADATA}.ducklake_table t ON t.table_id = c.table_id AND t.end_snapshot IS NULL
        JOIN {METADATA}.ducklake_schema s ON s.schema_id = t.schema_id AND s.end_snapshot IS NULL
        WHERE EXISTS (SELECT 1 FROM _lake_tokens k
                      WHERE contains(c.min_value, k.token) OR contains(c.max_value, k.token))
        ORDER BY 1, 2
        """
    ).fetchall()
    con.execute("DROP TABLE IF EXISTS _lake_tokens")
    return [(r[0], r[1]) for r in rows]


def data_path(con: duckdb.DuckDBPyConnection) -> str:
    return con.execute(f"SELECT data_path FROM ducklake_settings('{LAKE}')").fetchone()[0]


def data_files(con: duckdb.DuckDBPyConnection) -> list[str]:
    """Every file under the data path: the ones the catalog lists and any other left there."""
    root = data_path(con).rstrip("/")
    return sorted(r[0] for r in con.execute("SELECT file FROM glob(?)", [root + "/**"]).fetchall())


def data_file_hits(con: duckdb.DuckDBPyConnection, tokens: set[str]) -> dict[str, int]:
    """Where a token is still held: per Parquet file under the data path (every value of every row, as
    text), other files by their bytes, and the catalog's column statistics and inlined-data tables.
    Keys name the place ('data_file:<relative path>', 'catalog:<table>'); values are counts, never values."""
    from .dsar import file_hits

    tokens = {t for t in tokens if t}
    if not tokens:
        return {}
    hits: dict[str, int] = {}
    root = data_path(con).rstrip("/")
    _tokens_table(con, tokens)
    try:
        for path in data_files(con):
            name = "data_file:" + path[len(root) + 1:] if path.startswith(root + "/") else "data_file:" + path
            if path.endswith(".parquet"):
                try:
                    n = con.execute("SELECT count(*) FROM read_parquet(?) t WHERE EXISTS "
                                    "(SELECT 1 FROM _lake_tokens k WHERE contains(t::varchar, k.token))",
                                    [path]).fetchone()[0]
                except duckdb.Error:
                    n = 1  # unreadable: it cannot be shown clean (a write in progress is retried next run)
            elif not is_url(path):
                n = file_hits(Path(path), tokens)
            else:
                n = 1  # neither Parquet nor local: not scanned, so not shown clean
            if n:
                hits[name] = int(n)
        for table, columns in (("ducklake_table_column_stats", ("min_value", "max_value")),
                               ("ducklake_file_column_stats", ("min_value", "max_value")),
                               ("ducklake_file_partition_value", ("partition_value",))):
            cond = " OR ".join(f"contains(c.{col}, k.token)" for col in columns)
            n = con.execute(f"SELECT count(*) FROM {METADATA}.{table} c WHERE EXISTS "
                            f"(SELECT 1 FROM _lake_tokens k WHERE {cond})").fetchone()[0]
            if n:
                hits[f"catalog:{table}"] = int(n)
        for (inlined,) in con.execute(f"SELECT table_name FROM {METADATA}.ducklake_inlined_data_tables").fetchall():
            n = con.execute(f'SELECT count(*) FROM {METADATA}."{inlined}" t WHERE EXISTS '
                            "(SELECT 1 FROM _lake_tokens k WHERE contains(t::varchar, k.token))").fetchone()[0]
            if n:
                hits[f"catalog:{inlined}"] = int(n)
    finally:
        con.execute("DROP TABLE IF EXISTS _lake_tokens")
    return hits
