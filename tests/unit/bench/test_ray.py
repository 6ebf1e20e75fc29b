"""rtseg.bench.ray: the rows, table and figure of ``rtseg bench --ray`` made of cluster summaries (no Ray)."""

from __future__ import annotations

import doctest
from pathlib import Path

import rtseg.bench.ray
from rtseg.bench.ray import add_speedup, format_scaling, plot_scaling, scaling_row


def test_module_examples_run() -> None:
    finder, runner = doctest.DocTestFinder(), doctest.DocTestRunner()
    for test in finder.find(rtseg.bench.ray, globs=dict(vars(rtseg.bench.ray))):
        runner.run(test)
    result = runner.summarize(verbose=False)
    assert result.failed == 0 and result.attempted > 0


def _summary(frames: int, spans: list[tuple[float, float]]) -> dict:
    return {"frames": frames, "elapsed_s": 10.0, "failed": 0, "nodes": [],
            "sources": [{"status": "ok", "started_at": a, "finished_at": b, "elapsed_s": b - a} for a, b in spans]}


def test_scaling_rows_take_the_median_run_and_speedup_is_against_one_worker() -> None:
    one = scaling_row(1, [_summary(100, [(0, 10)])])
    two = scaling_row(2, [_summary(100, [(0, 4), (0, 5)]), _summary(100, [(0, 8)]), _summary(100, [(0, 6)])])
    assert (one["fps"], two["fps"], two["busy_s"]) == (10.0, 16.67, 6.0)  # 20, 12.5 and 16.67 FPS: the median
    add_speedup([one, two])
    assert (two["speedup"], two["efficiency"]) == (1.67, 0.83)
    assert format_scaling({"rows": [one, two]}).splitlines()[2].split()[:3] == ["2", "16.7", "1.67"]


def test_the_figure_is_a_png(tmp_path: Path) -> None:
    nodes = [{"node": "n1", "stages_ms": {"infer": {"p50": 20.0, "p95": 30.0}}}]
    rows = add_speedup([{**scaling_row(w, [_summary(100, [(0, 10 / w)])]), "nodes": nodes} for w in (1, 2, 4)])
    path = plot_scaling({"rows": rows}, tmp_path / "s.png")
    assert path.read_bytes()[:4] == b"\x89PNG"
