"""Real filesystems for the disk faults: a tmpfs mounted read-only or of a small size (this
machine's tests run as root, which ``mount`` needs)."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def tmpfs(path: Path, options: str) -> Iterator[Path]:
    """A tmpfs at ``path`` with mount ``options`` (e.g. ``ro,size=1m`` or ``size=32m``), unmounted after."""
    path.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)], capture_output=True)
    assert mounted.returncode == 0, f"this test mounts a tmpfs (as root): {mounted.stderr!r}"
    try:
        yield path
    finally:
        subprocess.run(["umount", "--lazy", str(path)], check=True)


def fill(folder: Path) -> Path:
    """A file that takes every free byte of ``folder``'s filesystem; removing it frees them."""
    filler = folder / "filler"
    chunk = b"\0" * (1 << 16)
    with filler.open("wb") as out:
        try:
            while True:
                out.write(chunk)
                out.flush()
        except OSError as exc:
            assert exc.errno == 28, exc  # ENOSPC: full
    return filler
