"""The access-audit rules of data contract section 4, one SQL function each.

Every rule returns (sql, params): a query producing candidate violations with the columns
rule_id, source, subject_kind, subject_value (raw, pseudonymized by the runner), window_start,
window_end, event_ids (ordered list), details (no personal data). Thresholds come from policy and
enter the SQL as parameters. The runner (`detect`) unions the enabled rules, merges identical
incidents, pseudonymizes subjects over distinct values and assigns deterministic ids.
"""

from __future__ import annotations

from collections.abc import Callable

import duckdb

from .policy import Policy

RuleSQL = tuple[str, dict]


def _burst(candidates: str, rule_id: str, source: str, n: int, minutes: int, noun: str) -> RuleSQL:
    """One incident per burst: >= n candidate events of one key whose timestamps span <= minutes.

    `candidates` yields (key_kind, key_value, event_id, ts). A window is n consecutive events of a
    key (ordered by ts, event_id) spanning <= the limit; windows sharing an event merge into one
    incident whose evidence is every event of the merged windows.
    """
    sql = f"""
    with cand as ({candidates}),
    ordered as (
        select *, row_number() over w as rn, lead(ts, $n - 1) over w as ts_nth
        from cand window w as (partition by key_kind, key_value order by ts, event_id)
    ),
    starts as (
        select key_kind, key_value, rn from ordered
        where ts_nth is not null and ts_nth - ts <= to_minutes($minutes)
    ),
    islands as (
        select *, sum(case when rn - coalesce(prev_rn, -$n) > $n - 1 then 1 else 0 end)
                      over (partition by key_kind, key_value order by rn rows unbounded preceding) as island
        from (select *, lag(rn) over (partition by key_kind, key_value order by rn) as prev_rn from starts)
    ),
    spans as (
        select key_kind, key_value, island, min(rn) as first_rn, max(rn) + $n - 1 as last_rn
        from islands group by key_kind, key_value, island
    )
    select '{rule_id}' as rule_id, '{source}' as source, s.key_kind as subject_kind, s.key_value as subject_value,
           min(o.ts) as window_start, max(o.ts) as window_end,
           list(o.event_id order by o.ts, o.event_id) as event_ids,
           format('{{}} {noun} by one {{}} within {{}} seconds', count(*), s.key_kind,
                  epoch(max(o.ts) - min(o.ts))::bigint) as details
    from spans s join ordered o
      on o.key_kind = s.key_kind and o.key_value = s.key_value and o.rn between s.first_rn and s.last_rn
    group by s.key_kind, s.key_value, s.island
    """
    return sql, {"n": n, "minutes": minutes}


def failed_login_burst(p: Policy) -> RuleSQL:
    r = p.rule("failed_login_burst")
    parts = []
    if "user_id" in r["keys"]:
        parts.append("select 'user' as key_kind, user_id as key_value, event_id, ts from raw.access_events "
                     "where action = 'login' and list_contains($statuses, status) and user_id is not null")
    if "client_ip" in r["keys"]:
        parts.append("select 'ip' as key_kind, client_ip as key_value, event_id, ts from raw.access_events "
                     "where action = 'login' and list_contains($statuses, status)")
    sql, params = _burst(" union all ".join(parts), "failed_login_burst", "access",
                         r["min_failures"], r["window_minutes"], "failed logins")
    return sql, {**params, "statuses": r["failure_statuses"]}


def blocked_country(p: Policy) -> RuleSQL:
    return """
    select 'blocked_country' as rule_id, 'access' as source, 'user' as subject_kind, user_id as subject_value,
           ts as window_start, ts as window_end, [event_id] as event_ids,
           format('authenticated {} event from blocked country {}', action, country) as details
    from raw.access_events
    where user_id is not null and list_contains($countries, country)
    """, {"countries": p.rule("blocked_country")["countries"]}


