"""The partition store: one rocksdict (RocksDB, raw mode) per partition of the event topic.

A session's value (``pack_session``) is the offset of the last record folded into it (8 bytes,
big-endian), a layout byte (1), the time of its last event (epoch ms, 8 bytes: its activity, for
expiry), its locator (4-byte length, then ``streams.fold.locator``'s bytes: where its events are in
the log), then its encoded state. Values written before the locator existed are the offset and
the state only (the state's first byte is ``{``); they read as a session with an empty locator.
Sealed locators have keys of their own (``locator.chunk_key``, starting with byte 1). Two reserved
keys, below every session id (they start with a NUL byte):

- ``SOURCE_OFFSET``: the next offset of the event partition to fold. The loop's changelog carries
  the same key as its batch marker, so a rebuild that copies the changelog raw restores it too.
- ``CHANGELOG_OFFSET``: the next changelog offset not yet in this store (where catching up starts).

Each fold batch is one ``WriteBatch``: the new states and both offsets land together or not at all.
"""

from __future__ import annotations

import logging
import shutil
import struct
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from itertools import chain
from pathlib import Path
from typing import NamedTuple

from rocksdict import (
    BlockBasedOptions,
    Cache,
    DbClosedError,
    Options,
    Rdict,
    WriteBatch,
    WriteBufferManager,
    WriteOptions,
)

log = logging.getLogger(__name__)

SOURCE_OFFSET = b"\x00source-offset"
SESSIONS_START = b"\x02"  # session ids (UUID text) sort after every reserved key (\x00, \x01)
CHANGELOG_OFFSET = b"\x00changelog-offset"
_OFFSET = struct.Struct(">q")
_HEADER = struct.Struct(">qBqI")  # offset, layout, activity ms, locator length
_LAYOUT_LOCATED = 1
_LEGACY_STATE_START = ord("{")


def pack_offset(offset: int) -> bytes:
    return _OFFSET.pack(offset)


def unpack_offset(raw: bytes) -> int:
    offset: int = _OFFSET.unpack_from(raw)[0]
    return offset


class StoredSession(NamedTuple):
    offset: int  # of the last record folded into it
    activity_ms: int  # its last event's time (epoch ms); 0 when unknown (an older value)
    locator: bytes
    encoded: bytes  # the state


def pack_session(offset: int, encoded: bytes, locator: bytes = b"", activity_ms: int = 0) -> bytes:
    return _HEADER.pack(offset, _LAYOUT_LOCATED, activity_ms, len(locator)) + locator + encoded


def unpack_stored(raw: bytes) -> StoredSession:
    if len(raw) > _OFFSET.size and raw[_OFFSET.size] == _LEGACY_STATE_START:
        return StoredSession(_OFFSET.unpack_from(raw)[0], 0, b"", raw[_OFFSET.size :])
    offset, _layout, activity_ms, length = _HEADER.unpack_from(raw)
    start = _HEADER.size + length
    return StoredSession(offset, activity_ms, raw[_HEADER.size : start], raw[start:])


def unpack_session(raw: bytes) -> tuple[int, bytes]:
    """(offset of the last record folded into it, the encoded state)."""
    stored = unpack_stored(raw)
    return stored.offset, stored.encoded


def stored_activity(raw: bytes) -> int:
    """Only the activity of a stored value (0 for an older value), from its header."""
    if raw[_OFFSET.size] == _LEGACY_STATE_START:
        return 0
    activity: int = _HEADER.unpack_from(raw)[2]
    return activity


def stored_state(raw: bytes) -> bytes:
    """Only the encoded state of a stored value (the read path's share)."""
    if raw[_OFFSET.size] == _LEGACY_STATE_START:
        return raw[_OFFSET.size :]
    return raw[_HEADER.size + _HEADER.unpack_from(raw)[3] :]


def history_key(session_key: bytes, offset: int) -> bytes:
    """A record's key in the local history store: its session, then its offset (a session's
    records are neighbours, in log order)."""
    return session_key + _OFFSET.pack(offset)


