"""Tiny hand-written landing zones for tests: every row is chosen, so expectations are exact."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

STAFF_HEADER = "actor_id,role,department,employed_from,employed_to\n"


def access(event_id: str, ts: str, *, user_id: str | None = "u1", client_ip: str = "203.0.113.7",
           action: str = "play", status: int = 200, **extra: object) -> dict:
    return {"event_id": event_id, "ts": ts, "user_id": user_id, "client_ip": client_ip, "action": action,
            "status": status, **extra}


def audit(audit_id: str, ts: str, *, actor_id: str = "emp_1", actor_role: str = "support_agent",
          action: str = "view_profile", outcome: str = "success", ticket_id: str | None = "SUP-1",
          source_ip: str = "198.51.100.20", **extra: object) -> dict:
    return {"audit_id": audit_id, "ts": ts, "actor_id": actor_id, "actor_role": actor_role, "action": action,
            "outcome": outcome, "ticket_id": ticket_id, "source_ip": source_ip, **extra}


def write_landing(root: Path, *, access_events: list[dict] = (), audit_events: list[dict] = (),
                  staff: list[tuple] = (("emp_1", "support_agent", "support", "2020-01-01", ""),),
                  consent: list[tuple] | None = (), raw_access_lines: list[str] = ()) -> Path:
    """Write a landing zone. consent rows: (event_id, user_id, purpose, status, recorded_at, expires_at);
    consent=None leaves the consent database out (fail-closed tests)."""
    (root / "access").mkdir(parents=True, exist_ok=True)
    (root / "audit").mkdir(parents=True, exist_ok=True)
    (root / "directory").mkdir(parents=True, exist_ok=True)
    lines = [json.dumps(e) for e in access_events] + list(raw_access_lines)
    (root / "access" / "access.jsonl").write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    (root / "audit" / "audit.jsonl").write_text("".join(json.dumps(e) + "\n" for e in audit_events), encoding="utf-8")
    (root / "directory" / "staff.csv").write_text(STAFF_HEADER + "".join(",".join(r) + "\n" for r in staff),
                                                  encoding="utf-8")
    if consent is not None:
        db = root / "consent.db"
        db.unlink(missing_ok=True)
        with sqlite3.connect(db) as con:
            con.execute("create table consent_events (event_id text primary key, user_id text not null, purpose text, "
                        "status text, recorded_at text, expires_at text, source text, notice_version text, "
                        "jurisdiction text, tc_string text)")
            con.executemany("insert into consent_events values (?, ?, ?, ?, ?, ?, 'web', 'v1', 'EU', null)",
                            list(consent))
    return root
