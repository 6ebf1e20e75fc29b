from __future__ import annotations

import pytest

from rtseg.backends.base import ModelInfo
from rtseg.backends.registry import FORMATS, check_device, format_for, load_backend
from rtseg.errors import ConfigError, ModelError
from rtseg.exporters.onnx import export
from rtseg.pipeline.loading import load_runtime


@pytest.mark.parametrize(("name", "fmt"), [("a.pt", "torch"), ("b.YAML", "torch"), ("c.onnx", "onnx"),
                                         ("d.engine", "engine")])
def test_format_from_suffix(name, fmt) -> None:
    assert format_for(name) is FORMATS[fmt]


@pytest.mark.parametrize(("name", "message"), [("m.tflite", "unknown model file type"), ("weights", "no suffix")])
def test_unknown_formats(name, message) -> None:
    with pytest.raises(ModelError, match=message):
        format_for(name)


def test_backend_must_fit_the_file() -> None:
    with pytest.raises(ConfigError, match="cannot run m.onnx"):
        load_backend("m.onnx", backend="torch")
    with pytest.raises(ConfigError, match="cannot run m.pt .*export it first: rtseg export m.pt --format onnx"):
        load_backend("m.pt", backend="onnxruntime")  # the table alone: a .pt file is PyTorch's
    with pytest.raises(ModelError, match="not found"):
        load_runtime("missing/m.pt", backend="onnxruntime")  # the CPU policy exports it first
    with pytest.raises(ModelError, match="not found"):
        load_backend("missing/m.onnx")
    with pytest.raises(ConfigError, match="expected one of"):
        load_backend("m.pt", backend="tensorflow")


@pytest.mark.parametrize(("device", "half", "error"), [("tpu", False, ConfigError), ("cpu", True, ConfigError)])
def test_device_checks(device, half, error) -> None:
    with pytest.raises(error):
        check_device(device, half=half)


def test_export_format_checked() -> None:
    with pytest.raises(ConfigError, match="rtseg exports to onnx"):
        export("m.pt", "tflite")


def test_model_info_json_round_trip() -> None:
    info = ModelInfo(names=("a", "b"), imgsz=(320, 480), stride=32, end2end=True, dynamic=False)
    assert ModelInfo.from_json(info.to_json()) == info


def test_yaml_config_builds_an_untrained_model() -> None:
    backend = load_backend("yolo11n-seg.yaml")
    assert len(backend.info.names) == 80 and backend.info.imgsz == (640, 640) and not backend.info.end2end
    assert not load_backend("yolo26n-seg.yaml").info.end2end  # as Ultralytics' predict(): NMS unless nms=False
    assert load_backend("yolo26n-seg.yaml", nms=False).info.end2end


def test_auto_backend_runs_pt_weights_on_onnxruntime_from_a_cache(tmp_path, monkeypatch) -> None:
    from rtseg.backends.ort_backend import OrtBackend
    from rtseg.backends.torch_backend import TorchBackend
    from tests.support import YOLO11_WEIGHTS

    monkeypatch.setenv("RTSEG_CACHE", str(tmp_path))
    first = load_runtime(YOLO11_WEIGHTS)
    (cached,) = (tmp_path / "onnx").glob("yolo11n-seg-coco128-*.onnx")
    stamp = cached.stat().st_mtime_ns
    second = load_runtime(YOLO11_WEIGHTS)
    assert isinstance(first, OrtBackend) and isinstance(second, OrtBackend)
    assert cached.stat().st_mtime_ns == stamp and first.info == second.info  # reused, not exported again
    assert isinstance(load_runtime(YOLO11_WEIGHTS, backend="torch"), TorchBackend)
    assert isinstance(load_backend(YOLO11_WEIGHTS, device="cpu"), TorchBackend)  # the table alone: PyTorch
    assert first.info.names == load_backend(YOLO11_WEIGHTS, backend="torch").info.names


