"""Boundary F-score on hand-made cases whose precision and recall are known."""

from __future__ import annotations

import numpy as np
import pytest

from rtseg.evaluate.boundary import bf_scores, bf_update, boundary_f1, default_tolerance


def _square(shift_x: int = 0) -> np.ndarray:
    m = np.zeros((50, 50), bool)
    m[10:30, 10 + shift_x : 30 + shift_x] = True
    return m


def test_a_square_shifted_by_3_px() -> None:
    gt, pred = _square(), _square(3)
    # within 3 px every boundary pixel has a partner
    assert boundary_f1(pred, gt, 3.0) == (1.0, 1.0, 1.0)
    # within 2 px: of the 76 boundary pixels of the shifted square, the far column (20 px, 3 px from any true
    # boundary pixel) and the 14 middle pixels of the near column (3 px from the true left side, more from the
    # top and bottom) miss: 42 / 76 on either side, by symmetry
    p, r, f = boundary_f1(pred, gt, 2.0)
    assert p == pytest.approx(42 / 76) and r == pytest.approx(42 / 76) and f == pytest.approx(42 / 76)
    # within 0 px only the overlapping parts of the top and bottom rows: 17 pixels each
    assert boundary_f1(pred, gt, 0.0)[0] == pytest.approx(34 / 76)


def test_per_class_counts_add_up_over_images() -> None:
    gt = _square().astype(np.uint8)
    counts = np.zeros((2, 4), np.int64)
    bf_update(counts, gt, gt, tolerance=1)  # perfect
    per_class, mean = bf_scores(counts)
    assert per_class == [1.0, 1.0] and mean == 1.0
    bf_update(counts, _square(3).astype(np.uint8), gt, tolerance=2)  # a second image, 3 px off: sums add up
    assert counts[1].tolist() == [76 * 2, 76 + 42, 76 * 2, 76 + 42]
    assert bf_scores(np.zeros((3, 4), np.int64))[1] != bf_scores(np.zeros((3, 4), np.int64))[1]  # NaN: no boundary
    assert default_tolerance((300, 400)) == pytest.approx(3.75)


def test_docstring_examples_run() -> None:
    import doctest

    import rtseg.evaluate.boundary

    result = doctest.testmod(rtseg.evaluate.boundary)
    assert result.failed == 0 and result.attempted > 0


def test_the_true_edge_runs_through_the_middle_of_an_unlabelled_band() -> None:
    gt = np.zeros((30, 40), np.uint8)
    gt[:, :20] = 1
    gt[:, 20:24] = 255  # a trimap-like "not classified" band on the edge
    pred = np.zeros((30, 40), np.uint8)
    pred[:, :22] = 1  # the predicted edge in the middle of the band
    counts = np.zeros((2, 4), np.int64)
    bf_update(counts, pred, gt, tolerance=0, ignore_index=255)
    # the true edge runs through the middle of the band (unlabelled pixels take the nearest class), where the
    # predicted one is: every edge pixel of each class, predicted and true, is matched, even at tolerance 0
    assert counts.tolist() == [[30, 30, 30, 30], [30, 30, 30, 30]]
