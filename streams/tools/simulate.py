"""``sessionctl simulate``: storefront traffic through the public HTTP API, as browsers send it.

Simulated visitors arrive at ``rate`` per second for ``duration`` seconds. Each has its own cookie
jar (one ``aiohttp.ClientSession``; all of them share one connection pool. aiohttp, not httpx: at
1,000 requests/s httpx's client alone needed more than the two cores this runs on) and follows a script drawn
from ``random.Random(seed, visitor)``, so a run with the same seed sends the same traffic:

- it lands with ``POST /api/sessions`` (a campaign landing puts ``utm_*`` in the query string, as
  VTEX copies them into ``public``),
- views a few pages (``POST /api/events``, ``navigation.page_viewed`` for the cookie's session),
- may follow a campaign link (``navigation.campaign_clicked``), set its country and postal code
  (``PATCH /api/sessions``), add an item to the cart (``cart.item_added``),
- and, when a service key is given, may log in: the identity provider sends a trusted
  ``auth.logged_in`` for the cookie's session (``POST /api/events`` with the key).

Every answer other than 2xx, and every transport failure, is an error (counted by status, or by
``transport`` for no answer). A live display shows requests/s, errors by status and latency
percentiles; the summary (text or ``--json``) ends the run.
"""

from __future__ import annotations

import asyncio
import base64
import json
import random
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from yarl import URL

PAGES = [
    ("home", "https://shop.example/"),
    ("category", "https://shop.example/shoes"),
    ("category", "https://shop.example/shirts"),
    ("product", "https://shop.example/shoes/runner-2/p"),
    ("product", "https://shop.example/shirts/linen/p"),
    ("search", "https://shop.example/search?q=sandals"),
    ("cart", "https://shop.example/checkout/#/cart"),
]
CAMPAIGNS = [
    {"utm_source": "google", "utm_medium": "cpc", "utm_campaign": "blackfriday"},
    {"utm_source": "newsletter", "utm_medium": "email", "utm_campaign": "spring"},
    {"utm_source": "instagram", "utm_medium": "social", "utm_campaign": "influencer"},
]
POSTAL_CODES = ["04561000", "01310-100", "20040-002", "30130-010"]
SKUS = [("sku-runner-2", 349.9), ("sku-linen", 129.0), ("sku-sandal", 89.5)]


@dataclass
class Stats:
    """What the run saw; updated by the visitors, read by the display (one event loop)."""

    started: float = field(default_factory=time.monotonic)
    visitors_started: int = 0
    visitors_done: int = 0
    logins: int = 0
    requests: int = 0
    statuses: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    by_kind: Counter[str] = field(default_factory=Counter)
    latencies_ms: list[float] = field(default_factory=list)
    recent: list[float] = field(default_factory=list)  # monotonic times of answers, for requests/s

    def record(self, kind: str, status: int | None, seconds: float) -> None:
        now = time.monotonic()
        self.requests += 1
        self.by_kind[kind] += 1
        label = "transport" if status is None else str(status)
        self.statuses[label] += 1
        if status is None or not 200 <= status < 300:
            self.errors[label] += 1
        self.latencies_ms.append(seconds * 1000)
        self.recent.append(now)

    def rate(self, window_s: float = 1.0) -> float:
        """Answers per second over the last ``window_s`` seconds."""
        cutoff = time.monotonic() - window_s
        recent = self.recent
        index = 0
        while index < len(recent) and recent[index] < cutoff:
            index += 1
        del recent[:index]
        return len(recent) / window_s

    def percentiles(self) -> dict[str, float]:
        values = sorted(self.latencies_ms)
        if not values:
            return {"p50": 0.0, "p95": 0.0, "p99": 0.0, "max": 0.0}

        def at(q: float) -> float:
            return round(values[min(len(values) - 1, int(q * len(values)))], 2)

        return {"p50": at(0.50), "p95": at(0.95), "p99": at(0.99), "max": round(values[-1], 2)}

    def summary(self, config: SimulationConfig) -> dict[str, Any]:
        seconds = time.monotonic() - self.started
        return {
            "url": config.url,
            "seed": config.seed,
            "rate": config.rate,
            "duration": config.duration,
            "seconds": round(seconds, 2),
            "sessions": self.visitors_started,
            "sessionsCompleted": self.visitors_done,
            "logins": self.logins,
            "requests": self.requests,
            "requestsPerSecond": round(self.requests / max(seconds, 1e-6), 1),
            "errors": sum(self.errors.values()),
            "errorsByStatus": dict(sorted(self.errors.items())),
            "statuses": dict(sorted(self.statuses.items())),
            "requestsByKind": dict(sorted(self.by_kind.items())),
            "latencyMs": self.percentiles(),
        }


