"""The benchmark script runs end to end on a small size (a smoke test: no timing assertions)."""

import duckdb

from streamgov_dagster.bench import EVENT_RULES, main


def test_bench_smoke(tmp_path, env, capsys) -> None:
    assert main(events=30_000, seed=5, cache=tmp_path / "bench", format_lines=20_000) == 0
    out = capsys.readouterr().out
    assert "pipeline / baseline" in out and "lines/s" in out
    assert "false positives 0, near misses fired 0" in out

    # the ratio's baseline releases what the pipeline releases: the same columns, the same pseudonyms
    work = tmp_path / "bench" / "work"
    con = duckdb.connect(str(work / "baseline.duckdb"), read_only=True)
    con.execute(f"attach '{work / 'warehouse.duckdb'}' as w (read_only)")
    names = "select column_name from duckdb_columns() where database_name = ? and schema_name = ? and table_name = ?"
    released = [r[0] for r in con.execute(names, ["w", "masked", "access_events"]).fetchall()]
    ours = [r[0] for r in con.execute(names, ["baseline", "main", "masked"]).fetchall()]
    assert sorted(ours) == sorted(released)
    same = " and ".join(f"b.{c} is not distinct from m.{c}" for c in released)
    joined, equal = con.execute(f"select count(*), count(*) filter (where {same}) "
                                "from masked b join w.masked.access_events m using (event_id)").fetchone()
    assert joined > 25_000 and equal == joined

    # the same-work baseline does the pipeline's ingest: the same lines loaded, quarantined (by reason) and
    # dropped as duplicates, the same masked rows and the same incidents of its rules. The pipeline then
    # moves the rows of erased data subjects to the quarantine (erased_subject): the baseline has no erasures.
    con = duckdb.connect(str(work / "baseline_same_work.duckdb"), read_only=True)
    con.execute(f"attach '{work / 'warehouse.duckdb'}' as w (read_only)")
    read, loaded, quarantined, duplicates = con.execute(
        "select sum(lines_read), sum(rows_loaded), sum(rows_quarantined), sum(duplicates) from w.raw.ingest_ledger "
        "where source = 'access'").fetchone()
    erased = con.execute("select count(*) from w.raw.quarantine_lines where source = 'access' and reason = 'erased_subject'"
                         ).fetchone()[0]
    assert quarantined - erased > 0 and duplicates > 0 and erased > 0
    assert (f"{read:,} lines read = {loaded + erased:,} loaded + {quarantined - erased:,} quarantined + "
            f"{duplicates:,} duplicates") in out
    assert con.execute("select count(*) from raw.access_events").fetchone()[0] == loaded + erased
    reasons = "select reason, count(*) from {} group by all order by all"
    assert con.execute(reasons.format("raw.quarantine_lines")).fetchall() == con.execute(reasons.format(
        "(select * from w.raw.quarantine_lines where source = 'access' and reason <> 'erased_subject')")).fetchall()
    released_rows = con.execute("select count(*) from w.masked.access_events").fetchone()[0]
    joined, equal = con.execute(f"select count(*), count(*) filter (where {same}) "
                                "from masked b join w.masked.access_events m using (event_id)").fetchone()
    assert joined == equal == released_rows > 25_000
    # the incidents: the pipeline's rules see no erased subject's events, and merge an incident two keys found
    # (a burst by user and by IP); so the baseline's incidents on events the pipeline kept, each once
    incidents = "select distinct rule_id, list_sort(event_ids) from {} where list_contains(?, rule_id) order by all"
    kept = ("(select * from violations v where not exists (select 1 from unnest(v.event_ids) as u(id) "
            "where id not in (select event_id from w.raw.access_events)))")
    ours = con.execute(incidents.format(kept), [list(EVENT_RULES)]).fetchall()
    assert len(ours) > 5
    assert ours == con.execute(incidents.format("w.governance.violations"), [list(EVENT_RULES)]).fetchall()
