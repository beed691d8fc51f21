"""Rules at their boundaries, run on a real DuckDB file through the library the assets use."""

from datetime import date
from pathlib import Path

import pytest

from streamgov_dagster.lib import consent, directory, ingest, rules
from streamgov_dagster.lib.policy import load_policy
from streamgov_dagster_tests.landing import access, audit, write_landing

BOUNDS = (date(2016, 1, 1), date(2030, 1, 1))


def detect(con, root: Path, policy_dir: Path | None = None) -> dict[str, list[list[str]]]:
    for src, folder in ((ingest.ACCESS, "access"), (ingest.AUDIT, "audit")):
        files = ingest.list_files(root / folder, ("*.jsonl",))
        ingest.load(con, src, root, files, BOUNDS[0], BOUNDS[1], BOUNDS)
    directory.load(con, root)
    consent.load_raw(con, f"sqlite:///{root / 'consent.db'}")
    consent.build_state(con)
    rules.detect(con, load_policy(policy_dir))
    out: dict[str, list[list[str]]] = {}
    for rule_id, ids in con.execute("select rule_id, event_ids from governance.violations order by rule_id, window_start").fetchall():
        out.setdefault(rule_id, []).append(list(ids))
    return out


def fails(prefix: str, minutes: list[float], **kw) -> list[dict]:
    out = []
    for i, m in enumerate(minutes):
        total = int(round(m * 60))
        out.append(access(f"{prefix}{i}", f"2026-10-29T10:{total // 60:02d}:{total % 60:02d}Z",
                          action="login", status=401, **kw))
    return out


def test_failed_login_burst_threshold(tmp_path, con) -> None:
    ev = fails("a", [0, 1, 2, 3], user_id="u1", client_ip="203.0.113.1")           # 4: below threshold
    ev += fails("b", [0, 2, 4, 6, 8], user_id="u2", client_ip="203.0.113.2")       # 5 within 8 min
    ev += fails("c", [0, 2.5, 5, 7.5, 10], user_id="u3", client_ip="203.0.113.3")  # exactly 10 min: fires
    found = detect(con, write_landing(tmp_path / "l", access_events=ev))
    assert sorted(found["failed_login_burst"]) == [["b0", "b1", "b2", "b3", "b4"], ["c0", "c1", "c2", "c3", "c4"]]


def test_failed_login_burst_just_outside_window(tmp_path, con) -> None:
    ev = fails("a", [0, 2.5, 5, 7.5, 10 + 1 / 60], user_id="u1", client_ip="203.0.113.1")  # 10 min + 1 s
    assert "failed_login_burst" not in detect(con, write_landing(tmp_path / "l", access_events=ev))


def test_burst_is_one_incident_and_ip_burst_separate(tmp_path, con) -> None:
    # 7 failures of one user from one IP: one incident (user and IP bursts are identical -> merged).
    ev = fails("a", [0, 1, 2, 3, 4, 5, 6], user_id="u1", client_ip="203.0.113.1")
    # credential stuffing: one IP, five different users (and an anonymous attempt)
    ev += [access(f"s{i}", f"2026-10-29T11:0{i}:00Z", user_id=(f"v{i}" if i < 4 else None),
                  client_ip="198.51.100.9", action="login", status=403) for i in range(5)]
    found = detect(con, write_landing(tmp_path / "l", access_events=ev))
    assert sorted(found["failed_login_burst"]) == [[f"a{i}" for i in range(7)], [f"s{i}" for i in range(5)]]


def test_burst_across_midnight_and_utc_offsets(tmp_path, con) -> None:
    # 23:58 .. 00:03 UTC written in three different offsets
    ts = ["2026-10-31T23:58:00Z", "2026-11-01T00:59:00+01:00", "2026-10-31T20:00:00-04:00",
          "2026-11-01T00:01:30Z", "2026-11-01T05:33:00+05:30"]
    ev = [access(f"m{i}", t, user_id="u9", client_ip="203.0.113.50", action="login", status=401) for i, t in enumerate(ts)]
    found = detect(con, write_landing(tmp_path / "l", access_events=ev))
    assert found["failed_login_burst"] == [["m0", "m1", "m2", "m3", "m4"]]


