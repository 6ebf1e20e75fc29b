"""A run of days keeps bounded memory for its summary: per-stage latency samples and frame-out times."""

from __future__ import annotations

import numpy as np
import pytest

from rtseg.pipeline.flow import Reservoir, percentiles
from rtseg.pipeline.streams import OUT_KEPT, RunSummary


def test_a_reservoir_keeps_at_most_its_capacity_and_its_percentiles_hold() -> None:
    rng = np.random.default_rng(1)
    values = rng.gamma(2.0, 10.0, size=200_000)
    r = Reservoir(capacity=5_000)
    for v in values:
        r.add(float(v))
    assert len(r) == 5_000 and r.seen == 200_000
    got, want = percentiles({"x": r})["x"], {q: np.percentile(values, p) for q, p in (("p50", 50), ("p95", 95))}
    assert got["p50"] == pytest.approx(want["p50"], rel=0.05) and got["p95"] == pytest.approx(want["p95"], rel=0.05)


def test_up_to_its_capacity_a_reservoir_holds_every_value_in_order() -> None:
    r = Reservoir(capacity=100)
    for v in range(100):
        r.add(float(v))
    assert list(r) == [float(v) for v in range(100)]


def test_frame_out_times_are_bounded_and_steady_fps_is_unchanged() -> None:
    times = [1.0] * 10 + [1.0 + 0.1 * i for i in range(1, 5000)]  # a burst, then 10 FPS for 500 s
    bounded = RunSummary("s", frames=len(times), elapsed_s=times[-1])
    for t in times:
        bounded.frame_out(t)
    every = RunSummary("s", frames=len(times), elapsed_s=times[-1], out_s=list(times))
    assert len(bounded.out_s) == OUT_KEPT and bounded.out_count == len(times)
    assert bounded.first_out_s == 1.0 and bounded.out_s[-1] == times[-1]
    assert bounded.steady_fps == pytest.approx(every.steady_fps) == pytest.approx(10.0, rel=0.01)
