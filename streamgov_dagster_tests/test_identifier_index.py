"""The raw-identifier index (lib/identifiers.py): the leak checks read the raw identifiers from it, so it
must hold exactly what the raw tables hold, follow every change, and never turn a hash collision into a
leak."""

from datetime import date

from streamgov_dagster.lib import identifiers, leakguard

COLUMNS = {"raw.access_events": ("client_ip", "user_id"), "raw.audit_events": ("actor_id",)}
D1, D2, D3 = date(2026, 10, 1), date(2026, 10, 2), date(2026, 10, 3)


def _raw(con) -> None:
    con.execute("create schema if not exists raw")
    con.execute("create table raw.access_events (event_date date, user_id varchar, client_ip varchar, country varchar, "
                "session_id varchar, device_id varchar, email varchar, auth_token_id varchar)")
    con.execute("create table raw.audit_events (event_date date, actor_id varchar, subject_user_id varchar, source_ip varchar)")
    con.execute("insert into raw.access_events (event_date, user_id, client_ip, country) values "
                f"('{D1}', 'u-1', '10.0.0.1', 'DE'), ('{D1}', 'u-2', '10.0.0.2', 'FR'), ('{D2}', 'u-1', '10.0.0.1', 'DE'), "
                f"('{D2}', 'u-3', null, 'DE'), ('{D3}', 'x', '10.0.0.9', 'IT')")
    con.execute(f"insert into raw.audit_events (event_date, actor_id) values ('{D1}', 'staff-1'), ('{D3}', 'staff-2')")


def _expected(con, min_length: int = 0) -> set[int]:
    parts = [f"select hash({c}) from {t} where {c} is not null and length({c}) >= {min_length}"
             for t, cols in COLUMNS.items() for c in cols]
    return {r[0] for r in con.execute(" union ".join(parts)).fetchall()}


def _loaded(con, min_length: int = 0) -> tuple[set[int], dict[str, int]]:
    from_raw = identifiers.load(con, COLUMNS, min_length, "_ids")
    return {r[0] for r in con.execute("select h from _ids").fetchall()}, from_raw


def test_the_index_holds_the_raw_identifiers_and_follows_every_change(con) -> None:
    _raw(con)
    # no index yet: everything is read from the raw tables
    assert _loaded(con) == (_expected(con), {})
    assert identifiers.sync(con, COLUMNS) == {"raw.access_events": 3, "raw.audit_events": 2}
    assert _loaded(con) == (_expected(con), {})
    assert con.execute("select count(*) from raw.identifier_index where tbl = 'raw.access_events' "
                       "and col = 'user_id' and event_date = ?", [D1]).fetchone()[0] == 2
    # short values ('x') are left out of the leak scan's identifiers only
    assert _loaded(con, 4)[0] == _expected(con, 4) != _expected(con)
    assert identifiers.sync(con, COLUMNS) == {}  # nothing changed: nothing hashed

    # a row written around the index changes its day's count: that day comes from the raw table
    con.execute(f"insert into raw.access_events (event_date, user_id, client_ip) values ('{D2}', 'u-late', '10.0.0.7')")
    assert _loaded(con) == (_expected(con), {"raw.access_events": 1})
    # a value changed in place keeps the count: the writer invalidates the day (as loads and erasures do)
    identifiers.invalidate(con, "raw.access_events", "event_date = ?", [D1])
    con.execute("update raw.access_events set user_id = 'u-renamed' where user_id = 'u-2'")
    assert _loaded(con) == (_expected(con), {"raw.access_events": 2})
    assert identifiers.sync(con) == {"raw.access_events": 2}  # the columns it holds, the stale days only
    assert _loaded(con) == (_expected(con), {})
    assert con.execute("select count(*) from raw.identifier_index where h = hash('u-2')").fetchone()[0] == 0

    # a load re-hashes its days whatever their coverage says
    assert identifiers.sync(con, COLUMNS, rebuild=(D3, D3)) == {"raw.access_events": 1, "raw.audit_events": 1}
    # a purged day leaves the index
    con.execute("delete from raw.access_events where event_date = ?", [D1])
    con.execute("delete from raw.audit_events where event_date = ?", [D1])
    identifiers.sync(con)
    assert con.execute("select count(*) from raw.identifier_index where event_date = ?", [D1]).fetchone()[0] == 0
    assert con.execute("select count(*) from raw.identifier_index_days where event_date = ?", [D1]).fetchone()[0] == 0
    assert _loaded(con) == (_expected(con), {})
    assert con.execute("select count(*) from raw.identifier_index where h = hash('staff-1')").fetchone()[0] == 0


