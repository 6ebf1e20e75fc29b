"""MediaPipe Selfie Segmentation (Google, Apache-2.0) rebuilt in PyTorch: a person mask for webcam frames.

Google's two selfie models (``selfie_segmentation.tflite``, 256x256, and ``selfie_segmentation_landscape.tflite``,
144x256, from the npm package ``@mediapipe/selfie_segmentation``) share one small network: a MobileNetV3-like
encoder (hard-swish, depthwise convolutions, squeeze-excite), an LR-ASPP-like head and a three-stage decoder
with gated skip connections, ending in a 2x2 transposed convolution (MediaPipe's custom
``Convolution2DTransposeBias`` op). ``scripts/convert_selfie.py`` reads the ``.tflite`` files and copies their
weights into :class:`SelfieSegmentation` layer by layer, in the order :meth:`SelfieSegmentation.tflite_layers`
lists them; ``rtseg/assets/MODEL_CARD.md`` has the licence, the source and the parity with MediaPipe's runtime.

Input contract, as MediaPipe's own graph: RGB in [0, 1], the whole frame stretched (not letterboxed) to the
network size by MediaPipe's ``ImageToTensorCalculator``, an OpenCV ``warpAffine`` that maps pixel corners
(output pixel ``x`` samples the input at ``x * w_in / w_out``, bilinearly, zeros outside). The module does
that stretch itself (:func:`stretch`), so it takes a batch of any size and returns one channel of person
logits at the network's size (``sigmoid`` of it is MediaPipe's confidence mask); the semantic stage reads one
channel as a binary model (person where the logit is positive) and resizes it to the frame.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from rtseg.errors import ModelError

NAMES = ("background", "person")
SIZES = {"mediapipe_selfie": (256, 256), "mediapipe_selfie_landscape": (144, 256)}  # arch -> network (h, w)
# Encoder blocks: (in, expanded, out, kernel, stride, hard-swish, squeeze-excite width or 0, residual).
_BLOCKS = ((16, 16, 16, 3, 2, False, 8, False), (16, 72, 24, 3, 2, False, 0, False),
           (24, 88, 24, 3, 1, False, 0, True), (24, 96, 32, 5, 2, True, 24, False),
           (32, 128, 32, 5, 1, True, 32, True), (32, 128, 32, 5, 1, True, 32, True),
           (32, 96, 32, 5, 1, True, 24, True), (32, 96, 32, 5, 1, True, 24, True))


def stretch(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Resize a (B, C, H, W) batch to ``size`` as MediaPipe's CPU pre-processing does (see the module docstring).

    Not ``F.interpolate``: that samples at pixel centres (``(x + 0.5) * scale - 0.5``), which on a 480x360 frame
    squeezed to 256x256 shifts the samples by up to a pixel and changes 1 to 20 % of the selfie model's mask.
    """
    (h, w), (oh, ow) = x.shape[2:], size
    ys = torch.arange(oh, device=x.device, dtype=x.dtype) * (h / oh)
    xs = torch.arange(ow, device=x.device, dtype=x.dtype) * (w / ow)
    gy, gx = (2 * ys + 1) / h - 1, (2 * xs + 1) / w - 1  # grid_sample's coordinates (align_corners=False)
    grid = torch.stack([gx[None, :].expand(oh, ow), gy[:, None].expand(oh, ow)], -1)
    return F.grid_sample(x, grid[None].expand(x.shape[0], oh, ow, 2), mode="bilinear", padding_mode="zeros",
                         align_corners=False)


