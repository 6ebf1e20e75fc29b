"""NMS and the end-to-end filter against Ultralytics' own implementation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rtseg.postprocess.nms import select_end2end, select_nms


def _random_head(rng: np.random.Generator, n: int, nc: int, nm: int, hw: tuple[int, int]) -> torch.Tensor:
    h, w = hw
    xy = rng.uniform(0, 1, (n, 2)) * [w, h]
    wh = rng.uniform(4, 0.5 * min(h, w), (n, 2))
    xy[: n // 2] = xy[0] + rng.normal(0, 6, (n // 2, 2))  # a cluster, so NMS has work to do
    scores = rng.uniform(0, 1, (n, nc)) ** 4
    coefs = rng.normal(0, 1, (n, nm))
    return torch.from_numpy(np.concatenate([xy, wh, scores, coefs], 1).T.astype(np.float32))


@pytest.mark.parametrize("classes", [None, [0, 2]])
@pytest.mark.parametrize("agnostic", [False, True])
def test_nms_equals_ultralytics(classes, agnostic) -> None:
    from ultralytics.utils.nms import non_max_suppression

    rng = np.random.default_rng(1)
    pred = _random_head(rng, 800, 5, 4, (384, 640))
    ref = non_max_suppression(pred[None].clone(), 0.25, 0.5, classes=classes, agnostic=agnostic, nc=5)[0]
    ours = select_nms(pred, nc=5, conf=0.25, iou=0.5, classes=classes, agnostic=agnostic)
    assert len(ours) > 5
    torch.testing.assert_close(ours, ref)


def test_end2end_filter_equals_ultralytics() -> None:
    from ultralytics.utils.nms import non_max_suppression

    rng = np.random.default_rng(2)
    rows = np.concatenate([rng.uniform(0, 300, (300, 4)), np.sort(rng.uniform(0, 1, (300, 1)), 0)[::-1],
                           rng.integers(0, 4, (300, 1)), rng.normal(0, 1, (300, 8))], 1).astype(np.float32)
    pred = torch.from_numpy(rows)
    ref = non_max_suppression(pred[None].clone(), 0.3, 0.7, classes=[1, 3], end2end=True, max_det=50)[0]
    torch.testing.assert_close(select_end2end(pred, conf=0.3, classes=[1, 3], max_det=50), ref)
