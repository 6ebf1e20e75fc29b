"""SegNet as a ``rtseg train`` architecture: it learns a tiny generated set, and its checkpoint runs like the
others (PyTorch and an ONNX export)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from rtseg.models.segnet import SegNet, unpool_scatter
from rtseg.train.semantic import Augment, train_semantic


def _squares(n: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """32x32 noise with one bright square (class 1) each."""
    rng = np.random.default_rng(seed)
    pairs = []
    for _ in range(n):
        image = rng.integers(0, 90, (32, 32, 3), dtype=np.uint8)
        labels = np.zeros((32, 32), np.uint8)
        y, x, s = *rng.integers(2, 16, 2), int(rng.integers(8, 14))
        image[y : y + s, x : x + s] = (40, 200, 230)
        labels[y : y + s, x : x + s] = 1
        pairs.append((image, labels))
    return pairs


def test_pooling_indices_drive_the_unpooling() -> None:
    net = SegNet(2)
    assert isinstance(net.pool, torch.nn.MaxPool2d) and net.pool.return_indices
    assert isinstance(net.unpool, torch.nn.MaxUnpool2d)
    pool = torch.nn.MaxPool2d(2, 2, return_indices=True)
    values, indices = pool(torch.randn(2, 4, 8, 12))
    assert torch.equal(unpool_scatter(values, indices), net.unpool(values, indices))  # the export's form


def test_segnet_trains_and_runs_like_the_others(tmp_path: Path) -> None:
    from rtseg.backends.registry import load_semantic_backend
    from rtseg.exporters.semantic_onnx import export_semantic_onnx
    from rtseg.models.semantic import SemanticModel

    torch.manual_seed(0)
    out = tmp_path / "segnet.pt"
    result = train_semantic(_squares(8, 0), _squares(2, 1), ("background", "square"), out, arch="segnet", epochs=3,
                            batch=4, lr=3e-3, imgsz=32, augment=Augment(crop=32, scale=(1.0, 1.0), colour=0),
                            progress=False, log=lambda line: None)
    losses = [h["loss"] for h in result.history]
    assert losses[-1] < 0.75 * losses[0], losses
    model = SemanticModel(load_semantic_backend(str(out), device="cpu"))
    assert model.info.arch == "SegNet"
    image = _squares(1, 2)[0][0]
    (labels,) = model([image])
    onnx = export_semantic_onnx(out, out=tmp_path / "segnet.onnx")
    (from_onnx,) = SemanticModel(load_semantic_backend(str(onnx), device="cpu"))([image])
    assert (from_onnx == labels).mean() > 0.999


def test_segnet_takes_no_encoder() -> None:
    from rtseg.errors import ModelError
    from rtseg.models.zoo import build_semantic

    with pytest.raises(ModelError, match="fixed backbone"):
        build_semantic("SegNet", names=["a", "b"], encoder="resnet18")