def token_reuse(p: Policy) -> RuleSQL:
    r = p.rule("token_reuse")
    return """
    with ev as (
        select auth_token_id as tok, user_id, event_id, ts, client_ip
        from raw.access_events where auth_token_id is not null
    ),
    multi as (select tok from ev group by tok having count(distinct client_ip) >= $n),
    e as (select * from ev where tok in (select tok from multi)),
    anchors as (
        select a.tok, a.ts as start_ts, max(b.ts) as end_ts
        from e a join e b on b.tok = a.tok and b.ts >= a.ts and b.ts <= a.ts + to_minutes($minutes)
        group by a.tok, a.event_id, a.ts
        having count(distinct b.client_ip) >= $n
    ),
    islands as (
        select *, sum(case when prev_end is null or start_ts > prev_end then 1 else 0 end)
                      over (partition by tok order by start_ts, end_ts rows unbounded preceding) as island
        from (select *, max(end_ts) over (partition by tok order by start_ts, end_ts
                                          rows between unbounded preceding and 1 preceding) as prev_end
              from anchors)
    ),
    spans as (select tok, island, min(start_ts) as s, max(end_ts) as f from islands group by tok, island)
    select 'token_reuse' as rule_id, 'access' as source,
           case when count(distinct e.user_id) = 1 then 'user' else 'token' end as subject_kind,
           case when count(distinct e.user_id) = 1 then any_value(e.user_id) else sp.tok end as subject_value,
           min(e.ts) as window_start, max(e.ts) as window_end,
           list(e.event_id order by e.ts, e.event_id) as event_ids,
           format('one auth token used from {} distinct client IPs within {} seconds',
                  count(distinct e.client_ip), epoch(max(e.ts) - min(e.ts))::bigint) as details
    from spans sp join e on e.tok = sp.tok and e.ts between sp.s and sp.f
    group by sp.tok, sp.island
    """, {"n": r["min_distinct_ips"], "minutes": r["window_minutes"]}


def impossible_travel(p: Policy) -> RuleSQL:
    return """
    with s as (
        select user_id, event_id, ts, country,
               lag(event_id) over w as prev_id, lag(ts) over w as prev_ts, lag(country) over w as prev_country
        from raw.access_events
        where user_id is not null and status < 400 and country is not null
        window w as (partition by user_id order by ts, event_id)
    )
    select 'impossible_travel' as rule_id, 'access' as source, 'user' as subject_kind, user_id as subject_value,
           prev_ts as window_start, ts as window_end, [prev_id, event_id] as event_ids,
           format('successful events from {} then {} within {} seconds', prev_country, country,
                  epoch(ts - prev_ts)::bigint) as details
    from s
    where prev_country is not null and prev_country <> country and ts - prev_ts < to_minutes($minutes)
    """, {"minutes": p.rule("impossible_travel")["max_gap_minutes"]}


def consent_violation(p: Policy) -> RuleSQL:
    # The as-of join finds the consent state in force at each event's instant (contract "Valid consent").
    return """
    with ev as (
        select e.event_id, e.ts, e.purpose, e.user_id, u.pseudonym as user_pseudonym
        from raw.access_events e join _pseudonyms u on u.kind = 'user' and u.value = e.user_id
        where e.user_id is not null and list_contains($purposes, e.purpose)
    )
    select 'consent_violation' as rule_id, 'access' as source, 'user' as subject_kind, ev.user_id as subject_value,
           ev.ts as window_start, ev.ts as window_end, [ev.event_id] as event_ids,
           format('{} event without valid consent (consent state: {})', ev.purpose,
                  coalesce(case when s.state = 'granted' then 'expired' else s.state end, 'none recorded')) as details
    from ev asof left join consent.consent_state s
      on s.user_pseudonym = ev.user_pseudonym and s.purpose = ev.purpose and ev.ts >= s.valid_from
    where not coalesce(s.state = 'granted' and (s.valid_to is null or ev.ts < s.valid_to), false)
    """, {"purposes": p.rule("consent_violation")["purposes"]}


def role_not_permitted(p: Policy) -> RuleSQL:
    return """
    select 'role_not_permitted' as rule_id, 'audit' as source, 'actor' as subject_kind, a.actor_id as subject_value,
           a.ts as window_start, a.ts as window_end, [a.audit_id] as event_ids,
           format('{} by directory role {} (session claimed {})', a.action, d.role, a.actor_role) as details
    from raw.audit_events a join raw.staff_directory d on d.actor_id = a.actor_id
    where a.outcome = 'success' and a.action <> 'other'  -- CloudTrail calls outside the role matrix
      and not exists (select 1 from _role_actions r where r.role = d.role and r.action = a.action)
    """, {}


