"""The import graph of src/edgeward has no cycle: not at import time, not through imports
deferred into functions, not through `if TYPE_CHECKING:` imports (a cycle there is still two
modules that each need the other to be understood). And http/ imports nothing of proxy/.

The graph is read from the sources (as ../shared/tools/structure.py reads it): an edge for each
`import a.b` and `from a.b import c` naming a module of the package (`a.b`, or `a.b.c` when
that is a module). A package's `__init__` is not implied by importing its modules.
"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = SRC / "edgeward"

Edge = tuple[str, str, str]  # (importer, imported, how: "module", "deferred", "typing")


def _name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _typing_blocks(tree: ast.Module) -> set[int]:
    """ids of import nodes under `if TYPE_CHECKING:`."""
    found: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If):
            test = node.test
            name = test.attr if isinstance(test, ast.Attribute) else getattr(test, "id", "")
            if name == "TYPE_CHECKING":
                found.update(id(n) for stmt in node.body for n in ast.walk(stmt))
    return found


def _deferred(tree: ast.Module) -> set[int]:
    """ids of import nodes inside a function."""
    return {id(n) for node in ast.walk(tree)
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
            for n in ast.walk(node)}


def edges() -> list[Edge]:
    modules = {_name(p): p for p in PACKAGE.rglob("*.py")}
    found: list[Edge] = []
    for module, path in modules.items():
        tree = ast.parse(path.read_text())
        typing, deferred = _typing_blocks(tree), _deferred(tree)
        package = module if path.name == "__init__.py" else module.rpartition(".")[0]
        for node in ast.walk(tree):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parts = package.split(".")[:len(package.split(".")) - node.level + 1]
                    base = ".".join(parts + ([node.module] if node.module else []))
                targets = [base] + [f"{base}.{a.name}" for a in node.names]
            else:
                continue
            how = ("typing" if id(node) in typing else
                   "deferred" if id(node) in deferred else "module")
            found += [(module, t, how) for t in targets if t in modules and t != module]
    return found


def cycles(graph: list[Edge]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    out: dict[str, set[str]] = {}
    for a, b, _ in graph:
        out.setdefault(a, set()).add(b)
        out.setdefault(b, set())
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(out[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(out):
        if v not in index:
            visit(v)
    return found


def _explain(graph: list[Edge], component: list[str]) -> list[str]:
    inside = set(component)
    return sorted({f"{a} -> {b} ({how})" for a, b, how in graph if a in inside and b in inside})


def test_the_graph_is_read() -> None:
    graph = edges()
    assert ("edgeward.proxy.exchange", "edgeward.proxy.states", "module") in graph
    assert any(how == "typing" for _, _, how in graph)
    assert any(how == "deferred" for _, _, how in graph)
    assert cycles([("a", "b", "module"), ("b", "c", "typing"), ("c", "a", "deferred"),
                   ("c", "d", "module")]) == [["a", "b", "c"]]


def test_no_import_cycle_at_import_time() -> None:
    graph = [e for e in edges() if e[2] == "module"]
    assert [_explain(graph, c) for c in cycles(graph)] == []


def test_no_import_cycle_at_all() -> None:
    """Deferred and TYPE_CHECKING imports included."""
    graph = edges()
    assert [_explain(graph, c) for c in cycles(graph)] == []


def test_http_imports_nothing_of_proxy() -> None:
    wrong = [e for e in edges()
             if e[0].startswith("edgeward.http") and e[1].startswith("edgeward.proxy")]
    assert wrong == []
