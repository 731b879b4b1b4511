"""The broker's classes, loaded once and shared by every later broker JVM (AppCDS, Java 13+).

A broker JVM spends most of its start loading, parsing and verifying Kafka's classes. A dynamic
class-data-sharing archive holds them as the first broker left them: a JVM given the archive maps it
instead. Measured on the 2-core machine (2026-12-02, light JIT): format plus start to the first
metadata answer 3.7 to 4.3 CPU seconds and 6.0 to 6.4 s without it, 2.3 to 2.9 CPU seconds and 2.0
to 3.7 s with it. A test run starts about thirty brokers (clusters, restarts, outages), so this is
worth a throw-away broker once per jar cache: the archive is written when that broker's JVM exits,
beside the jars, named after the Java it was made by (another JDK makes its own).

The JVM checks the archive against itself and the class path and ignores one that does not match, so
a stale archive costs speed, never correctness. ``SESSIONS_BROKER_CLASS_ARCHIVE=off`` starts brokers
without it; an archive that could not be made leaves a ``.failed`` file saying why, and is not tried
again until that file is removed.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import sys
from collections.abc import Callable
from pathlib import Path

SWITCH = "SESSIONS_BROKER_CLASS_ARCHIVE"


def archive_path(java: str, libs: Path) -> Path:
    """Where the archive of ``java`` (resolved: one per installed JDK) and the jars in ``libs`` lives."""
    real = Path(os.path.realpath(java))
    stat = real.stat()
    tag = hashlib.sha256(f"{real}:{stat.st_size}:{stat.st_mtime_ns}".encode()).hexdigest()[:12]
    return libs.parent / f"broker-classes-{tag}.jsa"


def options(java: str, libs: Path, make: Callable[[Path], None], quiet: bool) -> list[str]:
    """The JVM options that map the archive, after making it once (``make(path)`` runs a broker
    whose JVM writes it to ``path`` at exit); none when it is switched off or cannot be made."""
    if os.environ.get(SWITCH, "on") == "off":
        return []
    path = archive_path(java, libs)
    if not path.exists():
        _make_once(path, make, quiet)
    return [f"-XX:SharedArchiveFile={path}"] if path.exists() else []


def dump_options(path: Path) -> list[str]:
    """The JVM options of the broker that makes the archive."""
    return [f"-XX:ArchiveClassesAtExit={path}"]


def _make_once(path: Path, make: Callable[[Path], None], quiet: bool) -> None:
    failed = path.with_suffix(".failed")
    if failed.exists():
        return
    # Parallel test processes start brokers at the same moment: one makes it, the others wait.
    with open(path.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if path.exists() or failed.exists():
            return
        if not quiet:
            print("sharing the broker's classes between its JVMs: one throw-away start", file=sys.stderr)
        partial = path.with_name(f"{path.name}.{os.getpid()}.partial")
        partial.unlink(missing_ok=True)
        try:
            make(partial)
            if not partial.exists():
                raise RuntimeError(f"the broker's JVM wrote no archive to {partial}")
        except Exception as exc:  # noqa: BLE001 - whatever it was, brokers start without the archive
            failed.write_text(f"{type(exc).__name__}: {exc}\n")
            partial.unlink(missing_ok=True)
            return
        os.replace(partial, path)
