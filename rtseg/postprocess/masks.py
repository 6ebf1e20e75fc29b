"""Instance masks from YOLO prototypes, computed only inside each kept box and at frame resolution.

Ultralytics builds ``N`` full-frame masks (``process_mask_native``): combine prototypes, upsample each
mask to the frame, then zero everything outside the box. Resampling is linear and separable, so the same
values inside a box are ``A @ (coef @ P) @ B.T`` where ``A`` and ``B`` are the row and column
interpolation matrices restricted to the box's rows and columns, and ``P`` the prototypes restricted to
the band those rows and columns read. The result matches Ultralytics pixel for pixel (up to float
rounding at the 0 threshold) while costing box area, not frame area, per instance.

Prototypes come as PyTorch tensors (PyTorch and TensorRT backends, on their device) or NumPy arrays (ONNX
Runtime on the CPU): the NumPy path does the same products in float32 without importing PyTorch.
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import TYPE_CHECKING

import numpy as np

from rtseg.preprocess.letterbox import Letterbox
from rtseg.types import InstanceMasks

if TYPE_CHECKING:
    import torch


def _bilinear_matrix(n_in: int, n_out: int) -> np.ndarray:
    """(n_out, n_in) matrix of ``F.interpolate(mode='bilinear', align_corners=False)`` along one axis."""
    scale = n_in / n_out
    src = np.maximum((np.arange(n_out) + 0.5) * scale - 0.5, 0.0)
    i0 = np.minimum(np.floor(src).astype(np.int64), n_in - 1)
    i1 = np.minimum(i0 + 1, n_in - 1)
    w1 = src - i0
    m = np.zeros((n_out, n_in), dtype=np.float64)
    rows = np.arange(n_out)
    np.add.at(m, (rows, i0), 1.0 - w1)
    np.add.at(m, (rows, i1), w1)
    return m


def _axis_matrix(proto_n: int, frame_n: int, upsample: int, gain: float) -> np.ndarray:
    """Row (or column) map from prototype cells to frame pixels, as Ultralytics composes it.

    Prototypes are first upsampled by ``upsample`` so that the letterbox padding falls on whole cells,
    the padding is cropped, and the content is resized to the frame.
    """
    n_up = proto_n * upsample
    m = _bilinear_matrix(proto_n, n_up) if upsample > 1 else np.eye(proto_n)
    content = max(round(frame_n * gain), 1)
    start = round((n_up - content) / 2 - 0.1)
    return _bilinear_matrix(content, frame_n) @ m[start : start + content]


@lru_cache(maxsize=16)
def _frame_maps(image_hw: tuple[int, int], proto_hw: tuple[int, int], input_hw: tuple[int, int]
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Row and column maps (float32) for one frame geometry, with each frame row's band of prototype rows."""
    h, w = image_hw
    mh, mw = proto_hw
    stride_y, stride_x = input_hw[0] / mh, input_hw[1] / mw
    # Ultralytics' choice of 1x, 2x or 4x prototype upsampling (process_mask_native) for a 4-px proto stride
    gain = min(stride_y * mh / h, stride_x * mw / w)
    pad = (int(stride_y * mh) - max(round(h * gain), 1)) | (int(stride_x * mw) - max(round(w * gain), 1))
    f = 4 // math.gcd(4, pad | pad // 2)
    g = min(mh * f / h, mw * f / w)
    rows = _axis_matrix(mh, h, f, g)
    cols = _axis_matrix(mw, w, f, g)
    bands = []
    for m in (rows, cols):
        nz = m != 0
        first = nz.argmax(1)
        last = m.shape[1] - nz[:, ::-1].argmax(1)
        bands.append(np.stack([first, last], 1))
    return rows.astype(np.float32), cols.astype(np.float32), bands[0], bands[1]


@lru_cache(maxsize=16)
def _maps_on(image_hw: tuple[int, int], proto_hw: tuple[int, int], input_hw: tuple[int, int], device: str
             ) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`_frame_maps`' row and column maps as tensors on ``device``, copied there once per geometry."""
    import torch

    rows, cols, _, _ = _frame_maps(image_hw, proto_hw, input_hw)
    return torch.from_numpy(rows).to(device), torch.from_numpy(cols).to(device)


