"""The INT8 building blocks: calibration frames from folders and videos, what stays FP32, the metadata."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from rtseg.errors import ConfigError
from rtseg.exporters import quantize as q
from tests.support import write_video


def _folder(path: Path, n: int) -> Path:
    path.mkdir(parents=True)
    for i in range(n):
        cv2.imwrite(str(path / f"{i:03d}.png"), np.full((20, 30, 3), i, np.uint8))
    return path


def test_folder_frames_spread_over_the_sorted_files(tmp_path: Path) -> None:
    frames = q.calibration_frames(_folder(tmp_path / "f", 10), 4)
    assert [int(f[0, 0, 0]) for f in frames] == [0, 3, 6, 9]  # first, last and evenly between


def test_video_frames(tmp_path: Path) -> None:
    frames = q.calibration_frames(write_video(tmp_path / "v.avi", frames=6, size_wh=(64, 48)), 4)
    assert len(frames) == 4 and frames[0].shape == (48, 64, 3)


@pytest.mark.parametrize("make", ["empty", "garbage", "missing"])
def test_no_images_is_one_line(tmp_path: Path, make: str) -> None:
    source = tmp_path / "calib"
    if make != "missing":
        source.mkdir()
    if make == "garbage":
        (source / "a.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(ConfigError, match=r"calib=.*calib") as err:
        q.calibration_frames(source, 8)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("frames", [0, -1, 5000, 2.5, True])
def test_frame_count_is_checked(frames: object) -> None:
    with pytest.raises(ConfigError, match="calib_frames="):
        q.check_calib_frames(frames)  # type: ignore[arg-type]


def test_precision_is_checked() -> None:
    assert q.check_precision("int8") == "int8"
    with pytest.raises(ConfigError, match="precision='int4'"):
        q.check_precision("int4")


def _graph(names_ops: list[tuple[str, str]]):  # noqa: ANN202
    import onnx
    from onnx import helper

    nodes = [helper.make_node(op, [f"x{i}"], [f"x{i + 1}"], name=name) for i, (name, op) in enumerate(names_ops)]
    return helper.make_model(helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x0", onnx.TensorProto.FLOAT,
                                                                                        None)], []))


def test_yolo_head_tail_and_last_branch_convs_stay_fp32() -> None:
    model = _graph([("/model.0/conv/Conv", "Conv"), ("/model.23/cv2.0/cv2.0.0/conv/Conv", "Conv"),
                    ("/model.23/cv2.0/cv2.0.2/Conv", "Conv"), ("/model.23/cv3.0/cv3.0.2/Conv", "Conv"),
                    ("/model.23/cv4.0/cv4.0.2/Conv", "Conv"), ("/model.23/proto/cv3/conv/Conv", "Conv"),
                    ("/model.23/dfl/conv/Conv", "Conv"), ("/model.23/Concat_30", "Concat"),
                    ("/model.23/Sigmoid", "Sigmoid")])
    excluded = set(q.nodes_to_exclude(model, "segment"))
    assert excluded == {"/model.23/dfl/conv/Conv", "/model.23/Concat_30", "/model.23/Sigmoid",
                        "/model.23/cv2.0/cv2.0.2/Conv", "/model.23/cv3.0/cv3.0.2/Conv", "/model.23/cv4.0/cv4.0.2/Conv"}
    assert q.nodes_to_exclude(model, "semantic") == []


def test_quantization_info_of_a_plain_file(tmp_path: Path) -> None:
    assert q.quantization_info(tmp_path / "missing.onnx") is None
    (tmp_path / "junk.onnx").write_bytes(b"junk")
    assert q.quantization_info(tmp_path / "junk.onnx") is None
    assert not q.is_int8(tmp_path / "junk.onnx")


def test_fingerprint_follows_the_source(tmp_path: Path) -> None:
    folder = _folder(tmp_path / "f", 2)
    before = q.source_fingerprint(folder)
    assert q.source_fingerprint(folder) == before
    cv2.imwrite(str(folder / "new.png"), np.zeros((4, 4, 3), np.uint8))
    assert q.source_fingerprint(folder) != before
