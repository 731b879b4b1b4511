"""The fault suite: a steady load over three workers while workers are SIGKILLed and restarted and
the broker is stopped and started; then what was acknowledged is checked against the log and the
pure fold. ``tests/integration/test_fault_suite.py`` runs one round of faults (about 2 minutes),
``make soak`` (``ops/soak.py``) runs rounds for as long as it is asked and prints the figures.

The load, spread over the running workers (a load balancer's view: a worker is left out once it is
killed and back once it is restarted; requests in flight when it dies fail and are retried):

- service events (``POST /api/events``, trusted key), each retried with the same id after a 503 or
  no answer until it is acknowledged (202);
- storefront writes (``PATCH /api/sessions`` with the session's cookie), each a new value of
  ``public.sf``; after a 200 the very next read, through another worker, must show it;
- new storefront sessions (``POST /api/sessions`` without a cookie), which join the load once made;
- service reads (``GET /api/v1/sessions/{id}``) and storefront reads (``GET /api/sessions``);
- a prober that reads one session of every partition in turn (how long a partition goes unread).

Every session exists (its first event was folded) before the load reads it (made before the load
starts, or answered 201 when the load made it), so a 404 for it, or a storefront read that answers
another session, is an *incident*: recorded with the time, the worker and the faults just before it.

Between two faults the load goes on until every running worker has answered every kind of request
a few times (``steady``), not for a fixed time. The SIGKILL with a restart at once is measured: the
new process must hold the old one's partitions again within the group's session timeout, and no other
worker may serve one of them meanwhile (else it was a failover, which the group noticed).

At the end each session gets a marker event; once every worker serves every marker, the event topic
is read from the start and each session must equal the pure fold (``projections.session.fold``,
same rules) of its distinct events in log order; every acknowledged event must be in the log, and
the log must hold nothing the load did not send, and a storefront session's own events (its creation,
each value it wrote) nothing twice.

No pytest here (``ops/soak.py`` uses it); no timed assertion: figures are returned, not judged.
"""

from __future__ import annotations

import os
import random
import signal
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from http.cookiejar import CookieJar, DefaultCookiePolicy
from pathlib import Path
from typing import Any

import httpx
import orjson
from confluent_kafka import Consumer, TopicPartition

from projections.rules import Rules
from projections.session import fold
from schemas.events import decode_event, type_name
from schemas.session import encode_view
from streams.devkit import broker as local_broker
from streams.devkit.events import BASE_TIME, new_session_id, page_view, public_set
from streams.devkit.workers import WorkerProcess, http_status
from streams.web.tokens import SessionTokens
from tests.support.cluster import Cluster, Families, parse_metrics, partition_of, scrape, served_partitions
from tests.support.http import HttpClient, http_client, http_get

STEADY_ANSWERS = 2  # per running worker and kind of request (event, storefront write, read) between two faults
UNREACHABLE = "unreachable"  # no HTTP answer: connection refused or reset (a killed worker)
TIMEOUT = "timeout"


# The worker that is SIGKILLed and restarted at once (w3, the cluster's third, in round 0) must be
# back before the group notices; a worker's start on a loaded 2-core machine can take far longer
# than the 6 s that let the others' SIGKILLs be noticed quickly (20.9 s seen in a soak), so its own
# session timeout is longer (a member's own).
RESTART_AT_ONCE_SESSION_TIMEOUT_S = "45"


def give_time_to_restart_at_once(cluster: Any) -> None:
    """Before ``cluster.start()``: the restarted-at-once worker's longer session timeout."""
    cluster.workers[2].env["SESSIONS_KAFKA_SESSION_TIMEOUT_S"] = RESTART_AT_ONCE_SESSION_TIMEOUT_S


def seconds_now() -> float:
    """Now, as the event builders count time (seconds after BASE_TIME)."""
    return time.time() - BASE_TIME.timestamp()


@dataclass
class Exchange:
    at: float  # seconds since the suite started
    worker: str
    kind: str  # event | read | sf_write | sf_read | probe | marker
    status: int | str
    sid: str


@dataclass
class Incident:
    at: float
    worker: str
    kind: str
    sid: str
    detail: str
    before: list[str]

    def __str__(self) -> str:
        return f"t={self.at:.2f}s {self.worker} {self.kind} {self.sid}: {self.detail}; just before: {self.before}"


@dataclass
class Tracked:
    """One session of the load; only its own load thread writes it (its requests are sequential)."""

    sid: str
    cookie: str | None = None  # storefront sessions
    sent: set[str] = field(default_factory=set)  # service event ids sent, whatever the answer
    acked: set[str] = field(default_factory=set)  # service event ids answered 202
    sf_acked: list[str] = field(default_factory=list)  # storefront values answered 200
    sf_maybe: set[str] = field(default_factory=set)  # storefront values answered 503 or nothing
    allowed: set[str] | None = None  # the public.sf values a read may show now


