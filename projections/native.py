"""The compiled build of the fold's hot modules, and whether this process runs it.

``make compile`` (``ops/compile.py``) compiles :data:`MODULES` with mypyc into ``projections/_compiled/``
(not in git), beside a stamp of the sources it was compiled from. When the package is imported,
:func:`search_path` puts that folder before the sources on ``projections.__path__``, so those
modules import as C extensions, unless

- ``SESSIONS_PURE_PYTHON`` is set (to anything but ``0`` or empty): the pure-Python modules run;
- the stamp does not match the sources as they are now (a module edited since, a checkout of another
  commit): the build is left out rather than run code that is not in the files; :func:`describe`
  says so (the worker logs it at start, the bench prints it). Not a warning at import: that would
  come before any logging is set up, in every process, as a stray line.

The pure-Python modules are the reference: without a build (a fresh clone, ``make test``) they run,
and ``tests/unit/test_compiled_fold.py`` compiles a build of its own and folds the same events
through both, comparing the states. Why this, and what it gains: docs/engine.md, "A cheaper fold".

This module is never compiled (it decides whether the compiled ones are used) and imports only the
standard library.
"""

from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path
from typing import Final

# The modules a folded event spends its Python time in (apply, the transformers, the per-session
# step and its lifetime, the channel and region rules). Not compiled: ``errors`` (mypyc makes no
# native subclass of RuntimeError), ``rules`` (read once at start; mypyc 2.4 fails on it), the rest
# (not on the fold's path), and ``schemas/``: thin wrappers over msgspec's C, and mypyc breaks a
# msgspec Struct that declares a ClassVar (msgspec takes it for a field: docs/engine.md).
MODULES: Final = ("session", "transformers", "step", "lifetime", "channels", "regions")
PACKAGE_DIR: Final = Path(__file__).resolve().parent
BUILD_DIR_VARIABLE: Final = "SESSIONS_FOLD_BUILD_DIR"
# Where ``make compile`` puts the build and the package looks for it; the variable moves both (the
# test that folds through both builds compiles into a folder of its own, so a fresh clone's run tests it).
BUILD_DIR: Final = Path(os.environ.get(BUILD_DIR_VARIABLE) or PACKAGE_DIR / "_compiled")
STAMP: Final = "sources.sha256"
OFF_SWITCH: Final = "SESSIONS_PURE_PYTHON"
# Whatever mypyc read to compile MODULES: this package and the event and state types it imports.
SOURCE_DIRS: Final = (PACKAGE_DIR, PACKAGE_DIR.parent / "schemas")

_why_not: list[str] = []  # why the build is not used (empty when it is): for describe()


def sources_digest() -> str:
    """A digest of every module the compiled build was made from (names and contents)."""
    digest = hashlib.sha256()
    for folder in SOURCE_DIRS:
        for path in sorted(folder.glob("*.py")):
            digest.update(f"{folder.name}/{path.name}\0".encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()


def search_path(package_path: list[str]) -> list[str]:
    """The package's ``__path__``, with the compiled build first when it is there, fresh and wanted."""
    _why_not.clear()
    if os.environ.get(OFF_SWITCH, "") not in ("", "0"):
        _why_not.append(f"{OFF_SWITCH} is set")
        return package_path
    stamp = BUILD_DIR / STAMP
    if not stamp.exists():
        _why_not.append("no compiled build: make compile")
        return package_path
    if stamp.read_text().strip() != sources_digest():
        _why_not.append("the compiled build is of other sources: make compile")
        return package_path
    return [str(BUILD_DIR), *package_path]


def compiled() -> bool:
    """The fold's hot modules run compiled in this process (imports ``projections.session``)."""
    import projections.session

    return not (projections.session.__file__ or "").endswith(".py")


def describe() -> str:
    """One line for logs and the bench: which build of the fold runs, and why."""
    if compiled():
        return f"compiled (mypyc: {len(MODULES)} modules of projections/, {sys.implementation.cache_tag})"
    return f"pure Python ({_why_not[0] if _why_not else 'the compiled modules were not found'})"
