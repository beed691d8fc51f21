"""Workforce directory (schema C): directory/staff.csv into raw.staff_directory, bad rows quarantined."""

from __future__ import annotations

from pathlib import Path

import duckdb

from .ingest import ensure_shared_tables

DATE = r"^\d{4}-\d{2}-\d{2}$"


def load(con: duckdb.DuckDBPyConnection, landing_dir: Path) -> dict:
    path = landing_dir / "directory" / "staff.csv"
    con.execute(
        "create table if not exists raw.staff_directory (actor_id varchar, role varchar, department varchar, "
        "employed_from date, employed_to date, source_line bigint)"
    )
    ensure_shared_tables(con)
    status = "ok"
    con.execute("create or replace temp table _staff (line_no bigint, actor_id varchar, role varchar, "
                "department varchar, employed_from varchar, employed_to varchar)")
    if not path.exists():
        status = "missing"
    else:
        try:
            con.execute(
                "insert into _staff select row_number() over () + 1, actor_id, role, department, employed_from, employed_to "
                "from read_csv(?, header=true, all_varchar=true, auto_detect=false, "
                "columns={'actor_id': 'VARCHAR', 'role': 'VARCHAR', 'department': 'VARCHAR', "
                "'employed_from': 'VARCHAR', 'employed_to': 'VARCHAR'}, null_padding=true, strict_mode=false)",
                [str(path)],
            )
        except duckdb.Error:
            status = "unreadable"
    con.execute(
        """
        create or replace temp table _staff_checked as
        select *,
               case when coalesce(trim(actor_id), '') = '' then 'missing_actor_id'
                    when coalesce(trim(role), '') = '' then 'missing_role'
                    when employed_from is null or not regexp_matches(trim(employed_from), ?) or try_cast(trim(employed_from) as date) is null then 'invalid_employed_from'
                    when coalesce(trim(employed_to), '') <> '' and (not regexp_matches(trim(employed_to), ?) or try_cast(trim(employed_to) as date) is null) then 'invalid_employed_to'
                    when coalesce(trim(employed_to), '') <> '' and try_cast(trim(employed_to) as date) < try_cast(trim(employed_from) as date) then 'employed_to_before_employed_from'
               end as reason
        from _staff
        """,
        [DATE, DATE],
    )
    con.execute(
        "create or replace temp table _staff_ranked as select *, reason is null and row_number() over "
        "(partition by reason is null, trim(actor_id) order by line_no) > 1 as is_duplicate from _staff_checked"
    )
    con.execute("begin transaction")
    try:
        con.execute("delete from raw.staff_directory")
        con.execute(
            "insert into raw.staff_directory select trim(actor_id), trim(role), department, try_cast(trim(employed_from) as date), "
            "try_cast(nullif(trim(employed_to), '') as date), line_no from _staff_ranked where reason is null and not is_duplicate"
        )
        con.execute("delete from raw.quarantine_lines where source = 'directory'")
        con.execute(
            "insert into raw.quarantine_lines select 'directory', 'directory/staff.csv', line_no, reason, null, null "
            "from _staff_ranked where reason is not null"
        )
        con.execute("delete from raw.ingest_ledger where source = 'directory'")
        con.execute(
            "insert into raw.ingest_ledger select 'directory', 'directory/staff.csv', count(*), "
            "count(*) filter (where reason is null and not is_duplicate), count(*) filter (where reason is not null), "
            "count(*) filter (where is_duplicate), 0, ? from _staff_ranked",
            [None if status == "ok" else f"unreadable_file:{status}"],
        )
        con.execute("commit")
    except Exception:
        con.execute("rollback")
        raise
    row = con.execute("select count(*), count(*) filter (where reason is null and not is_duplicate), "
                      "count(*) filter (where reason is not null), count(*) filter (where is_duplicate) from _staff_ranked").fetchone()
    con.execute("drop table if exists _staff; drop table if exists _staff_checked; drop table if exists _staff_ranked")
    return {"source_status": status, "lines_read": row[0], "rows_loaded": row[1], "rows_quarantined": row[2],
            "duplicates": row[3]}
