"""The heatmap: total and decayed mask presence per class, its rendering over a frame."""

from __future__ import annotations

import doctest

import numpy as np
import pytest

import rtseg.analytics.heatmap as heatmap_module
from rtseg.analytics.heatmap import Heatmap
from rtseg.types import FrameResult, InstanceMasks


def square(x: int, y: int, size: int, cls: int, hw: tuple[int, int] = (50, 80)) -> FrameResult:
    return FrameResult(0, hw, np.array([[x, y, x + size, y + size]]), np.array([0.9]), np.array([cls]),
                       InstanceMasks((np.ones((size, size), bool),), [[x, y]]))


def test_examples_run() -> None:
    finder, runner = doctest.DocTestFinder(), doctest.DocTestRunner()
    for test in finder.find(heatmap_module):
        runner.run(test)
    result = runner.summarize(verbose=False)
    assert result.failed == 0 and result.attempted > 0


def test_total_presence_per_class() -> None:
    heat = Heatmap((50, 80), ("person", "dog"))
    for i in range(10):
        heat.add(square(5, 5, 10, 0), i / 10)
        if i % 2:
            heat.add(square(40, 20, 5, 1), i / 10)
    person, dog = heat.presence("person"), heat.presence("dog")
    assert person[5:15, 5:15].min() == 10 and person.sum() == 10 * 100
    assert dog[20:25, 40:45].min() == 5 and dog.sum() == 5 * 25
    assert heat.presence().sum() == person.sum() + dog.sum()
    assert heat.classes == ["person", "dog"] and heat.presence("cat").sum() == 0


def test_decayed_presence_halves_every_half_life() -> None:
    heat = Heatmap((50, 80), ("person",), half_life_s=1.0)
    heat.add(square(0, 0, 10, 0), 0.0)  # an old sighting
    for i in range(1, 31):
        heat.add(square(40, 0, 10, 0), i / 10)  # ~2.9 half-lives later, another place
        heat.add(FrameResult.empty(0, (50, 80)), i / 10)
    p = heat.presence("person")
    assert p[0, 0] == pytest.approx(0.5**3.0, rel=1e-4)
    assert p[0, 45] > 4 * p[0, 0]


def test_decay_rescales_without_losing_precision() -> None:
    heat = Heatmap((10, 10), ("a",), half_life_s=0.1)
    for i in range(600):  # 60 s = 600 half-lives: weights far past float32
        heat.add(square(0, 0, 2, 0, (10, 10)), i / 10)
    p = heat.presence("a")
    assert np.isfinite(p).all() and p[0, 0] == pytest.approx(1 / (1 - 0.5), rel=1e-3)


def test_render_colours_only_where_something_was() -> None:
    heat = Heatmap((50, 80), ("person",))
    image = np.full((50, 80, 3), 100, np.uint8)
    assert np.array_equal(heat.render(image), image)  # nothing seen yet
    heat.add(square(10, 10, 10, 0), 0.0)
    out = heat.render(image)
    seen = np.zeros((50, 80), bool)
    seen[10:20, 10:20] = True
    assert (out[seen] != 100).any(1).all() and np.array_equal(out[~seen], image[~seen])
    same = image.copy()
    assert heat.render(same, out=same) is same and np.array_equal(same, out)
