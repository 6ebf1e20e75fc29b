"""The tests' own layout: unit tests mirror the package, and no test module imports another.

``tests/unit/<package>/test_*.py`` tests ``rtseg/<package>/``; a test at ``tests/unit/`` itself tests a root module
(``test_types.py`` tests ``rtseg/types.py``) or the package as a whole (``WHOLE_PACKAGE``). What tests share lives
in helper modules (``tests/fakes.py``, ``tests/support.py``, ``tests/parity.py``) and in the fixtures of
``tests/conftest.py``, never in a test module: each test file is a leaf, so moving, splitting or deleting one
never breaks another.
"""

from __future__ import annotations

import ast
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]
ROOT = TESTS.parent
UNIT = TESTS / "unit"
PACKAGE = ROOT / "rtseg"
# tests at tests/unit/ that are about no single root module: the import structure, and this file
WHOLE_PACKAGE = {"test_layers.py", "test_test_layout.py"}


def misplaced(unit: Path = UNIT, package: Path = PACKAGE) -> list[str]:
    """Unit test files that sit neither under a folder named after an rtseg package nor at the root for a root
    module, and folders without the ``__init__.py`` that keeps same-named test files apart."""
    problems = []
    for path in sorted(unit.rglob("test_*.py")):
        rel = path.relative_to(unit)
        folders = rel.parts[:-1]
        if not folders:
            module = path.name.removeprefix("test_")
            if path.name not in WHOLE_PACKAGE and not (package / module).is_file():
                problems.append(f"{rel}: at the root, but rtseg/{module} is no root module")
            continue
        if not (package.joinpath(*folders) / "__init__.py").is_file():
            problems.append(f"{rel}: rtseg/{'/'.join(folders)}/ is no package of rtseg")
        for depth in range(1, len(folders) + 1):
            if not (unit.joinpath(*folders[:depth]) / "__init__.py").is_file():
                problems.append(f"{rel}: tests/unit/{'/'.join(folders[:depth])}/ has no __init__.py")
    return problems


def _module_name(path: Path, tests: Path) -> str:
    parts = list(path.relative_to(tests.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of_test_modules(tests: Path = TESTS) -> list[str]:
    """``file:line imports module`` for every import of a test module (``test_*.py``) by any module of tests/:
    at module level or inside a function, absolute or relative, ``import a.test_x`` or ``from a import test_x``."""
    found = []
    for path in sorted(tests.rglob("*.py")):
        name = _module_name(path, tests)
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:  # relative: from . import x, from ..y import z
                    parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join(parts + ([base] if base else []))
                targets = [base] + [f"{base}.{alias.name}" for alias in node.names]
            else:
                continue
            for target in targets:
                if target.split(".")[0] == tests.name and any(p.startswith("test_") for p in target.split(".")):
                    found.append(f"{path.relative_to(tests.parent)}:{node.lineno} imports {target}")
                    break
    return found


def test_unit_tests_mirror_the_package() -> None:
    assert len(list(UNIT.rglob("test_*.py"))) > 20  # the walk found the tests
    assert misplaced() == []


def test_no_module_of_the_tests_imports_a_test_module() -> None:
    assert imports_of_test_modules() == []


def test_the_layout_checks_catch_what_they_are_for(tmp_path: Path) -> None:
    package, tests = tmp_path / "rtseg", tmp_path / "tests"
    unit = tests / "unit"
    for folder in (package / "sinks", unit / "sinks", unit / "nowhere", unit / "bare"):
        folder.mkdir(parents=True)
    for init in (package, package / "sinks", tests, unit, unit / "sinks", unit / "nowhere"):
        (init / "__init__.py").write_text("")
    (package / "types.py").write_text("")
    (unit / "test_types.py").write_text("from tests.fakes import make_result\n")
    (unit / "test_misc.py").write_text("def helper():\n    from .sinks import test_video\n")
    (unit / "sinks" / "test_video.py").write_text("import tests.unit.test_types as t\n")
    (unit / "nowhere" / "test_x.py").write_text("from tests.unit.sinks.test_video import thing\n")
    (package / "bare").mkdir()
    (package / "bare" / "__init__.py").write_text("")
    (unit / "bare" / "test_y.py").write_text("")
    assert misplaced(unit, package) == [
        "bare/test_y.py: tests/unit/bare/ has no __init__.py",
        "nowhere/test_x.py: rtseg/nowhere/ is no package of rtseg",
        "test_misc.py: at the root, but rtseg/misc.py is no root module",
    ]
    assert imports_of_test_modules(tests) == [
        "tests/unit/nowhere/test_x.py:1 imports tests.unit.sinks.test_video",
        "tests/unit/sinks/test_video.py:1 imports tests.unit.test_types",
        "tests/unit/test_misc.py:2 imports tests.unit.sinks.test_video",
    ]
