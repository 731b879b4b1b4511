"""The worker: one faust app that folds ``session-events`` into the ``sessions`` table and serves HTTP.

``create_engine(settings)`` builds everything without touching the network; the worker connects
when faust starts it. Table writes happen only in the agent below, one session key at a time, in
the partition the event arrived on, so the changelog partition always matches the key's partition.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, cast

import faust
from faust.types import StreamT, TableT
from mode import Service

from projections.rules import Rules
from streams.fold_waiters import FoldWaiters
from streams.folding import as_current, fold_batch
from streams.kafka.faust_transport import broker_url
from streams.kafka.producer import EventProducer
from streams.rules_file import load_rules
from streams.settings import Settings
from streams.web.service_auth import parse_service_keys
from streams.web.tokens import SessionTokens, signing_key

log = logging.getLogger(__name__)

TABLE_NAME = "sessions"


class ProducerService(Service):
    """Starts and stops the confluent-kafka event appender with the worker."""

    def __init__(self, producer: EventProducer, **kwargs: Any) -> None:
        self.producer = producer
        super().__init__(**kwargs)

    async def on_start(self) -> None:
        self.producer.start()

    async def on_stop(self) -> None:
        self.producer.stop()


@dataclass
class Engine:
    settings: Settings
    app: faust.App
    events: faust.TopicT
    dead_letters: faust.TopicT
    sessions: TableT[bytes, bytes]
    producer: EventProducer
    rules: Rules
    waiters: FoldWaiters
    tokens: SessionTokens
    service_keys: Mapping[str, frozenset[str]]

    def read_session(self, session_id: str) -> bytes | None:
        """The stored state of a session this worker owns (callers route to the owner first)."""
        value: bytes | None = self.sessions.get(session_id.encode())
        return value

    def is_ready(self) -> bool:
        """Partitions assigned and every active table partition recovered from its changelog."""
        app = self.app
        recovery: Any = app.tables.recovery  # type: ignore[attr-defined]  # on TableManager, not its ABC
        return bool(app.rebalancing is False and recovery.completed.is_set())


def create_engine(settings: Settings) -> Engine:
    """Raises RulesError or SettingsError for a bad rules file or service key list."""
    rules = load_rules(settings.rules_file)
    service_keys = parse_service_keys(settings.service_keys)
    (settings.data_dir / "worker").mkdir(parents=True, exist_ok=True)
    tokens = SessionTokens(signing_key(settings.session_signing_key, settings.data_dir), settings.session_ttl_s)
    app = faust.App(
        settings.app_id,
        broker=broker_url(settings.kafka_bootstrap, settings.kafka_fetch_wait_ms),
        store="rocksdb://",
        datadir=str(settings.data_dir / "worker"),
        autodiscover=False,
        topic_partitions=settings.partitions,
        topic_replication_factor=settings.replication_factor,
        table_standby_replicas=settings.standby_replicas,
        # The HTTP layer is ours: no /table dumps of session data, no debug graph.
        web_enabled=True,
        web_bind=settings.web_host,
        web_host=settings.web_host,
        web_port=settings.web_port,
        web_tables_enabled=False,
        web_graph_enabled=False,
        web_stats_enabled=False,
        consumer_auto_offset_reset="earliest",
        consumer_group_instance_id=settings.group_instance_id,
        broker_session_timeout=settings.kafka_session_timeout_s,
        broker_heartbeat_interval=max(1.0, settings.kafka_session_timeout_s / 4),
        producer_acks=-1,
        producer_linger=settings.changelog_linger_ms / 1000.0,
        topic_allow_declare=True,
    )
    events = app.topic(
        settings.events_topic,
        key_serializer="raw",
        value_serializer="raw",
        partitions=settings.partitions,
    )
    dead_letters = app.topic(
        settings.dlq_topic, key_serializer="raw", value_serializer="raw", partitions=settings.partitions
    )
    sessions = app.Table(
        TABLE_NAME,
        default=None,
        key_type=bytes,
        value_type=bytes,
        partitions=settings.partitions,
        options={
            "block_cache_size": settings.rocksdb_block_cache_bytes,
            "write_buffer_size": settings.rocksdb_write_buffer_bytes,
            "max_write_buffer_number": 2,
        },
    )
    producer = EventProducer(settings.kafka_bootstrap, settings.events_topic, settings.produce_timeout_s)
    app.add_dependency(ProducerService(producer))
    waiters = FoldWaiters()
    engine = Engine(settings, app, events, dead_letters, sessions, producer, rules, waiters, tokens, service_keys)

    @app.task  # type: ignore[untyped-decorator]
    async def _drop_per_event_monitor() -> None:
        # faust's Monitor sensor records every message and event in Python dicts and deques
        # (about a tenth of the fold's CPU); nothing here reads it, so it stops receiving them.
        if app.monitor in set(app.sensors):
            app.sensors.remove(app.monitor)

    @app.agent(events, name="fold-session-events")
    async def fold_session_events(stream: StreamT[bytes]) -> None:
        # Acked after the body: a batch's table writes happen before its offsets can be committed.
        async for batch in cast(Any, stream).take_events(
            settings.fold_batch_max, within=settings.fold_batch_wait_ms / 1000
        ):
            outcome = fold_batch(batch, sessions.get, rules, settings.max_session_bytes)
            for key, (encoded, event) in outcome.writes.items():
                with as_current(event):
                    sessions[key] = encoded
            for message, reason in outcome.dead:
                await _dead_letter(dead_letters, message, reason)
            for event_id, key in outcome.folded_ids:
                waiters.folded(event_id, outcome.writes[key][0])

    from streams.web.storefront import register_storefront_views
    from streams.web.views import register_views  # the views need the engine built above

    register_views(engine)
    register_storefront_views(engine)
    return engine


async def _dead_letter(topic: faust.TopicT, message: Any, reason: str) -> None:
    log.warning("dead letter %s[%s]@%s: %s", message.topic, message.partition, message.offset, reason)
    await topic.send(
        key=message.key,
        value=message.value,
        headers=[
            ("dlq.reason", reason.encode()),
            ("dlq.topic", str(message.topic).encode()),
            ("dlq.partition", str(message.partition).encode()),
            ("dlq.offset", str(message.offset).encode()),
        ],
    )
