"""Alert sink: append-only JSON lines, and an optional webhook that receives each alert as JSON.

Payloads carry pseudonyms, rule ids, counts and event ids, never raw personal data.
"""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

SEVERITY_RANK = {"low": 0, "medium": 1, "high": 2, "critical": 3}


def at_or_above(severity: str, threshold: str) -> bool:
    return SEVERITY_RANK.get(severity, -1) >= SEVERITY_RANK[threshold]


def send(path: Path, payloads: list[dict], webhook_url: str | None = None, timeout: int = 10) -> int:
    """Deliver payloads; returns how many were written. A webhook failure raises, so the caller
    does not record the alerts as sent and retries them on its next evaluation."""
    if not payloads:
        return 0
    if webhook_url:
        for payload in payloads:
            req = urllib.request.Request(webhook_url, data=json.dumps(payload, default=str).encode("utf-8"),
                                         headers={"Content-Type": "application/json"}, method="POST")
            with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310 - URL from operator config
                if resp.status >= 300:
                    raise RuntimeError(f"alert webhook answered HTTP {resp.status}")
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as fh:
        for payload in payloads:
            fh.write(json.dumps(payload, default=str, sort_keys=True) + "\n")
    return len(payloads)
