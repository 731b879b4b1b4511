"""Sealing as one stage of the fold: personal values are sealed in the store and the changelog under
their session's data key (``streams.privacy``), opened for the fold (transformers see them in clear)
and for reads. The loop, the reads and the checkpoint go through this and never name privacy; with
no key ring everything passes through in clear."""

from __future__ import annotations

from collections.abc import Mapping

from projections.rules import Rules
from schemas.personal import is_personal_state, public_keys
from streams.fold.batch import BatchOutcome, SourceRecord
from streams.fold.store import pack_session
from streams.privacy.keyring import KeyRing
from streams.privacy.sealing import is_sealed, open_json, seal_state


class SessionCodec:
    def __init__(self, keys: KeyRing | None) -> None:
        self.keys = keys

    def opened(self, encoded: bytes) -> bytes:
        """A stored state with its personal values in clear (a destroyed key's read as erased)."""
        return encoded if self.keys is None else open_json(encoded, self.keys.find)  # only sealed ones are parsed

    def open_records(
        self, partition: int, records: list[SourceRecord], as_logged: dict[tuple[int, int], bytes]
    ) -> list[SourceRecord]:
        """The records with their personal values opened for the fold; the records as logged go to
        ``as_logged`` ((partition, offset) -> bytes) for the dead letters."""
        keys = self.keys
        if keys is None or not any(is_sealed(value) for _, value, _ in records if value is not None):
            return records
        opened: list[SourceRecord] = []
        for key, value, offset in records:
            if value is not None and is_sealed(value):
                as_logged[partition, offset] = value
                value = open_json(value, keys.find)
            opened.append((key, value, offset))
        return opened

    def pack(self, outcomes: Mapping[int, BatchOutcome], rules: Rules) -> dict[int, dict[bytes, bytes | None]]:
        """Each changed session's stored bytes, built once (the changelog value, the store value and
        the cache entry are the same object), its personal values sealed; None for an erased one.
        Raises ``KeysUnavailable`` when a data key can be neither read nor made."""
        personal = public_keys(rules.personal_public_keys)
        keys = self.keys
        needing: set[str] = set()
        if keys is not None:
            for outcome in outcomes.values():
                for w in outcome.writes.values():
                    if is_personal_state(w.state.namespaces, w.state.facts, personal):
                        needing.add(w.state.id)
        data_keys = keys.ensure(needing) if keys is not None and needing else {}
        packed: dict[int, dict[bytes, bytes | None]] = {}
        for partition, outcome in outcomes.items():
            sessions: dict[bytes, bytes | None] = {}
            for key, w in outcome.writes.items():
                data_key = data_keys.get(w.state.id)
                encoded = w.encoded if data_key is None else seal_state(w.state, data_key, personal)
                sessions[key] = pack_session(w.offset, encoded, w.locator, w.activity_ms)
            for key in outcome.erased:
                sessions[key] = None
            packed[partition] = sessions
        return packed
