"""The Python front door, called as a user calls it: rtseg.load_model(...).predict/.stream, rtseg.run,
rtseg.export, the docstring examples and the README's Python section."""

from __future__ import annotations

import doctest
import json
import re
import subprocess
import sys
import threading
from pathlib import Path

import cv2
import numpy as np
import pytest

import rtseg
from rtseg.errors import ConfigError, SourceError
from tests.support import ROOT, count_frames, write_video


@pytest.fixture(scope="module")
def seg() -> rtseg.Segmenter:
    return rtseg.load_model()


@pytest.fixture(scope="module")
def photo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from ultralytics.utils import ASSETS

    return Path(ASSETS) / "zidane.jpg"  # a real photo with two people, shipped with Ultralytics


def test_import_rtseg_is_light() -> None:
    heavy = "('torch', 'cv2', 'ultralytics', 'onnxruntime')"
    code = f"import sys, rtseg; print(sorted(m for m in {heavy} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_predict_finds_people_on_a_real_photo(seg: rtseg.Segmenter, photo: Path) -> None:
    image = cv2.imread(str(photo))
    [from_array] = seg.predict(image)
    [from_path] = seg.predict(photo)
    assert from_array.image_hw == image.shape[:2] and len(from_array) >= 1
    assert "person" in from_array.class_names
    np.testing.assert_allclose(from_array.boxes_xyxy, from_path.boxes_xyxy, atol=1e-3)
    people = from_array[from_array.class_ids == 0]
    assert isinstance(people, rtseg.FrameResult) and set(people.class_names) == {"person"}
    record = from_array.to_dict(source=str(photo))
    assert json.loads(json.dumps(record))["detections"][0]["mask"]["size"] == list(image.shape[:2])
    annotated = seg.annotate(image, from_array)
    assert annotated.shape == image.shape and (annotated != image).any() and not (image == 0).all()


def test_predict_takes_lists_globs_and_folders(seg: rtseg.Segmenter, tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 255, (120 + 40 * i, 160, 3), dtype=np.uint8) for i in range(3)]
    for i, im in enumerate(images):
        cv2.imwrite(str(tmp_path / f"im{i}.png"), im)
    shapes = [(120, 160), (160, 160), (200, 160)]
    assert [r.image_hw for r in seg.predict(images)] == shapes
    assert [r.image_hw for r in seg.predict(str(tmp_path / "*.png"))] == shapes
    assert [r.image_hw for r in seg.predict(tmp_path)] == shapes
    assert [r.frame_index for r in seg.predict([tmp_path / "im2.png", tmp_path / "im0.png"])] == [0, 1]
    with pytest.raises(SourceError):
        seg.predict(np.zeros((10, 10, 5), np.float32))


def test_stream_a_file_in_order(seg: rtseg.Segmenter, video30: Path) -> None:
    seen = [(f.index, r.frame_index, r.image_hw) for f, r in seg.stream(video30)]
    assert seen == [(i, i, (240, 320)) for i in range(30)]
    early = [f.index for f, _ in seg.stream(video30, max_frames=4)]
    assert early == [0, 1, 2, 3]


def test_stream_stops_cleanly_when_the_loop_breaks(seg: rtseg.Segmenter, video30: Path) -> None:
    before = threading.active_count()
    for frame, _ in seg.stream(video30):
        if frame.index == 2:
            break
    deadline = __import__("time").monotonic() + 10
    while threading.active_count() > before and __import__("time").monotonic() < deadline:
        __import__("time").sleep(0.05)
    assert threading.active_count() <= before  # no pipeline thread left running


def test_stream_a_live_source(seg: rtseg.Segmenter, tcp_stream: str) -> None:
    frames = [(f, r) for f, r in seg.stream(tcp_stream, max_frames=12)]
    # a live source drops its oldest frames rather than fall behind: some of the 12 read may never show
    indices = [f.index for f, _ in frames]
    assert 3 <= len(frames) <= 12 and indices == sorted(set(indices))
    assert all(f.image.shape == (240, 320, 3) and r.image_hw == (240, 320) for f, r in frames)
    assert {f.source for f, _ in frames} == {tcp_stream}


