"""Incremental ingestion: a load reads only new, changed or overlapping files, and gives the tables a full
load would give."""

import json
import os
from dataclasses import replace
from datetime import date
from pathlib import Path

from streamgov_dagster.lib import ingest
from streamgov_dagster_tests.landing import access

BOUNDS = (date(2000, 1, 1), date(2030, 1, 1))
TABLES = ("raw.access_events", "raw.quarantine_lines", "raw.ingest_ledger", "raw.ingest_files")


def _write(root: Path, name: str, lines: list[str]) -> Path:
    path = root / "access" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def _day(day: str, n: int, prefix: str) -> list[str]:
    lines = [json.dumps(access(f"{prefix}{i}", f"{day}T10:0{i}:00Z", user_id=f"u{i}")) for i in range(n)]
    return lines + ["not json", json.dumps(access(f"{prefix}x", f"{day}T11:00:00Z", action="rewind"))]


def _load(con, root: Path, first: str, last: str) -> dict:
    files = ingest.list_files(root / "access", ingest.JSON_PATTERNS)
    return ingest.load(con, ingest.ACCESS, root, files, date.fromisoformat(first), date.fromisoformat(last), BOUNDS)


def _dump(con) -> dict[str, list]:
    return {t: con.execute(f"select * from {t} order by all").fetchall() for t in TABLES}


def test_a_day_load_skips_unchanged_files_of_other_days(con, tmp_path) -> None:
    root = tmp_path / "landing"
    for d in ("2026-10-29", "2026-10-30", "2026-10-31"):
        _write(root, f"access-{d}.jsonl", _day(d, 4, f"e{d[-2:]}-"))
    full = _load(con, root, "2026-10-29", "2026-10-31")
    assert full["files"] == 3 and full["files_skipped"] == 0
    before = _dump(con)
    again = _load(con, root, "2026-10-30", "2026-10-30")
    assert again["files"] == 1 and again["files_skipped"] == 2
    assert again["lines_read"] == 6 and again["rows_loaded"] == 4 and again["rows_quarantined"] == 2
    assert _dump(con) == before  # re-running a partition gives the same tables

    # A new day: only its file is read; what the other files hold stays as it was.
    _write(root, "access-2026-11-01.jsonl", _day("2026-11-01", 3, "e01-"))
    new_day = _load(con, root, "2026-11-01", "2026-11-01")
    assert new_day["files"] == 1 and new_day["files_skipped"] == 3
    assert con.execute("select count(*) from raw.access_events").fetchone()[0] == 15
    balanced = con.execute("select bool_and(lines_read = rows_loaded + rows_quarantined + duplicates), count(*) "
                           "from raw.ingest_ledger").fetchone()
    assert balanced == (True, 4)


def test_changed_file_is_read_again_and_a_redelivered_event_is_a_duplicate(con, tmp_path) -> None:
    root = tmp_path / "landing"
    first = _write(root, "access-2026-10-29.jsonl", _day("2026-10-29", 3, "a"))
    _load(con, root, "2026-10-29", "2026-10-29")
    # A later file re-delivers an event already loaded from a file this load does not read.
    _write(root, "access-2026-10-30.jsonl", [json.dumps(access("b0", "2026-10-30T09:00:00Z")),
                                             json.dumps(access("a1", "2026-10-29T10:01:00Z", user_id="u1"))])
    stats = _load(con, root, "2026-10-30", "2026-10-30")
    assert stats["files"] == 1 and stats["duplicates"] == 1 and stats["rows_loaded"] == 1
    assert con.execute("select count(*) from raw.access_events where event_id = 'a1'").fetchone()[0] == 1

    # A file that changed (size or modification time) is read again even though its day is not loaded.
    first.write_text(first.read_text() + json.dumps(access("a9", "2026-10-29T12:00:00Z")) + "\n")
    os.utime(first, ns=(first.stat().st_atime_ns, first.stat().st_mtime_ns + 1_000_000_000))
    stats = _load(con, root, "2026-10-30", "2026-10-30")
    assert stats["files"] == 2
    ledger = dict(con.execute("select file, lines_read from raw.ingest_ledger").fetchall())
    assert ledger["access/access-2026-10-29.jsonl"] == 6

    # A full load of both days gives what loading them from scratch gives.
    _load(con, root, "2026-10-29", "2026-10-30")
    incremental = _dump(con)
    for t in TABLES:
        con.execute(f"delete from {t}")
    _load(con, root, "2026-10-29", "2026-10-30")
    assert _dump(con) == incremental


