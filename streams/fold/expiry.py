"""The expiry sweep: sessions inactive for longer than their lifetime are deleted, a slice of each
served partition per sweep (between two batches). Their sealed locators and tombstones go to the
changelog first, then the store drops them (a crash in between: catching up from the changelog
finishes the job). Reads already answer an expired session as gone (``projections.lifetime``);
the sweep only reclaims the space."""

from __future__ import annotations

import logging
from collections.abc import Collection, Mapping
from datetime import datetime

from projections.lifetime import expired
from schemas.session import decode_state
from streams.fold import locator
from streams.fold.checkpoint import Checkpoint
from streams.fold.outgoing import expiry_records
from streams.fold.partition import OpenPartition
from streams.fold.store import unpack_stored

log = logging.getLogger(__name__)


def sweep(
    partitions: Mapping[int, OpenPartition],
    serving: Collection[int],
    checkpoint: Checkpoint,
    generation: int | None,
    lifetime_ms: int,
    scan: int,
    now_ms: int,
) -> set[int]:
    """One slice of each served partition (``scan`` sessions); the partitions found fenced off."""
    found: dict[int, dict[bytes, bytes]] = {}  # partition -> session key -> its locator
    for partition in sorted(serving):
        state = partitions[partition]
        rows, state.sweep_from = state.store.scan_sessions(state.sweep_from, scan)
        for key, raw in rows:
            stored = unpack_stored(raw)
            if expired(stored.activity_ms or _activity_of(stored.encoded), now_ms, lifetime_ms):
                found.setdefault(partition, {})[key] = stored.locator
    if not found:
        return set()
    sealed: dict[int, dict[bytes, bytes]] = {
        partition: {locator.chunk_key(key, locator.offsets(kept)[0]): kept for key, kept in sessions.items() if kept}
        for partition, sessions in found.items()
    }
    published = checkpoint.publish(
        {partition: expiry_records(sealed[partition], sessions) for partition, sessions in found.items()}, generation
    )
    if published.failed:
        log.warning("session expiry not written on %s: the next sweep tries again", sorted(published.failed))
        for partition in published.failed:
            partitions[partition].sweep_from = b""
    for partition in published.committed:
        sessions = found[partition]
        state = partitions[partition]
        state.store.expire(sealed[partition], sessions)
        for key in sessions:
            state.cache.pop(key, None)
        log.info("partition %d: %d sessions expired", partition, len(sessions))
    return published.fenced


def _activity_of(encoded: bytes) -> int:
    """A session's last event time from its state (values stored before the activity was kept)."""
    try:
        return int(datetime.fromisoformat(decode_state(encoded).meta.last_event_time).timestamp() * 1000)
    except ValueError:
        return 0
