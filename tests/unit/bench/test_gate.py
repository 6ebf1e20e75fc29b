"""The accuracy gate: refuses an INT8 copy that lost more than max_drop, unless forced; records the figures."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from rtseg.bench import gate
from rtseg.errors import ConfigError
from rtseg.exporters.quantize import QUANT_METADATA_KEY, quantization_info


def _tiny_onnx(path: Path, meta: dict[str, str]) -> Path:
    import onnx
    from onnx import helper

    node = helper.make_node("Identity", ["x"], ["y"])
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1])],
                              [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1])])
    model = helper.make_model(graph)
    for key, value in meta.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(model, str(path))
    return path


@pytest.fixture
def fake_int8(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # noqa: ANN201
    """export_int8 with quantization and measurement faked: (weights, calib, set the INT8 score)."""
    weights = _tiny_onnx(tmp_path / "fp32.onnx", {})
    calib = tmp_path / "calib"
    calib.mkdir()
    cv2.imwrite(str(calib / "a.png"), np.zeros((8, 8, 3), np.uint8))
    scores = {"fp32": 0.80, "int8": 0.80}

    def quantize(fp32, out, **kw):  # noqa: ANN001, ANN003, ANN202
        meta = {"precision": "int8", "calibration": {"name": kw["calib_name"], "frames": len(kw["frames"])}}
        return _tiny_onnx(Path(out), {QUANT_METADATA_KEY: json.dumps(meta)})

    def measure(model, dataset, **_):  # noqa: ANN001, ANN003, ANN202
        which = "fp32" if Path(model).name == "fp32.onnx" else "int8"
        return {"task": "semantic", "images": 3, "mIoU": scores[which]}

    monkeypatch.setattr(gate, "quantize_onnx", quantize)
    monkeypatch.setattr(gate, "measure", measure)
    monkeypatch.setattr(gate, "load_val", lambda *a: object())
    monkeypatch.setattr("rtseg.models.task.model_task", lambda m: "semantic")
    return weights, calib, scores


def test_a_large_drop_is_refused_and_nothing_written(fake_int8, tmp_path: Path) -> None:  # noqa: ANN001
    weights, calib, scores = fake_int8
    scores["int8"] = 0.78
    out = tmp_path / "m-int8.onnx"
    with pytest.raises(gate.AccuracyGateError, match=r"loses 0.0200 on val \(mIoU 0.8000 -> 0.7800\).*max_drop=0.01"):
        gate.export_int8(weights, calib=calib, val=tmp_path / "val", out=out)
    assert not out.exists()


def test_force_writes_it_and_says_so(fake_int8, tmp_path: Path) -> None:  # noqa: ANN001
    weights, calib, scores = fake_int8
    scores["int8"] = 0.78
    out = gate.export_int8(weights, calib=calib, val=tmp_path / "val", out=tmp_path / "m.onnx", force=True)
    info = quantization_info(out)
    assert info["accuracy"]["passed"] is False and info["accuracy"]["drop"] == pytest.approx(0.02)
    assert any("--force" in line for line in gate.summary_lines(info))


def test_within_max_drop_is_written_with_its_figures(fake_int8, tmp_path: Path) -> None:  # noqa: ANN001
    weights, calib, scores = fake_int8
    scores["int8"] = 0.795
    out = gate.export_int8(weights, calib=calib, val=tmp_path / "val", out=tmp_path / "m.onnx")
    acc = quantization_info(out)["accuracy"]
    assert acc["passed"] and acc["fp32"]["mIoU"] == 0.80 and acc["int8"]["mIoU"] == 0.795


def test_without_val_accuracy_is_unchecked(fake_int8, tmp_path: Path) -> None:  # noqa: ANN001
    weights, calib, _ = fake_int8
    out = gate.export_int8(weights, calib=calib, out=tmp_path / "m.onnx")
    info = quantization_info(out)
    assert info["accuracy"] is None
    assert any("not checked" in line for line in gate.summary_lines(info))


@pytest.mark.parametrize("bad", [-0.1, 1.5, float("nan"), True])
def test_max_drop_range(bad: float) -> None:
    with pytest.raises(ConfigError, match="max_drop="):
        gate.check_max_drop(bad)


def test_needs_calib(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="calib=SOURCE"):
        gate.export_int8(tmp_path / "w.pt")
