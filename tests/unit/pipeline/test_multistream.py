"""Several sources in one pipeline: batches mix streams, results and state stay with their own stream."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch

from rtseg.models.tiling import TiledYoloSeg
from rtseg.models.yolo_seg import YoloSegModel
from rtseg.overlay.annotator import Annotator
from rtseg.pipeline.core import Pipeline, Stream
from rtseg.tracking import Tracker
from tests.fakes import BlobBackend, ListSource, SizedSource, StubBackend, StubSemantic


class Collect:
    """Keeps what it is given: (stream, frame size, result) per frame."""

    needs_image = False

    def __init__(self) -> None:
        self.seen, self.closed = [], False

    def write(self, frame, annotated, result) -> None:  # noqa: ANN001
        self.seen.append((frame.stream, frame.image_hw, result))

    def close(self) -> None:
        self.closed = True

    @property
    def indices(self) -> list[int]:
        return [r.frame_index for _, _, r in self.seen]


class SpyBackend(StubBackend):
    """Records the frames of each call by their pixel value and reports that value as the detection score."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[list[int]] = []

    def infer(self, batch):  # noqa: ANN001, ANN201
        preds, protos = super().infer(batch)
        values = [round(float(batch[i].mean()) * 255) for i in range(len(batch))]
        self.calls.append(values)
        preds[:, 0, 4] = torch.tensor(values, dtype=torch.float32) / 255
        return preds, protos


def _value(result) -> int:  # noqa: ANN001
    return round(float(result.scores[0]) * 255)


def test_one_inference_call_takes_a_frame_of_each_stream_and_results_go_home() -> None:
    backend = SpyBackend()
    a, b = Collect(), Collect()
    # 64x64 and 128x128 letterbox to the same 64x64 input: one tensor, one call per pair of frames
    streams = [Stream(SizedSource(10, (64, 64), value=100), [a]), Stream(SizedSource(10, (128, 128), value=200), [b])]
    pipeline = Pipeline.multi(streams, YoloSegModel(backend), batch=2)
    summary = pipeline.run()
    assert len(backend.calls) == 10
    assert [sorted(c) for c in backend.calls] == [[100 + i, 200 + i] for i in range(10)]
    assert a.indices == list(range(10)) and b.indices == list(range(10))
    assert {hw for _, hw, _ in a.seen} == {(64, 64)} and {hw for _, hw, _ in b.seen} == {(128, 128)}
    assert {s for s, _, _ in a.seen} == {0} and {s for s, _, _ in b.seen} == {1}
    assert [_value(r) for _, _, r in a.seen] == [100 + i for i in range(10)]  # its own frame's output
    assert [_value(r) for _, _, r in b.seen] == [200 + i for i in range(10)]
    assert b.seen[0][2].boxes_xyxy.tolist() == [[16.0, 16.0, 80.0, 80.0]]  # its own letterbox (gain 0.5)
    assert summary.frames == 20 and [s.frames for s in summary.streams] == [10, 10]
    assert a.closed and b.closed and all(s.source.closed for s in streams)


def test_default_batch_is_one_frame_per_stream() -> None:
    streams = [Stream(SizedSource(3), [Collect()]) for _ in range(3)]
    assert Pipeline.multi(streams, YoloSegModel(StubBackend())).batch == 3
    assert Pipeline(SizedSource(3), YoloSegModel(StubBackend()), [Collect()]).batch == 1
    assert Pipeline.multi(streams, TiledYoloSeg(YoloSegModel(StubBackend()), tile=32)).batch == 1
    with pytest.raises(ValueError, match="not both"):
        Pipeline(SizedSource(3), YoloSegModel(StubBackend()), streams=streams)


def test_streams_of_different_input_shapes_share_a_batch_in_one_call_per_shape() -> None:
    backend = SpyBackend()
    a, b = Collect(), Collect()
    # 64x128 letterboxes to a 32x64 input, 64x64 to 64x64: they cannot share a tensor
    Pipeline.multi([Stream(SizedSource(6, (64, 64), value=100), [a]),
                    Stream(SizedSource(4, (64, 128), value=200), [b])], YoloSegModel(backend)).run()
    # a batch of 2 (one frame each) makes two calls of 1; once b has ended, a fills the batch alone
    assert sorted(backend.calls) == sorted([[100 + i] for i in range(4)] + [[104, 105]] + [[200 + i] for i in range(4)])
    assert [_value(r) for _, _, r in a.seen] == [100 + i for i in range(6)]
    assert [_value(r) for _, _, r in b.seen] == [200 + i for i in range(4)]
    assert {hw for _, hw, _ in b.seen} == {(64, 128)}


def test_uneven_lengths_and_max_frames_apply_per_stream() -> None:
    a, b, c = Collect(), Collect(), Collect()
    summary = Pipeline.multi([Stream(SizedSource(9), [a]), Stream(SizedSource(2), [b]), Stream(SizedSource(5), [c])],
                             YoloSegModel(StubBackend()), max_frames=6).run()
    assert (a.indices, b.indices, c.indices) == (list(range(6)), [0, 1], list(range(5)))
    assert summary.frames == 13 and [s.frames for s in summary.streams] == [6, 2, 5]
    assert all(s.fps > 0 for s in summary.streams)


