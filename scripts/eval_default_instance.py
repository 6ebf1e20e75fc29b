"""Issue #19's numbers for person/cat/dog instance weights, side by side: held-out people and real clips.

    nice -n 15 python scripts/eval_default_instance.py rtseg/assets/yolo11n-seg-person-cat-dog.pt [NEW.pt ...] \\
        --md benchmarks/results/default_models.md --json benchmarks/results/default_models.json

Per weights file, through ``rtseg.load_model`` (the product's path: ONNX Runtime on a CPU, conf 0.25):

* **people, held-out third** (``../shared/data/people``, ``hsd_NNN`` with NNN % 3 == 0, 97 images, never
  trained on): images where >= 1 person is detected, and the mean over images of the IoU between the union of
  the person masks and the truth mask (an image with no detection scores 0). Also on all 290 images, to compare
  with the issue's figures (those include the new models' training images).
* **clips** (``../shared/data/videos``, never trained on): the high-angle crowd (person detections per frame,
  mean and median, ~40 people walk), the Pomeranian (fraction of frames with a dog) and the one-by-one room
  (fraction of frames with a person; many frames are empty, so it cannot reach 1). Each at the sizes listed.
"""

from __future__ import annotations

import argparse
import json
import platform
import re
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
# clip -> (class, imgsz values)
CLIPS = {"people_walking_highangle.avi": ("person", (640, 960)), "pet_dog_pomeranian.mp4": ("dog", (320, 640)),
         "people_one-by-one-person-detection.mp4": ("person", (320, 640))}


def held_out_people(people: Path, every: bool = False) -> list[tuple[Path, Path]]:
    """(image, mask) of the person set's held-out third (``hsd_NNN``, NNN % 3 == 0), or all of it."""
    pairs = []
    for image in sorted((people / "images").glob("hsd_*.jpg")):
        if every or int(re.sub(r"\D", "", image.stem)) % 3 == 0:
            pairs.append((image, people / "masks" / f"{image.stem}.png"))
    return pairs


def union_person(result, person: int) -> np.ndarray:  # noqa: ANN001 (a FrameResult)
    out = np.zeros(result.image_hw, bool)
    if result.masks is None:
        return out
    for i in np.flatnonzero(result.class_ids == person):
        out |= result.masks.to_dense(int(i), result.image_hw)
    return out


def eval_people(seg, pairs: list[tuple[Path, Path]], person: int) -> dict:  # noqa: ANN001
    found, ious = 0, []
    for image, mask in pairs:
        truth = cv2.imread(str(mask), cv2.IMREAD_GRAYSCALE) > 127
        result = seg.predict(cv2.imread(str(image), cv2.IMREAD_COLOR))[0]
        pred = union_person(result, person)
        found += bool((result.class_ids == person).any())
        union = (truth | pred).sum()
        ious.append(float((truth & pred).sum() / union) if union else 1.0)
    return {"images": len(pairs), "found": found, "found_fraction": round(found / len(pairs), 4),
            "mean_union_iou": round(float(np.mean(ious)), 4), "median_union_iou": round(float(np.median(ious)), 4)}


def eval_clip(seg, clip: Path, cls: int) -> dict:  # noqa: ANN001
    counts = [int((result.class_ids == cls).sum()) for _, result in seg.stream(str(clip))]
    arr = np.array(counts)
    return {"frames": len(arr), "found_fraction": round(float((arr > 0).mean()), 4),
            "mean_per_frame": round(float(arr.mean()), 2), "median_per_frame": float(np.median(arr)),
            "max_per_frame": int(arr.max())}


def evaluate(weights: Path, data: Path, people_imgsz: int | None) -> dict:
    import rtseg

    out: dict = {"weights": str(weights), "people": {}, "clips": {}}
    seg = rtseg.load_model(str(weights), imgsz=people_imgsz)
    names = list(seg.names)
    ids = {n: names.index(n) for n in ("person", "cat", "dog")}
    t0 = time.perf_counter()
    for key, every in (("held_out", False), ("all_290", True)):
        out["people"][key] = eval_people(seg, held_out_people(data / "people", every), ids["person"])
        print(weights.name, "people", key, out["people"][key], flush=True)
    for clip, (cls, sizes) in CLIPS.items():
        for imgsz in sizes:
            seg = rtseg.load_model(str(weights), imgsz=imgsz)
            out["clips"][f"{clip}@{imgsz}"] = {"class": cls, "imgsz": imgsz,
                                               **eval_clip(seg, data / "videos" / clip, ids[cls])}
            print(weights.name, clip, imgsz, out["clips"][f"{clip}@{imgsz}"], flush=True)
    out["seconds"] = round(time.perf_counter() - t0, 1)
    return out


def markdown(reports: list[dict], people_imgsz: int | None) -> str:
    names = [Path(r["weights"]).name for r in reports]
    size = f"imgsz {people_imgsz}" if people_imgsz else "each model's own imgsz"
    lines = ["# Default instance models on data they were not trained on (issue #19)", "",
             "Made by `scripts/eval_default_instance.py` (`rtseg.load_model`, ONNX Runtime on the CPU, conf 0.25).",
             "", "| measure | " + " | ".join(f"`{n}`" for n in names) + " |", "|---|" + "---|" * len(names)]

    def row(label: str, values: list[str]) -> None:
        lines.append(f"| {label} | " + " | ".join(values) + " |")

    for key, label in (("held_out", "people, held-out third"),
                       ("all_290", "people, all 290 (issue's figure; new models train on 2/3)")):
        row(f"{label} ({size}): images with a person",
            [f"{r['people'][key]['found']} / {r['people'][key]['images']}" for r in reports])
        row(f"{label}: mean IoU of the person-mask union",
            [f"{r['people'][key]['mean_union_iou']:.3f}" for r in reports])
    for key in reports[0]["clips"]:
        clip, imgsz = key.rsplit("@", 1)
        first = reports[0]["clips"][key]
        if first["class"] == "person" and "highangle" in clip:
            row(f"`{clip}` @ {imgsz}: people per frame, mean / median",
                [f"{r['clips'][key]['mean_per_frame']:.2f} / {r['clips'][key]['median_per_frame']:g}"
                 for r in reports])
        else:
            row(f"`{clip}` @ {imgsz}: frames with a {first['class']}",
                [f"{r['clips'][key]['found_fraction']:.1%} of {r['clips'][key]['frames']}" for r in reports])
    lines += ["", f"Machine: {platform.processor() or platform.machine()}, {platform.system()}; "
              "the JSON beside this file has every number (medians, maxima, seconds)."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("weights", type=Path, nargs="*", default=[ROOT / "rtseg/assets/yolo11n-seg-person-cat-dog.pt"])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--people-imgsz", type=int, default=None, help="default: each model's own size")
    parser.add_argument("--md", type=Path, default=ROOT / "benchmarks/results/default_models.md")
    parser.add_argument("--json", type=Path, default=ROOT / "benchmarks/results/default_models.json")
    parser.add_argument("--render", action="store_true", help="only rewrite --md from an existing --json")
    args = parser.parse_args(argv)
    if args.render:
        saved = json.loads(args.json.read_text())
        args.md.write_text(markdown(saved["reports"], saved["people_imgsz"]))
        print(args.md.read_text())
        return 0
    reports = [evaluate(w, args.data, args.people_imgsz) for w in args.weights]
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"people_imgsz": args.people_imgsz, "reports": reports}, indent=1) + "\n")
    args.md.write_text(markdown(reports, args.people_imgsz))
    print(args.md.read_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
