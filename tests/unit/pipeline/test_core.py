"""The threaded pipeline with a stub backend: ordering, drop policy, stop, error propagation, timings."""

from __future__ import annotations

import threading
import time

import pytest

from rtseg.errors import SinkError
from rtseg.models.yolo_seg import YoloSegModel
from rtseg.overlay.annotator import Annotator
from rtseg.pipeline.core import Pipeline
from rtseg.sinks.base import NullSink
from tests.fakes import FakeCapture, ListSource, RecordingSink, StubBackend, StubSemantic


def model() -> YoloSegModel:
    return YoloSegModel(StubBackend(), conf=0.25)


def test_file_source_keeps_every_frame_in_order() -> None:
    sink = RecordingSink(delay_s=0.002)
    summary = Pipeline(ListSource(40), model(), [sink], annotator=Annotator(("a", "b"))).run()
    assert sink.indices == list(range(40)) and sink.closed
    assert summary.frames == 40 and summary.dropped == 0 and not summary.interrupted
    assert set(summary.stages_ms) >= {"decode", "preprocess", "infer", "postprocess", "overlay", "encode"}
    assert sink.images[0] is not None and sink.images[0][20, 20].tolist() != [39, 39, 39]  # drawn


def test_live_source_drops_oldest_when_consumer_is_slow() -> None:
    sink = RecordingSink(delay_s=0.02)
    summary = Pipeline(ListSource(60, live=True, delay_s=0.001), model(), [sink]).run()
    assert summary.dropped > 0 and summary.frames + summary.dropped == 60
    assert sink.indices == sorted(sink.indices)  # still in order, with gaps


def test_max_frames_and_results_carry_timings() -> None:
    seen = []
    Pipeline(ListSource(10), model(), [NullSink()], max_frames=4, on_frame=lambda f, r: seen.append(r)).run()
    assert [r.frame_index for r in seen] == [0, 1, 2, 3]
    assert all(r.timings.infer_ns > 0 and len(r) == 1 for r in seen)
    assert seen[0].boxes_xyxy.tolist() == [[8.0, 8.0, 40.0, 40.0]] and seen[0].class_ids.tolist() == [1]


def test_stop_event_ends_the_run_and_closes_sinks() -> None:
    stop = threading.Event()
    sink = RecordingSink()

    def stop_after_five(frame, result) -> None:  # noqa: ANN001
        if result.frame_index == 4:
            stop.set()

    summary = Pipeline(ListSource(1000), model(), [sink], stop=stop, on_frame=stop_after_five).run()
    assert summary.interrupted and sink.indices == [0, 1, 2, 3, 4] and sink.closed


def test_sink_error_propagates_after_closing_every_sink() -> None:
    failing, other = RecordingSink(fail_at=3), RecordingSink()
    with pytest.raises(SinkError, match="disk full"):
        Pipeline(ListSource(20), model(), [other, failing]).run()
    assert failing.closed and other.closed and failing.indices == [0, 1, 2]


def test_stage_error_propagates() -> None:
    class Broken(StubBackend):
        def infer(self, batch):  # noqa: ANN001, ANN201
            raise RuntimeError("kernel exploded")

    with pytest.raises(RuntimeError, match="kernel exploded"):
        Pipeline(ListSource(5), YoloSegModel(Broken()), [NullSink()]).run()


def test_no_drawing_when_no_sink_needs_images() -> None:
    sink = RecordingSink()
    sink.needs_image = False
    Pipeline(ListSource(3), model(), [sink], annotator=Annotator(("a", "b"))).run()
    assert sink.images == [None, None, None]


def test_window_quit_ends_the_run_without_error(monkeypatch) -> None:
    import cv2

    from rtseg.sinks.window import WindowSink

    keys = iter([-1, -1, ord("q")])
    shown = []
    monkeypatch.setenv("DISPLAY", ":99")
    monkeypatch.setattr(cv2, "namedWindow", lambda *a: None)
    monkeypatch.setattr(cv2, "imshow", lambda title, image: shown.append(image.shape))
    monkeypatch.setattr(cv2, "waitKey", lambda ms: next(keys))
    monkeypatch.setattr(cv2, "getWindowProperty", lambda *a: 1.0)
    monkeypatch.setattr(cv2, "destroyWindow", lambda *a: None)
    other = RecordingSink()
    summary = Pipeline(ListSource(50), model(), [other, WindowSink()], annotator=Annotator(("a", "b"))).run()
    assert summary.user_quit and summary.interrupted and summary.frames == 2
    assert len(shown) == 3 and other.indices == [0, 1, 2] and other.closed


def test_window_without_display_is_a_clear_error(monkeypatch) -> None:
    from rtseg.sinks.window import WindowSink

    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    with pytest.raises(SinkError, match="needs a display"):
        WindowSink()


