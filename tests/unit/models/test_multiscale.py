"""Multi-scale and mirrored semantic inference (``scales=``, ``flip=``)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from rtseg.backends.base import SemanticInfo
from rtseg.backends.torch_backend import TorchSemanticBackend
from rtseg.errors import ConfigError
from rtseg.models.semantic import SemanticModel


def _frames(n: int = 2) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    out = []
    for _ in range(n):
        image = rng.integers(0, 100, (60, 100, 3), dtype=np.uint8)
        image[:, :40] = (250, 30, 30)  # a blue band on the left: not mirror-symmetric
        out.append(image)
    return out


def _info(names: tuple[str, ...], **kwargs: object) -> SemanticInfo:
    return SemanticInfo(names=names, palette_bgr=((0, 0, 0),) * len(names), imgsz=(64, 64), mean_rgb=(0.0, 0.0, 0.0),
                        std_rgb=(1.0, 1.0, 1.0), arch="test", **kwargs)


@pytest.fixture(scope="module")
def unet() -> TorchSemanticBackend:
    """A small random 3-class convolutional network (any network does: what matters is its own output)."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 3, 3, padding=1))
    return TorchSemanticBackend(net, _info(("a", "b", "c")))


def test_one_scale_without_flip_is_single_scale_inference(unet: TorchSemanticBackend) -> None:
    frames = _frames()
    for quality in ("fast", "high"):
        one = SemanticModel(unet, quality=quality, scales="1.0", flip=False)
        prepared = one.prepare(frames)
        logits = unet.infer(prepared.batch)  # single-scale inference: the network's own output
        assert torch.equal(one.infer(prepared), logits)
        plain = one.finish(logits, prepared)
        assert all(np.array_equal(a, b) for a, b in zip(one(frames), plain))
        # the averaging path itself: the same scale twice averages to the same classes
        twice = SemanticModel(unet, quality=quality, scales=[1.0, 1.0])
        assert all(np.array_equal(a, b) for a, b in zip(twice(frames), plain))


class _PerPixel(nn.Module):
    """Class 1 where the (normalised) blue channel is high: any mirroring left in the output would show."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([x[:, 2:3] * 0, x[:, 2:3] - 0.5], 1)


def test_flip_and_scales_average_back_in_place() -> None:
    backend = TorchSemanticBackend(_PerPixel(), _info(("bg", "blue")))
    frames = _frames(1)
    (plain,) = SemanticModel(backend)(frames)
    assert plain[:, :35].all() and not plain[:, 45:].any()
    (flipped,) = SemanticModel(backend, flip=True)(frames)
    assert np.array_equal(flipped, plain)
    (multi,) = SemanticModel(backend, scales="0.5,1,1.5", flip=True)(frames)
    assert (multi == plain).mean() > 0.98


@pytest.mark.parametrize("scales", ["", "0", "-0.5,1", "1,x", "5"])
def test_bad_scales_are_refused(unet: TorchSemanticBackend, scales: str) -> None:
    with pytest.raises(ConfigError, match="scales="):
        SemanticModel(unet, scales=scales)


def test_fixed_size_models_refuse_other_scales(unet: TorchSemanticBackend) -> None:
    class Fixed:
        info = _info(("a",), dynamic=False)
        device = torch.device("cpu")

    with pytest.raises(ConfigError, match="takes only 64x64 inputs"):
        SemanticModel(Fixed(), scales="0.5,1")
    SemanticModel(Fixed(), flip=True)  # a mirror image has the same size