@dataclass(frozen=True)
class SimulationConfig:
    url: str
    rate: float
    duration: float
    seed: int = 1
    service_key: str | None = None
    login_share: float = 0.15  # of visitors, when a service key is given
    think_s: float = 0.05  # the longest pause between two steps of a visitor
    timeout_s: float = 30.0
    max_connections: int = 64


def session_id_of(token: str) -> str | None:
    """The session id in a ``vtex_session`` token (its claims, not verified: the server did)."""
    try:
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (IndexError, ValueError):
        return None
    value = claims.get("id")
    return value if isinstance(value, str) else None


class Visitor:
    def __init__(self, index: int, config: SimulationConfig, stats: Stats, connector: aiohttp.BaseConnector) -> None:
        self.index = index
        self.config = config
        self.stats = stats
        self.random = random.Random(f"{config.seed}:{index}")
        self.connector = connector
        # Its own cookie jar (unsafe: cookies of an IP-address host such as 127.0.0.1 are kept too);
        # the connection pool is shared.
        self.client = self.session(aiohttp.CookieJar(unsafe=True))

    def session(self, jar: aiohttp.abc.AbstractCookieJar) -> aiohttp.ClientSession:
        return aiohttp.ClientSession(
            base_url=self.config.url,
            connector=self.connector,
            connector_owner=False,
            cookie_jar=jar,
            timeout=aiohttp.ClientTimeout(total=self.config.timeout_s),
        )

    async def call(self, kind: str, method: str, path: str, **kwargs: Any) -> int | None:
        """The answer's status (its body read), None when none came."""
        began = time.perf_counter()
        try:
            async with self.client.request(method, path, **kwargs) as answer:
                await answer.read()
                status = answer.status
        except (aiohttp.ClientError, TimeoutError):
            status = None
        self.stats.record(kind, status, time.perf_counter() - began)
        return status

    async def pause(self) -> None:
        await asyncio.sleep(self.random.uniform(0, self.config.think_s))

    async def run(self) -> None:
        r = self.random
        landing = r.choice(CAMPAIGNS) if r.random() < 0.4 else {}
        try:
            created = await self.call("create", "POST", "/api/sessions", params=landing, json={"public": {}})
            if created is None or created >= 300:
                return
            await self.browse()
        finally:
            await self.client.close()

    async def browse(self) -> None:
        r = self.random
        for _ in range(r.randint(1, 4)):
            await self.pause()
            page_type, url = r.choice(PAGES)
            event = {"type": "navigation.page_viewed", "data": {"url": url, "pageType": page_type}}
            await self.call("page_view", "POST", "/api/events", json=event)
        if r.random() < 0.3:
            await self.pause()
            campaign = r.choice(CAMPAIGNS)
            data = {**campaign, "url": "https://shop.example/?utm_campaign=" + campaign["utm_campaign"]}
            await self.call(
                "campaign", "POST", "/api/events", json={"type": "navigation.campaign_clicked", "data": data}
            )
        if r.random() < 0.35:
            await self.pause()
            body = {"public": {"country": {"value": "BRA"}, "postalCode": {"value": r.choice(POSTAL_CODES)}}}
            await self.call("postal_code", "PATCH", "/api/sessions", json=body)
        if r.random() < 0.25:
            await self.pause()
            sku, price = r.choice(SKUS)
            item: dict[str, Any] = {"sku": sku, "quantity": r.randint(1, 3), "price": price, "currency": "BRL"}
            await self.call("cart", "POST", "/api/events", json={"type": "cart.item_added", "data": item})
        if self.config.service_key and r.random() < self.config.login_share:
            await self.pause()
            await self.log_in()

    async def log_in(self) -> None:
        """The identity provider, not the browser, tells the engine: a trusted event with the key."""
        cookie = self.client.cookie_jar.filter_cookies(URL(self.config.url)).get("vtex_session")
        session_id = session_id_of(cookie.value if cookie is not None else "")
        if session_id is None:
            return
        user = f"user-{self.config.seed}-{self.index}"
        event = {
            "type": "auth.logged_in",
            "subject": session_id,
            "source": "/simulate/identity-provider",
            "data": {"userId": user, "email": f"{user}@example.com"},
        }
        headers = {"Authorization": f"Bearer {self.config.service_key}"}
        # A service call, not the storefront's: a client without the browser's cookies.
        service = self.session(aiohttp.DummyCookieJar())
        began = time.perf_counter()
        try:
            async with service.post("/api/events", json=event, headers=headers) as answer:
                await answer.read()
                status: int | None = answer.status
        except (aiohttp.ClientError, TimeoutError):
            status = None
        finally:
            await service.close()
        self.stats.record("login", status, time.perf_counter() - began)
        if status == 202:
            self.stats.logins += 1


