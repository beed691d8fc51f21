"""The raw-identifier index: the 64-bit hashes of every raw identifier, per table, column and event day.

The leak checks compare published values with every identifier of the raw zone (user, session, device and
token ids, emails, IPs, actor ids). Computing the distinct identifiers from the raw tables is a pass over
the whole history, 1-2.4 s at 9M events, and a run needs them four times (both masked checks, the leak
scan, the report files). The index holds them by day, so a run hashes only the days it loaded (0.25 s for
300k events); reading the whole index costs about 0.1 s at 9M events.

It holds hashes, not values, and is kept exact:
- A day of a column is trusted only while its coverage row (raw.identifier_index_days) matches the raw
  table: the day's row count and the index version (DuckDB's, whose hash() it is). A day that is not
  trusted is read from the raw table instead, so a writer that forgot the index never hides a leak.
- Writers that change a day's values without changing its count drop its coverage rows in advance: a load
  (its day range, before it writes), an erasure (the days of the erased user's rows, in its transaction).
- A hit found by hash is recounted exactly against the raw values before it is reported, so a 64-bit hash
  collision cannot fail a check.
- Erasure: in the erasure's transaction, the erased rows' hashes that no other row of their day holds
  leave the index (capture, forget), so no hash of an erased identifier stays; the erasure verification
  checks it. The retention purge drops the purged days (sync).
"""

from __future__ import annotations

from datetime import date

import duckdb

from .warehouse import begin, is_lake_session, table_exists, temp_table_exists

INDEX = "raw.identifier_index"
COVERAGE = "raw.identifier_index_days"
# The raw tables partitioned by event day, which the index covers. Other raw tables (the consent events)
# are small and read directly.
INDEXED_TABLES = ("raw.access_events", "raw.audit_events")
VERSION = f"duckdb {duckdb.__version__}"
# Values shorter than this are flagged: the leak scan ignores them ('-', country codes), the masked
# datasets' check does not.
SHORT = 4