def test_tiling_keeps_batch_one_and_interleaves_streams() -> None:
    backend = SpyBackend()
    a, b = Collect(), Collect()
    model = TiledYoloSeg(YoloSegModel(backend), tile=32, overlap=0.0)  # 4 tiles per 64x64 frame
    Pipeline.multi([Stream(SizedSource(3, value=100), [a]), Stream(SizedSource(3, value=200), [b])], model).run()
    assert [c[0] // 100 for c in backend.calls] == [1, 2, 1, 2, 1, 2]  # one frame (its tiles) per call, in turn
    assert all(len(set(c)) == 1 and len(c) == 4 for c in backend.calls)
    assert a.indices == b.indices == [0, 1, 2]


class Square:
    """A white square sliding horizontally on black: ``x`` moves by ``dx`` per frame at row ``y``."""

    live, fps = False, 10.0

    def __init__(self, n: int, x: int, y: int, dx: int, name: str) -> None:
        self.frame_count, self.x, self.y, self.dx, self.name, self._i = n, x, y, dx, name, 0

    def read(self):  # noqa: ANN201
        if self._i >= self.frame_count:
            return None
        image = np.zeros((240, 320, 3), np.uint8)
        x = self.x + self.dx * self._i
        image[self.y : self.y + 40, x : x + 40] = 255
        self._i += 1
        return image

    def close(self) -> None:
        pass


def test_each_stream_has_its_own_tracker() -> None:
    """Each square is the only object of its stream: id 1 in both (a shared tracker would number them 1, 2)."""
    a, b = Collect(), Collect()
    trackers = [Tracker("bytetrack", frame_rate=10), Tracker("bytetrack", frame_rate=10)]
    Pipeline.multi([Stream(Square(15, 20, 100, 8, "a"), [a], Annotator(("blob",), trails=5), trackers[0]),
                    Stream(Square(15, 260, 20, -8, "b"), [b], Annotator(("blob",), trails=5), trackers[1])],
                   YoloSegModel(BlobBackend())).run()
    for sink, x0, dx in ((a, 20, 8), (b, 260, -8)):
        results = [r for _, _, r in sink.seen]
        assert [len(r) for r in results] == [1] * 15
        assert {int(r.track_ids[0]) for r in results} == {1}
        np.testing.assert_allclose([r.boxes_xyxy[0, 0] for r in results], [x0 + dx * i for i in range(15)], atol=1.5)
    assert [t._tracker.frame_id for t in trackers] == [15, 15]  # each saw its own stream's frames only


@pytest.mark.parametrize("overlap", [True, False])
def test_combined_mode_joins_labels_by_stream_and_frame(overlap) -> None:
    """Frame sizes differ per stream, so a label map joined to the other stream's frame cannot pass."""
    a, b = Collect(), Collect()
    Pipeline.multi([Stream(SizedSource(7, (64, 64), value=0), [a]), Stream(SizedSource(5, (96, 128), value=1), [b])],
                   YoloSegModel(StubBackend()), semantic=StubSemantic(0.002), overlap_semantic=overlap).run()
    for sink, hw, value, n in ((a, (64, 64), 0, 7), (b, (96, 128), 1, 5)):
        assert sink.indices == list(range(n))
        for _, _, r in sink.seen:  # StubSemantic: label = first pixel % 3, and frame i is value + i
            assert r.semantic.shape == hw and (r.semantic == (value + r.frame_index) % 3).all() and len(r) == 1


def test_stop_closes_every_stream_sink_and_source() -> None:
    stop = threading.Event()
    sinks = [Collect(), Collect(), Collect()]
    sources = [ListSource(1000) for _ in sinks]

    def stop_after_ten(frame, result) -> None:  # noqa: ANN001
        if sum(len(s.seen) for s in sinks) >= 10:
            stop.set()

    summary = Pipeline.multi([Stream(src, [sink]) for src, sink in zip(sources, sinks)], YoloSegModel(StubBackend()),
                             stop=stop, on_frame=stop_after_ten).run()
    assert summary.interrupted and summary.frames == 10
    for sink in sinks:
        assert sink.closed and sink.indices == list(range(len(sink.indices)))  # whole frames, in order
    assert all(src.closed for src in sources)


def test_a_blocked_live_source_does_not_stall_a_file_stream() -> None:
    released = threading.Event()
    woke_on_release = []

    class StuckCamera(ListSource):
        def read(self):  # noqa: ANN201
            if self._left == 1:  # the second frame never comes until the file stream is done
                woke_on_release.append(released.wait(20))
            return super().read()

    file_sink = Collect()

    def release_when_file_done(frame, result) -> None:  # noqa: ANN001
        if frame.stream == 1 and result.frame_index == 29:
            released.set()

    summary = Pipeline.multi([Stream(StuckCamera(2, live=True), [Collect()]), Stream(ListSource(30), [file_sink])],
                             YoloSegModel(StubBackend()), on_frame=release_when_file_done).run()
    assert woke_on_release == [True]  # released by the file stream finishing, not by the 20 s timeout
    assert file_sink.indices == list(range(30)) and summary.frames + summary.dropped == 32


def test_a_live_stream_drops_only_its_own_frames() -> None:
    class SlowSink(Collect):
        def write(self, frame, annotated, result) -> None:  # noqa: ANN001
            threading.Event().wait(0.01)
            super().write(frame, annotated, result)

    live, file = SlowSink(), SlowSink()
    summary = Pipeline.multi([Stream(ListSource(80, live=True, delay_s=0.001), [live]), Stream(ListSource(30), [file])],
                             YoloSegModel(StubBackend())).run()
    assert file.indices == list(range(30)) and summary.streams[1].dropped == 0
    assert summary.streams[0].dropped > 0 and summary.streams[0].frames + summary.streams[0].dropped == 80
    assert live.indices == sorted(live.indices) and summary.dropped == summary.streams[0].dropped
