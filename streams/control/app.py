"""Wiring: the faust control plane, the fold loop (data plane), the appender and the web views.

``create_engine(settings)`` builds everything without touching the network; the worker connects
when faust starts it. faust joins the group with the event topic subscribed (so its assignor places
the partitions and its router knows every key's owner) but never reads it: on each assignment the
fold loop restores the assigned partitions and folds them; on each revocation faust waits until the
loop has flushed and written what it folded (``docs/engine.md``).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import faust
from mode import Service

from projections import native
from projections.rules import RulesError
from streams.config.rules_file import parse_rules_text, read_rules_file
from streams.config.settings import Settings
from streams.config.topics import changelog_topic, control_topic
from streams.control import generations
from streams.control.engine import Engine
from streams.control.faust_private import broker_url, group_generation, hold, request_rejoin, standby_partitions
from streams.control.generations import Generation, GenerationWatcher
from streams.fold.config import FoldConfig
from streams.fold.loop import FoldLoop
from streams.fold.store import StoreMemory
from streams.fold.waiters import FoldWaiters
from streams.history.timeline import LogReader, SessionHistory
from streams.kafka.clients import FAUST_METADATA_MAX_AGE_MS, faust_credentials
from streams.kafka.producer import EventProducer
from streams.observability.activity import Activity
from streams.observability.metrics import Metrics
from streams.observability.stalls import FreezeDump, StallWatch
from streams.privacy.appender import SealingAppender
from streams.privacy.cipher import master_keys
from streams.privacy.keyring import KeyRing
from streams.web.erasure import register_erasure_views
from streams.web.explorer import register_explorer_views
from streams.web.history import register_history_views
from streams.web.hygiene import install as install_hygiene
from streams.web.metrics import register_metrics
from streams.web.service_auth import ServiceKeys
from streams.web.storefront import register_storefront_views
from streams.web.tokens import SessionTokens, signing_keys
from streams.web.views import register_views

log = logging.getLogger(__name__)

# The worker's event loop not coming round for this long is logged with its stack: well under the
# group's session timeout, so the line comes before the group drops the member.
EVENT_LOOP_STALL_S = 3.0
# Every thread's stack, from faulthandler's C thread, once the event loop has not come round for this
# long: a process frozen by a C call that holds the GIL (streams.observability.stalls.FreezeDump).
FROZEN_PROCESS_DUMP_S = 10.0


class ProducerService(Service):
    """Starts and stops the confluent-kafka event appender with the worker."""

    def __init__(self, producer: EventProducer, **kwargs: Any) -> None:
        self.producer = producer
        super().__init__(**kwargs)

    async def on_start(self) -> None:
        self.producer.start()

    async def on_stop(self) -> None:
        self.producer.stop()


class KeyRingService(Service):
    """Tails the session data keys' topic for as long as the worker runs (streams.privacy)."""

    def __init__(self, keys: KeyRing, **kwargs: Any) -> None:
        self.keys = keys
        super().__init__(**kwargs)

    async def on_start(self) -> None:
        self.keys.start()

    async def on_stop(self) -> None:
        await asyncio.get_running_loop().run_in_executor(None, self.keys.stop)


class ClosingService(Service):
    """Closes a client (``close``, which blocks) when the worker stops."""

    def __init__(self, close: Callable[[], None], **kwargs: Any) -> None:
        self.close = close
        super().__init__(**kwargs)

    async def on_stop(self) -> None:
        await asyncio.get_running_loop().run_in_executor(None, self.close)


