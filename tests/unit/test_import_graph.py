"""The packages of edge_ext import each other in one direction only: no cycle at import time.

Read from the source (module-level imports; those under ``if TYPE_CHECKING`` and inside
functions run later, or never), so a cycle fails here whichever module happens to be imported
first. Each top-level module of the package counts as a unit of its own, like a subpackage.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "edge_ext"


def _unit(module: str) -> str:
    return ".".join(module.split(".")[:2])


def _module_imports(tree: ast.Module) -> list[str]:
    names: list[str] = []
    for node in tree.body:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.dump(node.test):
            continue
        for inner in (node.body if isinstance(node, ast.Try) else [node]):
            if isinstance(inner, ast.ImportFrom) and inner.module and inner.level == 0:
                names.append(inner.module)
            elif isinstance(inner, ast.Import):
                names.extend(alias.name for alias in inner.names)
    return [name for name in names if name.split(".")[0] == "edge_ext"]


def _graph() -> dict[str, dict[str, set[str]]]:
    """unit -> unit it imports -> the modules doing so."""
    graph: dict[str, dict[str, set[str]]] = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        module = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        for target in _module_imports(ast.parse(path.read_text())):
            if _unit(target) != _unit(module):
                graph.setdefault(_unit(module), {}).setdefault(_unit(target), set()).add(module)
    return graph


def _cycles(graph: dict[str, dict[str, set[str]]]) -> list[list[str]]:
    """Strongly connected components of more than one unit (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in graph.get(node, {}):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in list(graph):
        if node not in index:
            visit(node)
    return found


def test_no_package_imports_another_that_imports_it_back():
    graph = _graph()
    cycles = _cycles(graph)
    detail = [{a: {b: sorted(graph[a][b]) for b in graph.get(a, {}) if b in cycle} for a in cycle} for cycle in cycles]
    assert not cycles, detail


LEAVES = ["edge_ext.message", "edge_ext.apis.base", "edge_ext.providers.base", "edge_ext.providers.registry",
          "edge_ext.policy.decisions", "edge_ext.policy.engine", "edge_ext.translate", "edge_ext.cost", "edge_ext.driver"]


@pytest.mark.parametrize("module", LEAVES)
def test_each_package_imports_alone_in_a_fresh_interpreter(module):
    run = subprocess.run([sys.executable, "-c", f"import {module}"], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr


# What doing I/O takes; the policy is sans-I/O (edge_ext.policy.engine): the driver does it, or a
# store the wiring builds and injects (edge_ext.routing.breaker_store, edge_ext.routing.latency).
IO_MODULES = {"asyncio", "concurrent", "threading", "socket", "grpc", "redis", "aiocache", "sqlite3", "diskcache",
              "fcntl", "mmap", "os", "io", "shutil", "tempfile", "subprocess"}


def _imports_of(path: Path) -> set[str]:
    """Every module ``path`` imports, wherever in it (a lazy import is I/O all the same)."""
    tree = ast.parse(path.read_text())
    imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    return imported | {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module}


def _path_of(module: str) -> Path | None:
    base = PACKAGE.parent.joinpath(*module.split("."))
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.exists():
            return path
    return None


def _policy_closure() -> dict[str, Path]:
    """The policy's modules and every edge_ext module they load when imported, except the
    configuration (read once, at startup, by the wiring)."""
    found: dict[str, Path] = {}
    todo = [f"edge_ext.policy.{p.stem}" for p in (PACKAGE / "policy").glob("*.py")]
    while todo:
        module = todo.pop()
        path = _path_of(module)
        if module in found or path is None or module.startswith("edge_ext.config"):
            continue
        found[module] = path
        todo += _module_imports(ast.parse(path.read_text()))
    return found


def test_the_policy_imports_nothing_that_does_io():
    for path in (PACKAGE / "policy").glob("*.py"):
        assert not {name.split(".")[0] for name in _imports_of(path)} & IO_MODULES, path.name


def test_nothing_the_policy_loads_does_io():
    # The breaker's shared file (routing.shared_state, record_file), the latency file and the
    # budget ledger are built by the wiring and reach the policy only as injected Protocols.
    closure = _policy_closure()
    assert "edge_ext.routing.router" in closure
    doing_io = {module: sorted({n.split(".")[0] for n in _imports_of(path)} & IO_MODULES)
                for module, path in closure.items()}
    assert not {m: io for m, io in doing_io.items() if io}
