"""Several inference workers: batches finish out of order, results still leave in frame order."""

from __future__ import annotations

import random
import threading
import time

import pytest
import torch

from rtseg.models.yolo_seg import YoloSegModel
from rtseg.overlay.annotator import Annotator
from rtseg.pipeline.core import Pipeline, Stream
from rtseg.pipeline.flow import InOrder
from rtseg.sinks.base import NullSink
from tests.fakes import StubBackend


class ConcurrentBackend(StubBackend):
    """Serves ``workers`` calls at once, each taking a random time, and encodes each frame's pixel value v in
    its score, 0.5 + v / 510 (above any threshold); records how many calls overlapped."""

    computes_with_torch = False

    def __init__(self, workers: int, seed: int = 0) -> None:
        super().__init__()
        self.workers = workers
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self.active = self.most_active = 0

    def infer(self, batch):  # noqa: ANN001, ANN201
        with self._lock:
            self.active += 1
            self.most_active = max(self.most_active, self.active)
            delay = self._rng.uniform(0.0, 0.02)
        time.sleep(delay)
        preds, protos = super().infer(batch)
        preds[:, 0, 4] = torch.tensor([0.5 + float(batch[i].mean()) / 2 for i in range(len(batch))])
        with self._lock:
            self.active -= 1
        return preds, protos


def _value(result) -> int:  # noqa: ANN001
    return round((float(result.scores[0]) - 0.5) * 510)


def test_in_order_hands_items_out_in_sequence_whatever_order_they_finish() -> None:
    halt = threading.Event()
    box = InOrder(3, halt)
    order = list(range(12))
    random.Random(1).shuffle(order)
    got = []

    def consume() -> None:
        for _ in range(12):
            got.append(box.get()[0])

    consumer = threading.Thread(target=consume)
    consumer.start()
    # each producer puts its own sequence numbers in shuffled order; bounded, so they interleave with the consumer
    producers = [threading.Thread(target=lambda part=order[i::3]: [box.put(s, s) for s in sorted(part)])
                 for i in range(3)]
    for t in producers:
        t.start()
    for t in producers:
        t.join(5)
    consumer.join(5)
    assert got == list(range(12))


def test_in_order_bounds_how_far_ahead_a_producer_runs_and_halts() -> None:
    halt = threading.Event()
    box = InOrder(2, halt, closed="closed")
    assert box.put(1, "b")  # one ahead of the next due (0): within capacity
    done = threading.Event()
    threading.Thread(target=lambda: (box.put(2, "c"), done.set())).start()
    assert not done.wait(0.2)  # 2 ahead of item 0, which nobody has put: waits
    assert box.put(0, "a") and box.get()[0] == "a"
    assert done.wait(2)  # item 0 left, so item 2 is within capacity now
    assert [box.get()[0], box.get()[0]] == ["b", "c"]
    halt.set()
    assert box.get() == ("closed", 0) and box.put(9, "late") is False


@pytest.mark.parametrize("batch", [1, 3])
def test_two_workers_overlap_calls_and_keep_frame_order(batch, list_source, recording_sink) -> None:
    backend = ConcurrentBackend(workers=2)
    sink, seen = recording_sink(), []
    pipeline = Pipeline(list_source(30), YoloSegModel(backend), [sink], annotator=Annotator(("a", "b")), batch=batch,
                        on_frame=lambda f, r: seen.append(r))
    assert pipeline.workers == 2
    pipeline.run()
    assert backend.most_active == 2  # two calls were in flight at once
    assert sink.indices == list(range(30))
    # ListSource frame i is filled with 29 - i: each result carries its own frame's value
    assert [_value(r) for r in seen] == [29 - i for i in range(30)]


def test_workers_keep_each_streams_results_home_and_the_semantic_join(recording_sink, sized_source,
                                                                      stub_semantic) -> None:
    backend = ConcurrentBackend(workers=3, seed=2)
    sinks = [recording_sink(), recording_sink()]
    values: dict[int, list[int]] = {0: [], 1: []}
    streams = [Stream(sized_source(15, value=10 * (s + 1)), [sinks[s]]) for s in range(2)]
    Pipeline.multi(streams, YoloSegModel(backend), batch=1, semantic=stub_semantic(0.002),
                   on_frame=lambda f, r: values[f.stream].append(_value(r))).run()
    for s in range(2):
        assert sinks[s].indices == list(range(15))
        assert values[s] == [10 * (s + 1) + i for i in range(15)]