class StoreClosed(RuntimeError):
    """The partition is not (or no longer) open on this worker."""


@dataclass(frozen=True)
class StoreMemory:
    """Bounds shared by every partition's store of one worker (one cache, one memtable budget)."""

    block_cache_bytes: int
    write_buffer_bytes: int  # per partition memtable
    memtables_bytes: int  # all partitions together

    def options(self) -> Options:
        # Built once per worker: the cache and the write buffer manager are shared on purpose.
        options = Options(raw_mode=True)
        options.create_if_missing(True)
        table = BlockBasedOptions()
        table.set_block_cache(Cache(self.block_cache_bytes))
        table.set_bloom_filter(10, False)
        options.set_block_based_table_factory(table)
        options.set_write_buffer_size(self.write_buffer_bytes)
        options.set_max_write_buffer_number(2)
        options.set_write_buffer_manager(WriteBufferManager(self.memtables_bytes, False))
        options.set_max_open_files(256)
        options.set_keep_log_file_num(2)
        return options


# Damaged stores moved aside by this process (``sessions_damaged_stores_total``).
_damaged_stores = [0]


def damaged_stores() -> int:
    return _damaged_stores[0]


class DataFolderFull(Exception):
    """The filesystem under a store has no room left: the write did not happen. The store refuses
    every write after it (RocksDB's background error) until it is closed and opened again."""


def _full(exc: Exception) -> bool:
    return "No space left on device" in str(exc)


def _damaged(exc: Exception, path: Path) -> bool:
    """RocksDB's answer at open says the files on disk are damaged (not: locked, full, forbidden)."""
    message = str(exc)
    if message.startswith("Corruption:"):  # e.g. an SST shorter than the MANIFEST says
        return True
    # A file the MANIFEST or CURRENT names is gone (a crash before the directory was synced).
    return message.startswith("IO error: No such file or directory") and (path / "CURRENT").exists()


