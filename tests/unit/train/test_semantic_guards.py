"""Training refuses labels it cannot learn from and stops when the loss diverges, writing no NaN checkpoint."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from rtseg.errors import ConfigError
from rtseg.train.semantic import Augment, train_semantic


def pairs(labels: np.ndarray, n: int = 4) -> list[tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(0)
    return [(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8), labels.copy()) for _ in range(n)]


def train(train_pairs: list, val_pairs: list, out: Path, **kwargs: object):  # noqa: ANN201
    return train_semantic(train_pairs, val_pairs, ["bg", "cat"], out, epochs=1, imgsz=32, batch=2,
                          augment=Augment(crop=32), progress=False, log=lambda _: None, **kwargs)


HALF = np.zeros((32, 32), np.uint8)
HALF[:, 16:] = 1


@pytest.mark.parametrize(("train_labels", "val_labels", "why"), [
    (np.full((32, 32), 255, np.uint8), HALF, "no labelled pixel in the 4 training images"),
    (HALF, np.full((32, 32), 255, np.uint8), "no labelled pixel in the 4 validation images"),
    (HALF * 7, HALF, r"training image 0: label id 7, but the model has 2 classes"),
    (HALF[:16], HALF, r"training image 0: a 32x32 image for a 32x16 label map"),
])
def test_unusable_labels_are_refused_before_training(tmp_path: Path, train_labels: np.ndarray,
                                                     val_labels: np.ndarray, why: str) -> None:
    with pytest.raises(ConfigError, match=why):
        train(pairs(train_labels), pairs(val_labels), tmp_path / "m.pt")
    assert not (tmp_path / "m.pt").exists()


def test_a_diverging_loss_stops_training_without_a_checkpoint(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"training diverged; no checkpoint was written\. Lower the learning rate "
                                          r"\(lr=1e\+30 now\)"):
        train(pairs(HALF, 8), pairs(HALF), tmp_path / "m.pt", lr=1e30)
    assert not (tmp_path / "m.pt").exists()


def test_weights_that_turn_nan_are_not_saved(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real_step = torch.optim.AdamW.step

    def poisoning_step(self, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202 - the last step goes NaN
        result = real_step(self, *args, **kwargs)
        for group in self.param_groups:
            for p in group["params"]:
                p.data.fill_(float("nan"))
        return result

    monkeypatch.setattr(torch.optim.AdamW, "step", poisoning_step)
    with pytest.raises(ConfigError, match="weights became NaN or infinite in epoch 1"):
        train(pairs(HALF, 2), pairs(HALF), tmp_path / "m.pt")
    assert not (tmp_path / "m.pt").exists()
