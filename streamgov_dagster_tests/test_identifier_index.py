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