def test_device_auto_picks_cuda_only_when_there_is_one(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert check_device("auto", half=False) == "cpu"
    with pytest.raises(ConfigError, match="^half=True needs a CUDA device"):
        check_device("auto", half=True)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr("rtseg.backends.registry.no_nvidia_gpu", lambda: False)
    assert check_device("AUTO", half=True) == "cuda"


def test_device_auto_does_not_ask_pytorch_where_no_gpu_can_be(monkeypatch: pytest.MonkeyPatch) -> None:
    """Linux without NVIDIA's device files: the CPU, PyTorch not consulted (its import is most of start-up)."""
    import torch

    from rtseg.backends.registry import no_nvidia_gpu

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)  # would say cuda if it were asked
    monkeypatch.setattr("rtseg.backends.registry.no_nvidia_gpu", lambda: True)
    assert check_device("auto", half=False) == "cpu"
    monkeypatch.setattr("sys.platform", "linux")
    monkeypatch.setattr("pathlib.Path.exists", lambda self: str(self) == "/dev/dxg")  # WSL 2's GPU device
    assert no_nvidia_gpu() is False


def test_onnxruntime_workers_run_calls_at_once_with_the_same_outputs(tmp_path, monkeypatch) -> None:
    import threading

    import numpy as np

    from rtseg.backends.ort_backend import default_workers
    from tests.support import YOLO11_WEIGHTS

    monkeypatch.setenv("RTSEG_CACHE", str(tmp_path))
    one = load_runtime(YOLO11_WEIGHTS, backend="onnxruntime", workers=1)
    three = load_runtime(YOLO11_WEIGHTS, backend="onnxruntime", workers=3)
    assert (one.workers, three.workers) == (1, 3)
    assert load_runtime(YOLO11_WEIGHTS, backend="onnxruntime").workers == default_workers("cpu")
    rng = np.random.default_rng(0)
    inputs = [rng.random((1, 3, 64, 96), dtype=np.float32) for _ in range(6)]
    expected = [one.infer(x) for x in inputs]
    got: list = [None] * len(inputs)
    threads = [threading.Thread(target=lambda i=i: got.__setitem__(i, three.infer(inputs[i]))) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for (p, q), (ep, eq) in zip(got, expected):
        assert np.allclose(p, ep, atol=1e-4) and np.allclose(q, eq, atol=1e-4)


@pytest.mark.parametrize(("backend", "workers", "message"), [
    ("torch", 2, "only the ONNX Runtime backend"), ("auto", 0, r"^workers=0: expected 1\.\."),
    ("auto", 1000, r"^workers=1000: expected 1\.\.")])
def test_workers_are_checked(backend, workers, message) -> None:
    from tests.support import YOLO11_WEIGHTS

    with pytest.raises(ConfigError, match=message):
        load_backend(YOLO11_WEIGHTS, backend=backend, workers=workers)
    assert load_backend(YOLO11_WEIGHTS, backend="torch", workers=1).info.names  # 1 is every backend's count


def test_torch_channels_last_gives_the_same_outputs() -> None:
    """NHWC (the default on CUDA) is a layout change only."""
    import numpy as np
    import torch

    from rtseg.backends.torch_backend import TorchBackend
    from tests.support import YOLO11_WEIGHTS

    plain, nhwc = TorchBackend(str(YOLO11_WEIGHTS)), TorchBackend(str(YOLO11_WEIGHTS), channels_last=True)
    assert not plain._channels_last and nhwc._channels_last
    convs = [p for p in nhwc._model.backend.model.parameters() if p.dim() == 4]
    assert convs and all(p.is_contiguous(memory_format=torch.channels_last) for p in convs)
    x = np.random.default_rng(0).random((2, 3, 96, 160), dtype=np.float32)
    for a, b in zip(plain.infer(x), nhwc.infer(torch.from_numpy(x))):
        assert torch.allclose(a, b, rtol=1e-4, atol=1e-4 * float(a.abs().max()))
