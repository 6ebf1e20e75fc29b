"""YOLO instance segmentation (YOLOv8 / YOLO11 with NMS, YOLO26 with or without): frames in, FrameResults out."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray

from rtseg.backends.base import HOST, Backend
from rtseg.errors import ConfigError
from rtseg.postprocess.masks import box_local_masks
from rtseg.postprocess.morphology import clean_mask
from rtseg.postprocess.nms import boxes_to_frame, select_end2end, select_nms
from rtseg.preprocess.letterbox import Letterbox, Letterboxer, resolve_imgsz, to_input_batch
from rtseg.types import FrameResult, InstanceMasks

if TYPE_CHECKING:
    import torch


def _host(x: torch.Tensor | np.ndarray) -> np.ndarray:
    """A tensor's values as a NumPy array (NumPy arrays as they are): ONNX Runtime's outputs never go
    through PyTorch."""
    return x if isinstance(x, np.ndarray) else x.cpu().numpy()


@dataclass(frozen=True)
class Prepared:
    """A network-ready batch and where each frame sits in it.

    On the device frame path (:mod:`rtseg.preprocess.device`) ``batch`` is a tensor on the model's device and
    ``frames`` holds each uploaded (H, W, 3) BGR uint8 frame, kept there for the overlay.
    """

    batch: NDArray[np.float32] | torch.Tensor
    letterboxes: tuple[Letterbox, ...]
    frames: tuple[torch.Tensor, ...] | None = None

    @classmethod
    def concat(cls, preps: Sequence[Prepared]) -> Prepared:
        """One batch of several frames' prepared inputs (of one input shape)."""
        parts = [p.batch for p in preps]
        if isinstance(parts[0], np.ndarray):
            batch = np.concatenate(parts)
        else:
            import torch

            batch = torch.cat(parts)  # type: ignore[arg-type]
        frames = None if preps[0].frames is None else tuple(f for p in preps for f in p.frames or ())
        return cls(batch, tuple(lb for p in preps for lb in p.letterboxes), frames)


