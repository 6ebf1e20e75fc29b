"""Semantic segmentation: label maps against independent references, checkpoints, named weights, ONNX.

Networks are random-init. To make their logits informative (several classes per frame, clear margins),
each one is "calibrated": batch-norm statistics are re-estimated on a few synthetic scenes and the final
classifier is re-drawn from a seeded normal distribution.
"""

from __future__ import annotations

import functools
import socket
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from rtseg.backends.base import SemanticInfo
from rtseg.backends.ort_backend import OrtSemanticBackend
from rtseg.backends.registry import load_semantic_backend
from rtseg.backends.torch_backend import TorchSemanticBackend
from rtseg.errors import ConfigError, ModelError
from rtseg.exporters.semantic_onnx import export_semantic_onnx
from rtseg.models import semantic as semantic_mod
from rtseg.models.semantic import SemanticModel
from rtseg.models.zoo import (
    ARCHS,
    LogitsNet,
    build_semantic,
    load_pretrained,
    load_semantic,
    save_semantic,
)

IMGSZ = 128


def scene(seed: int, hw: tuple[int, int] = (96, 128)) -> np.ndarray:
    """A BGR frame of flat-coloured discs and rectangles on a flat background."""
    rng = np.random.default_rng(seed)
    h, w = hw
    image = np.empty((h, w, 3), np.uint8)
    image[:] = rng.integers(0, 255, 3)
    for _ in range(6):
        colour = tuple(int(v) for v in rng.integers(0, 255, 3))
        x, y = int(rng.integers(0, w)), int(rng.integers(0, h))
        s = int(rng.integers(max(h, w) // 12, max(h, w) // 3))
        if rng.random() < 0.5:
            cv2.circle(image, (x, y), s, colour, -1)
        else:
            cv2.rectangle(image, (x, y), (x + s, y + s // 2), colour, -1)
    return image


def final_conv(net: LogitsNet) -> nn.Conv2d:
    inner = net.net
    if net.family == "torchvision":
        head = inner.classifier
        return head.high_classifier if hasattr(head, "high_classifier") else head[-1]
    if net.family == "smp":
        return inner.segmentation_head[0]
    return inner.model[-1].classifier[-1]


def calibrate(net: LogitsNet, seed: int = 0) -> LogitsNet:
    torch.manual_seed(seed)
    for m in net.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.reset_running_stats()
            m.momentum = None  # cumulative average over the calibration batch
    batch = np.stack([scene(100 + i) for i in range(4)])[..., ::-1].transpose(0, 3, 1, 2)
    net.train()
    with torch.no_grad():
        net(torch.from_numpy(batch.copy()).float() / 255)
    net.eval()
    head = final_conv(net)
    nn.init.normal_(head.weight, std=1.0)
    nn.init.zeros_(head.bias)
    return net


@functools.cache
def calibrated(arch: str) -> tuple[LogitsNet, SemanticInfo]:
    torch.manual_seed(0)
    num_classes = 19 if arch.startswith("yolo") else 5  # YOLO: as yolo26n-sem.yaml, for Ultralytics' predictor
    net, info = build_semantic(arch, num_classes=num_classes, imgsz=IMGSZ)
    return calibrate(net), info


def reference_labels(net: nn.Module, info: SemanticInfo, frame: np.ndarray) -> np.ndarray:
    """Ultralytics' LetterBox, normalise, forward, argmax, crop the padding, OpenCV nearest resize."""
    from ultralytics.data.augment import LetterBox

    letterbox = LetterBox((IMGSZ, IMGSZ), auto=True, stride=32)
    params = letterbox.get_params({"img": frame})
    image = letterbox(image=frame)
    rgb = image[..., ::-1].astype(np.float32) / 255
    x = (rgb - np.array(info.mean_rgb, np.float32)) / np.array(info.std_rgb, np.float32)
    with torch.no_grad():
        logits = net(torch.from_numpy(x.transpose(2, 0, 1).copy())[None])
    assert logits.shape[2:] == image.shape[:2]
    labels = logits[0].argmax(0).numpy().astype(np.uint8)
    w, h = params["new_unpad"]
    labels = labels[params["top"] : params["top"] + h, params["left"] : params["left"] + w]
    return cv2.resize(labels, frame.shape[1::-1], interpolation=cv2.INTER_NEAREST)


@pytest.mark.parametrize("arch", ["lraspp_mobilenet_v3_large", "Unet"])
@pytest.mark.parametrize("frame_hw", [(90, 150), (200, 120), (333, 517)])
def test_labels_equal_reference(arch, frame_hw) -> None:
    net, info = calibrated(arch)
    frame = scene(1, frame_hw)
    labels = SemanticModel(TorchSemanticBackend(net, info), imgsz=IMGSZ)([frame])[0]
    ref = reference_labels(net, info, frame)
    assert labels.shape == frame_hw and labels.dtype == np.uint8
    assert len(np.unique(ref)) >= 2, "the reference should show several classes, or the test proves little"
    assert (labels == ref).mean() >= 0.995


def test_high_quality_against_ultralytics_scale_masks(monkeypatch) -> None:
    """"high": logits of the content bilinearly resized to the frame (Ultralytics' scale_masks), then argmax."""
    from ultralytics.utils.ops import scale_masks

    net, info = calibrated("lraspp_mobilenet_v3_large")
    frame = scene(2, (300, 420))  # about 3x larger than the input: nearest and bilinear must differ
    stage = SemanticModel(TorchSemanticBackend(net, info), imgsz=IMGSZ, quality="high")
    prepared = stage.prepare([frame])
    logits = stage.infer(prepared)
    ref = scale_masks(logits, frame.shape[:2])[0].argmax(0).numpy()
    high = stage.finish(logits, prepared)[0]
    assert (high == ref).mean() >= 0.999
    monkeypatch.setattr(semantic_mod, "_HIGH_CHUNK_ELEMENTS", 2 * 300 * 420)  # 2 classes per chunk
    np.testing.assert_array_equal(stage.finish(logits, prepared)[0], high)
    fast = SemanticModel(TorchSemanticBackend(net, info), imgsz=IMGSZ).finish(logits, prepared)[0]
    agree = (fast == high).mean()
    assert 0.9 <= agree < 1.0, agree


def test_yolo26_sem_equals_ultralytics_predict(tmp_path) -> None:
    from ultralytics import YOLO

    net, info = calibrated("yolo26n-sem")
    assert info.mean_rgb == (0.0, 0.0, 0.0) and info.std_rgb == (1.0, 1.0, 1.0)
    yolo = YOLO("yolo26n-sem.yaml")
    yolo.model.load_state_dict(net.net.state_dict())
    yolo.save(tmp_path / "yolo26n-sem-test.pt")  # an Ultralytics checkpoint, read by load_semantic too
    net, info = load_semantic(tmp_path / "yolo26n-sem-test.pt")
    assert info.arch == "yolo26n-sem" and len(info.names) == 19 and info.stride == 32
    frame = scene(3, (150, 250))
    stage = SemanticModel(TorchSemanticBackend(net, info), imgsz=IMGSZ, quality="high")
    prepared = stage.prepare([frame])
    logits = stage.infer(prepared)
    assert logits.shape[2:] == (prepared.batch.shape[2] // 8, prepared.batch.shape[3] // 8)  # stride-8 head
    ours = stage.finish(logits, prepared)[0]
    ref = YOLO(tmp_path / "yolo26n-sem-test.pt").predict(frame, imgsz=IMGSZ, verbose=False)
    ref = ref[0].semantic_mask.data.numpy()
    assert len(np.unique(ref)) >= 2
    assert (ours == ref).mean() >= 0.995
    fast = SemanticModel(TorchSemanticBackend(net, info), imgsz=IMGSZ).finish(logits, prepared)[0]
    assert fast.shape == frame.shape[:2] and (fast == ours).mean() >= 0.8


def test_binary_model_labels_positive_logits() -> None:
    class Red(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x[:, :1] - 0.5

    info = SemanticInfo(("fg",), ((0, 0, 255),), (64, 64), (0, 0, 0), (1, 1, 1), arch="stub")
    frame = np.zeros((64, 64, 3), np.uint8)
    frame[10:30, 20:50, 2] = 255
    for quality in ("fast", "high"):
        labels = SemanticModel(TorchSemanticBackend(Red(), info), quality=quality)([frame])[0]
        np.testing.assert_array_equal(labels, frame[..., 2] > 127)


class PixelRed(nn.Module):
    """Per-pixel classifier: class 1 where red > 0.5. No context, so padding must not change any label."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([torch.zeros_like(x[:, :1]), x[:, :1] - 0.5], 1)


class LocalMeanRed(nn.Module):
    """Class 1 where the 9x9 mean of red (zero-padded, like a convolution) exceeds 0.5."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean = F.avg_pool2d(x[:, :1], 9, stride=1, padding=4, count_include_pad=True)
        return torch.cat([torch.zeros_like(mean), mean - 0.5], 1)


STUB_INFO = SemanticInfo(("bg", "red"), ((0, 0, 0), (0, 0, 255)), (IMGSZ, IMGSZ), (0, 0, 0), (1, 1, 1), arch="stub")


@pytest.mark.parametrize("quality", ["fast", "high"])
def test_reflect_padding_is_cropped_exactly(quality) -> None:
    # 96 + 2 * 16 = 128 = imgsz: the padded frame enters the network unresized, so every label is exact and a
    # crop that is off by one pixel would shift a random per-pixel pattern (about half the labels wrong)
    rng = np.random.default_rng(4)
    frame = np.zeros((96, 96, 3), np.uint8)
    frame[..., 2] = rng.integers(0, 2, (96, 96)) * 255
    truth = frame[..., 2] > 127
    stage = SemanticModel(TorchSemanticBackend(PixelRed(), STUB_INFO), imgsz=IMGSZ, quality=quality, pad=16)
    labels = stage([frame])[0]
    assert labels.shape == (96, 96)
    np.testing.assert_array_equal(labels, truth)
    # a size that goes through resizing: 8-px blocks, so a crop off by the 7-px pad would get ~half wrong
    frame = np.zeros((100, 150, 3), np.uint8)
    frame[..., 2] = np.kron(rng.integers(0, 2, (13, 19)), np.ones((8, 8), np.uint8))[:100, :150] * 255
    stage = SemanticModel(TorchSemanticBackend(PixelRed(), STUB_INFO), imgsz=IMGSZ, quality=quality, pad=7)
    labels = stage([frame])[0]
    assert labels.shape == (100, 150) and (labels == (frame[..., 2] > 127)).mean() > 0.9


def test_reflect_padding_stops_labels_fraying_at_the_frame_edge() -> None:
    frame = np.zeros((IMGSZ, IMGSZ, 3), np.uint8)
    frame[..., 2] = 200  # uniformly "red": every pixel is class 1
    plain = SemanticModel(TorchSemanticBackend(LocalMeanRed(), STUB_INFO), imgsz=IMGSZ)([frame])[0]
    padded = SemanticModel(TorchSemanticBackend(LocalMeanRed(), STUB_INFO), imgsz=IMGSZ, pad=8)([frame])[0]
    border = np.ones_like(plain, dtype=bool)
    border[1:-1, 1:-1] = False
    assert plain[border].max() == 0 and plain[8:-8, 8:-8].all()  # zero padding drags the outer ring to class 0
    assert padded.shape == plain.shape and padded.all()


def test_semantic_model_rejects_bad_options() -> None:
    backend = TorchSemanticBackend(PixelRed(), STUB_INFO)
    for kwargs in ({"quality": "best"}, {"pad": -1}, {"imgsz": 16}, {"open_px": -3}):
        with pytest.raises(ConfigError):
            SemanticModel(backend, **kwargs)


def test_info_json_round_trip_and_validation() -> None:
    _, info = calibrated("Unet")
    assert SemanticInfo.from_json(info.to_json()) == info
    assert info.encoder == "mobilenet_v2" and len(info.palette_bgr) == 5
    with pytest.raises(ValueError, match="palette_bgr"):
        SemanticInfo(("a", "b"), ((0, 0, 0),), (64, 64), (0, 0, 0), (1, 1, 1), arch="x")


@pytest.mark.parametrize("arch", ["lraspp_mobilenet_v3_large", "yolo26n-sem"])
def test_checkpoint_round_trip(tmp_path, arch) -> None:
    net, info = calibrated(arch)
    path = save_semantic(tmp_path / "model.pt", net, info)
    ckpt = torch.load(path, weights_only=True)  # loadable without trusting pickled code
    assert ckpt["arch"] == arch and ckpt["format"].startswith("rtseg-semantic")
    loaded, info2 = load_semantic(path)
    assert info2 == info and not loaded.training
    backend = load_semantic_backend(path)
    assert isinstance(backend, TorchSemanticBackend) and backend.info == info
    x = torch.from_numpy(SemanticModel(TorchSemanticBackend(net, info), imgsz=IMGSZ).prepare([scene(5)]).batch)
    with torch.no_grad():
        assert torch.equal(loaded(x), net(x))


def _one_line_error(exc: pytest.ExceptionInfo) -> str:
    message = str(exc.value)
    assert "\n" not in message and message
    return message


@pytest.mark.parametrize("content", [b"", b"not a checkpoint at all", b"PK\x03\x04garbage"])
def test_corrupt_checkpoint_is_a_model_error(tmp_path, content) -> None:
    path = tmp_path / "bad.pt"
    path.write_bytes(content)
    with pytest.raises(ModelError) as exc:
        load_semantic(path)
    assert "bad.pt" in _one_line_error(exc)


def test_wrong_kind_of_file_is_a_model_error(tmp_path) -> None:
    torch.save({"model": {"w": torch.zeros(3)}}, tmp_path / "other.pt")
    with pytest.raises(ModelError, match="not an rtseg semantic checkpoint") as exc:
        load_semantic(tmp_path / "other.pt")
    _one_line_error(exc)
    from ultralytics import YOLO

    YOLO("yolo11n-cls.yaml").save(tmp_path / "classifier.pt")  # a valid Ultralytics checkpoint of another task
    with pytest.raises(ModelError, match="'classify' model") as exc:
        load_semantic(tmp_path / "classifier.pt")
    _one_line_error(exc)
    with pytest.raises(ModelError, match="not found"):
        load_semantic(tmp_path / "missing.pt")


def test_unknown_arch_lists_valid_names() -> None:
    with pytest.raises(ModelError) as exc:
        build_semantic("segformer_b9", num_classes=3)
    message = _one_line_error(exc)
    assert all(name in message for name in ARCHS)
    with pytest.raises(ModelError, match="mobilenet_v2"):  # smp's own list of encoders
        build_semantic("Unet", num_classes=3, encoder="no_such_encoder")


def test_named_weights_offline_is_one_line_model_error(tmp_path, monkeypatch) -> None:
    def refuse(self: socket.socket, address: object) -> None:
        raise OSError(f"network blocked: {address}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))  # an empty hub cache
    name = "deeplabv3_mobilenet_v3_large.COCO_WITH_VOC_LABELS_V1"
    with pytest.raises(ModelError) as exc:
        load_semantic(name)
    message = _one_line_error(exc)
    assert "https://download.pytorch.org/" in message and str(tmp_path / "torch" / "hub" / "checkpoints") in message
    with pytest.raises(ModelError, match="expected one of deeplabv3_mobilenet_v3_large.COCO_WITH_VOC_LABELS_V1"):
        load_semantic("lraspp_mobilenet_v3_large.NO_SUCH_WEIGHTS")


def test_named_weights_load_from_the_hub_cache(tmp_path, monkeypatch) -> None:
    """A file placed where the message says is used offline: categories, mean/std and weights come through."""
    from torchvision.models import get_weight
    from torchvision.models.segmentation import lraspp_mobilenet_v3_large

    weights = get_weight("LRASPP_MobileNet_V3_Large_Weights.COCO_WITH_VOC_LABELS_V1")
    torch.manual_seed(1)
    reference = lraspp_mobilenet_v3_large(weights=None, weights_backbone=None, num_classes=21).eval()
    cache = tmp_path / "torch" / "hub" / "checkpoints"
    cache.mkdir(parents=True)
    torch.save(reference.state_dict(), cache / Path(weights.url).name)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    net, info = load_pretrained("lraspp_mobilenet_v3_large.COCO_WITH_VOC_LABELS_V1")
    assert info.names[0] == "background" and info.names[15] == "person" and len(info.names) == 21
    assert info.mean_rgb == (0.485, 0.456, 0.406) and info.std_rgb == (0.229, 0.224, 0.225)
    x = torch.rand(1, 3, 64, 96)
    with torch.no_grad():
        assert torch.equal(net(x), reference(x)["out"])


def _onnx_agreement(tmp_path: Path, arch: str, *, dynamic: bool = True, imgsz: int = IMGSZ) -> float:
    net, info = calibrated(arch)
    ckpt = save_semantic(tmp_path / f"{arch}.pt", net, info)
    onnx_path = export_semantic_onnx(ckpt, out=tmp_path / f"{arch}.onnx", imgsz=imgsz, dynamic=dynamic)
    ort = load_semantic_backend(onnx_path)
    assert isinstance(ort, OrtSemanticBackend) and ort.info.names == info.names and ort.info.dynamic == dynamic
    frames = [scene(6, (90, 150)), scene(7, (90, 150))] if dynamic else [scene(6, (128, 128))]
    ours = SemanticModel(TorchSemanticBackend(net, info), imgsz=imgsz)(frames)
    theirs = SemanticModel(ort, imgsz=imgsz)(frames)  # dynamic: a 96x128 input, not the 128x128 traced size
    return float(np.mean([(a == b).mean() for a, b in zip(ours, theirs)]))


@pytest.mark.parametrize("arch", ["lraspp_mobilenet_v3_large", "deeplabv3_mobilenet_v3_large", "Unet",
                                  "DeepLabV3Plus", "yolo26n-sem"])
def test_onnx_labels_agree_with_pytorch(tmp_path, arch) -> None:
    assert _onnx_agreement(tmp_path, arch) >= 0.995


def test_pspnet_needs_a_fixed_size_export(tmp_path) -> None:
    net, info = calibrated("PSPNet")
    ckpt = save_semantic(tmp_path / "psp.pt", net, info)
    with pytest.raises(ConfigError, match="dynamic=False"):
        export_semantic_onnx(ckpt, out=tmp_path / "psp.onnx")
    with pytest.raises(ConfigError, match="multiple of 96"):
        export_semantic_onnx(ckpt, out=tmp_path / "psp.onnx", imgsz=128, dynamic=False)
    assert _onnx_agreement(tmp_path, "PSPNet", dynamic=False, imgsz=192) >= 0.995


def test_onnx_without_rtseg_metadata_is_a_model_error(tmp_path) -> None:
    path = tmp_path / "plain.onnx"
    torch.onnx.export(nn.Conv2d(3, 2, 1), (torch.zeros(1, 3, 32, 32),), str(path), dynamo=False)
    with pytest.raises(ModelError, match="rtseg_semantic"):
        load_semantic_backend(path)


def test_damaged_cached_weights_are_a_model_error(tmp_path, monkeypatch) -> None:
    from torchvision.models import get_weight

    weights = get_weight("LRASPP_MobileNet_V3_Large_Weights.COCO_WITH_VOC_LABELS_V1")
    cache = tmp_path / "torch" / "hub" / "checkpoints"
    cache.mkdir(parents=True)
    (cache / Path(weights.url).name).write_bytes(b"truncated download")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    with pytest.raises(ModelError, match="delete .* and try again") as exc:
        load_semantic("lraspp_mobilenet_v3_large.COCO_WITH_VOC_LABELS_V1")
    _one_line_error(exc)