def test_a_hash_match_is_confirmed_on_the_values(con) -> None:
    _raw(con)
    identifiers.sync(con, COLUMNS)
    con.execute("create schema if not exists reports")
    con.execute("create table reports.notes (note varchar)")
    con.execute("insert into reports.notes values ('clean text'), ('harmless words')")
    # a 64-bit collision, simulated: the index holds the hash of a published value that no raw row holds
    con.execute(f"insert into raw.identifier_index select 'raw.access_events', 'user_id', '{D1}', hash('harmless words'), false")
    assert leakguard.scan_tables(con, set()) == {}
    # raw identifiers released are found, and counted on the values ('u-1' is shorter than the scan's minimum)
    con.execute("insert into reports.notes values ('u-1'), ('10.0.0.2'), ('staff-2')")
    hits = leakguard.scan_tables(con, set())
    assert hits["reports.notes.note:raw_identifier"] == 2


def test_the_retention_job_drops_purged_days_from_the_index_and_merges_row_groups(env) -> None:
    from datetime import datetime, timedelta, timezone

    import duckdb

    from streamgov_dagster.defs.reports.retention import retention_purge_job
    from streamgov_dagster.defs.resources import resources
    from streamgov_dagster.lib import ingest
    from streamgov_dagster.lib.warehouse import prepare
    from streamgov_dagster_tests.landing import access, write_landing

    today = datetime.now(timezone.utc).date()
    old, new = today - timedelta(days=60), today - timedelta(days=1)
    root = write_landing(env["landing"], access_events=[access("old", f"{old}T10:00:00Z", user_id="u-old-1"),
                                                        access("new", f"{new}T10:00:00Z", user_id="u-new-1")])
    con = prepare(duckdb.connect(str(env["warehouse"])))
    ingest.load(con, ingest.ACCESS, root, ingest.list_files(root / "access", ("*.jsonl",)), old, new,
                (date(2000, 1, 1), date(2100, 1, 1)))
    identifiers.sync(con, {"raw.access_events": ("user_id",)})
    # appends checkpointed one by one stay in row groups of their own (the pipeline's checkpoints do not merge)
    con.execute("create table governance.appended (v integer)")
    for i in range(3):
        con.execute("insert into governance.appended values (?)", [i])
        con.execute("checkpoint")
    groups = "select count(distinct row_group_id) from pragma_storage_info('governance.appended')"
    assert con.execute(groups).fetchone()[0] == 3
    con.close()

    assert retention_purge_job.execute_in_process(resources=resources().resources).success
    con = duckdb.connect(str(env["warehouse"]), read_only=True)
    try:
        assert con.execute("select list(event_id) from raw.access_events").fetchone()[0] == ["new"]
        assert con.execute("select list(distinct event_date) from raw.identifier_index").fetchone()[0] == [new]
        assert con.execute("select count(*) from raw.identifier_index where h = hash('u-old-1')").fetchone()[0] == 0
        assert con.execute(groups).fetchone()[0] == 1
    finally:
        con.close()


def test_an_erasure_updates_the_index_exactly_without_rehashing_days(con) -> None:
    _raw(con)
    identifiers.sync(con, COLUMNS)
    # u-1 is erased: its rows go; its IP 10.0.0.1 stays on D1 only if another row holds it there
    con.execute(f"insert into raw.access_events (event_date, user_id, client_ip) values ('{D1}', 'u-9', '10.0.0.1')")
    identifiers.sync(con, COLUMNS)
    con.execute("begin transaction")
    identifiers.capture(con, "raw.access_events", "user_id = ?", ["u-1"])
    con.execute("delete from raw.access_events where user_id = ?", ["u-1"])
    assert identifiers.forget(con) == 3  # u-1 on D1 and D2, 10.0.0.1 on D2
    con.execute("commit")
    assert _loaded(con) == (_expected(con), {})  # exact, and every day trusted again
    held = "select list(event_date order by event_date) from raw.identifier_index where h = hash(?)"
    assert con.execute(held, ["u-1"]).fetchone()[0] is None
    assert con.execute(held, ["10.0.0.1"]).fetchone()[0] == [D1]
    assert identifiers.sync(con, COLUMNS) == {}  # nothing left to re-hash