class YoloSegModel:
    """Pre-processing, backend call and post-processing for a YOLO-seg model.

    Args:
        backend: a loaded backend.
        imgsz: inference size (height, width) or one int for both; None uses the model's own size.
        conf: minimum score of a kept detection.
        iou: NMS overlap above which the weaker of two same-class boxes is dropped (ignored when the backend
            runs YOLO26's one-to-one head, ``backend.info.end2end``: its outputs are final). Which head runs is
            chosen when the backend is loaded (``nms`` of :func:`rtseg.backends.registry.load_backend`).
        classes: keep only these class ids; None keeps all.
        max_det: at most this many detections per frame.
        open_px, close_px, min_area: morphological clean-up of each instance mask (inside its box); see
            :func:`rtseg.postprocess.morphology.clean_mask`. Instances whose mask vanishes are dropped.
        frames_on_device: upload each frame once, letterbox it and keep its masks on the backend's device
            (:mod:`rtseg.preprocess.device`). None: when the backend runs on CUDA.
    """

    def __init__(self, backend: Backend, *, imgsz: int | Sequence[int] | None = None, conf: float = 0.25,
                 iou: float = 0.7, classes: Sequence[int] | None = None, max_det: int = 300, open_px: int = 0,
                 close_px: int = 0, min_area: int = 0, frames_on_device: bool | None = None) -> None:
        info = backend.info
        if not 0.0 <= conf <= 1.0:
            raise ConfigError(f"conf={conf}: expected a number in [0, 1]")
        if not 0.0 <= iou <= 1.0:
            raise ConfigError(f"iou={iou}: expected a number in [0, 1]")
        size = resolve_imgsz(imgsz, model_imgsz=info.imgsz, stride=info.stride, dynamic=info.dynamic)
        bad = [c for c in classes or () if not 0 <= c < len(info.names)]
        if bad:
            raise ConfigError(f"classes={bad}: this model has class ids 0..{len(info.names) - 1}")
        self.backend = backend
        self.info = info
        self.names = info.names
        self.imgsz: tuple[int, int] = size  # type: ignore[assignment]
        self.conf, self.iou, self.max_det = conf, iou, max_det
        self.classes = list(classes) if classes else None
        if min(open_px, close_px, min_area) < 0:
            raise ConfigError("morphology sizes must be >= 0")
        self.morph = {"open_px": open_px, "close_px": close_px, "min_area": min_area}
        self._letterbox = Letterboxer(size, rect=info.dynamic, stride=info.stride)
        device = getattr(backend, "device", HOST)
        self.frames_on_device = device.type == "cuda" if frames_on_device is None else frames_on_device
        self._device = device
        self._uploaders = threading.local()  # one pinned staging buffer per decode thread

    # the rtseg.models.base.InstanceStage protocol: what the pipeline schedules this stage by
    max_batch: int | None = None  # any number of frames per call

    @property
    def workers(self) -> int:
        """How many ``infer`` calls the backend serves at once (``Backend.workers``; 1 when it has none)."""
        return max(1, int(getattr(self.backend, "workers", 1)))

    @property
    def device(self) -> torch.device:
        return self._device

    @property
    def uses_torch_cpu(self) -> bool:
        return bool(getattr(self.backend, "computes_with_torch", False)) and self._device.type == "cpu"

    def prepare(self, images: Sequence[NDArray[np.uint8]]) -> Prepared:
        """Letterbox BGR frames into one float32 batch (frames of one batch must share a size)."""
        if self.frames_on_device:
            return self._prepare_on_device(images)
        boxed, lbs = self._letterbox(images)
        return Prepared(to_input_batch(boxed), lbs)

    def _prepare_on_device(self, images: Sequence[NDArray[np.uint8]]) -> Prepared:
        import torch

        from rtseg.preprocess.device import FrameUploader, letterbox_on_device

        upload = getattr(self._uploaders, "upload", None)
        if upload is None:
            upload = self._uploaders.upload = FrameUploader(torch.device(str(self._device)))
        lbs = self._letterbox.plan(images)
        frames, inputs = [], []
        for image, lb in zip(images, lbs):
            frame = upload(image)
            frames.append(frame)
            inputs.append(letterbox_on_device(frame, lb))
        batch = torch.stack(inputs)
        if self._device.type == "cuda":  # another thread's stream runs the model; the staging buffer is reused
            torch.cuda.current_stream(self._device).synchronize()
        return Prepared(batch, lbs, tuple(frames))

    def infer(self, prepared: Prepared) -> tuple[torch.Tensor | np.ndarray, torch.Tensor | np.ndarray]:
        return self.backend.infer(prepared.batch)

    def infer_frames(self, prepared: Sequence[Prepared]) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Each prepared frame's ``(preds, protos)``, with one backend call per input shape: frames that
        letterbox to different shapes (streams of different sizes) cannot share a tensor; same-size
        cameras, the usual case, make one call."""
        groups: dict[tuple[int, ...], list[int]] = {}
        for i, p in enumerate(prepared):
            groups.setdefault(tuple(p.batch.shape[1:]), []).append(i)
        outputs: list = [None] * len(prepared)
        for members in groups.values():
            if len(members) == 1:
                outputs[members[0]] = self.infer(prepared[members[0]])
                continue
            preds, protos = self.infer(Prepared.concat([prepared[i] for i in members]))
            for j, i in enumerate(members):
                outputs[i] = (preds[j : j + 1], protos[j : j + 1])
        return outputs

    def finish(self, raw: tuple[torch.Tensor, torch.Tensor], prepared: Prepared,
               frame_indices: Sequence[int]) -> list[FrameResult]:
        """Detections, box-local masks and frame-pixel boxes for each frame of the batch."""
        preds, protos = raw
        results = []
        for b, (lb, index) in enumerate(zip(prepared.letterboxes, frame_indices)):
            if self.info.end2end:
                det = select_end2end(preds[b], conf=self.conf, classes=self.classes, max_det=self.max_det)
            else:
                det = select_nms(preds[b], nc=len(self.names), conf=self.conf, iou=self.iou,
                                 classes=self.classes, max_det=self.max_det)
            if not len(det):
                results.append(FrameResult.empty(index, lb.image_hw))
                continue
            boxes = boxes_to_frame(det[:, :4], lb)
            masks, nonempty = box_local_masks(protos[b], det[:, 6:], boxes, lb,
                                              keep_on_device=prepared.frames is not None)
            if any(self.morph.values()):
                crops = tuple(clean_mask(c, **self.morph) if c.size else c for c in masks.crops)
                device_crops = None
                if masks.device_crops is not None:  # only tensors' masks are kept on a device
                    import torch

                    device_crops = tuple(torch.from_numpy(c).to(protos.device) for c in crops)
                masks = InstanceMasks(crops, masks.origins_xy, device_crops)
                nonempty = np.array([c.any() for c in crops], dtype=bool)
            result = FrameResult(index, lb.image_hw, _host(boxes), _host(det[:, 4]),
                                 _host(det[:, 5]).astype(np.int32), masks)
            results.append(result if nonempty.all() else result.select(nonempty))
        return results

    def __call__(self, images: Sequence[NDArray[np.uint8]], frame_indices: Sequence[int] | None = None
                 ) -> list[FrameResult]:
        """Run the whole model stage on a list of frames (convenience for tests and scripts)."""
        t0 = time.perf_counter_ns()
        prepared = self.prepare(images)
        raw = self.infer(prepared)
        results = self.finish(raw, prepared, frame_indices or range(len(images)))
        for r in results:
            r.timings.infer_ns = time.perf_counter_ns() - t0
        return results
