"""Detection quality: the violations measured against a ground truth of planted incidents.

The generator writes `<landing>/ground_truth.jsonl` (kind incident | near_miss, rule_id, event_ids).
A planted incident is found when a violation of the same rule cites at least one of its events, and
matched exactly when the violation cites exactly its events. A violation citing no planted incident of
its rule is a false positive; a near miss fired when a violation of its rule cites one of its events.
"""

from __future__ import annotations

from pathlib import Path

import duckdb

from .policy import RULE_IDS

GROUND_TRUTH = "ground_truth.jsonl"


def build(con: duckdb.DuckDBPyConnection, landing_dir: Path) -> bool:
    """Rewrite reports.detection_quality; False (and an empty table) when there is no ground truth."""
    path = landing_dir / GROUND_TRUTH
    con.execute("create or replace temp table _truth (tid bigint, kind varchar, rule_id varchar, event_ids varchar[])")
    if path.exists():
        con.execute(
            "insert into _truth select row_number() over (), kind, rule_id, event_ids from read_json(?, "
            "format='newline_delimited', columns={'kind': 'VARCHAR', 'rule_id': 'VARCHAR', 'event_ids': 'VARCHAR[]'}) "
            "where kind in ('incident', 'near_miss')",
            [str(path)],
        )
    con.execute("create or replace temp table _rules (rule_id varchar)")
    con.executemany("insert into _rules values (?)", [[r] for r in RULE_IDS])
    con.execute(
        """
        create or replace table reports.detection_quality as
        with v as (select violation_id, rule_id, event_ids from governance.violations),
        inc as (
            select t.rule_id,
                   exists (select 1 from v where v.rule_id = t.rule_id and len(list_intersect(v.event_ids, t.event_ids)) > 0) as found,
                   exists (select 1 from v where v.rule_id = t.rule_id and list_sort(v.event_ids) = list_sort(t.event_ids)) as exact
            from _truth t where t.kind = 'incident'
        ),
        viol as (
            select v.rule_id,
                   not exists (select 1 from _truth t where t.kind = 'incident' and t.rule_id = v.rule_id
                               and len(list_intersect(v.event_ids, t.event_ids)) > 0) as false_positive
            from v
        ),
        nm as (
            select t.rule_id,
                   exists (select 1 from v where v.rule_id = t.rule_id and len(list_intersect(v.event_ids, t.event_ids)) > 0) as fired
            from _truth t where t.kind = 'near_miss'
        )
        select r.rule_id,
               (select count(*) from inc where inc.rule_id = r.rule_id) as planted,
               (select count(*) from inc where inc.rule_id = r.rule_id and found) as found,
               (select count(*) from inc where inc.rule_id = r.rule_id and exact) as exact_matches,
               round((select count(*) filter (where found) / nullif(count(*), 0) from inc where inc.rule_id = r.rule_id), 4) as recall,
               (select count(*) from viol where viol.rule_id = r.rule_id) as violations,
               (select count(*) from viol where viol.rule_id = r.rule_id and false_positive) as false_positives,
               (select count(*) from nm where nm.rule_id = r.rule_id) as near_misses,
               (select count(*) from nm where nm.rule_id = r.rule_id and fired) as near_misses_fired
        from _rules r
        where (select count(*) from _truth) > 0
        order by r.rule_id
        """
    )
    con.execute("drop table if exists _truth; drop table if exists _rules")
    return path.exists()
