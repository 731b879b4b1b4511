"""The session document as it is stored in the table and served over HTTP.

``{"id", "namespaces": {"<ns>": {"<key>": {"value": ...}}}, "meta": {...}}``: the VTEX shape plus a
``meta`` object about the history that produced it. ``facts`` holds what events recorded outside
the namespaces (the login's identity data, the account) for the transformers to read, and
``recent_ids`` the ids of the last events applied; both are stored but never served.
"""

from __future__ import annotations

from typing import Any, Final, TypeAlias

import msgspec
from msgspec import Struct

# namespace -> key -> {"value": ...}; values keep their JSON type.
Namespaces: TypeAlias = dict[str, dict[str, dict[str, Any]]]


class SessionMeta(Struct, frozen=True, rename="camel"):
    event_count: int
    first_event_time: str
    last_event_time: str


class SessionState(Struct, frozen=True, omit_defaults=True):
    """Treated as immutable: a fold step returns a new state and new dicts for what it changed."""

    id: str
    namespaces: Namespaces
    meta: SessionMeta
    facts: dict[str, Any] = {}
    # The ids of the latest events applied (oldest first, bounded): a redelivered or retried event
    # whose id is here is not applied twice.
    recent_ids: list[str] = []


_encoder: Final = msgspec.json.Encoder()
_decoder: Final = msgspec.json.Decoder(SessionState)


def encode_state(state: SessionState) -> bytes:
    return _encoder.encode(state)


def decode_state(raw: bytes) -> SessionState:
    return _decoder.decode(raw)


def encode_view(state: SessionState) -> bytes:
    """The document services read: the state without its private ``facts`` and ``recent_ids``."""
    return _encoder.encode(msgspec.structs.replace(state, facts={}, recent_ids=[]))
