"""``for frame, result in pipeline``: frames after the sinks, in order, on the caller's thread; leaving the loop
stops the run and closes everything."""

from __future__ import annotations

import doctest
import threading

import numpy as np
import pytest

from rtseg.models.yolo_seg import YoloSegModel
from rtseg.overlay.annotator import Annotator
from rtseg.pipeline.core import Pipeline, Stream
from tests.fakes import ListSource, RecordingSink, StubBackend


class ThreadSink(RecordingSink):
    """Records the thread each write ran on."""

    def __init__(self) -> None:
        super().__init__()
        self.threads: list[int] = []

    def write(self, frame, annotated, result) -> None:  # noqa: ANN001
        self.threads.append(threading.get_ident())
        super().write(frame, annotated, result)


def model() -> YoloSegModel:
    return YoloSegModel(StubBackend(), conf=0.25)


def _pipeline_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("rtseg-") and t.is_alive()]


def test_iterating_yields_each_frame_in_order_after_its_sinks_on_the_calling_thread() -> None:
    sink = ThreadSink()
    pipeline = Pipeline(ListSource(12), model(), [sink], annotator=Annotator(("a", "b")))
    seen = []
    for frame, result in pipeline:
        assert sink.indices[-1] == frame.index == result.frame_index  # the sink already has it
        assert frame.timings.done_ns > 0 and len(result) == 1
        seen.append(frame.index)
    assert seen == list(range(12)) and sink.closed
    assert set(sink.threads) == {threading.get_ident()}
    assert pipeline.summary.frames == 12 and not pipeline.summary.interrupted
    assert {"decode", "infer", "postprocess", "encode"} <= set(pipeline.summary.stages_ms)


@pytest.mark.parametrize("leave", ["break", "close", "raise"])
def test_leaving_the_loop_stops_the_run_and_closes_sources_and_sinks(leave) -> None:
    source, sink = ListSource(1000), RecordingSink()
    pipeline = Pipeline(source, model(), [sink])
    if leave == "break":
        for frame, _ in pipeline:
            if frame.index == 3:
                break
    elif leave == "close":
        frames = iter(pipeline)
        for _ in range(4):
            next(frames)
        frames.close()
    else:
        with pytest.raises(KeyError):
            for frame, _ in pipeline:
                if frame.index == 3:
                    raise KeyError("the caller's own error")
    assert source.closed and sink.closed and sink.indices == [0, 1, 2, 3]
    s = pipeline.summary
    assert s.frames == 4 and s.interrupted and not s.user_quit
    assert s.elapsed_s > 0 and s.stages_ms and [st.frames for st in s.streams] == [4]
    assert not _pipeline_threads()


def test_a_pipeline_without_sinks_yields_undrawn_frames() -> None:
    pipeline = Pipeline(ListSource(5), model(), annotator=Annotator(("a", "b")))
    got = list(pipeline)
    assert [f.index for f, _ in got] == list(range(5)) and all(len(r) == 1 for _, r in got)
    for frame, _ in got:  # ListSource frame i is filled with (5 - 1 - i): nothing drawn on it
        assert (frame.image == 4 - frame.index).all()
    assert pipeline.summary.frames == 5


def test_several_streams_each_come_out_in_order() -> None:
    pipeline = Pipeline.multi([Stream(ListSource(7)), Stream(ListSource(4))], model())
    by_stream: dict[int, list[int]] = {0: [], 1: []}
    for frame, result in pipeline:
        by_stream[frame.stream].append(result.frame_index)
    assert by_stream == {0: list(range(7)), 1: list(range(4))}


def test_a_stage_error_is_raised_from_the_loop_after_closing() -> None:
    class Broken(StubBackend):
        def infer(self, batch):  # noqa: ANN001, ANN201
            raise RuntimeError("kernel exploded")

    source, sink = ListSource(5), RecordingSink()
    with pytest.raises(RuntimeError, match="kernel exploded"):
        for _ in Pipeline(source, YoloSegModel(Broken()), [sink]):
            pass
    assert source.closed and sink.closed


def test_a_pipeline_runs_once() -> None:
    pipeline = Pipeline(ListSource(2), model())
    assert len(list(pipeline)) == 2
    with pytest.raises(RuntimeError, match="already run"):
        pipeline.run()


def test_run_is_the_loop_with_an_empty_body() -> None:
    sink = RecordingSink()
    summary = Pipeline(ListSource(6), model(), [sink]).run()
    assert summary.frames == 6 and sink.indices == list(range(6)) and sink.closed


def test_the_iter_docstring_example_runs() -> None:
    globs = {"Pipeline": Pipeline, "source": ListSource(5), "model": model(), "np": np}
    test = doctest.DocTestParser().get_doctest(Pipeline.__iter__.__doc__, globs, "Pipeline.__iter__", __file__, 0)
    runner = doctest.DocTestRunner()
    runner.run(test)
    assert runner.tries >= 3 and runner.failures == 0
