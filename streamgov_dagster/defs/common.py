"""Shared metadata helpers for the asset definitions."""

from datetime import date

import dagster as dg
import duckdb

from streamgov_dagster.lib.validation import validate
from streamgov_dagster.lib.warehouse import column_types, row_count

OWNERS = ["team:data-governance"]
POOL = "duckdb"


def tags(layer: str, pii: bool) -> dict[str, str]:
    return {"layer": layer, "pii": "true" if pii else "false"}


def table_metadata(con: duckdb.DuckDBPyConnection, qualified: str, **extra: object) -> dict[str, object]:
    schema, table = qualified.split(".", 1)
    return {
        "dagster/column_schema": dg.TableSchema(
            columns=[dg.TableColumn(name=n, type=t) for n, t in column_types(con, schema, table)]
        ),
        "dagster/row_count": row_count(con, qualified),
        "dagster/table_name": qualified,
        **extra,
    }


def schema_check(con: duckdb.DuckDBPyConnection, table: str, check_name: str | None = None,
                 model_key: str | None = None, days: tuple[date, date] | None = None) -> dg.AssetCheckResult:
    """Validate a table (or its rows of `days`) in DuckDB with its pandera model; metadata holds counts only."""
    result = validate(con, table, model_key, days)
    return dg.AssetCheckResult(check_name=check_name, passed=result.passed, metadata=result.metadata())
