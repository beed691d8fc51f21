"""The benchmark script runs end to end on a small size (a smoke test: no timing assertions)."""

import duckdb

from streamgov_dagster.bench import main


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
