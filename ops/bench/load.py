"""HTTP load for the bench: a lean keep-alive HTTP/1.1 client on asyncio streams.

A general-purpose client (httpx, aiohttp) spends more CPU per request than the server under test
does on a cheap GET, and on a 2-core machine the client shares the cores with the worker, so this
one does the least it can: write the request line, read the headers, read Content-Length bytes
(or chunks). Only 127.0.0.1 is ever a target.

Run as a script it is the read load of the bench (its own process, so the harness's heap and
threads do not disturb the timings)::

    python ops/bench/load.py reads --port 8080 --ids ids.txt --concurrency 32 --seconds 15 --out r.json
    python ops/bench/load.py open --port 8080 --ids ids.txt --rate 1500 --seconds 22 --out o.json

``reads`` is closed-loop (each connection sends its next request when the last one is answered: a
capacity); ``open`` sends on a fixed schedule whatever the answers (a latency at a given load).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import random
import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

HOST = "127.0.0.1"
_CONTENT_LENGTH = re.compile(rb"\r\ncontent-length:\s*(\d+)", re.IGNORECASE)
_CHUNKED = re.compile(rb"\r\ntransfer-encoding:\s*chunked", re.IGNORECASE)
_CLOSE = re.compile(rb"\r\nconnection:\s*close", re.IGNORECASE)
_EVENT_COUNT = re.compile(rb'"eventCount":(\d+)')


class HttpError(RuntimeError):
    pass


class Connection:
    """One keep-alive connection to 127.0.0.1:port; reconnects after the server closes it."""

    def __init__(self, port: int, authorization: str = "", timeout: float = 10.0) -> None:
        self.port = port
        self.timeout = timeout
        self._extra = f"Authorization: {authorization}\r\n" if authorization else ""
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def _connect(self) -> None:
        self._reader, self._writer = await asyncio.wait_for(asyncio.open_connection(HOST, self.port), self.timeout)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
        self._reader = self._writer = None

    async def get(self, path: str) -> tuple[int, bytes]:
        try:
            return await asyncio.wait_for(self._get(path), self.timeout)
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError) as exc:
            self.close()
            raise HttpError(f"GET {path}: {exc!r}") from None

    async def _get(self, path: str) -> tuple[int, bytes]:
        if self._writer is None:
            await self._connect()
        assert self._reader is not None and self._writer is not None
        self._writer.write(f"GET {path} HTTP/1.1\r\nHost: {HOST}:{self.port}\r\n{self._extra}\r\n".encode())
        head = await self._reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length = _CONTENT_LENGTH.search(head)
        if length is not None:
            body = await self._reader.readexactly(int(length.group(1)))
        elif _CHUNKED.search(head):
            parts = []
            while True:
                size = int((await self._reader.readuntil(b"\r\n")).split(b";")[0], 16)
                chunk = await self._reader.readexactly(size + 2)
                if size == 0:
                    break
                parts.append(chunk[:-2])
            body = b"".join(parts)
        else:
            raise HttpError(f"GET {path}: a response with neither Content-Length nor chunks")
        if _CLOSE.search(head):
            self.close()
        return status, body


def event_count(body: bytes) -> int | None:
    match = _EVENT_COUNT.search(body)
    return int(match.group(1)) if match else None


def cpu_seconds_since(before: os.times_result) -> float:
    """This process's CPU (user and system) since ``before`` (``os.times()``): the load's own cost."""
    now = os.times()
    return (now.user - before.user) + (now.system - before.system)


def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..100) of unsorted values; None for none."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, min(len(ordered), math.ceil(q / 100.0 * len(ordered))))
    return ordered[rank - 1]


def summarize_ms(latencies_ns: list[int]) -> dict[str, float | None]:
    ms = [v / 1e6 for v in latencies_ns]
    return {
        "p50_ms": percentile(ms, 50),
        "p90_ms": percentile(ms, 90),
        "p99_ms": percentile(ms, 99),
        "p999_ms": percentile(ms, 99.9),
        "max_ms": max(ms) if ms else None,
    }


# --- the read load -------------------------------------------------------------------------------


@dataclass
class ReadLoad:
    port: int
    ids: list[str]
    concurrency: int
    seconds: float
    warmup: float
    seed: int
    authorization: str = ""
    latencies_ns: list[int] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)

    async def _worker(self, index: int, measure_from: float, until: float) -> None:
        rng = random.Random(self.seed * 1000 + index)
        connection = Connection(self.port, self.authorization)
        ids = self.ids
        try:
            while True:
                began = time.perf_counter_ns()
                if began / 1e9 >= until:
                    return
                path = f"/api/v1/sessions/{ids[rng.randrange(len(ids))]}"
                try:
                    status, _ = await connection.get(path)
                except HttpError as exc:
                    if len(self.errors) < 20:
                        self.errors.append(str(exc))
                    self.statuses[-1] = self.statuses.get(-1, 0) + 1
                    await asyncio.sleep(0.01)
                    continue
                ended = time.perf_counter_ns()
                if began / 1e9 >= measure_from and ended / 1e9 <= until:
                    self.latencies_ns.append(ended - began)
                    self.statuses[status] = self.statuses.get(status, 0) + 1
        finally:
            connection.close()

    async def run(self) -> dict[str, object]:
        start = time.perf_counter()
        measure_from = start + self.warmup
        until = measure_from + self.seconds
        cpu_before = os.times()
        await asyncio.gather(*(self._worker(i, measure_from, until) for i in range(self.concurrency)))
        client_cpu = cpu_seconds_since(cpu_before)
        measured = sum(n for status, n in self.statuses.items() if status >= 0)
        ok = self.statuses.get(200, 0)
        return {
            "concurrency": self.concurrency,
            "seconds": self.seconds,
            "warmup_seconds": self.warmup,
            "requests": measured,
            "ok": ok,
            "rate": ok / self.seconds,
            "statuses": {str(k): v for k, v in sorted(self.statuses.items())},
            "errors": self.errors,
            "client_cpu_seconds": client_cpu,
            "client_cpu_share": client_cpu / (self.warmup + self.seconds),
            **summarize_ms(self.latencies_ns),
        }


# --- the open-loop read load ----------------------------------------------------------------------


@dataclass(frozen=True)
class OpenSchedule:
    """Request i is due ``i / rate`` seconds after ``start_ns``, whatever became of the ones before
    it: the load does not wait for answers, so a server that stalls finds the requests of the stall
    queued up behind it, as real clients would be."""

    start_ns: int
    rate: float
    count: int

    def due_ns(self, index: int) -> int:
        return self.start_ns + round(index * 1e9 / self.rate)

    def due_by(self, now_ns: int) -> int:
        """How many requests are due at ``now_ns`` (0 before the start, at most ``count``)."""
        if now_ns < self.start_ns:
            return 0
        return min(self.count, int((now_ns - self.start_ns) * self.rate / 1e9) + 1)


def from_schedule_ns(due_ns: list[int], done_ns: list[int]) -> list[int]:
    """Latency of each request from when it was due (not from when it went out): the time a request
    waited for a free connection, or behind a stalled server, is counted, so coordinated omission
    cannot hide queueing."""
    return [done - due for due, done in zip(due_ns, done_ns, strict=True)]


def by_second_ms(due_ns: list[int], latencies_ns: list[int], start_ns: int, q: float) -> list[float | None]:
    """The q-th percentile (ms) of the requests due in each second from ``start_ns``."""
    buckets: dict[int, list[float]] = {}
    for due, latency in zip(due_ns, latencies_ns, strict=True):
        buckets.setdefault(max(0, (due - start_ns) // 1_000_000_000), []).append(latency / 1e6)
    last = max(buckets, default=-1)
    return [percentile(buckets.get(second, []), q) for second in range(last + 1)]


@dataclass
class OpenLoopReads:
    """GET /api/v1/sessions/{id} at a fixed arrival rate over ``connections`` keep-alive connections.

    A dispatcher hands request i to the first free connection at its due time; when every connection
    is busy, it waits in a queue and its latency (from the due time) grows with the wait. Requests
    still unanswered ``drain_s`` after the last one was due are counted as such, with their latency
    up to then (a lower bound)."""

    port: int
    ids: list[str]
    rate: float
    seconds: float
    connections: int
    seed: int
    authorization: str = ""
    # A file the harness writes the start time into (wall clock, epoch s) once the server is ready;
    # the process starts before that, so its start-up is not in the phase. "": start now.
    start_file: str = ""
    drain_s: float = 10.0
    errors: list[str] = field(default_factory=list)

    async def run(self) -> dict[str, object]:
        if self.start_file:
            go, deadline = Path(self.start_file), time.monotonic() + 600.0
            while not go.exists():
                if time.monotonic() > deadline:
                    raise TimeoutError(f"no start file {go} within 600 s")
                await asyncio.sleep(0.005)
            await asyncio.sleep(max(0.0, float(go.read_text()) - time.time()))
        count = max(1, int(self.rate * self.seconds))
        schedule = OpenSchedule(time.perf_counter_ns(), self.rate, count)
        rng = random.Random(self.seed)
        paths = [f"/api/v1/sessions/{self.ids[rng.randrange(len(self.ids))]}" for _ in range(count)]
        sent_ns = [0] * count
        done_ns = [0] * count
        status = [0] * count
        queue: asyncio.Queue[int] = asyncio.Queue()
        deepest = 0
        cpu_before = os.times()

        async def connection_worker() -> None:
            connection = Connection(self.port, self.authorization)
            try:
                while True:
                    index = await queue.get()
                    if index < 0:
                        return
                    sent_ns[index] = time.perf_counter_ns()
                    try:
                        status[index], _ = await connection.get(paths[index])
                    except HttpError as exc:
                        if len(self.errors) < 20:
                            self.errors.append(str(exc))
                        status[index] = -1
                    done_ns[index] = time.perf_counter_ns()
            finally:
                connection.close()

        workers = [asyncio.create_task(connection_worker()) for _ in range(self.connections)]
        released = 0
        while released < count:
            due = schedule.due_by(time.perf_counter_ns())
            while released < due:
                queue.put_nowait(released)
                released += 1
            deepest = max(deepest, queue.qsize())
            if released < count:
                pause_ns = schedule.due_ns(released) - time.perf_counter_ns()
                await asyncio.sleep(max(0.0, pause_ns / 1e9))
        for _ in workers:
            queue.put_nowait(-1)
        last_due = schedule.due_ns(count - 1)
        _, pending = await asyncio.wait(workers, timeout=max(0.0, last_due / 1e9 + self.drain_s - time.perf_counter()))
        for task in pending:
            task.cancel()
        ended_ns = time.perf_counter_ns()
        client_cpu = cpu_seconds_since(cpu_before)
        answered = [i for i in range(count) if done_ns[i]]
        unanswered = count - len(answered)
        due_ns = [schedule.due_ns(i) for i in range(count)]
        # Unanswered requests count with their wait so far: the figure errs on the fast side.
        finished = [done_ns[i] or ended_ns for i in range(count)]
        latencies = from_schedule_ns(due_ns, finished)
        service = [done_ns[i] - sent_ns[i] for i in answered]
        statuses: dict[int, int] = {}
        for i in answered:
            statuses[status[i]] = statuses.get(status[i], 0) + 1
        if unanswered:
            statuses[0] = unanswered
        wall = (ended_ns - schedule.start_ns) / 1e9
        return {
            "rate_target": self.rate,
            "seconds": self.seconds,
            "connections": self.connections,
            "requests": count,
            "ok": statuses.get(200, 0),
            "unanswered": unanswered,
            "rate": round(statuses.get(200, 0) / self.seconds, 1),
            "statuses": {str(k): v for k, v in sorted(statuses.items())},
            "errors": self.errors,
            "deepest_queue": deepest,
            # From the due time (the figure) and from the send (what a closed-loop client would see).
            **summarize_ms(latencies),
            "service": summarize_ms(service),
            "p99_ms_by_second": by_second_ms(due_ns, latencies, schedule.start_ns, 99),
            "start_unix_ns": time.time_ns() - (time.perf_counter_ns() - schedule.start_ns),
            "client_cpu_seconds": client_cpu,
            "client_cpu_share": client_cpu / wall if wall > 0 else None,
        }


# --- visibility pollers (the HTTP cross-check of event-to-visible) -------------------------------


class VisibilityPoller:
    """Polls GET /api/v1/sessions/{id} until the event count shows, gently.

    At most ``max_active`` samples are watched at once (a sample that finds them all busy is
    skipped and counted), each on its own connection, and the pause between polls grows with the
    time already waited (``interval_s`` at first, then 10 % of the wait, at most 100 ms), so the
    measurement adds little load even when the worker falls behind.
    """

    def __init__(
        self,
        port: int,
        authorization: str = "",
        max_active: int = 4,
        interval_s: float = 0.002,
        timeout_s: float = 10.0,
    ) -> None:
        self.port = port
        self.interval_s = interval_s
        self.timeout_s = timeout_s
        self._idle: list[Connection] = [Connection(port, authorization) for _ in range(max_active)]
        self._all = list(self._idle)
        self.polls = 0
        self.errors = 0
        self.skipped = 0
        self.skipped_indices: set[int] = set()

    async def wait_visible(self, session: str, count: int, sent_ns: int, index: int = -1) -> int | None:
        """Nanoseconds from ``sent_ns`` until the session shows ``count`` events; None on timeout or skip."""
        if not self._idle:
            self.skipped += 1
            self.skipped_indices.add(index)
            return None
        connection = self._idle.pop()
        path = f"/api/v1/sessions/{session}"
        try:
            while True:
                try:
                    status, body = await connection.get(path)
                except HttpError:
                    self.errors += 1
                    status, body = 0, b""
                self.polls += 1
                seen = time.time_ns()
                waited_s = (seen - sent_ns) / 1e9
                if status == 200 and (event_count(body) or 0) >= count:
                    return seen - sent_ns
                if waited_s > self.timeout_s:
                    return None
                await asyncio.sleep(min(0.1, max(self.interval_s, waited_s * 0.1)))
        finally:
            self._idle.append(connection)

    def close(self) -> None:
        for connection in self._all:
            connection.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    reads = sub.add_parser("reads", help="GET /api/v1/sessions/{id} at a fixed concurrency for a fixed time")
    reads.add_argument("--port", type=int, required=True)
    reads.add_argument("--ids", type=Path, required=True, help="a file of session ids, one a line")
    reads.add_argument("--concurrency", type=int, default=32)
    reads.add_argument("--seconds", type=float, default=15.0)
    reads.add_argument("--warmup", type=float, default=2.0)
    reads.add_argument("--seed", type=int, default=1)
    reads.add_argument("--authorization", default="", help="an Authorization header value to send")
    reads.add_argument("--out", type=Path, required=True)
    opened = sub.add_parser("open", help="GET /api/v1/sessions/{id} at a fixed arrival rate (open loop)")
    opened.add_argument("--port", type=int, required=True)
    opened.add_argument("--ids", type=Path, required=True, help="a file of session ids, one a line")
    opened.add_argument("--rate", type=float, required=True, help="requests per second, due on a fixed schedule")
    opened.add_argument("--seconds", type=float, default=15.0)
    opened.add_argument("--connections", type=int, default=32, help="keep-alive connections to send them on")
    opened.add_argument("--start-file", default="", help="wait for this file, then start at the epoch s it holds")
    opened.add_argument("--seed", type=int, default=1)
    opened.add_argument("--authorization", default="", help="an Authorization header value to send")
    opened.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    ids = [line.strip() for line in args.ids.read_text().splitlines() if line.strip()]
    if not ids:
        print("error: no session ids", file=sys.stderr)
        return 2
    load: ReadLoad | OpenLoopReads
    if args.command == "open":
        load = OpenLoopReads(
            args.port, ids, args.rate, args.seconds, args.connections, args.seed, args.authorization, args.start_file
        )
    else:
        load = ReadLoad(args.port, ids, args.concurrency, args.seconds, args.warmup, args.seed, args.authorization)
    result = asyncio.run(load.run())
    args.out.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
