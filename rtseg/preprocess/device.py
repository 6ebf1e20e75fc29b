"""The frame path on the model's device: upload once, letterbox and normalise there, blend masks there.

On a CUDA GPU, pre-processing on the CPU and drawing full-resolution masks on the CPU can cost more than
the model. With this path each decoded frame is uploaded once (through a pinned staging buffer, an
asynchronous copy), letterboxed and normalised on the device, and kept there until the post-processing
stage has blended the instance masks into it (the masks never leave the device for drawing); the
annotated frame then comes back in one download, and only boxes, labels and the HUD are drawn on the CPU.

Every function here is plain PyTorch and runs on any device: on the CPU the tests compare it with the
OpenCV / NumPy path it replaces (``rtseg.preprocess.letterbox``, ``rtseg.overlay.annotator``).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch
from numpy.typing import NDArray

from rtseg.preprocess.letterbox import PAD_VALUE, Letterbox

_COEF_SCALE = 2048  # OpenCV's INTER_RESIZE_COEF_SCALE: 11-bit interpolation weights


class FrameUploader:
    """Copies BGR uint8 frames to ``device``: through a reused pinned buffer on CUDA (an asynchronous copy
    that does not wait for pageable memory), as a zero-copy view on the CPU.

    One uploader per thread. The staging buffer is reused: each upload first waits for the previous copy
    out of it to finish.
    """

    def __init__(self, device: torch.device) -> None:
        self.device = torch.device(device)
        self._staging: torch.Tensor | None = None
        self._copied: torch.cuda.Event | None = None

    def __call__(self, image: NDArray[np.uint8]) -> torch.Tensor:
        host = torch.from_numpy(np.ascontiguousarray(image))
        if self.device.type != "cuda":
            return host.to(self.device)
        if self._copied is not None:
            self._copied.synchronize()
        if self._staging is None or self._staging.shape != host.shape:
            self._staging = torch.empty(host.shape, dtype=torch.uint8, pin_memory=True)
        self._staging.copy_(host)
        out = self._staging.to(self.device, non_blocking=True)
        self._copied = torch.cuda.Event()
        self._copied.record(torch.cuda.current_stream(self.device))
        return out


@lru_cache(maxsize=32)
def _taps(n_in: int, n_out: int, clamp: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """OpenCV's INTER_LINEAR taps along one axis: source indices and 11-bit fixed-point weights.

    As ``cv::resize`` computes them: the source position in float32, the weights rounded separately. Along x
    a position past either edge is pinned to the edge pixel with weight 1; along y it is not (the weights
    stay, the row indices are clamped), which is how OpenCV treats rows.
    """
    scale = 1.0 / (n_out / n_in)
    f = ((np.arange(n_out, dtype=np.float64) + 0.5) * scale - 0.5).astype(np.float32)
    s = np.floor(f).astype(np.int64)
    f = (f - s.astype(np.float32)).astype(np.float32)
    if clamp:
        low, high = s < 0, s >= n_in - 1
        f[low | high] = 0
        s[low], s[high] = 0, n_in - 1
    w0 = np.rint((np.float32(1) - f) * np.float32(_COEF_SCALE)).astype(np.int32)
    w1 = np.rint(f * np.float32(_COEF_SCALE)).astype(np.int32)
    return np.clip(s, 0, n_in - 1), np.clip(s + 1, 0, n_in - 1), w0, w1


@lru_cache(maxsize=32)
def _taps_on(n_in: int, n_out: int, clamp: bool, device: torch.device) -> tuple[torch.Tensor, ...]:
    """:func:`_taps` as tensors on ``device``, copied there once per geometry, not once per frame."""
    return tuple(torch.from_numpy(v).to(device) for v in _taps(n_in, n_out, clamp))


def resize_like_opencv(image: torch.Tensor, size_hw: tuple[int, int]) -> torch.Tensor:
    """(H, W, C) uint8 -> (h, w, C) uint8, bit for bit what ``cv2.resize(..., INTER_LINEAR)`` gives.

    OpenCV interpolates uint8 in fixed point (11-bit weights, a horizontal pass into int32 rows, a vertical
    pass with its own rounding) and switches to 2x2 averaging for an exact halving; this does the same in
    integer tensor arithmetic, on any device (tested against OpenCV on many sizes).
    """
    h_in, w_in = int(image.shape[0]), int(image.shape[1])
    h, w = size_hw
    x = image.to(torch.int32)
    if h_in == 2 * h and w_in == 2 * w:  # OpenCV's INTER_AREA shortcut for an exact halving
        return ((x[0::2, 0::2] + x[0::2, 1::2] + x[1::2, 0::2] + x[1::2, 1::2] + 2) >> 2).to(torch.uint8)
    xs0, xs1, a0, a1 = _taps_on(w_in, w, True, image.device)
    ys0, ys1, b0, b1 = _taps_on(h_in, h, False, image.device)
    rows = x[:, xs0] * a0[None, :, None] + x[:, xs1] * a1[None, :, None]  # (H, w, C): values scaled by 2048
    out = ((b0[:, None, None] * (rows[ys0] >> 4)) >> 16) + ((b1[:, None, None] * (rows[ys1] >> 4)) >> 16)
    return ((out + 2) >> 2).clamp_(0, 255).to(torch.uint8)


def letterbox_on_device(frame: torch.Tensor, lb: Letterbox) -> torch.Tensor:
    """(H, W, 3) BGR uint8 -> (3, h, w) RGB float32 in [0, 1], resized and padded as planned by ``lb``: the
    same values as :func:`rtseg.preprocess.letterbox.apply_letterbox` and
    :func:`rtseg.preprocess.letterbox.to_input_batch`."""
    if tuple(frame.shape[:2]) != lb.resized_hw:
        frame = resize_like_opencv(frame, lb.resized_hw)
    h, w = lb.resized_hw
    out = torch.full((3, *lb.input_hw), float(PAD_VALUE), dtype=torch.float32, device=frame.device)
    out[:, lb.top : lb.top + h, lb.left : lb.left + w] = frame.permute(2, 0, 1).float()
    return out.flip(0).mul_(1 / 255)  # as rtseg.preprocess.letterbox.to_input_batch: the same float32 values