def test_a_new_parser_version_reads_every_file_again(con, tmp_path, monkeypatch) -> None:
    root = tmp_path / "landing"
    _write(root, "access-2026-10-29.jsonl", _day("2026-10-29", 2, "a"))
    _write(root, "access-2026-10-30.jsonl", _day("2026-10-30", 2, "b"))
    _load(con, root, "2026-10-29", "2026-10-30")
    assert _load(con, root, "2026-10-30", "2026-10-30")["files"] == 1
    monkeypatch.setattr(ingest, "PARSER_VERSION", ingest.PARSER_VERSION + 1)
    assert _load(con, root, "2026-10-30", "2026-10-30")["files"] == 2


def test_a_warehouse_from_before_the_id_hash_gets_it_filled_in(con) -> None:
    from streamgov_dagster.lib.ingest import ACCESS, ID_HASH, ensure_tables, raw_columns

    cols = [(n, t) for n, t in raw_columns(ACCESS) if n != ID_HASH]
    con.execute(f"create table raw.access_events ({', '.join(f'{n} {t}' for n, t in cols)})")
    con.execute("insert into raw.access_events (event_id, event_date) values ('ev-old-1', date '2026-10-01')")
    ensure_tables(con, ACCESS)
    assert con.execute(f"select {ID_HASH} = hash(event_id) from raw.access_events").fetchall() == [(True,)]


def test_day_span_reads_unchanged_files_from_the_ledger(con, tmp_path) -> None:
    """`streamgov run` finds the days to process without re-reading the files the ledger holds unchanged: their
    days are the ones a scan finds; a changed or new file is scanned again."""
    from streamgov_dagster.lib import formats

    root = tmp_path / "landing"
    for d in ("2026-10-29", "2026-10-30"):
        _write(root, f"access-{d}.jsonl", _day(d, 3, f"e{d[-2:]}-"))
    # events crossing midnight, a ts without offset (quarantined, but it has a day), and one that is no time
    _write(root, "late.jsonl", [json.dumps(access("l1", "2026-10-31T23:30:00-03:00")),
                                json.dumps(access("l2", "2026-10-27T10:00:00")), json.dumps(access("l3", "17:00"))])
    scanned = formats.landing_day_span(con, root)
    assert scanned == (date(2026, 10, 27), date(2026, 11, 1))
    _load(con, root, "2026-10-27", "2026-11-01")
    known = {"access": ingest.ledger_files(con, "access"), "audit": ingest.ledger_files(con, "audit")}
    assert sorted(known["access"]) == ["access/access-2026-10-29.jsonl", "access/access-2026-10-30.jsonl",
                                       "access/late.jsonl"]
    late = known["access"]["access/late.jsonl"]
    assert (late.first_day, late.last_day) == (date(2026, 10, 27), date(2026, 11, 1))
    assert formats.landing_day_span(con, root, known) == scanned

    # unchanged files are not read again: a span the ledger alone holds is taken as is
    stale = dict(known["access"])
    stale["access/late.jsonl"] = replace(late, first_day=date(2026, 10, 20), last_day=date(2026, 10, 21))
    assert formats.landing_day_span(con, root, {"access": stale}) == (date(2026, 10, 20), date(2026, 10, 30))
    # a changed file (other size or modification time) is scanned again, and so is a new one
    path = root / "access" / "late.jsonl"
    path.write_text(path.read_text() + json.dumps(access("l4", "2026-11-03T10:00:00Z")) + "\n")
    assert formats.landing_day_span(con, root, {"access": stale}) == (date(2026, 10, 27), date(2026, 11, 3))
    _write(root, "early.jsonl", [json.dumps(access("x1", "2026-10-25T10:00:00Z"))])
    assert formats.landing_day_span(con, root, known)[0] == date(2026, 10, 25)
    os.utime(root / "access" / "access-2026-10-29.jsonl", ns=(1, 1))
    assert "access/access-2026-10-29.jsonl" in known["access"]  # its mtime no longer matches: scanned, same days
    assert formats.landing_day_span(con, root, known) == (date(2026, 10, 25), date(2026, 11, 3))