class FoldService(Service):
    """Runs the fold loop's thread for as long as the worker runs."""

    def __init__(self, fold: FoldLoop, data_dir: Path, **kwargs: Any) -> None:
        self.fold = fold
        self.data_dir = data_dir
        super().__init__(**kwargs)

    async def on_start(self) -> None:
        _note_upgrade(self.data_dir)  # here, not earlier: the worker's logging is set up by now
        log.info("the fold runs %s", native.describe())  # `make compile` (docs/engine.md)
        self.fold.start(asyncio.get_running_loop())

    async def on_stop(self) -> None:
        await asyncio.get_running_loop().run_in_executor(None, self.fold.stop)

    @Service.task
    async def _exit_when_the_loop_stops(self) -> None:
        # A worker whose loop stopped (a bug, a fatal Kafka error) would stay in the group with its
        # partitions assigned and never fold them again: the lag grows and writes wait out their
        # timeouts until somebody restarts it. It crashes instead (exit code 1, the log says why):
        # the group moves its partitions to the others, and a supervisor starts it again.
        while not self.should_stop:
            failure = self.fold.failure
            if failure is not None:
                self.log.error("the fold loop stopped (%r): the worker exits", failure)
                await self.crash(failure)
                return
            await self.sleep(1.0)  # polling a flag the loop's thread sets


class EventLoopWatch(Service):
    """Logs the stack of the worker's event loop (HTTP, faust's consumer and its heartbeats) when it
    stops coming round: a blocking call there stalls every request and the group's heartbeats (a soak
    saw faust's timers wake 17 s late right after a broker's SIGKILL, the member dropped out of the
    group, and writes waiting for their fold answered 503), and faust's own warning says only that."""

    def __init__(self, after_s: float = EVENT_LOOP_STALL_S, **kwargs: Any) -> None:
        self.stall = StallWatch("worker's event loop", after_s)
        self.freeze = FreezeDump(FROZEN_PROCESS_DUMP_S)  # when even the watcher above cannot run
        super().__init__(**kwargs)

    async def on_start(self) -> None:
        self.stall.watch(threading.current_thread())

    async def on_stop(self) -> None:
        self.freeze.disarm()
        self.stall.stop()

    @Service.task
    async def _beat(self) -> None:
        while not self.should_stop:
            self.stall.beat()
            self.freeze.arm()
            await self.sleep(1.0)


class GenerationService(Service):
    """Watches the control topic (``streams.control.generations``): when another table generation
    becomes current, the fold loop switches to it (not ready meanwhile: reads answer 503)."""

    def __init__(self, engine: Engine, serving: Generation, local_rules: str, **kwargs: Any) -> None:
        self.engine = engine
        self.serving = serving.number
        self.local_rules = local_rules
        settings = engine.settings
        self.watcher = GenerationWatcher(settings.kafka_bootstrap, control_topic(settings.app_id))
        self._polling = threading.Lock()  # the watcher's consumer is closed only between polls
        super().__init__(**kwargs)

    def _poll(self) -> Generation | None:
        with self._polling:
            return self.watcher.poll(1.0)

    def _close(self) -> None:
        with self._polling:
            self.watcher.close()

    @Service.task
    async def _watch(self) -> None:
        loop = asyncio.get_running_loop()
        while not self.should_stop:
            try:
                newest = await loop.run_in_executor(None, self._poll)
            except Exception as exc:  # noqa: BLE001 - the broker is away: the worker goes on serving
                log.warning("reading %s: %s", self.watcher.topic, exc)
                await self.sleep(1.0)
                continue
            if newest is not None and newest.number != self.serving:
                await self.switch(newest)

    async def switch(self, to: Generation) -> None:
        try:
            rules = to.parsed_rules()
        except RulesError as exc:
            log.error("not switching to generation %d: %s", to.number, exc)
            return
        if to.rules != self.local_rules:
            log.warning("generation %d carries its own rules; SESSIONS_RULES_FILE is not used", to.number)
        settings = self.engine.settings
        log.warning("switching from table generation %d to %d", self.serving, to.number)
        fold = self.engine.fold
        await asyncio.wrap_future(
            fold.switch(
                changelog_topic(settings.changelog_topic, to.number),
                generations.stores_dir(stores_dir(settings.data_dir), to.number),
                rules,
            )
        )
        self.engine.rules = rules
        self.serving = to.number

    async def on_stop(self) -> None:
        await asyncio.get_running_loop().run_in_executor(None, self._close)


