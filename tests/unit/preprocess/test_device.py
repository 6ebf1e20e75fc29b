"""The device frame path (letterbox, mask blending, one download) against the CPU path it replaces.

These run the PyTorch code on the CPU; tests/gpu/test_cuda_path.py runs the same comparisons on a CUDA GPU.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from rtseg.models.yolo_seg import YoloSegModel
from rtseg.overlay.annotator import Annotator
from rtseg.overlay.device import blend_masks_on_device
from rtseg.pipeline.core import Pipeline
from rtseg.preprocess.device import FrameUploader, letterbox_on_device, resize_like_opencv
from rtseg.preprocess.letterbox import Letterboxer, to_input_batch
from rtseg.tracking import Tracker
from rtseg.types import FrameResult, InstanceMasks
from tests.fakes import BlobBackend, RecordingSink, StubBackend


def _image(hw: tuple[int, int], seed: int = 0) -> np.ndarray:
    """Smooth content with edges: gradients, a disc and noise, like a real frame to a resampler."""
    rng = np.random.default_rng(seed)
    h, w = hw
    y, x = np.mgrid[0:h, 0:w]
    image = np.stack([x * 255 // max(w - 1, 1), y * 255 // max(h - 1, 1), (x + y) % 256], -1).astype(np.int32)
    image[(y - h // 2) ** 2 + (x - w // 3) ** 2 < (min(h, w) // 4) ** 2] = (20, 200, 90)
    image += rng.integers(-12, 13, image.shape)
    return np.clip(image, 0, 255).astype(np.uint8)


def test_resize_matches_opencv_bit_for_bit() -> None:
    rng = np.random.default_rng(0)
    sizes = [((720, 1280), (360, 640)), ((1080, 1920), (360, 640)), ((720, 1280), (384, 683)), ((123, 77), (320, 200)),
             ((100, 100), (333, 333)), ((27, 610), (372, 456)), ((1080, 1920), (640, 1138)), ((5, 3), (1, 1))]
    sizes += [((int(a), int(b)), (int(c), int(d))) for a, b, c, d in rng.integers(2, 700, (25, 4))]
    for (h, w), (oh, ow) in sizes:
        image = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        ref = cv2.resize(image, (ow, oh), interpolation=cv2.INTER_LINEAR)
        np.testing.assert_array_equal(resize_like_opencv(torch.from_numpy(image), (oh, ow)).numpy(), ref,
                                      err_msg=f"{(h, w)} -> {(oh, ow)}")


@pytest.mark.parametrize(("hw", "imgsz", "rect"), [((720, 1280), (640, 640), True), ((123, 77), (320, 320), False),
                                                   ((480, 640), (480, 640), True), ((301, 555), (256, 384), True)])
def test_letterbox_on_device_gives_the_cpu_paths_input(hw, imgsz, rect) -> None:
    image = _image(hw)
    letterbox = Letterboxer(imgsz, rect=rect, stride=32)
    boxed, (lb,) = letterbox([image])
    ours = letterbox_on_device(FrameUploader(torch.device("cpu"))(image), lb).numpy()
    np.testing.assert_array_equal(ours, to_input_batch(boxed)[0])


def test_blend_on_device_gives_the_cpu_overlays_pixels() -> None:
    rng = np.random.default_rng(3)
    image = rng.integers(0, 256, (90, 120, 3), dtype=np.uint8)
    crops = [rng.random((30, 40)) > 0.4, rng.random((50, 20)) > 0.7, np.zeros((0, 0), bool),
             rng.random((90, 120)) > 0.9]
    origins = np.array([[5, 7], [90, 30], [0, 0], [0, 0]], np.int32)
    boxes = np.array([[5, 7, 45, 37], [90, 30, 110, 80], [0, 0, 0, 0], [0, 0, 120, 90]], np.float32)
    result = FrameResult(0, (90, 120), boxes, np.full(4, 0.9, np.float32), np.array([0, 1, 2, 5], np.int32),
                         InstanceMasks(crops, origins))
    annotator = Annotator(("a", "b", "c", "d", "e", "f"), alpha=0.45, boxes=False, labels=False)
    ref = annotator.draw(image, result)
    frame = torch.from_numpy(image.copy())
    blend_masks_on_device(frame, [torch.from_numpy(c) for c in crops], origins, annotator.colours(result), 0.45)
    np.testing.assert_array_equal(frame.numpy(), ref)


def _squares(n: int) -> list[np.ndarray]:
    """Frames with a white square moving right, for BlobBackend to find and a tracker to follow."""
    frames = []
    for i in range(n):
        image = _image((96, 128), seed=i) // 2
        image[30:60, 10 + 6 * i : 40 + 6 * i] = 255
        frames.append(image)
    return frames


def _run(backend, *, on_device: bool, tracker: Tracker | None = None, morph: int = 0,  # noqa: ANN001, ANN202
         frames: list[np.ndarray] | None = None):
    model = YoloSegModel(backend, conf=0.25, frames_on_device=on_device, open_px=morph)
    sink, seen = RecordingSink(), []
    frames = frames or [_image((96, 128), seed=i) for i in range(6)]
    n = len(frames)

    class Source:
        name, live, fps, frame_count = "gen", False, 10.0, n

        def __init__(self) -> None:
            self.i = 0

        def read(self):  # noqa: ANN202
            self.i += 1
            return frames[self.i - 1].copy() if self.i <= n else None

        def close(self) -> None:
            pass

    Pipeline(Source(), model, [sink], annotator=Annotator(("a", "b"), hud=False), tracker=tracker,
             on_frame=lambda f, r: seen.append(r)).run()
    return sink.images, seen


@pytest.mark.parametrize("morph", [0, 3])
def test_pipeline_on_the_device_path_draws_the_same_frames(morph, stub_backend) -> None:
    """A backend whose outputs do not depend on the pixels: both paths must give identical annotated frames."""
    cpu_images, cpu_results = _run(stub_backend(), on_device=False, morph=morph)
    dev_images, dev_results = _run(stub_backend(), on_device=True, morph=morph)
    assert len(dev_images) == 6
    for a, b in zip(cpu_images, dev_images):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(cpu_results, dev_results):
        assert a.masks is not None and b.masks is not None and b.masks.device_crops is not None
        assert all((x == y).all() for x, y in zip(a.masks.crops, b.masks.crops))
        assert all((c.numpy() == y).all() for c, y in zip(b.masks.device_crops, b.masks.crops))


def test_device_path_keeps_crops_through_tracking() -> None:
    images, results = _run(BlobBackend(), on_device=True, tracker=Tracker("bytetrack"), frames=_squares(8))
    ref_images, _ = _run(BlobBackend(), on_device=False, tracker=Tracker("bytetrack"), frames=_squares(8))
    assert any(r.track_ids is not None and len(r) for r in results)
    for r in results:
        assert r.masks is not None and r.masks.device_crops is not None and len(r.masks.device_crops) == len(r)
    for a, b in zip(images, ref_images):
        np.testing.assert_array_equal(a, b)


def test_models_choose_the_device_path_from_the_backend_device() -> None:
    assert not YoloSegModel(StubBackend()).frames_on_device  # a CPU backend: OpenCV letterbox, CPU overlay

    class OnCuda(StubBackend):
        device = torch.device("cuda")

    assert YoloSegModel(OnCuda()).frames_on_device
    assert not YoloSegModel(OnCuda(), frames_on_device=False).frames_on_device


def test_real_model_gives_the_same_results_on_the_device_path() -> None:
    """The device path feeds the model the CPU path's exact input, so every detection and mask is the same."""
    from rtseg.backends.registry import load_backend
    from tests.parity import parity_images
    from tests.support import DATA, YOLO11_WEIGHTS

    backend = load_backend(YOLO11_WEIGHTS, backend="torch", device="cpu")
    cpu = YoloSegModel(backend, imgsz=320, conf=0.05)
    dev = YoloSegModel(backend, imgsz=320, conf=0.05, frames_on_device=True)
    found = 0
    for i, image in enumerate(parity_images(DATA, n=10)):
        prepared = dev.prepare([image])
        assert isinstance(prepared.batch, torch.Tensor) and prepared.frames is not None
        a, b = cpu([image], [i])[0], dev.finish(dev.infer(prepared), prepared, [i])[0]
        found += len(a)
        np.testing.assert_array_equal(a.boxes_xyxy, b.boxes_xyxy)
        np.testing.assert_array_equal(a.scores, b.scores)
        assert a.masks is not None and b.masks is not None
        assert all((x == y).all() for x, y in zip(a.masks.crops, b.masks.crops))
    assert found >= 20
