"""Consent management: the tamper-evident consent log, `streamgov verify-log`, consent-gated datasets."""

import sqlite3
from datetime import date

import duckdb

from streamgov_dagster.cli import main
from streamgov_dagster.lib.generator import generate
from streamgov_dagster_tests.conftest import run_pipeline
from streamgov_dagster_tests.landing import access, write_landing


def _generated(env) -> None:
    generate(env["landing"], seed=31, users=50, days=3, start=date(2026, 10, 29), staff=20)
    assert run_pipeline("2026-10-28", "2026-11-01").success


def test_consent_log_chain_verifies_and_detects_tampering(env, capsys) -> None:
    _generated(env)
    assert main(["verify-log"]) == 0
    assert "intact" in capsys.readouterr().out
    con = duckdb.connect(str(env["warehouse"]))
    n = con.execute("select count(*) from consent.consent_log").fetchone()[0]
    assert n > 50
    con.execute("update consent.consent_log set change = 'grant' where seq = 7 and change <> 'grant'")
    con.execute("update consent.consent_log set purpose = 'analytics' where seq = 7 and purpose <> 'analytics'")
    con.close()
    assert main(["verify-log"]) == 1
    assert "entry 7" in capsys.readouterr().err
    # the blocking check fails the next run, too
    result = run_pipeline("2026-10-28", "2026-11-01")
    assert not result.success
    failed = [e.event_specific_data.check_name for e in result.all_events
              if e.event_type_value == "ASSET_CHECK_EVALUATION" and not e.event_specific_data.passed]
    assert "consent_log_chain_intact" in failed


def test_deleting_or_reordering_entries_breaks_the_chain(env, capsys) -> None:
    _generated(env)
    con = duckdb.connect(str(env["warehouse"]))
    con.execute("delete from consent.consent_log where seq = 5")
    con.close()
    assert main(["verify-log"]) == 1
    assert "entry 6" in capsys.readouterr().err


def test_log_is_append_only_across_runs(env) -> None:
    _generated(env)
    con = duckdb.connect(str(env["warehouse"]), read_only=True)
    before = con.execute("select seq, row_hash from consent.consent_log order by seq").fetchall()
    con.close()
    with sqlite3.connect(env["landing"] / "consent.db") as db:
        user = db.execute("select user_id from consent_events order by event_id limit 1").fetchone()[0]
        db.execute("insert into consent_events values ('zz-late', ?, 'analytics', 'withdrawn', "
                   "'2026-10-30T12:00:00Z', null, 'support', 'v9', 'EU', null)", [user])
    assert run_pipeline("2026-10-28", "2026-11-01").success
    con = duckdb.connect(str(env["warehouse"]), read_only=True)
    after = con.execute("select seq, row_hash from consent.consent_log order by seq").fetchall()
    con.close()
    assert after[: len(before)] == before and len(after) > len(before)
    assert main(["verify-log"]) == 0


def test_gated_datasets_hold_exactly_the_consented_events(env) -> None:
    _generated(env)
    con = duckdb.connect(str(env["warehouse"]), read_only=True)
    try:
        violating = {r[0] for r in con.execute(
            "select unnest(event_ids) from governance.violations where rule_id = 'consent_violation'").fetchall()}
        for purpose in ("personalization", "analytics", "advertising"):
            gated = {r[0] for r in con.execute(f"select event_id from masked.{purpose}_events").fetchall()}
            candidates = {r[0] for r in con.execute(
                "select event_id from masked.access_events where purpose = ? and user_pseudonym is not null",
                [purpose]).fetchall()}
            assert gated == candidates - violating, purpose
            assert gated, purpose
    finally:
        con.close()


def test_withdrawal_keeps_later_events_out_on_the_next_run(env) -> None:
    ev = [access("e1", "2026-10-29T10:00:00Z", purpose="personalization"),
          access("e2", "2026-10-29T12:00:00Z", purpose="personalization")]
    write_landing(env["landing"], access_events=ev,
                  consent=[("c1", "u1", "personalization", "granted", "2026-10-01T00:00:00Z", None)])
    assert run_pipeline("2026-10-29", "2026-10-29").success
    con = duckdb.connect(str(env["warehouse"]), read_only=True)
    assert [r[0] for r in con.execute("select event_id from masked.personalization_events order by 1").fetchall()] == ["e1", "e2"]
    con.close()
    with sqlite3.connect(env["landing"] / "consent.db") as db:
        db.execute("insert into consent_events values ('c2', 'u1', 'personalization', 'withdrawn', "
                   "'2026-10-29T11:00:00Z', null, 'web', 'v1', 'EU', null)")
    assert run_pipeline("2026-10-29", "2026-10-29").success
    con = duckdb.connect(str(env["warehouse"]), read_only=True)
    assert [r[0] for r in con.execute("select event_id from masked.personalization_events").fetchall()] == ["e1"]
    con.close()
