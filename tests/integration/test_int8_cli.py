"""INT8 on the CPU through the real CLI: export with calibration and metadata, the accuracy gate's messages,
``rtseg run --precision int8`` (built once, then cached), ``rtseg bench --precision fp32,int8``, and the
bad inputs (no calibration images, a --val set of other classes, a corrupt INT8 file) as one-line errors.

Small input sizes and a few calibration frames keep each test short; the accuracy figures themselves are
measured on held-out data by ``benchmarks/int8.py`` and quoted in the model card.
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from rtseg.config import DEFAULT_MODEL
from tests.support import run_cli, write_video

SEMANTIC = Path(DEFAULT_MODEL).with_name("linknet-pets.pt")


def _images(folder: Path, n: int = 3) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(n):
        image = rng.integers(60, 140, (120, 160, 3), dtype=np.uint8)
        cv2.circle(image, (40 + 20 * i, 60), 25, (40, 200, 60), -1)
        cv2.imwrite(str(folder / f"{i:03d}.jpg"), image)
    return folder


def _meta(path: Path) -> dict:
    import onnx

    return {p.key: p.value for p in onnx.load(str(path)).metadata_props}


def _one_error(proc) -> str:  # noqa: ANN001
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("rtseg: error: "), proc.stderr
    return lines[0]


@pytest.fixture(scope="module")
def int8_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bundled instance model exported to INT8 at imgsz 64, calibrated on 2 of 3 generated images."""
    tmp = tmp_path_factory.mktemp("int8")
    out = tmp / "model-int8.onnx"
    proc = run_cli("export", str(DEFAULT_MODEL), "--int8", "--calib", str(_images(tmp / "calib")),
                   "--calib-frames", "2", "--imgsz", "64", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == str(out)
    assert "accuracy was not checked" in proc.stderr  # without --val, the user is told
    assert "WARNING:root" not in proc.stderr and "pre-processing" not in proc.stderr  # the quantizer's advice
    return out


def test_export_int8_records_precision_and_calibration(int8_model: Path) -> None:
    meta = _meta(int8_model)
    quant = json.loads(meta["rtseg_quantization"])
    assert quant["precision"] == "int8"
    assert quant["calibration"] == {"name": "calib", "frames": 2, "input_hw": quant["calibration"]["input_hw"]}
    assert max(quant["calibration"]["input_hw"]) == 64  # letterboxed at the export's size, as at run time
    assert quant["accuracy"] is None
    assert json.loads(meta["rtseg"])["names"] == ["person", "cat", "dog"]  # rtseg's metadata kept
    import onnx

    ops = {n.op_type for n in onnx.load(str(int8_model)).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops  # QDQ


def test_int8_onnx_runs_like_any_onnx(int8_model: Path, tmp_path: Path) -> None:
    import rtseg

    seg = rtseg.load_model(int8_model)
    assert type(seg.instance.backend).__name__ == "OrtBackend"
    image = cv2.imread(str(_images(tmp_path / "img", 1) / "000.jpg"))
    (result,) = seg.predict(image)
    assert result.image_hw == image.shape[:2]
    video = write_video(tmp_path / "clip.avi", frames=3, size_wh=(96, 64))
    proc = run_cli("run", str(video), "--model", str(int8_model), "--jsonl", str(tmp_path / "r.jsonl"), "-q")
    assert proc.returncode == 0, proc.stderr
    assert len((tmp_path / "r.jsonl").read_text().splitlines()) == 3


def test_corrupt_int8_file_is_one_line(int8_model: Path, tmp_path: Path) -> None:
    bad = tmp_path / "cut-int8.onnx"
    bad.write_bytes(int8_model.read_bytes()[: int8_model.stat().st_size // 2])
    video = write_video(tmp_path / "clip.avi", frames=2, size_wh=(96, 64))
    line = _one_error(run_cli("run", str(video), "--model", str(bad), "--jsonl", str(tmp_path / "r.jsonl")))
    assert "cut-int8.onnx" in line
    assert not (tmp_path / "r.jsonl").exists()


def test_calibration_source_without_images_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("no images here")
    line = _one_error(run_cli("export", str(DEFAULT_MODEL), "--int8", "--calib", str(tmp_path / "empty"),
                              "--out", str(tmp_path / "m.onnx")))
    assert "--calib" in line and "no readable images" in line
    assert not (tmp_path / "m.onnx").exists()


def test_int8_needs_calib(tmp_path: Path) -> None:
    line = _one_error(run_cli("export", str(DEFAULT_MODEL), "--int8", "--out", str(tmp_path / "m.onnx")))
    assert "--calib" in line


def test_val_set_of_other_classes_is_one_line(tmp_path: Path) -> None:
    data = tmp_path / "cars"
    _images(data / "images", 2)
    (data / "masks").mkdir()
    for i in range(2):
        cv2.imwrite(str(data / "masks" / f"{i:03d}.png"), np.ones((120, 160), np.uint8))
    (data / "classes.txt").write_text("car\n")
    line = _one_error(run_cli("export", str(DEFAULT_MODEL), "--int8", "--calib", str(data / "images"),
                              "--calib-frames", "1", "--imgsz", "64", "--val", str(data), "--val-labels", "instance",
                              "--out", str(tmp_path / "m.onnx")))
    assert "no class in common" in line
    assert not (tmp_path / "m.onnx").exists()


def test_run_precision_int8_builds_once_then_reuses(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RTSEG_CACHE", str(tmp_path / "cache"))
    video = write_video(tmp_path / "clip.avi", frames=4, size_wh=(96, 64))
    args = ("run", str(video), "--precision", "int8", "--imgsz", "64", "--jsonl", str(tmp_path / "r.jsonl"), "-q")
    first = run_cli(*args)
    assert first.returncode == 0, first.stderr
    assert "INT8: calibrating" in first.stderr and "clip.avi" in first.stderr  # the notice: the source's frames
    cached = list((tmp_path / "cache" / "int8").glob("*.onnx"))
    assert len(cached) == 1
    assert json.loads(_meta(cached[0])["rtseg_quantization"])["calibration"]["name"] == "clip.avi"
    second = run_cli(*args)
    assert second.returncode == 0, second.stderr
    assert "INT8: calibrating" not in second.stderr  # cached
    assert len((tmp_path / "r.jsonl").read_text().splitlines()) == 4


def test_run_precision_rejects_unknown_value(tmp_path: Path) -> None:
    video = write_video(tmp_path / "clip.avi", frames=2, size_wh=(96, 64))
    line = _one_error(run_cli("run", str(video), "--precision", "int4", "--jsonl", str(tmp_path / "r.jsonl")))
    assert "--precision" in line and "int8" in line


def test_bench_precision_rows_side_by_side(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RTSEG_CACHE", str(tmp_path / "cache"))
    proc = run_cli("bench", "--synthetic", "128x96", "--imgsz", "64", "--precision", "fp32,int8", "--frames", "4",
                   "--warmup", "1", "--repeats", "1", "--json", str(tmp_path / "b.json"))
    assert proc.returncode == 0, proc.stderr
    rows = json.loads((tmp_path / "b.json").read_text())["configs"]
    assert [r["precision"] for r in rows] == ["fp32", "int8"]
    assert all(r["time_to_first_frame_s"] > 0 for r in rows)
    assert "int8 vs fp32" in proc.stdout


def test_semantic_int8_export(tmp_path: Path) -> None:
    out = tmp_path / "pets-int8.onnx"
    proc = run_cli("export", str(SEMANTIC), "--int8", "--calib", str(_images(tmp_path / "calib", 2)),
                   "--calib-frames", "2", "--imgsz", "64", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    assert json.loads(_meta(out)["rtseg_quantization"])["precision"] == "int8"
    import rtseg

    seg = rtseg.load_model(out)
    assert seg.semantic is not None and seg.semantic_names == ("background", "pet")
