"""The worker's Prometheus metrics, in a registry of its own (one per engine, so tests can build
several). Served at ``/metrics`` by ``streams.web.metrics``; docs/operations.md lists every name.

The fold loop reports once per batch (counts by event type, the batch's size and duration), never
per event. Lag, restore progress and partitions are read off the loop at scrape time.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Protocol

from prometheus_client import CollectorRegistry, Counter, Histogram, disable_created_metrics
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from streams.fold.store import damaged_stores

# No `_created` series beside every counter and histogram (process-wide; nothing here reads them).
disable_created_metrics()  # type: ignore[no-untyped-call]

NAMESPACE = "sessions"
UNDECODED = "undecoded"  # the event-type label of a dead letter that did not decode as an event
UNMATCHED = "unmatched"  # the route label of a request no route matched (never the raw path)

BATCH_SIZE_BUCKETS = (1, 5, 10, 50, 100, 500, 1000, 2500, 5000, 10000)
BATCH_SECONDS_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
HTTP_SECONDS_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class FoldState(Protocol):
    """What the scrape reads off the fold loop (``streams.fold.loop.FoldLoop``)."""

    @property
    def serving(self) -> frozenset[int]: ...

    @property
    def restoring(self) -> frozenset[int]: ...

    @property
    def restored_by_partition(self) -> Mapping[int, int]: ...

    def lag(self) -> dict[int, int]: ...

    @property
    def standby(self) -> frozenset[int]: ...

    def standby_lag(self) -> dict[int, int]: ...

    @property
    def moved_records(self) -> int: ...

    @property
    def out_of_space(self) -> bool: ...

    @property
    def full_incidents(self) -> int: ...


class Metrics:
    """Every metric of one worker. Thread-safe: the fold thread and the HTTP thread both report."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry(auto_describe=True)
        r = self.registry
        self.events_folded = Counter(
            "events_folded", "Events folded into their session, by event type.", ["type"], namespace=NAMESPACE,
            registry=r,
        )  # fmt: skip
        self.dead_letters = Counter(
            "dead_letters",
            f"Records set aside to the dead-letter topic, by event type ({UNDECODED!r}: not an event).",
            ["type"], namespace=NAMESPACE, registry=r,
        )  # fmt: skip
        self.records_skipped = Counter(
            "records_skipped", "Records skipped as already folded (redeliveries after a crash).", namespace=NAMESPACE,
            registry=r,
        )  # fmt: skip
        self.batch_size = Histogram(
            "fold_batch_size", "Records per fold batch (all partitions of one consume call).", namespace=NAMESPACE,
            buckets=BATCH_SIZE_BUCKETS, registry=r,
        )  # fmt: skip
        self.batch_seconds = Histogram(
            "fold_batch_duration_seconds", "Time to fold, produce, flush and write one batch.", namespace=NAMESPACE,
            buckets=BATCH_SECONDS_BUCKETS, registry=r,
        )  # fmt: skip
        self.http_requests = Counter(
            "http_requests", "HTTP requests answered, by route template, method and status.",
            ["route", "method", "status"], namespace=NAMESPACE, registry=r,
        )  # fmt: skip
        self.http_seconds = Histogram(
            "http_request_duration_seconds", "HTTP request latency, by route template and method.",
            ["route", "method"], namespace=NAMESPACE, buckets=HTTP_SECONDS_BUCKETS, registry=r,
        )  # fmt: skip
        self.forwarded = Counter(
            "forwarded_requests",
            "Requests forwarded to the worker owning the session, by route template and the owner's status "
            "('unreachable': no connection; 'timeout': no answer within SESSIONS_FORWARD_TIMEOUT_S).",
            ["route", "status"], namespace=NAMESPACE, registry=r,
        )  # fmt: skip

    # -- the fold thread, once per batch ------------------------------------------------------------

    def batch(self, folded_by_type: Mapping[str, int], dead_by_type: Mapping[str, int], records: int,
              skipped: int, seconds: float) -> None:  # fmt: skip
        for event_type, count in folded_by_type.items():
            self.events_folded.labels(event_type).inc(count)
        for event_type, count in dead_by_type.items():
            self.dead_letters.labels(event_type or UNDECODED).inc(count)
        if skipped:
            self.records_skipped.inc(skipped)
        self.batch_size.observe(records)
        self.batch_seconds.observe(seconds)

    # -- the HTTP thread ----------------------------------------------------------------------------

    def request(self, route: str, method: str, status: int, seconds: float) -> None:
        self.http_requests.labels(route, method, str(status)).inc()
        self.http_seconds.labels(route, method).observe(seconds)

    def forwarded_request(self, route: str, status: int | str) -> None:
        """``status``: the owner's, or "unreachable" (no connection) or "timeout" (no answer in time)."""
        self.forwarded.labels(route, str(status)).inc()

    def watch_fold(self, fold: FoldState) -> None:
        """Lag, restore progress and partitions, read off the loop at each scrape."""
        self.registry.register(FoldCollector(fold))

    def watch_keys(self, count: Callable[[], int]) -> None:
        """How many sessions' data keys this worker holds in memory (streams.privacy.keyring)."""
        self.registry.register(KeysCollector(count))


