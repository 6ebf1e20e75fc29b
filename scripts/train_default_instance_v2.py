"""Train the default person/cat/dog instance model on all the labelled data in ../shared/data, resumably.

    # build the data set and print its summary only
    nice -n 15 python scripts/train_default_instance_v2.py --data-only
    # a long CPU run in sessions of 8 hours; rerun the same command to resume from WORK/run/weights/last.pt
    nice -n 15 python scripts/train_default_instance_v2.py --epochs 30 --hours 8 --threads 2
    # on a GPU (one run)
    python scripts/train_default_instance_v2.py --epochs 60 --device 0 --batch 32 --workers 8 --threads 8

Each session appends a line (status, epochs done, seconds) to ``WORK/sessions.jsonl``: the model card's
"hours on what". Smoke runs (2 % of the training set, 2 epochs, imgsz 640, a shared 2-core CPU) took about
1.5 minutes per epoch, most of it the validation split (215 images); a full epoch (1,727 images) should take
very roughly 30-45 minutes there (not measured).

Data: :func:`rtseg.data.default_instance.build_default_instance_set` (pets, Penn-Fudan, coco128, the person
set less its held-out third, the four ``extra/`` sets; coco_tiny's unlabelled people greyed with the bundled
model's confident detections), built once under ``WORK/data``. Training:
:func:`rtseg.train.instance.train_resumable` (Ultralytics' trainer, imgsz 640, mosaic, scale 0.6, copy-paste;
the checkpoint is picked on the ``val`` split). Starts from the bundled model by default. At the end of every
session the best checkpoint so far is copied to ``--out`` (default ``WORK/best.pt``).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
from pathlib import Path

import torch

from rtseg import DEFAULT_MODEL
from rtseg.data.default_instance import CROWD_CONF, build_default_instance_set
from rtseg.exporters.onnx import cache_dir
from rtseg.train.instance import train_resumable


def person_finder(weights: Path, conf: float = CROWD_CONF, imgsz: int = 640):  # noqa: ANN201
    """``image -> [(box_xyxy, full-frame mask)]``: confident person detections of ``weights``."""
    import rtseg

    seg = rtseg.load_model(str(weights), backend="torch", device="cpu", imgsz=imgsz, conf=conf, classes="person")

    def find(image):  # noqa: ANN001, ANN202
        r = seg.predict(image)[0]
        if r.masks is None:
            return []
        return [(r.boxes_xyxy[i], r.masks.to_dense(i, r.image_hw)) for i in range(len(r))]

    return find


def build(work: Path, data_root: Path | None, cat_keep: float, dog_repeat: int, rebuild: bool) -> Path:
    folder = work / "data"
    yaml_path, summary_path = folder / "data.yaml", work / "data_summary.md"
    if yaml_path.is_file() and not rebuild:
        print(f"data set: {yaml_path} (already built; --rebuild-data to build it again)")
        print(summary_path.read_text() if summary_path.is_file() else "")
        return yaml_path
    if folder.exists():
        import shutil

        shutil.rmtree(folder)
    yaml_path, summary = build_default_instance_set(folder, data_root, cat_keep=cat_keep, dog_repeat=dog_repeat,
                                                    finder=person_finder(DEFAULT_MODEL))
    table = summary.table()
    summary_path.write_text(table + "\n")
    (work / "data_summary.json").write_text(json.dumps(
        {"images": {f"{a}/{b}": n for (a, b), n in summary.images.items()},
         "instances": {f"{a}/{b}/{c}": n for (a, b, c), n in summary.instances.items()},
         "notes": summary.notes}, indent=1) + "\n")
    print(table)
    return yaml_path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    default_work = Path(os.environ["RTSEG_CACHE"]) / "train" if os.environ.get("RTSEG_CACHE") else None
    parser.add_argument("--work", type=Path, default=(default_work or cache_dir() / "train") / "default-instance-v2",
                        help="persistent work folder (data set, run, checkpoints); rerun with it to resume")
    parser.add_argument("--model", default=str(DEFAULT_MODEL), help="start weights or an architecture .yaml")
    parser.add_argument("--epochs", type=int, default=60, help="the whole schedule, over all sessions")
    parser.add_argument("--hours", type=float, default=None, help="this session's budget (stops between epochs)")
    parser.add_argument("--imgsz", type=int, default=640)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--lr0", type=float, default=0.001)
    parser.add_argument("--fraction", type=float, default=1.0, help="fraction of the train split (smoke runs)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--cat-keep", type=float, default=0.35, help="fraction of feral_cats' training images")
    parser.add_argument("--dog-repeat", type=int, default=4, help="times each training image with a dog is listed")
    parser.add_argument("--data", type=Path, default=None, help="../shared/data (default: beside the repository)")
    parser.add_argument("--rebuild-data", action="store_true")
    parser.add_argument("--data-only", action="store_true", help="build the data set, print its summary, stop")
    parser.add_argument("--fresh", action="store_true", help="start again (the old run is kept as run.old-N)")
    parser.add_argument("--out", type=Path, default=None, help="where best.pt is copied (default WORK/best.pt)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")  # one line per epoch
    torch.set_num_threads(args.threads)
    args.work.mkdir(parents=True, exist_ok=True)
    data_yaml = build(args.work, args.data, args.cat_keep, args.dog_repeat, args.rebuild_data)
    if args.data_only:
        return
    record = train_resumable(data_yaml, args.work, args.out or args.work / "best.pt", model=args.model,
                             epochs=args.epochs, imgsz=args.imgsz, batch=args.batch, session_hours=args.hours,
                             device=args.device, lr0=args.lr0, workers=args.workers, fraction=args.fraction,
                             fresh=args.fresh)
    print(json.dumps(record))


if __name__ == "__main__":
    main()
