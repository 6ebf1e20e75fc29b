"""The fuzz suite's parametrization (the small set, or ``--fuzz-all``), its runner and its summary.

At the end, the terminal summary prints ``fuzz: N tried, M clean`` per category, and, when ``RTSEG_FUZZ_REPORT``
names a file, writes the same counts, the failing case ids and every case's command, exit code and stderr there
as JSON. The machinery lives in :mod:`tests.fuzz.runner`, the cases in :mod:`tests.fuzz.generators`.
"""

from __future__ import annotations

import json
import os
from collections import defaultdict
from pathlib import Path

import pytest

from tests.fuzz.generators import Case, cases
from tests.fuzz.runner import CASES, FuzzRunner


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "fuzz_case" in metafunc.fixturenames:
        full = bool(metafunc.config.getoption("--fuzz-all", default=False))
        selected = cases(full)
        metafunc.parametrize("fuzz_case", selected, ids=[c.id for c in selected])


@pytest.fixture(scope="session")
def fuzz_runner(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201
    selected = [item.callspec.params["fuzz_case"] for item in request.session.items
                if hasattr(item, "callspec") and "fuzz_case" in item.callspec.params]
    runner = FuzzRunner(selected, tmp_path_factory.mktemp("fuzz"))
    yield runner
    runner.close()


# --- the per-category summary

_COUNTS: dict[str, list[int]] = defaultdict(lambda: [0, 0])
_FAILED: list[str] = []


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):  # noqa: ANN201
    outcome = yield
    report = outcome.get_result()
    case = getattr(item, "callspec", None) and item.callspec.params.get("fuzz_case")
    if not isinstance(case, Case):
        return
    if report.when == "call" or (report.when == "setup" and not report.passed):
        _COUNTS[case.category][0] += 1
        if report.passed:
            _COUNTS[case.category][1] += 1
        else:
            _FAILED.append(case.id)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not _COUNTS:
        return
    terminalreporter.section("fuzz")
    for category, (tried, clean) in sorted(_COUNTS.items()):
        terminalreporter.write_line(f"fuzz {category}: {tried} tried, {clean} clean")
    tried, clean = (sum(c[i] for c in _COUNTS.values()) for i in (0, 1))
    terminalreporter.write_line(f"fuzz: {tried} tried, {clean} clean")
    path = os.environ.get("RTSEG_FUZZ_REPORT")
    if path:
        report = {"categories": {k: {"tried": t, "clean": c} for k, (t, c) in sorted(_COUNTS.items())},
                  "tried": tried, "clean": clean, "failed": sorted(_FAILED),
                  "cases": {k: dict(v, clean=k not in _FAILED) for k, v in sorted(CASES.items())}}
        Path(path).write_text(json.dumps(report, indent=2) + "\n")
