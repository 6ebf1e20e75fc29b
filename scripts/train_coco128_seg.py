"""Train the small YOLO-seg weights that rtseg's parity tests and demo use.

The weights are trained from scratch (no pretrained download is possible
offline) on coco128-seg from ``../shared/data``, at imgsz 320, with
Ultralytics' own trainer. They are weak as a detector but give many
detections with varied scores on their training images, which is what the
parity tests against Ultralytics' ``predict`` need.

Ultralytics' ``optimizer=auto`` picks AdamW with lr 0.00012 for 80 classes and this few iterations,
which learns almost nothing from scratch in 45 epochs (mask mAP 0.0001, measured); AdamW at lr 0.002
does.

Usage:
    python scripts/train_coco128_seg.py --arch yolo11n-seg --epochs 120 --out tests/assets/yolo11n-seg-coco128.pt
    python scripts/train_coco128_seg.py --arch yolo26n-seg --epochs 60 --out tests/assets/yolo26n-seg-coco128.pt
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path

import yaml


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--arch", default="yolo11n-seg", help="Ultralytics architecture config, without .yaml")
    parser.add_argument("--data-root", type=Path,
                        default=Path(__file__).resolve().parents[2] / "shared/data/coco128-seg")
    parser.add_argument("--epochs", type=int, default=45)
    parser.add_argument("--imgsz", type=int, default=320)
    parser.add_argument("--optimizer", default="AdamW")
    parser.add_argument("--lr0", type=float, default=0.002)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()

    from ultralytics import YOLO
    from ultralytics.utils import ROOT

    names = yaml.safe_load((ROOT / "cfg/datasets/coco128-seg.yaml").read_text())["names"]
    work = Path(tempfile.mkdtemp(prefix="rtseg-train-"))
    data = work / "coco128-seg.yaml"
    root = args.data_root.resolve()
    data.write_text(yaml.safe_dump({"path": str(root), "train": "images/train2017",
                                    "val": "images/train2017", "names": names}))
    model = YOLO(f"{args.arch}.yaml")
    model.train(data=str(data), epochs=args.epochs, imgsz=args.imgsz, batch=16, workers=2,
                device="cpu", pretrained=False, optimizer=args.optimizer, lr0=args.lr0, amp=False, plots=False,
                val=False, seed=0,
                deterministic=True, project=str(work), name="run", exist_ok=True, verbose=False)
    best = work / "run/weights/last.pt"
    args.out.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(best, args.out)
    print(f"wrote {args.out} ({args.out.stat().st_size / 1e6:.1f} MB)")


if __name__ == "__main__":
    main()