def fold_config(settings: Settings, generation: int = 1) -> FoldConfig:
    """The fold loop's settings for a table generation (1: the names of a deployment that never rebuilt)."""
    return FoldConfig(
        bootstrap=settings.kafka_bootstrap,
        events_topic=settings.events_topic,
        changelog_topic=changelog_topic(settings.changelog_topic, generation),
        dlq_topic=settings.dlq_topic,
        partitions=settings.partitions,
        stores_dir=generations.stores_dir(stores_dir(settings.data_dir), generation),
        group_id=settings.fold_group_id,
        writer_id=settings.group_instance_id,
        batch_max=settings.fold_batch_max,
        batch_wait_s=settings.fold_batch_wait_ms / 1000,
        fetch_wait_ms=settings.kafka_fetch_wait_ms,
        cache_sessions=settings.state_cache_sessions,
        memory=StoreMemory(
            settings.rocksdb_block_cache_bytes, settings.rocksdb_write_buffer_bytes, settings.rocksdb_memtables_bytes
        ),
        max_session_bytes=settings.max_session_bytes,
        history_store=settings.history_store,
        lifetime_ms=settings.session_ttl_s * 1000,
        max_skew_ms=int(settings.max_clock_skew_s * 1000),
        sweep_every_s=settings.session_sweep_every_s,
        fault_point=settings.fault_point,
        transactional=settings.changelog_transactions,
    )


def stores_dir(data_dir: Path) -> Path:
    return data_dir / "store"


