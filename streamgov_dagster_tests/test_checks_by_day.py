"""Checks of day-partitioned tables look at the days their run wrote."""

import json
from datetime import date
from types import SimpleNamespace

from streamgov_dagster.defs.partitions import run_day_range
from streamgov_dagster.lib import ingest, masking
from streamgov_dagster.lib.policy import load_policy
from streamgov_dagster.lib.validation import validate
from streamgov_dagster_tests.landing import access

BOUNDS = (date(2000, 1, 1), date(2030, 1, 1))


def _loaded_and_masked(con, tmp_path, events: list[dict]) -> None:
    """The events as one landing file, loaded into raw.access_events and masked, for 29-30 October."""
    root = tmp_path / "landing"
    (root / "access").mkdir(parents=True)
    (root / "access" / "a.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))
    ingest.load(con, ingest.ACCESS, root, ingest.list_files(root / "access", ingest.JSON_PATTERNS),
                date(2026, 10, 29), date(2026, 10, 30), BOUNDS)
    masking.build(con, load_policy(), "access_events", date(2026, 10, 29), date(2026, 10, 30), "k")


def test_run_day_range_from_the_run_tags() -> None:
    def ctx(tags: dict) -> SimpleNamespace:
        return SimpleNamespace(run=SimpleNamespace(tags=tags))

    assert run_day_range(ctx({"dagster/asset_partition_range_start": "2026-10-29",
                              "dagster/asset_partition_range_end": "2026-10-30"})) == (date(2026, 10, 29), date(2026, 10, 30))
    assert run_day_range(ctx({"dagster/partition": "2026-10-31"})) == (date(2026, 10, 31), date(2026, 10, 31))
    assert run_day_range(ctx({})) is None


def test_validation_and_leak_count_of_some_days(con, tmp_path) -> None:
    _loaded_and_masked(con, tmp_path, [access("a1", "2026-10-29T10:00:00Z", user_id="u-one"),
                                        access("b1", "2026-10-30T10:00:00Z", user_id="u-two")])
    # a row of 29 October that breaks the contract, and a raw id copied into a released column
    con.execute("update raw.access_events set action = 'rewind' where event_id = 'a1'")
    con.execute("update masked.access_events set country = 'u-one' where event_id = 'a1'")
    assert not validate(con, "raw.access_events").passed
    assert not validate(con, "raw.access_events", days=(date(2026, 10, 29), date(2026, 10, 29))).passed
    only_30 = validate(con, "raw.access_events", days=(date(2026, 10, 30), date(2026, 10, 30)))
    assert only_30.passed and only_30.rows == 1
    policy = load_policy()
    assert masking.probe_released(con, policy, "masked.access_events", ["country"])[0]["country"] == 1
    assert masking.probe_released(con, policy, "masked.access_events", ["country"],
                                  (date(2026, 10, 29), date(2026, 10, 29)))[0]["country"] == 1
    assert masking.probe_released(con, policy, "masked.access_events", ["country"],
                                  (date(2026, 10, 30), date(2026, 10, 30)))[0]["country"] == 0
    # a raw id in a pseudonym column is found too, and counted by row
    con.execute("update masked.access_events set session_pseudonym = 'u-two' where event_id = 'b1'")
    leaks = masking.probe_released(con, policy, "masked.access_events", ["country", "session_pseudonym"])[0]
    assert leaks == {"country": 1, "session_pseudonym": 1}
    con.execute("update masked.access_events set session_pseudonym = null where event_id = 'b1'")
    # the masked formats (pseudonyms, networks, purposes) are checked in one scan each, failing values counted
    con.execute("update masked.access_events set user_pseudonym = 'not-a-pseudonym', client_network = '10.1.2.3', "
                "purpose = 'resale' where event_id = 'b1'")
    masked = validate(con, "masked.access_events")
    assert masked.failures == {"user_pseudonym.str_matches": 1, "client_network.str_matches": 1, "purpose.isin": 1}
    assert validate(con, "masked.access_events", days=(date(2026, 10, 29), date(2026, 10, 29))).passed
    # the formats are matched over the distinct values first; a failure still counts the rows (one value, two rows)
    con.execute("update masked.access_events set user_pseudonym = 'not-a-pseudonym' where event_id = 'a1'")
    assert validate(con, "masked.access_events").failures["user_pseudonym.str_matches"] == 2
    # the raw contract's purposes, checked in one scan as well
    con.execute("update raw.access_events set purpose = 'resale' where event_id = 'b1'")
    assert validate(con, "raw.access_events", days=(date(2026, 10, 30), date(2026, 10, 30))).failures == {"purpose.isin": 1}


def test_value_checks_of_the_event_tables_count_the_failing_rows(con, tmp_path) -> None:
    """action, purpose, source and status are checked over their distinct values first, bytes in one aggregate; a failure
    is counted by row under the built-in check's name, and a null passes where the column may be null."""
    _loaded_and_masked(con, tmp_path, [access(f"e{i}", f"2026-10-{29 + i % 2}T10:00:0{i}Z") for i in range(6)])
    con.execute("update raw.access_events set bytes = null, purpose = null where event_id = 'e0'")
    con.execute("update masked.access_events set bytes = null, purpose = null where event_id = 'e0'")
    assert validate(con, "raw.access_events").passed and validate(con, "masked.access_events").passed
    for table in ("raw.access_events", "masked.access_events"):
        con.execute(f"update {table} set action = 'rewind', bytes = -1 where event_id in ('e1', 'e3')")
        # status: 0..599, over its distinct values first as well
        con.execute(f"update {table} set status = 600 where event_id in ('e1', 'e5')")
        con.execute(f"update {table} set status = -1 where event_id = 'e4'")
    con.execute("update masked.access_events set source = 'ftp' where event_id in ('e2', 'e3', 'e4')")
    broken = {"action.isin": 2, "bytes.greater_than_or_equal_to": 2, "status.less_than_or_equal_to": 2,
              "status.greater_than_or_equal_to": 1}
    assert validate(con, "raw.access_events").failures == broken
    assert validate(con, "masked.access_events").failures == {**broken, "source.isin": 3}
    # the rows of 29 October (e0, e2, e4) break the masked source and e4's status
    assert validate(con, "masked.access_events", days=(date(2026, 10, 29), date(2026, 10, 29))).failures == {
        "source.isin": 2, "status.greater_than_or_equal_to": 1}


def test_a_column_declared_unique_is_checked(con, tmp_path) -> None:
    """pandera's ibis backend accepts Field(unique=True) without checking it; validate() checks it, counting
    the duplicated rows (the values are never reported)."""
    _loaded_and_masked(con, tmp_path, [access(f"e{i}", f"2026-10-{29 + i % 2}T10:00:0{i}Z") for i in range(6)])
    assert validate(con, "raw.access_events").passed and validate(con, "masked.access_events").passed
    # two rows of 29 October take the id of a third (a bug the ingest's duplicate marking would not catch)
    con.execute("update masked.access_events set event_id = 'e0' where event_id in ('e2', 'e4')")
    con.execute("update raw.access_events set event_id = 'e1' where event_id = 'e3'")
    assert validate(con, "masked.access_events").failures == {"event_id.unique": 3}
    assert validate(con, "masked.access_events", days=(date(2026, 10, 30), date(2026, 10, 30))).passed
    assert validate(con, "raw.access_events").failures == {"event_id.unique": 2}


def test_the_leak_scan_skips_only_the_columns_a_masked_check_verified(con, tmp_path) -> None:
    """leakguard.scan_tables(verified=...): the columns (here the pseudonyms) of the days a masked check of the
    same run passed and found clear are not read again; every other day, column and table still is, and
    without `verified` a planted raw id is found wherever it is."""
    from streamgov_dagster.lib import leakguard
    from streamgov_dagster.lib.models import PSEUDONYM_COLUMNS

    _loaded_and_masked(con, tmp_path, [access("a1", "2026-10-29T10:00:00Z", user_id="u-one"),
                                        access("b1", "2026-10-30T10:00:00Z", user_id="u-two")])
    policy = load_policy()
    assert leakguard.scan_tables(con, set()) == {}
    # a raw id in a pseudonym column on 10-29 and in another column on 10-30
    con.execute("update masked.access_events set session_pseudonym = 'u-one' where event_id = 'a1'")
    con.execute("update masked.access_events set content_id = 'u-two' where event_id = 'b1'")
    found = {"masked.access_events.session_pseudonym:raw_identifier": 1, "masked.access_events.content_id:raw_identifier": 1}
    assert leakguard.scan_tables(con, set()) == found
    pseudonyms = frozenset(PSEUDONYM_COLUMNS["masked.access_events"])
    # the masked check would have failed on 10-29 (a value that is no pseudonym, and a raw id): it vouches
    # for 10-30 only, so 10-29's pseudonyms are read, and so is every other column
    assert leakguard.scan_tables(con, set(), verified={"masked.access_events": (pseudonyms, (date(2026, 10, 30),) * 2)}) == found
    assert leakguard.scan_tables(con, set(), (date(2026, 10, 29), date(2026, 10, 29)),
                                 {"masked.access_events": (pseudonyms, (date(2026, 10, 30),) * 2)}) \
        == {"masked.access_events.session_pseudonym:raw_identifier": 1}
    # what a check vouches for is not read again: all days, or the run's days of a run of some days
    assert leakguard.scan_tables(con, set(), verified={"masked.access_events": (pseudonyms, None)}) \
        == {"masked.access_events.content_id:raw_identifier": 1}
    assert leakguard.scan_tables(con, set(), (date(2026, 10, 29), date(2026, 10, 29)),
                                 {"masked.access_events": (pseudonyms, (date(2026, 10, 29), date(2026, 10, 30)))}) == {}
    # and the masked check itself finds both, with the leak scan's identifiers among its own
    assert masking.probe_released(con, policy, "masked.access_events", ["session_pseudonym", "content_id"])[0] \
        == {"session_pseudonym": 1, "content_id": 1}
    assert validate(con, "masked.access_events").failures == {"session_pseudonym.str_matches": 1}


def test_the_masked_check_counts_what_the_leak_scans_prefilter_keeps(con, tmp_path) -> None:
    """masking.probe_released: besides the raw identifiers, the values of the columns given a prefilter that
    match it (the unique id by row, the others by distinct value); a network column's prefilter ignores
    addresses, as the leak scan does. A column is only vouched for when both counts are zero."""
    from streamgov_dagster.lib import leakguard

    _loaded_and_masked(con, tmp_path, [access(f"e{i}", f"2026-10-29T10:00:0{i}Z", content_id="c-1") for i in range(3)])
    con.execute("update masked.access_events set content_id = '192.0.2.55' where event_id in ('e0', 'e1')")
    con.execute("update masked.access_events set event_id = 'e.2' where event_id = 'e2'")
    columns = ["event_id", "content_id", "client_network", "user_pseudonym"]
    prefilters = {"event_id": leakguard.prefilter(network=False), "content_id": leakguard.prefilter(network=False),
                  "client_network": leakguard.prefilter(network=True)}
    leaks, candidates = masking.probe_released(con, load_policy(), "masked.access_events", columns, None, prefilters)
    assert leaks == dict.fromkeys(columns, 0)
    assert candidates == {"event_id": 1, "content_id": 1, "client_network": 0}
    assert leakguard.scan_tables(con, {"masked.access_events.client_network"}) == \
        {"masked.access_events.content_id:ipv4": 1}
