"""``sessionctl`` as a real subprocess, its output kept for the end-of-run leak scan.

Every test that runs a ``sessionctl`` command (export, rebuild, keys rewrap, dlq, history, simulate)
goes through :func:`sessionctl` or :func:`spawn_sessionctl`: what the command printed is appended to
a log file registered in ``SPAWNED_LOGS``, so a personal value or a secret printed by a tool fails
the run just as one logged by a worker does.
"""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path

from streams.devkit.paths import REPO
from streams.devkit.workers import SPAWNED_LOGS

_OUTPUTS = Path(tempfile.mkdtemp(prefix=f"sessionctl-{os.getpid()}-"))
_numbers = itertools.count()


# Options whose value is a secret: shown as *** in the logged command line.
SECRET_OPTIONS = frozenset({"--key", "--service-key", "--master-key"})


def shown(args: tuple[str, ...]) -> str:
    """The command line as logged, secrets masked (a test passing one must not fail the leak scan)."""
    masked = ["***" if n and args[n - 1] in SECRET_OPTIONS else arg for n, arg in enumerate(args)]
    return " ".join(("sessionctl", *masked))


def log_file(args: tuple[str, ...]) -> Path:
    name = "-".join(arg for arg in args[:2] if not arg.startswith("-"))[:40] or "sessionctl"
    path = _OUTPUTS / f"{next(_numbers):04d}-{name}.log"
    SPAWNED_LOGS.append(path)
    return path


def sessionctl(
    *args: str,
    env: Mapping[str, str] | None = None,
    timeout: float = 120.0,
    expect: int | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run ``sessionctl *args`` (``python -m streams``) in the checkout; with ``expect``, assert its exit code."""
    done = subprocess.run(
        [sys.executable, "-m", "streams", *args],
        cwd=REPO,
        env=dict(env) if env is not None else None,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    log_file(args).write_text(f"$ {shown(args)}\n{done.stdout}\n{done.stderr}")
    if expect is not None:
        assert done.returncode == expect, f"exit {done.returncode}, expected {expect}:\n{done.stdout}\n{done.stderr}"
    return done


def spawn_sessionctl(*args: str, env: Mapping[str, str] | None = None) -> tuple[subprocess.Popen[str], Path]:
    """Start ``sessionctl *args`` with stdout and stderr going to its log (scanned at the end);
    the process and the log's path, for a test that reads progress lines while it runs."""
    path = log_file(args)
    with open(path, "w") as log:
        log.write(f"$ {shown(args)}\n")
        log.flush()
        process = subprocess.Popen(
            [sys.executable, "-m", "streams", *args],
            cwd=REPO,
            env=dict(env) if env is not None else None,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            text=True,
        )
    return process, path
