"""The lock files: what `make install` installs, every version pinned and every file hashed.

`make lock` (``python ops/lock.py``) resolves them from their inputs with uv and stamps each with a
digest of those inputs; ``tests/unit/test_lock.py`` (so `make test` and CI) fails when an input
changed since, or when a lock disagrees with the pins of ``pyproject.toml``.

- ``requirements/dev.lock``: ``pyproject.toml`` (runtime, ``dev`` and ``bench`` extras) and
  ``requirements/tools.in``; ``ops/install.sh`` (`make install`) installs it;
- ``requirements/runtime.lock``: ``pyproject.toml`` (runtime only) and ``requirements/tools.in``; the
  ``Dockerfile`` installs it;
- ``ops/bench/requirements-quix.lock``: ``ops/bench/requirements-quix.txt``; ``ops/bench/config.py``
  installs it into the Quix Streams venv.

Why uv: ``uv pip compile --universal`` resolves once for every platform and Python version the
project supports (markers kept), where pip-compile resolves for the interpreter it runs on; its
output is a requirements file with ``--hash`` lines, which plain ``pip install --require-hashes``
installs: a fresh clone needs nothing but Python and PyPI, not uv. Why the runtime lock is
resolved second, constrained to the dev lock's versions: the image and the developers then run the
same version of every package they share.
"""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import sys
import tempfile
import tomllib
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PYTHON = "3.11"  # the oldest Python pyproject.toml allows: the resolution must hold from there on
DIGEST_LINE = re.compile(r"^# inputs-sha256: ([0-9a-f]{64})$", re.MULTILINE)
_NAME = re.compile(r"[-_.]+")


@dataclass(frozen=True)
class Lock:
    path: str  # relative to the repository
    requirements: tuple[str, ...]  # requirement files resolved together (pyproject.toml or *.txt/*.in)
    extras: tuple[str, ...] = ()  # pyproject.toml's optional groups included
    # Resolved with the versions of this (already written) lock as constraints.
    constrained_by: str | None = None


DEV = Lock("requirements/dev.lock", ("pyproject.toml", "requirements/tools.in"), ("dev", "bench"))
RUNTIME = Lock("requirements/runtime.lock", ("pyproject.toml", "requirements/tools.in"), constrained_by=DEV.path)
QUIX = Lock("ops/bench/requirements-quix.lock", ("ops/bench/requirements-quix.txt",))
LOCKS = (DEV, RUNTIME, QUIX)  # in the order they are written (RUNTIME reads DEV)


def normalize(name: str) -> str:
    """PEP 503: 'Faust_Streaming' and 'faust-streaming' are one package."""
    return _NAME.sub("-", name).lower()


def _requirement_lines(path: Path) -> list[str]:
    lines = (line.split("#", 1)[0].strip() for line in path.read_text().splitlines())
    return sorted(line for line in lines if line)


def inputs(lock: Lock, repo: Path = REPO) -> dict[str, object]:
    """What the lock is resolved from, as data: comments and order in the files do not count."""
    found: dict[str, object] = {"python": PYTHON}
    for source in lock.requirements:
        path = repo / source
        if path.name == "pyproject.toml":
            project = tomllib.loads(path.read_text())
            optional = project["project"].get("optional-dependencies", {})
            found[source] = {
                "requires-python": project["project"].get("requires-python", ""),
                "dependencies": sorted(project["project"].get("dependencies", [])),
                "extras": {extra: sorted(optional[extra]) for extra in lock.extras},
                "build-system": sorted(project.get("build-system", {}).get("requires", [])),
            }
        else:
            found[source] = _requirement_lines(path)
    if lock.constrained_by:
        found["constrained_by"] = lock.constrained_by
    return found


def input_digest(lock: Lock, repo: Path = REPO) -> str:
    return hashlib.sha256(json.dumps(inputs(lock, repo), sort_keys=True).encode()).hexdigest()


def recorded_digest(lock: Lock, repo: Path = REPO) -> str | None:
    path = repo / lock.path
    if not path.exists():
        return None
    match = DIGEST_LINE.search(path.read_text())
    return match[1] if match else None


@dataclass(frozen=True)
class Pin:
    name: str  # normalized
    version: str
    marker: str  # "" when it applies everywhere
    hashes: tuple[str, ...]


def read_lock(path: Path) -> list[Pin]:
    """The pins of a requirements file written by ``uv pip compile --generate-hashes``."""
    pins = []
    text = re.sub(r"\\\n", " ", path.read_text())  # one logical line per requirement
    for line in text.splitlines():
        line = line.split(" #", 1)[0].strip()
        if not line or line.startswith("#"):
            continue
        hashes = tuple(re.findall(r"--hash=sha256:([0-9a-f]{64})", line))
        spec = re.sub(r"--hash=\S+", "", line).strip()
        requirement, _, marker = spec.partition(";")
        match = re.fullmatch(r"([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?\s*==\s*(\S+)", requirement.strip())
        if match is None:
            raise ValueError(f"{path}: not a pinned requirement: {spec!r}")
        pins.append(Pin(normalize(match[1]), match[2], marker.strip(), hashes))
    return pins


