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


def test_gated_datasets_are_views_that_follow_their_inputs_and_a_tampered_one_is_caught(env) -> None:
    from streamgov_dagster.lib import consent, dsar, leakguard
    from streamgov_dagster.lib.warehouse import prepare

    _generated(env)
    con = prepare(duckdb.connect(str(env["warehouse"])))
    types = con.execute("select table_name, table_type from information_schema.tables where table_schema = 'masked' "
                        "and table_name like '%\\_events' escape '\\' order by 1").fetchall()
    assert dict(types) == {"access_events": "BASE TABLE", "audit_events": "BASE TABLE", "advertising_events": "VIEW",
                           "analytics_events": "VIEW", "personalization_events": "VIEW"}
    assert consent.intact_gated_views(con) == {f"masked.{p}_events" for p in consent.GATED_PURPOSES}
    assert consent.build_gated(con) == []  # intact: nothing written
    # the inputs change: an event gone (an erasure, a rebuilt day), a withdrawal; the views show it at once
    gone = con.execute("select min(event_id) from masked.personalization_events").fetchone()[0]
    con.execute("delete from masked.access_events where event_id = ?", [gone])
    user = con.execute("select min(user_pseudonym) from masked.analytics_events").fetchone()[0]
    con.execute("update consent.consent_state set state = 'withdrawn' where user_pseudonym = ? and purpose = 'analytics'",
                [user])
    assert con.execute("select count(*) from masked.personalization_events where event_id = ?", [gone]).fetchone()[0] == 0
    assert con.execute("select count(*) from masked.analytics_events where user_pseudonym = ?", [user]).fetchone()[0] == 0
    checked = consent.gated_check(con)
    assert all(c["without_valid_consent"] == 0 and c["consented_missing"] == 0 and c["definition_intact"]
               for c in checked.values())
    assert checked["analytics"]["rows"] == con.execute("select count(*) from masked.analytics_events").fetchone()[0] > 0
    day = (date(2026, 10, 30), date(2026, 10, 30))
    assert 0 < consent.gated_check(con, days=day)["analytics"]["rows"] < checked["analytics"]["rows"]
    # a view replaced by one that lets every analytics event through: the check and the leak scan see it
    con.execute("create or replace view masked.analytics_events as select * from masked.access_events "
                "where purpose = 'analytics'")
    tampered = consent.gated_check(con)["analytics"]
    assert not tampered["definition_intact"] and tampered["without_valid_consent"] > 0
    assert ("masked.analytics_events", "user_pseudonym", False) in leakguard.text_columns(con)
    assert ("masked.personalization_events", "user_pseudonym", False) not in leakguard.text_columns(con)
    assert consent.build_gated(con) == ["masked.analytics_events"]  # put back
    assert consent.gated_check(con)["analytics"] == checked["analytics"]
    # a warehouse of an earlier version: the datasets were tables, with fingerprint tables beside them
    con.execute("drop view masked.advertising_events")
    con.execute("create table masked.advertising_events as select * from masked.access_events where false")
    con.execute("create table governance.gated_inputs (kind varchar)")
    assert consent.build_gated(con) == ["masked.advertising_events"]
    assert not con.execute("select count(*) from information_schema.tables where table_name = 'gated_inputs'").fetchone()[0]
    expected = consent.gated_check(con)
    con.close()
    # the erasure's compaction copies the warehouse into a new file: the views come along, intact
    assert dsar.compact(env["warehouse"]) is None
    con = prepare(duckdb.connect(str(env["warehouse"])))
    assert consent.intact_gated_views(con) == {f"masked.{p}_events" for p in consent.GATED_PURPOSES}
    assert consent.gated_check(con) == expected
    con.close()


def test_the_chain_check_names_the_first_broken_entry_and_why(con) -> None:
    """consentlog.verify checks every entry against its stored predecessor in one query: a gap, an edited
    payload, a prev_hash or a row_hash that does not match, each at the first entry it breaks."""
    from streamgov_dagster.lib import consentlog

    con.execute("create schema if not exists consent")
    con.execute("create table consent.consent_state as select 'p' || (i % 7) as user_pseudonym, "
                "['analytics', 'advertising'][1 + i % 2] as purpose, 'granted' as state, "
                "timestamp '2026-10-01' + to_minutes(i) as valid_from, null::timestamp as valid_to, 'app' as source, "
                "'EU' as jurisdiction, 'v1' as notice_version, 'user' as decided_by from range(40) t(i)")
    assert consentlog.append_changes(con, "k") == 40
    assert consentlog.verify(con) == consentlog.ChainReport(40, None, None)
    con.execute("create table _copy as select * from consent.consent_log")
    cases = [
        ("delete from consent.consent_log where seq = 9", 10, "sequence gap: expected entry 9, found 10"),
        ("update consent.consent_log set purpose = 'x' where seq = 12", 12, "payload does not match"),
        ("update consent.consent_log set prev_hash = repeat('0', 64) where seq = 20", 20, "prev_hash does not match"),
        ("update consent.consent_log set row_hash = repeat('f', 64) where seq = 40", 40, "row_hash does not match"),
        # an erased entry keeps its payload hash: the chain still verifies
        ("update consent.consent_log set user_pseudonym = null, erased = true where seq = 3", None, None),
    ]
    for tamper, seq, problem in cases:
        con.execute("delete from consent.consent_log; insert into consent.consent_log select * from _copy")
        con.execute(tamper)
        report = consentlog.verify(con)
        assert report.first_broken_seq == seq and (problem is None) == (report.problem is None), tamper
        assert problem is None or report.problem.startswith(problem), (tamper, report.problem)
