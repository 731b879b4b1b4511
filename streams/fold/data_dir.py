"""The worker's data folder: writable, and its own.

A folder that cannot be written (a read-only volume, wrong ownership) or that another worker
already uses (two workers pointed at one folder by mistake) is refused at start, with one line
naming the folder and the cause, instead of a traceback from deep inside RocksDB once partitions
are assigned (and again at every restart of a crash loop).
"""

from __future__ import annotations

import errno
import fcntl
import os
from pathlib import Path

LOCK_FILE = ".worker.lock"


class DataDirError(RuntimeError):
    """The data folder cannot be used; the message names it and says why."""


# The open lock file of this process's data folder: the lock lasts as long as the process.
_held: dict[Path, int] = {}


def claim(data_dir: Path) -> None:
    """Make sure ``data_dir`` exists and is writable, and lock it for this process (released
    when the process ends, however it ends)."""
    folder = data_dir.resolve()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".write-probe-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise DataDirError(f"the data folder {folder} cannot be written: {exc.strerror or exc}") from None
    if folder in _held:
        return
    fd = os.open(folder / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        owner = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
        os.close(fd)
        if exc.errno in (errno.EWOULDBLOCK, errno.EACCES):
            raise DataDirError(
                f"the data folder {folder} is in use by another worker (pid {owner}); "
                "every worker needs a data folder of its own"
            ) from None
        raise DataDirError(f"the data folder {folder} cannot be locked: {exc.strerror or exc}") from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, str(os.getpid()).encode(), 0)
    _held[folder] = fd
