"""Full-table validation inside DuckDB through pandera's ibis backend.

Results carry counts per failed check, never the failing values (pandera's failure cases contain
them, and they may be personal data).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from functools import cache

import duckdb
import ibis
import ibis.expr.datatypes as idt
import pandera.errors
import pandera.ibis as pa_ibis

from .models import MODELS


@ibis.udf.scalar.builtin(name="hash")
def _hash(value) -> idt.uint64:  # DuckDB's hash(); ibis's own hash() casts it to a bit string and back
    ...


def _unique(data) -> bool | ibis.expr.types.BooleanColumn:
    """Every value of the column occurs once (nulls aside). First by 64-bit hash: a distinct over 10M numbers
    instead of 10M strings. Equal counts prove it; fewer distinct hashes than values is a duplicate or a
    hash collision, so then each row is checked exactly against the values counted more than once (a second
    scan, only when something looks wrong) and the duplicated rows are the failure cases."""
    column = data.table[data.key]
    row = data.table.aggregate(n=column.count(), h=_hash(column).nunique()).execute()
    if int(row["n"].iloc[0]) == int(row["h"].iloc[0]):
        return True
    counts = data.table.group_by(data.key).aggregate(_n=column.count())
    return column.isnull() | ~column.isin(counts.filter(counts["_n"] > 1)[data.key])


@cache
def schema_of(model: type) -> pa_ibis.DataFrameSchema:
    """The model's schema, with `unique=True` columns checked: pandera's ibis backend (0.35) enforces a
    model's Config.unique but not a Field's unique=True, which it accepts and never checks (found on
    2026-11-28: a duplicated event_id passed). The check is named `unique`."""
    schema = model.to_schema()
    for column in schema.columns.values():
        if column.unique:
            column.checks = [*column.checks, pa_ibis.Check(_unique, name="unique")]
    return schema


@dataclass
class ValidationResult:
    table: str
    rows: int
    failures: dict[str, int] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return not self.failures

    def metadata(self) -> dict[str, int | str]:
        meta: dict[str, int | str] = {"rows_validated": self.rows, "failed_checks": len(self.failures),
                                      "failing_values": sum(self.failures.values())}
        for name, count in sorted(self.failures.items()):
            meta[f"failures: {name}"] = count
        return meta


def _describe(err: pandera.errors.SchemaError) -> str:
    check = getattr(err, "check", None)
    name = getattr(check, "name", None) or getattr(check, "error", None) or str(err.reason_code.name).lower()
    # a built-in check's error names its column; a check of the model's own (models.py) its schema component
    schema = getattr(err, "schema", None)
    column = getattr(err, "column_name", None) or (schema.name if isinstance(schema, pa_ibis.Column) else None)
    return f"{column}.{name}" if column else str(name)


def validate(con: duckdb.DuckDBPyConnection, table: str, model_key: str | None = None,
             days: tuple[date, date] | None = None) -> ValidationResult:
    """Validate a table, or (days) only its rows of those event days."""
    checked = schema_of(MODELS[model_key or table])
    schema, name = table.split(".", 1)
    backend = ibis.duckdb.from_connection(con)
    expr = backend.table(name, database=schema)
    where, params = "", []
    if days is not None:
        expr = expr.filter(expr.event_date.between(days[0], days[1]))
        where, params = " where event_date between ? and ?", list(days)
    rows = int(con.execute(f"select count(*) from {table}{where}", params).fetchone()[0])
    result = ValidationResult(table=table, rows=rows)
    if rows == 0:
        # pandera's ibis backend reports null and isin failures on an empty table; nothing to check.
        return result
    try:
        checked.validate(expr, lazy=True)
    except pandera.errors.SchemaErrors as exc:
        for err in exc.schema_errors:
            cases = getattr(err, "failure_cases", None)
            n = len(cases) if cases is not None and hasattr(cases, "__len__") else 1
            key = _describe(err)
            result.failures[key] = result.failures.get(key, 0) + max(int(n), 1)
    except pandera.errors.SchemaError as exc:  # a non-lazy structural error
        result.failures[_describe(exc)] = 1
    return result
