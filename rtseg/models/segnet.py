"""SegNet (Badrinarayanan, Kendall and Cipolla, TPAMI 2017): an encoder-decoder whose decoder upsamples with the
encoder's own max-pooling indices.

Each encoder stage ends in a 2x2 max pooling that remembers where each maximum was
(``nn.MaxPool2d(return_indices=True)``); the mirrored decoder stage puts each value back at that position
(``nn.MaxUnpool2d``, zeros elsewhere) and convolutions fill in the rest. Boundaries come back where the encoder
saw them, with no learned upsampling and no skip connection carrying whole feature maps (U-Net's cost).

rtseg's SegNet keeps the paper's layout (5 stages of 3x3 convolution + BatchNorm + ReLU, 2-2-3-3-3 deep) with
narrower layers than VGG-16's (32..256 channels instead of 64..512: 6.2 M parameters instead of 29 M), so that it
trains and runs on a CPU; it is trained from scratch (no ImageNet encoder). Inputs are padded to a multiple of 32.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

WIDTHS = (32, 64, 128, 256, 256)
DEPTHS = (2, 2, 3, 3, 3)


def _convs(c_in: int, c_out: int, depth: int) -> nn.Sequential:
    layers: list[nn.Module] = []
    for k in range(depth):
        layers += [nn.Conv2d(c_in if k == 0 else c_out, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out),
                   nn.ReLU(inplace=True)]
    return nn.Sequential(*layers)


class SegNet(nn.Module):
    """SegNet for ``num_classes`` classes: (B, 3, H, W) normalised RGB -> (B, num_classes, H, W) logits,
    H and W multiples of 32.

    Example:
        >>> net = SegNet(3).eval()
        >>> net(torch.zeros(1, 3, 64, 96)).shape
        torch.Size([1, 3, 64, 96])
    """

    def __init__(self, num_classes: int, widths: Sequence[int] = WIDTHS, depths: Sequence[int] = DEPTHS) -> None:
        super().__init__()
        chans = [3, *widths]
        self.encoders = nn.ModuleList(_convs(chans[i], chans[i + 1], d) for i, d in enumerate(depths))
        self.pool = nn.MaxPool2d(2, 2, return_indices=True)
        self.unpool = nn.MaxUnpool2d(2, 2)
        # decoder stage i mirrors encoder stage i: from its output width back to its input width (the last one
        # to the first width; the classifier follows)
        self.decoders = nn.ModuleList(
            _convs(chans[i + 1], chans[i] if i > 0 else chans[1], d) for i, d in enumerate(depths))
        self.classifier = nn.Conv2d(chans[1], num_classes, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        indices = []
        for encode in self.encoders:
            x, idx = self.pool(encode(x))
            indices.append(idx)
        exporting = torch.onnx.is_in_onnx_export()
        for i in reversed(range(len(self.decoders))):
            # inputs are multiples of 32, so each unpooling exactly doubles the size
            x = unpool_scatter(x, indices[i]) if exporting else self.unpool(x, indices[i])
            x = self.decoders[i](x)
        return self.classifier(x)


def unpool_scatter(x: torch.Tensor, indices: torch.Tensor) -> torch.Tensor:
    """``nn.MaxUnpool2d(2, 2)(x, indices)`` as a scatter: the same values at the same places. The ONNX export
    uses it: PyTorch's unpooling checks its output size with Python conditions on traced tensors, which the
    exporter refuses; a scatter exports as ``ScatterElements``."""
    b, c, h, w = x.shape
    out = x.new_zeros((b, c, h * 2 * w * 2))
    return out.scatter(2, indices.flatten(2), x.flatten(2)).view(b, c, h * 2, w * 2)
