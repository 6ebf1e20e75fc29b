"""Semantic segmentation: frames in, one (H, W) uint8 class-id map per frame out.

The stage mirrors :class:`rtseg.models.yolo_seg.YoloSegModel`: :meth:`SemanticModel.prepare` letterboxes
and normalises, :meth:`SemanticModel.infer` calls a :class:`SemanticBackend`, :meth:`SemanticModel.finish`
maps the logits back to each frame. Model builders, checkpoints and named pretrained weights live in
:mod:`rtseg.models.zoo`; the :class:`~rtseg.backends.base.SemanticBackend` protocol and
:class:`~rtseg.backends.base.SemanticInfo` in :mod:`rtseg.backends.base`, the backends beside the instance ones
(one module per runtime).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from numpy.typing import NDArray

from rtseg.backends.base import SemanticBackend
from rtseg.config import parse_scales
from rtseg.errors import ConfigError
from rtseg.postprocess.morphology import clean_labels
from rtseg.preprocess.letterbox import Letterbox, Letterboxer, plan_letterbox, resolve_imgsz, to_input_batch

QUALITIES = ("fast", "high")
# Upper bound on float32 elements of one upsampled chunk of classes in "high" quality (2**25 floats = 128 MiB):
# 150 ADE20K classes at 4K would otherwise need 5 GB for one frame.
_HIGH_CHUNK_ELEMENTS = 2**25


@dataclass(frozen=True)
class SemanticPrepared:
    """A network-ready batch, where each (padded) frame sits in it, and the reflect padding to crop off."""

    batch: NDArray[np.float32]
    letterboxes: tuple[Letterbox, ...]
    pad: int = 0


class SemanticModel:
    """Pre-processing, backend call and post-processing for a semantic segmentation model.

    Args:
        backend: a loaded :class:`SemanticBackend`.
        imgsz: inference size (height, width) or one int for both; None uses the model's own size. The longer
            side of a frame is fitted into it, the other padded up to the stride (dynamic models) or to
            ``imgsz`` (fixed-size ONNX exports). A model of stride 1 that accepts any size resizes frames itself
            (MediaPipe's selfie models: :mod:`rtseg.models.selfie`): with None it gets each frame as it is,
            since a letterbox resize first would resample the frame twice.
        quality: ``"fast"`` takes the argmax at model resolution and resizes the label map to the frame by
            nearest neighbour (blocky edges when the frame is much larger than the input, cheap);
            ``"high"`` upsamples the logits bilinearly to the frame and takes the argmax there (smooth class
            boundaries, costs classes x frame pixels of float work).
        pad: reflect-pad each frame by this many pixels on every side before letterboxing, so that
            convolutions see plausible context at frame edges instead of the grey letterbox or zero padding
            (labels then do not fray along the border); the padding is cropped off the labels again.
        open_px, close_px, min_area: morphological clean-up of each label map, at frame resolution; see
            :func:`rtseg.postprocess.morphology.clean_labels`. All 0 (the default) skips it.
        scales: multi-scale inference: the letterboxed batch is also run resized by each of these factors
            (1.0 = ``imgsz``; sides rounded to the model's stride), and the class probabilities (softmax; sigmoid
            for one-channel models) are averaged at the output size of scale 1.0. ``(1.0,)`` without ``flip``
            is plain single-scale inference, bit for bit. Each scale costs about scale**2 of one inference.
        flip: also run each scale mirrored left-right and average it in (test-time augmentation, 2x the cost).
    """

    def __init__(self, backend: SemanticBackend, *, imgsz: int | Sequence[int] | None = None,
                 quality: str = "fast", pad: int = 0, open_px: int = 0, close_px: int = 0,
                 min_area: int = 0, scales: Sequence[float] | str = (1.0,), flip: bool = False) -> None:
        info = backend.info
        if quality not in QUALITIES:
            raise ConfigError(f"quality={quality!r}: expected one of {', '.join(QUALITIES)}")
        if pad < 0 or open_px < 0 or close_px < 0 or min_area < 0:
            raise ConfigError(f"pad={pad}, open_px={open_px}, close_px={close_px}, min_area={min_area}: "
                              "expected values >= 0")
        size = resolve_imgsz(imgsz, model_imgsz=info.imgsz, stride=info.stride, dynamic=info.dynamic)
        self.scales, self.flip = parse_scales(scales), bool(flip)
        if self.scales != (1.0,) and not info.dynamic:
            raise ConfigError(f"scales={','.join(f'{v:g}' for v in self.scales)}: this model takes only "
                              f"{size[1]}x{size[0]} inputs; multi-scale needs one that takes any size (export it "
                              "with --dynamic, or run the .pt)")
        self.backend = backend
        self.info = info
        self.names = info.names
        self.imgsz: tuple[int, int] = size  # type: ignore[assignment]
        self.quality, self.pad = quality, pad
        self.open_px, self.close_px, self.min_area = open_px, close_px, min_area
        self._mean = np.asarray(info.mean_rgb, np.float32).reshape(1, 3, 1, 1)
        self._inv_std = (1.0 / np.asarray(info.std_rgb, np.float32)).reshape(1, 3, 1, 1)
        self._letterbox = Letterboxer(size, rect=info.dynamic, stride=info.stride)
        self._as_is = imgsz is None and info.dynamic and info.stride == 1

    @property
    def device(self) -> torch.device:  # the rtseg.models.base.SemanticStage protocol
        return self.backend.device

    @property
    def uses_torch_cpu(self) -> bool:
        return bool(getattr(self.backend, "computes_with_torch", False)) and self.backend.device.type == "cpu"

    def prepare(self, images: Sequence[NDArray[np.uint8]]) -> SemanticPrepared:
        """Reflect-pad, letterbox and normalise BGR uint8 frames into one float32 RGB batch.

        Frames of one batch must share a size.
        """
        p = self.pad
        if p:
            images = [cv2.copyMakeBorder(im, p, p, p, p, cv2.BORDER_REFLECT_101) for im in images]
        if self._as_is:
            boxed, lbs = list(images), tuple(plan_letterbox(im.shape[:2], im.shape[:2], rect=True, stride=1)
                                             for im in images)
        else:
            boxed, lbs = self._letterbox(images)
        batch = to_input_batch(boxed)
        batch -= self._mean
        batch *= self._inv_std
        return SemanticPrepared(batch, lbs, p)

    def infer(self, prepared: SemanticPrepared) -> torch.Tensor:
        if self.scales == (1.0,) and not self.flip:
            return self.backend.infer(prepared.batch)
        return self._multi_scale(prepared.batch)

    def _multi_scale(self, batch: NDArray[np.float32]) -> torch.Tensor:
        """Log of the class probabilities averaged over scales (and the mirror image), at the output size of
        scale 1.0: argmax and bilinear resizing downstream treat them as logits."""
        x = torch.from_numpy(batch)
        h, w = batch.shape[2:]
        stride = max(1, int(self.info.stride))
        total, out_hw, views = None, None, 0
        for scale in self.scales:
            sh, sw = (max(stride, round(h * scale / stride) * stride), max(stride, round(w * scale / stride) * stride))
            xs = x if (sh, sw) == (h, w) else F.interpolate(x, size=(sh, sw), mode="bilinear", align_corners=False)
            for mirrored in (False, True) if self.flip else (False,):
                view = xs.flip(-1) if mirrored else xs
                logits = self.backend.infer(np.ascontiguousarray(view.numpy())).float()
                if mirrored:
                    logits = logits.flip(-1)
                if out_hw is None:  # the output size scale 1.0 gives (stride-1 models: the input's)
                    out_hw = (round(logits.shape[2] * h / sh), round(logits.shape[3] * w / sw))
                if tuple(logits.shape[2:]) != out_hw:
                    logits = F.interpolate(logits, size=out_hw, mode="bilinear", align_corners=False)
                prob = torch.sigmoid(logits) if logits.shape[1] == 1 else torch.softmax(logits, 1)
                total = prob if total is None else total + prob
                views += 1
        mean = total / views  # type: ignore[operator]
        if mean.shape[1] == 1:  # back to a logit: positive where the mean probability is above one half
            return torch.logit(mean.clamp(1e-7, 1 - 1e-7))
        return torch.log(mean.clamp_min(1e-12))

    def finish(self, logits: torch.Tensor, prepared: SemanticPrepared) -> list[NDArray[np.uint8]]:
        """One (H, W) uint8 class-id map per frame, at the frame's own resolution (padding removed)."""
        if logits.ndim != 4 or logits.shape[0] != len(prepared.letterboxes):
            raise ValueError(f"logits: expected shape ({len(prepared.letterboxes)}, C, h, w), "
                             f"got {tuple(logits.shape)}")
        out = []
        for b, lb in enumerate(prepared.letterboxes):
            if self.quality == "fast":
                labels = _labels_fast(logits[b], lb)
            else:
                labels = _labels_high(logits[b], lb)
            p = prepared.pad
            if p:
                labels = np.ascontiguousarray(labels[p : labels.shape[0] - p, p : labels.shape[1] - p])
            if self.open_px or self.close_px or self.min_area:
                labels = clean_labels(labels, open_px=self.open_px, close_px=self.close_px,
                                      min_area=self.min_area)
            out.append(labels)
        return out

    def __call__(self, images: Sequence[NDArray[np.uint8]]) -> list[NDArray[np.uint8]]:
        """Run the whole stage on a list of frames (convenience for tests and scripts)."""
        prepared = self.prepare(images)
        return self.finish(self.infer(prepared), prepared)

    def timed(self, images: Sequence[NDArray[np.uint8]]) -> tuple[list[NDArray[np.uint8]], dict[str, int]]:
        """Like ``__call__``, also returning ``{"preprocess_ns", "infer_ns", "postprocess_ns"}``."""
        t0 = time.perf_counter_ns()
        prepared = self.prepare(images)
        t1 = time.perf_counter_ns()
        logits = self.infer(prepared)
        t2 = time.perf_counter_ns()
        labels = self.finish(logits, prepared)
        t3 = time.perf_counter_ns()
        return labels, {"preprocess_ns": t1 - t0, "infer_ns": t2 - t1, "postprocess_ns": t3 - t2}


def _argmax(logits: torch.Tensor) -> torch.Tensor:
    """(C, h, w) -> (h, w) class ids; one channel is a binary model (class 1 where the logit is positive)."""
    if logits.shape[0] == 1:
        return (logits[0] > 0).to(torch.uint8)
    if logits.device.type == "cpu":  # measured: numpy's argmax over the class axis is ~3x faster than torch's
        return torch.from_numpy(np.argmax(logits.detach().numpy(), 0).astype(np.uint8))
    return logits.argmax(0).to(torch.uint8)


def _labels_fast(logits: torch.Tensor, lb: Letterbox) -> NDArray[np.uint8]:
    """Argmax at model resolution, letterbox padding cropped, nearest-neighbour resize to the frame."""
    labels = _argmax(logits).cpu().numpy()
    ih, iw = lb.input_hw
    if labels.shape != (ih, iw):  # YOLO26-sem: logits at 1/8 of the input; bring the padding onto whole pixels
        labels = cv2.resize(labels, (iw, ih), interpolation=cv2.INTER_NEAREST)
    rh, rw = lb.resized_hw
    labels = labels[lb.top : lb.top + rh, lb.left : lb.left + rw]
    h, w = lb.image_hw
    if (rh, rw) != (h, w):
        labels = cv2.resize(labels, (w, h), interpolation=cv2.INTER_NEAREST)
    return np.ascontiguousarray(labels)


def _labels_high(logits: torch.Tensor, lb: Letterbox) -> NDArray[np.uint8]:
    """Logits of the letterboxed content upsampled bilinearly to the frame, then argmax.

    Classes are upsampled in chunks with a running maximum so memory stays bounded for many classes at 4K;
    ties resolve to the lower class id, as ``argmax`` does.
    """
    logits = logits.float()
    ih, iw = lb.input_hw
    if tuple(logits.shape[1:]) != (ih, iw):  # as Ultralytics: to input size first, so the crop is exact
        logits = F.interpolate(logits[None], size=(ih, iw), mode="bilinear", align_corners=False)[0]
    rh, rw = lb.resized_hw
    logits = logits[:, lb.top : lb.top + rh, lb.left : lb.left + rw]
    h, w = lb.image_hw
    if (rh, rw) == (h, w):
        return _argmax(logits).cpu().numpy()
    if logits.shape[0] == 1:
        up = F.interpolate(logits[None], size=(h, w), mode="bilinear", align_corners=False)[0]
        return _argmax(up).cpu().numpy()
    chunk = max(1, _HIGH_CHUNK_ELEMENTS // (h * w))
    best_val = best_idx = None
    for c0 in range(0, logits.shape[0], chunk):
        up = F.interpolate(logits[None, c0 : c0 + chunk], size=(h, w), mode="bilinear", align_corners=False)[0]
        val, idx = up.max(0)
        if best_val is None:
            best_val, best_idx = val, idx
        else:
            better = val > best_val
            best_val = torch.where(better, val, best_val)
            best_idx = torch.where(better, idx + c0, best_idx)
    return best_idx.to(torch.uint8).cpu().numpy()  # type: ignore[union-attr]