def box_local_masks(protos: torch.Tensor | np.ndarray, coefs: torch.Tensor | np.ndarray,
                    boxes_xyxy: torch.Tensor | np.ndarray,
                    lb: Letterbox, *, keep_on_device: bool = False) -> tuple[InstanceMasks, np.ndarray]:
    """Binary masks of the kept instances, cropped to their boxes, at frame resolution.

    Args:
        protos: (nm, mh, mw) prototypes of one image.
        coefs: (N, nm) mask coefficients of the kept detections.
        boxes_xyxy: (N, 4) boxes in frame pixels.
        lb: the letterbox the frame went through.
        keep_on_device: also keep each crop as a tensor on the prototypes' device (``device_crops``).

    Returns:
        The masks, and a (N,) bool array that is False where a mask came out empty (Ultralytics drops
        such detections).
    """
    n = len(coefs)
    if n == 0:
        return InstanceMasks.empty(), np.zeros(0, dtype=bool)
    h, w = lb.image_hw
    rows, cols, row_band, col_band = _frame_maps(lb.image_hw, tuple(protos.shape[1:]), lb.input_hw)
    # Same pixel rule as Ultralytics' crop_mask: keep columns c with x1 <= c < x2.
    if isinstance(protos, np.ndarray):
        bounds = np.ceil(np.asarray(boxes_xyxy)).clip(0, None).astype(np.int64)
        return _masks_np(protos.astype(np.float32, copy=False), np.asarray(coefs, dtype=np.float32),
                         _clip_bounds(bounds, w, h), rows, cols, row_band, col_band)
    import torch

    rows, cols = _maps_on(lb.image_hw, tuple(protos.shape[1:]), lb.input_hw, str(protos.device))
    bounds = torch.ceil(boxes_xyxy).clamp_min(0).to(torch.int64).cpu().numpy()
    bounds[:, [0, 2]] = bounds[:, [0, 2]].clip(0, w)
    bounds[:, [1, 3]] = bounds[:, [1, 3]].clip(0, h)
    protos = protos.float()
    coefs = coefs.float()
    crops, origins, nonempty, on_device = [], [], np.zeros(n, dtype=bool), []
    for i, (x0, y0, x1, y1) in enumerate(bounds):
        if x1 <= x0 or y1 <= y0:
            crops.append(np.zeros((0, 0), dtype=bool))
            if keep_on_device:
                on_device.append(torch.zeros((0, 0), dtype=torch.bool, device=protos.device))
            origins.append((x0, y0))
            continue
        r0, r1 = int(row_band[y0:y1, 0].min()), int(row_band[y0:y1, 1].max())
        c0, c1 = int(col_band[x0:x1, 0].min()), int(col_band[x0:x1, 1].max())
        window = torch.einsum("c,chw->hw", coefs[i], protos[:, r0:r1, c0:c1])
        logits = rows[y0:y1, r0:r1] @ window @ cols[x0:x1, c0:c1].T
        crop_t = logits > 0
        crop = crop_t.cpu().numpy()
        nonempty[i] = crop.any()
        crops.append(crop)
        if keep_on_device:
            on_device.append(crop_t)
        origins.append((x0, y0))
    device_crops = tuple(on_device) if keep_on_device else None
    return InstanceMasks(tuple(crops), np.asarray(origins, dtype=np.int32), device_crops), nonempty


def _clip_bounds(bounds: np.ndarray, w: int, h: int) -> np.ndarray:
    bounds[:, [0, 2]] = bounds[:, [0, 2]].clip(0, w)
    bounds[:, [1, 3]] = bounds[:, [1, 3]].clip(0, h)
    return bounds


def _masks_np(protos: np.ndarray, coefs: np.ndarray, bounds: np.ndarray, rows: np.ndarray, cols: np.ndarray,
              row_band: np.ndarray, col_band: np.ndarray) -> tuple[InstanceMasks, np.ndarray]:
    """:func:`box_local_masks` on NumPy prototypes: the same products, float32."""
    n = len(coefs)
    crops, origins, nonempty = [], [], np.zeros(n, dtype=bool)
    for i, (x0, y0, x1, y1) in enumerate(bounds):
        origins.append((x0, y0))
        if x1 <= x0 or y1 <= y0:
            crops.append(np.zeros((0, 0), dtype=bool))
            continue
        r0, r1 = int(row_band[y0:y1, 0].min()), int(row_band[y0:y1, 1].max())
        c0, c1 = int(col_band[x0:x1, 0].min()), int(col_band[x0:x1, 1].max())
        window = np.tensordot(coefs[i], protos[:, r0:r1, c0:c1], axes=1)
        crop = (rows[y0:y1, r0:r1] @ window @ cols[x0:x1, c0:c1].T) > 0
        nonempty[i] = crop.any()
        crops.append(crop)
    return InstanceMasks(tuple(crops), np.asarray(origins, dtype=np.int32)), nonempty
