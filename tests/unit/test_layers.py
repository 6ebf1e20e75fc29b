"""The package's import structure: no cycle among rtseg's modules, and the layers contract holds.

The cycle check reads the source (``ast``), so it sees every ``import`` statement: at module level, inside
functions and under ``if TYPE_CHECKING``. An import that only runs inside a function still makes a cycle: it
works today because of when it runs, and breaks the day someone moves it to the top of the file.
"""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "rtseg"


def module_names(package: Path = PACKAGE) -> dict[str, Path]:
    """``{"rtseg.backends.registry": path, "rtseg.backends": path/__init__.py, ...}``."""
    names = {}
    for path in sorted(package.rglob("*.py")):
        parts = list(path.relative_to(package.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        names[".".join(parts)] = path
    return names


def _owner(name: str, modules: dict[str, Path]) -> str | None:
    """The module ``name`` refers to: itself, or the module that defines the attribute ``name`` ends in."""
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def import_graph(modules: dict[str, Path]) -> dict[str, dict[str, int]]:
    """``{importer: {imported: line}}`` over rtseg's modules, from every import statement in each file."""
    graph: dict[str, dict[str, int]] = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        edges = graph.setdefault(name, {})
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:  # relative: from . import x, from ..y import z
                    parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join(parts + ([base] if base else []))
                targets = [f"{base}.{alias.name}" for alias in node.names]  # a submodule, or an attribute of base
            else:
                continue
            for target in targets:
                owner = _owner(target, modules) if target.split(".")[0] == PACKAGE.name else None
                if owner is not None and owner != name:
                    edges.setdefault(owner, node.lineno)
    return graph


def find_cycle(graph: dict[str, dict[str, int]]) -> list[str] | None:
    """One import cycle as ``[a, b, ..., a]``, or None (iterative depth-first search)."""
    state: dict[str, int] = {}  # 1: on the current path, 2: finished
    for start in sorted(graph):
        if state.get(start):
            continue
        path, stack = [start], [iter(sorted(graph[start]))]
        state[start] = 1
        while stack:
            nxt = next(stack[-1], None)
            if nxt is None:
                state[path.pop()] = 2
                stack.pop()
            elif state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            elif not state.get(nxt):
                state[nxt] = 1
                path.append(nxt)
                stack.append(iter(sorted(graph.get(nxt, {}))))
    return None


def describe(cycle: list[str], graph: dict[str, dict[str, int]], modules: dict[str, Path]) -> str:
    return "\n".join(f"  {a} -> {b}  ({modules[a].relative_to(ROOT)}:{graph[a][b]})" for a, b in zip(cycle, cycle[1:]))


def test_no_import_cycle_among_rtseg_modules() -> None:
    modules = module_names()
    graph = import_graph(modules)
    assert len(modules) > 40 and sum(map(len, graph.values())) > 100  # the walk found the package
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle (imports inside functions count too):\n" + describe(cycle, graph, modules)


def test_the_cycle_check_sees_imports_inside_functions(tmp_path: Path) -> None:
    pkg = tmp_path / "rtseg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "sub" / "__init__.py").write_text("from . import b\n")
    (pkg / "a.py").write_text("from rtseg.sub.b import thing\n")
    (pkg / "sub" / "b.py").write_text("def thing():\n    from ..a import other\n    import rtseg.a\n")
    modules = module_names(pkg)
    graph = import_graph(modules)
    assert graph["rtseg.sub.b"] == {"rtseg.a": 2} and graph["rtseg.sub"] == {"rtseg.sub.b": 1}
    assert find_cycle(graph) == ["rtseg.a", "rtseg.sub.b", "rtseg.a"]
    (pkg / "sub" / "b.py").write_text("def thing():\n    pass\n")
    assert find_cycle(import_graph(modules)) is None


def test_layers_contract_holds() -> None:
    """``lint-imports`` with the contract in pyproject.toml ([tool.importlinter]): imports point only down."""
    exe = shutil.which("lint-imports") or str(Path(sys.executable).with_name("lint-imports"))
    if not Path(exe).is_file():
        pytest.skip("import-linter is not installed (pip install -e .[dev])")
    done = subprocess.run([exe, "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
