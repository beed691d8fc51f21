"""Tests of the synthetic landing-zone generator (streamgov_dagster.lib.generator).

The core test runs an independent, deliberately naive reference implementation of the contract
rules (data contract section 4) over everything the generator wrote and checks that it finds exactly
the planted incidents of ``ground_truth.jsonl``: background traffic is clean, every planted incident
fires with exactly the listed evidence, near misses do not fire, and bad lines / duplicates are
exactly the ones listed.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import ipaddress
import json
import sqlite3
import sys
from collections import Counter
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import pytest

try:
    from streamgov_dagster.lib.generator import GenerationStats, generate
except ModuleNotFoundError:  # package not installed: run from a source checkout
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from streamgov_dagster.lib.generator import GenerationStats, generate


# ==================================================================================================
# Reference checker (independent of the generator: written from the contract text)
# ==================================================================================================

RULES = [
    "failed_login_burst", "blocked_country", "token_reuse", "impossible_travel",
    "consent_violation", "role_not_permitted", "missing_justification", "bulk_export",
    "access_after_offboarding", "audit_tampering", "denied_attempts",
]
ACCESS_ACTIONS = {"login", "logout", "play", "stop", "browse", "search", "download",
                  "profile_view", "profile_update", "api"}
AUDIT_ACTIONS = {"login", "view_profile", "view_watch_history", "export_user_data", "query_pii",
                 "update_consent", "delete_user", "grant_role", "disable_audit_logging"}
PII = {"view_profile", "view_watch_history", "export_user_data", "query_pii", "delete_user"}
OUTCOMES = {"success", "denied", "error"}
PURPOSES = {"service", "personalization", "analytics", "advertising"}
CONSENT_PURPOSES = {"personalization", "analytics", "advertising"}
BLOCKED = {"KP", "IR", "SY", "CU"}
POLICY = {
    "support_agent": {"login", "view_profile", "view_watch_history", "update_consent"},
    "privacy_officer": AUDIT_ACTIONS - {"grant_role", "disable_audit_logging"},
    "data_analyst": {"login", "query_pii"},
    "admin": {"login", "grant_role", "view_profile"},
    "engineer": {"login"},
}


def parse_ts(value):
    """ISO-8601 with Z or offset -> aware UTC datetime; None when invalid or without offset."""
    if not isinstance(value, str):
        return None
    try:
        dt = datetime.fromisoformat(value)
    except ValueError:
        return None
    if dt.tzinfo is None:
        return None
    return dt.astimezone(timezone.utc)


def valid_ip(value) -> bool:
    if not isinstance(value, str):
        return False
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


def is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def check_access(obj):
    """Return a reason string when the access record is invalid, else None."""
    if not isinstance(obj, dict):
        return "not_an_object"
    for f in ("event_id", "ts", "client_ip", "action", "status"):
        if f not in obj or obj[f] is None:
            return f"missing_{f}"
    if not isinstance(obj["event_id"], str) or not obj["event_id"]:
        return "bad_event_id"
    if parse_ts(obj["ts"]) is None:
        return "bad_ts"
    if not valid_ip(obj["client_ip"]):
        return "bad_ip"
    if obj["action"] not in ACCESS_ACTIONS:
        return "bad_action"
    if not is_int(obj["status"]):
        return "bad_status"
    if obj.get("bytes") is not None and (not is_int(obj["bytes"]) or obj["bytes"] < 0):
        return "bad_bytes"
    if obj.get("user_id") is not None and not isinstance(obj["user_id"], str):
        return "bad_user_id"
    if obj.get("purpose") is not None and obj["purpose"] not in PURPOSES:
        return "bad_purpose"
    return None


def check_audit(obj):
    if not isinstance(obj, dict):
        return "not_an_object"
    for f in ("audit_id", "ts", "actor_id", "actor_role", "action", "source_ip", "outcome"):
        if f not in obj or obj[f] is None:
            return f"missing_{f}"
    if parse_ts(obj["ts"]) is None:
        return "bad_ts"
    if obj["action"] not in AUDIT_ACTIONS:
        return "bad_action"
    if obj["outcome"] not in OUTCOMES:
        return "bad_outcome"
    if not valid_ip(obj["source_ip"]):
        return "bad_ip"
    if obj.get("records") is not None and (not is_int(obj["records"]) or obj["records"] < 0):
        return "bad_records"
    return None


def open_text(path: Path):
    if path.name.endswith(".gz"):
        return gzip.open(path, "rt", encoding="utf-8")
    return open(path, encoding="utf-8")


def load_source(landing: Path, sub: str, id_field: str, check):
    """Read every file of a source -> (records, quarantined {(file, line)}, duplicates {(file, line)})."""
    records, quarantined, duplicates = [], set(), set()
    seen: dict[str, str] = {}
    files = sorted(p for p in (landing / sub).iterdir() if p.name.endswith((".jsonl", ".jsonl.gz")))
    for path in files:
        rel = path.relative_to(landing).as_posix()
        with open_text(path) as fh:
            for n, raw in enumerate(fh, start=1):
                text = raw.rstrip("\n")
                try:
                    obj = json.loads(text)
                except ValueError:
                    quarantined.add((rel, n))
                    continue
                if check(obj) is not None:
                    quarantined.add((rel, n))
                    continue
                key = obj[id_field]
                if key in seen:
                    assert seen[key] == text, f"same id, different content: {key}"
                    duplicates.add((rel, n))
                    continue
                seen[key] = text
                obj["_ts"] = parse_ts(obj["ts"])
                obj["_file"], obj["_line"] = rel, n
                records.append(obj)
    return records, quarantined, duplicates


def merge_sets(sets):
    """Merge sets that share an element until no two share one (naive fixpoint)."""
    groups = [set(s) for s in sets]
    changed = True
    while changed:
        changed = False
        for i in range(len(groups)):
            for j in range(i + 1, len(groups)):
                if groups[i] & groups[j]:
                    groups[i] |= groups.pop(j)
                    changed = True
                    break
            if changed:
                break
    return groups


def reference_access_rules(events, consent_rows):
    found = set()
    order = lambda e: (e["_ts"], e["event_id"])  # noqa: E731
    # failed_login_burst
    bursts = set()
    for field in ("user_id", "client_ip"):
        keys = sorted({e.get(field) for e in events if e.get(field) is not None})
        for k in keys:
            fails = sorted((e for e in events if e.get(field) == k and e["action"] == "login"
                            and e["status"] in (401, 403)), key=order)
            windows = []
            for i in range(len(fails) - 4):
                if fails[i + 4]["_ts"] - fails[i]["_ts"] <= timedelta(minutes=10):
                    windows.append({e["event_id"] for e in fails[i:i + 5]})
            for g in merge_sets(windows):
                bursts.add(frozenset(g))
    found |= {("failed_login_burst", b) for b in bursts}
    # blocked_country
    for e in events:
        if e.get("user_id") is not None and e.get("country") in BLOCKED:
            found.add(("blocked_country", frozenset([e["event_id"]])))
    # token_reuse
    tokens = sorted({e["auth_token_id"] for e in events if e.get("auth_token_id") is not None})
    for tok in tokens:
        evs = sorted((e for e in events if e.get("auth_token_id") == tok), key=order)
        intervals = []
        for a in evs:
            inside = [x for x in evs if a["_ts"] <= x["_ts"] <= a["_ts"] + timedelta(minutes=60)]
            if len({x["client_ip"] for x in inside}) >= 3:
                intervals.append([a["_ts"], max(x["_ts"] for x in inside)])
        changed = True
        while changed:
            changed = False
            for i in range(len(intervals)):
                for j in range(len(intervals)):
                    if i != j and intervals[j][0] <= intervals[i][1] and intervals[i][0] <= intervals[j][1]:
                        intervals[i] = [min(intervals[i][0], intervals[j][0]),
                                        max(intervals[i][1], intervals[j][1])]
                        intervals.pop(j)
                        changed = True
                        break
                if changed:
                    break
        for lo, hi in intervals:
            found.add(("token_reuse", frozenset(x["event_id"] for x in evs if lo <= x["_ts"] <= hi)))
    # impossible_travel
    users = sorted({e["user_id"] for e in events if e.get("user_id") is not None})
    for u in users:
        ok = sorted((e for e in events if e.get("user_id") == u and e["status"] < 400
                     and e.get("country") is not None), key=order)
        for x, y in zip(ok, ok[1:]):
            if x["country"] != y["country"] and y["_ts"] - x["_ts"] < timedelta(minutes=60):
                found.add(("impossible_travel", frozenset([x["event_id"], y["event_id"]])))
    # consent_violation
    for e in events:
        if e.get("purpose") in CONSENT_PURPOSES and e.get("user_id") is not None:
            rows = [r for r in consent_rows
                    if r["user_id"] == e["user_id"] and r["purpose"] == e["purpose"]
                    and r["recorded"] <= e["_ts"]]
            valid = False
            if rows:
                latest = max(rows, key=lambda r: (r["recorded"], r["event_id"]))
                valid = latest["status"] == "granted" and (
                    latest["expires"] is None or latest["expires"] > e["_ts"])
            if not valid:
                found.add(("consent_violation", frozenset([e["event_id"]])))
    return found


def reference_audit_rules(events, directory):
    found = set()
    for e in events:
        one = frozenset([e["audit_id"]])
        day = e["_ts"].date()
        entry = directory.get(e["actor_id"])
        if entry is None or day < entry["from"] or (entry["to"] is not None and day > entry["to"]):
            found.add(("access_after_offboarding", one))
        if e["outcome"] == "success" and entry is not None and e["action"] not in POLICY[entry["role"]]:
            found.add(("role_not_permitted", one))
        ticket = e.get("ticket_id")
        if e["outcome"] == "success" and e["action"] in PII and (ticket is None or ticket.strip() == ""):
            found.add(("missing_justification", one))
        records = e.get("records")
        if e["action"] in ("export_user_data", "query_pii") and (1 if records is None else records) >= 1000:
            found.add(("bulk_export", one))
        if e["action"] == "disable_audit_logging":
            found.add(("audit_tampering", one))
    actors = sorted({e["actor_id"] for e in events})
    for a in actors:
        denied = sorted((e for e in events if e["actor_id"] == a and e["outcome"] == "denied"),
                        key=lambda e: (e["_ts"], e["audit_id"]))
        windows = []
        for i in range(len(denied) - 2):
            if denied[i + 2]["_ts"] - denied[i]["_ts"] <= timedelta(minutes=60):
                windows.append({e["audit_id"] for e in denied[i:i + 3]})
        for g in merge_sets(windows):
            found.add(("denied_attempts", frozenset(g)))
    return found


def load_consent(landing: Path):
    con = sqlite3.connect(landing / "consent.db")
    rows = []
    for eid, uid, purpose, status, rec, exp in con.execute(
        "SELECT event_id, user_id, purpose, status, recorded_at, expires_at FROM consent_events"
    ):
        rows.append({"event_id": eid, "user_id": uid, "purpose": purpose, "status": status,
                     "recorded": parse_ts(rec), "expires": parse_ts(exp) if exp else None})
    con.close()
    return rows


def load_directory(landing: Path):
    out = {}
    with open(landing / "directory" / "staff.csv", newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            out[row["actor_id"]] = {
                "role": row["role"],
                "from": date.fromisoformat(row["employed_from"]),
                "to": date.fromisoformat(row["employed_to"]) if row["employed_to"] else None,
            }
    return out


def check_landing(landing: Path):
    access, aq, ad = load_source(landing, "access", "event_id", check_access)
    audit, uq, ud = load_source(landing, "audit", "audit_id", check_audit)
    found = reference_access_rules(access, load_consent(landing))
    found |= reference_audit_rules(audit, load_directory(landing))
    return {"access": access, "audit": audit, "quarantined": aq | uq, "duplicates": ad | ud,
            "incidents": found}


def read_ground_truth(landing: Path):
    return [json.loads(line) for line in (landing / "ground_truth.jsonl").read_text().splitlines()]


# ==================================================================================================
# Fixtures
# ==================================================================================================

SMALL = dict(seed=11, users=60, days=3, start=date(2026, 10, 31))  # covers the US DST change


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    landing = tmp_path_factory.mktemp("small")
    stats = generate(landing, **SMALL)
    return landing, stats, check_landing(landing), read_ground_truth(landing)


@pytest.fixture(scope="module")
def default(tmp_path_factory):
    landing = tmp_path_factory.mktemp("default")
    stats = generate(landing)
    return landing, stats, check_landing(landing), read_ground_truth(landing)


# ==================================================================================================
# Tests
# ==================================================================================================


@pytest.mark.parametrize("which", ["small", "default"])
def test_reference_checker_finds_exactly_the_planted_incidents(which, request):
    landing, stats, result, gt = request.getfixturevalue(which)
    expected = {(g["rule_id"], frozenset(g["event_ids"])) for g in gt if g["kind"] == "incident"}
    found = result["incidents"]
    missing = expected - found
    extra = found - expected
    assert not missing, f"planted but not found: {sorted((r, sorted(i)) for r, i in missing)}"
    assert not extra, f"found but not planted: {sorted((r, sorted(i)) for r, i in extra)}"
    # every rule is planted
    assert {r for r, _ in expected} == set(RULES)


@pytest.mark.parametrize("which", ["small", "default"])
def test_near_misses_do_not_fire(which, request):
    landing, stats, result, gt = request.getfixturevalue(which)
    near = [g for g in gt if g["kind"] == "near_miss"]
    assert {g["rule_id"] for g in near} >= set(RULES) - {"audit_tampering"}
    ids_by_rule: dict[str, set] = {}
    for rule, ids in result["incidents"]:
        ids_by_rule.setdefault(rule, set()).update(ids)
    known = {e["event_id"] for e in result["access"]} | {e["audit_id"] for e in result["audit"]}
    for g in near:
        assert set(g["event_ids"]) <= known, g
        assert not set(g["event_ids"]) & ids_by_rule.get(g["rule_id"], set()), g


@pytest.mark.parametrize("which", ["small", "default"])
def test_bad_lines_and_duplicates_match_ground_truth(which, request):
    landing, stats, result, gt = request.getfixturevalue(which)
    q = {(g["file"], g["line"]) for g in gt if g["kind"] == "quarantine"}
    d = {(g["file"], g["line"]) for g in gt if g["kind"] == "duplicate"}
    assert q == result["quarantined"]
    assert d == result["duplicates"]
    assert len(q) >= 20 and len(d) >= 3
    # bad lines / duplicates never carry incident or near-miss evidence
    evidence = set()
    for g in gt:
        if g["kind"] in ("incident", "near_miss"):
            evidence |= set(g["event_ids"])
    dup_ids = {g["event_id"] for g in gt if g["kind"] == "duplicate"}
    assert not dup_ids & evidence
    # schema drift: valid events carrying an unknown extra field
    drift = [g for g in gt if g["kind"] == "schema_drift"]
    assert drift
    by_pos = {(e["_file"], e["_line"]): e for e in result["access"] + result["audit"]}
    for g in drift:
        rec = by_pos[(g["file"], g["line"])]
        assert set(g["fields"]) <= set(rec)


def test_stats_are_consistent(small):
    landing, stats, result, gt = small
    assert isinstance(stats, GenerationStats)
    assert stats.access_events == len(result["access"])
    assert stats.audit_events == len(result["audit"])
    con = sqlite3.connect(landing / "consent.db")
    assert stats.consent_events == con.execute("SELECT count(*) FROM consent_events").fetchone()[0]
    con.close()
    with open(landing / "directory" / "staff.csv", encoding="utf-8") as fh:
        assert stats.staff == len(fh.read().splitlines()) - 1
    assert stats.incidents == dict(Counter(g["rule_id"] for g in gt if g["kind"] == "incident"))
    near = Counter(g["rule_id"] for g in gt if g["kind"] == "near_miss")
    assert stats.near_misses == {r: near.get(r, 0) for r in RULES}
    assert set(stats.incidents) == set(RULES) and set(stats.near_misses) == set(RULES)
    assert stats.bad_lines == sum(g["kind"] == "quarantine" for g in gt)
    assert stats.duplicates == sum(g["kind"] == "duplicate" for g in gt)
    on_disk = sorted(p.relative_to(landing).as_posix() for p in landing.rglob("*") if p.is_file())
    assert stats.files == on_disk
    # one file per UTC day and source
    days = [(SMALL["start"] + timedelta(days=i)).isoformat() for i in range(SMALL["days"])]
    assert [f for f in stats.files if f.startswith("access/")] == [
        f"access/access-{d}.jsonl" for d in days]
    assert [f for f in stats.files if f.startswith("audit/")] == [
        f"audit/audit-{d}.jsonl" for d in days]


def _digest(landing: Path) -> dict[str, str]:
    return {p.relative_to(landing).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(landing.rglob("*")) if p.is_file()}


def test_deterministic_for_a_seed(tmp_path):
    args = dict(users=25, days=2, staff=20)
    generate(tmp_path / "a", seed=3, **args)
    generate(tmp_path / "b", seed=3, **args)
    generate(tmp_path / "c", seed=4, **args)
    a, b, c = _digest(tmp_path / "a"), _digest(tmp_path / "b"), _digest(tmp_path / "c")
    assert a == b
    assert a.keys() == c.keys()
    assert all(a[k] != c[k] for k in a if k.startswith(("access/", "audit/")))
    # regenerating into the same directory replaces the files (no leftovers, same bytes)
    generate(tmp_path / "a", seed=3, **args)
    assert _digest(tmp_path / "a") == b


def test_gzip_output(tmp_path):
    stats = generate(tmp_path / "gz", seed=5, users=30, days=2, staff=20, gzip_output=True)
    generate(tmp_path / "gz2", seed=5, users=30, days=2, staff=20, gzip_output=True)
    landing = tmp_path / "gz"
    assert _digest(landing) == _digest(tmp_path / "gz2")
    assert all(f.endswith(".jsonl.gz") for f in stats.files if f.startswith(("access/", "audit/")))
    gt = read_ground_truth(landing)
    assert all(g["file"].endswith(".jsonl.gz") for g in gt if "file" in g)
    result = check_landing(landing)
    expected = {(g["rule_id"], frozenset(g["event_ids"])) for g in gt if g["kind"] == "incident"}
    assert result["incidents"] == expected
    assert result["quarantined"] == {(g["file"], g["line"]) for g in gt if g["kind"] == "quarantine"}
    assert result["duplicates"] == {(g["file"], g["line"]) for g in gt if g["kind"] == "duplicate"}
    plain = generate(tmp_path / "plain", seed=5, users=30, days=2, staff=20)
    assert plain.access_events == stats.access_events
    assert plain.incidents == stats.incidents


def test_realism_of_access_events(small):
    landing, stats, result, gt = small
    events = result["access"]
    ts = [e["ts"] for e in events]
    z_share = sum(t.endswith("Z") for t in ts) / len(ts)
    assert 0.3 < z_share < 0.7
    assert any("." in t[19:23] for t in ts)  # milliseconds
    # DST: America/New_York is -04:00 before and -05:00 after 2026-11-01T06:00Z
    ny = [e for e in events if e["ts"].endswith(("-04:00", "-05:00"))]
    assert {e["ts"][-6:] for e in ny} >= {"-04:00", "-05:00"}
    switch = datetime(2026, 11, 1, 6, tzinfo=timezone.utc)
    for e in ny:
        if e.get("country") == "US" and e["ts"][-6:] == "-04:00":
            assert e["_ts"] < switch
    v6 = sum(":" in e["client_ip"] for e in events) / len(events)
    assert 0.05 < v6 < 0.35
    anon = [e for e in events if e.get("user_id") is None]
    assert 0.01 < len(anon) / len(events) < 0.2
    actions = Counter(e["action"] for e in events)
    assert set(actions) == set(ACCESS_ACTIONS)
    assert {e["status"] for e in events} >= {200, 206, 304, 404, 401}
    purposes = Counter(e.get("purpose") for e in events)
    assert purposes["personalization"] and purposes["analytics"] and purposes["advertising"]
    assert any("email" in e for e in events if e["action"] == "login")
    assert all("email" not in e for e in events if e["action"] != "login")
    # about 1 % of the events sit in a neighbouring day's file
    misplaced = sum(e["_file"][-16:-6] != e["_ts"].date().isoformat() for e in events)
    assert 0 < misplaced / len(events) < 0.05
    # a device's token is only used from one IP in background traffic; ids look like ids
    assert any(e["user_id"].startswith("u_") for e in events if e.get("user_id"))


def test_consent_db_and_other_inputs(small):
    landing, stats, result, gt = small
    con = sqlite3.connect(landing / "consent.db")
    cols = [r[1] for r in con.execute("PRAGMA table_info(consent_events)")]
    assert cols == ["event_id", "user_id", "purpose", "status", "recorded_at", "expires_at",
                    "source", "notice_version", "jurisdiction", "tc_string"]
    rows = con.execute("SELECT purpose, status, recorded_at, expires_at, source, jurisdiction "
                       "FROM consent_events").fetchall()
    con.close()
    assert {r[0] for r in rows} == {"personalization", "analytics", "advertising", "marketing_email"}
    assert {r[1] for r in rows} == {"granted", "denied", "withdrawn"}
    assert all(r[2].endswith("Z") and len(r[2]) == 20 for r in rows)
    assert any(r[3] for r in rows)
    assert {r[4] for r in rows} <= {"web", "mobile", "tv", "cmp", "support"}
    with open(landing / "directory" / "staff.csv", encoding="utf-8") as fh:
        assert fh.readline().strip() == "actor_id,role,department,employed_from,employed_to"
    directory = load_directory(landing)
    assert any(a.startswith("svc_") for a in directory)
    assert any(v["to"] is not None for v in directory.values())
    dsar = [json.loads(x) for x in (landing / "dsar" / "requests.jsonl").read_text().splitlines()]
    assert dsar and all(d["type"] in ("access", "erasure") and parse_ts(d["received_at"]) for d in dsar)


def test_rejects_unusable_parameters(tmp_path):
    with pytest.raises(ValueError):
        generate(tmp_path, users=5)
    with pytest.raises(ValueError):
        generate(tmp_path, days=0)
    with pytest.raises(ValueError):
        generate(tmp_path, staff=5)