@pytest.mark.parametrize("overlap", [True, False])
def test_combined_mode_joins_semantic_labels_to_the_right_frame(overlap) -> None:
    seen = []
    source = ListSource(12)
    Pipeline(source, model(), [NullSink()], semantic=StubSemantic(), overlap_semantic=overlap,
             on_frame=lambda f, r: seen.append(r)).run()
    assert [r.frame_index for r in seen] == list(range(12))
    for r in seen:  # ListSource frame i has value (12 - 1 - i) % 255
        assert r.semantic is not None and (r.semantic == (11 - r.frame_index) % 3).all() and len(r) == 1
        assert r.timings.semantic_ns > 0


def test_semantic_only_pipeline() -> None:
    seen = []
    Pipeline(ListSource(3), None, [NullSink()], semantic=StubSemantic(0.0), on_frame=lambda f, r: seen.append(r)).run()
    assert [len(r) for r in seen] == [0, 0, 0] and all(r.semantic is not None for r in seen)
    with pytest.raises(ValueError, match="needs an instance model"):
        Pipeline(ListSource(3), None, [NullSink()])


@pytest.mark.parametrize("batch", [1, 3])
def test_stage_times_and_queue_waits_add_up_to_latency(batch) -> None:
    seen = []
    Pipeline(ListSource(10), YoloSegModel(StubBackend(delay_s=0.01)), [RecordingSink(delay_s=0.003)],
             annotator=Annotator(("a", "b")), batch=batch, on_frame=lambda f, r: seen.append(f.timings)).run()
    assert len(seen) == 10
    for t in seen:
        ms = t.as_ms()
        parts = sum(ms[k] for k in ("preprocess", "infer", "postprocess", "overlay", "encode", "queue_wait"))
        assert parts == pytest.approx(ms["latency"], rel=0.05, abs=1.0)  # gaps: queue put/get calls only


def test_batches_keep_frame_order_and_results() -> None:
    calls = []

    class Counting(StubBackend):
        def infer(self, batch):  # noqa: ANN001, ANN201
            calls.append(len(batch))
            return super().infer(batch)

    sink = RecordingSink()
    seen = []
    Pipeline(ListSource(10), YoloSegModel(Counting()), [sink], batch=4, on_frame=lambda f, r: seen.append(r)).run()
    assert calls == [4, 4, 2] and sink.indices == list(range(10))
    assert all(r.boxes_xyxy.tolist() == [[8.0, 8.0, 40.0, 40.0]] for r in seen)


def test_stop_interrupts_a_stream_waiting_to_reconnect() -> None:
    from rtseg.sources.video import VideoSource

    captures = iter([FakeCapture(3)] + [FakeCapture(0, opened=False)] * 5)
    source = VideoSource("rtsp://cam", lambda: next(captures), live=True, reconnect=True, backoff_s=30.0,
                         what="stream")
    stop = threading.Event()
    t0 = time.monotonic()
    timer = threading.Timer(1.0, stop.set)  # Ctrl-C while the stream waits 30 s to reconnect
    timer.start()
    summary = Pipeline(source, YoloSegModel(StubBackend()), [NullSink()], stop=stop).run()
    timer.cancel()
    assert summary.interrupted and summary.frames + summary.dropped + summary.skipped == 3
    assert time.monotonic() - t0 < 5


class _ViewSink(RecordingSink):
    stage = "serve"  # the browser view: timed as a stage of its own


def test_the_browser_view_sink_is_its_own_timed_stage_not_part_of_encode() -> None:
    view, writer = _ViewSink(delay_s=0.02), RecordingSink()
    summary = Pipeline(ListSource(6), model(), [writer, view]).run()
    assert view.indices == writer.indices == list(range(6))
    assert summary.stages_ms["serve"]["p50"] >= 20 > summary.stages_ms["encode"]["p50"]


def test_stream_summary_carries_the_sources_reconnects_and_whether_it_was_given_up() -> None:
    source = ListSource(3)
    source.reconnects, source.gave_up = 4, True
    summary = Pipeline(source, model(), [NullSink()]).run()
    assert (summary.streams[0].reconnects, summary.streams[0].gave_up) == (4, True)
    assert "serve" not in summary.stages_ms  # no view, no stage


def test_what_lives_before_the_run_is_out_of_the_collectors_sight_during_it_only() -> None:
    """A full garbage collection over PyTorch's and the models' objects takes about 0.2 s on a 2-core CPU, a
    pause that drops live frames: they are frozen (gc.freeze) while the pipeline runs, and thawed after, so
    a process that goes on collects as before."""
    import gc

    frozen = []
    Pipeline(ListSource(4), model(), [NullSink()],
             on_frame=lambda frame, result: frozen.append(gc.get_freeze_count())).run()
    assert len(frozen) == 4 and min(frozen) > 1000
    assert gc.get_freeze_count() == 0
