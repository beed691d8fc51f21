"""The `streamgov` command: generate a landing zone, run the governance job, query the warehouse."""

from __future__ import annotations

import argparse
import csv
import gc
import os
import shutil
import sys
import threading
from datetime import date
from pathlib import Path

from streamgov_dagster.lib.settings import ConfigError, Settings

EXIT_OK, EXIT_FAILED, EXIT_INPUT = 0, 1, 2
RANGE_START, RANGE_END = "dagster/asset_partition_range_start", "dagster/asset_partition_range_end"


def _dagster_home() -> Path:
    """Use DAGSTER_HOME, or ./.dagster_home with the project's dagster.yaml, shared with `make ui`."""
    if os.environ.get("DAGSTER_HOME"):
        home = Path(os.environ["DAGSTER_HOME"])
    else:
        home = Path(".dagster_home").resolve()
        os.environ["DAGSTER_HOME"] = str(home)
    home.mkdir(parents=True, exist_ok=True)
    config = Path("dagster.yaml")
    if config.exists() and not (home / "dagster.yaml").exists():
        shutil.copyfile(config, home / "dagster.yaml")
    return home


def _target(settings: Settings):
    from streamgov_dagster.lib.warehouse import Target

    return Target(backend=settings.warehouse, duckdb_path=str(settings.duckdb_path),
                  catalog=settings.ducklake_catalog, data_path=settings.ducklake_data_path)


def _landing_span(settings: Settings) -> tuple[date, date] | None:
    """The first and last day that hold events in the landing zone (None: no events). It needs neither Dagster
    nor the definitions: `streamgov run` computes it in a thread while it imports them (below)."""
    import duckdb

    from streamgov_dagster.lib.formats import landing_day_span

    known = _ledger_files(settings)
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    # a scan of every landing file: no progress bar in the terminal (nor its cost), as in the warehouse sessions
    con.execute("SET enable_progress_bar = false")
    try:
        return landing_day_span(con, settings.landing_dir, known)
    finally:
        con.close()


def _clamp(span: tuple[date, date] | None) -> tuple[date, date]:
    """The landing zone's day span within the partitions (the last partition when there are no events)."""
    from streamgov_dagster.defs.partitions import partition_bounds

    lo, hi = partition_bounds()
    if span is None:
        return hi, hi
    return max(span[0], lo), min(max(span[1], lo), hi)


class _Background(threading.Thread):
    """A call run in a thread; result() re-raises what it raised."""

    def __init__(self, fn, *args) -> None:
        super().__init__(daemon=True)
        self._fn, self._args, self._value, self._error = fn, args, None, None
        self.start()

    def run(self) -> None:
        try:
            self._value = self._fn(*self._args)
        except BaseException as exc:  # noqa: BLE001 - handed to the caller
            self._error = exc

    def result(self):
        self.join()
        if self._error is not None:
            raise self._error
        return self._value


def _ledger_files(settings: Settings) -> dict[str, dict]:
    """The ledger's records of the JSON-lines files the warehouse has read (ingest.ledger_files), so that
    unchanged files are not scanned again before a run; empty when there is no warehouse yet or it cannot
    be opened read-only now (another process writing the file): then every file is scanned."""
    import duckdb

    from streamgov_dagster.lib import ingest

    con = _read_only_warehouse(settings, report=False)
    if con is None:
        return {}
    try:
        return {source: ingest.ledger_files(con, source) for source in ("access", "audit")}
    except duckdb.Error:
        return {}
    finally:
        con.close()  # the run opens the warehouse for writing in this process


