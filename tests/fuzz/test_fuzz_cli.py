"""Generated bad inputs of every category through the real CLI (see tests/fuzz/generators.py).

Every case is one ``rtseg`` run with a time limit. A refused input: a non-zero exit (2, bad input; 3, an
unanticipated failure, counts as not clean), exactly one ``rtseg: error:`` line on stderr, no traceback. Every
case: no hang, no input changed (files, links and folders under ``in/``, and the model files it reads), no
hostile payload run (no ``PWNED*`` file), and for a refusal no output left (``out/`` and the working folder
empty). A case that the README says succeeds (a truncated video's decodable frames) exits 0 with its outputs and
at most the warning lines it allows. ``pytest -m fuzz`` runs the suite alone; ``--fuzz-all`` the larger set.
"""

from __future__ import annotations

import pytest

from tests.fuzz.generators import MARKER, Case
from tests.fuzz.runner import FuzzRunner, input_hashes

pytestmark = pytest.mark.fuzz


def _describe(o) -> str:  # noqa: ANN001
    return (f"\ncommand: rtseg {' '.join(repr(a) if not a or ' ' in a else a for a in o.spec.args)}"
            f"\nexit: {o.returncode} after {o.seconds:.1f} s\nstderr:\n{o.stderr[-3000:]}\nstdout:\n{o.stdout[-1000:]}")


def test_bad_input_is_refused_cleanly(fuzz_case: Case, fuzz_runner: FuzzRunner) -> None:
    o = fuzz_runner.outcome(fuzz_case)
    spec, why = o.spec, _describe(o)
    assert o.returncode is not None, f"hang: killed at the time limit{why}"
    assert "Traceback" not in o.stderr + o.stdout, f"traceback{why}"
    assert input_hashes(o.root, spec) == o.before, f"an input was changed or added{why}"
    assert not list(o.root.rglob(f"{MARKER}*")), f"a hostile payload ran{why}"
    lines = [line for line in o.stderr.splitlines() if line.strip()]
    warnings = [line for line in lines if line.startswith("rtseg: WARNING")]
    assert len(warnings) <= spec.warnings, f"{len(warnings)} warning lines, {spec.warnings} allowed{why}"
    rest = [line for line in lines if line not in warnings]
    if spec.code == 0:
        assert o.returncode == 0, f"expected success{why}"
        assert rest == [], f"stderr beyond warnings{why}"
        if spec.warnings:
            assert warnings, f"a silent result: the expected warning is missing{why}"
        for path in spec.outputs:
            assert path.exists(), f"expected output {path} missing{why}"
        return
    assert o.returncode == spec.code, f"exit {o.returncode}, expected {spec.code}{why}"
    assert len(rest) == 1 and rest[0].startswith("rtseg: error: ") and rest[0].strip() != "rtseg: error:", \
        f"stderr is not one error line{why}"
    left = [str(p) for d in ("out", "cwd") for p in (o.root / d).rglob("*")]
    assert left == [], f"outputs left after a refusal: {left}{why}"