class PartitionStore:
    """No I/O until :meth:`open`. Writes come from the fold loop's thread only; reads from any."""

    def __init__(self, path: Path, options: Options, write_ahead_log: bool = True) -> None:
        self.path = path
        self._options = options
        # Off for a cache (the history store): a crash may lose its last writes, which are read
        # from Kafka instead; a clean close still flushes them.
        self._write_options = WriteOptions()
        # A property at run time (rocksdict 0.3.29), a method in its type stubs.
        self._write_options.disable_wal = not write_ahead_log  # type: ignore[method-assign,assignment]
        self._db: Rdict | None = None

    @property
    def is_open(self) -> bool:
        return self._db is not None

    def open(self) -> None:
        if self._db is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            try:
                self._db = Rdict(str(self.path), self._options)
            except Exception as exc:
                if _full(exc):
                    raise DataFolderFull(f"{self.path}: {exc}") from None
                if not _damaged(exc, self.path):
                    raise
                self._db = Rdict(str(self._move_aside(exc)), self._options)
            self._db.set_write_options(self._write_options)

    def _move_aside(self, exc: Exception) -> Path:
        """A store damaged on disk (a crash of the machine, a bad disk) is kept for inspection
        under another name and replaced by an empty one, which the changelog then fills: a
        store is a cache of the changelog, and never serves what it cannot read back whole."""
        aside = self.path.with_name(f"{self.path.name}.damaged-{time.strftime('%Y%m%dT%H%M%S')}")
        self.path.rename(aside)
        _damaged_stores[0] += 1
        log.error(
            "the store %s is damaged (%s): moved aside to %s; it is rebuilt from the changelog",
            self.path, str(exc).splitlines()[0], aside,
        )  # fmt: skip
        return self.path

    def close(self) -> None:
        db, self._db = self._db, None
        if db is not None:
            try:
                db.close()
            except Exception as exc:  # a store that failed a write says so again when closed
                if not _full(exc) and "previous error" not in str(exc):
                    raise
                log.warning("the store %s closed after a failed write: %s", self.path, exc)

    def wipe(self) -> None:
        self.close()
        shutil.rmtree(self.path, ignore_errors=True)
        self.open()

    def _require(self) -> Rdict:
        if self._db is None:
            raise StoreClosed(str(self.path))
        return self._db

    def get(self, key: bytes) -> bytes | None:
        try:
            value: bytes | None = self._require().get(key)
        except DbClosedError:
            raise StoreClosed(str(self.path)) from None
        return value

    def offset(self, key: bytes) -> int | None:
        raw = self.get(key)
        return unpack_offset(raw) if raw is not None else None

    @property
    def source_offset(self) -> int | None:
        """The next event offset to fold; None for a store that never folded or restored a batch."""
        return self.offset(SOURCE_OFFSET)

    @property
    def changelog_offset(self) -> int | None:
        return self.offset(CHANGELOG_OFFSET)

    def scan(self, prefix: bytes) -> list[tuple[bytes, bytes]]:
        """Every (key, value) whose key starts with ``prefix``, in key order."""
        db = self._require()
        found = []
        try:
            it = db.iter()
            it.seek(prefix)
            while it.valid():
                key = it.key()
                if not key.startswith(prefix):
                    break
                found.append((key, it.value()))
                it.next()
        except DbClosedError:
            raise StoreClosed(str(self.path)) from None
        return found

    def put_many(self, records: Iterable[tuple[bytes, bytes]]) -> None:
        """One atomic write of raw (key, value) records."""
        self._write(records)

    def scan_sessions(self, start: bytes, limit: int) -> tuple[list[tuple[bytes, bytes]], bytes]:
        """Up to ``limit`` sessions (key, value) from ``start`` on, and where the next scan starts
        (b"" once the end is reached: the next scan starts over). Reserved keys are skipped."""
        db = self._require()
        rows: list[tuple[bytes, bytes]] = []
        try:
            it = db.iter()
            it.seek(max(start, SESSIONS_START))
            while it.valid() and len(rows) < limit:
                rows.append((it.key(), it.value()))
                it.next()
            following = it.key() if it.valid() else b""
        except DbClosedError:
            raise StoreClosed(str(self.path)) from None
        return rows, following

    def expire(self, sealed: Mapping[bytes, bytes], sessions: Iterable[bytes]) -> None:
        """One atomic write: the expired sessions' sealed locators in, their values out."""
        self._write(chain(sealed.items(), ((key, None) for key in sessions)))

    def write_batch(self, sessions: Mapping[bytes, bytes | None], source_offset: int, changelog_offset: int) -> None:
        """One atomic write: ``sessions`` (already packed; None deletes), the next source and
        changelog offsets."""
        offsets = ((SOURCE_OFFSET, pack_offset(source_offset)), (CHANGELOG_OFFSET, pack_offset(changelog_offset)))
        self._write(chain(sessions.items(), offsets))

    def restore(self, records: Iterable[tuple[bytes, bytes | None]], changelog_offset: int) -> None:
        """Raw changelog records (a None value deletes), with the next changelog offset, at once."""
        self._write(chain(records, ((CHANGELOG_OFFSET, pack_offset(changelog_offset)),)))

    def _write(self, records: Iterable[tuple[bytes, bytes | None]]) -> None:
        """Every write of the store: one ``WriteBatch``, a None value deletes its key."""
        batch = WriteBatch(raw_mode=True)
        for key, value in records:
            if value is None:
                batch.delete(key)
            else:
                batch.put(key, value)
        try:
            self._require().write(batch, self._write_options)
        except DbClosedError:
            raise StoreClosed(str(self.path)) from None
        except Exception as exc:
            if _full(exc) or "previous error" in str(exc):  # full now, or full at an earlier write
                raise DataFolderFull(f"{self.path}: {exc}") from None
            raise
