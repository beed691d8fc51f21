"""The consent source: a SQLite file (by default) read by DuckDB, PostgreSQL through SQLAlchemy against the
local server."""

import uuid

import pytest
import sqlalchemy as sa

from streamgov_dagster.lib import consent
from streamgov_dagster_tests.conftest import require_postgres

PG_URL = "postgresql+psycopg2://postgres@127.0.0.1:5432/test"
ROWS = [
    ("c1", "u1", "analytics", "granted", "2026-10-01T00:00:00Z", None),
    ("c2", "u1", "analytics", "withdrawn", "2026-10-10T00:00:00Z", None),
    ("c3", "u2", "advertising", "granted", "2026-10-01T00:00:00Z", "2026-12-01T00:00:00Z"),
    ("c4", "u3", "telepathy", "granted", "2026-10-01T00:00:00Z", None),        # bad purpose
    ("c5", "u4", "analytics", "granted", "yesterday", None),                    # bad timestamp
]


def _fill(engine: sa.Engine, schema: str | None = None) -> None:
    table = f"{schema}.consent_events" if schema else "consent_events"
    with engine.begin() as conn:
        if schema:
            conn.execute(sa.text(f"create schema {schema}"))
        conn.execute(sa.text(f"create table {table} (event_id text primary key, user_id text not null, purpose text, "
                             "status text, recorded_at text, expires_at text, source text, notice_version text, "
                             "jurisdiction text, tc_string text)"))
        for r in ROWS:
            conn.execute(sa.text(f"insert into {table} values (:e, :u, :p, :s, :r, :x, 'web', 'v1', 'EU', null)"),
                         dict(zip("eupsrx", r)))


def _check_loaded(con, url: str) -> None:
    stats = consent.load_raw(con, url)
    assert stats == {"source_status": "ok", "mode": "full", "rows_fetched": 5, "rows_read": 5, "rows_loaded": 3,
                     "rows_quarantined": 2}
    reasons = con.execute("select reason from raw.quarantine_lines where source = 'consent' order by reason").fetchall()
    assert reasons == [("invalid_purpose",), ("invalid_recorded_at",)]
    consent.build_state(con)
    states = con.execute("select purpose, state, valid_to is null from consent.consent_state order by purpose, valid_from").fetchall()
    assert states == [("advertising", "granted", False), ("advertising", "expired", True),
                      ("analytics", "granted", False), ("analytics", "withdrawn", True)]


def test_sqlite_source(tmp_path, con) -> None:
    url = f"sqlite:///{tmp_path / 'consent.db'}"
    _fill(sa.create_engine(url))
    _check_loaded(con, url)


def test_missing_sqlite_source_fails_closed_without_creating_a_file(tmp_path, con) -> None:
    stats = consent.load_raw(con, f"sqlite:///{tmp_path / 'absent.db'}")
    assert stats["source_status"] == "missing" and stats["rows_loaded"] == 0
    assert not (tmp_path / "absent.db").exists()


def test_unreadable_source_fails_closed(tmp_path, con) -> None:
    (tmp_path / "garbage.db").write_bytes(b"this is not a database" * 100)
    assert consent.load_raw(con, f"sqlite:///{tmp_path / 'garbage.db'}")["source_status"] == "unreadable"


