"""Retention: each dataset keeps data for the days its policy gives; older rows are purged."""

from __future__ import annotations

from datetime import date, timedelta

import duckdb

from .warehouse import table_exists


def status(con: duckdb.DuckDBPyConnection, policy_retention: dict[str, dict], today: date) -> list[tuple]:
    """(dataset, retention_days, oldest_day, rows, rows_past_retention) for every dataset in the policy."""
    rows = []
    for table, spec in policy_retention.items():
        schema, name = table.split(".")
        if not table_exists(con, schema, name):
            rows.append((table, spec["days"], None, 0, 0))
            continue
        cutoff = today - timedelta(days=spec["days"])
        oldest, n, expired = con.execute(
            f"select min({spec['column']})::date, count(*), count(*) filter (where {spec['column']}::date < ?) from {table}",
            [cutoff]).fetchone()
        rows.append((table, spec["days"], oldest, int(n), int(expired)))
    return rows


def purge(con: duckdb.DuckDBPyConnection, policy_retention: dict[str, dict], today: date) -> dict[str, int]:
    """Delete the rows older than each dataset's retention; returns rows deleted per dataset."""
    deleted = {}
    for table, spec in policy_retention.items():
        schema, name = table.split(".")
        if not table_exists(con, schema, name):
            continue
        cutoff = today - timedelta(days=spec["days"])
        n = con.execute(f"select count(*) from {table} where {spec['column']}::date < ?", [cutoff]).fetchone()[0]
        if n:
            con.execute(f"delete from {table} where {spec['column']}::date < ?", [cutoff])
        deleted[table] = int(n)
    return deleted


def build_report(con: duckdb.DuckDBPyConnection, policy_retention: dict[str, dict], today: date) -> int:
    rows = status(con, policy_retention, today)
    con.execute("create or replace table reports.retention_status (dataset varchar, retention_days integer, "
                "oldest_day date, rows bigint, rows_past_retention bigint, as_of date)")
    con.executemany("insert into reports.retention_status values (?, ?, ?, ?, ?, ?)", [list(r) + [today] for r in rows])
    return len(rows)
