"""No import cycles in ``streams/``: ``streams.control.app`` wires, the web package depends on the engine's
state (``streams.control.engine``), and nothing below imports back up.

The graph is read from the source with ``ast`` (nothing is imported). It counts every import in a
module: top-level ones, those inside functions (``cli`` imports ``streams.control.app`` lazily) and those
under ``if TYPE_CHECKING:``. A cycle through type-only imports is still two modules that each know
the other, so it counts too; only the check that the engine imports no web code at run time leaves
TYPE_CHECKING imports out.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = "streams"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {_module_name(path): path for path in sorted((ROOT / PACKAGE).rglob("*.py"))}

# The rooms a running worker is made of, and the two it never needs.
WORKER_ROOMS = ("control", "config", "fold", "web", "kafka", "privacy", "observability", "history")
TOOLS = "streams.tools"
DEVKIT = "streams.devkit"


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _type_checking_nodes(tree: ast.Module) -> set[int]:
    """ids of the import nodes that sit under ``if TYPE_CHECKING:``."""
    inside: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for stmt in node.body:
                inside.update(id(sub) for sub in ast.walk(stmt))
    return inside


def _target(name: str) -> str | None:
    """The module of ``streams`` that an imported dotted name lands in (the longest known prefix)."""
    parts = name.split(".")
    while parts:
        candidate = ".".join(parts)
        if candidate in MODULES:
            return candidate
        parts.pop()
    return None


def imports_of(module: str, *, type_checking: bool = True) -> set[str]:
    """The ``streams`` modules that ``module`` imports (package ``__init__`` files left out: ours are empty)."""
    path = MODULES[module]
    tree = ast.parse(path.read_text(), filename=str(path))
    skip = set() if type_checking else _type_checking_nodes(tree)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            # ``from a import b`` imports the module a.b when there is one, else a name of a.
            names = [f"{base}.{alias.name}" for alias in node.names] + [base]
        for name in names:
            target = _target(name)
            if target and target != module and not MODULES[target].name == "__init__.py":
                found.add(target)
    return found


def _graph(type_checking: bool = True) -> dict[str, set[str]]:
    return {module: imports_of(module, type_checking=type_checking) for module in MODULES}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as a path that starts and ends at the same module, or None."""
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (cycle := visit(start)):
            return cycle
    return None


def _reachable(graph: dict[str, set[str]], start: str) -> set[str]:
    seen, pending = set(), [start]
    while pending:
        for nxt in graph[pending.pop()]:
            if nxt not in seen:
                seen.add(nxt)
                pending.append(nxt)
    return seen


def test_the_graph_is_read():
    # Guards the parser: an empty graph has no cycle either.
    graph = _graph()
    assert "streams.web.views" in graph["streams.control.app"]
    assert "streams.control.engine" in graph["streams.web.views"]
    assert "streams.control.app" in graph["streams.tools.cli.worker"]  # an import inside a function counts


def test_streams_has_no_import_cycle():
    cycle = find_cycle(_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_the_cycle_finder_finds_one():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_the_web_layer_never_reaches_the_wiring():
    graph = _graph()
    for module in (m for m in graph if m.startswith("streams.web.")):
        assert "streams.control.app" not in _reachable(graph, module) | {module}, (
            f"{module} reaches streams.control.app"
        )


def test_the_engine_imports_no_web_code_at_run_time():
    runtime = _graph(type_checking=False)
    assert not {m for m in _reachable(runtime, "streams.control.engine") if m.startswith("streams.web")}


def _in(module: str, room: str) -> bool:
    return module == room or module.startswith(room + ".")


def _worker_modules(graph: dict[str, set[str]]) -> list[str]:
    rooms = [f"{PACKAGE}.{room}" for room in WORKER_ROOMS]
    return [m for m in graph if any(_in(m, room) for room in rooms)]


def test_every_module_sits_in_a_room():
    # A module at the root of streams/ (or in a new folder) belongs to no rule below.
    rooms = [f"{PACKAGE}.{room}" for room in (*WORKER_ROOMS, "tools", "devkit", "testing")]
    roots = {PACKAGE, f"{PACKAGE}.__main__"}
    homeless = [m for m in MODULES if m not in roots and not any(_in(m, r) for r in rooms)]
    assert not homeless, f"modules outside the rooms: {homeless}"


def test_the_worker_never_reaches_the_tools_or_the_devkit():
    graph = _graph()
    workers = _worker_modules(graph)
    assert "streams.fold.loop" in workers and "streams.control.app" in workers  # the rooms are found
    for module in workers:
        reached = {m for m in _reachable(graph, module) if _in(m, TOOLS) or _in(m, DEVKIT)}
        assert not reached, f"{module} reaches {sorted(reached)}"


def test_only_the_tools_and_the_devkit_import_the_devkit():
    graph = _graph()
    assert any(_in(m, DEVKIT) for m in graph["streams.tools.cli.broker"])  # the parser sees the kit's users
    for module, imported in graph.items():
        if _in(module, TOOLS) or _in(module, DEVKIT):
            continue
        assert not {m for m in imported if _in(m, DEVKIT)}, f"{module} imports the devkit"
