from __future__ import annotations

import json

import numpy as np
import pytest
from pycocotools import mask as mask_utils

from rtseg.errors import ConfigError, SinkError
from rtseg.overlay.annotator import Annotator
from rtseg.overlay.palette import color_for
from rtseg.sinks import ImageFolderSink, JsonlSink, VideoFileSink, check_writable
from rtseg.sinks.video import auto_preset
from rtseg.types import Frame, FrameResult, InstanceMasks
from tests.conftest import count_frames
from tests.unit.test_types import make_result


def test_masks_blend_only_inside_masks() -> None:
    result = make_result(hw=(40, 60))
    image = np.full((40, 60, 3), 100, np.uint8)
    out = Annotator(("a", "b", "c"), alpha=0.5, boxes=False, labels=False).draw(image, result)
    union = np.zeros((40, 60), bool)
    for i in range(len(result)):
        union |= result.masks.to_dense(i, (40, 60))
    assert (out[~union] == 100).all() and (image == 100).all()  # outside untouched, input not modified
    expected = (100 * 0.5 + np.array(color_for(0)) * 0.5).astype(np.uint8)
    np.testing.assert_array_equal(out[1, 1], expected)


@pytest.mark.parametrize("alpha", [0.45, 0.3, 1.0])
def test_mask_blend_matches_the_float_formula_pixel_for_pixel(alpha) -> None:
    # the annotator blends through a lookup table; the reference is the per-pixel float32 formula, truncated
    rng = np.random.default_rng(7)
    image = rng.integers(0, 256, (70, 90, 3), dtype=np.uint8)
    crops = (rng.random((30, 40)) > 0.4, rng.random((20, 25)) > 0.5, rng.random((70, 90)) > 0.8)
    origins = np.array([[0, 0], [65, 50], [0, 0]], np.int32)  # one at the top left, one at the bottom right
    boxes = np.array([[0, 0, 40, 30], [65, 50, 90, 70], [0, 0, 90, 70]], np.float32)
    result = FrameResult(0, (70, 90), boxes, np.full(3, 0.9, np.float32), np.array([0, 1, 0], np.int32),
                         InstanceMasks(crops, origins))
    annotator = Annotator(("a", "b"), alpha=alpha, boxes=False, labels=False)
    ref = image.copy()
    for crop, (x, y), colour in zip(crops, origins, annotator.colours(result)):
        roi = ref[y : y + crop.shape[0], x : x + crop.shape[1]]
        pixels = roi[crop].astype(np.float32)
        roi[crop] = (pixels * (1.0 - alpha) + np.array(colour, np.float32) * alpha).astype(np.uint8)
    out = annotator.draw(image, result)
    assert (out != image).any()
    np.testing.assert_array_equal(out, ref)


def test_boxes_and_labels_are_drawn() -> None:
    result = make_result(hw=(60, 80))
    out = Annotator(("a", "b", "c"), alpha=0.0, hud=True).draw(np.zeros((60, 80, 3), np.uint8), result, fps=9.5)
    assert out.any()


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


def _x264_settings(path) -> str:  # noqa: ANN001
    """x264 writes its settings into the stream (an SEI message): "... options: cabac=1 ref=1 ..."."""
    data = path.read_bytes()
    start = data.index(b"options: ")
    return data[start : data.index(b"\x00", start)].decode("ascii", "replace")


@pytest.mark.parametrize(("preset", "cabac"), [("ultrafast", "cabac=0"), ("superfast", "cabac=1")])
def test_video_sink_encodes_with_the_preset_asked_for(tmp_path, preset, cabac) -> None:
    sink = VideoFileSink(tmp_path / "p.mp4", fps=10, preset=preset)
    for i in range(5):
        sink.write(Frame(i, np.full((48, 64, 3), i * 40, np.uint8), 0.0), None, make_result(hw=(48, 64)))
    sink.close()
    assert count_frames(tmp_path / "p.mp4") == (5, (48, 64))
    settings = _x264_settings(tmp_path / "p.mp4")
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


def test_semantic_layer_blends_classes_leaves_background_and_draws_a_legend() -> None:
    from dataclasses import replace

    from rtseg.types import FrameResult

    names, palette = ("background", "road", "water"), ((0, 0, 0), (0, 0, 200), (200, 0, 0))
    labels = np.zeros((200, 300), np.uint8)
    labels[:, 100:200], labels[:, 200:] = 1, 2
    image = np.full((200, 300, 3), 100, np.uint8)
    result = replace(FrameResult.empty(0, (200, 300)), semantic=labels)
    annotator = Annotator((), semantic_names=names, semantic_palette=palette, semantic_alpha=0.5, legend=False)
    out = annotator.draw(image, result)
    assert (out[:, :100] == 100).all()  # background stays as it was
    np.testing.assert_allclose(out[:, 100:200], np.broadcast_to([50, 50, 150], (200, 100, 3)), atol=1)
    np.testing.assert_allclose(out[:, 200:], np.broadcast_to([150, 50, 50], (200, 100, 3)), atol=1)
    with_legend = Annotator((), semantic_names=names, semantic_palette=palette, semantic_alpha=0.5).draw(image, result)
    assert (with_legend[150:, :100] != 100).any() and (with_legend[:100] == out[:100]).all()


def test_semantic_layer_in_place_when_every_class_is_coloured() -> None:
    from dataclasses import replace

    from rtseg.types import FrameResult

    labels = np.zeros((50, 60), np.uint8)
    labels[:, 30:] = 1
    image = np.full((50, 60, 3), 100, np.uint8)
    result = replace(FrameResult.empty(0, (50, 60)), semantic=labels)
    out = Annotator((), semantic_names=("road", "water"), semantic_palette=((0, 0, 200), (200, 0, 0)),
                    semantic_alpha=0.5, legend=False).draw(image, result)
    assert out[:, :30].tolist() == np.broadcast_to([50, 50, 150], (50, 30, 3)).tolist()
    assert out[:, 30:].tolist() == np.broadcast_to([150, 50, 50], (50, 30, 3)).tolist()
    assert (image == 100).all()
