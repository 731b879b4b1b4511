"""Three workers under a steady load while two are SIGKILLed one after the other, both restarted,
the broker stopped and started, and the third SIGKILLed and restarted at once (back before the group
notices: no failover): nothing acknowledged is lost or applied twice, no 5xx but 503, no 404 for a
session that exists, and /metrics parses with the lag back to 0 after each fault."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from streams.devkit import broker
from streams.devkit.paths import SAMPLE_RULES_FILE, sample_rules
from tests.support.cluster import make_cluster
from tests.support.fault_suite import FaultSuite, Report, give_time_to_restart_at_once

# The suite runs in the setup of whichever test comes first: about 2 minutes, well under this.
pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

SUITE_ENV = {
    "SESSIONS_RULES_FILE": str(SAMPLE_RULES_FILE),
    "SESSIONS_KAFKA_SESSION_TIMEOUT_S": "6",
    "SESSIONS_PRODUCE_TIMEOUT_S": "3",
    "SESSIONS_LOG_LEVEL": "info",
}


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Report]:
    # A broker of its own: the suite stops it.
    base = tmp_path_factory.mktemp("fault-suite")
    kafka_dir, port = base / "kafka", broker.free_port()
    bootstrap = broker.start(kafka_dir, port, quiet=True)
    cluster = make_cluster(bootstrap, base, workers=3, partitions=6, name="faults", **SUITE_ENV)
    give_time_to_restart_at_once(cluster)
    try:
        cluster.start()
        suite = FaultSuite(cluster, kafka_dir, port, sample_rules(), say=print)
        # Between two faults the load goes on until every worker answered every kind of request a
        # few times (FaultSuite.steady), not for a fixed time.
        report = suite.run(rounds=1, steady_s=0)
        print("\n".join(report.summary()))
        yield report
        assert cluster.stop() == [0, 0, 0], [w.log_tail() for w in cluster.workers]
    finally:
        cluster.kill()
        broker.stop(kafka_dir, quiet=True)


def test_nothing_acknowledged_is_lost_or_applied_twice(report: Report):
    assert not report.never_acked
    assert report.acknowledged > 0
    assert not report.lost
    assert not report.foreign
    assert not report.duplicated, report.duplicated[:20]  # a storefront creation or write appended twice
    assert not report.mismatched  # each session == the pure fold of its distinct events, via every worker


def test_no_answer_is_a_5xx_other_than_503(report: Report):
    assert not report.server_errors(), report.server_errors()[:20]
    assert not report.bad_statuses(), report.bad_statuses()[:20]


def test_no_read_of_an_existing_session_answers_404(report: Report):
    assert not report.incidents, "\n".join(map(str, report.incidents))


def test_a_worker_killed_and_restarted_at_once_comes_back_before_the_group_notices(report: Report):
    # Within the session timeout, and no other worker served its partitions meanwhile: not a failover.
    assert [fault for fault, _ in report.rejoins] == ["SIGKILL w3, restart at once"], report.rejoins
    assert not report.failovers, report.failovers


def test_a_worker_stopped_with_sigterm_exits_cleanly(report: Report):
    assert not report.unclean_exits


def test_a_storefront_write_is_read_at_once_through_any_worker(report: Report):
    assert not report.stale, report.stale[:20]


def test_metrics_parse_and_the_lag_falls_back_to_zero_after_each_fault(report: Report):
    assert not report.metric_errors
    faults = ["SIGKILL w1", "SIGKILL w2", "restart", "broker restart", "SIGKILL w3, restart at once"]
    faults.append("SIGTERM w1, restart")
    assert [fault for fault, _ in report.lag_after_fault] == faults
    assert all(reason is None for _, reason in report.lag_after_fault), report.lag_after_fault
