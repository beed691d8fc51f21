"""Deterministic synthetic landing-zone generator for streamgov.

Writes a realistic landing zone (data contract section 2) for a streaming service:

* ``access/access-YYYY-MM-DD.jsonl[.gz]``  application / API access events (schema A)
* ``audit/audit-YYYY-MM-DD.jsonl[.gz]``    internal admin-tool audit trail (schema B)
* ``directory/staff.csv``                  workforce directory (schema C)
* ``consent.db``                           SQLite consent database, table ``consent_events`` (schema D)
* ``dsar/requests.jsonl``                  data-subject requests (schema E)
* ``ground_truth.jsonl``                   what was planted: incidents, near misses, bad lines,
                                           duplicates and schema drift

Background traffic is clean by construction (it triggers no rule of contract section 4); incidents
and near misses are planted on dedicated users / IPs / tokens / actors, and the ground truth of the
planted data is computed with the rule definitions below (``detect_access_incidents`` and
``detect_audit_incidents``), so an event that triggers several rules is listed under every rule.

Output is deterministic for a seed: the same arguments give byte-identical files.  Access events are
streamed (sessions are planned one UTC day at a time and merged through a small heap), so ten million
events need little memory.

``ground_truth.jsonl`` (one JSON object per line, deterministic order):

* ``{"kind": "incident", "rule_id", "event_ids", "window_start", "scenario"}`` -- every planted
  incident; ``event_ids`` are access ``event_id`` / audit ``audit_id`` values (the evidence).
* ``{"kind": "near_miss", "rule_id", "event_ids", "note"}`` -- must NOT fire for ``rule_id``.
* ``{"kind": "quarantine", "file", "line", "reason"}`` -- planted bad line (1-based line number,
  path relative to the landing dir with its real extension); reasons are generator-specific.
* ``{"kind": "duplicate", "file", "line", "event_id"}`` -- re-delivered identical line (the later
  copy, in the same or a later file).
* ``{"kind": "schema_drift", "file", "line", "fields"}`` -- valid event with unknown extra fields.

Interpretation choices (see ``detect_access_incidents`` / ``detect_audit_incidents``):

* windows (failed logins, denials, token reuse) that share an event merge into one incident;
  a user-key and an IP-key burst with identical evidence are one incident;
* ``role_not_permitted`` uses the directory role and only applies to actors present in the
  directory (planted unknown actors therefore only have ``denied`` / ``error`` outcomes, so the
  data does not depend on that choice); employment dates are compared with the UTC date;
* ``records`` absent means 1; a ticket that is null, absent, empty or blank is missing;
* ``consent_violation`` needs a non-null ``user_id`` (anonymous events with a purpose are fine).

Only the standard library is used.
"""

from __future__ import annotations

import bisect
import csv
import gzip
import heapq
import io
import ipaddress
import json
import random
import sqlite3
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Iterable
from zoneinfo import ZoneInfo

__all__ = [
    "GenerationStats",
    "generate",
    "RULE_IDS",
    "ACCESS_ACTIONS",
    "AUDIT_ACTIONS",
    "PII_ACTIONS",
    "ROLE_POLICY",
    "BLOCKED_COUNTRIES",
    "detect_access_incidents",
    "detect_audit_incidents",
]

# --------------------------------------------------------------------------------------------------
# Contract constants (section 3 / 4 defaults)
# --------------------------------------------------------------------------------------------------

SEC = 1000
MIN = 60 * SEC
HOUR = 60 * MIN
DAY = 24 * HOUR

RULE_IDS = (
    "failed_login_burst",
    "blocked_country",
    "token_reuse",
    "impossible_travel",
    "consent_violation",
    "role_not_permitted",
    "missing_justification",
    "bulk_export",
    "access_after_offboarding",
    "audit_tampering",
    "denied_attempts",
)
ACCESS_RULES = RULE_IDS[:5]
AUDIT_RULES = RULE_IDS[5:]

ACCESS_ACTIONS = (
    "login", "logout", "play", "stop", "browse", "search", "download", "profile_view",
    "profile_update", "api",
)
AUDIT_ACTIONS = (
    "login", "view_profile", "view_watch_history", "export_user_data", "query_pii",
    "update_consent", "delete_user", "grant_role", "disable_audit_logging",
)
PII_ACTIONS = frozenset(
    {"view_profile", "view_watch_history", "export_user_data", "query_pii", "delete_user"}
)
EXPORT_ACTIONS = frozenset({"export_user_data", "query_pii"})
BLOCKED_COUNTRIES = ("KP", "IR", "SY", "CU")
CONSENT_PURPOSES = ("personalization", "analytics", "advertising")
ROLE_POLICY: dict[str, frozenset[str]] = {
    "support_agent": frozenset({"login", "view_profile", "view_watch_history", "update_consent"}),
    "privacy_officer": frozenset(set(AUDIT_ACTIONS) - {"grant_role", "disable_audit_logging"}),
    "data_analyst": frozenset({"login", "query_pii"}),
    "admin": frozenset({"login", "grant_role", "view_profile"}),
    "engineer": frozenset({"login"}),
}

BURST_COUNT = 5
BURST_SPAN = 10 * MIN
FAILED_LOGIN_STATUSES = (401, 403)
TOKEN_IPS = 3
TOKEN_WINDOW = 60 * MIN
TRAVEL_GAP = 60 * MIN
BULK_RECORDS = 1000
DENIED_COUNT = 3
DENIED_SPAN = 60 * MIN

# --------------------------------------------------------------------------------------------------
# Reference data
# --------------------------------------------------------------------------------------------------

# country -> (zones [(tz, weight, jurisdiction)], IPv4 first octets (1, 2, 4 or 8 of them, disjoint
# between countries), IPv6 /32 prefixes, weight as a home country of users)
_COUNTRIES: dict[str, tuple] = {
    "DE": ((("Europe/Berlin", 1, "EU"),), (84, 87, 91, 93), ("2a02:8108", "2003:e2"), 17),
    "FR": ((("Europe/Paris", 1, "EU"),), (82, 86), ("2a01:cb00", "2a01:e0a"), 11),
    "ES": ((("Europe/Madrid", 1, "EU"),), (83, 88), ("2a0c:5a80",), 7),
    "IT": ((("Europe/Rome", 1, "EU"),), (79, 151), ("2a01:827",), 7),
    "NL": ((("Europe/Amsterdam", 1, "EU"),), (77, 145), ("2a02:a440",), 5),
    "SE": ((("Europe/Stockholm", 1, "EU"),), (78,), ("2a00:801",), 3),
    "PL": ((("Europe/Warsaw", 1, "EU"),), (89, 178), ("2a01:110f",), 4),
    "IE": ((("Europe/Dublin", 1, "EU"),), (37,), ("2a02:8084",), 2),
    "PT": ((("Europe/Lisbon", 1, "EU"),), (85,), ("2001:8a0",), 2),
    "AT": ((("Europe/Vienna", 1, "EU"),), (80,), ("2a02:8388",), 2),
    "BE": ((("Europe/Brussels", 1, "EU"),), (94,), ("2a02:a03f",), 2),
    "GB": ((("Europe/London", 1, "UK"),), (25, 51, 81, 92), ("2a00:23c4", "2a02:c7c"), 11),
    "US": (
        (("America/New_York", 5, "US"), ("America/Chicago", 2, "US"),
         ("America/Los_Angeles", 3, "US-CA")),
        (23, 24, 45, 66, 68, 71, 73, 98), ("2600:1700", "2601:18c", "2603:8000"), 16,
    ),
    "BR": ((("America/Sao_Paulo", 1, "BR"),), (177, 179, 186, 187), ("2804:14c", "2804:d41"), 8),
    # not home countries of regular users: attackers, anonymous visitors, travel
    "RU": ((("Europe/Moscow", 1, "RU"),), (95,), ("2a00:1fa0",), 0),
    "CN": ((("Asia/Shanghai", 1, "CN"),), (36, 39), ("240e:3b0",), 0),
    "VN": ((("Asia/Ho_Chi_Minh", 1, "VN"),), (113,), ("2405:4802",), 0),
    "NG": ((("Africa/Lagos", 1, "NG"),), (105,), ("2c0f:f5c0",), 0),
    "IN": ((("Asia/Kolkata", 1, "IN"),), (49, 106), ("2409:4040",), 0),
    "TR": ((("Europe/Istanbul", 1, "TR"),), (176,), ("2a02:e0",), 0),
    "MX": ((("America/Mexico_City", 1, "MX"),), (189,), ("2806:2f0",), 0),
    "KP": ((("Asia/Pyongyang", 1, "KP"),), (175,), ("2401:f400",), 0),
    "IR": ((("Asia/Tehran", 1, "IR"),), (5,), ("2a01:5ec0",), 0),
    "SY": ((("Asia/Damascus", 1, "SY"),), (31,), ("2a03:d3c0",), 0),
    "CU": ((("America/Havana", 1, "CU"),), (152,), ("2803:1000",), 0),
    # corporate / cloud ranges used by the workforce (never a user country)
    "CORP": ((("Europe/Berlin", 1, "EU"),), (185, 193), ("2a05:d014",), 0),
}
_HOME_COUNTRIES = tuple(c for c, v in _COUNTRIES.items() if v[3] > 0)
_HOME_WEIGHTS = tuple(_COUNTRIES[c][3] for c in _HOME_COUNTRIES)
_ATTACK_COUNTRIES = ("RU", "CN", "VN", "NG", "IN", "TR", "MX", "BR")
_ANON_OTHER = ("RU", "CN", "IN", "VN", "NG", "TR", "MX")

_FIRST = (
    "anna", "ben", "clara", "david", "emma", "felix", "greta", "hugo", "ines", "jonas", "klara",
    "lukas", "marie", "noah", "olivia", "paul", "quentin", "rosa", "samuel", "theo", "ulla",
    "victor", "wiebke", "xavier", "yara", "zoe", "liam", "sofia", "mateo", "chloe", "james",
    "amelia", "lucas", "giulia", "pedro", "ana", "joao", "camille", "oskar", "maja",
)
_LAST = (
    "mueller", "schmidt", "martin", "bernard", "garcia", "rossi", "silva", "smith", "jones",
    "brown", "novak", "kowalski", "jansen", "devries", "andersson", "nilsson", "murphy", "kelly",
    "santos", "oliveira", "ferreira", "dubois", "moreau", "lopez", "romano", "ricci", "weber",
    "wagner", "becker", "hoffmann", "taylor", "wilson", "johnson", "miller", "davis", "costa",
    "pereira", "lefebvre", "fischer", "meyer",
)

_UA = {
    "web": (
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/130.0.0.0 Safari/537.36",
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) "
        "Version/18.1 Safari/605.1.15",
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:132.0) Gecko/20100101 Firefox/132.0",
        "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/129.0.0.0 Safari/537.36",
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/130.0.0.0 Safari/537.36 Edg/130.0.2849.68",
    ),
    "mobile": (
        "StreamFlix/8.14.0 (iPhone15,3; iOS 18.1; Scale/3.00)",
        "StreamFlix/8.13.2 (iPhone13,2; iOS 17.6.1; Scale/3.00)",
        "StreamFlix/8.14.1 (Linux; Android 14; SM-S918B)",
        "StreamFlix/8.12.0 (Linux; Android 13; Pixel 7)",
        "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 "
        "(KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1",
    ),
    "tv": (
        "Mozilla/5.0 (SMART-TV; LINUX; Tizen 7.0) AppleWebKit/537.36 (KHTML, like Gecko) "
        "94.0.4606.31/7.0 TV Safari/537.36",
        "Mozilla/5.0 (Web0S; Linux/SmartTV) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/87.0.4280.88 Safari/537.36 WebAppManager",
        "Roku/DVP-13.0 (13.0.0.4197-C5)",
        "AppleTV14,1/18.1 StreamFlix/8.14.0",
        "Dalvik/2.1.0 (Linux; U; Android 12; BRAVIA 4K VH2 Build/STTK.230613.002)",
    ),
}
_UA_ANON_EXTRA = (
    "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
    "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)",
)
_UA_ATTACK = (
    "python-requests/2.32.3",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/120.0.0.0 Safari/537.36",
    "okhttp/4.12.0",
    "curl/8.5.0",
)

# local-hour activity profile of consumers (evening peak)
_LOCAL_HOUR_WEIGHT = (
    2, 1, 0.6, 0.4, 0.3, 0.3, 0.8, 2, 3, 3, 3, 3, 4, 4, 3, 3, 4, 5, 7, 9, 10, 9, 7, 4,
)

# TCF purposes behind each of our purposes: mirrors the packaged policies/consent.yaml, so a CMP row's
# TC string agrees with its status (the product reports any disagreement as a signal mismatch).
_TCF_PURPOSES = {"advertising": (2, 3, 4), "personalization": (5, 6), "analytics": (8, 9)}
_B64URL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