def ensure_tables(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(f"create table if not exists {INDEX} (tbl varchar, col varchar, event_date date, h ubigint, "
                "short boolean)")
    con.execute(f"create table if not exists {COVERAGE} (tbl varchar, col varchar, event_date date, n bigint, "
                "version varchar)")


def invalidate(con: duckdb.DuckDBPyConnection, table: str, days_where: str, params: list | None = None) -> None:
    """Stop trusting the index for `table` on the days matching `days_where` (a condition on event_date),
    every column: they are read from the raw table until sync() hashes them again. Run it before, or in the
    same transaction as, a change to those days."""
    if table_exists(con, "raw", COVERAGE.split(".")[1]):
        con.execute(f"delete from {COVERAGE} where tbl = ? and ({days_where})", [table, *(params or [])])


def capture(con: duckdb.DuckDBPyConnection, table: str, where: str, params: list) -> None:
    """Before an erasure deletes or redacts the rows `where` selects: note, in temp table _ix_erased, the values
    those rows hold per indexed column and day, and whether that day was trusted; stop trusting those days
    (see forget(), which makes the index exact again without re-hashing whole days)."""
    if table not in INDEXED_TABLES or not table_exists(con, "raw", COVERAGE.split(".")[1]):
        return
    cols = indexed_columns(con).get(table, ())
    con.execute("create temp table if not exists _ix_erased (tbl varchar, col varchar, event_date date, v varchar, "
                "h ubigint, n bigint)")
    if cols:
        # the user's rows, read once (a scan of the table per column cost 12 scans per erasure)
        con.execute(f"create or replace temp table _ix_rows as select event_date, {', '.join(cols)} from {table} "
                    f"where {where}", params)
        for col in cols:
            # a row per day (v null: the day's coverage), and one per value the user's rows hold that day
            con.execute(f"insert into _ix_erased select ?, ?, d.event_date, x.v, x.h, c.n from (select distinct event_date "
                        f"from _ix_rows) d left join (select distinct event_date, {col}::varchar as v, hash({col}) as h from _ix_rows "
                        f"where {col} is not null) x on x.event_date = d.event_date left join {COVERAGE} c "
                        "on c.tbl = ? and c.col = ? and c.event_date = d.event_date and c.version = ?",
                        [table, col, table, col, VERSION])
        con.execute("drop table _ix_rows")
    invalidate(con, table, f"event_date in (select event_date from {table} where {where})", params)


def forget(con: duckdb.DuckDBPyConnection) -> int:
    """After the erasures: drop from the index the hashes of the values noted by capture() that no row of their
    day holds any more, and trust again the days that were trusted before (their counts as they are now).
    Exact, and a filtered scan per column of the erased users' days: re-hashing those days cost 4-5 s per
    erasure at 10M events.
    Returns the hashes dropped."""
    if not temp_table_exists(con, "_ix_erased"):
        return 0
    con.execute("create or replace temp table _ix_drop (tbl varchar, col varchar, event_date date, h ubigint)")
    for table, in con.execute("select distinct tbl from _ix_erased order by 1").fetchall():
        cols = [c for c, in con.execute("select distinct col from _ix_erased where tbl = ? order by 1", [table]).fetchall()]
        # the span of the erased rows' days: the join on event_date below keeps their days alone, and a range
        # prunes the scan where a list of days is a filter on every row (0.58 -> 0.38 s per erasure at 10M events)
        first, last = con.execute("select min(event_date), max(event_date) from _ix_erased where tbl = ?",
                                  [table]).fetchone()
        _day_counts(con, table, "_ix_counts")
        for col in cols:
            values = [v for v, in con.execute("select distinct v from _ix_erased where tbl = ? and col = ? and v is not null",
                                              [table, col]).fetchall()]
            if values:
                # the rows of those days still holding one of the values: a list of constants is a filter of the
                # scan itself (0.05-0.15 s per column at 10M events; a subquery joined 0.7 s for all columns)
                listed = ", ".join("'" + v.replace("'", "''") + "'" for v in values)
                con.execute(f"create or replace temp table _ix_still as select distinct event_date, {col}::varchar as v "
                            f"from {table} where event_date between ? and ? and {col}::varchar in ({listed})", [first, last])
                con.execute("insert into _ix_drop select distinct e.tbl, e.col, e.event_date, e.h from _ix_erased e "
                            "where e.tbl = ? and e.col = ? and e.h is not null and not exists (select 1 from _ix_still s "
                            "where s.event_date = e.event_date and s.v = e.v)", [table, col])
            con.execute(f"insert into {COVERAGE} select ?, ?, c.event_date, c.n, ? from _ix_counts c where c.event_date in "
                        "(select event_date from _ix_erased where tbl = ? and col = ? group by 1 having bool_and(n is not null)) "
                        f"and not exists (select 1 from {COVERAGE} v where v.tbl = ? and v.col = ? and v.event_date = c.event_date)",
                        [table, col, VERSION, table, col, table, col])
    # one pass over the index for every column (a delete per column scanned it 12 times: 2 s per erasure)
    dropped = con.execute(f"delete from {INDEX} i using _ix_drop d where i.tbl = d.tbl and i.col = d.col "
                          "and i.event_date = d.event_date and i.h = d.h").fetchone()[0]
    con.execute("drop table if exists _ix_erased; drop table if exists _ix_still; drop table if exists _ix_counts; "
                "drop table if exists _ix_drop")
    return int(dropped)


def _day_counts(con: duckdb.DuckDBPyConnection, table: str, out: str) -> None:
    con.execute(f"create or replace temp table {out} as select event_date, count(*) as n from {table} group by 1")


def _stale(con: duckdb.DuckDBPyConnection, table: str, column: str, counts: str) -> list[date]:
    """The days of `table` (in temp table `counts`) whose index for `column` is not trusted."""
    return [r[0] for r in con.execute(
        f"select c.event_date from {counts} c left join {COVERAGE} v on v.tbl = ? and v.col = ? "
        "and v.event_date = c.event_date and v.version = ? where v.n is distinct from c.n order by 1",
        [table, column, VERSION]).fetchall()]


def indexed_columns(con: duckdb.DuckDBPyConnection) -> dict[str, tuple[str, ...]]:
    """The columns the index holds, per table. Read once per session (temp table _ix_columns; sync, which can
    add columns, drops it): a distinct over the whole index, 0.07 s at 10M events, ran for every erased user
    and table."""
    ensure_tables(con)
    con.execute(f"create temp table if not exists _ix_columns as select distinct tbl, col from (select tbl, col "
                f"from {COVERAGE} union select distinct tbl, col from {INDEX})")
    out: dict[str, list[str]] = {}
    for table, col in con.execute("select tbl, col from _ix_columns order by 1, 2").fetchall():
        out.setdefault(table, []).append(col)
    return {t: tuple(c) for t, c in out.items()}


def sync(con: duckdb.DuckDBPyConnection, columns: dict[str, tuple[str, ...]] | None = None,
         rebuild: tuple[date, date] | None = None) -> dict[str, int]:
    """Bring the index up to date for `columns` (raw table -> columns; by default those it holds): the days
    in `rebuild` are hashed again whatever their coverage says (a load calls it for the days it wrote), the
    days whose coverage does not match are rebuilt, and the days no longer in a table leave the index. On
    DuckLake, where runs of other days may be loading at the same time, only the `rebuild` range is hashed
    (each run indexes its own days; until then the others are read from the raw tables). One transaction:
    the day counts and the coverage are read from the same snapshot. Returns the days hashed per table."""
    ensure_tables(con)
    lake = is_lake_session(con)
    columns = indexed_columns(con) if columns is None else columns
    con.execute("drop table if exists _ix_columns")  # the columns synced may be new
    tables = [t for t in columns if t in INDEXED_TABLES and table_exists(con, *t.split("."))]
    done: dict[str, int] = {}
    begin(con, claim="identifier_index")
    try:
        for table in tables:
            counts = "_ix_counts_" + table.split(".")[1]
            _day_counts(con, table, counts)
            forced = set()
            if rebuild is not None:
                forced = {r[0] for r in con.execute(f"select event_date from {counts} where event_date between ? and ?",
                                                    list(rebuild)).fetchall()}
            for col in columns[table]:
                days = sorted(forced if lake else forced | set(_stale(con, table, col, counts)))
                # coverage of days gone from the table (purged, or every row erased), or of another version
                stale_coverage = con.execute(
                    f"select count(*) from {COVERAGE} where tbl = ? and col = ? and (version <> ? or "
                    f"event_date not in (select event_date from {counts}))", [table, col, VERSION]).fetchone()[0]
                if not (days or stale_coverage):
                    continue
                con.execute("create or replace temp table _ix_days as select unnest(?::date[]) as event_date", [days])
                replaced = f"event_date in (select event_date from _ix_days) or event_date not in (select event_date from {counts})"
                con.execute(f"delete from {INDEX} where tbl = ? and col = ? and ({replaced})", [table, col])
                con.execute(f"delete from {COVERAGE} where tbl = ? and col = ? and ({replaced} or version <> ?)",
                            [table, col, VERSION])
                if days:
                    # one column at a time: a distinct per column is 3.7x faster than one over an unpivot of them
                    con.execute(f"insert into {INDEX} select ?, ?, event_date, h, short from (select distinct event_date, "
                                f"hash({col}) as h, length({col}) < {SHORT} as short from {table} "
                                f"where {col} is not null and event_date in (select event_date from _ix_days))",
                                [table, col])
                    con.execute(f"insert into {COVERAGE} select ?, ?, event_date, n, ? from {counts} "
                                "where event_date in (select event_date from _ix_days)", [table, col, VERSION])
                    done[table] = max(done.get(table, 0), len(days))
        con.execute("commit")
    except Exception:
        con.execute("rollback")
        raise
    con.execute("drop table if exists _ix_days")
    for table in tables:
        con.execute("drop table if exists _ix_counts_" + table.split(".")[1])
    return done


def load(con: duckdb.DuckDBPyConnection, columns: dict[str, tuple[str, ...]], min_length: int = 0,
         out: str = "_raw_ids") -> dict[str, int]:
    """Temp table `out`(h ubigint): the hashes of every non-null value of the given raw columns (at least
    min_length characters long, min_length 0 or SHORT), from the index where it is trusted and from the raw
    tables elsewhere. A value can be there more than once (the same id on several days): the table is a probe
    side, and a distinct over it would cost more (0.35 s at 9M events) than the repeats cost the probes.
    Returns the days read from the raw tables, per table (none when the index covered all)."""
    if min_length not in (0, SHORT):
        raise ValueError(f"min_length must be 0 or {SHORT}")
    indexed = table_exists(con, "raw", INDEX.split(".")[1]) and table_exists(con, "raw", COVERAGE.split(".")[1])
    parts: list[str] = []
    from_raw: dict[str, int] = {}
    length = f" and length({{c}}) >= {min_length}" if min_length else ""
    for table, cols in columns.items():
        if not table_exists(con, *table.split(".")):
            continue
        if not (indexed and table in INDEXED_TABLES):
            parts += [f"select hash({c}) as h from {table} where {c} is not null{length.format(c=c)}" for c in cols]
            continue
        _day_counts(con, table, "_ix_counts")
        days = [r[0] for r in con.execute("select event_date from _ix_counts order by 1").fetchall()]
        trusted_by: dict[tuple[date, ...], list[str]] = {}
        for col in cols:
            stale = _stale(con, table, col, "_ix_counts")
            trusted_by.setdefault(tuple(d for d in days if d not in set(stale)), []).append(col)
            if stale:
                listed = ", ".join(f"date '{d}'" for d in stale)
                parts.append(f"select hash({col}) as h from {table} where {col} is not null{length.format(c=col)} "
                             f"and event_date in ({listed})")
                from_raw[table] = max(from_raw.get(table, 0), len(stale))
        for trusted, group in trusted_by.items():
            if trusted:
                listed = ", ".join(f"date '{d}'" for d in trusted)
                names = ", ".join(f"'{c}'" for c in group)
                parts.append(f"select h from {INDEX} where tbl = '{table}' and col in ({names})"
                             f"{' and not short' if min_length else ''} and list_contains([{listed}], event_date)")
    con.execute(f"create or replace temp table {out} as " + (
        " union all ".join(parts) if parts else "select null::ubigint as h where false"))
    con.execute("drop table if exists _ix_counts")
    return from_raw
