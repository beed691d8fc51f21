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


def _tc_string(purposes: list[int]) -> str:
    from streamgov_dagster_tests.test_tcf import BitWriter

    w = (BitWriter().int(2, 6).int(16_000_000_000, 36).int(16_000_000_000, 36).int(10, 12).int(1, 12).int(1, 6)
         .letters("EN").int(100, 12).int(4, 6).bool(False).bool(False).bitfield([], 12).bitfield(purposes, 24)
         .bitfield([], 24).bool(False).letters("DE"))
    w.int(0, 16).bool(False)  # no vendor consents
    w.int(0, 16).bool(False)  # no vendor legitimate interests
    w.int(0, 12)              # no publisher restrictions
    return w.encode()


def test_decode_tc_cli(capsys) -> None:
    import json

    assert main(["consent", "decode-tc", _tc_string([5, 6])]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["purposes_consent"] == [5, 6] and out["consent_language"] == "EN" and out["publisher_cc"] == "DE"
    assert main(["consent", "decode-tc", "not-a-tc-string"]) == 1
    assert "not a valid TCF v2 TC string" in capsys.readouterr().err


def test_signal_mismatches_are_found(env) -> None:
    write_landing(env["landing"], access_events=[access("e1", "2026-10-29T10:00:00Z")], consent=[])
    tc = _tc_string([5, 6])  # grants personalization (5, 6) and nothing else
    rows = [("c1", "u1", "personalization", "granted", tc), ("c2", "u2", "advertising", "granted", tc),
            ("c3", "u3", "personalization", "withdrawn", tc), ("c4", "u4", "analytics", "granted", "garbage"),
            ("c5", "u5", "marketing_email", "granted", tc), ("c6", "u6", "analytics", "denied", tc)]
    with sqlite3.connect(env["landing"] / "consent.db") as db:
        db.executemany("insert into consent_events values (?, ?, ?, ?, '2026-10-01T00:00:00Z', null, 'cmp', 'v1', "
                       "'EU', ?)", rows)
    assert run_pipeline("2026-10-29", "2026-10-29").success
    con = duckdb.connect(str(env["warehouse"]), read_only=True)
    found = con.execute("select purpose, status, finding from consent.signal_mismatches order by purpose").fetchall()
    kpi = con.execute("select sum(signal_mismatches) from reports.consent_activity").fetchone()[0]
    con.close()
    assert found == [("advertising", "granted", "granted_but_tc_string_withholds"),
                     ("analytics", "granted", "undecodable_tc_string"),
                     ("personalization", "withdrawn", "withheld_but_tc_string_grants")]
    assert kpi == 3


def test_gated_datasets_rebuilt_in_part_equal_a_full_rebuild(env) -> None:
    from streamgov_dagster.lib import consent
    from streamgov_dagster.lib.warehouse import prepare

    _generated(env)
    con = prepare(duckdb.connect(str(env["warehouse"])))

    def gated() -> dict[str, list]:
        return {p: con.execute(f"select * from masked.{p}_events order by all").fetchall() for p in consent.GATED_PURPOSES}

    built = gated()
    no_days = (date(1999, 1, 1), date(1999, 1, 1))  # the run rewrote no partition of the data's days
    consent.build_gated(con, rewritten=no_days)  # nothing changed: nothing recomputed, nothing different
    assert con.execute("select everything from _g_scope").fetchone()[0] is False
    assert con.execute("select count(*) from _g_days").fetchone()[0] == 0 and gated() == built
    # a partition rewritten without one event, a withdrawal, an expiry moved: only those are recomputed
    con.execute("delete from masked.access_events where event_id = (select min(event_id) from "
                "masked.personalization_events where event_date = '2026-10-30')")
    user = con.execute("select min(user_pseudonym) from masked.analytics_events").fetchone()[0]
    con.execute("update consent.consent_state set state = 'withdrawn' where user_pseudonym = ?", [user])
    consent.build_gated(con, rewritten=no_days)
    assert con.execute("select count(*) from _g_days").fetchone()[0] == 1
    assert all(v == (0, 0) for v in consent.gated_violations(con).values())
    partial = gated()
    # a partition the run rebuilt with the same event ids (another masking of a column) is recomputed too
    con.execute("update masked.access_events set country = 'ZZ' where event_date = '2026-10-31'")
    consent.build_gated(con, rewritten=(date(2026, 10, 31), date(2026, 10, 31)))
    assert con.execute("select list(day) from _g_days").fetchone()[0] == [date(2026, 10, 31)]
    relabelled = gated()
    assert any(r for p in relabelled for r in relabelled[p] if "ZZ" in r)
    # a withdrawal that closes a grant at one of the user's events: recomputed from that day on, not before
    user, event_id, at = con.execute("select user_pseudonym, event_id, ts from masked.analytics_events "
                                     "where event_date = '2026-10-31' order by event_id limit 1").fetchone()
    grant = "user_pseudonym = ? and purpose = 'analytics' and state = 'granted' and valid_from <= ? " \
            "and (valid_to is null or ? < valid_to)"
    until = con.execute(f"select valid_to from consent.consent_state where {grant}", [user, at, at]).fetchone()[0]
    con.execute(f"update consent.consent_state set valid_to = ? where {grant}", [at, user, at, at])
    con.execute("insert into consent.consent_state (user_pseudonym, purpose, state, valid_from, valid_to) "
                "values (?, 'analytics', 'withdrawn', ?, ?)", [user, at, until])
    consent.build_gated(con, rewritten=no_days)
    assert con.execute("select list(from_day) from _g_users").fetchone()[0] == [date(2026, 10, 31)]
    assert all(v == (0, 0) for v in consent.gated_violations(con).values())
    assert con.execute("select count(*) from masked.analytics_events where event_id = ?", [event_id]).fetchone()[0] == 0
    relabelled = gated()
    con.execute("drop table governance.gated_inputs")
    consent.build_gated(con, rewritten=no_days)
    assert con.execute("select everything from _g_scope").fetchone()[0] is True
    assert gated() == relabelled
    consent.build_gated(con)  # a run that names no partitions rebuilds everything
    assert con.execute("select everything from _g_scope").fetchone()[0] is True and gated() == relabelled
    assert all(len(partial[p]) < len(built[p]) for p in ("personalization", "analytics"))
    con.close()