def _bad_line(base: dict, reason: str, cut: tuple[int, int], edits: dict) -> str:
    """A planted bad line: `base` broken the way `reason` names. `edits` maps the other reasons to a
    function giving the fields to overwrite (called only for its own reason, so the random stream
    advances exactly as it would inline)."""
    if reason == "invalid_json":
        text = _json(base)
        return text[: len(text) * cut[0] // cut[1]]
    if reason == "json_array":
        return _json(list(base.values()))  # type: ignore[arg-type]
    if reason.startswith("missing_"):
        base.pop(reason[len("missing_"):])
        return _json(base)
    base.update(edits[reason]())
    return _json(base)


def _tc_string(rng: random.Random, purpose: str, granted: bool, deciseconds: int) -> str:
    """A valid IAB TCF v2 core string: the row's purposes consented exactly when the row is a grant,
    the other purposes at random, no vendors."""
    mine = set(_TCF_PURPOSES.get(purpose, ()))
    others = {p for p in range(1, 11) if p not in mine and rng.random() < 0.5}
    consented = (mine if granted else set()) | others
    bits = (f"{2:06b}{deciseconds:036b}{deciseconds:036b}{10:012b}{1:012b}{1:06b}"
            f"{4:06b}{13:06b}{100:012b}{4:06b}10{0:012b}"            # EN, vendor list 100, policy 4
            + "".join("1" if p in consented else "0" for p in range(1, 25)) + "0" * 24
            + f"0{3:06b}{4:06b}"                                      # publisher CC DE
            + f"{0:016b}0{0:016b}0{0:012b}")                          # no vendors, no restrictions
    bits += "0" * (-len(bits) % 6)
    return "".join(_B64URL[int(bits[i:i + 6], 2)] for i in range(0, len(bits), 6))


_CONSENT_SOURCES = ("web", "mobile", "tv", "cmp", "support")
_CONSENT_SOURCE_W = (30, 30, 10, 25, 5)
_NOTICE_VERSIONS = ("pn-2024.2", "pn-2025.1", "pn-2025.3", "pn-2026.1")

_SESSION_MAX = 4 * HOUR       # every background session ends within 4 h of its start
_TRAVEL_MIN_GAP = 2 * HOUR    # background country changes only after >= 2 h of silence

_M48 = (1 << 48) - 1
_M64 = (1 << 64) - 1


# --------------------------------------------------------------------------------------------------
# Public result
# --------------------------------------------------------------------------------------------------


@dataclass
class GenerationStats:
    """What :func:`generate` wrote."""

    access_events: int   # distinct valid access events written (bad lines and duplicates excluded)
    audit_events: int    # distinct valid audit events written
    consent_events: int  # rows in consent.db
    staff: int           # rows in directory/staff.csv
    incidents: dict[str, int]    # rule_id -> planted incidents (every rule id present)
    near_misses: dict[str, int]  # rule_id -> planted near misses (every rule id present)
    bad_lines: int       # planted unparseable / schema-violating lines (access + audit)
    duplicates: int      # planted re-delivered duplicate lines (access + audit)
    files: list[str] = field(default_factory=list)  # written files, relative to landing_dir


# --------------------------------------------------------------------------------------------------
# Rule definitions used to compute the ground truth of planted data
# --------------------------------------------------------------------------------------------------


def _merge_index_windows(windows: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    """Merge inclusive index windows that share at least one index."""
    out: list[list[int]] = []
    for a, b in sorted(windows):
        if out and a <= out[-1][1]:
            out[-1][1] = max(out[-1][1], b)
        else:
            out.append([a, b])
    return [(a, b) for a, b in out]


def _consent_valid(rows: list[tuple], t: int) -> bool:
    """rows: (recorded_ms, event_id, status, expires_ms|None) of one (user, purpose)."""
    best = None
    for row in rows:
        if row[0] <= t and (best is None or (row[0], row[1]) > (best[0], best[1])):
            best = row
    return best is not None and best[2] == "granted" and (best[3] is None or best[3] > t)


def detect_access_incidents(
    events: list[dict], consent: dict[tuple[str, str], list[tuple]]
) -> list[tuple[str, frozenset]]:
    """Rule definitions for access events (contract section 4 with the product's semantics).

    ``events``: dicts with ``event_id``, ``_t`` (UTC epoch-like milliseconds) and the schema-A fields.
    ``consent``: (user_id, purpose) -> rows (recorded_ms, event_id, status, expires_ms | None).
    Returns a sorted list of (rule_id, frozenset(event_ids)).
    """
    found: set[tuple[str, frozenset]] = set()

    def key(e: dict) -> tuple:
        return (e["_t"], e["event_id"])

    # failed_login_burst: per user_id and per client_ip
    burst_sets: set[frozenset] = set()
    for field_name in ("user_id", "client_ip"):
        groups: dict[str, list[dict]] = {}
        for e in events:
            if e.get("action") == "login" and e.get("status") in FAILED_LOGIN_STATUSES:
                k = e.get(field_name)
                if k is not None:
                    groups.setdefault(k, []).append(e)
        for k in sorted(groups):
            evs = sorted(groups[k], key=key)
            wins = [
                (i, i + BURST_COUNT - 1)
                for i in range(len(evs) - BURST_COUNT + 1)
                if evs[i + BURST_COUNT - 1]["_t"] - evs[i]["_t"] <= BURST_SPAN
            ]
            for a, b in _merge_index_windows(wins):
                burst_sets.add(frozenset(e["event_id"] for e in evs[a : b + 1]))
    for s in burst_sets:
        found.add(("failed_login_burst", s))

    # blocked_country
    for e in events:
        if e.get("user_id") is not None and e.get("country") in BLOCKED_COUNTRIES:
            found.add(("blocked_country", frozenset([e["event_id"]])))

    # token_reuse
    tokens: dict[str, list[dict]] = {}
    for e in events:
        if e.get("auth_token_id") is not None:
            tokens.setdefault(e["auth_token_id"], []).append(e)
    for tok in sorted(tokens):
        evs = sorted(tokens[tok], key=key)
        wins = []
        for a in evs:
            inside = [x for x in evs if a["_t"] <= x["_t"] <= a["_t"] + TOKEN_WINDOW]
            if len({x["client_ip"] for x in inside}) >= TOKEN_IPS:
                wins.append((a["_t"], max(x["_t"] for x in inside)))
        merged: list[list[int]] = []
        for a, b in sorted(wins):
            if merged and a <= merged[-1][1]:
                merged[-1][1] = max(merged[-1][1], b)
            else:
                merged.append([a, b])
        for a, b in merged:
            found.add(("token_reuse", frozenset(x["event_id"] for x in evs if a <= x["_t"] <= b)))

    # impossible_travel
    users: dict[str, list[dict]] = {}
    for e in events:
        if (
            e.get("user_id") is not None
            and e.get("country") is not None
            and isinstance(e.get("status"), int)
            and e["status"] < 400
        ):
            users.setdefault(e["user_id"], []).append(e)
    for u in sorted(users):
        evs = sorted(users[u], key=key)
        for x, y in zip(evs, evs[1:]):
            if x["country"] != y["country"] and y["_t"] - x["_t"] < TRAVEL_GAP:
                found.add(("impossible_travel", frozenset([x["event_id"], y["event_id"]])))

    # consent_violation
    for e in events:
        p = e.get("purpose")
        if p in CONSENT_PURPOSES and e.get("user_id") is not None:
            if not _consent_valid(consent.get((e["user_id"], p), []), e["_t"]):
                found.add(("consent_violation", frozenset([e["event_id"]])))
    return sorted(found, key=lambda x: (x[0], sorted(x[1])))


def detect_audit_incidents(
    events: list[dict], directory: dict[str, tuple[str, date, date | None]], base_day: date
) -> list[tuple[str, frozenset]]:
    """Rule definitions for audit events.

    ``events``: dicts with ``audit_id``, ``_t`` (ms since ``base_day`` 00:00 UTC) and schema-B fields;
    a missing ``ticket_id`` key means the field is absent.  ``directory``: actor -> (role, from, to).
    ``role_not_permitted`` is evaluated for actors present in the directory (their directory role).
    """
    found: set[tuple[str, frozenset]] = set()
    for e in events:
        aid = frozenset([e["audit_id"]])
        d = base_day + timedelta(days=e["_t"] // DAY)
        entry = directory.get(e["actor_id"])
        if entry is None or d < entry[1] or (entry[2] is not None and d > entry[2]):
            found.add(("access_after_offboarding", aid))
        success = e["outcome"] == "success"
        if success and entry is not None and e["action"] not in ROLE_POLICY.get(entry[0], ()):
            found.add(("role_not_permitted", aid))
        ticket = e.get("ticket_id")
        if success and e["action"] in PII_ACTIONS and (ticket is None or not str(ticket).strip()):
            found.add(("missing_justification", aid))
        records = e.get("records")
        if e["action"] in EXPORT_ACTIONS and (1 if records is None else records) >= BULK_RECORDS:
            found.add(("bulk_export", aid))
        if e["action"] == "disable_audit_logging":
            found.add(("audit_tampering", aid))
    by_actor: dict[str, list[dict]] = {}
    for e in events:
        if e["outcome"] == "denied":
            by_actor.setdefault(e["actor_id"], []).append(e)
    for a in sorted(by_actor):
        evs = sorted(by_actor[a], key=lambda x: (x["_t"], x["audit_id"]))
        wins = [
            (i, i + DENIED_COUNT - 1)
            for i in range(len(evs) - DENIED_COUNT + 1)
            if evs[i + DENIED_COUNT - 1]["_t"] - evs[i]["_t"] <= DENIED_SPAN
        ]
        for x, y in _merge_index_windows(wins):
            found.add(("denied_attempts", frozenset(e["audit_id"] for e in evs[x : y + 1])))
    return sorted(found, key=lambda x: (x[0], sorted(x[1])))


# --------------------------------------------------------------------------------------------------
# Helpers: time rendering, identifiers, IP addresses
# --------------------------------------------------------------------------------------------------


class _Clock:
    """Millisecond timeline relative to ``base`` (00:00 UTC two days before the window start).

    Timestamps are rendered either in UTC with ``Z`` or as local time of a zone with its offset,
    using precomputed per-hour offsets (all zone transitions used here fall on whole UTC hours;
    this is checked and a slow exact path is used otherwise).
    """

    def __init__(self, start: date, days: int, zones: list[str]):
        self.base_day = start - timedelta(days=2)
        self.base_dt = datetime(
            self.base_day.year, self.base_day.month, self.base_day.day, tzinfo=timezone.utc
        )
        self.w0 = 2 * DAY
        self.w1 = (2 + days) * DAY
        self.n_hours = (days + 6) * 24
        self.dates = [(self.base_day + timedelta(days=i)).isoformat() for i in range(-2, days + 8)]
        self.date_shift = 2  # dates[i + 2] is base_day + i
        self.hms = [f"{h:02d}:{m:02d}:{s:02d}" for h in range(24) for m in range(60) for s in range(60)]
        self.msfrag = [f".{i:03d}" for i in range(1000)]
        self.zones = zones
        self.zone_index = {z: i for i, z in enumerate(zones)}
        self.off: list[list[int]] = []
        self.offstr: list[list[str]] = []
        self.exact: list[list[bool]] = []
        for z in zones:
            zi = ZoneInfo(z)
            offs, strs, ex = [], [], []
            for h in range(self.n_hours):
                t0 = self.base_dt + timedelta(hours=h)
                o0 = int(t0.astimezone(zi).utcoffset().total_seconds())
                o1 = int((t0 + timedelta(seconds=3599)).astimezone(zi).utcoffset().total_seconds())
                offs.append(o0)
                sign = "+" if o0 >= 0 else "-"
                a = abs(o0)
                strs.append(f"{sign}{a // 3600:02d}:{(a % 3600) // 60:02d}")
                ex.append(o0 == o1)
            self.off.append(offs)
            self.offstr.append(strs)
            self.exact.append(ex)

    def fmt(self, t: int, z: int = -1, ms: bool = False) -> str:
        """Render ms-time ``t``; ``z`` < 0 means UTC with ``Z``."""
        s = t // 1000
        frag = self.msfrag[t % 1000] if ms else ""
        h = s // 3600
        if z < 0:
            if 0 <= h < self.n_hours:
                d, sod = divmod(s, 86400)
                return f"{self.dates[d + 2]}T{self.hms[sod]}{frag}Z"
            dt = self.base_dt + timedelta(milliseconds=t)
            return dt.strftime("%Y-%m-%dT%H:%M:%S") + frag + "Z"
        if 0 <= h < self.n_hours and self.exact[z][h]:
            ls = s + self.off[z][h]
            d, sod = divmod(ls, 86400)
            return f"{self.dates[d + 2]}T{self.hms[sod]}{frag}{self.offstr[z][h]}"
        dt = (self.base_dt + timedelta(milliseconds=t)).astimezone(ZoneInfo(self.zones[z]))
        out = dt.isoformat(timespec="milliseconds" if ms else "seconds")
        return out

    def iso_z(self, t: int) -> str:
        return (self.base_dt + timedelta(milliseconds=t)).strftime("%Y-%m-%dT%H:%M:%SZ")

    def day_of(self, t: int) -> date:
        return self.base_day + timedelta(days=t // DAY)


class _Ids:
    """Unique, scrambled-looking identifiers from counters (bijective in the counter)."""

    def __init__(self, rng: random.Random):
        self.salts = {k: rng.getrandbits(64) for k in ("ev", "au", "se", "tk", "ce", "dv")}
        self.n = {k: 0 for k in self.salts}

    def next(self, kind: str, prefix: str, bits: int = 48) -> str:
        self.n[kind] += 1
        mask = (1 << bits) - 1
        v = (self.n[kind] * 0x9E3779B97F4A7C15 + self.salts[kind]) & mask
        return f"{prefix}{v:0{bits // 4}x}"

    def pair_sorted(self, kind: str, prefix: str) -> tuple[str, str]:
        a, b = self.next(kind, prefix), self.next(kind, prefix)
        return (a, b) if a < b else (b, a)


class _IpPool:
    """Unique public-looking addresses per country (disjoint ranges, bijective counters)."""

    def __init__(self, rng: random.Random):
        self.n4: dict[str, int] = {}
        self.n6: dict[str, int] = {}
        self.salt = {c: rng.getrandbits(64) for c in _COUNTRIES}

    def v4(self, country: str) -> str:
        octets = _COUNTRIES[country][1]
        space = len(octets) << 24
        while True:
            n = self.n4.get(country, 0) + 1
            self.n4[country] = n
            h = (n * 0x9E3779B1 + self.salt[country]) % space
            rest = h & 0xFFFFFF
            last = rest & 0xFF
            if last in (0, 255):
                continue
            return f"{octets[h >> 24]}.{rest >> 16}.{(rest >> 8) & 0xFF}.{last}"

    def v6(self, country: str) -> str:
        prefixes = _COUNTRIES[country][2]
        n = self.n6.get(country, 0) + 1
        self.n6[country] = n
        iid = (n * 0x9E3779B97F4A7C15 + self.salt[country]) & _M64
        subnet = (n * 0x85EBCA6B + (self.salt[country] >> 7)) & 0xFFFFFFFF
        p = prefixes[n % len(prefixes)]
        groups = [subnet >> 16, subnet & 0xFFFF] + [(iid >> s) & 0xFFFF for s in (48, 32, 16, 0)]
        text = p + ":" + ":".join(f"{g:x}" for g in groups)
        return ipaddress.IPv6Address(text).compressed

    def any(self, country: str, rng: random.Random, p6: float = 0.15) -> str:
        return self.v6(country) if rng.random() < p6 else self.v4(country)


class _Out:
    """Buffered text writer (plain or deterministic gzip)."""

    def __init__(self, path: Path, gz: bool):
        self.path = path
        self.raw = open(path, "wb")
        if gz:
            self.stream = gzip.GzipFile(filename="", mode="wb", fileobj=self.raw, mtime=0,
                                        compresslevel=6)
        else:
            self.stream = self.raw
        self.buf: list[str] = []
        self.lines = 0

    def write_line(self, line: str) -> int:
        self.buf.append(line)
        self.lines += 1
        if len(self.buf) >= 4096:
            self.flush()
        return self.lines

    def flush(self) -> None:
        if self.buf:
            self.stream.write("".join(self.buf).encode("utf-8"))
            self.buf.clear()

    def close(self) -> None:
        self.flush()
        if self.stream is not self.raw:
            self.stream.close()
        self.raw.close()


def _json(obj: dict) -> str:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


# --------------------------------------------------------------------------------------------------
# The generator
# --------------------------------------------------------------------------------------------------


class _User:
    __slots__ = ("uid", "email", "country", "zone", "devices", "juris")

    def __init__(self, uid, email, country, zone, devices, juris):
        self.uid = uid
        self.email = email
        self.country = country
        self.zone = zone
        self.devices = devices  # list of (device_id, ip, user_agent, kind)
        self.juris = juris


class _Generator:
    def __init__(self, landing: Path, seed: int, users: int, days: int, start: date,
                 epud: float, staff: int, gz: bool):
        if users < 10:
            raise ValueError("users must be >= 10")
        if days < 1:
            raise ValueError("days must be >= 1")
        if staff < 15:
            raise ValueError("staff must be >= 15")
        if epud <= 0:
            raise ValueError("events_per_user_day must be > 0")
        self.landing = landing
        self.seed = seed
        self.n_users = users
        self.days = days
        self.start = start
        self.epud = float(epud)
        self.n_staff = staff
        self.gz = gz
        self.ext = ".jsonl.gz" if gz else ".jsonl"
        self.rng = random.Random(seed)
        zones = sorted({z for v in _COUNTRIES.values() for z, _, _ in v[0]})
        self.clock = _Clock(start, days, zones)
        self.ids = _Ids(self.rng)
        self.ips = _IpPool(self.rng)
        # plants per rule: 3 at the default size, growing mildly (fourth root of the volume)
        vol = users * days * epud / (150 * 7 * 15.0)
        self.k = max(3, 3 * round(max(1.0, vol) ** 0.25))
        self.m = max(1, self.k // 3)  # near misses per kind
        # ground-truth collections
        self.gt_incidents: list[tuple[str, frozenset]] = []
        self.gt_near: list[dict] = []
        self.gt_quarantine: list[dict] = []
        self.gt_duplicates: list[dict] = []
        self.gt_drift: list[dict] = []
        self.files: list[str] = []
        self.expect: list[tuple[str, list[str]]] = []  # (rule, event ids that must be in an incident)

    # ---------------------------------------------------------------------------------- utilities

    def zone_idx(self, tz: str) -> int:
        return self.clock.zone_index[tz]

    def rand_time(self, lo: int, hi: int) -> int:
        """Random whole second in [lo, hi)."""
        return lo + self.rng.randrange(max(1, (hi - lo) // SEC)) * SEC

    def plant_time(self, span: int = HOUR, margin: int = 2 * HOUR) -> int:
        c = self.clock
        lo = c.w0 + margin
        hi = max(lo + SEC, c.w1 - margin - span)
        return self.rand_time(lo, hi)

    def rel(self, p: Path) -> str:
        return p.relative_to(self.landing).as_posix()

    # ---------------------------------------------------------------------------------- users

    def _make_ids(self) -> None:
        rng = self.rng
        self.n_reserved = 60 + 40 * self.k
        total = self.n_users + self.n_reserved
        width = max(6, len(str(total * 10)))
        nums = rng.sample(range(1, 10**width), total)
        ids = []
        for n in nums:
            r = rng.random()
            if r < 0.015:
                ids.append(f"usr_{rng.getrandbits(32):08x}")
            elif r < 0.03:
                h = rng.getrandbits(128)
                s = f"{h:032x}"
                ids.append(f"{s[:8]}-{s[8:12]}-4{s[13:16]}-a{s[17:20]}-{s[20:]}")
            elif r < 0.04:
                ids.append(f"legacy:{n}")
            else:
                ids.append(f"u_{n:0{width}d}")
        self.id_pool = ids
        self.reserved_next = self.n_users
        self.emails: set[str] = set()

    def _email(self) -> str:
        rng = self.rng
        while True:
            e = f"{rng.choice(_FIRST)}.{rng.choice(_LAST)}{rng.randrange(1, 1000)}@example.com"
            if e not in self.emails:
                self.emails.add(e)
                return e

    def _device(self, country: str, kind: str | None = None) -> tuple:
        rng = self.rng
        if kind is None:
            kind = rng.choices(("web", "mobile", "tv"), (40, 40, 20))[0]
        if kind == "mobile":
            did = "%08x-%04x-%04x-%04x-%012x" % (
                rng.getrandbits(32), rng.getrandbits(16), rng.getrandbits(16),
                rng.getrandbits(16), rng.getrandbits(48))
        elif kind == "tv":
            did = f"tv-{rng.getrandbits(48):012x}"
        else:
            did = f"web-{rng.getrandbits(64):016x}"
        ua = rng.choice(_UA[kind])
        return (did, self.ips.any(country, rng), ua, kind)

    def _new_user(self, country: str | None = None, uid: str | None = None) -> _User:
        rng = self.rng
        if country is None:
            country = rng.choices(_HOME_COUNTRIES, _HOME_WEIGHTS)[0]
        zones = _COUNTRIES[country][0]
        tz, _, juris = rng.choices(zones, [w for _, w, _ in zones])[0]
        if uid is None:
            uid = self.id_pool[self.reserved_next]
            self.reserved_next += 1
        email = self._email()
        ndev = rng.choices((1, 2, 3), (45, 35, 20))[0]
        devices = [self._device(country) for _ in range(ndev)]
        if rng.random() < 0.005:
            # a homegrown client that leaks its owner's e-mail into the user agent
            did, ip, _, kind = devices[0]
            devices[0] = (did, ip, f"StreamFlixSDK/2.1.3 (Linux; Android 11; account={email})", kind)
        return _User(uid, email, country, self.zone_idx(tz), devices, juris)

    # ---------------------------------------------------------------------------------- consent

    def _consent_row(self, user: _User, purpose: str, status: str, rec: int, exp: int | None,
                     eid: str | None = None, source: str | None = None) -> tuple:
        rng = self.rng
        if eid is None:
            eid = self.ids.next("ce", "ce_")
        if source is None:
            source = rng.choices(_CONSENT_SOURCES, _CONSENT_SOURCE_W)[0]
        tc = None
        if source == "cmp" and user.juris in ("EU", "UK"):
            deciseconds = int(self.clock.base_dt.timestamp()) * 10 + rec // 100
            tc = _tc_string(rng, purpose, status == "granted", deciseconds)
        notice = _NOTICE_VERSIONS[min(len(_NOTICE_VERSIONS) - 1,
                                      max(0, 3 + (rec - self.clock.w0) // (180 * DAY)))]
        return (eid, user.uid, purpose, status, rec, exp, source, notice, user.juris, tc)

    def _background_consent(self, user: _User) -> list[tuple]:
        rng = self.rng
        c = self.clock
        rows: list[tuple] = []
        if rng.random() < 0.18:
            return rows
        span = self.days * DAY
        for purpose, p_has, p_grant in (
            ("personalization", 0.9, 0.85), ("analytics", 0.8, 0.7),
            ("advertising", 0.6, 0.45), ("marketing_email", 0.5, 0.4),
        ):
            if rng.random() >= p_has:
                continue
            rec = c.w0 - rng.randrange(1, 500 * 86400) * SEC
            status = "granted" if rng.random() < p_grant else "denied"
            exp = None
            if status == "granted":
                r = rng.random()
                if r < 0.25:
                    exp = rec + 395 * DAY
                elif r < 0.30:
                    exp = c.w0 + rng.randrange(span // SEC) * SEC  # lapses inside the window
            rows.append(self._consent_row(user, purpose, status, rec, exp))
            cur = status
            if rng.random() < 0.06:
                t1 = c.w0 + rng.randrange(span // SEC) * SEC
                if cur == "granted":
                    new = "withdrawn" if rng.random() < 0.8 else "denied"
                    rows.append(self._consent_row(user, purpose, new, t1, None))
                    if rng.random() < 0.3:
                        t2 = t1 + rng.randrange(3600, 2 * 86400) * SEC
                        if t2 < c.w1:
                            rows.append(self._consent_row(user, purpose, "granted", t2, None))
                else:
                    e2 = t1 + 395 * DAY if rng.random() < 0.5 else None
                    rows.append(self._consent_row(user, purpose, "granted", t1, e2))
            if purpose != "marketing_email" and rng.random() < 0.02:
                # a CMP wrote two choices in the same second; the larger event_id wins
                t3 = c.w0 + rng.randrange(span // SEC) * SEC
                lo, hi = self.ids.pair_sorted("ce", "ce_")
                winner = "granted" if rng.random() < 0.5 else "denied"
                loser = "denied" if winner == "granted" else "granted"
                rows.append(self._consent_row(user, purpose, loser, t3, None, lo, "cmp"))
                rows.append(self._consent_row(user, purpose, winner, t3, None, hi, "cmp"))
        return rows

    @staticmethod
    def _intervals(rows: list[tuple]) -> dict[str, tuple]:
        """Valid-consent intervals [start, end) per access purpose (contract semantics)."""
        out: dict[str, tuple] = {}
        by_p: dict[str, list[tuple]] = {}
        for r in rows:
            if r[2] in CONSENT_PURPOSES:
                by_p.setdefault(r[2], []).append((r[4], r[0], r[3], r[5]))
        for p, lst in by_p.items():
            lst.sort()
            iv = []
            for i, (rec, _eid, st, exp) in enumerate(lst):
                if st != "granted":
                    continue
                end = lst[i + 1][0] if i + 1 < len(lst) else 1 << 62
                if exp is not None:
                    end = min(end, exp)
                if end > rec:
                    iv.append((rec, end))
            if iv:
                out[p] = tuple(iv)
        return out

    # ---------------------------------------------------------------------------------- main

    def run(self) -> GenerationStats:
        L = self.landing
        for sub in ("access", "audit", "directory", "dsar"):
            (L / sub).mkdir(parents=True, exist_ok=True)
        self._clean()
        self._make_ids()
        self._open_consent_db()
        self._make_background_users()
        self._make_staff()
        self.plant_events: list[dict] = []
        self.plant_consent: dict[tuple[str, str], list[tuple]] = {}
        self._plan_access_plants()
        self._finish_access_ground_truth()
        self._close_consent_db()
        audit_count = self._write_audit()
        access_count = self._stream_access()
        self._write_directory()
        self._write_dsar()
        self._write_ground_truth()
        inc = {r: 0 for r in RULE_IDS}
        for r, _ in self.gt_incidents:
            inc[r] += 1
        near = {r: 0 for r in RULE_IDS}
        for n in self.gt_near:
            near[n["rule_id"]] += 1
        return GenerationStats(
            access_events=access_count,
            audit_events=audit_count,
            consent_events=self.consent_count,
            staff=len(self.staff),
            incidents=inc,
            near_misses=near,
            bad_lines=len(self.gt_quarantine),
            duplicates=len(self.gt_duplicates),
            files=sorted(self.files),
        )

    def _clean(self) -> None:
        L = self.landing
        for sub, prefix in (("access", "access-"), ("audit", "audit-")):
            for p in sorted((L / sub).iterdir()):
                if p.is_file() and p.name.startswith(prefix) and (
                    p.name.endswith(".jsonl") or p.name.endswith(".jsonl.gz")
                ):
                    p.unlink()
        for p in (L / "directory" / "staff.csv", L / "consent.db", L / "dsar" / "requests.jsonl",
                  L / "ground_truth.jsonl"):
            if p.exists():
                p.unlink()

    # ---------------------------------------------------------------------------------- consent db

    def _open_consent_db(self) -> None:
        path = self.landing / "consent.db"
        self.db = sqlite3.connect(path)
        self.db.execute(
            "CREATE TABLE consent_events (event_id TEXT PRIMARY KEY, user_id TEXT NOT NULL, "
            "purpose TEXT, status TEXT, recorded_at TEXT, expires_at TEXT, source TEXT, "
            "notice_version TEXT, jurisdiction TEXT, tc_string TEXT)"
        )
        self.consent_buf: list[tuple] = []
        self.consent_count = 0
        self.files.append("consent.db")

    def _add_consent_rows(self, rows: list[tuple]) -> None:
        c = self.clock
        for r in rows:
            self.consent_buf.append(
                (r[0], r[1], r[2], r[3], c.iso_z(r[4]), None if r[5] is None else c.iso_z(r[5]),
                 r[6], r[7], r[8], r[9])
            )
        self.consent_count += len(rows)
        if len(self.consent_buf) >= 20000:
            self._flush_consent()

    def _flush_consent(self) -> None:
        if self.consent_buf:
            self.db.executemany(
                "INSERT INTO consent_events VALUES (?,?,?,?,?,?,?,?,?,?)", self.consent_buf
            )
            self.consent_buf.clear()

    def _close_consent_db(self) -> None:
        self._flush_consent()
        self.db.execute("CREATE INDEX ix_consent_user_purpose ON consent_events (user_id, purpose)")
        self.db.commit()
        self.db.close()

    # ---------------------------------------------------------------------------------- background users

    def _make_background_users(self) -> None:
        rng = self.rng
        n = self.n_users
        self.u_id: list[str] = []
        self.u_email: list[str] = []
        self.u_country: list[str] = []
        self.u_zone: list[int] = []
        self.u_dev: list[tuple] = []
        self.u_act: list[float] = []
        self.u_cons: list = []
        self.u_trip: dict[int, tuple] = {}
        for i in range(n):
            user = self._new_user(uid=self.id_pool[i])
            self.u_id.append(user.uid)
            self.u_email.append(user.email)
            self.u_country.append(user.country)
            self.u_zone.append(user.zone)
            self.u_dev.append(tuple(user.devices))
            self.u_act.append(rng.lognormvariate(0.0, 0.6) / 1.197)
            rows = self._background_consent(user)
            self._add_consent_rows(rows)
            iv = self._intervals(rows)
            self.u_cons.append(iv if iv else None)
            if self.days >= 2 and rng.random() < 0.02:
                a = rng.randrange(self.days)
                b = min(self.days - 1, a + rng.randrange(3))
                dest = rng.choices(_HOME_COUNTRIES, _HOME_WEIGHTS)[0]
                if dest != user.country:
                    tz = _COUNTRIES[dest][0][0][0]
                    self.u_trip[i] = (a, b, dest, self.zone_idx(tz), self.ips.any(dest, rng))

    # ---------------------------------------------------------------------------------- staff

    def _make_staff(self) -> None:
        rng = self.rng
        s = self.start
        n_svc = 3
        n_emp = self.n_staff - n_svc
        shares = (("support_agent", 0.38), ("privacy_officer", 0.11), ("data_analyst", 0.19),
                  ("admin", 0.11), ("engineer", 0.21))
        mins = {"support_agent": 5, "privacy_officer": 2, "data_analyst": 3, "admin": 2, "engineer": 1}
        counts = {r: max(mins[r], int(round(n_emp * f))) for r, f in shares}
        while sum(counts.values()) > n_emp:
            counts["support_agent" if counts["support_agent"] > 5 else "engineer"] -= 1
        while sum(counts.values()) < n_emp:
            counts["support_agent"] += 1
        roles = [r for r, _ in shares for _ in range(counts[r])]
        rng.shuffle(roles)
        depts = {"support_agent": "Customer Support", "privacy_officer": "Privacy Office",
                 "data_analyst": "Data & Analytics", "admin": "IT Operations",
                 "engineer": "Engineering"}
        staff = []
        for i, role in enumerate(roles, start=1):
            frm = s - timedelta(days=rng.randrange(40, 3000))
            tz = rng.choices(("Europe/Berlin", "Europe/Dublin", "America/New_York"), (6, 2, 2))[0]
            staff.append({"actor_id": f"emp_{i:04d}", "role": role, "department": depts[role],
                          "from": frm, "to": None, "zone": self.zone_idx(tz),
                          "ip": self.ips.any("CORP", rng, 0.1), "kind": "regular"})
        for name in ("svc_etl_loader", "svc_backup_runner", "svc_recs_trainer"):
            staff.append({"actor_id": name, "role": "engineer", "department": "Platform",
                          "from": s - timedelta(days=rng.randrange(300, 1500)), "to": None,
                          "zone": self.zone_idx("Europe/Berlin"),
                          "ip": self.ips.v4("CORP"), "kind": "service"})

        def pick(role: str) -> dict:
            cands = [a for a in staff if a["role"] == role and a["kind"] == "regular"]
            return cands[rng.randrange(len(cands))]

        # special employment histories
        lb1 = pick("support_agent")
        lb1["kind"] = "leaver_before"
        lb1["to"] = s - timedelta(days=rng.randrange(10, 60))
        lb2 = pick("data_analyst")
        lb2["kind"] = "leaver_before"
        lb2["to"] = s - timedelta(days=rng.randrange(60, 200))
        li = pick("support_agent")
        li["kind"] = "leaver_in"
        self.leaver_day = (self.days - 1) // 2
        li["to"] = s + timedelta(days=self.leaver_day)
        jn = pick("support_agent")
        jn["kind"] = "joiner"
        self.joiner_day = self.days // 2
        jn["from"] = s + timedelta(days=self.joiner_day)
        for a in staff:
            if a["kind"] == "regular" and rng.random() < 0.04:
                a["to"] = s - timedelta(days=rng.randrange(200, 900))  # long gone
                a["kind"] = "old_leaver"
        self.staff = staff
        self.staff_by_id = {a["actor_id"]: a for a in staff}
        self.directory = {a["actor_id"]: (a["role"], a["from"], a["to"]) for a in staff}

    def _write_directory(self) -> None:
        p = self.landing / "directory" / "staff.csv"
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(["actor_id", "role", "department", "employed_from", "employed_to"])
        for a in sorted(self.staff, key=lambda a: a["actor_id"]):
            w.writerow([a["actor_id"], a["role"], a["department"], a["from"].isoformat(),
                        "" if a["to"] is None else a["to"].isoformat()])
        p.write_text(buf.getvalue(), encoding="utf-8")
        self.files.append(self.rel(p))

    # ---------------------------------------------------------------------------------- access plants

    def _session(self, user: _User, dev: int = 0, ip: str | None = None,
                 country: str | None = None, z: int | None = None, ms: bool | None = None,
                 token: bool = True) -> dict:
        rng = self.rng
        did, dip, ua, _ = user.devices[dev % len(user.devices)]
        if z is None:
            z = user.zone if rng.random() < 0.5 else -1
        if ms is None:
            ms = rng.random() < 0.25
        return {
            "user": user, "device_id": did, "client_ip": ip or dip,
            "country": country or user.country, "user_agent": ua,
            "session_id": self.ids.next("se", "s_"),
            "auth_token_id": self.ids.next("tk", "tok_", 64) if token else None,
            "_z": z, "_ms": ms,
        }

    def _pe(self, t: int, sess: dict, action: str, status: int, *, scenario: str,
            token: bool = True, purpose: str | None = "__none__", ip: str | None = None,
            country: str | None = "__same__", z: int | None = None, email: bool = False,
            user_id: str | None = "__same__", extra: dict | None = None,
            ms_value: int | None = None) -> dict:
        """Create one planted access event."""
        rng = self.rng
        user = sess.get("user")
        ev: dict = {"event_id": self.ids.next("ev", "ev_")}
        msf = sess["_ms"]
        if msf:
            t = t + (rng.randrange(1000) if ms_value is None else ms_value)
        ev["_t"] = t
        ev["_z"] = sess["_z"] if z is None else z
        ev["_ms"] = msf
        ev["_scenario"] = scenario
        uid = (user.uid if user is not None else None) if user_id == "__same__" else user_id
        ev["user_id"] = uid
        ev["session_id"] = sess["session_id"]
        if sess.get("device_id"):
            ev["device_id"] = sess["device_id"]
        ev["client_ip"] = ip or sess["client_ip"]
        if email and user is not None and uid == user.uid:
            ev["email"] = user.email
        ev["country"] = sess["country"] if country == "__same__" else country
        ev["user_agent"] = sess["user_agent"]
        ev["action"] = action
        ev["status"] = status
        if action in ("play", "stop", "download"):
            ev["content_id"] = f"ct_{rng.randrange(20000):05d}"
            ev["bytes"] = rng.randrange(10**6, 2 * 10**9)
        if token and sess.get("auth_token_id") and status < 400:
            ev["auth_token_id"] = sess["auth_token_id"]
        if purpose != "__none__":
            ev["purpose"] = purpose
        if extra:
            ev.update(extra)
        self.plant_events.append(ev)
        return ev

    def _ids_of(self, evs: list[dict]) -> list[str]:
        return [e["event_id"] for e in evs]

    def _near(self, rule: str, evs: list, note: str) -> None:
        ids = [e if isinstance(e, str) else e.get("event_id") or e.get("audit_id") for e in evs]
        self.gt_near.append({"kind": "near_miss", "rule_id": rule, "event_ids": ids, "note": note})

    def _clean_session(self, user: _User, t: int, n: int = 4, purpose_ok: str | None = None,
                       sess: dict | None = None, scenario: str = "cover") -> tuple[list[dict], int]:
        """A short, rule-clean session for a reserved user; returns events and end time."""
        rng = self.rng
        sess = sess or self._session(user)
        out = [self._pe(t, sess, "login", 200, scenario=scenario, email=rng.random() < 0.3)]
        for _ in range(n - 1):
            t += rng.randrange(20, 300) * SEC
            act = rng.choice(("browse", "search", "play", "api"))
            purpose = None
            if purpose_ok and act in ("play", "browse", "api"):
                purpose = purpose_ok
            out.append(self._pe(t, sess, act, 200, scenario=scenario, purpose=purpose))
        return out, t

    def _plan_access_plants(self) -> None:
        rng = self.rng
        c = self.clock
        k, m = self.k, self.m

        def fail_status() -> int:
            return 401 if rng.random() < 0.75 else 403

        # ---- failed_login_burst ---------------------------------------------------------------
        for i in range(max(1, k - 2)):
            # one user, 5-7 failures from 1-2 IPs, then the right password
            u = self._new_user()
            t = self.plant_time()
            s1 = self._session(u, token=False)
            ips = [s1["client_ip"]] if i % 2 == 1 else [s1["client_ip"], self.ips.v4(u.country)]
            evs = []
            n = rng.randint(5, 7)
            for j in range(n):
                evs.append(self._pe(t, s1, "login", fail_status(), scenario="user_burst",
                                    ip=ips[j % len(ips)], email=rng.random() < 0.5))
                t += rng.randrange(20, 80) * SEC
            self.expect.append(("failed_login_burst", self._ids_of(evs)))
            s2 = self._session(u)
            self._clean_session(u, t + rng.randrange(60, 300) * SEC, 3, sess=s2)
        for i in range(max(1, k - 2)):
            # credential stuffing from one IP against many accounts
            country = _ATTACK_COUNTRIES[rng.randrange(len(_ATTACK_COUNTRIES))]
            ip = self.ips.v4(country)
            t = self.plant_time()
            sess = {"user": None, "device_id": None, "client_ip": ip, "country": country,
                    "user_agent": rng.choice(_UA_ATTACK), "session_id": self.ids.next("se", "s_"),
                    "auth_token_id": None, "_z": -1, "_ms": rng.random() < 0.5}
            targets = rng.sample(range(self.n_users), min(self.n_users // 2, rng.randint(5, 8)))
            names: list[str | None] = [self.u_id[x] for x in targets]
            names += [None, None, f"admin{rng.randrange(100)}",
                      f"{rng.choice(_FIRST)}.{rng.choice(_LAST)}{rng.randrange(100, 999)}@example.com"]
            rng.shuffle(names)
            evs = []
            for name in names:
                evs.append(self._pe(t, sess, "login", fail_status(), scenario="credential_stuffing",
                                    user_id=name))
                t += rng.randrange(5, 45) * SEC
            self.expect.append(("failed_login_burst", self._ids_of(evs)))
        if self.days >= 2:
            # burst crossing midnight UTC: 23:58:00 .. 00:03:00
            u = self._new_user()
            b = 1 + rng.randrange(self.days - 1)
            t0 = c.w0 + b * DAY - 2 * MIN
            sess = self._session(u, token=False, ms=False)
            offs = [0, 55, 110, 170, 245, 300]
            evs = [self._pe(t0 + o * SEC, sess, "login", fail_status(), scenario="midnight_burst")
                   for o in offs]
            self.expect.append(("failed_login_burst", self._ids_of(evs)))
        # exactly 10:00 span (boundary, fires)
        u = self._new_user()
        t0 = self.plant_time()
        sess = self._session(u, token=False, ms=False)
        evs = []
        for j, o in enumerate((0, 150, 300, 450, 600)):
            evs.append(self._pe(t0 + o * SEC, sess, "login", fail_status(), scenario="burst_10min_exact",
                                z=-1 if j == 0 else u.zone))
        self.expect.append(("failed_login_burst", self._ids_of(evs)))
        # burst from a blocked country (also blocked_country for each event)
        u = self._new_user("KP")
        t0 = self.plant_time()
        sess = self._session(u, token=False)
        evs = []
        for j in range(5):
            evs.append(self._pe(t0, sess, "login", fail_status(), scenario="burst_blocked_country"))
            t0 += rng.randrange(15, 50) * SEC
        self.expect.append(("failed_login_burst", self._ids_of(evs)))
        for e in evs:
            self.expect.append(("blocked_country", [e["event_id"]]))
        # near misses
        for _ in range(m):
            u = self._new_user()
            t = self.plant_time()
            sess = self._session(u, token=False)
            evs = []
            for j in range(4):
                evs.append(self._pe(t, sess, "login", fail_status(), scenario="nm_4_failures"))
                t += rng.randrange(30, 120) * SEC
            self._near("failed_login_burst", evs, "4 failed logins within 10 minutes (threshold - 1)")
            self._clean_session(u, t + 5 * MIN, 3)
            u = self._new_user()
            t = self.plant_time()
            sess = self._session(u, token=False, ms=False)
            evs = [self._pe(t + o * SEC, sess, "login", fail_status(), scenario="nm_burst_601s")
                   for o in (0, 120, 300, 480, 601)]
            self._near("failed_login_burst", evs, "5 failed logins spanning 10 minutes + 1 second")

        # ---- blocked_country -------------------------------------------------------------------
        variants = ("IR", "SY", "CU")
        for i in range(max(1, k - 1)):
            country = variants[i % 3]
            u = self._new_user(country)
            t = self.plant_time()
            sess = self._session(u)
            if i % 3 == 0:
                evs = [self._pe(t, sess, "login", 200, scenario="blocked_country", email=True),
                       self._pe(t + rng.randrange(30, 200) * SEC, sess, "browse", 200,
                                scenario="blocked_country")]
            elif i % 3 == 1:
                evs = [self._pe(t, sess, "api", 200, scenario="blocked_country")]
            else:
                evs = [self._pe(t, sess, "play", 206, scenario="blocked_country")]
            for e in evs:
                self.expect.append(("blocked_country", [e["event_id"]]))
        for _ in range(m):
            country = rng.choice(BLOCKED_COUNTRIES)
            sess = {"user": None, "device_id": None, "client_ip": self.ips.v4(country),
                    "country": country, "user_agent": rng.choice(_UA["web"]),
                    "session_id": self.ids.next("se", "s_"), "auth_token_id": None,
                    "_z": -1, "_ms": False}
            t = self.plant_time()
            e1 = self._pe(t, sess, "browse", 200, scenario="nm_anonymous_blocked", user_id=None)
            e2 = self._pe(t + 40 * SEC, sess, "search", 200, scenario="nm_anonymous_blocked",
                          user_id=None)
            self._near("blocked_country", [e1, e2], "anonymous (user_id null) traffic from a blocked country")

        # ---- token_reuse -------------------------------------------------------------------------
        for i in range(k):
            u = self._new_user()
            sess = self._session(u)
            variant = i % 3
            t = self.plant_time(span=3 * HOUR)
            evs = [self._pe(t, sess, "login", 200, scenario="token_reuse")]
            if variant == 2:
                # long legitimate use first: only the later part is evidence
                for _ in range(6):
                    t += rng.randrange(10, 25) * MIN
                    evs.append(self._pe(t, sess, rng.choice(("browse", "api", "search")), 200,
                                        scenario="token_reuse"))
            n_ips = 4 if variant == 1 else 3
            ips = [sess["client_ip"]] + [self.ips.any(u.country, rng) for _ in range(n_ips - 1)]
            span = rng.randrange(20, 50) * MIN
            t1 = t + rng.randrange(2, 8) * MIN
            for j, ip in enumerate(ips[1:], start=1):
                tt = t1 + span * j // (n_ips - 1)
                evs.append(self._pe(tt, sess, "api", 200, scenario="token_reuse", ip=ip))
                evs.append(self._pe(tt + rng.randrange(5, 60) * SEC, sess, "play", 200,
                                    scenario="token_reuse", ip=ip))
            self.expect.append(("token_reuse", self._ids_of(evs[-2:])))
        for _ in range(m):
            u = self._new_user()
            sess = self._session(u, ms=False)
            t = self.plant_time(span=2 * HOUR)
            e0 = self._pe(t - 2 * MIN, sess, "login", 200, scenario="nm_token_3ips_61min")
            e1 = self._pe(t, sess, "api", 200, scenario="nm_token_3ips_61min")
            e2 = self._pe(t + 25 * MIN, sess, "api", 200, scenario="nm_token_3ips_61min",
                          ip=self.ips.v4(u.country))
            e3 = self._pe(t + 60 * MIN + 1 * SEC, sess, "api", 200, scenario="nm_token_3ips_61min",
                          ip=self.ips.v4(u.country))
            self._near("token_reuse", [e0, e1, e2, e3],
                       "token from 3 IPs spanning 60 minutes + 1 second")
            u = self._new_user()
            sess = self._session(u)
            t = self.plant_time(span=HOUR)
            evs, t = self._clean_session(u, t, 4, sess=sess, scenario="nm_token_2ips")
            ip2 = self.ips.v6(u.country)
            for _ in range(3):
                t += rng.randrange(30, 200) * SEC
                evs.append(self._pe(t, sess, "browse", 200, scenario="nm_token_2ips", ip=ip2))
            self._near("token_reuse", evs, "token from 2 IPs (wifi -> mobile)")

        # ---- impossible_travel -------------------------------------------------------------------
        for i in range(k):
            u = self._new_user()
            t = self.plant_time(span=3 * HOUR)
            evs, t = self._clean_session(u, t, 3, scenario="impossible_travel")
            other = rng.choice([x for x in _HOME_COUNTRIES if x != u.country])
            other_tz = self.zone_idx(_COUNTRIES[other][0][0][0])
            s2 = self._session(u, dev=1, ip=self.ips.any(other, rng), country=other,
                               z=other_tz if i % 3 == 2 else None)
            t2 = t + rng.randrange(10, 50) * MIN
            b1 = self._pe(t2, s2, "login", 200, scenario="impossible_travel")
            self.expect.append(("impossible_travel", [evs[-1]["event_id"], b1["event_id"]]))
            if i % 3 == 1:
                # chain A -> B -> A
                s3 = self._session(u, dev=0)
                t3 = t2 + rng.randrange(10, 40) * MIN
                a2 = self._pe(t3, s3, "login", 200, scenario="impossible_travel")
                self.expect.append(("impossible_travel", [b1["event_id"], a2["event_id"]]))
            else:
                self._pe(t2 + rng.randrange(30, 300) * SEC, s2, "browse", 200,
                         scenario="impossible_travel")
        for _ in range(m):
            u = self._new_user()
            t = self.plant_time(span=2 * HOUR)
            sess = self._session(u, ms=False)
            a = self._pe(t, sess, "browse", 200, scenario="nm_travel_60min")
            other = rng.choice([x for x in _HOME_COUNTRIES if x != u.country])
            s2 = self._session(u, dev=1, ip=self.ips.any(other, rng), country=other, ms=False)
            b = self._pe(t + 60 * MIN, s2, "login", 200, scenario="nm_travel_60min")
            self._pe(t + 70 * MIN, s2, "browse", 200, scenario="nm_travel_60min")
            self._near("impossible_travel", [a, b], "countries change exactly 60 minutes apart")
            u = self._new_user()
            t = self.plant_time(span=2 * HOUR)
            evs, t = self._clean_session(u, t, 2, scenario="nm_travel_failed")
            other = rng.choice([x for x in _HOME_COUNTRIES if x != u.country])
            s2 = self._session(u, dev=1, ip=self.ips.any(other, rng), country=other, token=False)
            f = self._pe(t + 10 * MIN, s2, "login", 401, scenario="nm_travel_failed")
            back = self._pe(t + 30 * MIN, self._session(u), "login", 200, scenario="nm_travel_failed")
            self._near("impossible_travel", [evs[-1], f, back],
                       "failed (401) login abroad 10 minutes after a success at home")

        # ---- consent_violation ---------------------------------------------------------------------
        def consent(user: _User, purpose: str, status: str, rec: int, exp: int | None = None,
                    eid: str | None = None, source: str | None = None) -> tuple:
            row = self._consent_row(user, purpose, status, rec, exp, eid, source)
            self._add_consent_rows([row])
            self.plant_consent.setdefault((user.uid, purpose), []).append(
                (row[4], row[0], row[3], row[5]))
            return row

        for i in range(max(k, 4)):
            variant = i % 4
            u = self._new_user()
            if variant == 0:
                # uses personalization after withdrawing it
                consent(u, "personalization", "granted", c.w0 - rng.randrange(30, 300) * DAY)
                t = self.plant_time(span=6 * HOUR, margin=5 * HOUR)
                self._clean_session(u, t - 4 * HOUR, 3, purpose_ok="personalization",
                                    scenario="consent_after_withdrawal")
                consent(u, "personalization", "withdrawn", t - rng.randrange(30, 120) * MIN)
                sess = self._session(u)
                e1 = self._pe(t, sess, "play", 200, scenario="consent_after_withdrawal",
                              purpose="personalization")
                self.expect.append(("consent_violation", [e1["event_id"]]))
            elif variant == 1:
                # analytics consent lapses at expires_at (ts == expires_at is a violation)
                exp = self.plant_time(span=2 * HOUR, margin=4 * HOUR)
                consent(u, "analytics", "granted", exp - 395 * DAY, exp)
                sess = self._session(u, ms=False)
                self._pe(exp - 2 * HOUR, sess, "browse", 200, scenario="consent_expired",
                         purpose="analytics")
                e1 = self._pe(exp, sess, "browse", 200, scenario="consent_expired",
                              purpose="analytics", z=u.zone)
                e2 = self._pe(exp + rng.randrange(5, 40) * MIN, sess, "search", 200,
                              scenario="consent_expired", purpose="analytics")
                self.expect.append(("consent_violation", [e1["event_id"]]))
                self.expect.append(("consent_violation", [e2["event_id"]]))
            elif variant == 2:
                # no consent rows at all
                t = self.plant_time()
                sess = self._session(u)
                e1 = self._pe(t, sess, "api", 200, scenario="consent_no_rows", purpose="advertising")
                self.expect.append(("consent_violation", [e1["event_id"]]))
            else:
                # tie on recorded_at: the larger event_id is the denial
                consent(u, "advertising", "granted", c.w0 - rng.randrange(30, 300) * DAY)
                t = self.plant_time()
                lo, hi = self.ids.pair_sorted("ce", "ce_")
                tie = t - rng.randrange(5, 30) * MIN
                consent(u, "advertising", "granted", tie, None, lo, "cmp")
                consent(u, "advertising", "denied", tie, None, hi, "cmp")
                sess = self._session(u)
                e1 = self._pe(t, sess, "api", 200, scenario="consent_tie_denied", purpose="advertising")
                self.expect.append(("consent_violation", [e1["event_id"]]))
        for _ in range(m):
            u = self._new_user()
            t = self.plant_time()
            consent(u, "personalization", "granted", t - SEC)
            sess = self._session(u, ms=False)
            e = self._pe(t, sess, "play", 200, scenario="nm_consent_1s", purpose="personalization")
            self._near("consent_violation", [e], "consent granted one second before the event")
            u = self._new_user()
            t = self.plant_time()
            consent(u, "analytics", "granted", t)
            sess = self._session(u, ms=False)
            e = self._pe(t, sess, "browse", 200, scenario="nm_consent_same_instant",
                         purpose="analytics", z=u.zone)
            self._near("consent_violation", [e], "consent recorded_at equals the event ts")
            u = self._new_user()
            exp = self.plant_time()
            consent(u, "advertising", "granted", exp - 200 * DAY, exp)
            sess = self._session(u, ms=False)
            e = self._pe(exp - SEC, sess, "api", 200, scenario="nm_consent_before_expiry",
                         purpose="advertising")
            self._near("consent_violation", [e], "event one second before expires_at")
            u = self._new_user()
            t = self.plant_time()
            lo, hi = self.ids.pair_sorted("ce", "ce_")
            tie = t - rng.randrange(2, 20) * MIN
            consent(u, "personalization", "denied", tie, None, lo, "cmp")
            consent(u, "personalization", "granted", tie, None, hi, "cmp")
            sess = self._session(u)
            e = self._pe(t, sess, "play", 200, scenario="nm_consent_tie_granted",
                         purpose="personalization")
            self._near("consent_violation", [e], "tie on recorded_at, the larger event_id is the grant")

    def _finish_access_ground_truth(self) -> None:
        found = detect_access_incidents(self.plant_events, self.plant_consent)
        self._check_expectations(found, "access")
        self.gt_incidents.extend(found)

    def _check_expectations(self, found: list[tuple[str, frozenset]], source: str) -> None:
        rules = ACCESS_RULES if source == "access" else AUDIT_RULES
        by_rule: dict[str, set[str]] = {}
        for r, ids in found:
            by_rule.setdefault(r, set()).update(ids)
        for rule, ids in self.expect:
            if rule in rules and not set(ids) <= by_rule.get(rule, set()):
                raise AssertionError(f"planted {rule} {ids} did not fire")
        for n in self.gt_near:
            if n["rule_id"] in rules and set(n["event_ids"]) & by_rule.get(n["rule_id"], set()):
                raise AssertionError(f"near miss {n} fired")

    # ---------------------------------------------------------------------------------- audit

    def _ticket(self, role: str) -> str:
        rng = self.rng
        if role in ("support_agent", "admin"):
            return f"SUP-{rng.randrange(10000, 99999)}"
        return f"PRIV-{rng.randrange(100, 9999)}"

    def _ae(self, t: int, actor: str, action: str, outcome: str = "success", *, scenario: str,
            claimed: str | None = None, ticket: object = "__auto__", records: object = "__auto__",
            z: int | None = None, ms: bool | None = None, ip: str | None = None) -> dict:
        """Create one audit event (planted or background)."""
        rng = self.rng
        a = self.staff_by_id.get(actor)
        role = a["role"] if a else "support_agent"
        ev: dict = {"audit_id": self.ids.next("au", "aud_", 40), "_t": t, "_scenario": scenario}
        if z is None:
            z = (a["zone"] if a else self.zone_idx("Europe/Berlin")) if rng.random() < 0.4 else -1
        if ms is None:
            ms = rng.random() < 0.3
        if ms and t % SEC == 0 and scenario == "background":
            t += rng.randrange(1000)
            ev["_t"] = t
        ev["_z"], ev["_ms"] = z, ms
        ev["actor_id"] = actor
        ev["actor_role"] = claimed or role
        ev["action"] = action
        if action in PII_ACTIONS or action == "update_consent":
            ev["subject_user_id"] = self.u_id[rng.randrange(self.n_users)]
        if records == "__auto__":
            if action == "export_user_data":
                ev["records"] = rng.randint(1, 3)
            elif action == "query_pii":
                ev["records"] = rng.randint(10, 950)
            elif action in PII_ACTIONS and rng.random() < 0.6:
                ev["records"] = 1
        elif records is not None:
            ev["records"] = records
        if ticket == "__auto__":
            if action in PII_ACTIONS or (action == "update_consent" and rng.random() < 0.7):
                ev["ticket_id"] = self._ticket(role)
            elif action == "grant_role":
                ev["ticket_id"] = f"ITSM-{rng.randrange(1000, 9999)}"
        elif ticket != "__absent__":
            ev["ticket_id"] = ticket
        ev["source_ip"] = ip or (a["ip"] if a else self.ips.v4("CORP"))
        ev["outcome"] = outcome
        return ev

    def _render_audit(self, ev: dict) -> str:
        out = {"audit_id": ev["audit_id"], "ts": self.clock.fmt(ev["_t"], ev["_z"], ev["_ms"])}
        for k in ("actor_id", "actor_role", "action", "subject_user_id", "records", "ticket_id",
                  "source_ip", "outcome"):
            if k in ev:
                out[k] = ev[k]
        for k, v in ev.items():
            if not k.startswith("_") and k not in out:
                out[k] = v
        return _json(out) + "\n"

    def _work_time(self, day: int | None = None) -> int:
        c = self.clock
        rng = self.rng
        if day is None:
            day = rng.randrange(self.days)
        return c.w0 + day * DAY + rng.randrange(7 * 3600, 19 * 3600) * SEC

    def _plan_audit_plants(self) -> list[dict]:
        rng = self.rng
        c = self.clock
        k, m = self.k, self.m
        regular = [a for a in self.staff if a["kind"] == "regular"]
        by_role: dict[str, list[dict]] = {}
        for a in regular:
            by_role.setdefault(a["role"], []).append(a)
        special = {a["kind"]: a for a in self.staff if a["kind"] in ("leaver_in", "joiner")}
        leavers_before = [a for a in self.staff if a["kind"] == "leaver_before"]
        deny_times: dict[str, list[tuple[int, int]]] = {}
        self.no_bg_deny: set[str] = set()
        rot: dict[str, int] = {}
        events: list[dict] = []

        def actor_of(role: str) -> dict:
            lst = by_role[role]
            i = rot.get(role, rng.randrange(len(lst)))
            rot[role] = i + 1
            return lst[i % len(lst)]

        def deny_slot(role: str, length: int) -> tuple[dict, int]:
            """An actor of ``role`` and a start time >= 3 h away from its other denials."""
            for _ in range(200):
                a = actor_of(role)
                t = self._work_time()
                t = min(t, c.w1 - length - HOUR)
                busy = deny_times.get(a["actor_id"], [])
                if all(t + length + 3 * HOUR < s or e + 3 * HOUR < t for s, e in busy):
                    deny_times.setdefault(a["actor_id"], []).append((t, t + length))
                    self.no_bg_deny.add(a["actor_id"])
                    return a, t
            raise RuntimeError("no free slot for a denial scenario")

        def add(ev: dict, rules: tuple[str, ...] = ()) -> dict:
            events.append(ev)
            for r in rules:
                self.expect.append((r, [ev["audit_id"]]))
            return ev

        # ---- role_not_permitted
        for i in range(max(k, 3)):
            v = i % 3
            if v == 0:
                a = actor_of("support_agent")
                add(self._ae(self._work_time(), a["actor_id"], "export_user_data",
                             scenario="claimed_privacy_officer", claimed="privacy_officer",
                             ticket=f"PRIV-{rng.randrange(100, 999)}", records=rng.randint(1, 3)),
                    ("role_not_permitted",))
            elif v == 1:
                a = actor_of("data_analyst")
                add(self._ae(self._work_time(), a["actor_id"], "view_watch_history",
                             scenario="analyst_views_history", ticket=self._ticket("support_agent")),
                    ("role_not_permitted",))
            else:
                a = actor_of("admin")
                add(self._ae(self._work_time(), a["actor_id"], "delete_user",
                             scenario="admin_deletes_user", ticket=self._ticket("admin")),
                    ("role_not_permitted",))
        # ---- missing_justification
        for i in range(max(k, 4)):
            ticket = (None, "__absent__", "", "   ")[i % 4]
            a = actor_of("support_agent")
            add(self._ae(self._work_time(), a["actor_id"],
                         rng.choice(("view_profile", "view_watch_history")),
                         scenario="missing_ticket", ticket=ticket),
                ("missing_justification",))
        # ---- bulk_export
        for i in range(max(k, 4)):
            v = i % 4
            if v == 0:
                a = actor_of("privacy_officer")
                add(self._ae(self._work_time(), a["actor_id"], "export_user_data",
                             scenario="bulk_export", records=rng.randrange(20000, 90000)),
                    ("bulk_export",))
            elif v == 1:
                a = actor_of("data_analyst")
                add(self._ae(self._work_time(), a["actor_id"], "query_pii",
                             scenario="bulk_query_at_threshold", records=BULK_RECORDS),
                    ("bulk_export",))
            elif v == 2:
                a = actor_of("data_analyst")
                add(self._ae(self._work_time(), a["actor_id"], "export_user_data",
                             scenario="bulk_export_no_ticket_wrong_role", ticket="__absent__",
                             records=rng.randrange(100000, 200000)),
                    ("bulk_export", "missing_justification", "role_not_permitted"))
            else:
                a, t = deny_slot("support_agent", 0)
                add(self._ae(t, a["actor_id"], "export_user_data", "denied",
                             scenario="bulk_export_denied", records=rng.randrange(2000, 9000)),
                    ("bulk_export",))
        # ---- access_after_offboarding
        li, jn = special["leaver_in"], special["joiner"]
        variants = [0, 3, 4]
        if self.leaver_day + 1 < self.days:
            variants.insert(1, 1)
        if self.joiner_day >= 1:
            variants.insert(2, 2)
        for i in range(max(k, len(variants))):
            v = variants[i % len(variants)]
            if v == 0:
                a = leavers_before[i % len(leavers_before)]
                action = "login" if a["role"] == "support_agent" else "query_pii"
                add(self._ae(self._work_time(), a["actor_id"], action,
                             scenario="leaver_still_active"), ("access_after_offboarding",))
            elif v == 1:
                t = c.w0 + (self.leaver_day + 1) * DAY + rng.randrange(60, 20 * 3600) * SEC
                add(self._ae(t, li["actor_id"], "view_profile", scenario="day_after_last_day"),
                    ("access_after_offboarding",))
            elif v == 2:
                t = c.w0 + (self.joiner_day - 1) * DAY + rng.randrange(8 * 3600, 86399) * SEC
                add(self._ae(t, jn["actor_id"], "login", scenario="before_first_day"),
                    ("access_after_offboarding",))
            elif v == 3:
                # contractor account that was never in the directory (denied: no role question)
                name = f"ext_{rng.choice(_FIRST)}.{rng.choice(_LAST)}{rng.randrange(10, 99)}"
                add(self._ae(self._work_time(), name, "login", "denied",
                             scenario="unknown_actor", claimed="support_agent"),
                    ("access_after_offboarding",))
            else:
                add(self._ae(self._work_time(), "svc_legacy_sync", "login", "error",
                             scenario="unknown_service_account", claimed="engineer"),
                    ("access_after_offboarding",))
        # ---- audit_tampering
        svc = [a for a in self.staff if a["kind"] == "service"]
        for i in range(max(k, 3)):
            v = i % 3
            if v == 0:
                a = actor_of("admin")
                add(self._ae(self._work_time(), a["actor_id"], "disable_audit_logging",
                             scenario="audit_logging_disabled"),
                    ("audit_tampering", "role_not_permitted"))
            elif v == 1:
                by_role["_service"] = svc
                a, t = deny_slot("_service", 0)
                add(self._ae(t, a["actor_id"], "disable_audit_logging", "denied",
                             scenario="audit_logging_disable_denied"), ("audit_tampering",))
            else:
                a = actor_of("privacy_officer")
                add(self._ae(self._work_time(), a["actor_id"], "disable_audit_logging", "error",
                             scenario="audit_logging_disable_error"), ("audit_tampering",))
        # ---- denied_attempts
        for i in range(k):
            v = i % 3
            role = ("support_agent", "data_analyst", "support_agent")[v]
            action = "export_user_data" if role == "support_agent" else "view_profile"
            offs = ((0, 12, 37), (0, 20, 50, 100), (0, 10, 30, 55, 80))[v]
            a, t = deny_slot(role, offs[-1] * MIN)
            evs = [add(self._ae(t + o * MIN + rng.randrange(0, 50) * SEC, a["actor_id"], action,
                                "denied", scenario="repeated_denials",
                                ticket="__absent__" if rng.random() < 0.5 else "__auto__"))
                   for o in offs]
            hits = evs[:3] if v == 1 else evs
            self.expect.append(("denied_attempts", [e["audit_id"] for e in hits]))
        # ---- near misses
        for _ in range(m):
            a = actor_of("support_agent")
            e = add(self._ae(self._work_time(), a["actor_id"], "view_profile", scenario="nm_ticket"))
            self._near("missing_justification", [e], "PII action with a ticket")
            a, t = deny_slot("support_agent", 0)
            e = add(self._ae(t, a["actor_id"], "view_watch_history", "denied",
                             scenario="nm_denied_no_ticket", ticket="__absent__"))
            self._near("missing_justification", [e], "denied PII action without ticket (needs success)")
            a = actor_of("privacy_officer")
            e = add(self._ae(self._work_time(), a["actor_id"], "export_user_data",
                             scenario="nm_records_999", records=BULK_RECORDS - 1))
            self._near("bulk_export", [e], "export with records 999 (threshold - 1)")
            t = c.w0 + self.leaver_day * DAY + DAY - SEC
            e = add(self._ae(t, li["actor_id"], "view_profile", scenario="nm_last_day",
                             z=self.zone_idx("Europe/Berlin"), ms=False))
            self._near("access_after_offboarding", [e],
                       "23:59:59Z on employed_to (inclusive); local time is already the next day")
            t = c.w0 + self.joiner_day * DAY
            e = add(self._ae(t, jn["actor_id"], "login", scenario="nm_first_day",
                             z=self.zone_idx("America/New_York"), ms=False))
            self._near("access_after_offboarding", [e],
                       "00:00:00Z on employed_from; local time is still the previous day")
            a = actor_of("privacy_officer")
            e = add(self._ae(self._work_time(), a["actor_id"], "export_user_data",
                             scenario="nm_claimed_role_differs", claimed="support_agent"))
            self._near("role_not_permitted", [e],
                       "claimed role differs but the directory role permits the action")
            a, t = deny_slot("data_analyst", 35 * MIN)
            e1 = add(self._ae(t, a["actor_id"], "export_user_data", "denied", scenario="nm_2_denials"))
            e2 = add(self._ae(t + 35 * MIN, a["actor_id"], "export_user_data", "denied",
                              scenario="nm_2_denials"))
            self._near("denied_attempts", [e1, e2], "2 denials within 60 minutes (threshold - 1)")
            a, t = deny_slot("support_agent", 61 * MIN)
            evs = [add(self._ae(t + o, a["actor_id"], "query_pii", "denied", scenario="nm_denials_61min",
                                ms=False))
                   for o in (0, 30 * MIN, 60 * MIN + SEC)]
            self._near("denied_attempts", evs, "3 denials spanning 60 minutes + 1 second")
        return events

    def _background_audit(self) -> list[dict]:
        rng = self.rng
        c = self.clock
        out: list[dict] = []
        role_actions = {
            "support_agent": (("view_profile", "view_watch_history", "update_consent"), (45, 35, 20)),
            "privacy_officer": (("view_profile", "export_user_data", "query_pii", "delete_user",
                                 "update_consent", "view_watch_history"), (20, 20, 20, 15, 15, 10)),
            "data_analyst": (("query_pii",), (1,)),
            "admin": (("grant_role", "view_profile"), (50, 50)),
            "engineer": ((), ()),
        }
        deny_actions = {
            "support_agent": ("export_user_data", "query_pii", "delete_user"),
            "data_analyst": ("view_profile", "export_user_data"),
            "admin": ("delete_user", "export_user_data"),
        }
        n_actions = {"support_agent": (8, 25), "privacy_officer": (3, 10), "data_analyst": (2, 8),
                     "admin": (2, 6), "engineer": (0, 0)}
        for d in range(self.days):
            day = self.start + timedelta(days=d)
            weekend = day.weekday() >= 5
            day0 = c.w0 + d * DAY
            for a in self.staff:
                if day < a["from"] or (a["to"] is not None and day > a["to"]):
                    continue
                aid, role = a["actor_id"], a["role"]
                end = day0 + DAY - SEC
                if a["kind"] == "service":
                    for _ in range(rng.randint(4, 12)):
                        t = day0 + rng.randrange(86400) * SEC
                        out.append(self._ae(t, aid, "login", scenario="background", z=-1))
                    continue
                p_active = 0.75 if role == "support_agent" else (0.3 if weekend else 0.85)
                if rng.random() > p_active:
                    continue
                z = a["zone"] if rng.random() < 0.4 else -1
                ms = rng.random() < 0.3
                claimed = role
                if role == "support_agent" and rng.random() < 0.1:
                    claimed = "support_tier2"
                t = day0 + rng.randrange(6 * 3600, 15 * 3600) * SEC
                out.append(self._ae(t, aid, "login", scenario="background", z=z, ms=ms,
                                    claimed=claimed))
                acts, weights = role_actions[role]
                lo, hi = n_actions[role]
                n = rng.randint(lo, hi) if hi else rng.randint(0, 2)
                deny_at = -1
                if (a["kind"] == "regular" and aid not in self.no_bg_deny and role in deny_actions
                        and rng.random() < 0.05):
                    deny_at = rng.randrange(max(1, n))
                for j in range(n):
                    t += rng.randrange(60, 25 * 60) * SEC
                    if t > end:
                        break
                    if not acts:
                        out.append(self._ae(t, aid, "login", scenario="background", z=z, ms=ms,
                                            claimed=claimed))
                        continue
                    if j == deny_at:
                        out.append(self._ae(t, aid, rng.choice(deny_actions[role]), "denied",
                                            scenario="background", z=z, ms=ms, claimed=claimed))
                        continue
                    action = rng.choices(acts, weights)[0]
                    outcome = "error" if rng.random() < 0.015 else "success"
                    out.append(self._ae(t, aid, action, outcome, scenario="background", z=z, ms=ms,
                                        claimed=claimed))
        return out

    def _write_audit(self) -> int:
        rng = self.rng
        c = self.clock
        plants = self._plan_audit_plants()
        background = self._background_audit()
        events = plants + background
        found = detect_audit_incidents(events, self.directory, c.base_day)
        self._check_expectations(found, "audit")
        plant_ids = {e["audit_id"] for e in plants}
        self.audit_times = {e["audit_id"]: e["_t"] for e in plants}
        self.audit_scen = {e["audit_id"]: e["_scenario"] for e in plants}
        for r, ids in found:
            if not ids <= plant_ids:
                raise AssertionError(f"background audit traffic triggered {r}: {sorted(ids)}")
        self.gt_incidents.extend(found)

        events.sort(key=lambda e: (e["_t"], e["audit_id"]))
        per_day: list[list[tuple[str, dict | None]]] = [[] for _ in range(self.days)]
        bg_pos: list[tuple[int, int]] = []
        for e in events:
            d = e["_t"] // DAY - 2
            if e["_scenario"] == "background" and e["action"] == "login" and e["outcome"] == "success":
                bg_pos.append((d, len(per_day[d])))
            per_day[d].append((self._render_audit(e), None))
        # schema drift on a few background events
        drift_targets = sorted(rng.sample(range(len(bg_pos)), min(len(bg_pos), 2 + self.k // 3)))
        for i in drift_targets:
            d, p = bg_pos[i]
            line, _ = per_day[d][p]
            new = line[:-2] + ',"tool":"admin-console/4.2.1"}\n'
            per_day[d][p] = (new, {"kind": "schema_drift", "fields": ["tool"]})
        # re-delivered duplicates (identical line later in the same or a later file)
        dup_sources = [bp for i, bp in enumerate(bg_pos) if i not in set(drift_targets)]
        n_dup = min(len(dup_sources), 1 + self.k // 3)
        for d, p in sorted(rng.sample(dup_sources, n_dup)):
            line, _ = per_day[d][p]
            aid = json.loads(line)["audit_id"]
            d2 = min(self.days - 1, d + rng.randrange(2))
            lo = p + 1 if d2 == d else 0
            q = rng.randrange(lo, len(per_day[d2]) + 1)
            per_day[d2].insert(q, (line, {"kind": "duplicate", "event_id": aid}))
        # bad lines
        for reason in ("invalid_json", "json_array", "missing_audit_id", "missing_actor_id",
                       "missing_outcome", "unknown_action", "invalid_source_ip",
                       "ts_without_offset", "negative_records"):
            d = rng.randrange(self.days)
            a = self.staff[rng.randrange(len(self.staff))]
            t = c.w0 + d * DAY + rng.randrange(8 * 3600, 18 * 3600) * SEC
            base = {"audit_id": self.ids.next("au", "aud_", 40), "ts": c.fmt(t),
                    "actor_id": a["actor_id"], "actor_role": a["role"], "action": "login",
                    "source_ip": a["ip"], "outcome": "success"}
            line = _bad_line(base, reason, (2, 3), {
                "unknown_action": lambda: {"action": "sudo_shell"},
                "invalid_source_ip": lambda: {"source_ip": "10.300.2.1"},
                "ts_without_offset": lambda: {"ts": c.fmt(t)[:-1]},
                "negative_records": lambda: {"action": "query_pii", "records": -40, "ticket_id": "PRIV-311"},
            })
            q = rng.randrange(len(per_day[d]) + 1)
            per_day[d].insert(q, (line + "\n", {"kind": "quarantine", "reason": reason}))

        count = 0
        for d in range(self.days):
            day = self.start + timedelta(days=d)
            p = self.landing / "audit" / f"audit-{day.isoformat()}{self.ext}"
            out = _Out(p, self.gz)
            rel = self.rel(p)
            for line, meta in per_day[d]:
                n = out.write_line(line)
                if meta is None:
                    count += 1
                elif meta["kind"] == "schema_drift":
                    count += 1
                    self.gt_drift.append({"kind": "schema_drift", "file": rel, "line": n,
                                          "fields": meta["fields"]})
                elif meta["kind"] == "duplicate":
                    self.gt_duplicates.append({"kind": "duplicate", "file": rel, "line": n,
                                               "event_id": meta["event_id"]})
                else:
                    self.gt_quarantine.append({"kind": "quarantine", "file": rel, "line": n,
                                               "reason": meta["reason"]})
            out.close()
            self.files.append(rel)
        return count

    # ---------------------------------------------------------------------------------- access stream

    def _render_access(self, ev: dict) -> str:
        out = {"event_id": ev["event_id"], "ts": self.clock.fmt(ev["_t"], ev["_z"], ev["_ms"])}
        for k in ("user_id", "session_id", "device_id", "client_ip", "email", "country",
                  "user_agent", "action", "status", "content_id", "bytes", "auth_token_id",
                  "purpose"):
            if k in ev:
                out[k] = ev[k]
        return _json(out) + "\n"

    def _access_bad_lines(self) -> list[tuple[int, str, str]]:
        rng = self.rng
        c = self.clock
        out = []
        reasons = ("invalid_json", "json_array", "missing_event_id", "missing_ts",
                   "missing_client_ip", "missing_action", "missing_status", "unparseable_ts",
                   "ts_without_offset", "unknown_action", "status_not_integer", "negative_bytes",
                   "invalid_ip")
        for reason in reasons:
            t = self.rand_time(c.w0 + HOUR, c.w1 - HOUR)
            country = rng.choices(_HOME_COUNTRIES, _HOME_WEIGHTS)[0]
            base: dict = {"event_id": self.ids.next("ev", "ev_"), "ts": c.fmt(t), "user_id": None,
                          "session_id": self.ids.next("se", "s_"),
                          "client_ip": self.ips.v4(country), "country": country,
                          "user_agent": rng.choice(_UA["web"]), "action": "browse", "status": 200,
                          "bytes": rng.randrange(2000, 90000)}
            line = _bad_line(base, reason, (3, 5), {
                "unparseable_ts": lambda: {"ts": c.fmt(t).replace("T", " at ").replace("-", "/", 1)[:-1] + " o'clock"},
                "ts_without_offset": lambda: {"ts": c.fmt(t)[:-1]},
                "unknown_action": lambda: {"action": "rewind"},
                "status_not_integer": lambda: {"status": "OK"},
                "negative_bytes": lambda: {"bytes": -rng.randrange(1, 5000)},
                "invalid_ip": lambda: {"client_ip": "300.12.7.1"},
            })
            out.append((t, line + "\n", reason))
        return out

    def _day_cum_weights(self) -> list[list[list[float]]]:
        """Per zone and window day: cumulative weights of the 24 UTC hours (local evening peak)."""
        c = self.clock
        out = []
        for z in range(len(c.zones)):
            per_day = []
            for d in range(self.days):
                cum, acc = [], 0.0
                for h in range(24):
                    hh = (2 + d) * 24 + h
                    local_h = ((hh * 3600 + c.off[z][hh]) // 3600) % 24
                    acc += _LOCAL_HOUR_WEIGHT[local_h]
                    cum.append(acc)
                per_day.append(cum)
            out.append(per_day)
        return out

    def _plan_days(self, anon_share: float):
        """Yield, per window day, the background sessions sorted by start."""
        rng = self.rng
        rnd = rng.random
        n = self.n_users
        cumw = self._day_cum_weights()
        acts = self.u_act
        zones = self.u_zone
        devs = self.u_dev
        trips = self.u_trip
        trip_state: dict[int, list] = {u: [-(1 << 60), self.u_country[u]] for u in trips}
        p_active = 0.8
        per_active = self.epud * (1.0 - anon_share) / p_active
        anon_sessions = int(round(n * self.epud * anon_share / 3.0))
        anon_countries = list(_HOME_COUNTRIES)
        anon_w = list(_HOME_WEIGHTS)
        anon_countries += list(_ANON_OTHER) + list(BLOCKED_COUNTRIES)
        tot = sum(anon_w)
        anon_w += [tot * 0.12 / len(_ANON_OTHER)] * len(_ANON_OTHER)
        anon_w += [tot * 0.005 / len(BLOCKED_COUNTRIES)] * len(BLOCKED_COUNTRIES)
        anon_cum = []
        acc = 0.0
        for w in anon_w:
            acc += w
            anon_cum.append(acc)
        self.anon_countries = anon_countries
        bis = bisect.bisect
        sseq = 0
        for d in range(self.days):
            day0 = (2 + d) * DAY
            sessions = []
            for u in range(n):
                if rnd() > p_active:
                    continue
                n_ev = int(per_active * acts[u] * (0.5 + rnd()) + rnd())
                if n_ev < 1:
                    n_ev = 1
                ns = 1 + int(n_ev / 10.0 + rnd())
                per_base, per_extra = divmod(n_ev, ns)
                cw = cumw[zones[u]][d]
                total = cw[-1]
                ndev = len(devs[u])
                failed = False
                trip = trips.get(u)
                lst = []
                for si in range(ns):
                    per = per_base + 1 if si < per_extra else per_base
                    if per < 1:
                        per = 1
                    h = bis(cw, rnd() * total)
                    if h > 23:
                        h = 23
                    start = day0 + h * HOUR + int(rnd() * 3600) * SEC
                    fail = False
                    if not failed and rnd() < 0.02:
                        fail = failed = True
                    lst.append((start, u, int(rnd() * ndev), per, fail))
                if trip is not None:
                    on_trip = trip[0] <= d <= trip[1]
                    country = trip[2] if on_trip else self.u_country[u]
                    st = trip_state[u]
                    kept = []
                    for s in sorted(lst):
                        if country != st[1] and s[0] < st[0] + _TRAVEL_MIN_GAP:
                            continue
                        st[0] = max(st[0], s[0] + _SESSION_MAX)
                        st[1] = country
                        kept.append(s + (on_trip,))
                    for s in kept:
                        sessions.append((s[0], sseq) + s[1:])
                        sseq += 1
                else:
                    for s in lst:
                        sessions.append((s[0], sseq) + s[1:] + (False,))
                        sseq += 1
            for _ in range(anon_sessions):
                ci = bis(anon_cum, rnd() * acc)
                if ci >= len(anon_countries):
                    ci = len(anon_countries) - 1
                zi = self.zone_idx(_COUNTRIES[anon_countries[ci]][0][0][0])
                cw = cumw[zi][d]
                h = bis(cw, rnd() * cw[-1])
                if h > 23:
                    h = 23
                start = day0 + h * HOUR + int(rnd() * 3600) * SEC
                sessions.append((start, sseq, -1, ci, 1 + int(rnd() * 5), False, False))
                sseq += 1
            sessions.sort()
            yield sessions

    def _stream_access(self) -> int:
        rng = self.rng
        rnd = rng.random
        c = self.clock
        w0, w1 = c.w0, c.w1
        first_day, last_day = 2, 2 + self.days - 1
        heap: list[tuple] = []
        push, pop = heapq.heappush, heapq.heappop
        special: dict[int, dict] = {}
        eseq = 0
        for ev in sorted(self.plant_events, key=lambda e: (e["_t"], e["event_id"])):
            push(heap, (ev["_t"], eseq, self._render_access(ev)))
            special[eseq] = {"kind": "plant"}
            eseq += 1
        for t, line, reason in self._access_bad_lines():
            push(heap, (t, eseq, line))
            special[eseq] = {"kind": "quarantine", "reason": reason}
            eseq += 1
        n_dup = 2 + self.k // 3
        dup_times = sorted(self.rand_time(w0 + HOUR, w1 - 8 * HOUR) for _ in range(n_dup))
        n_drift = 3 + self.k // 3
        drift_times = sorted(self.rand_time(w0 + HOUR, w1 - HOUR) for _ in range(n_drift))
        drift_fields = (("x_experiment", "hero_row_v2"), ("x_cdn_pop", "FRA56-P3"),
                        ("x_app_build", "8.14.0-rc2"), ("x_ab_bucket", "B"))

        outs: dict[int, _Out] = {}
        rels: dict[int, str] = {}
        state = {"min_open": first_day}

        def out_for(d: int) -> _Out:
            o = outs.get(d)
            if o is None:
                day = c.base_day + timedelta(days=d)
                p = self.landing / "access" / f"access-{day.isoformat()}{self.ext}"
                o = outs[d] = _Out(p, self.gz)
                rels[d] = self.rel(p)
                self.files.append(rels[d])
            return o

        closed: set[int] = set()

        def close_before(d: int) -> None:
            for od in sorted(outs):
                if od < d and od not in closed:
                    outs[od].close()
                    closed.add(od)

        dup_i = 0
        drift_i = 0
        count = 0

        def emit(item: tuple) -> None:
            nonlocal dup_i, drift_i, count, eseq
            t, sq, line = item
            d = t // DAY
            if d > state["min_open"] + 1:
                state["min_open"] = d - 1
                close_before(d - 1)
            meta = special.pop(sq, None) if sq in special else None
            if meta is None:
                if t >= w1:
                    return  # background session running past the window end: cut
                count += 1
                if dup_i < n_dup and t >= dup_times[dup_i] and (
                    '"action":"browse"' in line or '"action":"search"' in line
                ) and '"user_id":"' in line:
                    dup_i += 1
                    dt = min(t + rng.randrange(60, 5 * 3600) * SEC, w1 - SEC)
                    push(heap, (dt, eseq, line))
                    special[eseq] = {"kind": "duplicate", "event_id": json.loads(line)["event_id"]}
                    eseq += 1
                    out_for(d).write_line(line)
                    return
                if drift_i < n_drift and t >= drift_times[drift_i]:
                    name, value = drift_fields[drift_i % len(drift_fields)]
                    drift_i += 1
                    line = line[:-2] + f',"{name}":"{value}"}}\n'
                    n = out_for(d).write_line(line)
                    self.gt_drift.append({"kind": "schema_drift", "file": rels[d], "line": n,
                                          "fields": [name]})
                    return
                sod = t - d * DAY
                if (sod < HOUR and d > first_day) or (sod >= 23 * HOUR and d < last_day):
                    if rnd() < 0.12:
                        d = d - 1 if sod < HOUR else d + 1
                out_for(d).write_line(line)
                return
            kind = meta["kind"]
            n = out_for(d).write_line(line)
            if kind == "plant":
                count += 1
            elif kind == "duplicate":
                self.gt_duplicates.append({"kind": "duplicate", "file": rels[d], "line": n,
                                           "event_id": meta["event_id"]})
            else:
                self.gt_quarantine.append({"kind": "quarantine", "file": rels[d], "line": n,
                                           "reason": meta["reason"]})

        # ---- hot loop: expand background sessions -------------------------------------------------
        ids = self.ids
        ev_n = ids.n["ev"]
        ev_salt = ids.salts["ev"]
        se_n = ids.n["se"]
        se_salt = ids.salts["se"]
        tk_n = ids.n["tk"]
        tk_salt = ids.salts["tk"]
        MUL = 0x9E3779B97F4A7C15
        M48 = _M48
        M64 = _M64
        dates, hms, msf_tab = c.dates, c.hms, c.msfrag
        off_tab, offs_tab, exact_tab = c.off, c.offstr, c.exact
        fmt = c.fmt
        u_id, u_email, u_country, u_zone, u_dev = (self.u_id, self.u_email, self.u_country,
                                                   self.u_zone, self.u_dev)
        u_cons, trips = self.u_cons, self.u_trip
        ips = self.ips
        anon_ua = _UA["web"] + _UA["mobile"] + _UA_ANON_EXTRA
        purpose_plain = ("", ',"purpose":null', ',"purpose":"service"', ',"purpose":"service"',
                         "")
        anon_share = 0.06

        for day_sessions in self._plan_days(anon_share):
            anon_countries = self.anon_countries
            for sess in day_sessions:
                st = sess[0]
                while heap and heap[0][0] <= st:
                    emit(pop(heap))
                u = sess[2]
                t = st
                msf = rnd() < 0.25
                se_n += 1
                sid = "s_%012x" % ((se_n * MUL + se_salt) & M48)
                if u < 0:
                    # ---- anonymous visitor
                    country = anon_countries[sess[3]]
                    ip = ips.any(country, rng)
                    z = -1 if rnd() < 0.5 else self.clock.zone_index[_COUNTRIES[country][0][0][0]]
                    ua = anon_ua[int(rnd() * len(anon_ua))]
                    r = rnd()
                    uid_frag = '"user_id":null,' if r < 0.5 else ""
                    dev_frag = (',"device_id":"web-%016x"' % rng.getrandbits(64)) if rnd() < 0.4 else ""
                    head = (f'{uid_frag}"session_id":"{sid}"{dev_frag},"client_ip":"{ip}",'
                            f'"country":"{country}","user_agent":"{ua}"')
                    tmax = st + _SESSION_MAX
                    for j in range(sess[4]):
                        if j:
                            t += int(5 + rnd() * 120) * SEC
                        if t > tmax:
                            break
                        tt = t + int(rnd() * 1000) if msf else t
                        r = rnd()
                        if r < 0.6:
                            act, status = "browse", ("304" if rnd() < 0.1 else "200")
                            tail = ',"bytes":%d' % int(2000 + rnd() * 80000)
                        elif r < 0.8:
                            act, status, tail = "search", "200", ""
                        elif r < 0.95:
                            act, status = "play", ("206" if rnd() < 0.4 else "200")
                            tail = ',"content_id":"ct_%05d","bytes":%d' % (
                                int(rnd() * 20000), int(1e5 + rnd() * 5e7))
                        else:
                            act, status, tail = "browse", "404", ""
                        if rnd() < 0.05:
                            tail += ',"purpose":"analytics"'
                        ev_n += 1
                        eid = "ev_%012x" % ((ev_n * MUL + ev_salt) & M48)
                        s_ = tt // 1000
                        if z < 0:
                            dd, sod = divmod(s_, 86400)
                            ts = dates[dd + 2] + "T" + hms[sod] + (msf_tab[tt % 1000] if msf else "") + "Z"
                        else:
                            ts = fmt(tt, z, msf)
                        push(heap, (tt, eseq, '{"event_id":"' + eid + '","ts":"' + ts + '",' + head
                                    + ',"action":"' + act + '","status":' + status + tail + "}\n"))
                        eseq += 1
                    continue
                # ---- authenticated user session
                dv, n_ev, fail, on_trip = sess[3], sess[4], sess[5], sess[6]
                did, ip, ua, kind = u_dev[u][dv]
                if on_trip:
                    _a, _b, country, zone, ip = trips[u]
                else:
                    country, zone = u_country[u], u_zone[u]
                uid = u_id[u]
                z = zone if rnd() < 0.5 else -1
                zoff, zoffs, zex = off_tab[z], offs_tab[z], exact_tab[z]
                tk_n += 1
                tokfrag = ',"auth_token_id":"tok_%016x"' % ((tk_n * MUL + tk_salt) & M64)
                r = rnd()
                if r < 0.02:
                    cfrag = ""
                elif r < 0.04:
                    cfrag = ',"country":null'
                else:
                    cfrag = ',"country":"' + country + '"'
                dfrag = "" if rnd() < 0.05 else ',"device_id":"' + did + '"'
                head = ('"user_id":"' + uid + '","session_id":"' + sid + '"' + dfrag
                        + ',"client_ip":"' + ip + '"' + cfrag + ',"user_agent":"' + ua + '"')
                cons = u_cons[u]
                iv_p = iv_a = iv_ad = None
                if cons is not None:
                    iv_p = cons.get("personalization")
                    iv_a = cons.get("analytics")
                    iv_ad = cons.get("advertising")
                tmax = st + _SESSION_MAX
                steps = []
                if fail:
                    steps.append("login_fail")
                steps.append("login")
                content = None
                j = 1
                if n_ev >= 3 and rnd() < 0.5:
                    n_ev -= 1
                    logout = True
                else:
                    logout = False
                while j < n_ev:
                    r = rnd()
                    if r < 0.30:
                        steps.append("browse")
                    elif r < 0.45:
                        steps.append("search")
                    elif r < 0.75:
                        if j + 1 < n_ev:
                            steps.append("play")
                            steps.append("stop")
                            j += 1
                        else:
                            steps.append("browse")
                    elif r < 0.87:
                        steps.append("api")
                    elif r < 0.92:
                        steps.append("profile_view")
                    elif r < 0.93:
                        steps.append("profile_update")
                    elif r < 0.96:
                        steps.append("download")
                    else:
                        steps.append("browse")
                    j += 1
                if logout:
                    steps.append("logout")
                gap = 0
                for act in steps:
                    t += gap
                    if t > tmax:
                        break
                    tt = t + int(rnd() * 1000) if msf else t
                    purpose_iv = None
                    pname = None
                    tail = ""
                    if act == "login_fail":
                        act, status = "login", ("401" if rnd() < 0.85 else "403")
                        if rnd() < 0.3:
                            tail = ',"email":"' + u_email[u] + '"'
                        gap = int(8 + rnd() * 50) * SEC
                        tokf = ""
                    else:
                        tokf = tokfrag
                        if act == "login":
                            status = "200"
                            if rnd() < 0.3:
                                tail = ',"email":"' + u_email[u] + '"'
                            gap = int(3 + rnd() * 60) * SEC
                        elif act == "browse":
                            r = rnd()
                            status = "200" if r < 0.85 else ("304" if r < 0.97 else "404")
                            tail = ',"bytes":%d' % int(2000 + rnd() * 80000)
                            purpose_iv, pname = iv_a, "analytics"
                            gap = int(5 + rnd() * 115) * SEC
                        elif act == "search":
                            status = "200"
                            purpose_iv, pname = iv_a, "analytics"
                            gap = int(5 + rnd() * 60) * SEC
                        elif act == "play":
                            r = rnd()
                            status = "200" if r < 0.7 else ("206" if r < 0.97 else "404")
                            content = "ct_%05d" % int(rnd() * 20000)
                            tail = ',"content_id":"' + content + '","bytes":%d' % int(1e5 + rnd() * 5e6)
                            purpose_iv, pname = iv_p, "personalization"
                            gap = int(300 + rnd() * 2700) * SEC
                        elif act == "stop":
                            status = "200"
                            tail = ',"content_id":"' + (content or "ct_00000") + '","bytes":%d' % int(
                                5e7 + rnd() * 3e9)
                            purpose_iv, pname = iv_p, "personalization"
                            gap = int(5 + rnd() * 60) * SEC
                        elif act == "api":
                            r = rnd()
                            status = "200" if r < 0.95 else ("204" if r < 0.99 else "401")
                            purpose_iv, pname = iv_ad, "advertising"
                            gap = int(1 + rnd() * 30) * SEC
                        elif act == "profile_view":
                            status = "200"
                            gap = int(10 + rnd() * 60) * SEC
                        elif act == "profile_update":
                            status = "200" if rnd() < 0.97 else "403"
                            gap = int(10 + rnd() * 60) * SEC
                        elif act == "download":
                            status = "200" if rnd() < 0.8 else "206"
                            tail = ',"content_id":"ct_%05d","bytes":%d' % (
                                int(rnd() * 20000), int(1e8 + rnd() * 2e9))
                            gap = int(30 + rnd() * 300) * SEC
                        else:  # logout
                            status = "200"
                            gap = 0
                    pfrag = None
                    if purpose_iv is not None:
                        for a_, b_ in purpose_iv:
                            if a_ <= tt < b_:
                                if rnd() < 0.7:
                                    pfrag = ',"purpose":"' + pname + '"'
                                break
                    if pfrag is None:
                        pfrag = purpose_plain[int(rnd() * 5)]
                    ev_n += 1
                    eid = "ev_%012x" % ((ev_n * MUL + ev_salt) & M48)
                    s_ = tt // 1000
                    if z < 0:
                        dd, sod = divmod(s_, 86400)
                        ts = dates[dd + 2] + "T" + hms[sod] + (msf_tab[tt % 1000] if msf else "") + "Z"
                    else:
                        hh = s_ // 3600
                        if zex[hh]:
                            dd, sod = divmod(s_ + zoff[hh], 86400)
                            ts = (dates[dd + 2] + "T" + hms[sod] + (msf_tab[tt % 1000] if msf else "")
                                  + zoffs[hh])
                        else:
                            ts = fmt(tt, z, msf)
                    push(heap, (tt, eseq, '{"event_id":"' + eid + '","ts":"' + ts + '",' + head
                                + ',"action":"' + act + '","status":' + status + tail + tokf + pfrag
                                + "}\n"))
                    eseq += 1
        while heap:
            emit(pop(heap))
        ids.n["ev"], ids.n["se"], ids.n["tk"] = ev_n, se_n, tk_n
        for d in range(first_day, last_day + 1):
            out_for(d)
        for d in sorted(outs):
            if d not in closed:
                outs[d].close()
        # (with very thin traffic fewer duplicates / drifted lines may have been planted;
        # the ground truth lists exactly those that were)
        return count

    # ---------------------------------------------------------------------------------- dsar / gt

    def _write_dsar(self) -> None:
        rng = self.rng
        c = self.clock
        p = self.landing / "dsar" / "requests.jsonl"
        lines = []
        n = 5 + self.k // 3
        offsets = [-40 * DAY, -25 * DAY, -3 * DAY] + [
            rng.randrange(self.days * 86400) * SEC for _ in range(n - 3)]
        for i, off in enumerate(offsets):
            t = c.w0 + off + rng.randrange(8 * 3600, 20 * 3600) * SEC
            u = rng.randrange(self.n_users)
            z = -1 if i % 2 == 0 else self.u_zone[u]
            lines.append((t, _json({
                "request_id": f"DSAR-{self.start.year}-{1000 + i * 37 + rng.randrange(30):05d}",
                "user_id": self.u_id[u],
                "type": "erasure" if rng.random() < 0.4 else "access",
                "received_at": c.fmt(t, z),
            })))
        lines.sort()
        p.write_text("".join(line + "\n" for _, line in lines), encoding="utf-8")
        self.files.append(self.rel(p))

    def _write_ground_truth(self) -> None:
        c = self.clock
        times: dict[str, int] = {e["event_id"]: e["_t"] for e in self.plant_events}
        scen: dict[str, str] = {e["event_id"]: e["_scenario"] for e in self.plant_events}
        times.update(self.audit_times)
        scen.update(self.audit_scen)
        lines = []
        for rule, ids in sorted(self.gt_incidents, key=lambda x: (
                RULE_IDS.index(x[0]), min(times[i] for i in x[1]), sorted(x[1]))):
            ordered = sorted(ids, key=lambda i: (times[i], i))
            lines.append({"kind": "incident", "rule_id": rule, "event_ids": ordered,
                          "window_start": c.iso_z(times[ordered[0]] // SEC * SEC),
                          "scenario": scen[ordered[0]]})
        for n in sorted(self.gt_near, key=lambda x: (RULE_IDS.index(x["rule_id"]),
                                                      times[x["event_ids"][0]])):
            lines.append(n)
        for rec in sorted(self.gt_quarantine, key=lambda x: (x["file"], x["line"])):
            lines.append(rec)
        for rec in sorted(self.gt_duplicates, key=lambda x: (x["file"], x["line"])):
            lines.append(rec)
        for rec in sorted(self.gt_drift, key=lambda x: (x["file"], x["line"])):
            lines.append(rec)
        p = self.landing / "ground_truth.jsonl"
        p.write_text("".join(_json(x) + "\n" for x in lines), encoding="utf-8")
        self.files.append(self.rel(p))


def generate(
    landing_dir: Path | str,
    *,
    seed: int = 7,
    users: int = 150,
    days: int = 7,
    start: date = date(2026, 10, 29),
    events_per_user_day: float = 15.0,
    staff: int = 40,
    gzip_output: bool = False,
) -> GenerationStats:
    """Generate a deterministic synthetic landing zone under ``landing_dir``.

    Files this generator owns (access/audit day files, directory/staff.csv, consent.db,
    dsar/requests.jsonl, ground_truth.jsonl) are replaced; other files are left alone.
    """
    gen = _Generator(Path(landing_dir), seed, users, days, start, events_per_user_day, staff,
                     gzip_output)
    return gen.run()
