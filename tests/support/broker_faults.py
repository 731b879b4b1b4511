"""The broker fault suite: the fault suite's load and checks (``tests/support/fault_suite.py``) over
three workers on a local three-node Kafka cluster (``streams.devkit.broker``, replication factor 3,
``min.insync.replicas`` 2), while brokers die and restart.

A round of broker faults, each measured (:class:`BrokerFault`):

1. SIGKILL the broker that leads the most event partitions (two brokers live on);
2. SIGKILL a second one (one left, below ``min.insync.replicas``): a write answers 503 with
   ``Retry-After``, every session already folded is read through every worker
   (:class:`BelowMinInsync`);
3. start both again: every partition led and in sync again, the lag back to 0;
4. a rolling restart, one broker at a time, as an upgrade does: SIGTERM (a controlled shutdown),
   start it, wait until its replicas are in sync again before the next;
5. SIGKILL the broker that coordinates the workers' consumer group (started again at the start of
   the next round).

Measured per fault, from the fault on: the seconds until every partition of every topic (Kafka's
own included) has a live leader again (``led_s``); until a write to each event partition, sent
right after the fault by a session of its own and retried after a 503, is acknowledged
(``served_s``); the 503s the load and those writes met until then. The suite's own checks then
say whether anything acknowledged was lost or applied twice, whether a session that exists ever
answered 404, and whether the lag fell back to 0 after each fault.

No pytest here: ``ops/soak.py --brokers 3`` uses it too. No timed assertion: figures are returned.
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from confluent_kafka.admin import ConfigResource, ResourceType  # type: ignore[attr-defined]

from projections.rules import Rules
from streams.config.settings import Settings
from streams.config.topics import worker_topics
from streams.devkit import broker as local_broker
from streams.devkit.events import page_view
from streams.devkit.workers import WorkerProcess
from streams.kafka.admin import INTERNAL_TOPICS, MIN_INSYNC
from tests.support.cluster import Cluster, session_in
from tests.support.fault_suite import FaultSuite, Report, Tracked, seconds_now
from tests.support.http import HttpClient, http_client

ONE_LEFT = "below min.insync.replicas"


@dataclass
class BrokerFault:
    name: str
    at: float  # seconds since the suite started
    brokers_live: int  # during the fault (before a restart)
    led_s: float = 0.0  # until every partition had a live leader
    served_s: float = 0.0  # until a write to every event partition was acknowledged
    in_sync_s: float | None = None  # after a restart: until every replica was in sync again
    # By kind of request, answered from the fault until the workers settled with the lag at 0.
    answered_503: Counter[str] = field(default_factory=Counter)
    # When the faults before this one had settled (lag 0): a request sent before was in flight through
    # an earlier fault's recovery (a worker's pause, its rebalance), and its 503 is that fault's.
    calm_since: float = 0.0
    earlier_503s: int = 0  # answered after this fault, sent before the earlier faults settled
    led_before: int = 0  # event partitions the broker led (a SIGKILL or SIGTERM)
    refusals: Counter[str] = field(default_factory=Counter)  # the 503s' messages, by kind of request

    def line(self) -> str:
        sync = f", in sync after {self.in_sync_s:.1f} s" if self.in_sync_s is not None else ""
        return (
            f"{self.name:<44} led after {self.led_s:4.1f} s, served after {self.served_s:4.1f} s{sync}, "
            f"503s {sum(self.answered_503.values())}{f' {dict(self.answered_503)}' if self.answered_503 else ''}"
            f"{f' (it led {self.led_before} event partitions)' if self.led_before else ''}"
            + (f" (and {self.earlier_503s} sent before the faults before it settled)" if self.earlier_503s else "")
            + "".join(f"\n    503 {why} x{n}" for why, n in self.refusals.items())
        )


@dataclass
class BelowMinInsync:
    """What a client met while one broker of three lived."""

    writes: list[tuple[str, int | str, str | None]] = field(default_factory=list)  # route, status, Retry-After
    reads: Counter[int | str] = field(default_factory=Counter)  # statuses of reads of folded sessions
    probe_reads: Counter[int | str] = field(default_factory=Counter)  # the prober's, in that window


@dataclass
class BrokerReport:
    """The fault suite's report, and the broker faults' figures."""

    report: Report
    faults: list[BrokerFault]
    below: BelowMinInsync | None
    coordinator_moves: list[str]  # the group's coordinator before and after its broker's death
    # The workers' topics and Kafka's own they use: (replicas per partition, min.insync.replicas).
    replication: dict[str, tuple[int, int]]

    def summary(self) -> list[str]:
        return [*self.report.summary(), "", *(fault.line() for fault in self.faults)]


class BrokerFaultSuite(FaultSuite):
    """The fault suite on a local cluster in ``kafka_dir``, with rounds of broker faults."""

    def __init__(self, cluster: Cluster, kafka_dir: Path, rules: Rules, worker_faults: bool = False, **kwargs: Any):
        # The worker faults' "broker restart" stops and starts the whole local cluster (the module
        # starts every node of the cluster its folder holds).
        super().__init__(cluster, kafka_dir, 0, rules, **kwargs)
        local = local_broker.LocalCluster.load(kafka_dir)
        assert local is not None, f"{kafka_dir} holds no local cluster"
        self.local = local
        self.worker_faults = worker_faults
        self.down: set[int] = set()
        self.faults: list[BrokerFault] = []
        self.below: BelowMinInsync | None = None
        self.coordinator_moves: list[str] = []
        self.writers: dict[int, Tracked] = {}  # a session per event partition, written only by the suite
        # One client for every metadata request of the suite (polled while brokers come and go: it
        # asks whichever broker answers).
        self.admin = local_broker.metadata_client(self.local.bootstrap)
        # Every 503: when answered, when sent, kind of request, why.
        self.refusals: list[tuple[float, float, str, str]] = []
        self.calm_since = 0.0  # when the last fault's recovery ended (the workers settled, lag 0)

    # -- the cluster, as its metadata says ------------------------------------------------------------

    def partitions(self) -> list[local_broker.PartitionState]:
        """Every partition (retried until a live broker answers)."""
        deadline = time.monotonic() + 60
        while (found := local_broker.describe_partitions(self.admin, timeout=2.0)) is None:
            assert time.monotonic() < deadline, "no live broker answers a metadata request"
        return found

    def leaders(self) -> Counter[int]:
        """Event partitions led, per broker."""
        return Counter(p.leader for p in self.partitions() if p.topic == self.cluster.topic)

    def leaderless(self) -> list[str]:
        """Partitions whose leader is none or a broker that is down (of those with a live replica: a
        partition only on dead brokers cannot be led)."""
        return [
            f"{p.topic}[{p.partition}]"
            for p in self.partitions()
            if (p.leader < 0 or p.leader in self.down) and set(p.replicas) - self.down
        ]

    def out_of_sync(self) -> list[str]:
        """Partitions with a replica out of their in-sync set (or a dead leader)."""
        return [
            f"{p.topic}[{p.partition}] isr {list(p.isr)} of {list(p.replicas)}"
            for p in self.partitions()
            if p.leader < 0 or p.leader in self.down or set(p.isr) != set(p.replicas)
        ]

    def coordinator(self) -> int:
        """The broker coordinating the workers' consumer group (faust's, the app id), asked until a
        live broker answers (the group moves when its coordinator dies)."""
        deadline = time.monotonic() + 60
        while True:
            # A client of the live brokers only, made for the question: asked through the suite's
            # long-lived client, it timed out for a whole minute after the coordinator's broker died.
            live = ",".join(f"127.0.0.1:{n.port}" for n in self.local.nodes if n.node_id not in self.down)
            admin = local_broker.metadata_client(live)
            asked = admin.describe_consumer_groups([self.cluster.app_id], request_timeout=5)
            try:
                node: int = asked[self.cluster.app_id].result(10).coordinator.id
                return node
            except Exception as exc:  # noqa: BLE001 - the coordinator moving, or a broker not answering
                assert time.monotonic() < deadline, f"the group's coordinator is not found: {exc!r}"

    def wait(self, what: str, check: Callable[[], Any], timeout: float = 120.0) -> float:
        """Poll ``check`` until it returns something falsy (nothing left to wait for); the suite's
        time then."""
        deadline = time.monotonic() + timeout
        while left := check():
            assert time.monotonic() < deadline, f"{what} not within {timeout:.0f}s: {left}"
            time.sleep(0.1)  # polling the cluster's metadata
        return self.now()

    def call(
        self, http: dict[str, HttpClient], worker: WorkerProcess, kind: str, sid: str, method: str, path: str,
        **kwargs: Any,
    ) -> httpx.Response | None:  # fmt: skip
        """The suite's request, and why, when it answered 503 (which limit ran out)."""
        sent = self.now()
        response = super().call(http, worker, kind, sid, method, path, **kwargs)
        if response is not None and response.status_code == 503:
            why = response.json().get("error", {}).get("message", response.text)[:120]
            with self.lock:
                self.refusals.append((self.now(), sent, kind, why))
        return response

    def recover(self, fault: str, since: float) -> None:
        super().recover(fault, since)
        self.calm_since = self.now()

    # -- faults ---------------------------------------------------------------------------------------

    def kill_broker(self, node: int) -> float:
        pid = local_broker.kill_node(self.local.data_dir, node)
        at = self.now()
        self.down.add(node)
        self.note(f"SIGKILL broker {node} (pid {pid})")
        return at

    def stop_broker(self, node: int) -> float:
        at = self.now()
        local_broker.stop_node(self.local.data_dir, node, quiet=True)
        self.down.add(node)
        self.note(f"SIGTERM broker {node}: stopped")
        return at

    def start_brokers(self, nodes: list[int]) -> float:
        at = self.now()
        for node in nodes:  # one by one: with one voter left, the first restores the quorum
            local_broker.start_node(self.local.data_dir, node, quiet=True)
            self.down.discard(node)
        self.note(f"started broker(s) {', '.join(map(str, nodes))}")
        return at

    def figures(self, name: str, at: float, led_before: int = 0) -> BrokerFault:
        """Right after a fault at ``at``: the seconds until every partition is led by a live broker,
        and until a write to each event partition, sent now, is acknowledged."""
        fault = BrokerFault(
            name, at, len(self.local.nodes) - len(self.down), led_before=led_before, calm_since=self.calm_since
        )
        acked_at: dict[int, float] = {}
        writes = [threading.Thread(target=self.write, args=(p, acked_at)) for p in self.writers]
        for thread in writes:
            thread.start()
        fault.led_s = self.wait(f"{name}: every partition led", self.leaderless) - at
        for thread in writes:
            thread.join()
        assert len(acked_at) == len(self.writers), (
            f"{name}: writes not acknowledged: {sorted(set(self.writers) - set(acked_at))}"
        )
        fault.served_s = max(acked_at.values()) - at
        self.faults.append(fault)
        return fault

    def settle(self, fault: BrokerFault, restarted: bool = False) -> None:
        """After a fault (and a restart of the brokers, when ``restarted``): every replica in sync
        again, the workers settled with the lag at 0 (the suite's ``recover``); then the 503s answered
        since the fault."""
        if restarted:
            fault.in_sync_s = self.wait(f"{fault.name}: every replica in sync", self.out_of_sync) - fault.at
        self.recover(fault.name, fault.at)
        with self.lock:
            # By the time they were answered: a request in flight when the broker died counts, unless
            # it was sent while an earlier fault was not settled yet (``BrokerFault.calm_since``).
            mine = [(kind, why) for at, sent, kind, why in self.refusals if at >= fault.at and sent >= fault.calm_since]
            fault.answered_503 = Counter(kind for kind, _ in mine)
            fault.refusals = Counter(f"{kind}: {why}" for kind, why in mine)
            fault.earlier_503s = sum(1 for at, sent, _, _ in self.refusals if at >= fault.at > fault.calm_since > sent)
        self.note(fault.line())

    def write(self, partition: int, acked_at: dict[int, float]) -> None:
        """A write to ``partition`` by its own session, retried after a 503 until acknowledged (the
        suite's ``post_event``); when, in ``acked_at``."""
        http = self.clients()
        try:
            s = self.writers[partition]
            event = page_view(s.sid, f"https://s/p?writer={self.next_n()}", seconds_now())
            if self.post_event(http, random.Random(partition), s, event, "event"):
                acked_at[partition] = self.now()
        finally:
            for client in http.values():
                client.close()

    def add_writers(self) -> None:
        """A session per event partition for :meth:`write_everywhere` (made once the load threads
        have taken their own: nobody else writes these), checked at the end like every other."""
        if self.writers:
            return
        http = self.clients()
        try:
            for partition in range(self.cluster.partitions):
                s = Tracked(session_in(partition, self.cluster.partitions))
                event = page_view(s.sid, "https://s/?writer=0", seconds_now())
                assert self.post_event(http, random.Random(partition), s, event, "event")
                self.writers[partition] = s
                with self.lock:
                    self.sessions.append(s)
        finally:
            for client in http.values():
                client.close()

    def below_min_insync(self, at: float) -> BelowMinInsync:
        """One broker of three: a service write and a storefront creation must answer 503 with
        ``Retry-After``; every session folded before is read through every worker meanwhile."""
        below = BelowMinInsync()
        s = self.writers[0]
        event = page_view(s.sid, f"https://s/p?below={self.next_n()}", seconds_now())
        s.sent.add(event["id"])  # maybe appended: the end check allows it, never requires it

        def write(route: str, **kwargs: Any) -> None:
            worker = self.pick(random.Random(route))
            with http_client(base_url=worker.url, timeout=60.0) as http:
                answer = http.post(route, **kwargs)
            below.writes.append((route, answer.status_code, answer.headers.get("Retry-After")))
            if answer.status_code == 202:
                s.acked.add(event["id"])

        writes = [
            threading.Thread(
                target=write,
                args=("/api/events",),
                kwargs={"json": event, "headers": self.cluster.workers[0].service_headers},
            ),
            threading.Thread(
                target=write, args=("/api/sessions",), kwargs={"json": {"public": {"below": {"value": 1}}}}
            ),
        ]
        for thread in writes:
            thread.start()
        with self.lock:
            folded = list(self.sessions)
        for worker in self.cluster.running:
            with http_client(base_url=worker.url, timeout=30.0) as http:
                for tracked in folded:
                    answer = http.get(f"/api/v1/sessions/{tracked.sid}", headers=worker.service_headers)
                    below.reads[answer.status_code] += 1
        for thread in writes:
            thread.join()
        with self.lock:
            below.probe_reads.update(e.status for e in self.exchanges if e.kind == "probe" and e.at >= at)
        self.note(f"{ONE_LEFT}: writes {below.writes}, reads {dict(below.reads)}, probes {dict(below.probe_reads)}")
        return below

    def round(self, number: int, steady_s: float, down_s: float) -> None:
        """A round of broker faults (the module's docstring), after a round of worker faults when
        ``worker_faults``."""
        self.add_writers()
        if self.down:  # the last round's coordinator: every round starts with every broker up
            at = self.start_brokers(sorted(self.down))
            self.settle(self.figures(f"start broker(s) {', '.join(map(str, sorted(self.down)))}", at), restarted=True)
        if self.worker_faults:
            super().round(number, steady_s, down_s)
        everyone = [n.node_id for n in self.local.nodes]

        self.steady(steady_s)
        first = self.leaders().most_common(1)[0][0]
        led = self.leaders()[first]
        at = self.kill_broker(first)
        self.settle(self.figures(f"SIGKILL broker {first}", at, led_before=led))

        self.steady(steady_s)
        second = max((n for n in everyone if n not in self.down), key=lambda n: self.leaders()[n])
        self.below = self.below_min_insync(self.kill_broker(second))
        at = self.start_brokers([first, second])
        self.settle(self.figures(f"start brokers {first} and {second}", at), restarted=True)

        for node in everyone:  # a rolling restart, as an upgrade does: one at a time, back in sync first
            self.steady(steady_s)
            fault = self.figures(f"rolling restart: SIGTERM broker {node}", self.stop_broker(node))
            self.start_brokers([node])
            self.settle(fault, restarted=True)

        self.steady(steady_s)
        coordinator = self.coordinator()
        at = self.kill_broker(coordinator)
        self.settle(self.figures(f"SIGKILL broker {coordinator} (group coordinator)", at))
        self.coordinator_moves.append(f"{coordinator} -> {self.coordinator()}")
        # Left down: the suite's end checks run on two brokers, and the next round starts it.

    def run_broker_faults(self, rounds: int = 1, minutes: float = 0.0, steady_s: float = 0.0) -> BrokerReport:
        report = self.run(rounds=rounds, minutes=minutes, steady_s=steady_s)
        return BrokerReport(report, self.faults, self.below, self.coordinator_moves, self.replication())

    def replication(self) -> dict[str, tuple[int, int]]:
        """Replicas and ``min.insync.replicas`` of the workers' topics and of Kafka's own they use."""
        names = [spec.name for spec in worker_topics(Settings.from_env(self.cluster.workers[0].env))]
        names += list(INTERNAL_TOPICS)
        replicas = {name: min(len(p.replicas) for p in self.partitions() if p.topic == name) for name in names}
        resources = [ConfigResource(ResourceType.TOPIC, name) for name in names]
        found = {}
        for resource, future in self.admin.describe_configs(resources).items():
            found[resource.name] = (replicas[resource.name], int(future.result(10)[MIN_INSYNC].value))
        return found
