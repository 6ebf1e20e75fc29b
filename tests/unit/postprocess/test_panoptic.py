"""Panoptic fusion: one segment per pixel, overlaps by score, min-area stuff removal, the PNG/JSON encoding."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from rtseg.postprocess.panoptic import PanopticFuser, categories, fuse_panoptic, ids_to_rgb, rgb_to_ids
from rtseg.sinks.panoptic import PanopticSink
from rtseg.types import Frame, FrameResult, InstanceMasks

NAMES = ("person", "car")
SEMANTIC = ("background", "road", "person", "unlabeled")  # "person" names a thing; "unlabeled" is void


def _result(boxes, scores, classes, semantic=None, hw=(40, 60)) -> FrameResult:
    """Instances whose masks fill their boxes (x1, y1, x2, y2), kept box-local."""
    crops = [np.ones((y2 - y1, x2 - x1), bool) for x1, y1, x2, y2 in boxes]
    origins = [[x1, y1] for x1, y1, _, _ in boxes]
    return FrameResult(0, hw, np.array(boxes, np.float32).reshape(-1, 4), np.array(scores, np.float32),
                       np.array(classes, np.int32), InstanceMasks(tuple(crops), np.array(origins).reshape(-1, 2)),
                       semantic=semantic, names=NAMES, semantic_names=SEMANTIC)


def _labels(hw=(40, 60)) -> np.ndarray:
    labels = np.zeros(hw, np.uint8)
    labels[20:, :] = 1  # road below
    labels[:5, :5] = 3  # unlabeled corner
    labels[30:, 50:] = 2  # semantic "person" no instance covers
    return labels


def test_every_pixel_one_segment_and_areas_add_up() -> None:
    r = _result([[0, 0, 20, 30], [10, 10, 40, 35]], [0.6, 0.9], [0, 1], _labels())
    pan = fuse_panoptic(r)
    assert pan.ids.shape == (40, 60) and pan.ids.dtype == np.int32
    ids, counts = np.unique(pan.ids, return_counts=True)
    segs = {s["id"]: s for s in pan.segments_info()}
    assert set(ids) - {0} == set(segs)  # every id in the map is a segment, every segment is in the map
    for i, c in zip(ids, counts):
        if i:
            assert segs[i]["area"] == c
            x, y, w, h = segs[i]["bbox"]
            ys, xs = np.nonzero(pan.ids == i)
            assert (x, y, w, h) == (xs.min(), ys.min(), xs.max() - xs.min() + 1, ys.max() - ys.min() + 1)
    # void: the unlabeled corner (not under an instance) and the semantic "person" nobody claimed
    assert (pan.ids[30:, 50:] == 0).all()
    assert (pan.ids[:5, :5] != 0).all()  # an instance covers the corner


def test_overlaps_go_to_the_higher_score() -> None:
    r = _result([[0, 0, 20, 30], [10, 10, 40, 35]], [0.6, 0.9], [0, 1], _labels())
    pan = fuse_panoptic(r)
    first, second = pan.segments_info()[:2]
    assert (first["detection"], first["category_name"]) == (1, "car")  # score 0.9 pasted first
    assert (pan.ids[10:30, 10:20] == first["id"]).all()  # the shared pixels
    assert second["detection"] == 0 and second["area"] == 20 * 30 - 10 * 20
    # the same with the scores swapped: the shared pixels change hands
    swapped = fuse_panoptic(_result([[0, 0, 20, 30], [10, 10, 40, 35]], [0.9, 0.6], [0, 1], _labels()))
    assert swapped.segments_info()[0]["detection"] == 0
    assert (swapped.ids[10:30, 10:20] == 1).all()


def test_a_mostly_covered_instance_is_dropped_as_a_duplicate() -> None:
    r = _result([[0, 0, 20, 20], [1, 1, 20, 20]], [0.9, 0.8], [0, 0])
    assert [s["detection"] for s in fuse_panoptic(r).segments_info()] == [0]
    assert [s["detection"] for s in fuse_panoptic(r, overlap=1.0).segments_info()] == [0]  # nothing left of it
    r = _result([[0, 0, 20, 20], [10, 0, 30, 20]], [0.9, 0.8], [0, 0])  # half covered: keeps its half
    assert [s["area"] for s in fuse_panoptic(r, overlap=0.6).segments_info()] == [400, 200]
    assert len(fuse_panoptic(r, overlap=0.4)) == 1


def test_small_stuff_segments_are_removed() -> None:
    labels = np.zeros((40, 60), np.uint8)
    labels[:3, :3] = 1  # 9 road pixels
    r = _result([], [], [], labels)
    assert [s["category_name"] for s in fuse_panoptic(r, min_area=9).segments_info()] == ["background", "road"]
    pan = fuse_panoptic(r, min_area=10)
    assert [s["category_name"] for s in pan.segments_info()] == ["background"]
    assert (pan.ids[:3, :3] == 0).all() and (pan.ids[3:] == 1).all()


def test_instances_without_semantic_and_crops_past_the_edge() -> None:
    crop = np.ones((10, 10), bool)
    r = FrameResult(0, (20, 20), [[15, 15, 20, 20]], [0.5], [0], InstanceMasks((crop,), [[15, 15]]), names=NAMES)
    pan = fuse_panoptic(r)
    assert pan.segments_info()[0]["area"] == 25 and pan.segments_info()[0]["bbox"] == [15, 15, 5, 5]


def test_categories_things_then_stuff_with_unique_ids() -> None:
    cats = categories(NAMES, SEMANTIC)
    assert [(c.id, c.name, c.isthing) for c in cats] == [(1, "person", True), (2, "car", True),
                                                          (3, "background", False), (4, "road", False)]


def test_png_round_trip_equals_the_json_segments(tmp_path) -> None:
    r = _result([[0, 0, 20, 30], [10, 10, 40, 35]], [0.6, 0.9], [0, 1], _labels())
    fused = PanopticFuser(NAMES, SEMANTIC)(r)
    sink = PanopticSink(tmp_path, NAMES, SEMANTIC)
    sink.write(Frame(0, np.zeros((40, 60, 3), np.uint8), 0.0), None, fused)
    sink.close()
    doc = json.loads((tmp_path / "panoptic.json").read_text())
    (ann,) = doc["annotations"]
    rgb = cv2.imread(str(tmp_path / ann["file_name"]), cv2.IMREAD_COLOR)[..., ::-1]  # as panopticapi: RGB
    ids = rgb_to_ids(rgb)
    assert (ids == fused.panoptic.ids).all()
    ids_found, counts = np.unique(ids, return_counts=True)
    from_png = {int(i): int(c) for i, c in zip(ids_found, counts) if i}
    assert from_png == {s["id"]: s["area"] for s in ann["segments_info"]}
    cats = {c["id"]: c for c in doc["categories"]}
    assert all(s["category_id"] in cats for s in ann["segments_info"])
    assert {cats[s["category_id"]]["isthing"] for s in ann["segments_info"]} == {0, 1}
    assert doc["images"] == [{"id": 0, "file_name": "frame_000000.jpg", "height": 40, "width": 60}]


def test_rgb_encoding_of_large_ids() -> None:
    ids = np.array([[0, 255, 256, 65535, 65536, 256**3 - 1]])
    assert (rgb_to_ids(ids_to_rgb(ids)) == ids).all()
    with pytest.raises(ValueError, match="expected 0.."):
        ids_to_rgb(np.array([[256**3]]))


def test_docstring_examples_run() -> None:
    import doctest

    import rtseg.postprocess.boundaries
    import rtseg.postprocess.panoptic

    for module in (rtseg.postprocess.panoptic, rtseg.postprocess.boundaries):
        result = doctest.testmod(module)
        assert result.failed == 0 and result.attempted > 0, module.__name__
