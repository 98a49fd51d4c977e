"""The store's modules import nothing from mappers, and none imports another that imports it back
(imports read from the source, those inside functions included, type-checking-only ones excluded)."""
from __future__ import annotations

import ast
from pathlib import Path

import dacs_fhir.store

STORE = Path(dacs_fhir.store.__file__).parent
PACKAGE = "dacs_fhir.store"


def _modules() -> dict[str, ast.Module]:
    return {f"{PACKAGE}.{p.stem}" if p.stem != "__init__" else PACKAGE: ast.parse(p.read_text(), str(p))
            for p in STORE.glob("*.py")}


def _type_checking_only(tree: ast.Module) -> set[int]:
    """ids of the import nodes under ``if TYPE_CHECKING:``."""
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and getattr(node.test, "id", getattr(node.test, "attr", None)) == "TYPE_CHECKING":
            out.update(id(n) for stmt in node.body for n in ast.walk(stmt))
    return out


def _imports(name: str, tree: ast.Module, modules: set[str]) -> set[str]:
    """Full names of what module ``name`` imports (a ``from . import x`` of a submodule names the submodule)."""
    skip = _type_checking_only(tree)
    package = name if name == PACKAGE else name.rpartition(".")[0]
    out = set()
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package
            for _ in range(node.level - 1):
                base = base.rpartition(".")[0]
            target = (f"{base}.{node.module}" if node.module else base) if node.level else node.module
            out.add(target)
            out.update(f"{target}.{alias.name}" for alias in node.names if f"{target}.{alias.name}" in modules)
    return out


def test_the_store_imports_nothing_from_mappers():
    modules = _modules()
    found = {name: sorted(i for i in _imports(name, tree, set(modules)) if i.startswith("dacs_fhir.mappers"))
             for name, tree in modules.items()}
    assert {name: imports for name, imports in found.items() if imports} == {}


def test_no_two_store_modules_import_each_other():
    modules = _modules()
    graph = {name: {i for i in _imports(name, tree, set(modules)) if i in modules and i != PACKAGE}
             for name, tree in modules.items() if name != PACKAGE}
    cycles, done = [], set()

    def visit(node: str, path: list[str]) -> None:  # depth first; a module met again on the path closes a cycle
        for nxt in sorted(graph[node]):
            if nxt in path:
                cycles.append(path[path.index(nxt):] + [nxt])
            elif nxt not in done:
                visit(nxt, path + [nxt])
        done.add(node)

    for start in sorted(graph):
        if start not in done:
            visit(start, [start])
    assert cycles == []
    assert "dacs_fhir.store.bundles" in graph["dacs_fhir.store.transaction"]  # the graph is read at all
