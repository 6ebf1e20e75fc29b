"""Train rtseg's default instance model (person, cat, dog) on the real data in ../shared/data.

    python scripts/train_default_instance.py --hours 1.1 --out rtseg/assets/yolo11n-seg-person-cat-dog.pt

Data: :func:`rtseg.data.shared_sets.build_instance_sets` (pets trainval, 4/5 of Penn-Fudan, coco128's
person/cat/dog instances). Starts from the project's own coco128 weights (no pretrained download exists
offline), at imgsz 320 on CPU. Evaluate on the held-out split with ``rtseg eval``.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import torch

from rtseg.data.shared_sets import build_instance_sets
from rtseg.train.instance import train_instance

ASSET = Path(__file__).resolve().parents[1] / "tests" / "assets" / "yolo11n-seg-coco128.pt"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=str(ASSET), help="start weights or an architecture .yaml")
    parser.add_argument("--hours", type=float, default=1.1)
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument("--imgsz", type=int, default=320)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    data = build_instance_sets(Path(tempfile.mkdtemp(prefix="rtseg-inst-")))
    print(train_instance(data, args.out, model=args.model, epochs=args.epochs, imgsz=args.imgsz,
                         hours=args.hours, workers=1, verbose=True))


if __name__ == "__main__":
    main()