def cmd_run(args: argparse.Namespace) -> int:
    settings = Settings.from_env()
    if not settings.landing_dir.is_dir():
        print(f"error: landing zone {settings.landing_dir} does not exist (set STREAMGOV_LANDING_DIR)", file=sys.stderr)
        return EXIT_INPUT
    _dagster_home()
    # The landing zone's day span is a scan of every new landing file inside DuckDB, which releases the GIL:
    # it runs while Python imports Dagster and the definitions (about 2 s each at 10M events).
    span = None if args.start else _Background(_landing_span, settings)
    import dagster as dg

    from streamgov_dagster.definitions import defs
    from streamgov_dagster.defs.alerting.sensors import failed_checks
    from streamgov_dagster.defs.resources import held_open, warehouse_resource

    # the instance and the job while the span is still being scanned (0.15-0.3 s less before the run at 10M events)
    instance = dg.DagsterInstance.get()
    job = defs().resolve_job_def("governance_job")
    # Dagster's modules and the definitions stay alive for the whole process: the collector's full passes during
    # the run need not walk them again (0.45 -> 0.23 s of them in a run of the demo data)
    gc.freeze()
    first, last = (date.fromisoformat(args.start), date.fromisoformat(args.end)) if span is None \
        else _clamp(span.result())
    if not settings.pseudonym_key_set:
        print("WARNING: STREAMGOV_PSEUDONYM_KEY is not set. Pseudonyms use the public DEMO key (key id 'demo'):"
              " they are not protected. Set the variable for real data.", file=sys.stderr)
    print(f"streamgov run: landing {settings.landing_dir}, days {first}..{last}, warehouse {_target(settings).describe()}")
    # The full event stream is in the Dagster instance (`make ui`); the console shows warnings only.
    level = "INFO" if args.verbose else "WARNING"
    # the warehouse file stays open between the steps (held_open), through the steps' own resource configuration
    db = warehouse_resource(str(settings.duckdb_path), settings.warehouse, settings.ducklake_catalog,
                            settings.ducklake_data_path)
    with held_open(db):
        result = job.execute_in_process(instance=instance, raise_on_error=False,
                                        run_config={"loggers": {"console": {"config": {"log_level": level}}}},
                                        tags={RANGE_START: first.isoformat(), RANGE_END: last.isoformat()})
    checks = failed_checks(instance, result.run_id)
    for c in checks:
        print(f"check failed [{c['severity']}]: {c['asset']} {c['check']}", file=sys.stderr)
    sent = _dispatch_alerts(settings, result, checks)
    if not result.success:
        print(f"run {result.run_id} FAILED: see the run in the Dagster UI (`make ui`); {sent} alert(s) sent to "
              f"{settings.alerts_path}", file=sys.stderr)
        return EXIT_FAILED
    print(f"run {result.run_id} succeeded")
    _print_summary(settings)
    print(f"alerts\n  {sent} new alert(s) sent to {settings.alerts_path}")
    if any(c["severity"] == "ERROR" for c in checks):
        print("an input could not be read (failed ERROR check above)", file=sys.stderr)
        return EXIT_INPUT
    return EXIT_OK


def _dispatch_alerts(settings: Settings, result, checks: list[dict]) -> int:
    """Send what the alert sensors would send, for a run made without the Dagster daemon. The sink's
    ledger keeps every alert to one delivery when the daemon's sensors see the same run."""
    from streamgov_dagster.lib import alerts, dsar
    from streamgov_dagster.lib.policy import load_policy
    from streamgov_dagster.lib.warehouse import connect

    policy = load_policy(settings.policy_dir)
    payloads: list[dict] = []
    if result.success:
        con = connect(_target(settings), read_only=True)
        try:
            payloads += alerts.violation_payloads(con, policy.min_alert_severity)
            payloads += dsar.deadline_payloads(con, policy.alerting["dsar_warning_days"])
        finally:
            con.close()
        if checks:
            payloads.append(alerts.check_failure_payload(result.run_id, checks))
    else:
        failures = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
        error = failures[0].event_specific_data.error if failures and failures[0].event_specific_data else None
        payloads.append(alerts.run_failure_payload(result.run_id, result.job_def.name,
                                                   sorted({e.step_key for e in failures if e.step_key}), checks,
                                                   error.cls_name if error else None))
    return alerts.send(settings.alerts_path, payloads, settings.alert_webhook_url,
                       policy.alerting["webhook_timeout_seconds"])


