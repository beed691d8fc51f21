"""Alert sink: append-only JSON lines, and an optional webhook that receives each alert as JSON.

Every alert has an `alert_id` (a violation's id, or the kind and run id of a run or check failure).
The sink keeps the ids it delivered in a ledger beside the alert file, so an alert is delivered once
whoever dispatches it: the sensors in the Dagster daemon, or `streamgov run` when no daemon runs.
Payloads carry pseudonyms, rule ids, counts and event ids, never raw personal data or error text.
"""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

import duckdb

SEVERITY_RANK = {"low": 0, "medium": 1, "high": 2, "critical": 3}
VIOLATION_FIELDS = ("violation_id", "rule_id", "severity", "source", "subject", "window_start", "window_end",
                    "event_ids", "detected_at", "details")


def ledger_path(path: Path) -> Path:
    return path.with_name(path.name + ".sent")


def delivered(path: Path) -> set[str]:
    ledger = ledger_path(path)
    return set(ledger.read_text(encoding="utf-8").split()) if ledger.exists() else set()


def send(path: Path, payloads: list[dict], webhook_url: str | None = None, timeout: int = 10) -> int:
    """Deliver the payloads not delivered before; returns how many were delivered. A webhook failure
    raises before anything is recorded, so the alerts are retried on the next dispatch."""
    done = delivered(path)
    new = [p for p in payloads if p["alert_id"] not in done]
    if not new:
        return 0
    from .leakguard import scan_text

    hits = scan_text(json.dumps(new, default=str), set())
    if hits:  # counts only: the payload itself must not reach a log either
        raise ValueError(f"alert payloads hold personal-data patterns ({hits}); nothing was sent")
    if webhook_url:
        for payload in new:
            req = urllib.request.Request(webhook_url, data=json.dumps(payload, default=str).encode("utf-8"),
                                         headers={"Content-Type": "application/json"}, method="POST")
            with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310 - URL from operator config
                if resp.status >= 300:
                    raise RuntimeError(f"alert webhook answered HTTP {resp.status}")
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as fh:
        for payload in new:
            fh.write(json.dumps(payload, default=str, sort_keys=True) + "\n")
    with ledger_path(path).open("a", encoding="utf-8") as fh:
        fh.write("".join(p["alert_id"] + "\n" for p in new))
    return len(new)


def violation_payloads(con: duckdb.DuckDBPyConnection, min_severity: str, since=None) -> list[dict]:
    """Alerts for the violations at or above the severity threshold (detected at or after `since`)."""
    ranks = [s for s, r in SEVERITY_RANK.items() if r >= SEVERITY_RANK[min_severity]]
    rows = con.execute(
        f"select {', '.join(VIOLATION_FIELDS)} from governance.violations where list_contains(?, severity) "
        "and (?::timestamp is null or detected_at >= ?::timestamp) order by detected_at, violation_id",
        [ranks, since, since],
    ).fetchall()
    return [{"type": "violation", "alert_id": row[0], **dict(zip(VIOLATION_FIELDS, row))} for row in rows]


def run_failure_payload(run_id: str, job: str, failed_steps: list[str], failed_checks: list[dict],
                        error_class: str | None) -> dict:
    return {"type": "run_failure", "alert_id": f"run_failure:{run_id}", "run_id": run_id, "job": job,
            "failed_steps": failed_steps, "failed_checks": failed_checks, "error_class": error_class}


def check_failure_payload(run_id: str, failed_checks: list[dict]) -> dict:
    return {"type": "check_failure", "alert_id": f"check_failure:{run_id}", "run_id": run_id,
            "failed_checks": failed_checks}
