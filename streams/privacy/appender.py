"""The event appender with personal values sealed: what every HTTP route appends through.

An event holding a personal value (``schemas.personal``) is sealed under its session's data key,
which Kafka has acknowledged before the event is appended; the identifiers it records go to the
people index. Every other record goes through untouched (one substring check).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence

import orjson

from schemas.personal import event_places, identifiers, public_keys
from streams.kafka.producer import Delivered, EventProducer, ProduceFailed, Record
from streams.privacy.keyring import KeyRing, KeysUnavailable
from streams.privacy.sealing import seal_event

_LOGIN = b'"auth.logged_in"'


class SealingAppender:
    def __init__(self, producer: EventProducer, keys: KeyRing, personal_public: Callable[[], frozenset[str]]) -> None:
        self.producer = producer
        self.keys = keys
        self.personal_public = personal_public  # the rules' keys (they change with a generation)
        self._marked_for: frozenset[str] = frozenset()
        self._marked: tuple[bytes, ...] = ()

    async def send(self, records: Sequence[Record]) -> list[Delivered]:
        """As :meth:`EventProducer.send`; raises ``ProduceFailed`` also when a data key cannot be
        written (nothing is appended then)."""
        markers = self._markers()
        if any(_may_be_personal(record.value, markers) for record in records):
            loop = asyncio.get_running_loop()
            records = await loop.run_in_executor(None, self._seal, records)
        return await self.producer.send(records)

    def _markers(self) -> tuple[bytes, ...]:
        """What a record holding a personal value must contain: a login's type, or the quoted name
        of a personal public key (most storefront writes contain neither and are not parsed)."""
        personal = public_keys(self.personal_public())
        if personal != self._marked_for:
            self._marked_for = personal
            self._marked = (_LOGIN, *(orjson.dumps(name) for name in sorted(personal)))
        return self._marked

    def _seal(self, records: Sequence[Record]) -> list[Record]:
        personal = public_keys(self.personal_public())
        markers = self._markers()
        parsed: dict[int, dict[str, object]] = {}
        for index, record in enumerate(records):
            if _may_be_personal(record.value, markers):
                document = orjson.loads(record.value)
                if any(True for _ in event_places(document, personal)):
                    parsed[index] = document
        if not parsed:
            return list(records)
        try:
            keys = self.keys.ensure({str(document["subject"]) for document in parsed.values()})
            for document in parsed.values():
                self.keys.index(str(document["subject"]), identifiers(document, personal))
        except KeysUnavailable as exc:
            raise ProduceFailed(f"the session's data key was not written: {exc}") from None
        sealed = list(records)
        for index, document in parsed.items():
            seal_event(document, keys[str(document["subject"])], personal)
            record = records[index]
            sealed[index] = Record(record.key, orjson.dumps(document), record.timestamp_ms)
        return sealed


def _may_be_personal(value: bytes, markers: tuple[bytes, ...]) -> bool:
    return any(marker in value for marker in markers)
