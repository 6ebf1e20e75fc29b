"""Every numeric option refused at the edge, with its real range and its own name: through the real CLI
(exit 2, one line naming the flag, no traceback, before any model loads) and through the front door
(a ConfigError naming the parameter)."""

from __future__ import annotations

import math
import time
from pathlib import Path

import pytest

from rtseg.config import max_workers
from rtseg.errors import ConfigError
from tests.support import run_cli, write_video

QUICK_S = 10  # a refusal comes before PyTorch and the model load: about a second; a run would take far longer

RUN = [("--imgsz", "0"), ("--imgsz", "-5"), ("--imgsz", "100000"), ("--imgsz", "²"), ("--imgsz", "1e3"),
       ("--tile", "0"), ("--tile", "100000"), ("--workers", "1000"), ("--workers", "0"),
       ("--image-fps", "0"), ("--image-fps", "-5"), ("--image-fps", "nan"), ("--image-fps", "inf"),
       ("--classes", ",,,"), ("--classes", ""), ("--conf", "nan"), ("--conf", "2"),
       ("--iou", "-1"), ("--overlap", "inf"), ("--batch", "100000"), ("--max-frames", "0"),
       ("--trails", "-1"), ("--semantic-imgsz", "0"), ("--alpha", "nan"), ("--pad", "-1")]
BENCH = [("--batch", "0"), ("--batch", "1,0"), ("--imgsz", "0"), ("--imgsz", "320,100000"), ("--imgsz", ","),
         ("--imgsz", "²"), ("--workers", "auto,1000"), ("--frames", "0"), ("--repeats", "0"),
         ("--warmup", "-1"), ("--live", "nan"), ("--live", "0"), ("--synthetic", "100000x100000")]
EVAL = [("--imgsz", "0"), ("--imgsz", "100000"), ("--conf", "nan"), ("--iou", "2")]
TRAIN = [("--epochs", "0"), ("--batch", "0"), ("--imgsz", "100000"), ("--imgsz", "0"), ("--crop", "0"),
         ("--lr", "nan"), ("--lr", "-1"), ("--minutes", "-1"), ("--minutes", "inf"), ("--val-every", "1"),
         ("--colour", "inf")]
EXPORT = [("--imgsz", "0"), ("--imgsz", "100000"), ("--batch", "0"), ("--max-batch", "0"), ("--workspace", "nan"),
          ("--workspace", "0")]


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_video(tmp_path_factory.mktemp("ranges") / "clip.avi", frames=4)


def _refused(args: list[str], flag: str, *, quick: bool = True) -> str:
    start = time.monotonic()
    proc = run_cli(*args, timeout=120)
    elapsed = time.monotonic() - start
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith(f"rtseg: error: {flag}"), lines[0]
    if quick:
        assert elapsed < QUICK_S, f"refused after {elapsed:.1f} s"
    return lines[0]


@pytest.mark.parametrize(("flag", "value"), RUN)
def test_run_refuses_an_out_of_range_value_by_its_flag(clip: Path, tmp_path: Path, flag: str, value: str) -> None:
    _refused(["run", str(clip), "-o", str(tmp_path / "out.mp4"), flag, value], flag)
    assert not (tmp_path / "out.mp4").exists()


@pytest.mark.parametrize(("flag", "value"), BENCH)
def test_bench_refuses_each_swept_value_by_its_flag(tmp_path: Path, flag: str, value: str) -> None:
    args = ["bench", flag, value] + (["--synthetic", "64x64"] if flag != "--synthetic" else [])
    _refused(args + ["--json", str(tmp_path / "b.json")], flag)


@pytest.mark.parametrize(("flag", "value"), EVAL)
def test_eval_refuses_an_out_of_range_value_by_its_flag(tmp_path: Path, flag: str, value: str) -> None:
    _refused(["eval", "--model", str(tmp_path / "m.pt"), "--data", str(tmp_path), flag, value], flag)


@pytest.mark.parametrize(("flag", "value"), TRAIN)
def test_train_refuses_an_out_of_range_value_by_its_flag(tmp_path: Path, flag: str, value: str) -> None:
    _refused(["train", "--data", str(tmp_path), "--out", str(tmp_path / "m.pt"), flag, value], flag)
    assert not (tmp_path / "m.pt").exists()


@pytest.mark.parametrize(("flag", "value"), EXPORT)
def test_export_refuses_an_out_of_range_value_by_its_flag(tmp_path: Path, flag: str, value: str) -> None:
    fmt = ["--format", "engine"] if flag in ("--batch", "--max-batch", "--workspace") else []
    _refused(["export", str(tmp_path / "m.pt"), *fmt, flag, value], flag)


