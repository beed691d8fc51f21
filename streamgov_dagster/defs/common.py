"""Shared metadata helpers for the asset definitions."""

from datetime import date

import dagster as dg
import duckdb

from streamgov_dagster.lib.settings import warehouse_backend
from streamgov_dagster.lib.validation import validate
from streamgov_dagster.lib.warehouse import column_types, row_count as count_rows

OWNERS = ["team:data-governance"]
# Concurrency, by backend (read when the definitions load: the code server and the run workers must see the
# same STREAMGOV_WAREHOUSE; the resources read it again at launch).
# - DuckDB file: one writer per file. Every step that opens it runs in pool "duckdb", limited to 1 in
#   dagster.yaml (POOL and STATE_POOL are the same pool).
# - DuckLake: concurrent writers are settled at commit by the catalog (a losing commit is retried, see
#   resources.warehouse). Event-level partitioned assets and the read-only checks run with no pool (POOL is
#   None), so daily partitions load in parallel across runs and processes. The unpartitioned assets keep
#   one writer at a time (STATE_POOL "ducklake_state", limit 1): they carry state from run to run (the consent
#   log's hash chain, the DSAR intake and erasure register, the incremental consent copy, the violations'
#   first-detection time), and snapshot isolation alone would let two runs both append entry N+1.
BACKEND = warehouse_backend()
POOL: str | None = "duckdb" if BACKEND == "duckdb" else None
STATE_POOL = "duckdb" if BACKEND == "duckdb" else "ducklake_state"


def tags(layer: str, pii: bool) -> dict[str, str]:
    return {"layer": layer, "pii": "true" if pii else "false"}


def table_metadata(con: duckdb.DuckDBPyConnection, qualified: str, row_count: bool = True,
                   **extra: object) -> dict[str, object]:
    """Column schema, table name and (row_count) the row count. A view's caller passes row_count=False:
    counting it would run its query."""
    schema, table = qualified.split(".", 1)
    meta: dict[str, object] = {
        "dagster/column_schema": dg.TableSchema(
            columns=[dg.TableColumn(name=n, type=t) for n, t in column_types(con, schema, table)]
        ),
    }
    if row_count:
        meta["dagster/row_count"] = count_rows(con, qualified)
    return {**meta, "dagster/table_name": qualified, **extra}


def schema_check(con: duckdb.DuckDBPyConnection, table: str, check_name: str | None = None,
                 model_key: str | None = None, days: tuple[date, date] | None = None) -> dg.AssetCheckResult:
    """Validate a table (or its rows of `days`) in DuckDB with its pandera model; metadata holds counts only."""
    result = validate(con, table, model_key, days)
    return dg.AssetCheckResult(check_name=check_name, passed=result.passed, metadata=result.metadata())