def missing_justification(p: Policy) -> RuleSQL:
    return """
    select 'missing_justification' as rule_id, 'audit' as source, 'actor' as subject_kind, actor_id as subject_value,
           ts as window_start, ts as window_end, [audit_id] as event_ids,
           format('{} succeeded without a ticket', action) as details
    from raw.audit_events
    where outcome = 'success' and list_contains($pii, action) and coalesce(trim(ticket_id), '') = ''
    """, {"pii": p.pii_actions}


def bulk_export(p: Policy) -> RuleSQL:
    r = p.rule("bulk_export")
    return """
    select 'bulk_export' as rule_id, 'audit' as source, 'actor' as subject_kind, actor_id as subject_value,
           ts as window_start, ts as window_end, [audit_id] as event_ids,
           format('{} of {} records ({})', action, coalesce(records, 1), outcome) as details
    from raw.audit_events
    where list_contains($actions, action) and coalesce(records, 1) >= $min_records
    """, {"actions": r["actions"], "min_records": r["min_records"]}


def access_after_offboarding(p: Policy) -> RuleSQL:
    return """
    select 'access_after_offboarding' as rule_id, 'audit' as source, 'actor' as subject_kind,
           a.actor_id as subject_value, a.ts as window_start, a.ts as window_end, [a.audit_id] as event_ids,
           case when d.actor_id is null then format('{} by an actor missing from the directory', a.action)
                when a.ts::date < d.employed_from then format('{} {} days before employment began', a.action,
                                                              d.employed_from - a.ts::date)
                else format('{} {} days after employment ended', a.action, a.ts::date - d.employed_to) end as details
    from raw.audit_events a left join raw.staff_directory d on d.actor_id = a.actor_id
    -- CloudTrail identities (IAM users, roles, AWS services) are judged only when they name a directory actor
    where (d.actor_id is null and a.source <> 'cloudtrail') or a.ts::date < d.employed_from
       or (d.employed_to is not null and a.ts::date > d.employed_to)
    """, {}


def audit_tampering(p: Policy) -> RuleSQL:
    return """
    select 'audit_tampering' as rule_id, 'audit' as source, 'actor' as subject_kind, actor_id as subject_value,
           ts as window_start, ts as window_end, [audit_id] as event_ids,
           format('{} attempted ({})', coalesce(event_name, action), outcome) as details
    from raw.audit_events
    where list_contains($actions, action) or (source = 'cloudtrail' and list_contains($trail_events, event_name))
    """, {"actions": p.rule("audit_tampering")["audit_actions"],
          "trail_events": p.rule("audit_tampering")["cloudtrail_events"]}


def denied_attempts(p: Policy) -> RuleSQL:
    r = p.rule("denied_attempts")
    return _burst("select 'actor' as key_kind, actor_id as key_value, audit_id as event_id, ts "
                  "from raw.audit_events where outcome = 'denied'",
                  "denied_attempts", "audit", r["min_denied"], r["window_minutes"], "denied actions")


RULES: dict[str, Callable[[Policy], RuleSQL]] = {
    "failed_login_burst": failed_login_burst,
    "blocked_country": blocked_country,
    "token_reuse": token_reuse,
    "impossible_travel": impossible_travel,
    "consent_violation": consent_violation,
    "role_not_permitted": role_not_permitted,
    "missing_justification": missing_justification,
    "bulk_export": bulk_export,
    "access_after_offboarding": access_after_offboarding,
    "audit_tampering": audit_tampering,
    "denied_attempts": denied_attempts,
}

VIOLATION_COLUMNS = (
    "violation_id VARCHAR, rule_id VARCHAR, severity VARCHAR, source VARCHAR, subject VARCHAR, "
    "subject_kind VARCHAR, window_start TIMESTAMP, window_end TIMESTAMP, event_ids VARCHAR[], "
    "event_count BIGINT, detected_at TIMESTAMP, details VARCHAR"
)


