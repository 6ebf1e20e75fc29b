"""Semantic training pieces: loss specs, augmentation, fine-tuning from a checkpoint."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from rtseg.data.convert import IGNORE
from rtseg.errors import ConfigError
from rtseg.models.zoo import build_semantic, load_semantic, save_semantic
from rtseg.train.semantic import Augment, parse_loss, plot_history, train_semantic


def logits_and_target(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(2, 3, 16, 16, generator=g)
    y = torch.randint(0, 3, (2, 16, 16), generator=g)
    y[:, :2] = IGNORE
    return x, y


def test_ce_term_is_cross_entropy_ignoring_255() -> None:
    x, y = logits_and_target()
    assert parse_loss("ce")(x, y).item() == pytest.approx(F.cross_entropy(x, y, ignore_index=IGNORE).item())


@pytest.mark.parametrize("term", ["ce", "bce", "dice", "focal", "tversky", "focal_tversky"])
def test_every_term_is_finite_and_lower_for_the_right_answer(term: str) -> None:
    x, y = logits_and_target()
    loss = parse_loss(term)
    right = F.one_hot(y.clamp_max(2), 3).permute(0, 3, 1, 2).float() * 8 - 4
    assert torch.isfinite(loss(x, y))
    assert loss(right, y) < loss(x, y)


def test_weighted_sum() -> None:
    x, y = logits_and_target(1)
    total = parse_loss("ce + 0.5*dice")(x, y)
    assert total.item() == pytest.approx(parse_loss("ce")(x, y).item() + 0.5 * parse_loss("dice")(x, y).item())


@pytest.mark.parametrize("spec", ["ce+", "2x*dice", "iou"])
def test_bad_loss_spec_is_config_error(spec: str) -> None:
    with pytest.raises(ConfigError, match="^loss"):
        parse_loss(spec)


def test_augment_crops_pads_with_ignore_and_keeps_pixels_with_labels() -> None:
    rng = np.random.default_rng(0)
    image = np.zeros((40, 60, 3), np.uint8)
    labels = np.zeros((40, 60), np.uint8)
    image[:, 30:] = 255
    labels[:, 30:] = 1
    aug = Augment(crop=64, scale=(1.0, 1.0), colour=0)
    for _ in range(10):
        im, lb = aug(image, labels, rng)
        assert im.shape == (64, 64, 3) and lb.shape == (64, 64)
        assert (lb == IGNORE).sum() == 64 * 64 - 40 * 60  # the padding (wherever flips put it) is ignored
        assert (lb[40:] == IGNORE).all()  # no vertical flip by default
        valid = lb != IGNORE
        assert ((im[..., 0][valid] == 255) == (lb[valid] == 1)).all()  # flips move pixels and labels together


def test_fine_tuning_starts_from_the_checkpoint_and_checks_classes(tmp_path: Path) -> None:
    net, info = build_semantic("Linknet", names=["bg", "fg"], imgsz=32)
    start = save_semantic(tmp_path / "start.pt", net, info)
    rng = np.random.default_rng(0)
    pairs = [(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8), (rng.random((32, 32)) > 0.5).astype(np.uint8))
             for _ in range(4)]
    with pytest.raises(ConfigError, match="differ"):
        train_semantic(pairs, pairs, ["bg", "cat"], tmp_path / "x.pt", init=start, epochs=1, imgsz=32,
                       augment=Augment(crop=32), progress=False)
    result = train_semantic(pairs, pairs, ["bg", "fg"], tmp_path / "ft.pt", init=start, epochs=1, imgsz=32,
                            augment=Augment(crop=32), progress=False, half=True, log=lambda _: None)
    tuned, tuned_info = load_semantic(result.checkpoint)
    assert tuned_info.arch == "Linknet" and tuned_info.names == ("bg", "fg")
    assert tuned.net.state_dict().keys() == net.net.state_dict().keys()
    png = plot_history(result.history, tmp_path / "h.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
