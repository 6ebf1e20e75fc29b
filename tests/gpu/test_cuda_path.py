"""PyTorch on a CUDA GPU with the device frame path, against the CPU: same detections, mask IoU >= 0.95.

Needs a CUDA GPU (skipped otherwise); tests/unit/preprocess/test_device.py runs the same code on the CPU.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

pytestmark = pytest.mark.gpu
if not torch.cuda.is_available():
    pytest.skip("needs a CUDA GPU", allow_module_level=True)

from rtseg.backends.registry import load_backend  # noqa: E402
from rtseg.models.yolo_seg import YoloSegModel  # noqa: E402
from rtseg.overlay.annotator import Annotator  # noqa: E402
from rtseg.pipeline.core import Pipeline  # noqa: E402
from rtseg.pipeline.loading import load_runtime  # noqa: E402
from rtseg.preprocess.device import FrameUploader, letterbox_on_device  # noqa: E402
from rtseg.preprocess.letterbox import Letterboxer, to_input_batch  # noqa: E402
from tests.parity import Comparison, parity_images  # noqa: E402
from tests.support import DATA, YOLO11_WEIGHTS, YOLO26_WEIGHTS  # noqa: E402

IMAGES = parity_images(DATA, n=12)


def test_uploads_in_one_batch_do_not_overwrite_each_other() -> None:
    """The pinned staging buffer is reused: each frame of a batch must arrive intact."""
    upload = FrameUploader(torch.device("cuda"))
    frames = [np.full((480, 640, 3), v, np.uint8) for v in (10, 200, 77)]
    on_gpu = [upload(f) for f in frames]
    torch.cuda.synchronize()
    for f, g in zip(frames, on_gpu):
        np.testing.assert_array_equal(g.cpu().numpy(), f)


def test_letterbox_on_gpu_matches_opencv() -> None:
    letterbox = Letterboxer((640, 640), rect=True, stride=32)
    for image in IMAGES[:4]:
        boxed, (lb,) = letterbox([image])
        ours = letterbox_on_device(FrameUploader(torch.device("cuda"))(image), lb).cpu().numpy()
        np.testing.assert_array_equal(ours, to_input_batch(boxed)[0])  # OpenCV's fixed point, bit for bit


# YOLO11's coco128 weights find few instances on Ultralytics' photos (the images when ../shared is absent) at
# 0.25: a low threshold gives enough; YOLO26 (NMS-free) finds plenty at 0.25, and below it near-twin boxes
# make one-to-one matching ambiguous
@pytest.mark.parametrize(("weights", "half", "conf"), [(YOLO11_WEIGHTS, False, 0.05), (YOLO11_WEIGHTS, True, 0.05),
                                                       (YOLO26_WEIGHTS, False, 0.25)])
def test_cuda_results_match_cpu_results(weights, half, conf) -> None:
    cpu = YoloSegModel(load_runtime(weights, backend="onnxruntime", device="cpu"), imgsz=640, conf=conf)
    gpu = YoloSegModel(load_backend(weights, backend="torch", device="cuda", half=half), imgsz=640, conf=conf)
    assert gpu.frames_on_device
    cmp = Comparison()
    for i, image in enumerate(IMAGES):
        ours = gpu([image], [i])[0]
        assert ours.masks is not None and (not len(ours) or ours.masks.device_crops is not None)
        cmp.add_results(cpu([image], [i])[0], ours)
    assert cmp.matched >= 10
    margin = 0.05 if half else 0.02  # a detection this close to the threshold may fall either side
    assert all(s < conf + margin for s in cmp.unmatched_ref + cmp.unmatched_ours)
    confident = cmp.sized_mask_ious()
    assert not confident or min(confident) >= 0.95  # the criterion, at the default threshold
    assert min(cmp.box_ious) > 0.9 and float(np.mean(cmp.mask_ious)) >= 0.95


def test_pipeline_on_gpu_draws_what_the_cpu_draws(tmp_path, recording_sink) -> None:
    class Frames:
        name, live, fps = "photos", False, 10.0

        def __init__(self) -> None:
            self.items = [im.copy() for im in IMAGES[:6]]
            self.frame_count = len(self.items)

        def read(self):  # noqa: ANN202
            return self.items.pop(0) if self.items else None

        def close(self) -> None:
            pass

    drawn = {}
    for device in ("cpu", "cuda"):
        model = YoloSegModel(load_backend(YOLO11_WEIGHTS, backend="torch", device=device), imgsz=640)
        sink = recording_sink()
        Pipeline(Frames(), model, [sink], annotator=Annotator(model.names)).run()
        drawn[device] = sink.images
    assert len(drawn["cuda"]) == 6
    for a, b in zip(drawn["cpu"], drawn["cuda"]):
        assert a.shape == b.shape
        assert np.abs(a.astype(int) - b.astype(int)).mean() < 2.0  # the same picture, up to mask-edge pixels
