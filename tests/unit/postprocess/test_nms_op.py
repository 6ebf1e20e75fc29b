"""rtseg's NMS is torchvision's compiled kernel, reached without importing torchvision's Python package."""

from __future__ import annotations

import subprocess
import sys

import torch

from rtseg.postprocess.nms import nms_op


def test_the_kernel_keeps_what_torchvision_keeps() -> None:
    import torchvision

    gen = torch.Generator().manual_seed(0)
    for n in (1, 7, 300, 3000):
        xy = torch.rand(n, 2, generator=gen) * 600
        boxes = torch.cat((xy, xy + 5 + torch.rand(n, 2, generator=gen) * 80), 1)
        scores = torch.rand(n, generator=gen)
        for iou in (0.3, 0.7):
            assert torch.equal(nms_op()(boxes, scores, iou), torchvision.ops.nms(boxes, scores, iou))


def test_a_run_to_the_first_detections_imports_no_torchvision() -> None:
    code = ("import sys, torch\n"
            "from rtseg.postprocess.nms import select_nms\n"
            "pred = torch.zeros(4 + 2 + 32, 50)\n"
            "pred[:4] = torch.tensor([50.0, 50.0, 20.0, 20.0])[:, None]\n"
            "pred[4] = torch.linspace(0.3, 0.9, 50)\n"
            "print(len(select_nms(pred, nc=2, conf=0.25, iou=0.7, classes=None)), 'torchvision' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["1", "False"]
