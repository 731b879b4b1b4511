"""A session's locator: the log offsets of the events folded into it, in log order, packed small.

It is what makes a session's history cost grow with the session, not with the topic: the
timeline reads exactly these offsets (from the local history store, or from Kafka), never a scan.

Packed as unsigned LEB128 varints: the first offset as it is, then the gaps between neighbours
(offsets only grow within a partition). A session of 100 events on a busy topic takes ~300 bytes.
The locator travels inside the session's stored value (``store.pack_session``), so it lands in
the same ``WriteBatch`` and the same changelog record as the state, and a restore brings it back.

A locator that grows past ``LOCATOR_MAX_BYTES`` is sealed: its bytes move to a key of their own
(``chunk_key``: the session id and the chunk's first offset), written in the same batch, and the
session starts a new one. Expiry seals the locator too, so an expired session's events stay found.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable

LOCATOR_MAX_BYTES = 16 * 1024
CHUNK_PREFIX = b"\x01"  # below every session id (UUID text), above the store's \x00 keys
_OFFSET = struct.Struct(">q")


def append(locator: bytes, last_offset: int, offsets: Iterable[int]) -> bytes:
    """``locator`` with ``offsets`` (ascending, each above ``last_offset``) at its end.

    ``last_offset`` is the locator's last entry (the session's folded offset); ignored when the
    locator is empty, whose first entry is then written as it is.
    """
    out = bytearray(locator)
    previous = last_offset if locator else None
    for offset in offsets:
        _write_varint(out, offset if previous is None else offset - previous)
        previous = offset
    return bytes(out)


def offsets(locator: bytes) -> list[int]:
    """The absolute offsets a locator holds, in order."""
    result: list[int] = []
    value = shift = 0
    previous: int | None = None
    for byte in locator:
        value |= (byte & 0x7F) << shift
        if byte & 0x80:
            shift += 7
            continue
        current = value if previous is None else previous + value
        result.append(current)
        previous, value, shift = current, 0, 0
    if shift:
        raise ValueError("a locator ends inside a number")
    return result


def chunk_key(session_key: bytes, first_offset: int) -> bytes:
    """The key of a sealed locator: sorted after its session's earlier chunks."""
    return CHUNK_PREFIX + session_key + _OFFSET.pack(first_offset)


def chunk_prefix(session_key: bytes) -> bytes:
    return CHUNK_PREFIX + session_key


def is_chunk_key(key: bytes) -> bool:
    return key.startswith(CHUNK_PREFIX)


def _write_varint(out: bytearray, value: int) -> None:
    if value < 0:
        raise ValueError(f"offsets must grow: a gap of {value}")
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