class SameConv2d(nn.Conv2d):
    """A convolution padded as TensorFlow's ``padding="SAME"``: for stride 2 the extra pixel goes bottom/right."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pads = []
        for size, k, s in zip(x.shape[:1:-1], self.kernel_size[::-1], self.stride[::-1]):  # (w, h) order
            total = max((math.ceil(size / s) - 1) * s + k - size, 0)
            pads += [total // 2, total - total // 2]
        if any(pads):
            x = F.pad(x, pads)
        return F.conv2d(x, self.weight, self.bias, self.stride, 0, self.dilation, self.groups)


def _conv1(cin: int, cout: int) -> SameConv2d:
    return SameConv2d(cin, cout, 1)


class SqueezeExcite(nn.Module):
    """Global average, 1x1 conv, ReLU, 1x1 conv, sigmoid: a per-channel gate in (0, 1)."""

    def __init__(self, channels: int, mid: int) -> None:
        super().__init__()
        self.reduce, self.expand = _conv1(channels, mid), _conv1(mid, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.expand(F.relu(self.reduce(x.mean((2, 3), keepdim=True)))))


class InvertedResidual(nn.Module):
    """1x1 expand, depthwise k x k, optional squeeze-excite, 1x1 project, optional residual (MobileNetV3)."""

    def __init__(self, cin: int, cexp: int, cout: int, k: int, stride: int, hswish: bool, se: int,
                 residual: bool) -> None:
        super().__init__()
        self.expand = _conv1(cin, cexp)
        self.depthwise = SameConv2d(cexp, cexp, k, stride, groups=cexp)
        self.se = SqueezeExcite(cexp, se) if se else None
        self.project = _conv1(cexp, cout)
        self.act = nn.Hardswish() if hswish else nn.ReLU()
        self.residual = residual

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.act(self.depthwise(self.act(self.expand(x))))
        if self.se is not None:
            y = y * self.se(y)
        y = self.project(y)
        return x + y if self.residual else y


class DecoderStage(nn.Module):
    """Upsample 2x, 1x1 conv to the skip's width, gate the skip by a squeeze-excite of their sum, refine."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.up = _conv1(cin, cout)
        self.gate = SqueezeExcite(cout, cout)
        self.conv = _conv1(cout, cout)
        self.depthwise = SameConv2d(cout, cout, 3, groups=cout)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(x, size=skip.shape[2:], mode="bilinear", align_corners=False)  # TF half-pixel centres
        x = self.up(x)
        y = F.relu(self.conv(skip * self.gate(skip + x) + x))
        return y + F.relu(self.depthwise(y))


class SelfieSegmentation(nn.Module):
    """MediaPipe's selfie segmenter: (B, 3, H, W) RGB in [0, 1] -> (B, 1, h, w) person logits at ``input_hw``.

    Args:
        input_hw: the network size, (256, 256) or (144, 256); any other input is first resized to it
            (bilinearly, the aspect ratio not kept, :func:`stretch`), as MediaPipe does.

    Example:
        >>> import torch
        >>> from rtseg.models.selfie import SelfieSegmentation
        >>> SelfieSegmentation((144, 256))(torch.rand(1, 3, 480, 640)).shape
        torch.Size([1, 1, 144, 256])
    """

    def __init__(self, input_hw: tuple[int, int] = (256, 256)) -> None:
        super().__init__()
        self.input_hw = (int(input_hw[0]), int(input_hw[1]))
        if any(s % 16 for s in self.input_hw):
            raise ModelError(f"input_hw={input_hw}: expected multiples of 16")
        self.stem = SameConv2d(3, 16, 3, 2)
        self.blocks = nn.ModuleList(InvertedResidual(*b) for b in _BLOCKS)
        self.head = _conv1(32, 128)
        self.head_gate = _conv1(32, 128)
        self.decoder = nn.ModuleList([DecoderStage(128, 24), DecoderStage(24, 16), DecoderStage(16, 16)])
        self.segment = nn.ConvTranspose2d(16, 1, 2, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if tuple(x.shape[2:]) != self.input_hw:
            x = stretch(x, self.input_hw)
        skips = [F.hardswish(self.stem(x))]
        x = skips[0]
        for i, block in enumerate(self.blocks):
            x = block(x)
            if i in (0, 2):  # 1/4 and 1/8 resolution
                skips.append(x)
        x = F.relu(self.head(x)) * torch.sigmoid(self.head_gate(x.mean((2, 3), keepdim=True)))
        for stage, skip in zip(self.decoder, reversed(skips)):
            x = stage(x, skip)
        return self.segment(x)

    def tflite_layers(self) -> list[tuple[str, nn.Module]]:
        """Every weighted layer, in the order the ``.tflite`` graph runs them: ``("conv" | "depthwise" |
        "transpose", layer)``; what ``scripts/convert_selfie.py`` copies the weights into."""
        layers: list[tuple[str, nn.Module]] = [("conv", self.stem)]
        for b in self.blocks:
            layers += [("conv", b.expand), ("depthwise", b.depthwise)]
            if b.se is not None:
                layers += [("conv", b.se.reduce), ("conv", b.se.expand)]
            layers.append(("conv", b.project))
        layers += [("conv", self.head), ("conv", self.head_gate)]
        for d in self.decoder:
            layers += [("conv", d.up), ("conv", d.gate.reduce), ("conv", d.gate.expand), ("conv", d.conv),
                       ("depthwise", d.depthwise)]
        return [*layers, ("transpose", self.segment)]


def build_selfie(arch: str, num_classes: int) -> SelfieSegmentation:
    """The untrained network of ``arch`` (a key of :data:`SIZES`); it has exactly two classes."""
    if num_classes != len(NAMES):
        raise ModelError(f"{arch}: num_classes={num_classes}, but the selfie model has 2 (background, person)")
    return SelfieSegmentation(SIZES[arch])
