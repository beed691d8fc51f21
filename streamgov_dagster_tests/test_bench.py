"""The benchmark script runs end to end on a small size (a smoke test: no timing assertions)."""

from streamgov_dagster.bench import main


def test_bench_smoke(tmp_path, env, capsys) -> None:
    assert main(events=30_000, seed=5, cache=tmp_path / "bench", format_lines=20_000) == 0
    out = capsys.readouterr().out
    assert "pipeline / baseline" in out and "lines/s" in out
    assert "false positives 0, near misses fired 0" in out