def test_the_message_states_the_range_and_the_way_past_a_size_limit(clip: Path, tmp_path: Path) -> None:
    line = _refused(["run", str(clip), "-o", str(tmp_path / "o.mp4"), "--imgsz", "100000"], "--imgsz")
    assert line.startswith("rtseg: error: --imgsz 100000: expected 32..4096") and "RTSEG_NO_LIMITS=1" in line
    line = _refused(["run", str(clip), "-o", str(tmp_path / "o.mp4"), "--workers", "1000"], "--workers")
    assert f"expected 1..{max_workers()}" in line
    line = _refused(["bench", "--synthetic", "64x64", "--batch", "0"], "--batch")
    assert line == "rtseg: error: --batch 0: expected 1..256"  # not an --imgsz error


@pytest.mark.parametrize("value", ["²", "0,99"])
def test_run_refuses_classes_the_model_does_not_have(clip: Path, tmp_path: Path, value: str) -> None:
    line = _refused(["run", str(clip), "-o", str(tmp_path / "o.mp4"), "--classes", value], "--classes",
                    quick=False)  # names and ids are the model's: known once it loads
    assert "person" in line or "neither a class id nor a class name" in line


def test_values_at_the_ends_of_their_ranges_still_run(clip: Path, tmp_path: Path) -> None:
    proc = run_cli("run", str(clip), "-o", str(tmp_path / "o.mp4"), "--imgsz", "32", "--conf", "1", "--iou", "0",
                   "--workers", str(max_workers()), "--max-frames", "1", "--classes", "PERSON,2", "-q")
    assert proc.returncode == 0, proc.stderr


# the front door: the same table, messages in parameters


@pytest.mark.parametrize(("options", "start"), [
    ({"imgsz": 0}, "imgsz=0: expected 32..4096"),
    ({"imgsz": 100000}, "imgsz=100000: expected 32..4096"),
    ({"tile": 0}, "tile=0: expected 32..8192"),
    ({"conf": math.nan}, "conf=nan: expected a finite number"),
    ({"workers": 1000}, "workers=1000: expected 1.."),
    ({"classes": ",,,"}, "classes=',,,': name at least one"),
    ({"classes": []}, "classes=[]: name at least one"),
    ({"imgsz": 640.5}, "imgsz=640.5: expected a whole number"),
])
def test_load_model_refuses_before_loading(options: dict, start: str) -> None:
    import rtseg

    with pytest.raises(ConfigError) as info:
        rtseg.load_model("no-such-model.pt", **options)  # refused before the missing file is noticed
    assert str(info.value).startswith(start)


@pytest.mark.parametrize(("options", "start"), [
    ({"image_fps": 0.0}, "image_fps=0: expected above 0, up to 1000"),
    ({"image_fps": math.nan}, "image_fps=nan"),
    ({"image_fps": -5.0}, "image_fps=-5"),
    ({"batch": 0}, "batch=0"),
    ({"imgsz": 0}, "imgsz=0"),
    ({"trails": -1}, "trails=-1"),
])
def test_run_refuses_before_any_source_opens(tmp_path: Path, options: dict, start: str) -> None:
    import rtseg

    with pytest.raises(ConfigError) as info:
        rtseg.run(str(tmp_path / "missing.mp4"), out=tmp_path / "o.mp4", **options)
    assert str(info.value).startswith(start)
    assert not (tmp_path / "o.mp4").exists()


def test_export_and_bench_refuse_before_loading(tmp_path: Path) -> None:
    import rtseg
    from rtseg.bench.core import run_bench

    with pytest.raises(ConfigError, match=r"^imgsz=0: expected 32\.\.4096"):
        rtseg.export(tmp_path / "missing.pt", "onnx", imgsz=0)
    with pytest.raises(ConfigError, match=r"^batch=0: expected 1\.\.256"):
        run_bench(model=str(tmp_path / "missing.pt"), synthetic="64x64", batches=[1, 0])
    with pytest.raises(ConfigError, match=r"^live_fps=nan"):
        run_bench(model=str(tmp_path / "missing.pt"), synthetic="64x64", live_fps=math.nan)


def test_load_model_matches_class_names_without_case_and_refuses_unicode_digits() -> None:
    import rtseg

    assert rtseg.load_model(classes="PERSON,Dog").instance.classes == [0, 2]
    with pytest.raises(ConfigError, match=r"^classes='²': '²' is neither a class id nor a class name"):
        rtseg.load_model(classes="²")
    with pytest.raises(ConfigError, match=r"^classes='7': this model has class ids 0\.\.2 \(0 person, 1 cat"):
        rtseg.load_model(classes="7")