def _print_summary(settings: Settings) -> None:
    from streamgov_dagster.lib.reports import kpis
    from streamgov_dagster.lib.warehouse import connect

    con = connect(_target(settings), read_only=True)
    try:
        figures = kpis(con)
        by_rule = con.execute("select rule_id, severity, count(*) from governance.violations group by all "
                              "order by 3 desc, 1").fetchall()
    finally:
        con.close()
    print("\nKPI summary")
    for key, value in figures.items():
        print(f"  {key:<20} {value}")
    print("violations by rule")
    for rule_id, severity, n in by_rule:
        print(f"  {rule_id:<26} {severity:<9} {n}")
    print("reports")
    for name in ("compliance_report.html", "compliance_report.md", "access_audit_summary.csv",
                 "consent_management_log.csv"):
        print(f"  {settings.reports_dir / name}")
    exports = settings.reports_dir / "dsar"
    if exports.is_dir():
        answered = sum(1 for p in exports.iterdir() if p.is_dir() and not p.name.startswith("."))
        print(f"  {exports}/ ({answered} access-request export(s); `streamgov dsar status` lists every request)")


def _read_only_warehouse(settings: Settings | None = None, report: bool = True):
    """A read-only connection to the configured warehouse, or None when it is absent or cannot be reached,
    with a message when `report` (the message never shows the DuckLake catalog's connection string)."""
    import duckdb

    from streamgov_dagster.lib.warehouse import connect

    settings = settings or Settings.from_env()
    target = _target(settings)
    if not target.is_lake and not settings.duckdb_path.exists():
        if report:
            print(f"error: warehouse {settings.duckdb_path} does not exist; run `streamgov run` first", file=sys.stderr)
        return None
    try:
        return connect(target, read_only=True)
    except (duckdb.Error, ValueError, RuntimeError) as exc:
        if report:
            print(f"error: {target.describe()}: {exc}", file=sys.stderr)
        return None


def cmd_query(args: argparse.Namespace) -> int:
    import duckdb

    con = _read_only_warehouse()
    if con is None:
        return EXIT_INPUT
    try:
        cur = con.execute(args.sql)
        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow([d[0] for d in cur.description])
        while rows := cur.fetchmany(10_000):
            writer.writerows(rows)
    except duckdb.Error as exc:
        from streamgov_dagster.lib.warehouse import scrub

        print(f"error: {scrub(exc, _target(Settings.from_env())) or exc}", file=sys.stderr)
        return EXIT_FAILED
    finally:
        con.close()
    return EXIT_OK


def cmd_verify_log(args: argparse.Namespace) -> int:
    """Recompute the consent log's hash chain over the configured warehouse."""
    from streamgov_dagster.lib.consentlog import verify

    con = _read_only_warehouse()
    if con is None:
        return EXIT_INPUT
    try:
        report = verify(con)
    finally:
        con.close()
    if report.intact:
        print(f"consent log intact: {report.entries} entries verified")
        return EXIT_OK
    print(f"consent log BROKEN at entry {report.first_broken_seq}: {report.problem}", file=sys.stderr)
    return EXIT_FAILED


def cmd_decode_tc(args: argparse.Namespace) -> int:
    """Decode an IAB TCF v2 TC string to JSON."""
    import json

    from streamgov_dagster.lib.tcf import TCFError, decode

    try:
        decoded = decode(args.tc_string)
    except TCFError as exc:
        print(f"error: not a valid TCF v2 TC string: {exc}", file=sys.stderr)
        return EXIT_FAILED
    print(json.dumps(decoded, indent=2, sort_keys=False))
    return EXIT_OK


