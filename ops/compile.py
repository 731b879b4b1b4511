"""``make compile``: the fold's hot modules (``projections.native.MODULES``) compiled with mypyc into
``projections/_compiled/``, with the stamp of the sources they were compiled from; a no-op when the
build there is of the sources as they are. ``projections.native`` says when the build is used.

Needs mypy (the dev lock: ``make install``), a C compiler and Python's headers. About 15 s of CPU:
not part of ``make install``, and ``make test`` runs the pure-Python fold (the reference) except in
``tests/unit/test_compiled_fold.py``, which compiles into a folder of its own
(``SESSIONS_FOLD_BUILD_DIR``) and folds through both; the bench and the image build it here
(docs/engine.md, "A cheaper fold").
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ["SESSIONS_PURE_PYTHON"] = "1"  # this process imports projections without its old build

from projections import native  # noqa: E402

GROUP = "projections.fold"  # the shared library's module: projections/_compiled/fold__mypyc.*.so


def shown(path: Path) -> Path:
    return path.relative_to(REPO) if path.is_relative_to(REPO) else path


def main() -> int:
    digest = native.sources_digest()
    stamp = native.BUILD_DIR / native.STAMP
    if stamp.exists() and stamp.read_text().strip() == digest:
        print(f"compile: {shown(native.BUILD_DIR)} is up to date")
        return 0
    from mypyc.build import mypycify  # the dev venv's mypy
    from setuptools import setup

    began = time.monotonic()
    os.chdir(REPO)  # mypy reads pyproject.toml's settings (strict on projections/) from here
    with tempfile.TemporaryDirectory(prefix="mypyc-") as scratch:
        work = Path(scratch)
        extensions = mypycify(
            [f"projections/{name}.py" for name in native.MODULES], group_name=GROUP, target_dir=str(work / "c")
        )
        os.chdir(work)  # setup() would read the project's pyproject.toml from the checkout too
        setup(
            name="session-engine-fold",
            ext_modules=extensions,
            script_args=["--quiet", "build_ext", "--build-lib", str(work / "lib"), "--build-temp", str(work / "tmp")],
        )
        built = work / "lib" / "projections"
        (built / native.STAMP).write_text(digest + "\n")
        # Replaced whole: a build is never half old, half new.
        staging = native.BUILD_DIR.with_name("_compiled.new")
        shutil.rmtree(staging, ignore_errors=True)
        shutil.copytree(built, staging)
        shutil.rmtree(native.BUILD_DIR, ignore_errors=True)
        staging.rename(native.BUILD_DIR)
        os.chdir(REPO)  # out of the scratch folder before it goes
    seconds = time.monotonic() - began
    print(f"compile: {len(native.MODULES)} modules into {shown(native.BUILD_DIR)} in {seconds:.0f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
