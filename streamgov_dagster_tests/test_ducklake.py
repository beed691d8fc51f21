"""The DuckLake backend (STREAMGOV_WAREHOUSE=ducklake) against the local PostgreSQL as its catalog: the same
job finds the same violations and publishes the same tables as on the DuckDB file, an erased user is gone
from every data file and from the catalog, and two daily partitions written at the same time by two
processes give the same tables as a serial run. Each test has its own PostgreSQL database (dropped at the
end) and its own data path; without a server they skip, unless STREAMGOV_REQUIRE_POSTGRES=1."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from datetime import date
from pathlib import Path

import duckdb
import pytest

from streamgov_dagster import cli
from streamgov_dagster.lib.generator import generate
from streamgov_dagster.lib.pseudonym import pseudonym
from streamgov_dagster.lib.warehouse import Target, connect
from streamgov_dagster_tests.conftest import TEST_KEY, policy_dir, require_postgres, run_pipeline

PG = {"host": "127.0.0.1", "port": 5432, "user": "postgres"}
# Columns stamped with (or counted from) the time of the run, which two runs cannot share; all else must match.
RUN_TIME_COLUMNS = {"detected_at", "loaded_at", "answered_at", "verified_at", "erased_at", "as_of", "scanned_at",
                    "generated_at", "days_to_deadline"}
PARTITIONED = ("raw.access_events", "raw.audit_events", "masked.access_events", "masked.audit_events")


def _postgres(dbname: str = "test"):
    import psycopg2

    con = psycopg2.connect(dbname=dbname, connect_timeout=3, **PG)
    con.autocommit = True
    return con


@pytest.fixture
def catalog_db():
    """A fresh PostgreSQL database for one DuckLake catalog, dropped afterwards (skip without a server)."""
    names: list[str] = []

    def make() -> str:
        try:
            con = _postgres()
        except Exception as exc:  # noqa: BLE001 - any connection failure means no server here
            if require_postgres():
                raise
            pytest.skip(f"no PostgreSQL at 127.0.0.1:5432 ({type(exc).__name__})")
        name = f"streamgov_lake_{uuid.uuid4().hex[:8]}"
        con.cursor().execute(f"create database {name}")
        con.close()
        names.append(name)
        return name

    yield make
    if names:
        con = _postgres()
        for name in names:
            con.cursor().execute(f"drop database if exists {name} with (force)")
        con.close()


def _catalog(db: str) -> str:
    return f"postgres:dbname={db} host={PG['host']} port={PG['port']} user={PG['user']}"


def _use_lake(monkeypatch: pytest.MonkeyPatch, db: str, data_path: Path) -> Target:
    monkeypatch.setenv("STREAMGOV_WAREHOUSE", "ducklake")
    monkeypatch.setenv("STREAMGOV_DUCKLAKE_CATALOG", _catalog(db))
    monkeypatch.setenv("STREAMGOV_DUCKLAKE_DATA_PATH", str(data_path))
    return Target("ducklake", "", _catalog(db), str(data_path))


def _tables(con: duckdb.DuckDBPyConnection) -> dict[str, list[str]]:
    rows = con.execute("select table_schema || '.' || table_name, column_name from information_schema.columns "
                       "where table_schema in ('raw', 'consent', 'governance', 'masked', 'reports') "
                       "order by table_schema, table_name, ordinal_position").fetchall()
    out: dict[str, list[str]] = {}
    for table, column in rows:
        out.setdefault(table, []).append(column)
    return out


def _contents(con: duckdb.DuckDBPyConnection, table: str, columns: list[str]) -> list[tuple]:
    """Every row (run-time stamps left out), as text, sorted: a multiset comparison."""
    kept = [c for c in columns if c not in RUN_TIME_COLUMNS]
    rows = con.execute(f"select {', '.join(f'{c}::varchar' for c in kept)} from {table}").fetchall()
    return sorted((tuple(r) for r in rows), key=lambda r: tuple((v is None, v or "") for v in r))


def _snapshot(target: Target, tables: tuple[str, ...] | None = None) -> dict[str, list[tuple]]:
    con = connect(target, read_only=True)
    try:
        found = _tables(con)
        return {t: _contents(con, t, cols) for t, cols in found.items() if tables is None or t in tables}
    finally:
        con.close()


def test_ducklake_run_finds_the_same_violations_and_tables_as_the_duckdb_file(
        env, tmp_path, monkeypatch, capsys, catalog_db) -> None:
    generate(env["landing"], seed=11, users=40, days=2, start=date(2026, 10, 30), staff=20)
    # the generator's erasures are purged physically in the same run (no batching), on both backends
    policy_dir(tmp_path, monkeypatch, {"erasure_compaction_delay_days": 0})
    first, last = "2026-10-29", "2026-11-01"  # a few events spill into the days around the generated ones
    assert run_pipeline(first, last).success
    on_file = _snapshot(Target("duckdb", str(env["warehouse"])))
    by_rule = "select rule_id, severity, count(*) as n from governance.violations group by all order by all"
    assert cli.main(["query", by_rule]) == 0
    file_answer = capsys.readouterr().out

    # The same landing zone into a lake, as an operator runs it (`streamgov run`), with its own reports
    # folder and alert file.
    monkeypatch.setenv("STREAMGOV_REPORTS_DIR", str(tmp_path / "lake_reports"))
    monkeypatch.setenv("STREAMGOV_ALERTS_PATH", str(tmp_path / "lake_alerts" / "alerts.jsonl"))
    target = _use_lake(monkeypatch, catalog_db(), tmp_path / "lake_data")
    # Exit 0: the run succeeded and no ERROR check failed (erased_subjects_absent is one).
    assert cli.main(["run", "--start", first, "--end", last]) == 0
    out = capsys.readouterr().out
    assert "warehouse DuckLake (postgres catalog" in out and "dbname" not in out
    on_lake = _snapshot(target)

    assert on_lake["governance.violations"] == on_file["governance.violations"]
    assert len(on_file["governance.violations"]) >= 11  # every rule fired on the generated incidents
    assert cli.main(["query", by_rule]) == 0
    assert capsys.readouterr().out == file_answer
    assert cli.main(["verify-log"]) == 0
    # raw.write_claims exists on the lake only: it serializes concurrent writers of an ingest ledger.
    assert on_lake.pop("raw.write_claims") and set(on_lake) == set(on_file)
    assert {t: len(rows) for t, rows in on_lake.items()} == {t: len(rows) for t, rows in on_file.items()}
    different = sorted(t for t in on_file if on_lake[t] != on_file[t])
    assert different == ["consent.consent_log"]
    # The consent log's erasure entries carry the time of the erasure, which their hashes cover; every
    # other entry (the erased users' tombstones included) is identical.
    con = connect(target, read_only=True)
    try:
        assert con.execute("select count(*) = count(verified_at) from governance.dsar_log "
                           "where type = 'erasure'").fetchone()[0]
        lake_log = con.execute("select seq, payload_hash, erased from consent.consent_log where change <> 'erasure' "
                               "or change is null order by seq").fetchall()
    finally:
        con.close()
    file_con = duckdb.connect(str(env["warehouse"]), read_only=True)
    try:
        assert lake_log == file_con.execute("select seq, payload_hash, erased from consent.consent_log "
                                            "where change <> 'erasure' or change is null order by seq").fetchall()
    finally:
        file_con.close()

    # Every erased user is gone from every file under the data path and from every text in the catalog.
    requests = [json.loads(line) for line in (env["landing"] / "dsar" / "requests.jsonl").read_text().splitlines()]
    users = sorted({r["user_id"] for r in requests if r["type"] == "erasure"})
    assert users and any(row[3] == "erased_subject" for row in on_lake["raw.quarantine_lines"])
    emails = {r[0] for r in duckdb.execute(
        "select distinct email from read_json(?, columns={'user_id': 'VARCHAR', 'email': 'VARCHAR'}, "
        "ignore_errors=true) where list_contains(?, user_id) and email is not null",
        [str(env["landing"] / "access" / "*.jsonl*"), users]).fetchall()}
    needles = set(users) | emails | {pseudonym(TEST_KEY, u) for u in users} | {
        pseudonym(TEST_KEY, e, email=True) for e in emails}
    files = [p for p in (tmp_path / "lake_data").rglob("*") if p.is_file()]
    assert files and all(p.suffix == ".parquet" for p in files)
    scan = duckdb.connect()
    for path in files:
        text = scan.execute("select string_agg(t::varchar, chr(10)) from read_parquet(?) t", [str(path)]).fetchone()[0]
        assert not any(n in (text or "") for n in needles), path.name
    scan.close()
    catalog = _postgres(target.catalog.split("dbname=")[1].split()[0])
    try:
        cur = catalog.cursor()
        cur.execute("select table_schema, table_name, column_name from information_schema.columns "
                    "where table_schema not in ('pg_catalog', 'information_schema') "
                    "and data_type in ('text', 'character varying')")
        for schema, table, column in cur.fetchall():
            cur.execute(f'select count(*) from "{schema}"."{table}" where ' +
                        " or ".join(f'position(%s in "{column}") > 0' for _ in needles), sorted(needles))
            assert cur.fetchone()[0] == 0, f"{table}.{column}"
    finally:
        catalog.close()


# A worker: materializes the partitioned assets for one day once the parent says go (so both start together).
WORKER = """
import json, sys, time
from pathlib import Path
import dagster as dg
from streamgov_dagster.defs.ingest.assets import raw_access_events, raw_audit_events
from streamgov_dagster.defs.masking.assets import masked_access_events, masked_audit_events
from streamgov_dagster.defs.resources import resources
day, go = sys.argv[1], Path(sys.argv[2])
Path(f"{go}.{day}").touch()
while not go.exists():
    time.sleep(0.02)