def cmd_dsar_status(args: argparse.Namespace) -> int:
    """The data-subject requests and their deadlines, as of the last run (no user id is shown)."""
    con = _read_only_warehouse()
    if con is None:
        return EXIT_INPUT
    try:
        from streamgov_dagster.lib.warehouse import table_exists

        if not table_exists(con, "reports", "dsar_status"):
            print("no data-subject requests processed yet", file=sys.stderr)
            return EXIT_OK
        # verified_at from the log itself: the status report is built before the run's verification
        rows = con.execute("select s.request_id, s.type, s.received_at, s.deadline, s.answered_at, s.status, "
                           "datediff('day', now()::timestamp, s.deadline), l.verified_at from reports.dsar_status s "
                           "left join governance.dsar_log l using (request_id) order by s.deadline, s.request_id").fetchall()
    finally:
        con.close()
    print(f"{'request_id':<24} {'type':<8} {'received_at':<20} {'deadline':<20} {'answered_at':<20} status")
    for rid, kind, received, deadline, answered, status, days, verified in rows:
        extra = f" ({days} days left)" if answered is None and days >= 0 else ""
        if kind == "erasure" and answered is not None:
            # the rows are gone at once; the rewrite that purges their deleted bytes from the file is batched
            extra += f", purge verified {verified:%Y-%m-%d %H:%M:%S}" if verified else ", purge of deleted bytes pending"
        print(f"{rid:<24} {kind:<8} {received:%Y-%m-%d %H:%M:%S}  {deadline:%Y-%m-%d %H:%M:%S}  "
              f"{answered.strftime('%Y-%m-%d %H:%M:%S') if answered else '-':<20} {status}{extra}")
    return EXIT_OK


def cmd_dsar_submit(args: argparse.Namespace) -> int:
    """Record a data-subject request in the landing zone's intake (<landing>/dsar); the next run answers it."""
    import json
    import uuid
    from datetime import datetime, timezone

    settings = Settings.from_env()
    received = args.received_at or datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    request_id = args.request_id or f"DSAR-{uuid.uuid4().hex[:12].upper()}"
    folder = settings.landing_dir / "dsar"
    folder.mkdir(parents=True, exist_ok=True)
    line = json.dumps({"request_id": request_id, "user_id": args.user_id, "type": args.type, "received_at": received})
    with (folder / f"submitted-{received[:10]}.jsonl").open("a", encoding="utf-8") as fh:
        fh.write(line + "\n")
    print(f"{args.type} request {request_id} recorded in {folder}; `streamgov run` answers it")
    return EXIT_OK


def cmd_generate(args: argparse.Namespace) -> int:
    from streamgov_dagster.lib.generator import generate

    out = Path(args.out or Settings.from_env().landing_dir)
    if out.exists() and any(out.iterdir()) and not args.force:
        print(f"error: {out} is not empty (use --force to overwrite)", file=sys.stderr)
        return EXIT_INPUT
    if out.exists() and args.force:
        shutil.rmtree(out)
    stats = generate(out, seed=args.seed, users=args.users, days=args.days, start=date.fromisoformat(args.start),
                     events_per_user_day=args.events_per_user_day, staff=args.staff, gzip_output=args.gzip)
    print(f"generated {stats.access_events} access events, {stats.audit_events} audit events, "
          f"{stats.consent_events} consent events, {stats.staff} staff into {out}")
    print(f"planted incidents: {sum(stats.incidents.values())}, near misses: {sum(stats.near_misses.values())}, "
          f"bad lines: {stats.bad_lines}, duplicates: {stats.duplicates}")
    return EXIT_OK