def test_run_writes_what_the_cli_writes(video30: Path, tmp_path: Path) -> None:
    seen: list[int] = []
    totals: list[int | None] = []
    summary = rtseg.run(video30, out=tmp_path / "o.mp4", jsonl=tmp_path / "o.jsonl", conf=0.01,
                        on_start=totals.append, on_frame=lambda f, r: seen.append(f.index))
    assert summary.frames == 30 and not summary.interrupted and totals == [30] and seen == list(range(30))
    assert summary.outputs == [str(tmp_path / "o.mp4"), str(tmp_path / "o.jsonl")]
    assert count_frames(tmp_path / "o.mp4") == (30, (240, 320))
    records = [json.loads(line) for line in (tmp_path / "o.jsonl").read_text().splitlines()]
    assert [r["frame"] for r in records] == list(range(30))


def test_run_with_a_loaded_segmenter_and_several_sources(seg: rtseg.Segmenter, tmp_path: Path) -> None:
    a = write_video(tmp_path / "a.avi", frames=6)
    b = write_video(tmp_path / "b.avi", frames=4, seed=1)
    summary = rtseg.run([a, b], seg, jsonl=tmp_path / "r.jsonl")
    assert summary.frames == 10
    assert sorted(Path(p).name for p in summary.outputs) == ["r_a.jsonl", "r_b.jsonl"]
    with pytest.raises(ConfigError, match="^conf"):
        rtseg.run(a, seg, conf=0.5)


def test_errors_name_the_parameter(video30: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"^conf=2"):
        rtseg.load_model(conf=2)
    with pytest.raises(ConfigError, match=r"^classes="):
        rtseg.load_model(classes=",,")
    with pytest.raises(ConfigError, match=r"^track='nope'"):
        rtseg.run(video30, jsonl=tmp_path / "x.jsonl", track="nope")


def test_export_then_load_the_onnx(tmp_path: Path, photo: Path) -> None:
    path = rtseg.export(rtseg.DEFAULT_MODEL, "onnx", out=tmp_path / "m.onnx")
    assert path == tmp_path / "m.onnx" and path.is_file()
    onnx_seg = rtseg.load_model(path)
    assert onnx_seg.names == ("person", "cat", "dog")
    assert len(onnx_seg.predict(photo)[0]) >= 1


def test_load_model_takes_a_backend_object(photo: Path) -> None:
    from rtseg.backends.registry import load_backend

    backend = load_backend(str(ROOT / "tests" / "assets" / "yolo11n-seg-coco128.pt"), backend="torch", device="cpu")
    seg = rtseg.load_model(backend, conf=0.1)  # the coco128 test weights are weak
    assert len(seg.names) == 80 and len(seg.predict(photo)[0]) >= 1


def _run_doctests(module: object, globs: dict) -> doctest.TestResults:
    finder, runner = doctest.DocTestFinder(), doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    for test in finder.find(module, globs={**vars(module), **globs}):
        runner.run(test)
    return runner.summarize(verbose=False)


def test_docstring_examples_run(video30: Path, tmp_path: Path) -> None:
    import rtseg.api
    import rtseg.errors
    import rtseg.pipeline.streams
    import rtseg.types

    globs = {"clip": str(video30), "tmp": tmp_path, "Path": Path}
    for module in (rtseg.api, rtseg.types, rtseg.pipeline.streams, rtseg.errors):
        result = _run_doctests(module, globs)
        assert result.failed == 0 and result.attempted > 0, module.__name__
    for name in rtseg.__all__:  # every public name shows how to use it
        value = getattr(rtseg, name)
        if callable(value):
            assert "Example:" in (value.__doc__ or ""), name


def test_readme_python_section_runs(tmp_path: Path, photo: Path) -> None:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Python", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, re.S)
    assert blocks, "README has no Python example"
    write_video(tmp_path / "clip.mp4", frames=12)
    cv2.imwrite(str(tmp_path / "photo.jpg"), cv2.imread(str(photo)))
    script = tmp_path / "readme_example.py"
    script.write_text("\n".join(blocks))
    proc = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (tmp_path / "clip_seg.mp4").is_file() and (tmp_path / "clip.jsonl").is_file()