def create_engine(settings: Settings, current: Generation | None = None) -> Engine:
    """Raises RulesError or SettingsError for a bad rules file or service key list.

    ``current`` is the table generation to serve (``streams.control.generations``; None: generation 1
    with ``SESSIONS_RULES_FILE``); its rules win over the local file."""
    local_rules = read_rules_file(settings.rules_file)  # read and checked once
    serving = current or Generation(1, local_rules)
    # A generation's rules win over the local file (the worker's CLI says when they differ).
    rules = serving.parsed_rules() if current is not None else parse_rules_text(local_rules, settings.rules_file)
    (settings.data_dir / "faust").mkdir(parents=True, exist_ok=True)
    tokens = SessionTokens(signing_keys(settings.session_signing_key_list, settings.data_dir), settings.session_ttl_s)
    app = faust.App(
        settings.app_id,
        broker=broker_url(settings.kafka_bootstrap, frozenset({settings.events_topic})),
        broker_credentials=faust_credentials(settings),
        consumer_metadata_max_age_ms=FAUST_METADATA_MAX_AGE_MS,
        store="memory://",
        datadir=str(settings.data_dir / "faust"),
        autodiscover=False,
        topic_partitions=settings.partitions,
        topic_replication_factor=settings.replication_factor,
        # At least 1: without a table, faust uses its own assignor (the one that publishes worker
        # URLs for the router, and places standbys) only when standby replicas are asked for.
        table_standby_replicas=max(1, settings.standby_replicas),
        # The HTTP layer is ours: no /table dumps of session data, no debug graph.
        web_enabled=True,
        web_bind=settings.web_host,
        web_host=settings.web_host,
        web_port=settings.web_port,
        canonical_url=settings.web_url,
        web_tables_enabled=False,
        web_graph_enabled=False,
        web_stats_enabled=False,
        consumer_auto_offset_reset="earliest",
        consumer_group_instance_id=settings.group_instance_id,
        broker_session_timeout=settings.kafka_session_timeout_s,
        broker_heartbeat_interval=max(1.0, settings.kafka_session_timeout_s / 4),
        topic_allow_declare=True,
    )
    # Subscribed, never consumed by faust; acks=False keeps its livelock detector quiet about it.
    events = app.topic(
        settings.events_topic,
        key_serializer="raw",
        value_serializer="raw",
        partitions=settings.partitions,
        acks=False,
    )
    app.topics.add(events)
    producer = EventProducer(settings.kafka_bootstrap, settings.events_topic, settings.produce_timeout_s)
    app.add_dependency(ProducerService(producer))
    keys = KeyRing(
        settings.kafka_bootstrap,
        settings.keys_topic,
        master_keys(settings.master_key, settings.data_dir),
        settings.group_instance_id,
    )
    # Started before the fold loop (which opens and seals personal values with it), stopped after.
    app.add_dependency(KeyRingService(keys))
    waiters = FoldWaiters()
    metrics = Metrics()
    activity = Activity()

    def on_batch(*figures: Any) -> None:
        metrics.batch(*figures)
        activity.batch(*figures)

    fold = FoldLoop(
        fold_config(settings, serving.number),
        rules,
        waiters,
        fence=lambda: group_generation(app),
        on_lost=lambda partitions: request_rejoin(app),
        on_batch=on_batch,
        on_written=activity.written,
        keys=keys,
    )
    app.add_dependency(FoldService(fold, settings.data_dir))
    app.add_dependency(EventLoopWatch())
    service_keys = ServiceKeys(settings.service_key_scopes)
    reader = LogReader(settings.kafka_bootstrap, settings.events_topic, settings.group_instance_id)
    app.add_dependency(ClosingService(reader.close))
    history = SessionHistory(fold, reader, keys)
    appender = SealingAppender(producer, keys, lambda: engine.rules.personal_public_keys)
    engine = Engine(settings, app, events, appender, rules, waiters, tokens, service_keys, fold, history, metrics, keys)
    engine.activity = activity
    app.add_dependency(GenerationService(engine, serving, local_rules))

    @app.on_partitions_revoked.connect  # type: ignore[arg-type]
    async def _revoked(sender: Any, revoked: Any, **kwargs: Any) -> None:
        # faust awaits this before the rebalance goes on: the loop lets go only after its last
        # batch of these partitions is flushed and written, so two workers never write one.
        # Until the assignment: the routing table still names the owners before the rebalance, and
        # a write routed by it (a new session drawn on a partition being taken away) would wait for
        # a fold that no longer happens here.
        engine.assignment_known.clear()
        partitions = {tp.partition for tp in revoked if tp.topic == settings.events_topic}
        if partitions:
            await asyncio.wrap_future(fold.revoke(partitions))

    @app.on_partitions_assigned.connect  # type: ignore[arg-type]
    async def _assigned(sender: Any, assigned: Any, **kwargs: Any) -> None:
        hold(app, assigned)
        partitions = {tp.partition for tp in assigned if tp.topic == settings.events_topic}
        standbys = standby_partitions(app, settings.events_topic) if settings.standby_replicas > 0 else set()
        # Not awaited: restoring may take long, and /readyz says when it is done.
        fold.assign(partitions, group_generation(app), standbys)
        engine.assignment_known.set()

    register_views(engine)
    register_storefront_views(engine)
    register_history_views(engine)
    register_erasure_views(engine)
    install_hygiene(engine)
    register_metrics(engine)
    register_explorer_views(engine)
    return engine


def _note_upgrade(data_dir: Path) -> None:
    """A data folder of the faust-table engine: say what happens to it (its tables are not read)."""
    old_tables = sorted((data_dir / "worker").glob("**/sessions-*.db"))
    if old_tables and not stores_dir(data_dir).exists():
        log.warning(
            "upgrade: %s holds tables of the faust-table engine; they are not migrated. This worker "
            "rebuilds its store from the changelog %s and then the event log (kept forever), which "
            "gives the same sessions. Delete %s once it is ready.",
            data_dir / "worker", "<app id>-sessions-state-changelog", data_dir / "worker",
        )  # fmt: skip
