"""The stage packages under components/ import each other without a cycle.

Every ``import``/``from ... import`` in every module counts, including those inside functions (a lazy import
hides a cycle from Python but not from a reader): the edges of the package graph are components.X ->
components.Y for X != Y. ``common`` must import no stage package at all.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

COMPONENTS = Path(__file__).resolve().parents[1] / "components"
PREFIX = ("silverset", "components")

# Cycles that are still there, outside the stage contracts (issue 20 removed distill <-> evaluate,
# distill <-> score, embed/teacher <-> incremental/notify: the run lock, the step's CPU record and the
# empty-manifest guard moved to common; and abtest <-> index: the closed A/B loop, which drives the index server,
# moved to pipelines/closed_loop.py). Each is a set of packages that reach each other; the test fails when
# a cycle appears that is not listed, and when a listed one is gone (so the list only shrinks).
KNOWN_CYCLES: list[frozenset[str]] = []


def _module_parts(path: Path) -> list[str]:
    parts = list(PREFIX) + list(path.relative_to(COMPONENTS).with_suffix("").parts)
    return parts[:-1] if parts[-1] == "__init__" else parts


def _imported(path: Path) -> list[tuple[str, int]]:
    """Absolute module names ``path`` imports (relative imports resolved), with their line numbers."""
    module = _module_parts(path)
    package = module if path.name == "__init__.py" else module[:-1]
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                name = ".".join(base + ([node.module] if node.module else []))
                # ``from . import x`` may name submodules: count them as the package itself
                found.append((name, node.lineno))
            elif node.module:
                found.append((node.module, node.lineno))
    return found


def package_graph() -> tuple[dict[str, set[str]], dict[tuple[str, str], list[str]]]:
    """components.X -> {components.Y} over every module, and where each edge comes from (file:line)."""
    graph: dict[str, set[str]] = defaultdict(set)
    where: dict[tuple[str, str], list[str]] = defaultdict(list)
    for path in sorted(COMPONENTS.rglob("*.py")):
        relative = path.relative_to(COMPONENTS).parts
        if len(relative) < 2:  # components/__init__.py
            continue
        source = relative[0]
        graph.setdefault(source, set())
        for name, line in _imported(path):
            parts = name.split(".")
            if tuple(parts[:2]) == PREFIX and len(parts) > 2 and parts[2] != source:
                graph[source].add(parts[2])
                where[(source, parts[2])].append(f"{path.relative_to(COMPONENTS.parent)}:{line}")
    return graph, where


def strongly_connected(graph: dict[str, set[str]]) -> list[frozenset[str]]:
    """Tarjan's strongly connected components with more than one package (each holds a cycle)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[frozenset[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            members = set()
            while True:
                top = stack.pop()
                on_stack.discard(top)
                members.add(top)
                if top == node:
                    break
            if len(members) > 1:
                found.append(frozenset(members))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def _describe(component: frozenset[str], graph: dict[str, set[str]], where: dict) -> str:
    edges = [
        f"  {a} -> {b}: {', '.join(where[(a, b)][:3])}" for a in sorted(component) for b in sorted(graph[a] & component)
    ]
    return f"cycle among {sorted(component)}:\n" + "\n".join(edges)


def test_the_graph_sees_imports_inside_functions():
    graph, where = package_graph()
    # evaluate/disagreements.py imports common.manifest inside a function; deploy imports approval at the top
    assert "common" in graph["evaluate"] and "approval" in graph["deploy"]
    assert any(":" in w for w in where[("deploy", "approval")])
    assert strongly_connected({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [frozenset("abc")]
    assert strongly_connected({"a": {"b"}, "b": set()}) == []


def test_common_imports_no_stage_package():
    graph, where = package_graph()
    assert graph["common"] == set(), {b: where[("common", b)] for b in graph["common"]}


def test_distill_evaluate_and_score_import_each_other_one_way_only():
    graph, where = package_graph()
    for a, b in (("distill", "evaluate"), ("distill", "score")):
        assert not (b in graph[a] and a in graph[b]), f"{a} <-> {b}: {where[(a, b)]} and {where[(b, a)]}"


def test_no_import_cycle_among_component_packages_but_the_known_ones():
    graph, where = package_graph()
    cycles = strongly_connected(graph)
    new = [c for c in cycles if c not in KNOWN_CYCLES]
    assert not new, "\n".join(_describe(c, graph, where) for c in new)
    gone = [sorted(c) for c in KNOWN_CYCLES if c not in cycles]
    assert not gone, f"these cycles are gone: remove them from KNOWN_CYCLES: {gone}"
