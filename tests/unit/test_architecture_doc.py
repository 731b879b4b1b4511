"""docs/architecture.md has one line per module, the module's own first docstring line: a module added,
moved or removed without the map changing fails here (and prints the lines to paste)."""

import ast
import re
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
ROOMS = ("schemas", "projections", "streams")
LINE = re.compile(r"^- `((?:schemas|projections|streams)/[\w/]+\.py)`: (.*)$", re.MULTILINE)


def modules() -> dict[str, str]:
    found = {}
    for room in ROOMS:
        for path in sorted((ROOT / room).rglob("*.py")):
            if path.name in ("__init__.py", "__main__.py") or ".cache" in path.parts:
                continue
            docstring = ast.get_docstring(ast.parse(path.read_text())) or ""
            found[path.relative_to(ROOT).as_posix()] = first_sentence(docstring)
    return found


def first_sentence(docstring: str) -> str:
    paragraph = " ".join(docstring.strip().split("\n\n")[0].split())
    return re.split(r"(?<=\.)\s(?=[A-Z`(])", paragraph, maxsplit=1)[0] if paragraph else ""


def test_every_module_has_its_line_and_no_line_names_a_missing_module():
    listed = dict(LINE.findall((ROOT / "docs" / "architecture.md").read_text()))
    actual = modules()
    assert all(actual.values()), [path for path, line in actual.items() if not line]  # every module says what it is
    missing = [f"- `{path}`: {line}" for path, line in actual.items() if listed.get(path) != line]
    assert not missing, "lines to add to (or correct in) docs/architecture.md:\n" + "\n".join(missing)
    assert not set(listed) - set(actual), f"modules that no longer exist: {sorted(set(listed) - set(actual))}"