start = time.time()
result = dg.materialize([raw_access_events, raw_audit_events, masked_access_events, masked_audit_events],
                        partition_key=day, resources=resources().resources,
                        instance=dg.DagsterInstance.ephemeral(), raise_on_error=False)
retried = sorted(e.step_key for e in result.all_events if e.event_type_value == "STEP_UP_FOR_RETRY")
def _messages(error):
    while error is not None:
        yield error.message.strip()[:400]
        error = error.cause or error.context
failed = [f"{e.step_key}: " + " <- ".join(_messages(e.event_specific_data.error)) for e in result.all_events
          if e.event_type_value == "STEP_FAILURE"]
print(json.dumps({"day": day, "success": result.success, "start": start, "end": time.time(), "retried": retried,
                  "failed": failed}))
"""
DAYS = ("2026-10-30", "2026-10-31")
COMPARED = (*PARTITIONED, "raw.quarantine_lines", "raw.ingest_ledger", "raw.identifier_index", "raw.identifier_index_days")


def test_two_partitions_written_in_parallel_processes_match_a_serial_run(env, tmp_path, monkeypatch,
                                                                         catalog_db) -> None:
    generate(env["landing"], seed=5, users=30, days=2, start=date(2026, 10, 30), staff=20)

    parallel = _use_lake(monkeypatch, catalog_db(), tmp_path / "parallel")
    connect(parallel).close()  # the catalog is created once; the workers then race on schemas, tables and rows
    go = tmp_path / "go"
    workers = [subprocess.Popen([sys.executable, "-c", WORKER, day, str(go)], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, env=dict(os.environ)) for day in DAYS]
    deadline = time.time() + 120
    while not all(Path(f"{go}.{day}").exists() for day in DAYS) and time.time() < deadline:
        time.sleep(0.05)
    go.touch()
    reports = []
    for worker in workers:
        out, err = worker.communicate(timeout=240)
        assert worker.returncode == 0, err[-3000:]
        reports.append(json.loads(out.strip().splitlines()[-1]))
    assert all(r["success"] for r in reports), json.dumps(reports, indent=1)
    # The two runs were in flight at the same time, each writing the same four tables.
    assert max(r["start"] for r in reports) < min(r["end"] for r in reports), reports
    print("steps retried after a commit conflict:", [r["retried"] for r in reports])

    serial = _use_lake(monkeypatch, catalog_db(), tmp_path / "serial")
    import dagster as dg

    from streamgov_dagster.defs.ingest.assets import raw_access_events, raw_audit_events
    from streamgov_dagster.defs.masking.assets import masked_access_events, masked_audit_events
    from streamgov_dagster.defs.resources import resources

    for day in DAYS:
        assert dg.materialize([raw_access_events, raw_audit_events, masked_access_events, masked_audit_events],
                              partition_key=day, resources=resources().resources,
                              instance=dg.DagsterInstance.ephemeral()).success

    in_parallel, in_series = _snapshot(parallel, COMPARED), _snapshot(serial, COMPARED)
    assert set(in_series) == set(COMPARED)
    for table in COMPARED:
        assert in_parallel[table] == in_series[table], table
    con = connect(parallel, read_only=True)
    try:
        for table in PARTITIONED:
            days = {str(r[0]) for r in con.execute(f"select distinct event_date from {table}").fetchall()}
            assert days == set(DAYS), table
    finally:
        con.close()

    # The daily retention purge also purges the lake's history: deleted rows must not stay readable by
    # time travel. One snapshot is left, and every file under the data path is one the catalog lists.
    from streamgov_dagster.defs.reports.retention import retention_purge_job

    assert retention_purge_job.execute_in_process(resources=resources().resources).success
    con = connect(serial, read_only=True)
    try:
        assert con.execute("select count(*) from lake.snapshots()").fetchone()[0] == 1
        listed = {r[0] for r in con.execute("select data_file from ducklake_list_files('lake', 'access_events', "
                                            "schema => 'raw')").fetchall()}
    finally:
        con.close()
    on_disk = {str(p) for p in (tmp_path / "serial" / "raw" / "access_events").rglob("*.parquet")}
    assert listed and on_disk == listed


def test_a_catalog_password_never_reaches_an_error_message() -> None:
    """The catalog string may hold a password: a failed attach names neither it nor the connection string."""
    secret = "s3cr3t-" + uuid.uuid4().hex[:6]
    catalog = f"postgres:dbname=nowhere host=127.0.0.1 port=1 user=postgres password={secret} connect_timeout=2"
    with pytest.raises(duckdb.Error) as caught:
        connect(Target("ducklake", "", catalog, "/nonexistent"))
    chain, seen = [], caught.value
    while seen is not None:
        chain.append(str(seen))
        seen = seen.__cause__ or seen.__context__
    assert chain and not any(secret in text or "dbname=nowhere" in text for text in chain), chain
    assert "cannot attach the DuckLake catalog" in chain[0]
    # An error raised later (the catalog connection lost mid-step) is scrubbed the same way.
    from streamgov_dagster.lib.warehouse import scrub

    lost = duckdb.IOException(f'Unable to connect to Postgres at "{catalog.split(":", 1)[1]}": timeout')
    clean = scrub(lost, Target("ducklake", "", catalog, None))
    assert isinstance(clean, duckdb.IOException) and secret not in str(clean) and "timeout" in str(clean)


def test_a_commit_that_loses_to_a_concurrent_writer_is_retried(env, tmp_path, catalog_db) -> None:
    """Two sessions publish the same source's shared rows at once: DuckLake lets one commit; the other's
    step is asked to run again (dg.RetryRequested), not failed."""
    import dagster as dg

    from streamgov_dagster.defs.resources import GovernanceConfig, WarehouseResource, warehouse
    from streamgov_dagster.lib.warehouse import begin, is_write_conflict

    db = catalog_db()
    resource = WarehouseResource(database="unused", backend="ducklake", ducklake_catalog=_catalog(db),
                                 ducklake_data_path=str(tmp_path / "lake"))
    config = GovernanceConfig(landing_dir=str(env["landing"]), reports_dir=str(env["reports"]), pseudonym_key=TEST_KEY)
    other = connect(resource.target)
    other.execute("create schema if not exists raw; create table raw.ledger (source varchar, n bigint)")
    with pytest.raises(dg.RetryRequested) as retry:
        with warehouse(resource, config) as con:
            begin(con, claim="ingest:test")
            con.execute("delete from raw.ledger where source = 'test'")
            con.execute("insert into raw.ledger values ('test', 1)")
            begin(other, claim="ingest:test")  # a second writer of the same shared rows, committing first
            other.execute("delete from raw.ledger where source = 'test'")
            other.execute("insert into raw.ledger values ('test', 2)")
            other.execute("commit")
            con.execute("commit")
    assert is_write_conflict(retry.value.__cause__)
    assert other.execute("select n from raw.ledger").fetchall() == [(2,)]  # one writer's rows, once
    other.close()
