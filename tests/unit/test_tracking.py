"""Tracking through Ultralytics' ByteTrack / BoT-SORT, directly and inside the pipeline."""

from __future__ import annotations

import numpy as np
import pytest

from rtseg.errors import ConfigError
from rtseg.models.yolo_seg import YoloSegModel
from rtseg.overlay.annotator import Annotator
from rtseg.pipeline.core import Pipeline
from rtseg.sinks.base import NullSink
from rtseg.tracking import Tracker
from rtseg.types import FrameResult, InstanceMasks
from tests.fakes import BlobBackend


class MovingSquare:
    live, fps, name = False, 10.0, "square"

    def __init__(self, n: int) -> None:
        self.frame_count, self._i = n, 0

    def read(self):  # noqa: ANN201
        if self._i >= self.frame_count:
            return None
        image = np.zeros((240, 320, 3), np.uint8)
        x = 20 + 8 * self._i
        image[100:140, x : x + 40] = 255
        self._i += 1
        return image

    def close(self) -> None:
        pass


@pytest.mark.parametrize("kind", ["bytetrack", "botsort"])
def test_an_object_moving_across_a_clip_keeps_its_id(kind) -> None:
    seen = []
    Pipeline(MovingSquare(25), YoloSegModel(BlobBackend()), [NullSink()], tracker=Tracker(kind, frame_rate=10),
             annotator=Annotator(("blob",), trails=5), on_frame=lambda f, r: seen.append(r)).run()
    assert len(seen) == 25
    ids = {int(t) for r in seen for t in r.track_ids}
    assert ids == {1} and all(len(r) == 1 for r in seen)
    x1 = [float(r.boxes_xyxy[0, 0]) for r in seen]
    assert x1 == pytest.approx([20 + 8 * i for i in range(25)], abs=1.5)  # the box follows the square


def _result(i: int, scores: list[float]) -> FrameResult:
    boxes = np.array([[10 + 5 * i, 10, 50 + 5 * i, 60], [200, 100 + 3 * i, 260, 180 + 3 * i]], np.float32)
    crops = (np.ones((50, 40), bool), np.ones((80, 60), bool))
    return FrameResult(i, (480, 640), boxes, np.array(scores, np.float32), np.array([0, 1], np.int32),
                       InstanceMasks(crops, np.array([[10, 10], [200, 100]])))


def test_two_objects_keep_distinct_ids_and_their_masks() -> None:
    tracker = Tracker("bytetrack")
    outs = [tracker.update(_result(i, [0.9, 0.8])) for i in range(6)]
    for out in outs:
        by_id = dict(zip(out.track_ids.tolist(), out.class_ids.tolist()))
        assert by_id == {1: 0, 2: 1}
        assert [c.shape for c in out.masks.crops] == [(50, 40), (80, 60)][:: 1 if out.track_ids[0] == 1 else -1]


def test_weak_detections_are_tracked_when_asked_for() -> None:
    """Ultralytics' configs need score >= 0.25 and fuse scores into matching; min_score lowers both."""
    default, tuned = Tracker("bytetrack"), Tracker("bytetrack", min_score=0.1)
    assert all(len(default.update(_result(i, [0.15, 0.15]))) == 0 for i in range(4))
    outs = [tuned.update(_result(i, [0.15, 0.12])) for i in range(4)]
    assert all(sorted(o.track_ids.tolist()) == [1, 2] for o in outs)


def test_unknown_tracker() -> None:
    with pytest.raises(ConfigError, match="bytetrack, botsort"):
        Tracker("sort")


def test_track_stays_continuous_across_tile_seams() -> None:
    """A square moving through the overlap of two tiles is merged into one detection and keeps one id."""
    from rtseg.models.tiling import TiledYoloSeg
    from tests.fakes import SquaresBackend

    class Crossing(MovingSquare):
        def read(self):  # noqa: ANN201
            if self._i >= self.frame_count:
                return None
            image = np.full((640, 1280, 3), 40, np.uint8)
            x = 350 + 20 * self._i  # tile edges at 512 and 640 (tile 640, overlap 0.2)
            image[300:380, x : x + 80] = 255
            self._i += 1
            return image

    seen = []
    model = TiledYoloSeg(YoloSegModel(SquaresBackend()), tile=640, overlap=0.2)
    Pipeline(Crossing(20), model, [NullSink()], tracker=Tracker("bytetrack", frame_rate=10),
             on_frame=lambda f, r: seen.append(r)).run()
    assert [len(r) for r in seen] == [1] * 20
    assert {int(r.track_ids[0]) for r in seen} == {1}
    np.testing.assert_allclose([r.boxes_xyxy[0, 0] for r in seen], [350 + 20 * i for i in range(20)], atol=1)
