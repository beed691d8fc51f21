"""The DuckLake backend: a catalog database (PostgreSQL for several writers) plus Parquet files under a
data path, attached to an in-memory DuckDB session under the name `lake` and made its default catalog.

Extensions load offline from the duckdb-extension-* wheels (nothing is downloaded). Data inlining is
switched off (DATA_INLINING_ROW_LIMIT 0) so every row lives in a Parquet file under the data path, where
erasure maintenance can rewrite it and the verification can read it; the catalog holds metadata only
(and column statistics, which the verification also checks).
"""

from __future__ import annotations

import re
import threading
import time
from pathlib import Path

import duckdb

LAKE = "lake"  # the attached catalog's name; `USE lake` lets schema-qualified SQL resolve into it
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


def _load(con: duckdb.DuckDBPyConnection, name: str) -> None:
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
        _load(con, "ducklake")
        if catalog_kind(catalog) == "postgres":
            _load(con, "postgres")
        if is_url(data_path) and not data_path.startswith("file://"):
            _load(con, "httpfs")
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
