"""Policy files: loading and validation.

Packaged defaults live in streamgov_dagster/policies; STREAMGOV_POLICY_DIR points at a folder whose
files replace the packaged file of the same name (a file absent there falls back to the default).
A bad file raises PolicyError naming the file, the key and what is wrong.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

PACKAGED_DIR = Path(__file__).resolve().parent.parent / "policies"
SEVERITIES = ("low", "medium", "high", "critical")
AUDIT_ACTIONS = (
    "login", "view_profile", "view_watch_history", "export_user_data", "query_pii",
    "update_consent", "delete_user", "grant_role", "disable_audit_logging",
)
ACCESS_PURPOSES = ("service", "personalization", "analytics", "advertising")
MASKING_METHODS = ("keep", "pseudonymize", "truncate_ip", "generalize", "redact", "drop")
GENERALIZE_TO = ("user_agent_family", "hour", "day")

RULE_IDS = (
    "failed_login_burst", "blocked_country", "token_reuse", "impossible_travel", "consent_violation",
    "role_not_permitted", "missing_justification", "bulk_export", "access_after_offboarding",
    "audit_tampering", "denied_attempts",
)

# key -> (type, required) for each rule's parameters; severity is required for every rule.
_RULE_PARAMS: dict[str, dict[str, tuple[type, bool]]] = {
    "failed_login_burst": {"min_failures": (int, True), "window_minutes": (int, True),
                           "failure_statuses": (list, True), "keys": (list, True)},
    "blocked_country": {"countries": (list, True)},
    "token_reuse": {"min_distinct_ips": (int, True), "window_minutes": (int, True)},
    "impossible_travel": {"max_gap_minutes": (int, True)},
    "consent_violation": {"purposes": (list, True)},
    "role_not_permitted": {},
    "missing_justification": {},
    "bulk_export": {"actions": (list, True), "min_records": (int, True)},
    "access_after_offboarding": {},
    "audit_tampering": {"audit_actions": (list, True), "cloudtrail_events": (list, True)},
    "denied_attempts": {"min_denied": (int, True), "window_minutes": (int, True)},
}


class PolicyError(ValueError):
    """A policy file is missing, unreadable or invalid."""

    def __init__(self, file: Path, key: str, problem: str):
        super().__init__(f"policy file {file}: key '{key}': {problem}")
        self.file, self.key, self.problem = file, key, problem


@dataclass(frozen=True)
class Policy:
    rules: dict[str, dict[str, Any]]
    roles: dict[str, list[str]]
    pii_actions: list[str]
    alerting: dict[str, Any]
    masking: dict[str, dict[str, dict[str, str]]]
    formats: dict[str, Any]
    consent: dict[str, Any]
    retention: dict[str, dict[str, Any]]
    reports: dict[str, Any]
    source_dir: str

    def severity(self, rule_id: str) -> str:
        return self.rules[rule_id]["severity"]

    def rule(self, rule_id: str) -> dict[str, Any]:
        return self.rules[rule_id]

    @property
    def min_alert_severity(self) -> str:
        return self.alerting["min_severity"]


def _file(policy_dir: Path | None, name: str) -> Path:
    if policy_dir is not None and (Path(policy_dir) / name).exists():
        return Path(policy_dir) / name
    return PACKAGED_DIR / name


def _read(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise PolicyError(path, "<document>", f"not valid YAML ({exc.__class__.__name__})") from None
    except OSError as exc:
        raise PolicyError(path, "<document>", f"cannot be read ({exc.strerror})") from None
    if not isinstance(data, dict):
        raise PolicyError(path, "<document>", "must be a mapping at the top level")
    return data


def _expect(path: Path, key: str, value: Any, kind: type) -> None:
    # bool is an int in Python; a threshold of `true` is a mistake, not 1.
    if kind is int and (isinstance(value, bool) or not isinstance(value, int)):
        raise PolicyError(path, key, f"must be an integer, got {type(value).__name__} {value!r}")
    if kind is not int and not isinstance(value, kind):
        raise PolicyError(path, key, f"must be a {kind.__name__}, got {type(value).__name__}")


def _validate_rules(path: Path, data: dict[str, Any]) -> dict[str, dict[str, Any]]:
    rules = data.get("rules")
    if not isinstance(rules, dict):
        raise PolicyError(path, "rules", "missing or not a mapping of rule_id -> settings")
    unknown = sorted(set(rules) - set(RULE_IDS))
    if unknown:
        raise PolicyError(path, f"rules.{unknown[0]}", f"unknown rule id (known: {', '.join(RULE_IDS)})")
    out: dict[str, dict[str, Any]] = {}
    for rule_id in RULE_IDS:
        if rule_id not in rules:
            raise PolicyError(path, f"rules.{rule_id}", "missing (every rule needs an entry)")
        entry = rules[rule_id]
        if not isinstance(entry, dict):
            raise PolicyError(path, f"rules.{rule_id}", "must be a mapping")
        sev = entry.get("severity")
        if sev not in SEVERITIES:
            raise PolicyError(path, f"rules.{rule_id}.severity", f"must be one of {', '.join(SEVERITIES)}, got {sev!r}")
        for key, (kind, required) in _RULE_PARAMS[rule_id].items():
            if key not in entry:
                if required:
                    raise PolicyError(path, f"rules.{rule_id}.{key}", "missing")
                continue
            _expect(path, f"rules.{rule_id}.{key}", entry[key], kind)
            if kind is int and entry[key] < 1:
                raise PolicyError(path, f"rules.{rule_id}.{key}", f"must be >= 1, got {entry[key]}")
            if kind is list and not entry[key]:
                raise PolicyError(path, f"rules.{rule_id}.{key}", "must not be empty")
        extra = sorted(set(entry) - set(_RULE_PARAMS[rule_id]) - {"severity", "enabled"})
        if extra:
            raise PolicyError(path, f"rules.{rule_id}.{extra[0]}", "unknown setting")
        out[rule_id] = dict(entry)
    flb = out["failed_login_burst"]
    bad_keys = sorted(set(flb["keys"]) - {"user_id", "client_ip"})
    if bad_keys:
        raise PolicyError(path, "rules.failed_login_burst.keys", f"unknown key {bad_keys[0]!r} (user_id, client_ip)")
    for status in flb["failure_statuses"]:
        _expect(path, "rules.failed_login_burst.failure_statuses[]", status, int)
    out["blocked_country"]["countries"] = [str(c).upper() for c in out["blocked_country"]["countries"]]
    return out


def _validate_roles(path: Path, data: dict[str, Any]) -> tuple[dict[str, list[str]], list[str]]:
    roles = data.get("roles")
    if not isinstance(roles, dict) or not roles:
        raise PolicyError(path, "roles", "missing or not a mapping of role -> allowed actions")
    for role, actions in roles.items():
        if not isinstance(actions, list):
            raise PolicyError(path, f"roles.{role}", "must be a list of actions")
        for action in actions:
            if action not in AUDIT_ACTIONS:
                raise PolicyError(path, f"roles.{role}", f"unknown action {action!r}")
    pii = data.get("pii_actions")
    if not isinstance(pii, list) or not pii:
        raise PolicyError(path, "pii_actions", "missing or empty list")
    for action in pii:
        if action not in AUDIT_ACTIONS:
            raise PolicyError(path, "pii_actions", f"unknown action {action!r}")
    return {str(r): list(a) for r, a in roles.items()}, list(pii)


def _validate_alerting(path: Path, data: dict[str, Any]) -> dict[str, Any]:
    if data.get("min_severity") not in SEVERITIES:
        raise PolicyError(path, "min_severity", f"must be one of {', '.join(SEVERITIES)}")
    data = {"dsar_warning_days": 7, "erasure_compaction_delay_days": 7, **data}
    for key in ("webhook_timeout_seconds", "schedule_lookback_days", "dsar_warning_days", "erasure_compaction_delay_days"):
        _expect(path, key, data.get(key), int)
    if data["erasure_compaction_delay_days"] < 0:
        raise PolicyError(path, "erasure_compaction_delay_days", "must be >= 0")
    return dict(data)


def _validate_masking(path: Path, data: dict[str, Any]) -> dict[str, dict[str, dict[str, str]]]:
    datasets = data.get("datasets")
    if not isinstance(datasets, dict) or not datasets:
        raise PolicyError(path, "datasets", "missing or not a mapping")
    out: dict[str, dict[str, dict[str, str]]] = {}
    for name, columns in datasets.items():
        if not isinstance(columns, dict):
            raise PolicyError(path, f"datasets.{name}", "must map column -> method")
        out[name] = {}
        for column, spec in columns.items():
            spec = {"method": spec} if isinstance(spec, str) else spec
            if not isinstance(spec, dict) or spec.get("method") not in MASKING_METHODS:
                raise PolicyError(path, f"datasets.{name}.{column}", f"method must be one of {', '.join(MASKING_METHODS)}")
            if spec["method"] not in ("keep", "drop", "redact") and not isinstance(spec.get("as"), str):
                raise PolicyError(path, f"datasets.{name}.{column}.as", "the output column name is required")
            if spec["method"] == "generalize" and spec.get("to") not in GENERALIZE_TO:
                raise PolicyError(path, f"datasets.{name}.{column}.to", f"must be one of {', '.join(GENERALIZE_TO)}")
            out[name][column] = {"method": spec["method"], "as": spec.get("as", column), "to": spec.get("to")}
    return out


ACCESS_ACTIONS = ("login", "logout", "play", "stop", "browse", "search", "download", "profile_view",
                  "profile_update", "api")


def _validate_formats(path: Path, data: dict[str, Any]) -> dict[str, Any]:
    import re

    rules = data.get("path_actions")
    if not isinstance(rules, list):
        raise PolicyError(path, "path_actions", "missing or not a list of {pattern, action}")
    for i, rule in enumerate(rules):
        if not isinstance(rule, dict) or not isinstance(rule.get("pattern"), str):
            raise PolicyError(path, f"path_actions[{i}].pattern", "missing or not a string")
        try:
            re.compile(rule["pattern"])
        except re.error as exc:
            raise PolicyError(path, f"path_actions[{i}].pattern", f"not a valid regular expression ({exc})") from None
        if rule.get("action") not in ACCESS_ACTIONS:
            raise PolicyError(path, f"path_actions[{i}].action", f"must be one of {', '.join(ACCESS_ACTIONS)}")
    if data.get("default_action") not in ACCESS_ACTIONS:
        raise PolicyError(path, "default_action", f"must be one of {', '.join(ACCESS_ACTIONS)}")
    ct = data.get("cloudtrail")
    if not isinstance(ct, dict):
        raise PolicyError(path, "cloudtrail", "missing or not a mapping")
    actions = ct.get("event_actions")
    if not isinstance(actions, dict):
        raise PolicyError(path, "cloudtrail.event_actions", "missing or not a mapping of eventName -> action")
    for name, action in actions.items():
        if action not in AUDIT_ACTIONS:
            raise PolicyError(path, f"cloudtrail.event_actions.{name}", f"unknown action {action!r}")
    if not isinstance(ct.get("denied_error_codes"), list):
        raise PolicyError(path, "cloudtrail.denied_error_codes", "missing or not a list")
    return dict(data)


CONSENT_PURPOSES = ("personalization", "analytics", "advertising", "marketing_email")


def _validate_consent(path: Path, data: dict[str, Any]) -> dict[str, Any]:
    mapping = data.get("tcf_purpose_map")
    if not isinstance(mapping, dict):
        raise PolicyError(path, "tcf_purpose_map", "missing or not a mapping of purpose -> TCF purpose ids")
    for purpose, ids in mapping.items():
        if purpose not in CONSENT_PURPOSES:
            raise PolicyError(path, f"tcf_purpose_map.{purpose}", f"unknown purpose (known: {', '.join(CONSENT_PURPOSES)})")
        if not isinstance(ids, list) or not ids or any(isinstance(i, bool) or not isinstance(i, int) or not 1 <= i <= 24
                                                       for i in ids):
            raise PolicyError(path, f"tcf_purpose_map.{purpose}", "must be a non-empty list of TCF purpose ids (1-24)")
    _expect(path, "expiring_within_days", data.get("expiring_within_days"), int)
    _expect(path, "incremental_lookback_days", data.get("incremental_lookback_days"), int)
    return dict(data)


def _validate_retention(path: Path, data: dict[str, Any]) -> dict[str, dict[str, Any]]:
    datasets = data.get("datasets")
    if not isinstance(datasets, dict):
        raise PolicyError(path, "datasets", "missing or not a mapping of schema.table -> {days, column}")
    out = {}
    for table, spec in datasets.items():
        if not isinstance(table, str) or table.count(".") != 1 or not all(p.isidentifier() for p in table.split(".")):
            raise PolicyError(path, f"datasets.{table}", "must be a schema.table name")
        if not isinstance(spec, dict) or not isinstance(spec.get("column"), str) or not spec["column"].isidentifier():
            raise PolicyError(path, f"datasets.{table}.column", "missing or not a column name")
        _expect(path, f"datasets.{table}.days", spec.get("days"), int)
        if spec["days"] < 1:
            raise PolicyError(path, f"datasets.{table}.days", "must be >= 1")
        out[table] = {"days": spec["days"], "column": spec["column"]}
    return out


def _validate_reports(path: Path, data: dict[str, Any]) -> dict[str, Any]:
    _expect(path, "small_cell_k", data.get("small_cell_k"), int)
    if data["small_cell_k"] < 1:
        raise PolicyError(path, "small_cell_k", "must be >= 1")
    return dict(data)


def load_policy(policy_dir: str | Path | None = None) -> Policy:
    directory = Path(policy_dir) if policy_dir else None
    if directory is not None and not directory.is_dir():
        raise PolicyError(directory, "STREAMGOV_POLICY_DIR", "is not a directory")
    rules_path, roles_path = _file(directory, "rules.yaml"), _file(directory, "roles.yaml")
    alerting_path, masking_path = _file(directory, "alerting.yaml"), _file(directory, "masking.yaml")
    formats_path, consent_path = _file(directory, "formats.yaml"), _file(directory, "consent.yaml")
    retention_path, reports_path = _file(directory, "retention.yaml"), _file(directory, "reports.yaml")
    rules = _validate_rules(rules_path, _read(rules_path))
    roles, pii = _validate_roles(roles_path, _read(roles_path))
    return Policy(
        rules=rules,
        roles=roles,
        pii_actions=pii,
        alerting=_validate_alerting(alerting_path, _read(alerting_path)),
        masking=_validate_masking(masking_path, _read(masking_path)),
        formats=_validate_formats(formats_path, _read(formats_path)),
        consent=_validate_consent(consent_path, _read(consent_path)),
        retention=_validate_retention(retention_path, _read(retention_path)),
        reports=_validate_reports(reports_path, _read(reports_path)),
        source_dir=str(directory) if directory else "packaged defaults",
    )
