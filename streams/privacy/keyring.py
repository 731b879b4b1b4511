"""The session data keys and the people index: one compacted topic, held in memory by every worker.

Records of ``<app>-session-keys`` (one partition):

- ``k:<session id>:<kid>`` -> the data key wrapped by the master key (``MasterKeys.wrap``);
- ``p:<digest>:<session id>`` -> ``1``: the session recorded the identifier whose keyed hash is
  ``digest`` (``MasterKeys.digests``), so ``DELETE /api/v1/people`` finds it;
- a tombstone (null value) of either: erased. Every worker's tail drops the key from memory.

A session may have several data keys (two workers that each met it first make one each); a sealed
value names its own. A key is acknowledged by Kafka before the first record sealed with it is
appended, so a worker that meets an unknown ``kid`` reads the topic to its end (``find``) and then
knows it, unless it was erased.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable
from typing import Any

from confluent_kafka import Consumer, KafkaError, Message, Producer, TopicPartition
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from streams.kafka.clients import client_config, close_within
from streams.kafka.producer import KAFKA_CLIENT_LOG
from streams.privacy.cipher import DataKey, MasterKeys, Unreadable, new_data_key

log = logging.getLogger(__name__)

PARTITION = 0


class KeysUnavailable(RuntimeError):
    """Kafka did not answer in time: nothing can be sealed, opened or erased just now."""


class KeyRing:
    """No I/O until :meth:`start`; thread-safe (the fold loop's thread and the web's executor)."""

    def __init__(self, bootstrap: str, topic: str, master: MasterKeys, client_id: str) -> None:
        self.bootstrap = bootstrap
        self.topic = topic
        self.master = master
        self.client_id = client_id
        self._keys: dict[str, dict[str, DataKey]] = {}  # session id -> kid -> key
        self._people: dict[str, set[str]] = {}  # digest -> session ids
        self._digests: dict[str, set[str]] = {}  # session id -> digests (to erase its entries)
        self._position = 0  # the next offset the tail will read
        self._changed = threading.Condition()
        self._lock = threading.Lock()
        self._producer: Producer | None = None
        self._tail: Consumer | None = None
        self._marks: Consumer | None = None
        self._marks_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._stopping = False

    # --- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        base = {
            "group.id": f"{self.client_id}-keys",  # never joined nor committed: assign() only
            "client.id": f"{self.client_id}-keys",
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "logger": KAFKA_CLIENT_LOG,
        }
        self._tail = Consumer(client_config(self.bootstrap, {**base, "enable.partition.eof": True}))
        self._tail.assign([TopicPartition(self.topic, PARTITION, 0)])
        self._marks = Consumer(client_config(self.bootstrap, base))
        self._producer = Producer(
            client_config(
                self.bootstrap, {"acks": "all", "enable.idempotence": True, "linger.ms": 0, "logger": KAFKA_CLIENT_LOG}
            )
        )
        self._thread = threading.Thread(target=self._run, name="session-keys-tail", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopping = True
        if self._thread is not None:
            self._thread.join(10)
        close_within((self._tail, self._marks), "the key ring")
        if self._producer is not None:
            self._producer.flush(5)
        self._tail = self._marks = self._producer = None

    def _run(self) -> None:
        assert self._tail is not None
        while not self._stopping:
            try:
                messages = self._tail.consume(1000, 0.2)
            except Exception:
                if self._stopping:
                    return
                raise
            for message in messages:
                self._take(message)

    def _take(self, message: Message) -> None:
        error = message.error()
        if error is not None:
            if error.code() == KafkaError._PARTITION_EOF:
                with self._changed:
                    self._position = max(self._position, message.offset() or 0)
                    self._changed.notify_all()
            else:
                log.warning("reading %s: %s", self.topic, error.str())
            return
        key, value = (message.key() or b"").decode(errors="replace"), message.value()
        kind, _, rest = key.partition(":")
        with self._lock:
            if kind == "k":
                session_id, _, kid = rest.rpartition(":")
                if value is None:
                    self._drop_key(session_id, kid)
                elif kid not in self._keys.get(session_id, {}):
                    try:
                        self._keys.setdefault(session_id, {})[kid] = self.master.unwrap(session_id, kid, value)
                    except Unreadable:
                        log.warning("data key %s of session %s does not unwrap with the master keys", kid, session_id)
            elif kind == "p":
                digest, _, session_id = rest.partition(":")
                if value is None:
                    self._people.get(digest, set()).discard(session_id)
                    self._digests.get(session_id, set()).discard(digest)
                else:
                    self._people.setdefault(digest, set()).add(session_id)
                    self._digests.setdefault(session_id, set()).add(digest)
        with self._changed:
            self._position = max(self._position, (message.offset() or 0) + 1)
            self._changed.notify_all()

    def _drop_key(self, session_id: str, kid: str) -> None:
        keys = self._keys.get(session_id)
        if keys is not None:
            keys.pop(kid, None)
            if not keys:
                del self._keys[session_id]

    # --- reads -------------------------------------------------------------------------------

    def find(self, session_id: str, kid: str) -> AESGCM | None:
        """The data key ``kid`` of a session; None when it was erased or never existed. A key this
        worker has not seen yet is looked for up to the topic's end (raises :class:`KeysUnavailable`
        when Kafka does not answer)."""
        key = self._known(session_id, kid)
        if key is None:
            self.catch_up()
            key = self._known(session_id, kid)
        return key.aead if key is not None else None

    def _known(self, session_id: str, kid: str) -> DataKey | None:
        with self._lock:
            return self._keys.get(session_id, {}).get(kid)

    def current(self, session_id: str) -> DataKey | None:
        with self._lock:
            keys = self._keys.get(session_id)
            return next(iter(keys.values())) if keys else None

    def catch_up(self, timeout_s: float = 10.0) -> None:
        """Return once the tail has read everything the topic held when called."""
        deadline = time.monotonic() + timeout_s
        with self._marks_lock:
            if self._marks is None:
                raise KeysUnavailable("the key ring is not started")
            try:
                _, high = self._marks.get_watermark_offsets(
                    TopicPartition(self.topic, PARTITION), timeout_s, cached=False
                )
            except Exception as exc:  # noqa: BLE001 - KafkaException: the broker is away
                raise KeysUnavailable(f"{self.topic}: {exc}") from None
        with self._changed:
            while self._position < high:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise KeysUnavailable(f"{self.topic} not read to offset {high} in {timeout_s}s")
                self._changed.wait(left)

    def sessions_of(self, kind: str, value: str) -> set[str]:
        """Every session the people index holds for an identifier (after reading to the end)."""
        self.catch_up()
        digests = self.master.digests(kind, value)
        with self._lock:
            return set().union(*(self._people.get(digest, set()) for digest in digests))

    @property
    def sessions_with_keys(self) -> int:
        with self._lock:
            return len(self._keys)

    # --- writes ------------------------------------------------------------------------------

    def ensure(self, session_ids: Iterable[str], timeout_s: float = 10.0) -> dict[str, DataKey]:
        """A data key for each session: its own when this worker knows one, else a new one, written
        and acknowledged before this returns. Raises :class:`KeysUnavailable`."""
        found: dict[str, DataKey] = {}
        created: list[tuple[str, DataKey, bytes]] = []
        for session_id in session_ids:
            key = self.current(session_id)
            if key is None:
                key, raw = new_data_key()
                created.append((session_id, key, self.master.wrap(session_id, key, raw)))
            found[session_id] = key
        if created:
            self._send(((f"k:{sid}:{key.kid}", wrapped) for sid, key, wrapped in created), timeout_s)
            with self._lock:
                for session_id, key, _ in created:
                    self._keys.setdefault(session_id, {})[key.kid] = key
        return found

    def index(self, session_id: str, identifiers: Iterable[tuple[str, str]], timeout_s: float = 10.0) -> None:
        """Record that the session holds these identifiers (kind, normalized value)."""
        digest = [d for kind, value in identifiers for d in self.master.digests(kind, value)[:1]]
        with self._lock:
            fresh = [d for d in digest if d not in self._digests.get(session_id, ())]
        if not fresh:
            return
        self._send(((f"p:{d}:{session_id}", b"1") for d in fresh), timeout_s)
        with self._lock:
            for d in fresh:
                self._people.setdefault(d, set()).add(session_id)
                self._digests.setdefault(session_id, set()).add(d)

    def erase(self, session_id: str, timeout_s: float = 10.0) -> int:
        """Destroy every data key of the session and its people index entries: tombstones,
        acknowledged, then dropped here (the other workers drop them as their tails read them).
        The number of data keys destroyed."""
        self.catch_up(timeout_s)
        with self._lock:
            kids = list(self._keys.get(session_id, {}))
            digests = list(self._digests.get(session_id, set()))
        records: list[tuple[str, bytes | None]] = [(f"k:{session_id}:{kid}", None) for kid in kids]
        records += [(f"p:{digest}:{session_id}", None) for digest in digests]
        if records:
            self._send(records, timeout_s)
        with self._lock:
            self._keys.pop(session_id, None)
            for digest in self._digests.pop(session_id, set()):
                self._people.get(digest, set()).discard(session_id)
        return len(kids)

    def _send(self, records: Iterable[tuple[str, bytes | None]], timeout_s: float) -> None:
        if self._producer is None:
            raise KeysUnavailable("the key ring is not started")
        produce_acknowledged(self._producer, self.topic, ((key.encode(), value) for key, value in records), timeout_s)


def produce_acknowledged(
    producer: Producer, topic: str, records: Iterable[tuple[bytes, bytes | None]], timeout_s: float
) -> None:
    """Produce to the keys' topic and wait until Kafka acknowledged all; raises
    :class:`KeysUnavailable` otherwise (what was sent may still land: every write here is idempotent)."""
    failures: list[str] = []

    def delivered(err: KafkaError | None, message: Any) -> None:
        if err is not None:
            failures.append(err.str())

    for key, value in records:
        producer.produce(topic, key=key, value=value, partition=PARTITION, on_delivery=delivered)
    if producer.flush(timeout_s) > 0 or failures:
        raise KeysUnavailable(f"{topic}: not acknowledged ({'; '.join(failures[:2]) or 'timeout'})")
