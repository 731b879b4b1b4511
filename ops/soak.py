"""``make soak``: the fault suite of ``tests/integration/test_fault_suite.py`` for longer, with figures.

Three workers (their own data folders and ports, one group) and a throw-away local broker on a free
port, both under a scratch folder; a steady load of service events and storefront writes and reads
spread over the workers, while rounds of faults run for ``--minutes``: SIGKILL a worker, SIGKILL a
second one, restart both, stop and start the broker, SIGKILL one and restart it at once, SIGTERM one and
start it again, and pause one (SIGSTOP) past its session timeout and resume it (SIGCONT) while the
load goes on. Then every session is checked against the log
and the pure fold (``tests/support/fault_suite.py`` says how), and the figures are printed: events
acknowledged and folded, requests answered 2xx / 503 / other, the longest window in which a session
could not be read, the time from each fault to all partitions served (and lag 0), and the lost and
duplicated events (0 and 0, or the exit code is 1).

With ``--brokers 3`` the broker is a local three-node cluster (replication factor 3,
``min.insync.replicas`` 2) and each round of worker faults is followed by a round of broker faults
(``tests/support/broker_faults.py``): SIGKILL the broker leading most event partitions, SIGKILL a
second, start both, a rolling restart of all three, SIGKILL the group coordinator's broker; per
fault it prints the seconds until every partition was led and written again and the 503s answered.

    .venv/bin/python ops/soak.py [--minutes 3] [--brokers 1|3] [--partitions 6] [--standby-replicas 0]
                                 [--threads 4] [--keep]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # tests.support: the suite's code is the test's code

from streams.devkit import broker  # noqa: E402
from streams.devkit.paths import SAMPLE_RULES_FILE, sample_rules  # noqa: E402
from tests.support.broker_faults import BrokerFaultSuite  # noqa: E402
from tests.support.cluster import make_cluster  # noqa: E402
from tests.support.fault_suite import FaultSuite, Report, give_time_to_restart_at_once  # noqa: E402


def say(line: str) -> None:
    print(line, flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=3.0, help="how long the rounds of faults go on (default 3)")
    parser.add_argument("--partitions", type=int, default=6)
    parser.add_argument("--threads", type=int, default=4, help="load threads (each paced, one request at a time)")
    parser.add_argument("--pace", type=float, default=0.05, help="seconds between a load thread's requests")
    parser.add_argument("--probe-every", type=float, default=0.05, help="seconds between the probe's rounds of reads")
    parser.add_argument("--steady", type=float, default=8.0, help="seconds of steady load before each fault")
    parser.add_argument("--outage", type=float, default=5.0, help="seconds the broker stays down")
    parser.add_argument(
        "--standby-replicas", type=int, default=1, help="SESSIONS_STANDBY_REPLICAS of the workers (the default: 1)"
    )
    parser.add_argument(
        "--brokers", type=int, default=1, choices=[1, 3], help="1: one broker; 3: a local cluster, and broker faults"
    )
    parser.add_argument("--keep", action="store_true", help="keep the scratch folder (worker and broker logs)")
    args = parser.parse_args(argv)

    scratch = Path(tempfile.mkdtemp(prefix="session-engine-soak."))
    kafka_dir, port = scratch / "kafka", broker.free_port()
    say(
        f"soak: {args.minutes:g} min of faults, 3 workers, {args.partitions} partitions, "
        f"{args.standby_replicas} standby replicas, {args.brokers} broker(s), scratch {scratch}"
    )
    if args.brokers > 1:
        bootstrap = broker.start_cluster(kafka_dir, nodes=args.brokers, quiet=True)
        # Every limit a write meets outlasts an election (docs/cluster.md, as the broker fault test):
        # one broker's faults must cost no 503.
        replicated = {
            "SESSIONS_REPLICATION_FACTOR": "3",
            "SESSIONS_PRODUCE_TIMEOUT_S": "15",
            "SESSIONS_WRITE_WAIT_S": "20",
            "SESSIONS_FORWARD_TIMEOUT_S": "35",
        }
    else:
        bootstrap = broker.start(kafka_dir, port, quiet=True)
        replicated = {"SESSIONS_PRODUCE_TIMEOUT_S": "3"}
    cluster = make_cluster(
        bootstrap, scratch, workers=3, partitions=args.partitions, name="soak",
        SESSIONS_RULES_FILE=str(SAMPLE_RULES_FILE), SESSIONS_KAFKA_SESSION_TIMEOUT_S="6",
        SESSIONS_LOG_LEVEL="info", SESSIONS_STANDBY_REPLICAS=str(args.standby_replicas), **replicated,
    )  # fmt: skip
    give_time_to_restart_at_once(cluster)
    failed = True
    try:
        started = time.monotonic()
        cluster.start()
        say(f"3 workers ready and settled in {time.monotonic() - started:.1f} s")
        report: Report
        load = {"threads": args.threads, "pace_s": args.pace, "probe_every_s": args.probe_every}
        if args.brokers > 1:
            brokers = BrokerFaultSuite(
                cluster, kafka_dir, sample_rules(), worker_faults=True, say=say, pause_owner=True, **load
            )
            broker_report = brokers.run_broker_faults(minutes=args.minutes, steady_s=args.steady)
            report, lines = broker_report.report, broker_report.summary()
            # One broker down of three: not a single 503 (the election is shorter than the produce timeout).
            one_down = [f for f in broker_report.faults if f.brokers_live == args.brokers - 1]
            refused_with_two = [f"{f.name}: 503s {dict(f.answered_503)}" for f in one_down if f.answered_503]
        else:
            suite = FaultSuite(cluster, kafka_dir, port, sample_rules(), say=say, pause_owner=True, **load)
            report = suite.run(minutes=args.minutes, steady_s=args.steady, down_s=args.outage)
            lines, refused_with_two = report.summary(), []
        say("")
        for line in lines:
            say(line)
        for problem in [*report.lost, *report.mismatched, *report.foreign, *map(str, report.incidents),
                        *report.stale, *map(str, report.server_errors()), *report.never_acked,
                        *report.metric_errors, *report.unclean_exits, *report.duplicated,
                        *report.failovers, *refused_with_two]:  # fmt: skip
            say(f"  ! {problem}")
        failed = bool(
            report.lost or report.mismatched or report.foreign or report.incidents or report.stale
            or report.server_errors() or report.bad_statuses() or report.never_acked or report.metric_errors
            or report.unclean_exits or report.duplicated or report.failovers or refused_with_two
        )  # fmt: skip
        say("result: " + ("FAILED (see above)" if failed else "0 lost, 0 duplicated, every check passed"))
        cluster.stop()
    finally:
        cluster.kill()
        broker.stop(kafka_dir, quiet=True)
        if args.keep or failed:
            say(f"logs kept in {scratch}")
        else:
            shutil.rmtree(scratch, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