def prepare_pseudonyms(con: duckdb.DuckDBPyConnection) -> None:
    """Temp table _pseudonyms(kind, value, pseudonym) for the users in the access events."""
    con.execute(
        "create or replace temp table _pseudonyms as "
        "select 'user' as kind, value, sg_pseudonym(value) as pseudonym "
        "from (select distinct user_id as value from raw.access_events where user_id is not null)"
    )


def detect(con: duckdb.DuckDBPyConnection, policy: Policy, rule_ids: list[str] | None = None) -> dict[str, int]:
    """Run the rules and rewrite governance.violations; returns violations per rule.

    A violation keeps the detected_at of its first detection, so re-runs give identical rows.
    """
    enabled = [r for r in (rule_ids or list(RULES)) if policy.rule(r).get("enabled", True)]
    prepare_pseudonyms(con)
    con.execute("create or replace temp table _role_actions (role varchar, action varchar)")
    con.executemany("insert into _role_actions values (?, ?)",
                    [[role, action] for role, actions in policy.roles.items() for action in actions])
    con.execute("create or replace temp table _cand (rule_id varchar, source varchar, subject_kind varchar, "
                "subject_value varchar, window_start timestamp, window_end timestamp, event_ids varchar[], details varchar)")
    for rule_id in enabled:
        sql, params = RULES[rule_id](policy)
        con.execute(f"insert into _cand {sql}", params)
    con.execute("create table if not exists governance.violations (" + VIOLATION_COLUMNS + ")")
    con.execute("create or replace temp table _sev (rule_id varchar, severity varchar)")
    con.executemany("insert into _sev values (?, ?)", [[r, policy.severity(r)] for r in RULES])
    # A user burst and an IP burst over the very same events are one incident: keep the user subject.
    con.execute(
        """
        create or replace temp table _merged as
        select * from (
            select *, row_number() over (partition by rule_id, event_ids
                                         order by case subject_kind when 'user' then 0 when 'actor' then 1 else 2 end,
                                                  subject_value) as pick,
                      count(*) over (partition by rule_id, event_ids) as subjects
            from _cand)
        where pick = 1
        """
    )
    con.execute(
        """
        create or replace temp table _subjects as
        select kind, value, sg_pseudonym(value) as pseudonym
        from (select distinct subject_kind as kind, subject_value as value from _merged where subject_value is not null)
        """
    )
    con.execute(
        """
        create or replace temp table _new as
        select sha256(m.rule_id || chr(31) || array_to_string(m.event_ids, chr(31)))[:32] as violation_id,
               m.rule_id, s.severity, m.source, p.pseudonym as subject, m.subject_kind,
               m.window_start, m.window_end, m.event_ids, len(m.event_ids) as event_count,
               case when m.subjects > 1 then m.details || ' (also a burst of one client IP)' else m.details end as details
        from _merged m join _sev s using (rule_id)
        left join _subjects p on p.kind = m.subject_kind and p.value = m.subject_value
        """
    )
    con.execute("begin transaction")
    try:
        con.execute(
            """
            create or replace temp table _final as
            select n.violation_id, n.rule_id, n.severity, n.source, n.subject, n.subject_kind, n.window_start,
                   n.window_end, n.event_ids, n.event_count,
                   coalesce(o.detected_at, date_trunc('second', now()::timestamp)) as detected_at, n.details
            from _new n left join governance.violations o using (violation_id)
            """
        )
        con.execute("delete from governance.violations")
        con.execute("insert into governance.violations select * from _final order by window_start, rule_id, violation_id")
        con.execute("commit")
    except Exception:
        con.execute("rollback")
        raise
    counts = dict(con.execute("select rule_id, count(*) from governance.violations group by rule_id").fetchall())
    for t in ("_cand", "_merged", "_subjects", "_new", "_final", "_sev", "_role_actions", "_pseudonyms"):
        con.execute(f"drop table if exists {t}")
    return {r: int(counts.get(r, 0)) for r in enabled}
