#!/usr/bin/env bash
# Creates .venv and installs exactly requirements/dev.lock (every version pinned, every file hashed:
# `make lock` writes it from pyproject.toml), then the project itself, editable, without its
# dependencies (they are the lock's). A no-op when neither the lock nor pyproject.toml changed.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-python3}"
LOCK=requirements/dev.lock
if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
    echo "error: Python 3.11+ is needed (found: $("$PYTHON" --version 2>&1 || echo none))" >&2
    exit 2
fi
if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
stamp=.venv/.installed-$(cat pyproject.toml "$LOCK" | sha256sum | cut -c1-16)
if [ ! -f "$stamp" ]; then
    # --require-hashes: a file whose hash is not in the lock is refused, whatever index serves it.
    # --no-deps: the lock is the whole set; nothing outside it is pulled in by a loose requirement.
    # The lock pins pip and setuptools too, so the next step builds with the same setuptools
    # everywhere (--no-build-isolation: no unpinned build environment fetched for it).
    .venv/bin/python -m pip install --quiet --require-hashes --no-deps -r "$LOCK"
    .venv/bin/python -m pip install --quiet --no-deps --no-build-isolation -e .
    # What the lock no longer holds (a dependency dropped since the venv was made) goes: the venv
    # is the lock, no more (tests/unit/test_lock.py compares them).
    unlisted=$(.venv/bin/python ops/lock.py unlisted "$LOCK")
    if [ -n "$unlisted" ]; then
        # shellcheck disable=SC2086 # one name a word
        .venv/bin/python -m pip uninstall --quiet --yes $unlisted
    fi
    rm -f .venv/.installed-*
    touch "$stamp"
fi
# The project's own bytecode, written where Python looks for it. A process whose environment sets
# PYTHONDONTWRITEBYTECODE (this machine's does) never caches it and compiles every module it
# imports from source at every start: about 0.12 s of CPU a worker or sessionctl start here, a
# run of `make test` starts a few hundred. Only stale files are rewritten (well under a second).
.venv/bin/python -m compileall -q -j 0 streams projections schemas tests ops >/dev/null
