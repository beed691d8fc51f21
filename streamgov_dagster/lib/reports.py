"""Report tables (reports.*) and report files for the DPO and auditors.

Aggregation is SQL in DuckDB; only the small aggregates are pulled into pandas to be rendered.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import duckdb
import pandas as pd

from .warehouse import column_types, table_exists

TREND_DAYS = 7


def suppress_small_cells(con: duckdb.DuckDBPyConnection, k: int) -> None:
    """Null the people-derived figures of every cell that counts fewer than k distinct people."""
    con.execute("alter table reports.access_audit_summary add column suppressed boolean")
    con.execute(
        "update reports.access_audit_summary set suppressed = (authenticated_users between 1 and ? - 1) "
        "or (active_actors between 1 and ? - 1), "
        "authenticated_users = case when authenticated_users between 1 and ? - 1 then null else authenticated_users end, "
        "active_actors = case when active_actors between 1 and ? - 1 then null else active_actors end",
        [k, k, k, k],
    )
    con.execute("alter table reports.consent_kpis add column suppressed boolean")
    con.execute(
        "update reports.consent_kpis set suppressed = users_with_decision < ?, "
        "users_with_decision = case when users_with_decision < ? then null else users_with_decision end, "
        "users_opted_in = case when users_with_decision < ? then null else users_opted_in end, "
        "opt_in_rate = case when users_with_decision < ? then null else opt_in_rate end, "
        "users_expired = case when users_with_decision < ? then null else users_expired end, "
        "expiring_soon = case when users_with_decision < ? then null else expiring_soon end, "
        "withdrawals = case when users_with_decision < ? then null else withdrawals end",
        [k] * 7,
    )


def unsuppressed_small_cells(con: duckdb.DuckDBPyConnection, k: int) -> int:
    """Cells still showing fewer than k people (the check's measure; must be 0)."""
    return int(con.execute(
        "select (select count(*) from reports.access_audit_summary where authenticated_users between 1 and ? - 1 "
        "or active_actors between 1 and ? - 1) + (select count(*) from reports.consent_kpis "
        "where users_with_decision between 1 and ? - 1)", [k, k, k]).fetchone()[0])


def build_tables(con: duckdb.DuckDBPyConnection, expiring_within_days: int = 30, small_cell_k: int = 5) -> dict[str, int]:
    con.execute(
        """
        create or replace table reports.compliance_kpis as
        select window_start::date as day, rule_id, severity, count(*) as violations,
               sum(event_count) as evidence_events, count(distinct subject) as subjects
        from governance.violations group by all order by day, rule_id
        """
    )
    con.execute(
        """
        create or replace table reports.access_audit_summary as
        with days as (
            select event_date as day from masked.access_events union select event_date from masked.audit_events
        ),
        acc as (
            select event_date as day, count(*) as access_events,
                   count(distinct user_pseudonym) as authenticated_users,
                   count(*) filter (where action = 'login' and status in (401, 403)) as failed_logins,
                   count(*) filter (where action = 'login' and status < 400) as successful_logins,
                   count(*) filter (where status >= 400) as failed_requests
            from masked.access_events group by event_date
        ),
        aud as (
            select event_date as day, count(*) as audit_events,
                   count(*) filter (where outcome = 'denied') as denied_audit_events,
                   count(distinct actor_pseudonym) as active_actors
            from masked.audit_events group by event_date
        ),
        vio as (
            select window_start::date as day, count(*) as violations,
                   count(*) filter (where severity = 'critical') as critical,
                   count(*) filter (where severity = 'high') as high,
                   count(*) filter (where severity = 'medium') as medium,
                   count(*) filter (where severity = 'low') as low
            from governance.violations group by all
        )
        select d.day, coalesce(acc.access_events, 0) as access_events,
               coalesce(acc.authenticated_users, 0) as authenticated_users,
               coalesce(acc.successful_logins, 0) as successful_logins,
               coalesce(acc.failed_logins, 0) as failed_logins,
               round(coalesce(acc.failed_logins, 0) / nullif(coalesce(acc.failed_logins, 0) + coalesce(acc.successful_logins, 0), 0), 4) as failed_login_ratio,
               round(coalesce(acc.failed_requests, 0) / nullif(acc.access_events, 0), 4) as failed_request_ratio,
               coalesce(aud.audit_events, 0) as audit_events, coalesce(aud.denied_audit_events, 0) as denied_audit_events,
               coalesce(aud.active_actors, 0) as active_actors,
               coalesce(vio.violations, 0) as violations, coalesce(vio.critical, 0) as critical,
               coalesce(vio.high, 0) as high, coalesce(vio.medium, 0) as medium, coalesce(vio.low, 0) as low
        from days d left join acc using (day) left join aud using (day) left join vio using (day)
        order by d.day
        """
    )
    # Consent KPIs as of the latest instant the data covers, so re-runs give the same figures.
    con.execute(
        """
        create or replace table reports.consent_kpis as
        with as_of as (
            select greatest((select max(ts) from masked.access_events),
                            (select max(valid_from) from consent.consent_state)) as t
        ),
        current as (
            select s.* from consent.consent_state s, as_of
            where s.valid_from <= as_of.t and (s.valid_to is null or s.valid_to > as_of.t)
        ),
        withdrawals as (
            select purpose, jurisdiction, source, count(*) as withdrawals
            from consent.consent_state where state = 'withdrawn' group by all
        )
        select c.purpose, coalesce(c.jurisdiction, 'unknown') as jurisdiction, coalesce(c.source, 'unknown') as source,
               count(*) as users_with_decision,
               count(*) filter (where c.state = 'granted') as users_opted_in,
               round(count(*) filter (where c.state = 'granted') / count(*), 4) as opt_in_rate,
               count(*) filter (where c.state = 'expired') as users_expired,
               count(*) filter (where c.state = 'granted' and c.expires_at is not null
                                and c.expires_at <= (select t from as_of) + to_days(?)) as expiring_soon,
               coalesce(any_value(w.withdrawals), 0) as withdrawals,
               (select t from as_of) as as_of
        from current c left join withdrawals w on w.purpose = c.purpose and w.jurisdiction is not distinct from c.jurisdiction
                                               and w.source is not distinct from c.source
        group by c.purpose, c.jurisdiction, c.source
        order by c.purpose, jurisdiction, source
        """,
        [expiring_within_days],
    )
    suppress_small_cells(con, small_cell_k)
    con.execute(
        """
        create or replace table reports.consent_activity as
        with days as (select distinct valid_from::date as day from consent.consent_state)
        select d.day,
               count(*) filter (where s.state = 'granted') as grants,
               count(*) filter (where s.state = 'denied') as denials,
               count(*) filter (where s.state = 'withdrawn') as withdrawals,
               count(*) filter (where s.state = 'expired') as expiries,
               coalesce((select count(*) from consent.signal_mismatches m where m.recorded_at::date = d.day), 0)
                   as signal_mismatches
        from days d join consent.consent_state s on s.valid_from::date = d.day
        group by d.day order by d.day
        """
    )
    con.execute(
        """
        create or replace table reports.top_subjects as
        select subject, subject_kind, count(*) as violations,
               list(distinct rule_id order by rule_id) as rules,
               case max(case severity when 'critical' then 3 when 'high' then 2 when 'medium' then 1 else 0 end)
                    when 3 then 'critical' when 2 then 'high' when 1 then 'medium' else 'low' end as max_severity,
               min(window_start) as first_seen, max(window_end) as last_seen
        from governance.violations
        group by subject, subject_kind
        order by violations desc, subject
        limit 20
        """
    )
    # The latest period ends on the last day with data; the previous period is the one before it.
    con.execute(
        """
        create or replace table reports.violation_trend as
        with bounds as (
            select coalesce(greatest((select max(event_date) from masked.access_events),
                                     (select max(event_date) from masked.audit_events)), current_date) as last_day
        ),
        periods as (
            select last_day - (? - 1) as cur_start, last_day as cur_end,
                   last_day - (2 * ? - 1) as prev_start, last_day - ? as prev_end from bounds
        ),
        counts as (
            select v.rule_id,
                   count(*) filter (where v.window_start::date between p.cur_start and p.cur_end) as current_period,
                   count(*) filter (where v.window_start::date between p.prev_start and p.prev_end) as previous_period
            from governance.violations v, periods p group by v.rule_id
        )
        select c.rule_id, p.cur_start as period_start, p.cur_end as period_end, c.current_period, c.previous_period,
               c.current_period - c.previous_period as change,
               case when c.previous_period = 0 then null
                    else round((c.current_period - c.previous_period) / c.previous_period, 4) end as change_ratio
        from counts c, periods p order by c.rule_id
        """,
        [TREND_DAYS, TREND_DAYS, TREND_DAYS],
    )
    return {t: int(con.execute(f"select count(*) from reports.{t}").fetchone()[0])
            for t in ("compliance_kpis", "access_audit_summary", "consent_kpis", "consent_activity", "top_subjects",
                      "violation_trend")}


@dataclass(frozen=True)
class ReportContext:
    key_id: str
    demo_key: bool
    policy_source: str
    generated_at: str


def _bar_chart(title: str, labels: list[str], values: list[int], color: str = "#3b6ea5") -> str:
    if not values:
        return f"<h3>{html.escape(title)}</h3><p>No data.</p>"
    width, bar_h, gap, label_w = 640, 18, 6, 200
    top = max(values) or 1
    rows = []
    for i, (label, value) in enumerate(zip(labels, values)):
        y = i * (bar_h + gap)
        w = int((width - label_w - 60) * value / top)
        rows.append(
            f'<text x="{label_w - 6}" y="{y + 13}" text-anchor="end" font-size="12">{html.escape(label)}</text>'
            f'<rect x="{label_w}" y="{y}" width="{w}" height="{bar_h}" fill="{color}"/>'
            f'<text x="{label_w + w + 4}" y="{y + 13}" font-size="12">{value}</text>'
        )
    height = len(values) * (bar_h + gap)
    return (f"<h3>{html.escape(title)}</h3><svg role='img' aria-label='{html.escape(title)}' width='{width}' "
            f"height='{height}' xmlns='http://www.w3.org/2000/svg'>{''.join(rows)}</svg>")


def _table(df: pd.DataFrame, limit: int | None = None) -> str:
    shown = df if limit is None else df.head(limit)
    note = "" if limit is None or len(df) <= limit else f"<p>Showing {limit} of {len(df)} rows; the full table is in the warehouse.</p>"
    return shown.to_html(index=False, border=0, classes="t", escape=True, na_rep="") + note


def _md_table(df: pd.DataFrame, limit: int | None = None) -> str:
    shown = df if limit is None else df.head(limit)
    if shown.empty:
        return "_none_\n"
    cols = list(shown.columns)
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for row in shown.itertuples(index=False):
        lines.append("| " + " | ".join("" if pd.isna(v) else str(v).replace("|", "\\|") for v in row) + " |")
    more = "" if limit is None or len(df) <= limit else f"\n_{limit} of {len(df)} rows shown._\n"
    return "\n".join(lines) + "\n" + more


def kpis(con: duckdb.DuckDBPyConnection) -> dict[str, object]:
    row = con.execute(
        """
        select (select count(*) from governance.violations),
               (select count(*) from governance.violations where severity in ('critical', 'high')),
               (select count(distinct rule_id) from governance.violations),
               (select count(*) from masked.access_events), (select count(*) from masked.audit_events),
               (select coalesce(sum(lines_read), 0) from governance.ingestion_summary),
               (select coalesce(sum(rows_quarantined), 0) from governance.ingestion_summary),
               (select round(count(*) filter (where state = 'granted') / nullif(count(*), 0), 4)
                  from consent.consent_state where valid_to is null),
               (select count(*) from consent.signal_mismatches)
        """
    ).fetchone()
    figures = {"violations": row[0], "high_or_critical": row[1], "rules_fired": row[2], "access_events": row[3],
               "audit_events": row[4], "lines_read": row[5], "lines_quarantined": row[6], "opt_in_rate_now": row[7],
               "consent_signal_mismatches": row[8]}
    if table_exists(con, "reports", "dsar_status"):
        d = con.execute("select count(*) filter (where status = 'open'), count(*) filter (where status = 'overdue'), "
                        "count(*) filter (where status in ('answered', 'answered_late')) from reports.dsar_status").fetchone()
        figures.update({"dsar_open": d[0], "dsar_overdue": d[1], "dsar_answered": d[2]})
    return figures


def write_files(con: duckdb.DuckDBPyConnection, reports_dir: Path, ctx: ReportContext,
                figures: dict[str, object]) -> dict[str, Path]:
    reports_dir.mkdir(parents=True, exist_ok=True)
    summary = con.execute("select * from reports.access_audit_summary order by day").df()
    consent_kpis = con.execute("select * exclude (as_of) from reports.consent_kpis order by purpose, jurisdiction").df()
    by_rule = con.execute("select rule_id, severity, count(*) as n from governance.violations group by all "
                          "order by n desc, rule_id").df()
    by_day = con.execute("select window_start::date::varchar as day, count(*) as n from governance.violations "
                         "group by all order by day").df()
    violations = con.execute(
        "select violation_id, rule_id, severity, source, left(subject, 12) as subject, window_start, window_end, "
        "event_count, details from governance.violations order by "
        "case severity when 'critical' then 0 when 'high' then 1 when 'medium' then 2 else 3 end, window_start, violation_id"
    ).df()
    ingestion = con.execute("select * from governance.ingestion_summary order by source, file").df()
    top = con.execute("select left(subject, 12) as subject, subject_kind, violations, array_to_string(rules, ', ') as rules, "
                      "max_severity from reports.top_subjects order by violations desc, subject").df()
    trend = con.execute("select * from reports.violation_trend order by rule_id").df()
    quality = (con.execute("select * from reports.detection_quality order by rule_id").df()
               if table_exists(con, "reports", "detection_quality") else pd.DataFrame())
    activity = con.execute("select * from reports.consent_activity order by day").df()
    mismatches = con.execute("select finding, purpose, count(*) as n from consent.signal_mismatches "
                             "group by all order by n desc").df()
    dsar_requests = (con.execute("select request_id, type, received_at, deadline, answered_at, status, "
                                 "days_to_deadline from reports.dsar_status order by deadline, request_id").df()
                     if table_exists(con, "reports", "dsar_status") else pd.DataFrame())
    k = figures

    paths = {
        "html": reports_dir / "compliance_report.html",
        "md": reports_dir / "compliance_report.md",
        "access_audit_summary": reports_dir / "access_audit_summary.csv",
        "consent_management_log": reports_dir / "consent_management_log.csv",
    }
    summary.to_csv(paths["access_audit_summary"], index=False)
    copy_csv(con, "consent.consent_log", "seq", paths["consent_management_log"])

    banner = ("<p class='warn'><strong>Demo pseudonym key in use.</strong> STREAMGOV_PSEUDONYM_KEY is not set: "
              "pseudonyms in this report are computed with the public demo key and are NOT protected.</p>"
              if ctx.demo_key else "")
    tiles = "".join(f"<div class='tile'><div class='v'>{html.escape(str(v))}</div><div class='k'>{html.escape(k_)}</div></div>"
                    for k_, v in k.items())
    doc = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>streamgov compliance report</title>
<style>
body{{font-family:system-ui,sans-serif;margin:2rem;color:#222;max-width:1100px}}
.tile{{display:inline-block;border:1px solid #ccd;border-radius:6px;padding:.6rem 1rem;margin:.3rem;min-width:9rem}}
.tile .v{{font-size:1.5rem;font-weight:600}} .tile .k{{font-size:.8rem;color:#555}}
table.t{{border-collapse:collapse;font-size:.85rem}} table.t td,table.t th{{border-bottom:1px solid #ddd;padding:.25rem .5rem;text-align:left}}
.warn{{background:#fff3cd;border:1px solid #e0c060;padding:.6rem;border-radius:4px}}
</style></head><body>
<h1>Compliance report</h1>
<p>Generated {html.escape(ctx.generated_at)} · pseudonym key id <code>{html.escape(ctx.key_id)}</code> ·
policy: {html.escape(ctx.policy_source)}</p>
{banner}
<h2>Key figures</h2>{tiles}
<h2>Violations</h2>
{_bar_chart("Violations by rule", [f"{r.rule_id} ({r.severity})" for r in by_rule.itertuples()], [int(r.n) for r in by_rule.itertuples()], "#a53b3b")}
{_bar_chart("Violations by day", list(by_day["day"]), [int(v) for v in by_day["n"]])}
{_table(violations, 500)}
<h2>Top subjects</h2>{_table(top)}
<h2>Trend: latest {TREND_DAYS} days against the {TREND_DAYS} before</h2>{_table(trend)}
<h2>Access audit summary (per day)</h2>{_table(summary)}
<h2>Consent KPIs (current state per purpose, jurisdiction and source)</h2>{_table(consent_kpis)}
<h2>Consent activity per day</h2>{_table(activity)}
<h2>Consent signal mismatches (TC string against recorded status)</h2>{_table(mismatches) if not mismatches.empty else "<p>None.</p>"}
<h2>Data-subject requests (deadline: one month after receipt)</h2>{_table(dsar_requests) if not dsar_requests.empty else "<p>None.</p>"}
<h2>Ingestion</h2>{_table(ingestion)}
{"<h2>Detection quality (against the ground truth)</h2>" + _table(quality) if not quality.empty else ""}
<p>Subjects are keyed pseudonyms (first 12 hex characters shown); no raw identifier appears in this report.</p>
</body></html>
"""
    paths["html"].write_text(doc, encoding="utf-8")

    md = [
        "# Compliance report", "",
        f"Generated {ctx.generated_at}; pseudonym key id `{ctx.key_id}`; policy: {ctx.policy_source}.", "",
    ]
    if ctx.demo_key:
        md += ["> **Demo pseudonym key in use**: STREAMGOV_PSEUDONYM_KEY is not set; pseudonyms are not protected.", ""]
    md += ["## Key figures", "", _md_table(pd.DataFrame([k])), "## Violations by rule", "", _md_table(by_rule),
           "## Violations", "", _md_table(violations, 200), "## Top subjects", "", _md_table(top),
           f"## Trend: latest {TREND_DAYS} days against the {TREND_DAYS} before", "", _md_table(trend),
           "## Access audit summary", "", _md_table(summary),
           "## Consent KPIs", "", _md_table(consent_kpis), "## Consent activity per day", "", _md_table(activity),
           "## Consent signal mismatches", "", _md_table(mismatches),
           "## Data-subject requests", "", _md_table(dsar_requests) if not dsar_requests.empty else "None.", "",
           "## Ingestion", "", _md_table(ingestion)]
    if not quality.empty:
        md += ["## Detection quality", "", _md_table(quality)]
    paths["md"].write_text("\n".join(md), encoding="utf-8")
    return paths


def copy_csv(con: duckdb.DuckDBPyConnection, table: str, order_by: str, path: Path) -> None:
    """Write a table to CSV straight from DuckDB (no DataFrame), rendered as pandas' to_csv rendered it:
    empty strings unquoted, booleans True/False, each timestamp column to the finest unit its values need."""
    schema, name = table.split(".", 1)
    select = []
    for column, sql_type in column_types(con, schema, name):
        if sql_type == "VARCHAR":
            select.append(f"nullif({column}, '') as {column}")
        elif sql_type == "BOOLEAN":
            select.append(f"case when {column} then 'True' when not {column} then 'False' end as {column}")
        elif sql_type == "TIMESTAMP":
            # pandas writes a column to the finest unit any of its values needs: seconds, ms or µs
            us, ms = con.execute(f"select bool_or(epoch_us({column}) % 1000 <> 0), "
                                 f"bool_or(epoch_us({column}) % 1000000 <> 0) from {table}").fetchone()
            fmt = "%Y-%m-%d %H:%M:%S" + (".%f" if us else ".%g" if ms else "")
            select.append(f"strftime({column}, '{fmt}') as {column}")
        elif sql_type in ("BIGINT", "INTEGER"):
            select.append(column)
        else:
            raise ValueError(f"{table}.{column}: no CSV rendering for {sql_type}")
    con.execute(f"copy (select {', '.join(select)} from {table} order by {order_by}) to '{path}' "
                "(header, delimiter ',')")


def now_utc() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
