"""Sinks: video files (H.264 presets, sizes, colours), JSON lines with RLE masks, image folders, writability."""

from __future__ import annotations

import json

import numpy as np
import pytest
from pycocotools import mask as mask_utils

from rtseg.errors import ConfigError, SinkError
from rtseg.sinks import ImageFolderSink, JsonlSink, VideoFileSink, check_writable
from rtseg.sinks.video import auto_preset
from rtseg.types import Frame
from tests.fakes import make_result
from tests.support import count_frames, x264_settings


def test_video_sink_h264_with_source_fps_and_size(tmp_path) -> None:
    import av

    sink = VideoFileSink(tmp_path / "o.mp4", fps=12.5)
    result = make_result(hw=(48, 64))
    for i in range(9):
        sink.write(Frame(i, np.full((48, 64, 3), i * 20, np.uint8), i / 12.5), None, result)
    sink.close()
    assert count_frames(tmp_path / "o.mp4") == (9, (48, 64))
    with av.open(str(tmp_path / "o.mp4")) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264" and float(stream.average_rate) == pytest.approx(12.5)


@pytest.mark.parametrize("hw", [(96, 128), (95, 127)])
def test_video_sink_keeps_colours(tmp_path, hw) -> None:
    """Decoded frames match what was written (4:2:0 for even sizes, 4:4:4 for odd): flat colour patches come
    back within a few levels, without a colour cast."""
    import av

    image = np.zeros((*hw, 3), np.uint8)
    colours = [(0, 0, 255), (0, 255, 0), (255, 0, 0), (40, 200, 230), (128, 128, 128), (255, 255, 255)]
    for i, c in enumerate(colours):
        image[:, i * hw[1] // 6 : (i + 1) * hw[1] // 6] = c
    sink = VideoFileSink(tmp_path / "c.mp4", fps=10)
    for i in range(3):
        sink.write(Frame(i, image, 0.0), None, make_result(hw=hw))
    sink.close()
    with av.open(str(tmp_path / "c.mp4")) as container:
        back = [f.to_ndarray(format="bgr24") for f in container.decode(video=0)]
    assert len(back) == 3
    for i, c in enumerate(colours):  # the middle of each patch, away from chroma-subsampled edges
        x0, x1 = i * hw[1] // 6 + 4, (i + 1) * hw[1] // 6 - 4
        patch = back[-1][8:-8, x0:x1].reshape(-1, 3).astype(float)
        assert np.abs(patch.mean(0) - c).max() < 4, (c, patch.mean(0))


@pytest.mark.parametrize(("name", "hw", "codec"), [("odd.mp4", (47, 63), "h264"), ("o.avi", (48, 64), "MJPG")])
def test_video_sink_odd_size_and_avi_keep_the_size(tmp_path, name, hw, codec) -> None:
    sink = VideoFileSink(tmp_path / name, fps=10)
    for i in range(4):
        sink.write(Frame(i, np.zeros((*hw, 3), np.uint8), 0.0), None, make_result(hw=hw))
    sink.close()
    assert sink.codec == codec and count_frames(tmp_path / name) == (4, hw)


def test_video_sink_resizes_frames_of_another_size(tmp_path) -> None:
    sink = VideoFileSink(tmp_path / "o.mp4", fps=10)
    for hw in ((48, 64), (100, 30), (48, 64)):
        sink.write(Frame(0, np.zeros((*hw, 3), np.uint8), 0.0), None, make_result(hw=hw))
    sink.close()
    assert count_frames(tmp_path / "o.mp4") == (3, (48, 64))


@pytest.mark.parametrize(("name", "message"), [("no/such/o.mp4", "does not exist"), (".", "it is a folder")])
def test_check_writable(tmp_path, name, message) -> None:
    with pytest.raises(SinkError, match=message):
        check_writable(tmp_path / name)


@pytest.mark.parametrize(("preset", "cabac"), [("ultrafast", "cabac=0"), ("superfast", "cabac=1")])
def test_video_sink_encodes_with_the_preset_asked_for(tmp_path, preset, cabac) -> None:
    sink = VideoFileSink(tmp_path / "p.mp4", fps=10, preset=preset)
    for i in range(5):
        sink.write(Frame(i, np.full((48, 64, 3), i * 40, np.uint8), 0.0), None, make_result(hw=(48, 64)))
    sink.close()
    assert count_frames(tmp_path / "p.mp4") == (5, (48, 64))
    settings = x264_settings(tmp_path / "p.mp4")
    # ultrafast turns CABAC and deblocking off; superfast keeps both
    assert cabac in settings.split() and ("deblock=0" in settings) == (preset == "ultrafast"), settings


def test_video_sink_rejects_unknown_preset(tmp_path) -> None:
    with pytest.raises(ConfigError, match="expected one of ultrafast, superfast"):
        VideoFileSink(tmp_path / "o.mp4", fps=10, preset="quick")


def test_auto_preset_spends_less_cpu_on_encoding_when_the_model_runs_on_the_cpu() -> None:
    assert auto_preset(models_on_cpu=True) == "ultrafast" and auto_preset(models_on_cpu=False) == "superfast"


def test_video_sink_rejects_unknown_suffix(tmp_path) -> None:
    with pytest.raises(SinkError, match="use one of"):
        VideoFileSink(tmp_path / "o.gif", fps=10)


def test_jsonl_record_masks_decode_to_the_instance_masks(tmp_path) -> None:
    result = make_result(hw=(40, 60))
    sink = JsonlSink(tmp_path / "r.jsonl", ("a", "b", "c"))
    sink.write(Frame(7, np.zeros((40, 60, 3), np.uint8), 0.7, "src"), None, result)
    sink.close()
    record = json.loads((tmp_path / "r.jsonl").read_text())
    assert record["frame"] == 7 and record["timestamp_s"] == 0.7 and record["source"] == "src"
    assert [d["class_name"] for d in record["detections"]] == ["a", "b", "c"]
    for i, det in enumerate(record["detections"]):
        decoded = mask_utils.decode({"size": det["mask"]["size"], "counts": det["mask"]["counts"].encode()})
        np.testing.assert_array_equal(decoded.astype(bool), result.masks.to_dense(i, (40, 60)))
        assert det["box_xyxy"] == pytest.approx(result.boxes_xyxy[i].tolist())


def test_image_folder_sink(tmp_path) -> None:
    sink = ImageFolderSink(tmp_path / "new" / "frames")
    sink.write(Frame(7, np.zeros((8, 8, 3), np.uint8), 0.0), None, make_result(hw=(8, 8), n=0))
    assert (tmp_path / "new" / "frames" / "frame_000007.jpg").is_file()