class KeysCollector(Collector):
    def __init__(self, count: Callable[[], int]) -> None:
        self.count = count

    def describe(self) -> Iterator[GaugeMetricFamily]:
        return iter(())

    def collect(self) -> Iterator[GaugeMetricFamily]:
        yield GaugeMetricFamily(
            f"{NAMESPACE}_data_keys",
            "Sessions whose data key (personal fields) this worker holds in memory, from the keys' topic.",
            value=self.count(),
        )


class FoldCollector(Collector):
    def __init__(self, fold: FoldState) -> None:
        self.fold = fold

    def describe(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        return iter(())  # no description at registration: collect() reads the live loop

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        fold = self.fold
        lag = GaugeMetricFamily(
            f"{NAMESPACE}_consumer_lag", "Events in the log not folded yet, per partition this worker owns.",
            labels=["partition"],
        )  # fmt: skip
        for partition, behind in sorted(fold.lag().items()):
            lag.add_metric([str(partition)], behind)
        yield lag
        restored = CounterMetricFamily(
            f"{NAMESPACE}_changelog_restored_records",
            "Changelog records copied into the store while restoring, per partition (since start).",
            labels=["partition"],
        )  # fmt: skip
        for partition, records in sorted(fold.restored_by_partition.items()):
            restored.add_metric([str(partition)], records)
        yield restored
        restoring = fold.restoring
        restoring_gauge = GaugeMetricFamily(
            f"{NAMESPACE}_partition_restoring", "1 while the partition is being restored from the changelog.",
            labels=["partition"],
        )  # fmt: skip
        for partition in sorted(restoring | fold.serving):
            restoring_gauge.add_metric([str(partition)], 1 if partition in restoring else 0)
        yield restoring_gauge
        yield GaugeMetricFamily(
            f"{NAMESPACE}_owned_partitions", "Partitions this worker owns and serves (restored and folded).",
            value=len(fold.serving),
        )  # fmt: skip
        yield GaugeMetricFamily(
            f"{NAMESPACE}_standby_partitions",
            "Partitions this worker keeps warm as a standby (their changelog tailed into its store).",
            value=len(fold.standby),
        )  # fmt: skip
        standby_lag = GaugeMetricFamily(
            f"{NAMESPACE}_standby_lag",
            "Changelog records the standby copy has not copied yet, per standby partition.",
            labels=["partition"],
        )  # fmt: skip
        for partition, behind in sorted(fold.standby_lag().items()):
            standby_lag.add_metric([str(partition)], behind)
        yield standby_lag
        yield CounterMetricFamily(
            f"{NAMESPACE}_moved_records",
            "Event records found on another partition than their key's (a producer's partitioner other than "
            "murmur2) and re-appended to their key's partition, where they are folded (since start).",
            value=fold.moved_records,
        )  # fmt: skip
        yield GaugeMetricFamily(
            f"{NAMESPACE}_data_folder_full",
            "1 while the data folder is full: folding is paused until there is room (the log says which folder).",
            value=1 if fold.out_of_space else 0,
        )  # fmt: skip
        yield CounterMetricFamily(
            f"{NAMESPACE}_data_folder_full_incidents",
            "Times the data folder filled up and folding paused (since start).",
            value=fold.full_incidents,
        )  # fmt: skip
        yield CounterMetricFamily(
            f"{NAMESPACE}_damaged_stores",
            "Partition stores found damaged at open, moved aside and rebuilt from the changelog (since start).",
            value=damaged_stores(),
        )  # fmt: skip
