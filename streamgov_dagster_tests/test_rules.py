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


def test_token_reuse_window(tmp_path, con) -> None:
    ev = [  # three IPs within 40 minutes: one incident citing all the token's events in the window
        access("t1", "2026-10-29T10:00:00Z", auth_token_id="tokA", client_ip="203.0.113.1"),
        access("t2", "2026-10-29T10:10:00Z", auth_token_id="tokA", client_ip="203.0.113.1"),
        access("t3", "2026-10-29T10:20:00Z", auth_token_id="tokA", client_ip="198.51.100.2"),
        access("t4", "2026-10-29T10:40:00Z", auth_token_id="tokA", client_ip="192.0.2.3"),
        # three IPs spanning 60 min + 1 s: no
        access("n1", "2026-10-29T12:00:00Z", auth_token_id="tokB", client_ip="203.0.113.1"),
        access("n2", "2026-10-29T12:30:00Z", auth_token_id="tokB", client_ip="198.51.100.2"),
        access("n3", "2026-10-29T13:00:01Z", auth_token_id="tokB", client_ip="192.0.2.3"),
        # exactly 60 min: yes (within is inclusive)
        access("x1", "2026-10-29T14:00:00Z", auth_token_id="tokC", client_ip="203.0.113.1"),
        access("x2", "2026-10-29T14:30:00Z", auth_token_id="tokC", client_ip="198.51.100.2"),
        access("x3", "2026-10-29T15:00:00Z", auth_token_id="tokC", client_ip="192.0.2.3"),
        # two IPs only, and events without a token
        access("w1", "2026-10-29T16:00:00Z", auth_token_id="tokD", client_ip="203.0.113.1"),
        access("w2", "2026-10-29T16:01:00Z", auth_token_id="tokD", client_ip="198.51.100.2"),
        access("z1", "2026-10-29T16:02:00Z", client_ip="192.0.2.3"),
    ]
    found = detect(con, write_landing(tmp_path / "l", access_events=ev))
    assert sorted(found["token_reuse"]) == [["t1", "t2", "t3", "t4"], ["x1", "x2", "x3"]]


def test_impossible_travel(tmp_path, con) -> None:
    ev = [
        access("a1", "2026-10-29T10:00:00Z", user_id="ua", country="DE"),
        access("a2", "2026-10-29T10:59:59Z", user_id="ua", country="BR"),          # 59:59 later: fires
        access("b1", "2026-10-29T10:00:00Z", user_id="ub", country="DE"),
        access("b2", "2026-10-29T11:00:00Z", user_id="ub", country="BR"),          # exactly 60 min: no
        access("c1", "2026-10-29T10:00:00Z", user_id="uc", country="DE"),
        access("c2", "2026-10-29T10:10:00Z", user_id="uc", country="BR", status=401),  # failed: no
        access("c3", "2026-10-29T10:20:00Z", user_id="uc", country=None),          # no country: ignored
        access("d1", "2026-10-29T10:00:00Z", user_id=None, country="DE"),
        access("d2", "2026-10-29T10:05:00Z", user_id=None, country="BR"),          # anonymous: no
    ]
    found = detect(con, write_landing(tmp_path / "l", access_events=ev))
    assert found["impossible_travel"] == [["a1", "a2"]]


def test_blocked_country_needs_an_authenticated_user(tmp_path, con) -> None:
    ev = [access("k1", "2026-10-29T10:00:00Z", user_id="u1", country="kp"),
          access("k2", "2026-10-29T10:00:00Z", user_id=None, country="IR"),
          access("k3", "2026-10-29T10:00:00Z", user_id="u2", country="FR")]
    assert detect(con, write_landing(tmp_path / "l", access_events=ev))["blocked_country"] == [["k1"]]


def test_bulk_export_tampering_and_denied_attempts(tmp_path, con) -> None:
    staff = [("emp_1", "privacy_officer", "privacy", "2020-01-01", ""),
             ("emp_2", "support_agent", "support", "2020-01-01", ""),
             ("emp_3", "support_agent", "support", "2020-01-01", "")]
    au = [
        audit("b1", "2026-10-29T10:00:00Z", actor_role="privacy_officer", action="export_user_data", records=999),
        audit("b2", "2026-10-29T10:00:00Z", actor_role="privacy_officer", action="query_pii", records=1000),
        audit("t1", "2026-10-29T10:00:00Z", actor_role="privacy_officer", action="disable_audit_logging", outcome="denied"),
        # emp_2: two denials in 60 min (no), emp_3: three spanning 60 min + 1 s (no), then three in 30 min (yes)
        audit("d1", "2026-10-29T10:00:00Z", actor_id="emp_2", action="delete_user", outcome="denied"),
        audit("d2", "2026-10-29T10:30:00Z", actor_id="emp_2", action="delete_user", outcome="denied"),
        audit("e1", "2026-10-29T10:00:00Z", actor_id="emp_3", action="delete_user", outcome="denied"),
        audit("e2", "2026-10-29T10:30:00Z", actor_id="emp_3", action="delete_user", outcome="denied"),
        audit("e3", "2026-10-29T11:00:01Z", actor_id="emp_3", action="delete_user", outcome="denied"),
        audit("f1", "2026-10-29T14:00:00Z", actor_id="emp_3", action="grant_role", outcome="denied"),
        audit("f2", "2026-10-29T14:10:00Z", actor_id="emp_3", action="grant_role", outcome="denied"),
        audit("f3", "2026-10-29T14:30:00Z", actor_id="emp_3", action="grant_role", outcome="denied"),
    ]
    found = detect(con, write_landing(tmp_path / "l", audit_events=au, staff=staff))
    assert found["bulk_export"] == [["b2"]]
    assert found["audit_tampering"] == [["t1"]]
    assert found["denied_attempts"] == [["f1", "f2", "f3"]]
    assert "role_not_permitted" not in found  # denied and permitted actions only


def test_dst_change_day_and_null_optional_fields(tmp_path, con) -> None:
    # 2026-11-01: New York falls back at 02:00 EDT -> 01:00 EST, so 01:30 happens twice.
    ts = ["2026-11-01T01:30:00-04:00", "2026-11-01T01:33:00-04:00", "2026-11-01T01:36:00-04:00",
          "2026-11-01T01:31:00-05:00", "2026-11-01T01:34:00-05:00"]
    ev = [access(f"d{i}", t, user_id="u-dst", client_ip=f"203.0.113.{i}", action="login", status=401,
                 country=None, user_agent=None, bytes=None, purpose=None, session_id=None) for i, t in enumerate(ts)]
    # first three are 05:30-05:36 UTC, the last two 06:31-06:34 UTC: no 5 within 10 minutes
    assert "failed_login_burst" not in detect(con, write_landing(tmp_path / "l", access_events=ev))
    ev2 = [access(f"e{i}", t, user_id="u-dst2", client_ip="203.0.113.9", action="login", status=401)
           for i, t in enumerate(["2026-11-01T01:58:00-04:00", "2026-11-01T01:59:00-04:00", "2026-11-01T01:00:30-05:00",
                                  "2026-11-01T01:02:00-05:00", "2026-11-01T06:05:00Z"])]
    # 05:58, 05:59, 06:00:30, 06:02, 06:05 UTC: 7 minutes across the fall-back instant
    found = detect(con, write_landing(tmp_path / "m", access_events=ev2))
    assert found["failed_login_burst"] == [["e0", "e1", "e2", "e3", "e4"]]
