"""The pipeline schedules model stages through their protocols alone (rtseg.models.base): batching, splitting
outputs per frame, workers, PyTorch threads and interrupting sources all belong to the stage or the source."""

from __future__ import annotations

import ast
import threading
from pathlib import Path

import numpy as np
import pytest
import torch

from rtseg.models.base import InstanceStage, SemanticStage, as_semantic_stage
from rtseg.models.classmap import ClassMap, RemappedSemantic
from rtseg.models.semantic import SemanticModel
from rtseg.models.tiling import TiledSemantic, TiledYoloSeg
from rtseg.models.yolo_seg import YoloSegModel
from rtseg.pipeline import core
from rtseg.pipeline.core import Pipeline, Stream
from rtseg.sources.base import Source
from rtseg.types import FrameResult
from tests.fakes import ColourBackend, ListSource, StubBackend, StubSemantic


def test_the_pipeline_module_does_not_probe_models_or_backends() -> None:
    path = Path(core.__file__)
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith(("rtseg.models", "rtseg.backends")):
            assert node.module == "rtseg.models.base", f"{path.name}:{node.lineno} imports {node.module}"
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in (
                "getattr", "hasattr", "isinstance", "type"):
            probed = " ".join(ast.unparse(arg) for arg in node.args[:2])
            assert not any(word in probed for word in ("model", "semantic", "backend", "prep", "Prepared", "Tiled",
                                                       "workers", "device", "computes_with_torch", "interrupt")), (
                f"{path.name}:{node.lineno}: {ast.unparse(node)}")


class SpyBackend(StubBackend):
    def __init__(self) -> None:
        super().__init__()
        self.calls: list[int] = []

    def infer(self, batch):  # noqa: ANN001, ANN201
        self.calls.append(len(batch))
        preds, protos = super().infer(batch)
        preds[:, 0, 4] = torch.arange(len(batch)) / 10 + 0.5  # each frame's place in its call
        return preds, protos


def test_infer_frames_makes_one_call_per_input_shape_and_splits_it_per_frame() -> None:
    backend = SpyBackend()
    model = YoloSegModel(backend)
    images = [np.zeros((64, 64, 3), np.uint8), np.zeros((64, 128, 3), np.uint8), np.zeros((64, 64, 3), np.uint8)]
    preps = [model.prepare([im]) for im in images]
    raw = model.infer_frames(preps)
    assert sorted(backend.calls) == [1, 2] and len(raw) == 3
    assert [tuple(p.shape[:1]) for p, _ in raw] == [(1,), (1,), (1,)]
    assert [round(float(p[0, 0, 4]), 2) for p, _ in raw] == [0.5, 0.5, 0.6]  # frames 0 and 2 shared a call
    results = [model.finish(r, p, [i])[0] for i, (r, p) in enumerate(zip(raw, preps))]
    assert [r.image_hw for r in results] == [(64, 64), (64, 128), (64, 64)]


def test_the_stages_implement_the_protocols() -> None:
    class Served(StubBackend):
        workers, computes_with_torch = 3, True

    yolo = YoloSegModel(Served())
    tiled = TiledYoloSeg(yolo, tile=32)
    assert isinstance(yolo, InstanceStage) and isinstance(tiled, InstanceStage)
    assert (yolo.max_batch, yolo.workers, yolo.uses_torch_cpu, yolo.device.type) == (None, 3, True, "cpu")
    assert (tiled.max_batch, tiled.workers, tiled.uses_torch_cpu) == (1, 3, True)
    assert (YoloSegModel(StubBackend()).workers, YoloSegModel(StubBackend()).uses_torch_cpu) == (1, False)
    semantic = SemanticModel(ColourBackend())
    for stage in (semantic, TiledSemantic(semantic, tile=64), RemappedSemantic(semantic, ClassMap(("a", "b", "c")))):
        assert isinstance(stage, SemanticStage) and as_semantic_stage(stage) is stage
        assert stage.device == torch.device("cpu") and stage.uses_torch_cpu is False


class FakeStage:
    """An instance stage that is no YoloSegModel: takes 2 frames per call, 2 calls at once."""

    max_batch, workers, device, uses_torch_cpu = 2, 2, None, False

    def __init__(self) -> None:
        self.calls: list[int] = []
        self.lock = threading.Lock()
        self.both = threading.Barrier(2, timeout=5)

    def prepare(self, images):  # noqa: ANN001, ANN201
        return images[0].shape[:2]

    def infer_frames(self, prepared):  # noqa: ANN001, ANN201
        with self.lock:
            self.calls.append(len(prepared))
            n = len(self.calls)
        if n <= 2:
            try:
                self.both.wait()  # the first two calls must be in flight together
            except threading.BrokenBarrierError:
                pass
        return [f"raw{i}" for i in range(len(prepared))]

    def finish(self, raw, prepared, frame_indices):  # noqa: ANN001, ANN201
        assert raw.startswith("raw")
        return [FrameResult.empty(frame_indices[0], prepared)]


def test_the_pipeline_runs_any_instance_stage_by_its_protocol() -> None:
    stage = FakeStage()
    streams = [Stream(ListSource(5)), Stream(ListSource(5)), Stream(ListSource(5))]
    pipeline = Pipeline.multi(streams, stage)
    assert pipeline.batch == 2 and pipeline.workers == 2  # min(3 streams, max_batch); the stage's workers
    out = [(f.stream, r.frame_index) for f, r in pipeline]
    assert max(stage.calls) == 2 and sum(stage.calls) == 15 and not stage.both.broken
    for s in range(3):
        assert [i for st, i in out if st == s] == list(range(5))
    with pytest.raises(ValueError, match="at most 2"):
        Pipeline(ListSource(1), FakeStage(), batch=3)


@pytest.mark.parametrize("uses_torch_cpu", [True, False])
def test_pytorch_threads_follow_the_stages(uses_torch_cpu) -> None:
    seen = []

    class Labels:
        device = None

        def __init__(self) -> None:
            self.uses_torch_cpu = uses_torch_cpu

        def __call__(self, images):  # noqa: ANN001, ANN204
            seen.append(torch.get_num_threads())
            return [np.zeros(im.shape[:2], np.uint8) for im in images]

    before = torch.get_num_threads()
    Pipeline(ListSource(3), None, semantic=Labels()).run()
    assert seen and set(seen) == ({before} if uses_torch_cpu else {1})
    assert torch.get_num_threads() == before


def test_a_plain_function_is_a_semantic_stage() -> None:
    stage = as_semantic_stage(StubSemantic(0.0))  # only __call__ (and names)
    assert stage.device is None and stage.uses_torch_cpu is False
    assert [r.semantic.shape for _, r in Pipeline(ListSource(2), None, semantic=lambda ims: [
        np.ones(im.shape[:2], np.uint8) for im in ims])] == [(64, 64), (64, 64)]
    with pytest.raises(TypeError, match="semantic"):
        as_semantic_stage(42)  # type: ignore[arg-type]


def test_sources_inherit_a_no_op_interrupt_and_the_pipeline_calls_it() -> None:
    interrupted = []

    class Quiet(ListSource, Source):  # the protocol's default
        pass

    class Loud(ListSource, Source):
        def interrupt(self) -> None:
            interrupted.append(True)

    assert Quiet(1).interrupt() is None
    Pipeline.multi([Stream(Quiet(2)), Stream(Loud(2)), Stream(ListSource(2))], YoloSegModel(StubBackend())).run()
    assert interrupted == [True]