def cmd_bench(args: argparse.Namespace) -> int:
    from streamgov_dagster.bench import history, main as bench

    # absolute: the child run's DAGSTER_HOME lives in the cache, and Dagster requires an absolute path
    cache = Path(args.cache).resolve()
    if args.history_days:
        return history(args.history_days, args.events_per_day, args.seed, cache)
    return bench(args.events, args.seed, cache, args.format_lines, args.repeat)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="streamgov", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="materialize every asset for all data in the landing zone and write the reports")
    run.add_argument("--start", help="first UTC day (default: earliest event day in the landing zone)")
    run.add_argument("--end", help="last UTC day (default: latest event day)")
    run.add_argument("--verbose", action="store_true", help="log every step to the console")
    run.set_defaults(func=cmd_run)
    query = sub.add_parser("query", help="read-only SQL on the warehouse, CSV to stdout")
    query.add_argument("sql")
    query.set_defaults(func=cmd_query)
    verify = sub.add_parser("verify-log", help="verify the hash chain of consent.consent_log (exit 1 names the first broken entry)")
    verify.set_defaults(func=cmd_verify_log)
    consent_cmd = sub.add_parser("consent", help="consent tools")
    consent_sub = consent_cmd.add_subparsers(dest="consent_command", required=True)
    decode_tc = consent_sub.add_parser("decode-tc", help="decode an IAB TCF v2 TC string to JSON")
    decode_tc.add_argument("tc_string")
    decode_tc.set_defaults(func=cmd_decode_tc)
    dsar_cmd = sub.add_parser("dsar", help="data-subject requests (access, erasure) and their deadlines")
    dsar_sub = dsar_cmd.add_subparsers(dest="dsar_command", required=True)
    dsar_status = dsar_sub.add_parser("status", help="every request with its deadline and status")
    dsar_status.set_defaults(func=cmd_dsar_status)
    submit = dsar_sub.add_parser("submit", help="record a request in the landing zone's intake")
    submit.add_argument("--type", choices=("access", "erasure"), required=True)
    submit.add_argument("--user-id", required=True)
    submit.add_argument("--request-id", help="default: a new DSAR-<random> id")
    submit.add_argument("--received-at", help="ISO-8601 with offset (default: now, UTC)")
    submit.set_defaults(func=cmd_dsar_submit)
    gen = sub.add_parser("generate", help="write a synthetic streaming-service landing zone with planted incidents")
    gen.add_argument("--out", help="landing directory (default: STREAMGOV_LANDING_DIR)")
    gen.add_argument("--seed", type=int, default=7)
    gen.add_argument("--users", type=int, default=150)
    gen.add_argument("--days", type=int, default=7)
    gen.add_argument("--start", default="2026-10-29")
    gen.add_argument("--events-per-user-day", type=float, default=15.0)
    gen.add_argument("--staff", type=int, default=40)
    gen.add_argument("--gzip", action="store_true", help="write .jsonl.gz files")
    gen.add_argument("--force", action="store_true", help="replace a non-empty landing directory")
    gen.set_defaults(func=cmd_generate)
    bench = sub.add_parser("bench", help="benchmark the pipeline against plain DuckDB SQL, and log-format throughput")
    bench.add_argument("--events", type=int, default=10_000_000)
    bench.add_argument("--seed", type=int, default=42)
    bench.add_argument("--cache", default="data/bench", help="where generated data is kept between runs")
    bench.add_argument("--format-lines", type=int, default=2_000_000)
    bench.add_argument("--history-days", type=int, help="instead: the cost of adding one day to this many days of "
                       "history, against processing that day alone")
    bench.add_argument("--events-per-day", type=int, default=300_000, help="day size of --history-days")
    bench.add_argument("--repeat", type=int, default=1, help="run the pipeline and the same-work baseline this many "
                       "times in turn, and compare the fastest of each (the machine is noisy)")
    bench.set_defaults(func=cmd_bench)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_INPUT
    finally:
        # What is alive now lives until the process ends: Python's last garbage collection at exit would walk
        # every object Dagster created (0.7 s, measured on `streamgov run` with the demo data and at 10M events:
        # longer than most steps). Frozen objects are not walked; finalizers and atexit handlers still run.
        gc.freeze()


if __name__ == "__main__":
    sys.exit(main())
