"""The installed package's modules import one another without cycles.

The import graph is built from the sources with `ast`: every `import` / `from ... import`
of a torchlean module is an edge, including function-local (lazy) imports, which hide a
cycle rather than remove it; only imports under `if TYPE_CHECKING:` are left out (they
never run). A cycle fails the test, naming its modules in order.
"""

from __future__ import annotations

import ast
from pathlib import Path

import torchlean

ROOT_PACKAGE = "torchlean"


def _package_dirs() -> dict[str, Path]:
    """Each torchlean package's directory, as installed (the package-dir mapping)."""
    import importlib
    import pkgutil

    dirs = {ROOT_PACKAGE: Path(torchlean.__path__[0])}
    for info in pkgutil.walk_packages(torchlean.__path__, ROOT_PACKAGE + "."):
        if info.ispkg:
            mod = importlib.import_module(info.name)
            dirs[info.name] = Path(mod.__path__[0])
    return dirs


def _modules() -> dict[str, Path]:
    out: dict[str, Path] = {}
    for pkg, d in _package_dirs().items():
        out[pkg] = d / "__init__.py"
        for f in d.glob("*.py"):
            if f.name != "__init__.py":
                out[f"{pkg}.{f.stem}"] = f
    return out


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imports(tree: ast.AST, module: str, is_package: bool,
             modules: frozenset[str] | set[str] = frozenset()) -> set[str]:
    """The torchlean modules `module` imports. `from p import x` is an edge to the module
    p.x when there is one (`modules` names them), else to p, whose `__init__` provides
    x; that a submodule's import first runs its parent packages is no edge (every
    package whose `__init__` imports its submodules would be a cycle)."""
    found: set[str] = set()
    package = module if is_package else module.rpartition(".")[0]

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                prefix = ".".join(base + ([node.module] if node.module else []))
            else:
                prefix = node.module or ""
            for a in node.names:
                sub = f"{prefix}.{a.name}"
                found.add(sub if sub in modules else prefix)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return {m for m in found if m == ROOT_PACKAGE or m.startswith(ROOT_PACKAGE + ".")}


def import_graph() -> dict[str, set[str]]:
    """module -> the torchlean modules it imports (at any depth of its code)."""
    mods = _modules()
    graph: dict[str, set[str]] = {}
    for name, path in mods.items():
        tree = ast.parse(path.read_text(), str(path))
        edges: set[str] = set()
        for t in _imports(tree, name, path.name == "__init__.py", set(mods)):
            # importing a.b.c first runs a and a.b: edges too, except to the importer's
            # own packages (already running when it is imported)
            parts = t.split(".")
            for k in range(1, len(parts) + 1):
                target = ".".join(parts[:k])
                if target in mods and target != name and not name.startswith(target + "."):
                    edges.add(target)
        graph[name] = edges
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of the graph (its modules in import order, first repeated), or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def dfs(v: str) -> list[str] | None:
        state[v] = 1
        stack.append(v)
        for w in sorted(graph.get(v, ())):
            if state.get(w) == 1:
                return stack[stack.index(w):] + [w]
            if w not in state:
                found = dfs(w)
                if found:
                    return found
        stack.pop()
        state[v] = 2
        return None

    for v in sorted(graph):
        if v not in state:
            cycle = dfs(v)
            if cycle:
                return cycle
    return None


def test_the_checker_finds_a_cycle() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_type_checking_imports_are_not_edges() -> None:
    src = ("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
           "    from torchlean.spec import value\n"
           "def f():\n    from torchlean.spec import tensor\n")
    found = _imports(ast.parse(src), "torchlean.spec.x", False,
                     {"torchlean.spec.tensor", "torchlean.spec.value"})
    assert "torchlean.spec.tensor" in found
    assert "torchlean.spec.value" not in found


def test_no_import_cycles() -> None:
    graph = import_graph()
    assert "torchlean.spec.ops.registry" in graph  # the walk saw the subpackages
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])