@dataclass
class Report:
    exchanges: list[Exchange]
    incidents: list[Incident]  # 404s (or another session) for sessions that exist
    stale: list[str]  # reads that did not show an acknowledged storefront write
    never_acked: list[str]  # service events still refused at the end of their retries
    notes: list[tuple[float, str]]  # the faults and recoveries, in order
    recoveries: list[tuple[str, float, float]]  # fault, seconds to all partitions served, to lag 0
    metric_errors: list[str]  # scrapes that did not parse
    lag_after_fault: list[tuple[str, str | None]]  # fault, why the lag did not fall to 0 and the logs (None: it did)
    unclean_exits: list[str]  # workers that did not exit 0 on SIGTERM
    # "SIGKILL, restart at once": seconds from the SIGKILL until the new process held its partitions
    # again, per such fault; and why one was not the same member coming back unnoticed (it took
    # longer than the group's session timeout, or another worker served its partitions meanwhile).
    rejoins: list[tuple[str, float]] = field(default_factory=list)
    failovers: list[str] = field(default_factory=list)
    acknowledged: int = 0  # events acknowledged (service 202s, storefront 2xx writes and creations)
    folded: int = 0  # events folded (sum of the sessions' eventCount)
    log_events: int = 0  # records in the event topic
    lost: list[str] = field(default_factory=list)
    mismatched: list[str] = field(default_factory=list)  # served != pure fold of the distinct events
    foreign: list[str] = field(default_factory=list)  # log events the load never sent
    # A storefront session's own events appended more than once under new ids (two session.created,
    # two public_sets of its creation or of one storefront value): the pure fold applies both.
    duplicated: list[str] = field(default_factory=list)
    duplicated_in_log: int = 0  # records whose id was already in the log (retries); folded once
    duration_s: float = 0.0
    sessions: int = 0  # sessions checked at the end (those the load made included)

    def summary(self) -> list[str]:
        """The figures, one a line (``make soak`` prints them; the test prints them with ``-s``)."""
        statuses = self.statuses()
        longest, where = self.longest_unreadable()
        other = {k: v for k, v in statuses.items() if k not in ("2xx", "503")}
        lines = [
            f"duration                     {self.duration_s:.0f} s, {self.sessions} sessions checked",
            f"events acknowledged          {self.acknowledged:,} (service 202s, storefront 2xx writes and creations)",
            f"events folded                {self.folded:,} (the sessions' eventCount; more than acknowledged by "
            "the writes answered 503 that were applied all the same)",
            f"records in the log           {self.log_events:,} ({self.duplicated_in_log:,} retries of an id already "
            "there, folded once)",
            f"requests answered            2xx {statuses['2xx']:,} / 503 {statuses['503']:,} / other "
            f"{sum(other.values()):,} {dict(sorted(other.items())) if other else ''}",
            f"longest unreadable window    {longest:.2f} s ({where or 'none'})",
        ]
        for fault, served, lag_zero in self.recoveries:
            lines.append(f"{fault:<28} all partitions served after {served:.1f} s, lag 0 after {lag_zero:.1f} s")
        for fault, seconds in self.rejoins:
            lines.append(f"{fault:<28} its partitions held again {seconds:.1f} s after the SIGKILL")
        lines += [
            f"lost                         {len(self.lost)}",
            f"duplicated                   {len(self.mismatched)} (sessions != the pure fold of their distinct events)",
            f"events nobody sent           {len(self.foreign)}",
            f"storefront events twice      {len(self.duplicated)} (a creation or a value appended again, new id)",
            f"failovers                    {len(self.failovers)} (a restart at once the group noticed)",
            f"404 for existing sessions    {len(self.incidents)} (or a storefront read answering another session)",
            f"stale reads                  {len(self.stale)} (a read not showing an acknowledged storefront write)",
            f"5xx other than 503           {len(self.server_errors())}",
            f"/metrics not parsed          {len(self.metric_errors)}",
            f"unclean exits on SIGTERM     {len(self.unclean_exits)}",
        ]
        return lines

    def statuses(self) -> Counter[str]:
        def bucket(status: int | str) -> str:
            if isinstance(status, str):
                return status
            return "2xx" if 200 <= status < 300 else str(status)

        return Counter(bucket(e.status) for e in self.exchanges)

    def bad_statuses(self) -> list[Exchange]:
        """Answers that are neither 2xx, 503, nor a 404 (404s are judged as incidents)."""
        return [
            e
            for e in self.exchanges
            if isinstance(e.status, int) and not (200 <= e.status < 300 or e.status in (503, 404))
        ]

    def server_errors(self) -> list[Exchange]:
        return [e for e in self.exchanges if isinstance(e.status, int) and e.status >= 500 and e.status != 503]

    def longest_unreadable(self) -> tuple[float, str]:
        """The longest time from a failed read of a session to its next successful read, from the
        prober's reads (each partition's session, read in turn a few times a second; the load's own
        reads of a session are further apart, so they would measure their spacing)."""
        reads: dict[str, list[Exchange]] = defaultdict(list)
        for e in self.exchanges:
            if e.kind == "probe":
                reads[e.sid].append(e)
        longest, where = 0.0, ""
        for sid, seen in reads.items():
            failed_at: float | None = None
            for e in sorted(seen, key=lambda x: x.at):
                if e.status == 200:
                    if failed_at is not None and e.at - failed_at > longest:
                        longest, where = e.at - failed_at, f"session {sid[:8]} from t={failed_at:.1f}s"
                    failed_at = None
                elif failed_at is None:
                    failed_at = e.at
        return longest, where