def test_consent_violation_semantics(tmp_path, con) -> None:
    consent_rows = [
        ("c01", "u1", "analytics", "granted", "2026-10-29T09:59:59Z", None),          # granted 1 s before
        ("c02", "u2", "analytics", "granted", "2026-10-01T00:00:00Z", "2026-10-29T10:00:00Z"),  # expires at t
        ("c03", "u3", "analytics", "granted", "2026-10-01T00:00:00Z", None),
        ("c04", "u3", "analytics", "withdrawn", "2026-10-20T00:00:00Z", None),        # withdrawn before t
        ("c05", "u4", "analytics", "denied", "2026-10-01T00:00:00Z", None),
        ("c06", "u4", "analytics", "granted", "2026-10-01T00:00:00Z", None),          # tie: larger id grants
        ("c08", "u5", "analytics", "granted", "2026-10-01T00:00:00Z", None),
        ("c07", "u5", "analytics", "denied", "2026-10-01T00:00:00Z", None),           # tie: c08 > c07 grants
        ("c10", "u6", "analytics", "granted", "2026-10-01T00:00:00Z", None),
        ("c09", "u6", "analytics", "withdrawn", "2026-10-01T00:00:00Z", None),        # tie: c10 grants... 
        ("c11", "u7", "advertising", "granted", "2026-10-01T00:00:00Z", None),        # other purpose only
        ("c12", "u8", "analytics", "granted", "2026-10-29T10:00:00Z", None),          # granted exactly at t
        ("c13", "u9", "analytics", "granted", "2026-10-01T00:00:00Z", "2026-10-29T10:00:01Z"),  # expires 1 s after
    ]
    t = "2026-10-29T10:00:00Z"
    ev = [access(f"e{i}", t, user_id=f"u{i}", purpose="analytics", client_ip=f"203.0.113.{i}") for i in range(1, 11)]
    ev += [access("anon", t, user_id=None, purpose="analytics"), access("svc", t, user_id="u3", purpose="service"),
           access("nop", t, user_id="u3")]
    found = detect(con, write_landing(tmp_path / "l", access_events=ev, consent=consent_rows))
    assert sorted(ids[0] for ids in found["consent_violation"]) == ["e10", "e2", "e3", "e7"]


def test_consent_fail_closed_when_source_missing(tmp_path, con) -> None:
    ev = [access("e1", "2026-10-29T10:00:00Z", purpose="personalization")]
    found = detect(con, write_landing(tmp_path / "l", access_events=ev, consent=None))
    assert found["consent_violation"] == [["e1"]]


def test_role_justification_offboarding(tmp_path, con) -> None:
    staff = [("emp_1", "support_agent", "support", "2020-01-01", ""),
             ("emp_2", "privacy_officer", "privacy", "2020-01-01", "2026-10-28"),   # left on the 28th (inclusive)
             ("emp_3", "data_analyst", "bi", "2026-10-29", "")]                      # starts on the 29th
    au = [
        audit("r1", "2026-10-29T10:00:00Z", actor_role="privacy_officer", action="export_user_data", records=10),  # role says no
        audit("r2", "2026-10-29T10:00:00Z", actor_role="admin", action="view_profile"),               # claimed role differs, directory permits
        audit("r3", "2026-10-29T10:00:00Z", action="delete_user", outcome="denied"),                  # denied: not a success
        audit("j1", "2026-10-29T11:00:00Z", action="view_watch_history", ticket_id="  "),             # blank ticket
        audit("j2", "2026-10-29T11:00:00Z", action="view_watch_history", ticket_id=None, outcome="denied"),
        audit("o1", "2026-10-28T23:59:59Z", actor_id="emp_2", actor_role="privacy_officer", action="login"),   # last day: ok
        audit("o2", "2026-10-29T00:00:00Z", actor_id="emp_2", actor_role="privacy_officer", action="login"),   # day after
        audit("o3", "2026-10-29T00:00:00Z", actor_id="emp_3", actor_role="data_analyst", action="login"),      # first day: ok
        audit("o4", "2026-10-28T23:59:59Z", actor_id="emp_3", actor_role="data_analyst", action="login"),      # before start
        audit("o5", "2026-10-29T12:00:00Z", actor_id="contractor_9", actor_role="admin", action="login"),      # not in directory
    ]
    found = detect(con, write_landing(tmp_path / "l", audit_events=au, staff=staff))
    assert found["role_not_permitted"] == [["r1"]]
    assert found["missing_justification"] == [["j1"]]
    assert sorted(ids[0] for ids in found["access_after_offboarding"]) == ["o2", "o4", "o5"]


def test_policy_override_changes_result(tmp_path, con) -> None:
    ev = fails("a", [0, 1, 2, 3], user_id="u1", client_ip="203.0.113.1")
    root = write_landing(tmp_path / "l", access_events=ev)
    policy_dir = tmp_path / "policy"
    policy_dir.mkdir()
    from streamgov_dagster.lib.policy import PACKAGED_DIR
    text = (PACKAGED_DIR / "rules.yaml").read_text().replace("min_failures: 5", "min_failures: 4")
    (policy_dir / "rules.yaml").write_text(text)
    assert detect(con, root, policy_dir)["failed_login_burst"] == [["a0", "a1", "a2", "a3"]]


def test_bad_policy_names_file_key_and_problem(tmp_path) -> None:
    from streamgov_dagster.lib.policy import PACKAGED_DIR, PolicyError
    policy_dir = tmp_path / "policy"
    policy_dir.mkdir()
    text = (PACKAGED_DIR / "rules.yaml").read_text().replace("min_failures: 5", "min_failures: five")
    (policy_dir / "rules.yaml").write_text(text)
    with pytest.raises(PolicyError) as err:
        load_policy(policy_dir)
    message = str(err.value)
    assert str(policy_dir / "rules.yaml") in message
    assert "rules.failed_login_burst.min_failures" in message and "integer" in message