def test_an_error_in_one_worker_stops_the_run(list_source, recording_sink) -> None:
    class Failing(ConcurrentBackend):
        def infer(self, batch):  # noqa: ANN001, ANN201
            if float(batch[0].mean()) * 255 < 20.5:  # ListSource frame 9 of 30 has value 20
                raise RuntimeError("worker broke")
            return super().infer(batch)

    sink = recording_sink()
    with pytest.raises(RuntimeError, match="worker broke"):
        Pipeline(list_source(30), YoloSegModel(Failing(workers=2)), [sink]).run()
    assert sink.closed and sink.indices == list(range(len(sink.indices))) and len(sink.indices) <= 9


def test_torch_runs_on_one_thread_during_a_run_unless_a_model_computes_with_torch_on_the_cpu(list_source) -> None:
    before = torch.get_num_threads()
    seen = []
    Pipeline(list_source(3), YoloSegModel(ConcurrentBackend(workers=1)), [NullSink()],
             on_frame=lambda f, r: seen.append(torch.get_num_threads())).run()
    assert seen == [1, 1, 1] and torch.get_num_threads() == before

    class TorchOnCpu(ConcurrentBackend):
        computes_with_torch = True

    torch.set_num_threads(2)
    try:
        seen.clear()
        Pipeline(list_source(3), YoloSegModel(TorchOnCpu(workers=1)), [NullSink()],
                 on_frame=lambda f, r: seen.append(torch.get_num_threads())).run()
        assert seen == [2, 2, 2]
    finally:
        torch.set_num_threads(before)


def test_steady_fps_counts_once_the_pipeline_has_filled(list_source) -> None:
    from rtseg.pipeline.streams import RunSummary

    # 40 frames: the first 10 (a quarter) left in a burst at 1.0 s, then one every 0.1 s
    out = [1.0] * 10 + [1.0 + 0.1 * i for i in range(1, 31)]
    summary = RunSummary("s", frames=40, elapsed_s=4.0, out_s=out)
    assert summary.first_out_s == 1.0 and summary.steady_fps == pytest.approx(10.0)
    assert RunSummary("s", frames=1, elapsed_s=2.0, out_s=[1.0]).steady_fps == 0.5  # too short: the whole run
    run = Pipeline(list_source(8), YoloSegModel(ConcurrentBackend(workers=2)), [NullSink()]).run()
    assert run.frames == len(run.out_s) == 8 and 0 < run.out_s[0] <= run.out_s[-1] <= run.elapsed_s
    assert run.steady_fps == pytest.approx((8 - 1 - 2) / (run.out_s[-1] - run.out_s[2]))


def _burn(cpu_s: float) -> None:
    """Spend ``cpu_s`` seconds of this thread's CPU time."""
    end = time.thread_time() + cpu_s
    while time.thread_time() < end:
        pass


def test_cpu_time_per_frame_is_counted_for_the_stage_that_spent_it(list_source) -> None:
    """Each frame costs 20 ms of CPU in the model, 8 ms in the sink and 5 ms in a helper thread the sink starts
    (as a codec's own threads do); the source only sleeps. The run puts each where it was spent."""

    class Burning(ConcurrentBackend):
        def infer(self, batch):  # noqa: ANN001, ANN201
            _burn(0.020)
            return StubBackend.infer(self, batch)

    class EncodingSink(NullSink):
        def write(self, frame, annotated, result) -> None:  # noqa: ANN001
            _burn(0.008)
            helper = threading.Thread(target=_burn, args=(0.005,))
            helper.start()
            helper.join()

    n = 12
    run = Pipeline(list_source(n, delay_s=0.002), YoloSegModel(Burning(workers=2)), [EncodingSink()]).run()
    cpu = run.cpu_ms
    assert set(cpu) == {"decode", "infer", "post", "sinks", "other", "total"}
    assert 20 <= cpu["infer"] < 24 and 8 <= cpu["sinks"] < 11 and 5 <= cpu["other"] < 9, cpu
    assert cpu["decode"] < 3 and cpu["post"] < 8, cpu
    assert sum(v for k, v in cpu.items() if k != "total") == pytest.approx(cpu["total"], abs=0.01)