def load_kind(kind: str) -> str:
    """The kinds the steady load counts: a storefront read is a read."""
    return "read" if kind in ("read", "sf_read") else kind


def is_2xx(status: int | str) -> bool:
    return isinstance(status, int) and 200 <= status < 300


class FaultSuite:
    def __init__(
        self,
        cluster: Cluster,
        broker_dir: Path,
        broker_port: int,
        rules: Rules,
        storefront_sessions: int = 16,
        service_sessions: int = 16,
        threads: int = 4,
        # The load's pace: a request per thread every ``pace_s``, a read of each partition every
        # ``probe_every_s``. The tests' defaults keep the suite's CPU (workers and this process) to
        # about a third of a core; ``make soak`` paces it denser.
        pace_s: float = 0.1,
        probe_every_s: float = 0.25,
        seed: int = 10,
        say: Callable[[str], None] = lambda line: None,
        pause_owner: bool = False,
    ) -> None:
        self.cluster = cluster
        # Also pause a worker (SIGSTOP) past its session timeout under load, then resume it (SIGCONT):
        # its late batch must never become what anybody serves (``make soak``; the test suite has
        # tests/integration/test_paused_owner.py).
        self.pause_owner = pause_owner
        self.broker_dir, self.broker_port = broker_dir, broker_port
        self.rules = rules
        self.rng = random.Random(seed)
        self.threads, self.pace_s, self.probe_every_s = threads, pace_s, probe_every_s
        self.n_storefront, self.n_service = storefront_sessions, service_sessions
        self.say = say
        self.started = time.monotonic()
        self.lock = threading.Lock()
        self.exchanges: list[Exchange] = []
        self.incidents: list[Incident] = []
        self.stale: list[str] = []
        self.never_acked: list[str] = []
        self.notes: list[tuple[float, str]] = []
        self.recoveries: list[tuple[str, float, float]] = []
        self.metric_errors: list[str] = []
        self.lag_after_fault: list[tuple[str, str | None]] = []
        self.unclean_exits: list[str] = []
        self.rejoins: list[tuple[str, float]] = []
        self.failovers: list[str] = []
        self.sessions: list[Tracked] = []
        self.alive: list[WorkerProcess] = list(cluster.workers)
        self.stopping = threading.Event()
        self.counter = 0
        self.tokens = SessionTokens(cluster.signing_key, 3600)

    # -- plumbing -----------------------------------------------------------------------------------

    def now(self) -> float:
        return time.monotonic() - self.started

    def note(self, text: str) -> None:
        with self.lock:
            self.notes.append((self.now(), text))
        self.say(f"[{self.now():6.1f}s] {text}")

    def next_n(self) -> int:
        with self.lock:
            self.counter += 1
            return self.counter

    def pick(self, rng: random.Random, other_than: WorkerProcess | None = None) -> WorkerProcess:
        with self.lock:
            choices = [w for w in self.alive if w is not other_than] or list(self.alive) or list(self.cluster.workers)
        return rng.choice(choices)

    def call(
        self, http: dict[str, HttpClient], worker: WorkerProcess, kind: str, sid: str, method: str, path: str,
        **kwargs: Any,
    ) -> httpx.Response | None:  # fmt: skip
        at = self.now()
        response: httpx.Response | None = None
        try:
            response = http[worker.url].request(method, path, **kwargs)
            status: int | str = response.status_code
        except httpx.TimeoutException:
            status = TIMEOUT
        except httpx.TransportError:
            status = UNREACHABLE
        with self.lock:
            self.exchanges.append(Exchange(at, self.cluster.name(worker), kind, status, sid))
        return response

    def clients(self) -> dict[str, HttpClient]:
        return {
            w.url: http_client(base_url=w.url, timeout=30.0, cookies=CookieJar(DefaultCookiePolicy(allowed_domains=[])))
            for w in self.cluster.workers
        }

    def incident(self, worker: WorkerProcess, kind: str, sid: str, detail: str) -> None:
        at = self.now()
        with self.lock:
            before = [f"t={t:.2f}s {text}" for t, text in self.notes if t <= at][-3:]
            self.incidents.append(Incident(at, self.cluster.name(worker), kind, sid, detail, before))

    # -- the operations -----------------------------------------------------------------------------

    def post_event(
        self, http: dict[str, HttpClient], rng: random.Random, s: Tracked, event: dict[str, Any], kind: str
    ) -> bool:
        """Post until acknowledged, the same id every time; False when the retries ran out."""
        s.sent.add(event["id"])
        deadline = time.monotonic() + 180
        while True:
            worker = self.pick(rng)
            answer = self.call(
                http, worker, kind, s.sid, "POST", "/api/events", json=event, headers=worker.service_headers
            )
            if answer is not None and answer.status_code == 202:
                s.acked.add(event["id"])
                return True
            if answer is not None and answer.status_code != 503:
                self.never_acked.append(f"{event['id']}: {answer.status_code} {answer.text[:200]}")
                return False
            if time.monotonic() > deadline:
                self.never_acked.append(f"{event['id']}: still refused after 180 s")
                return False
            time.sleep(0.2)  # pacing the retries (Retry-After asks for more)

    def check_read(self, worker: WorkerProcess, kind: str, s: Tracked, answer: httpx.Response | None) -> None:
        if answer is None or answer.status_code == 503:
            return
        if answer.status_code == 404:
            self.incident(worker, kind, s.sid, f"404 {answer.text[:200]}")
            return
        if answer.status_code != 200:
            return  # counted with the statuses
        document = answer.json()
        if document.get("id") != s.sid:
            self.incident(worker, kind, s.sid, f"answered session {document.get('id')} instead")
            return
        if s.allowed is not None:
            shown = document["namespaces"].get("public", {}).get("sf", {}).get("value")
            if shown not in s.allowed:
                self.stale.append(
                    f"t={self.now():.2f}s {self.cluster.name(worker)} {kind} {s.sid}: sf={shown!r}, "
                    f"acknowledged last {s.sf_acked[-1:]} (maybe applied: {sorted(s.sf_maybe)})"
                )

    def read(self, http: dict[str, HttpClient], worker: WorkerProcess, s: Tracked, storefront: bool) -> None:
        if storefront and s.cookie is not None:
            answer = self.call(
                http, worker, "sf_read", s.sid, "GET", "/api/sessions", params={"items": "*"},
                headers={"Cookie": f"vtex_session={s.cookie}"},
            )  # fmt: skip
            self.check_read(worker, "sf_read", s, answer)
        else:
            answer = self.call(
                http, worker, "read", s.sid, "GET", f"/api/v1/sessions/{s.sid}", headers=worker.service_headers
            )
            self.check_read(worker, "read", s, answer)

    def storefront_write(self, http: dict[str, HttpClient], rng: random.Random, s: Tracked) -> None:
        assert s.cookie is not None
        value = f"{s.sid[:8]}-{self.next_n()}"
        worker = self.pick(rng)
        answer = self.call(
            http, worker, "sf_write", s.sid, "PATCH", "/api/sessions", json={"public": {"sf": {"value": value}}},
            headers={"Cookie": f"vtex_session={s.cookie}"},
        )  # fmt: skip
        if answer is not None and answer.status_code == 200:
            s.sf_acked.append(value)
            s.allowed = {value} | s.sf_maybe
            s.cookie = answer.cookies.get("vtex_session") or s.cookie
            # Read-your-writes across workers: the very next read, through another worker.
            self.read(http, self.pick(rng, other_than=worker), s, storefront=rng.random() < 0.5)
        elif answer is None or answer.status_code == 503:
            s.sf_maybe.add(value)  # maybe appended: it may show from now on
            if s.allowed is not None:
                s.allowed.add(value)

    def create(self, http: dict[str, HttpClient], rng: random.Random, mine: list[Tracked]) -> None:
        """A new storefront session (no cookie); once answered 201 it exists, and the load goes on with it."""
        worker = self.pick(rng)
        answer = self.call(
            http, worker, "sf_create", "-", "POST", "/api/sessions", json={"public": {"made": {"value": "load"}}}
        )
        if answer is not None and answer.status_code == 201:
            token = answer.json()["sessionToken"]
            sid = self.tokens.session_id(token)
            assert sid is not None, "a token the group's key does not verify"
            s = Tracked(sid, cookie=token)
            mine.append(s)
            with self.lock:
                self.sessions.append(s)

    def service_event(self, http: dict[str, HttpClient], rng: random.Random, s: Tracked) -> None:
        n = self.next_n()
        if rng.random() < 0.7:
            campaign = rng.choice(["blackfriday", "summer", "none"])
            event = page_view(s.sid, f"https://s/p?n={n}&utm_campaign={campaign}", seconds_now())
        else:
            event = public_set(s.sid, {f"k{n % 4}": n}, seconds_now())
        self.post_event(http, rng, s, event, "event")

    def load(self, index: int) -> None:
        rng = random.Random(f"{index}-{self.rng.random()}")
        mine = self.sessions[index :: self.threads]  # this thread's own (it makes more as it goes)
        http = self.clients()
        try:
            while not self.stopping.is_set():
                s = rng.choice(mine)
                roll = rng.random()
                if roll < 0.4:
                    self.service_event(http, rng, s)
                elif roll < 0.6 and s.cookie is not None:
                    self.storefront_write(http, rng, s)
                elif 0.6 <= roll < 0.615:
                    self.create(http, rng, mine)
                else:
                    self.read(http, self.pick(rng), s, storefront=rng.random() < 0.5)
                time.sleep(self.pace_s)  # pacing the load, not waiting for anything
        finally:
            for client in http.values():
                client.close()

    def probe(self) -> None:
        """Read one session of each partition in turn, through any running worker."""
        rng = random.Random(1)
        per_partition: dict[int, Tracked] = {}
        for s in self.sessions:
            per_partition.setdefault(partition_of(s.sid, self.cluster.partitions), s)
        http = self.clients()
        try:
            while not self.stopping.is_set():
                for s in per_partition.values():
                    worker = self.pick(rng)
                    answer = self.call(
                        http, worker, "probe", s.sid, "GET", f"/api/v1/sessions/{s.sid}", headers=worker.service_headers
                    )
                    if answer is not None and answer.status_code == 404:
                        self.incident(worker, "probe", s.sid, f"404 {answer.text[:200]}")
                time.sleep(self.probe_every_s)  # pacing the probe, not waiting for anything
        finally:
            for client in http.values():
                client.close()

    def scrape_metrics(self) -> None:
        """Every running worker's /metrics, parsed with prometheus_client, once a second."""
        while not self.stopping.wait(1.0):
            for worker in self.cluster.running:
                try:
                    response = http_get(f"{worker.url}/metrics", timeout=5.0)
                except httpx.HTTPError:
                    continue
                try:
                    parse_metrics(response.text)
                except Exception as exc:  # noqa: BLE001 - any parse failure is what we report
                    self.metric_errors.append(f"{self.cluster.name(worker)}: {exc!r}")

    # -- setup, faults, end -------------------------------------------------------------------------

    def setup(self) -> None:
        """Sessions made and folded before the load: storefront ones (spread over the workers) and
        ones made by a service event."""
        http = self.clients()
        try:
            for n in range(self.n_storefront):
                worker = self.cluster.workers[n % len(self.cluster.workers)]
                answer = http[worker.url].post("/api/sessions", json={"public": {"made": {"value": n}}})
                assert answer.status_code == 201, answer.text
                cookie = answer.cookies["vtex_session"]
                sid = (
                    http[worker.url]
                    .get("/api/sessions", params={"items": "*"}, headers={"Cookie": f"vtex_session={cookie}"})
                    .json()["id"]
                )
                self.sessions.append(Tracked(sid, cookie=cookie))
            rng = random.Random(2)
            for _ in range(self.n_service):
                s = Tracked(new_session_id())
                assert self.post_event(http, rng, s, page_view(s.sid, "https://s/?start=1", seconds_now()), "event")
                self.sessions.append(s)
            self.wait_folded(http)
        finally:
            for client in http.values():
                client.close()
        self.rng.shuffle(self.sessions)
        self.note(f"{len(self.sessions)} sessions made; load starts")

    def wait_folded(self, http: dict[str, HttpClient], marker: str | None = None, timeout: float = 180) -> None:
        """Until every running worker serves every session (with ``public.marker`` when given)."""
        deadline = time.monotonic() + timeout
        for worker in self.cluster.running:
            for s in self.sessions:
                while True:
                    answer = http[worker.url].get(f"/api/v1/sessions/{s.sid}", headers=worker.service_headers)
                    if answer.status_code == 200 and (
                        marker is None
                        or answer.json()["namespaces"].get("public", {}).get("marker") == {"value": marker}
                    ):
                        break
                    assert answer.status_code in (200, 404, 503), answer.text
                    assert time.monotonic() < deadline, (
                        f"{s.sid} not folded via {self.cluster.name(worker)}: {answer.text}"
                    )
                    time.sleep(0.05)

    def steady(self, steady_s: float, each: int = STEADY_ANSWERS) -> None:
        """Steady load: ``steady_s`` seconds of it, and at least until every running worker has
        acknowledged ``each`` service events and storefront writes and answered ``each`` reads since
        this was called (every kind of request met every worker between two faults)."""
        since = self.now()
        if steady_s > 0:
            time.sleep(steady_s)  # a length of steady load (``make soak``'s pause), not a wait for a condition
        deadline = time.monotonic() + 120
        while (short := self.short_of_load(since, each)) is not None:
            if time.monotonic() >= deadline:
                worker, kind, count = short
                tails = "\n".join(f"--- {self.cluster.name(w)}\n{w.log_tail(30)}" for w in self.cluster.running)
                raise AssertionError(
                    f"the load did not go on steadily: {worker}: {count} {kind} answered 2xx, {each} wanted "
                    f"(answered instead: {self.answered_instead(since, worker, kind) or 'nothing'})\n{tails}"
                )
            time.sleep(0.05)  # polling the load's answers

    def short_of_load(self, since: float, each: int) -> tuple[str, str, int] | None:
        """A running worker and a kind of request it has answered fewer than ``each`` times with a
        2xx since ``since`` (and how many); None when every one has."""
        with self.lock:
            alive = {self.cluster.name(w) for w in self.alive}
            answered = Counter(
                (e.worker, load_kind(e.kind)) for e in self.exchanges if e.at >= since and is_2xx(e.status)
            )
        for worker in sorted(alive):
            for kind in ("event", "sf_write", "read"):
                if answered[worker, kind] < each:
                    return worker, kind, answered[worker, kind]
        return None

    def answered_instead(self, since: float, worker: str, kind: str) -> dict[int | str, int]:
        """What ``worker`` answered to ``kind`` (as :meth:`short_of_load` counts kinds) other than a
        2xx since ``since``: statuses, timeouts, unreachable."""
        with self.lock:
            others = [
                e.status
                for e in self.exchanges
                if e.at >= since and e.worker == worker and load_kind(e.kind) == kind and not is_2xx(e.status)
            ]
        return dict(Counter(others))

    def recover(self, fault: str, since: float) -> None:
        """Wait until the running workers have settled, then until the lag gauge is back to 0."""
        self.cluster.wait_settled(240)
        served = self.now() - since
        self.note(f"after {fault}: every partition served again ({served:.1f}s)")
        try:
            self.cluster.wait_settled(120, also=self.cluster.lag_behind)
            reason = None
        except AssertionError as exc:
            reason = str(exc)  # the lag, then each worker's last log lines: what the loops were doing
        lag_zero = self.now() - since
        self.lag_after_fault.append((fault, reason))
        self.recoveries.append((fault, served, lag_zero))
        self.note(f"after {fault}: lag {'0' if reason is None else reason.splitlines()[0]} ({lag_zero:.1f}s)")

    def kill(self, worker: WorkerProcess) -> float:
        with self.lock:
            self.alive.remove(worker)
        pid = worker.process.pid if worker.process else None
        worker.kill()
        at = self.now()
        self.note(f"SIGKILL {self.cluster.name(worker)} (pid {pid})")
        return at

    def pause(self, worker: WorkerProcess, timeout: float = 120.0) -> float:
        """SIGSTOP ``worker`` until the others serve every partition (the group timed it out and
        moved its partitions on), then SIGCONT: it wakes up in the middle of what it was doing."""
        assert worker.process is not None
        with self.lock:
            self.alive.remove(worker)
        os.kill(worker.process.pid, signal.SIGSTOP)
        at = self.now()
        self.note(f"SIGSTOP {self.cluster.name(worker)}")
        others = [w for w in self.cluster.running if w is not worker]
        deadline = time.monotonic() + timeout
        try:
            while True:
                served: set[int] = set()
                for other in others:
                    served |= served_partitions(scrape(other) or {})
                if served == set(range(self.cluster.partitions)):
                    break
                assert time.monotonic() < deadline, f"the group never moved {self.cluster.name(worker)}'s partitions"
                time.sleep(0.1)
        finally:
            os.kill(worker.process.pid, signal.SIGCONT)
        self.note(f"SIGCONT {self.cluster.name(worker)} after {self.now() - at:.1f}s")
        with self.lock:
            self.alive.append(worker)
        return at

    def restart(self, workers: list[WorkerProcess]) -> float:
        at = self.now()
        for worker in workers:
            worker.spawn()
        for worker in workers:
            worker.wait_ready(180)
            with self.lock:
                self.alive.append(worker)
        self.note(f"restarted {', '.join(self.cluster.name(w) for w in workers)}")
        return at

    def kill_and_restart_at_once(self, worker: WorkerProcess) -> float:
        """SIGKILL and start again at once: the same member (its group instance id) back before the
        group's session timeout, so the group never notices it left. Measured: the time from the
        SIGKILL until the new process holds the partitions the old one served (a slow restart is a
        failover: their ownership moves to the others, then back), and no other worker may serve one
        of them meanwhile."""
        name = self.cluster.name(worker)
        families = scrape(worker)
        assert families is not None, f"{name} does not answer /metrics before its SIGKILL"
        held = served_partitions(families)
        others = [w for w in self.cluster.running if w is not worker]
        timeout_s = float(worker.env.get("SESSIONS_KAFKA_SESSION_TIMEOUT_S", "10"))
        fault = f"SIGKILL {name}, restart at once"
        killed = self.kill(worker)
        worker.spawn()
        deadline = time.monotonic() + 180
        while True:
            for other in others:
                taken = served_partitions(scrape(other) or {}) & held
                if taken:
                    self.failovers.append(f"{fault}: {self.cluster.name(other)} served {sorted(taken)} meanwhile")
            back = scrape(worker)
            holds = assigned_partitions(back) if back is not None else set()
            if held <= holds:  # back as it was
                break
            if holds and http_status(f"{worker.url}/readyz", timeout=1.0) == 200:
                # Ready: all it was assigned is served now (the gauge lists them as the assignment
                # is taken up, so read again): its own partitions, or others after a failover.
                back = scrape(worker)
                holds = served_partitions(back) if back is not None else set()
                break
            assert time.monotonic() < deadline, f"{name} did not hold partitions again within 180 s"
            time.sleep(0.05)  # polling the workers' /metrics
        seconds = self.now() - killed
        self.rejoins.append((fault, seconds))
        self.note(f"{name} holds {sorted(holds)} ({sorted(held)} before), {seconds:.1f}s after its SIGKILL")
        if holds != held:
            self.failovers.append(f"{fault}: back with partitions {sorted(holds)}, not its own {sorted(held)}")
        if seconds >= timeout_s:
            self.failovers.append(f"{fault}: back after {seconds:.1f}s, not within the session timeout ({timeout_s}s)")
        worker.wait_ready(180)
        with self.lock:
            self.alive.append(worker)
        self.note(f"restarted {name}")
        return killed

    def rolling_restart(self, worker: WorkerProcess) -> float:
        """What a deploy does: out of the load balancer, SIGTERM, wait for the exit, start again."""
        with self.lock:
            self.alive.remove(worker)
        at = self.now()
        code = worker.stop()
        self.note(f"SIGTERM {self.cluster.name(worker)}: exit code {code}")
        if code != 0:
            self.unclean_exits.append(f"{self.cluster.name(worker)} exited with {code} on SIGTERM")
        self.restart([worker])
        return at

    def broker_outage(self, down_s: float) -> float:
        local_broker.stop(self.broker_dir, quiet=True)
        at = self.now()
        self.note("broker stopped")
        time.sleep(down_s)  # the outage lasts this long: what the load meets
        local_broker.start(self.broker_dir, self.broker_port, quiet=True)
        self.note("broker started")
        return at

    def round(self, number: int, steady_s: float, down_s: float) -> None:
        """One round of faults: kill A, kill B, restart both, stop and start the broker, kill C and
        restart it at once (within the session timeout: the group never notices it left), stop A
        (SIGTERM) and start it again as a deploy does; with ``pause_owner``, pause B past its session
        timeout and resume it."""
        workers = self.cluster.workers
        a, b, c = (workers[(number + k) % len(workers)] for k in range(3))
        self.steady(steady_s)  # steady load before each fault
        self.recover(f"SIGKILL {self.cluster.name(a)}", self.kill(a))
        self.steady(steady_s)
        self.recover(f"SIGKILL {self.cluster.name(b)}", self.kill(b))
        self.steady(steady_s)
        self.recover("restart", self.restart([a, b]))
        self.steady(steady_s)
        self.recover("broker restart", self.broker_outage(down_s))
        self.steady(steady_s)
        self.recover(f"SIGKILL {self.cluster.name(c)}, restart at once", self.kill_and_restart_at_once(c))
        self.steady(steady_s)
        self.recover(f"SIGTERM {self.cluster.name(a)}, restart", self.rolling_restart(a))
        if self.pause_owner:
            self.steady(steady_s)
            self.recover(f"SIGSTOP {self.cluster.name(b)} past its session timeout, SIGCONT", self.pause(b))

    def run(self, rounds: int = 1, minutes: float = 0.0, steady_s: float = 3.0, down_s: float = 5.0) -> Report:
        """``rounds`` rounds of faults, or as many as fit in ``minutes`` (at least one); then the checks."""
        self.setup()
        threads = [threading.Thread(target=self.load, args=(i,), daemon=True) for i in range(self.threads)]
        threads += [
            threading.Thread(target=self.probe, daemon=True),
            threading.Thread(target=self.scrape_metrics, daemon=True),
        ]
        for thread in threads:
            thread.start()
        try:
            number = 0
            while True:
                self.round(number, steady_s, down_s)
                number += 1
                if number >= rounds and self.now() >= minutes * 60:
                    break
            self.steady(steady_s)  # the load goes on a while after the last fault
        finally:
            self.stopping.set()
            for thread in threads:
                thread.join(240)
        self.note("load stopped")
        return self.check()

    def check(self) -> Report:
        report = Report(
            self.exchanges, self.incidents, self.stale, self.never_acked, self.notes, self.recoveries,
            self.metric_errors, self.lag_after_fault, self.unclean_exits, self.rejoins, self.failovers,
        )  # fmt: skip
        http = self.clients()
        try:
            rng = random.Random(3)
            for s in self.sessions:
                assert self.post_event(http, rng, s, public_set(s.sid, {"marker": "end"}, seconds_now()), "marker")
            self.wait_folded(http, marker="end")
            logged = read_log(self.cluster.bootstrap, self.cluster.topic, self.cluster.partitions)
            report.log_events = sum(len(v) for v in logged.values())
            for s in self.sessions:
                events, seen = [], set()
                for event in logged.get(s.sid, []):
                    if event.id in seen:
                        report.duplicated_in_log += 1
                        continue
                    seen.add(event.id)
                    events.append(event)
                    ours = event.id in s.sent or (
                        type_name(type(event)) in ("session.created", "session.public_set") and s.cookie is not None
                        and _sf_value(event) in {None, *s.sf_acked, *s.sf_maybe}
                    )  # fmt: skip
                    if not ours:
                        report.foreign.append(f"{s.sid}: {type_name(type(event))} {event.id}")
                logged_values = {_sf_value(e) for e in events}
                if s.cookie is not None:  # its storefront events: one creation, each value once
                    own = Counter((type_name(type(e)), _sf_value(e)) for e in events if e.id not in s.sent)
                    twice = {f"{kind} {value or '(creation)'}": n for (kind, value), n in own.items() if n > 1}
                    if twice or own[("session.created", None)] != 1:
                        report.duplicated.append(f"{s.sid}: {own[('session.created', None)]} session.created, {twice}")
                # A storefront session's creation (201): its session.created and the public_set of `made`.
                created = [e for e in events if e.id not in s.sent and _sf_value(e) is None] if s.cookie else []
                report.lost += [f"{s.sid}: event {i}" for i in sorted(s.acked - seen)]
                report.lost += [f"{s.sid}: storefront write {v}" for v in s.sf_acked if v not in logged_values]
                report.acknowledged += len(s.acked) + len(s.sf_acked) + len(created)
                expected = orjson.loads(encode_view(fold(events, rules=self.rules)))  # type: ignore[arg-type]
                for worker in self.cluster.running:
                    served = http[worker.url].get(f"/api/v1/sessions/{s.sid}", headers=worker.service_headers)
                    if served.status_code != 200 or served.json() != expected:
                        report.mismatched.append(
                            f"{s.sid} via {self.cluster.name(worker)}: {served.status_code} {served.text[:300]} "
                            f"!= {orjson.dumps(expected).decode()[:300]}"
                        )
                    elif worker is self.cluster.running[0]:
                        report.folded += served.json()["meta"]["eventCount"]
        finally:
            for client in http.values():
                client.close()
        report.duration_s = self.now()
        report.sessions = len(self.sessions)
        return report


