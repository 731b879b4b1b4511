"""Sealing and opening the personal values of events and session states (JSON bytes in, out).

Only records that hold a personal value are parsed: ``SEALED_MARK in raw`` is the whole cost of
opening any other record, and :func:`schemas.personal.is_personal_state` of sealing any other state.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import orjson
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from schemas.personal import SEALED_MARK, SEALED_PREFIX, event_places, stand_in, state_places
from schemas.session import SessionState, encode_state
from streams.privacy.cipher import DataKey, Unreadable, kid_of, open_sealed, seal

log = logging.getLogger(__name__)

# (session id, data key id) -> the key, or None when it is gone (erased) or never existed here.
FindKey = Callable[[str, str], AESGCM | None]
ERASED = "erased"
REDACTED = "redacted"


def is_sealed(raw: bytes) -> bool:
    return SEALED_MARK in raw


def seal_event(record: dict[str, Any], key: DataKey, personal_public: frozenset[str]) -> bool:
    """Seal the personal values of a parsed event in place; False when it has none."""
    session_id = str(record.get("subject", ""))
    sealed = False
    for container, name, path in list(event_places(record, personal_public)):
        container[name] = seal(key, session_id, path, container[name])
        sealed = True
    return sealed


def seal_state(state: SessionState, key: DataKey, personal_public: frozenset[str]) -> bytes:
    """The state encoded as stored and sent to the changelog: its personal values sealed."""
    document = orjson.loads(encode_state(state))
    for container, name, path in list(state_places(document, personal_public)):
        container[name] = seal(key, state.id, path, container[name])
    return orjson.dumps(document)


def open_json(raw: bytes, find: FindKey, missing: str = ERASED) -> bytes:
    """An event record or a state with every sealed value opened; a value whose key is gone reads
    as ``[erased]`` (or ``missing``): see :func:`schemas.personal.stand_in`."""
    if SEALED_MARK not in raw:
        return raw
    document = orjson.loads(raw)
    if not isinstance(document, dict):
        return raw
    session_id = str(document.get("subject") or document.get("id") or "")
    _open(document, "", session_id, find, missing)
    return orjson.dumps(document)


def redact_json(raw: bytes) -> bytes:
    """Every sealed value replaced by ``[redacted]`` (for readers without the master key)."""
    return open_json(raw, _no_key, REDACTED)


def _no_key(session_id: str, kid: str) -> AESGCM | None:
    return None


def _open(node: Any, path: str, session_id: str, find: FindKey, missing: str) -> None:
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for name, value in list(items):
        here = f"{path}.{name}" if path else str(name)
        if isinstance(value, str):
            if value.startswith(SEALED_PREFIX):
                node[name] = _open_value(value, here, session_id, find, missing)
        elif isinstance(value, dict | list):
            _open(value, here, session_id, find, missing)


def _open_value(text: str, path: str, session_id: str, find: FindKey, missing: str) -> Any:
    kid = kid_of(text)
    aead = find(session_id, kid) if kid else None
    if aead is None:
        return stand_in(path, missing)
    try:
        return open_sealed(aead, session_id, path, text)
    except Unreadable:
        # Tampered, or copied from another field or session: never shown, and said (no value logged).
        log.warning("a sealed value of session %s at %s does not open with its key", session_id, path)
        return stand_in(path, "unreadable")