def applies(pin: Pin) -> bool:
    """Whether the pin is for this interpreter and platform (its marker, evaluated here)."""
    if not pin.marker:
        return True
    from packaging.markers import Marker  # in the venv (the lock holds it), not needed to write locks

    return Marker(pin.marker).evaluate()


def installed(exclude: tuple[str, ...] = ("session-engine",)) -> dict[str, str]:
    """Normalized name -> version of every distribution of this interpreter's environment."""
    from importlib import metadata

    found = {normalize(d.metadata["Name"]): d.version for d in metadata.distributions()}
    return {name: version for name, version in found.items() if name not in exclude}


def unlisted(lock_path: Path) -> list[str]:
    """Installed here and not in the lock (for this platform): what ``ops/install.sh`` removes."""
    wanted = {pin.name for pin in read_lock(lock_path) if applies(pin)}
    return sorted(name for name in installed() if name not in wanted)


def uv() -> list[str]:
    """uv from the project's venv (a dev dependency, so locked too), else from PATH."""
    candidate = Path(sys.executable).parent / "uv"
    return [str(candidate)] if candidate.exists() else ["uv"]


def compile_lock(lock: Lock, repo: Path = REPO, upgrade: bool = False) -> None:
    out = repo / lock.path
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as scratch:
        command = [
            *uv(), "pip", "compile", *(str(repo / source) for source in lock.requirements),
            *(arg for extra in lock.extras for arg in ("--extra", extra)),
            "--generate-hashes", "--universal", "--python-version", PYTHON,
            "--no-header", "--annotation-style", "line", "--quiet",
            "--index-url", "https://pypi.org/simple",  # the lock names PyPI's files, whatever pip.conf says
            "--output-file", str(Path(scratch) / "out.txt"),
        ]  # fmt: skip
        if lock.constrained_by:
            constraints = Path(scratch) / "constraints.txt"
            pins = read_lock(repo / lock.constrained_by)
            constraints.write_text("".join(f"{p.name}=={p.version}\n" for p in pins if not p.marker))
            command += ["--constraint", str(constraints)]
        # uv keeps the versions of the output file it is given where the inputs still allow them:
        # `make lock` after an edit moves only what the edit needs; `--upgrade` moves everything.
        if out.exists() and not upgrade:
            (Path(scratch) / "out.txt").write_text(out.read_text())
        if upgrade:
            command.append("--upgrade")
        subprocess.run(command, check=True, cwd=repo)
        body = (Path(scratch) / "out.txt").read_text()
        if lock.constrained_by:
            # uv names the constraints file in its "# via" notes: the lock it came from, not the
            # scratch path (which would change the lock on every run).
            body = body.replace(str(Path(scratch) / "constraints.txt"), lock.constrained_by)
    sources = ", ".join(lock.requirements) + (f" (extras: {', '.join(lock.extras)})" if lock.extras else "")
    header = (
        "# Written by `make lock` (ops/lock.py) with uv; do not edit. Installed with\n"
        "# `pip install --require-hashes --no-deps -r <this file>`.\n"
        f"# Resolved from: {sources}; every platform, Python {PYTHON}+.\n"
        + (f"# Versions constrained to {lock.constrained_by}.\n" if lock.constrained_by else "")
        + f"# inputs-sha256: {input_digest(lock, repo)}\n"
    )
    out.write_text(header + body)
    print(f"lock: wrote {lock.path} ({len(read_lock(out))} pins)")


def subset(lock_path: Path, names: list[str]) -> str:
    """The entries of a lock (verbatim: pin, marker, hashes) for ``names`` and every package they
    need, which the lock's ``# via`` notes name: a smaller install of the same versions (the image's
    compile stage installs mypy this way, ``Dockerfile``), with nothing resolved again."""
    entries: dict[str, tuple[str, set[str]]] = {}  # normalized name -> (its text, who needs it)
    for block in re.split(r"\n(?=[A-Za-z0-9])", lock_path.read_text()):
        match = re.match(r"([A-Za-z0-9][A-Za-z0-9._-]*)==", block)
        if match is None:
            continue
        via = re.search(r"# via (.*)", block)
        needed_by = {normalize(n.split(" ")[0]) for n in via[1].split(", ")} if via else set()
        entries[normalize(match[1])] = (block.rstrip() + "\n", needed_by)
    wanted = {normalize(name) for name in names}
    missing = wanted - entries.keys()
    if missing:
        raise ValueError(f"{lock_path}: no pin of {sorted(missing)}")
    while True:
        more = {name for name, (_, needed_by) in entries.items() if needed_by & wanted} - wanted
        if not more:
            return "".join(text for name, (text, _) in entries.items() if name in wanted)
        wanted |= more


def main(argv: list[str]) -> int:
    if argv[:1] == ["unlisted"]:
        print(" ".join(unlisted(Path(argv[1]))))
        return 0
    if argv[:1] == ["subset"]:
        sys.stdout.write(subset(Path(argv[1]), argv[2:]))
        return 0
    upgrade = "--upgrade" in argv
    for lock in LOCKS:
        compile_lock(lock, upgrade=upgrade)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