def assigned_partitions(families: Families) -> set[int]:
    """The partitions a worker holds (assigned to it, being restored or served), from its ``/metrics``."""
    return {
        int(labels["partition"])
        for name, labels, _ in families.get("sessions_partition_restoring", [])
        if name == "sessions_partition_restoring"
    }


def _sf_value(event: Any) -> Any:
    public = getattr(getattr(event, "data", None), "public", None)
    if not public or "sf" not in public:
        return None
    return public["sf"].value


def read_log(bootstrap: str, topic: str, partitions: int) -> dict[str, list[Any]]:
    """Every record of the event topic, decoded, grouped by session in log order."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "fault-suite-reader", "enable.auto.commit": False})
    by_session: dict[str, list[Any]] = defaultdict(list)
    try:
        ends = {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in range(partitions)}
        remaining = {p for p, end in ends.items() if end > 0}
        consumer.assign([TopicPartition(topic, p, 0) for p in remaining])
        while remaining:
            message = consumer.poll(10)
            assert message is not None and not message.error(), "the event topic could not be read"
            value, partition, offset = message.value(), message.partition(), message.offset()
            assert value is not None and partition is not None and offset is not None
            event = decode_event(value)
            by_session[event.subject].append(event)
            if offset + 1 >= ends[partition]:
                remaining.discard(partition)
    finally:
        consumer.close()
    return by_session