async def simulate(config: SimulationConfig, stats: Stats, on_tick: Callable[[Stats], None] | None = None) -> Stats:
    """Runs the traffic; ``on_tick(stats)`` about every 0.25 s (the display)."""
    connector = aiohttp.TCPConnector(limit=config.max_connections)
    visitors = int(config.rate * config.duration)
    tasks: set[asyncio.Task[None]] = set()
    stats.started = time.monotonic()

    async def one(index: int) -> None:
        stats.visitors_started += 1
        try:
            await Visitor(index, config, stats, connector).run()
        finally:
            stats.visitors_done += 1

    async def ticker() -> None:
        while True:
            if on_tick is not None:
                on_tick(stats)
            await asyncio.sleep(0.25)

    tick = asyncio.create_task(ticker())
    try:
        for index in range(visitors):
            # Arrivals on a fixed schedule (index / rate), whatever the answers' latency.
            delay = stats.started + index / config.rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            task = asyncio.create_task(one(index))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        while tasks:
            await asyncio.gather(*list(tasks))
    finally:
        tick.cancel()
        await connector.close()
    if on_tick is not None:
        on_tick(stats)
    return stats


# --- display -------------------------------------------------------------------------------------


def render_table(stats: Stats, config: SimulationConfig) -> Any:
    from rich.table import Table

    p = stats.percentiles()
    table = Table(title=f"simulate {config.url}  seed {config.seed}", show_header=False, expand=False)
    table.add_column("figure", style="bold")
    table.add_column("value")
    elapsed = time.monotonic() - stats.started
    table.add_row("elapsed", f"{elapsed:5.1f} s of {config.duration:g} s of arrivals")
    table.add_row("sessions", f"{stats.visitors_started} started, {stats.visitors_done} done, {stats.logins} logged in")
    table.add_row("requests", f"{stats.requests}  ({stats.rate():,.0f}/s now)")
    errors = ", ".join(f"{k}: {v}" for k, v in sorted(stats.errors.items())) or "none"
    table.add_row("errors", errors, style="red" if stats.errors else None)
    table.add_row(
        "latency", f"p50 {p['p50']:.1f} ms  p95 {p['p95']:.1f} ms  p99 {p['p99']:.1f} ms  max {p['max']:.1f} ms"
    )
    return table


def summary_text(summary: dict[str, Any]) -> str:
    p = summary["latencyMs"]
    errors = ", ".join(f"{k}: {v}" for k, v in summary["errorsByStatus"].items()) or "none"
    kinds = ", ".join(f"{k} {v}" for k, v in summary["requestsByKind"].items())
    return "\n".join(
        [
            f"simulated {summary['sessions']} sessions ({summary['logins']} logged in) against {summary['url']} "
            f"in {summary['seconds']} s, seed {summary['seed']}",
            f"requests: {summary['requests']} ({summary['requestsPerSecond']}/s): {kinds}",
            f"errors: {summary['errors']} ({errors})",
            f"latency: p50 {p['p50']} ms, p95 {p['p95']} ms, p99 {p['p99']} ms, max {p['max']} ms",
        ]
    )


def run(config: SimulationConfig, as_json: bool) -> dict[str, Any]:
    """Runs the simulation with a live display on a terminal (plain lines every 2 s otherwise, on
    stderr); returns the summary."""
    stats = Stats()
    if sys.stderr.isatty():
        from rich.console import Console
        from rich.live import Live

        with Live(render_table(stats, config), console=Console(stderr=True), transient=True) as live:

            def tick(s: Stats) -> None:
                live.update(render_table(s, config))

            asyncio.run(simulate(config, stats, tick))
    else:
        last = [0.0]

        def log_line(s: Stats) -> None:
            now = time.monotonic()
            if now - last[0] < 2.0:
                return
            last[0] = now
            p = s.percentiles()
            print(
                f"simulate: {now - s.started:.0f}s {s.visitors_started} sessions, {s.requests} requests "
                f"({s.rate():.0f}/s), {sum(s.errors.values())} errors, p50 {p['p50']:.1f} ms, p99 {p['p99']:.1f} ms",
                file=sys.stderr,
                flush=True,
            )

        asyncio.run(simulate(config, stats, log_line))
    return stats.summary(config)
