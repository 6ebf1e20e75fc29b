"""Panoptic output, boundaries and PQ evaluation through the real CLI: ``rtseg run --save-panoptic`` on a
terminal (progress bar and all), ``rtseg eval`` on COCO panoptic ground truth against the panopticapi
reference, and the bad inputs."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from rtseg.postprocess.boundaries import boundary_map
from rtseg.postprocess.panoptic import ids_to_rgb, rgb_to_ids
from tests.panoptic_reference import reference_pq_compute
from tests.support import YOLO11_WEIGHTS, read_tty, run_cli, spawn_cli_tty
from tests.support import road_model as make_road_model


@pytest.fixture(scope="module")
def road_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A U-Net whose head says "road" (class 1) everywhere: stuff wherever no instance is."""
    return make_road_model(tmp_path_factory.mktemp("sem") / "road.pt")


@pytest.fixture(scope="module")
def frames(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three 320x240 frames of Ultralytics' zidane.jpg (people the test model finds), one mirrored."""
    from ultralytics.utils import ASSETS

    image = cv2.resize(cv2.imread(str(Path(ASSETS) / "zidane.jpg")), (320, 240))
    folder = tmp_path_factory.mktemp("frames") / "frames"
    folder.mkdir()
    for k, img in enumerate((image, image[:, ::-1], image)):
        cv2.imwrite(str(folder / f"f{k}.png"), np.ascontiguousarray(img))  # lossless: eval reads the same pixels
    return folder


@pytest.fixture(scope="module")
def panoptic_run(road_model: Path, frames: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("run")
    proc, master = spawn_cli_tty("run", str(frames), "--model", str(YOLO11_WEIGHTS), "--semantic", str(road_model),
                                 "--save-panoptic", str(out / "pan"), "--save-boundaries", str(out / "bnd"),
                                 "--jsonl", str(out / "r.jsonl"), "--save-frames", str(out / "ann"), "--style",
                                 "both")
    terminal = read_tty(master, proc)
    assert proc.wait(timeout=30) == 0, terminal
    assert "frame/s]" in terminal, terminal  # the progress bar drew
    return out


def _ids(png: Path) -> np.ndarray:
    return rgb_to_ids(cv2.imread(str(png), cv2.IMREAD_COLOR)[..., ::-1])


def test_run_writes_coco_panoptic_that_matches_the_jsonl_and_the_boundaries(panoptic_run: Path) -> None:
    doc = json.loads((panoptic_run / "pan" / "panoptic.json").read_text())
    cats = {c["id"]: c for c in doc["categories"]}
    assert cats[1] == {"id": 1, "name": "person", "supercategory": "thing", "isthing": 1}
    assert [c["name"] for c in cats.values() if not c["isthing"]] == ["background", "road"]
    assert [i["file_name"] for i in doc["images"]] == ["f0.png", "f1.png", "f2.png"]
    records = [json.loads(line) for line in (panoptic_run / "r.jsonl").read_text().splitlines()]
    assert len(doc["annotations"]) == len(records) == 3
    for ann, record in zip(doc["annotations"], records):
        ids = _ids(panoptic_run / "pan" / ann["file_name"])
        assert ids.shape == (240, 320)
        found, counts = np.unique(ids, return_counts=True)
        segments = {s["id"]: s for s in ann["segments_info"]}
        assert {int(i): int(c) for i, c in zip(found, counts) if i} == {i: s["area"] for i, s in segments.items()}
        kinds = {cats[s["category_id"]]["isthing"] for s in segments.values()}
        assert kinds == {0, 1}, "expected people (things) over road (stuff)"
        assert (ids > 0).mean() > 0.99  # road everywhere else: next to nothing void
        for s in segments.values():
            ys, xs = np.nonzero(ids == s["id"])
            assert s["bbox"] == [xs.min(), ys.min(), xs.max() - xs.min() + 1, ys.max() - ys.min() + 1]
        jsonl = {s["id"]: (s["category_id"], s["area"], s["bbox"]) for s in record["panoptic"]}
        assert jsonl == {i: (s["category_id"], s["area"], s["bbox"]) for i, s in segments.items()}
        for s in record["panoptic"]:  # each thing points at its detection, of the same class
            if s["isthing"]:
                assert record["detections"][s["detection"]]["class_name"] == s["category_name"] == "person"
    for k, ann in enumerate(doc["annotations"]):
        edges = cv2.imread(str(panoptic_run / "bnd" / f"frame_{k:06d}.png"), cv2.IMREAD_UNCHANGED)
        ids = _ids(panoptic_run / "pan" / ann["file_name"])
        assert set(np.unique(edges)) == {0, 255}
        assert ((edges == 255) == boundary_map(ids, 2)).all()  # the fused segments' boundaries, 2 px wide
    assert len(list((panoptic_run / "ann").glob("frame_*.jpg"))) == 3


def _ground_truth(panoptic_run: Path, folder: Path) -> Path:
    """Ground truth made from the run's own output, changed so that every kind of case occurs: the first
    person shrunk (a poorer match), the second made crowd, a third wiped to void (a prediction on void), an
    extra person nobody predicted (a false negative); its own category ids (person 11, road 5)."""
    doc = json.loads((panoptic_run / "pan" / "panoptic.json").read_text())
    names = {c["id"]: c["name"] for c in doc["categories"]}
    (folder / "gt").mkdir(parents=True)
    anns = []
    for ann in doc["annotations"]:
        ids = _ids(panoptic_run / "pan" / ann["file_name"])
        segs = {s["id"]: names[s["category_id"]] for s in ann["segments_info"]}
        people = [i for i, n in segs.items() if n == "person"]
        road = next(i for i, n in segs.items() if n == "road")
        gt = ids.copy()
        for i, n in segs.items():
            if n not in ("person", "road"):
                gt[gt == i] = road
        crowd = set()
        if people:
            shrink = (ids == people[0]) & (cv2.erode((ids == people[0]).astype(np.uint8), np.ones((7, 7))) == 0)
            gt[shrink] = road
        if len(people) > 1:
            crowd.add(people[1])
        if len(people) > 2:
            gt[gt == people[2]] = 0
        extra = 200
        gt[200:230, 10:30] = extra
        infos = []
        for i in np.unique(gt):
            if i == 0:
                continue
            name = "road" if i == road else "person"
            infos.append({"id": int(i), "category_id": 5 if name == "road" else 11, "area": int((gt == i).sum()),
                          "iscrowd": int(i in crowd), "bbox": [0, 0, 1, 1]})
        cv2.imwrite(str(folder / "gt" / ann["file_name"]), ids_to_rgb(gt)[..., ::-1])
        anns.append({"image_id": ann["image_id"], "file_name": ann["file_name"], "segments_info": infos})
    categories = [{"id": 11, "name": "person", "isthing": 1}, {"id": 5, "name": "road", "isthing": 0}]
    path = folder / "gt.json"
    path.write_text(json.dumps({"images": doc["images"], "annotations": anns, "categories": categories}))
    # the run's predictions in the ground truth's category ids, for the reference (it wants known ids)
    (folder / "pred").mkdir()
    to_gt = {cid: {"person": 11, "road": 5}.get(n) for cid, n in names.items()}
    pred_anns = []
    for ann in doc["annotations"]:
        ids = _ids(panoptic_run / "pan" / ann["file_name"])
        keep = [s for s in ann["segments_info"] if to_gt[s["category_id"]] is not None]
        ids[~np.isin(ids, [s["id"] for s in keep])] = 0  # other classes: void, as rtseg eval treats them
        cv2.imwrite(str(folder / "pred" / ann["file_name"]), ids_to_rgb(ids)[..., ::-1])
        pred_anns.append({**ann, "segments_info": [{**s, "category_id": to_gt[s["category_id"]]} for s in keep]})
    (folder / "pred.json").write_text(json.dumps({"annotations": pred_anns}))
    return path


def test_eval_on_panoptic_ground_truth_equals_the_reference(panoptic_run, road_model, frames, tmp_path) -> None:
    gt = _ground_truth(panoptic_run, tmp_path)
    report = tmp_path / "pq.json"
    proc = run_cli("eval", "--model", str(YOLO11_WEIGHTS), "--semantic", str(road_model), "--data", str(gt),
                   "--images", str(frames), "--json", str(report))
    assert proc.returncode == 0, proc.stderr
    assert "PQ" in proc.stdout and "things" in proc.stdout and "stuff" in proc.stdout
    m = json.loads(report.read_text())["metrics"]
    ref = reference_pq_compute(gt, tmp_path / "pred.json", tmp_path / "gt", tmp_path / "pred")
    assert 0.3 < ref["All"]["pq"] < 0.95 and ref["Things"]["n"] == ref["Stuff"]["n"] == 1
    for theirs, mine in (("All", "all"), ("Things", "things"), ("Stuff", "stuff")):
        for k in ("pq", "sq", "rq"):
            assert abs(m[f"{k.upper()}_{mine}"] - ref[theirs][k]) < 1e-3, (mine, k)


@pytest.mark.parametrize(("args", "message"), [
    (["--save-panoptic", "pan"], "--save-panoptic needs an instance model and a semantic model"),
    (["--style", "outline"], "--style 'outline': expected one of fill, contour, both"),
    (["--boundary-width", "0", "--save-boundaries", "b"], "--boundary-width 0: expected a whole number of pixels"),
])
def test_bad_run_options_are_one_line(args, message, frames, tmp_path) -> None:
    proc = run_cli("run", str(frames), "--model", str(YOLO11_WEIGHTS), *args, cwd=tmp_path)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], proc.stderr
    assert not (tmp_path / "pan").exists()


def test_panoptic_ground_truth_missing_a_png_is_one_line(panoptic_run, road_model, frames, tmp_path) -> None:
    gt = _ground_truth(panoptic_run, tmp_path)
    (tmp_path / "gt" / "frame_000001.png").unlink()
    proc = run_cli("eval", "--model", str(YOLO11_WEIGHTS), "--semantic", str(road_model), "--data", str(gt),
                   "--images", str(frames))
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1, proc.stderr
    assert "frame_000001.png not found" in lines[0] and "Traceback" not in proc.stderr