@pytest.mark.postgres
def test_duckdb_reads_a_sqlite_source_as_sqlalchemy_does(tmp_path, con, monkeypatch) -> None:
    """DuckDB's SQLite reader stages what the SQLAlchemy path stages, row for row, including values stored
    with another type than their column's (SQLite keeps what it is given), and finds no table as unreadable."""
    url = f"sqlite:///{tmp_path / 'consent.db'}"
    _fill(sa.create_engine(url))
    with sa.create_engine(url).begin() as conn:
        conn.execute(sa.text("insert into consent_events values ('c6', 12345, 'analytics', 'granted', "
                             "'2026-10-02T00:00:00Z', 'x', 'tv', 7, 'BR', 'CPXxRfAPXxRfAAfKABENB-CgAAAAAAAAAAYgAAAAAAAA')"))
        conn.execute(sa.text("insert into consent_events values ('c7', 'ü-7 ', null, null, null, null, null, null, null, null)"))
    staged = "select * from _consent_src order by event_id"
    assert consent._sqlite_scanner(con)  # the extension's wheel is installed: DuckDB reads the file
    by_duckdb = {}
    for since in (None, "2026-10-02"):  # the incremental read compares the text, as SQLite does
        assert consent.stage_source(con, url, since) == ("ok", 7)
        by_duckdb[since] = con.execute(staged).fetchall()
    assert by_duckdb[None][5][:2] == ("c6", "12345") and by_duckdb[None][6][:2] == ("c7", "ü-7 ")
    assert [r[0] for r in by_duckdb["2026-10-02"]] == ["c2", "c5", "c6"]  # c5 was recorded 'yesterday'
    monkeypatch.setattr(consent, "_sqlite_scanner", lambda con: False)
    for since in (None, "2026-10-02"):
        assert consent.stage_source(con, url, since) == ("ok", 7)
        assert con.execute(staged).fetchall() == by_duckdb[since]
    monkeypatch.undo()
    with sa.create_engine(f"sqlite:///{tmp_path / 'other.db'}").begin() as conn:
        conn.execute(sa.text("create table something_else (x text)"))
    assert consent.stage_source(con, f"sqlite:///{tmp_path / 'other.db'}") == ("unreadable", 0)
    assert consent.stage_source(con, url)[0] == "ok"  # nothing of the failed attach is left behind


def test_postgresql_source(con) -> None:
    engine = sa.create_engine(PG_URL)
    try:
        with engine.connect():
            pass
    except sa.exc.OperationalError:
        if require_postgres():
            raise
        pytest.skip("PostgreSQL is not reachable at 127.0.0.1:5432")
    schema = f"sg_test_{uuid.uuid4().hex[:8]}"
    _fill(engine, schema)
    try:
        _check_loaded(con, f"{PG_URL}?options=-csearch_path%3D{schema}")
    finally:
        with engine.begin() as conn:
            conn.execute(sa.text(f"drop schema {schema} cascade"))
        engine.dispose()


def _insert(url: str, rows: list[tuple]) -> None:
    with sa.create_engine(url).begin() as conn:
        for r in rows:
            conn.execute(sa.text("insert into consent_events values (:e, :u, :p, :s, :r, :x, 'web', 'v1', 'EU', null)"),
                         dict(zip("eupsrx", r)))


def test_incremental_reads_merge_late_corrections_and_fall_back_to_full(tmp_path, con) -> None:
    url = f"sqlite:///{tmp_path / 'consent.db'}"
    _fill(sa.create_engine(url))
    assert consent.load_raw(con, url, lookback_days=7)["mode"] == "full"  # nothing held yet
    # a new row and a late correction recorded 3 days before the newest row: inside the lookback
    _insert(url, [("c6", "u5", "analytics", "granted", "2026-10-12T00:00:00Z", None),
                  ("c7", "u1", "analytics", "granted", "2026-10-07T00:00:00Z", None)])
    stats = consent.load_raw(con, url, lookback_days=7)
    # fetched: c2 (the watermark), c6, c7, and c5 whose unparseable "yesterday" sorts after any date as text
    assert stats["mode"] == "incremental" and stats["rows_fetched"] == 4
    assert stats["rows_read"] == 7 and stats["rows_loaded"] == 5
    # a late row recorded long before the watermark is outside the lookback: the counts disagree, full reload
    _insert(url, [("c0", "u9", "advertising", "granted", "2025-01-01T00:00:00Z", None)])
    stats = consent.load_raw(con, url, lookback_days=7)
    assert stats["mode"].startswith("full") and stats["rows_loaded"] == 6
    ids = {r[0] for r in con.execute("select event_id from raw.consent_events").fetchall()}
    assert ids == {"c0", "c1", "c2", "c3", "c6", "c7"}
