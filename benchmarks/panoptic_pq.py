"""Panoptic quality of the bundled models, fused as ``rtseg run --panoptic`` does (issue #20).

Two held-out sets from ``../shared/data``, converted to COCO panoptic ground truth in a temporary folder (or
``--work``; nothing is written into the repository but the results):

* **Penn-Fudan held-out** (every 5th image, the 34 images the bundled instance model never trained on: see
  ``rtseg/data/shared_sets.py``): each pedestrian of the instance PNG is a ``person`` thing, every other pixel
  one ``background`` stuff segment. Models: the bundled ``yolo11n-seg-person-cat-dog.pt`` (things) and
  ``selfie_segmentation.pt`` (background / person; its ``person`` pixels no instance claims stay void).
* **Oxford-IIIT Pet test split** (298 images, held out from both models): the trimap's pet pixels are one
  ``cat`` or ``dog`` thing (by breed), its background pixels one ``background`` stuff segment, its border
  pixels ("not classified") void. Models: ``yolo11n-seg-person-cat-dog.pt`` and ``linknet-pets.pt``
  (background / pet; ``pet`` has no category in this ground truth, so its leftover pixels count as void).

Each set is measured with the real CLI: ``rtseg eval --model M --semantic S --data GT/panoptic.json --json R``
(instances from score 0.25, the ``rtseg run`` default).

Usage:
    nice -n 15 python benchmarks/panoptic_pq.py [--work DIR] [--sets pennfudan,pets]
Results: ``benchmarks/results/panoptic_pq.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
ASSETS = ROOT / "rtseg" / "assets"
sys.path.insert(0, str(ROOT))

from rtseg.data.convert import TRIMAP_BACKGROUND, TRIMAP_PET, read_label_png  # noqa: E402
from rtseg.data.shared_sets import pennfudan_split, pets_split  # noqa: E402
from rtseg.postprocess.panoptic import ids_to_rgb  # noqa: E402

PERSON, CAT, DOG, BACKGROUND = 1, 2, 3, 4
CATEGORIES = [{"id": PERSON, "name": "person", "isthing": 1}, {"id": CAT, "name": "cat", "isthing": 1},
              {"id": DOG, "name": "dog", "isthing": 1}, {"id": BACKGROUND, "name": "background", "isthing": 0}]


def _segments(ids: np.ndarray, cats: dict[int, int]) -> list[dict]:
    out = []
    for seg, cat in cats.items():
        ys, xs = np.nonzero(ids == seg)
        if len(xs):
            out.append({"id": seg, "category_id": cat, "area": int(len(xs)), "iscrowd": 0,
                        "bbox": [int(xs.min()), int(ys.min()), int(xs.max() - xs.min() + 1),
                                 int(ys.max() - ys.min() + 1)]})
    return out


def write_gt(out: Path, items: list[tuple[Path, np.ndarray, dict[int, int]]], used: list[int]) -> Path:
    """``out/panoptic.json``, ``out/panoptic/*.png`` and ``out/images/*`` (copies) from (image, ids, cats)."""
    (out / "panoptic").mkdir(parents=True, exist_ok=True)
    (out / "images").mkdir(exist_ok=True)
    images, annotations = [], []
    for k, (image, ids, cats) in enumerate(items):
        shutil.copy(image, out / "images" / image.name)
        png = f"{image.stem}.png"
        cv2.imwrite(str(out / "panoptic" / png), ids_to_rgb(ids)[..., ::-1])
        images.append({"id": k, "file_name": image.name, "height": ids.shape[0], "width": ids.shape[1]})
        annotations.append({"image_id": k, "file_name": png, "segments_info": _segments(ids, cats)})
    doc = {"images": images, "annotations": annotations, "categories": [c for c in CATEGORIES if c["id"] in used]}
    path = out / "panoptic.json"
    path.write_text(json.dumps(doc))
    return path


def pennfudan_gt(out: Path) -> Path:
    root = DATA / "pennfudan"
    items = []
    for image in pennfudan_split(root, "test"):
        masks = read_label_png(root / "masks" / f"{image.stem}.png").astype(np.int32)
        people = [int(v) for v in np.unique(masks) if v]
        ids = np.where(masks > 0, masks, len(people) + 1)  # pedestrians keep their ids 1..N; background N+1
        cats = {p: PERSON for p in people} | {len(people) + 1: BACKGROUND}
        items.append((image, ids, cats))
    return write_gt(out, items, [PERSON, BACKGROUND])


def pets_gt(out: Path) -> Path:
    root = DATA / "pets"
    items = []
    for name, cls in pets_split(root, "test"):
        trimap = read_label_png(root / "trimaps" / f"{name}.png")
        ids = np.zeros(trimap.shape, np.int32)  # border: void
        ids[trimap == TRIMAP_PET] = 1
        ids[trimap == TRIMAP_BACKGROUND] = 2
        items.append((root / "images" / f"{name}.jpg", ids, {1: CAT if cls == 1 else DOG, 2: BACKGROUND}))
    return write_gt(out, items, [CAT, DOG, BACKGROUND])


CASES = {
    "pennfudan": (pennfudan_gt, "yolo11n-seg-person-cat-dog.pt", "selfie_segmentation.pt"),
    "pets": (pets_gt, "yolo11n-seg-person-cat-dog.pt", "linknet-pets.pt"),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=None, help="where the ground truth is built (default: a temp dir)")
    parser.add_argument("--sets", default="pennfudan,pets")
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="rtseg-panoptic-"))
    results, lines = {}, ["| set | images | PQ | SQ | RQ | PQ things | PQ stuff | per class PQ | seconds |",
                          "|---|---|---|---|---|---|---|---|---|"]
    for name in args.sets.split(","):
        build, instance, semantic = CASES[name]
        gt = build(work / name)
        report = work / f"{name}_pq.json"
        command = ["rtseg", "eval", "--model", str(ASSETS / instance), "--semantic", str(ASSETS / semantic),
                   "--data", str(gt), "--json", str(report)]
        t0 = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "rtseg.cli", *command[1:]], capture_output=True, text=True)
        seconds = time.perf_counter() - t0
        if proc.returncode:
            sys.exit(f"{name}: rtseg eval failed: {proc.stderr.strip()}")
        print(proc.stdout)
        doc = json.loads(report.read_text())
        m = doc["metrics"]
        per = ", ".join(f"{r['class']} {100 * r['pq']:.1f}" for r in doc["per_class"] if r["pq"] is not None)
        results[name] = {"command": " ".join(c.replace(str(ROOT) + "/", "") for c in command).replace(
            str(work), "$WORK"), "images": doc["images"], "metrics": m, "per_class": doc["per_class"],
            "seconds": round(seconds, 1)}
        lines.append(f"| {name} | {doc['images']} | {100 * m['PQ_all']:.1f} | {100 * m['SQ_all']:.1f} | "
                     f"{100 * m['RQ_all']:.1f} | {100 * m['PQ_things']:.1f} | {100 * m['PQ_stuff']:.1f} | {per} | "
                     f"{seconds:.0f} |")
    out = ROOT / "benchmarks" / "results"
    (out / "panoptic_pq.json").write_text(json.dumps(results, indent=1) + "\n")
    (out / "panoptic_pq.md").write_text("# Panoptic quality of the bundled models (benchmarks/panoptic_pq.py)\n\n"
                                        + "\n".join(lines) + "\n\nPQ, SQ, RQ in percent (panopticapi's "
                                        "definition); see the script's docstring for how each ground truth is "
                                        "built.\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
