"""Incremental detection gives exactly what a full recomputation gives, day after day."""

import json
import sqlite3
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

from streamgov_dagster.lib import consent, directory, generator, ingest, rules
from streamgov_dagster.lib.policy import load_policy

BOUNDS = (date(2016, 1, 1), date(2030, 1, 1))
COLUMNS = "violation_id, rule_id, severity, source, subject, subject_kind, window_start, window_end, event_ids, details"


def _violations(con) -> list[tuple]:
    return con.execute(f"select {COLUMNS} from governance.violations order by violation_id").fetchall()


def _full(con) -> list[tuple]:
    """What a recomputation from scratch gives, leaving the warehouse as it was."""
    con.execute("create or replace temp table _saved as select * from governance.violations")
    con.execute("create or replace temp table _saved_state as select * from governance.rule_inputs")
    con.execute(f"delete from {rules.STATE}")
    rules.detect(con, load_policy())
    assert rules.LAST_RUN["mode"] == "full"
    out = _violations(con)
    con.execute("delete from governance.violations; insert into governance.violations select * from _saved")
    con.execute(f"delete from {rules.STATE}; insert into {rules.STATE} select * from _saved_state")
    return out


def _load_day(con, root: Path, day: date) -> None:
    for src, folder in ((ingest.ACCESS, "access"), (ingest.AUDIT, "audit")):
        files = ingest.list_files(root / folder, ingest.JSON_PATTERNS)
        ingest.load(con, src, root, files, day, day, BOUNDS)


def _long_burst(root: Path) -> None:
    """Failed logins every 2 minutes for 3 days from one IP: one burst chaining far past any margin."""
    start = datetime(2026, 10, 30, 6, tzinfo=timezone.utc)
    with open(root / "access" / "zz-long-burst.jsonl", "w", encoding="utf-8") as fh:
        for i in range(3 * 24 * 30):
            ts = (start + timedelta(minutes=2 * i)).strftime("%Y-%m-%dT%H:%M:%SZ")
            fh.write(json.dumps({"event_id": f"lb-{i}", "ts": ts, "user_id": None, "client_ip": "198.51.100.77",
                                 "action": "login", "status": 401}) + "\n")


def test_incremental_days_erasure_and_consent_change_match_a_full_run(tmp_path, con) -> None:
    root = tmp_path / "landing"
    generator.generate(root, users=60, days=6, events_per_user_day=12.0)
    _long_burst(root)
    directory.load(con, root)
    consent.load_raw(con, f"sqlite:///{root / 'consent.db'}")
    consent.build_state(con)
    days = [date(2026, 10, 29) + timedelta(days=i) for i in range(6)]
    modes = []
    for day in days:
        _load_day(con, root, day)
        rules.detect(con, load_policy())
        modes.append((rules.LAST_RUN["mode"], rules.LAST_RUN["recomputed_days"]))
        assert _violations(con) == _full(con), f"after {day}"
    assert modes == [("full", 0)] + [("incremental", 1)] * 5      # each new day alone is recomputed
    rule_ids = {r[1] for r in _violations(con)}
    assert {"failed_login_burst", "consent_violation", "token_reuse", "impossible_travel"} <= rule_ids
    long = [r for r in _violations(con) if "lb-0" in r[8]]
    assert len(long) == 1 and len(long[0][8]) == 3 * 24 * 30      # the whole chain, not a piece of it

    # An erasure-like deletion in the middle of the history: incidents split or vanish exactly as in a full run.
    con.execute("delete from raw.access_events where event_id in ('lb-500', 'lb-501', 'lb-502', 'lb-503', 'lb-504')")
    rules.detect(con, load_policy())
    assert rules.LAST_RUN["mode"] == "incremental"
    assert _violations(con) == _full(con)

    # A consent decision recorded late, in force since before the first day: past events change verdict.
    db = sqlite3.connect(root / "consent.db")
    user, purpose = db.execute("select user_id, purpose from consent_events limit 1").fetchone()
    db.execute("insert into consent_events (event_id, user_id, purpose, status, recorded_at, source, jurisdiction, "
               "notice_version) values ('late-1', ?, ?, 'withdrawn', '2026-10-28T00:00:00Z', 'web', 'EU', 'v1')",
               [user, purpose])
    db.commit()
    db.close()
    consent.load_raw(con, f"sqlite:///{root / 'consent.db'}")
    consent.build_state(con)
    rules.detect(con, load_policy())
    assert rules.LAST_RUN == {"mode": "incremental", "recomputed_days": 0}
    assert _violations(con) == _full(con)

    # Nothing changed: nothing recomputed, same rows (detected_at included).
    before = con.execute("select * from governance.violations order by violation_id").fetchall()
    rules.detect(con, load_policy())
    assert rules.LAST_RUN == {"mode": "incremental", "recomputed_days": 0}
    assert con.execute("select * from governance.violations order by violation_id").fetchall() == before
