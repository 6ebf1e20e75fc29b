"""NMS and the end-to-end filter against Ultralytics' own implementation, on tensors (PyTorch and TensorRT
backends) and on NumPy arrays (ONNX Runtime's outputs, post-processed without PyTorch)."""

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


def _as(kind: str, x: torch.Tensor) -> torch.Tensor | np.ndarray:
    return x.numpy() if kind == "numpy" else x


@pytest.mark.parametrize("kind", ["tensor", "numpy"])
@pytest.mark.parametrize("classes", [None, [0, 2]])
@pytest.mark.parametrize("agnostic", [False, True])
def test_nms_equals_ultralytics(classes, agnostic, kind) -> None:
    from ultralytics.utils.nms import non_max_suppression

    rng = np.random.default_rng(1)
    pred = _random_head(rng, 800, 5, 4, (384, 640))
    ref = non_max_suppression(pred[None].clone(), 0.25, 0.5, classes=classes, agnostic=agnostic, nc=5)[0]
    ours = select_nms(_as(kind, pred), nc=5, conf=0.25, iou=0.5, classes=classes, agnostic=agnostic)
    assert len(ours) > 5 and isinstance(ours, type(_as(kind, pred)))
    torch.testing.assert_close(torch.as_tensor(ours), ref)


@pytest.mark.parametrize("seed", range(5))
def test_numpy_nms_keeps_what_torchvision_keeps(seed: int) -> None:
    """Many overlapping boxes, near-equal scores, a max_keep: the same indices in the same order."""
    from rtseg.postprocess.nms import nms_np, nms_op

    rng = np.random.default_rng(seed)
    xy = rng.uniform(0, 200, (3000, 2))
    boxes = np.concatenate([xy, xy + rng.uniform(5, 60, (3000, 2))], 1).astype(np.float32)
    scores = rng.uniform(0, 1, 3000).astype(np.float32)
    ref = nms_op()(torch.from_numpy(boxes), torch.from_numpy(scores), 0.45).numpy()
    assert len(ref) > 100
    np.testing.assert_array_equal(nms_np(boxes, scores, 0.45), ref)
    np.testing.assert_array_equal(nms_np(boxes, scores, 0.45, max_keep=50), ref[:50])


@pytest.mark.parametrize("kind", ["tensor", "numpy"])
def test_end2end_filter_equals_ultralytics(kind) -> None:
    from ultralytics.utils.nms import non_max_suppression

    rng = np.random.default_rng(2)
    rows = np.concatenate([rng.uniform(0, 300, (300, 4)), np.sort(rng.uniform(0, 1, (300, 1)), 0)[::-1],
                           rng.integers(0, 4, (300, 1)), rng.normal(0, 1, (300, 8))], 1).astype(np.float32)
    pred = torch.from_numpy(rows)
    ref = non_max_suppression(pred[None].clone(), 0.3, 0.7, classes=[1, 3], end2end=True, max_det=50)[0]
    torch.testing.assert_close(torch.as_tensor(select_end2end(_as(kind, pred), conf=0.3, classes=[1, 3], max_det=50)),
                               ref)
