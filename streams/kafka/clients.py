"""The configuration of every Kafka client the project makes: the bootstrap servers plus how to
connect (TLS, SASL) from the settings, so no client is left on plaintext by mistake.

confluent-kafka clients take :func:`client_config`; faust's own (aiokafka) client takes
:func:`faust_credentials`. The security settings are read once per process from the environment
(``SESSIONS_KAFKA_SECURITY_PROTOCOL`` and the rest, ``streams.config.settings``).
"""

from __future__ import annotations

import logging
import ssl
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from functools import cache
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

from streams.config.settings import Settings

log = logging.getLogger(__name__)


@cache
def _security() -> dict[str, str]:
    return Settings.from_env().kafka_security


# How often a confluent-kafka client asks for metadata when nothing made it ask (librdkafka's
# default: 5 min). A client that asks a partition's leader directly (the restore's watermarks) and
# gets no answer from a dead one does not always ask who leads now: a broker fault run's restore
# consumers asked the dead leader of two changelog partitions for four minutes. Every 10 s, as
# faust's consumer (FAUST_METADATA_MAX_AGE_MS below).
METADATA_REFRESH_MS = 10_000


def client_config(bootstrap: str, options: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """``{"bootstrap.servers": bootstrap, <security>, **options}`` for a confluent-kafka client."""
    return {
        "bootstrap.servers": bootstrap,
        "topic.metadata.refresh.interval.ms": METADATA_REFRESH_MS,
        **_security(),
        **(options or {}),
    }


def faust_credentials(settings: Settings) -> Any:
    """faust's ``broker_credentials`` for the same settings (None for PLAINTEXT)."""
    import faust

    protocol = settings.kafka_security_protocol
    context = None
    if protocol.endswith("SSL"):
        context = ssl.create_default_context(cafile=settings.kafka_ssl_ca_location or None)
        if settings.kafka_ssl_certificate_location:
            context.load_cert_chain(settings.kafka_ssl_certificate_location, settings.kafka_ssl_key_location or None)
    if protocol.startswith("SASL"):
        return faust.SASLCredentials(
            username=settings.kafka_sasl_username,
            password=settings.kafka_sasl_password,
            mechanism=settings.kafka_sasl_mechanism,
            ssl_context=context,
        )
    if context is not None:
        return faust.SSLCredentials(context)
    return None


# How often faust's consumer (aiokafka) asks for metadata even when nothing failed (aiokafka's
# default: 5 min). aiokafka asks only the brokers its last metadata listed and never goes back to the
# bootstrap list: a member whose last metadata came while one broker was up (two of three down, or
# restarting one by one) is left with that broker alone, and when it goes down next the member
# cannot find the group's coordinator, misses its session timeout and the group rebalances
# (partitions move, reads answer 503 meanwhile). Asked every 10 s, it knows every broker again soon
# after they are back. (librdkafka, the other clients', goes back to the bootstrap list by itself.)
FAUST_METADATA_MAX_AGE_MS = 10_000

# A partition answers so while its leader is elected, or before the client's metadata knows a topic
# created a moment ago: ask again rather than fail.
WAITING_FOR_A_LEADER = frozenset(
    {
        KafkaError.NOT_LEADER_FOR_PARTITION,
        KafkaError.LEADER_NOT_AVAILABLE,
        KafkaError.UNKNOWN_TOPIC_OR_PART,
        KafkaError._UNKNOWN_PARTITION,
        KafkaError._UNKNOWN_TOPIC,
    }
)


# What a client says while a broker dies or restarts (its connection reset, its handle torn down,
# no answer within the call's timeout): Kafka is still there, ask again.
BROKER_GOING_OR_COMING = frozenset(
    {
        KafkaError._DESTROY_BROKER,
        KafkaError._TRANSPORT,
        KafkaError._ALL_BROKERS_DOWN,
        KafkaError._TIMED_OUT,
        KafkaError.REQUEST_TIMED_OUT,
        KafkaError.NOT_COORDINATOR,
        KafkaError.COORDINATOR_NOT_AVAILABLE,
    }
)


def watermarks(consumer: Consumer, tp: TopicPartition, timeout_s: float) -> tuple[int, int]:
    """The partition's watermarks, polled until its leader answers (a topic created a moment ago
    has none yet) or ``timeout_s`` passed."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            low, high = consumer.get_watermark_offsets(tp, timeout=timeout_s, cached=False)
            return int(low), int(high)
        except KafkaException as exc:
            code = exc.args[0].code() if exc.args and isinstance(exc.args[0], KafkaError) else None
            waiting = code in WAITING_FOR_A_LEADER
            if not waiting or time.monotonic() > deadline:
                raise
        time.sleep(0.1)  # the interval of polling for the leader


def watermarks_once_kafka_answers(
    consumer: Consumer, tp: TopicPartition, interrupted: Callable[[], bool], ask_s: float = 10.0
) -> tuple[int, int] | None:
    """The partition's watermarks, asked again (each ask waits ``ask_s``) through anything a dying,
    restarting or electing broker makes a client say, however long that lasts; None once
    ``interrupted()`` says to stop waiting. The fold loop's restore: a worker rides through a
    broker's death, it never gives up on Kafka (a fatal or unexpected error is still raised)."""
    said_at = time.monotonic()
    while True:
        try:
            low, high = consumer.get_watermark_offsets(tp, timeout=ask_s, cached=False)
            return int(low), int(high)
        except KafkaException as exc:
            error = exc.args[0] if exc.args and isinstance(exc.args[0], KafkaError) else None
            if error is None or error.fatal() or error.code() not in WAITING_FOR_A_LEADER | BROKER_GOING_OR_COMING:
                raise
            if time.monotonic() - said_at >= 10.0:
                said_at = time.monotonic()
                log.warning("%s[%d]: waiting for Kafka to tell its end: %s", tp.topic, tp.partition, error.str())
            _ask_who_leads(consumer, tp.topic)
        if interrupted():
            return None
        time.sleep(0.1)  # the interval of asking again


def _ask_who_leads(consumer: Consumer, topic: str) -> None:
    """A metadata request for ``topic``: its answer updates the client's idea of the partitions'
    leaders (the one it asked may be dead)."""
    try:
        consumer.list_topics(topic, timeout=5.0)
    except KafkaException as exc:
        log.debug("metadata of %s: %s", topic, exc)


# How long a worker's shutdown waits for its Kafka clients to close.
CLOSE_WITHIN_S = 5.0


def close_within(clients: Iterable[Any], what: str, seconds: float = CLOSE_WITHIN_S) -> None:
    """``close()`` each client (None ones skipped), all at once, waiting at most ``seconds``.

    librdkafka's close of a consumer with a group id waits for the group's coordinator; with that
    broker dead (a make soak run SIGKILLed it just before the workers' SIGTERM) a worker's shutdown
    was seen to wait past the 30 s a supervisor grants it, and got SIGKILLed. The worker is leaving:
    a close that does not finish is left to the process's exit, and said."""
    pending = []
    for client in clients:
        if client is None:
            continue
        done = threading.Event()

        def close(client: Any = client, done: threading.Event = done) -> None:
            try:
                client.close()
            except Exception:
                log.debug("closing a Kafka client of %s", what, exc_info=True)
            finally:
                done.set()

        threading.Thread(target=close, name=f"close-{what}", daemon=True).start()
        pending.append(done)
    deadline = time.monotonic() + seconds
    for done in pending:
        if not done.wait(max(0.0, deadline - time.monotonic())):
            log.warning("%s: a Kafka client did not close within %.1fs (its broker is down?); left open", what, seconds)
            return
