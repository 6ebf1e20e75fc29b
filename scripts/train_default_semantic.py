"""Train rtseg's default semantic models on the real data in ../shared/data, on a CPU.

    python scripts/train_default_semantic.py pets --minutes 35 --out rtseg/assets/rtseg-pets-linknet.pt
    python scripts/train_default_semantic.py aerial --minutes 25 --out rtseg/assets/rtseg-aerial-linknet.pt

* ``pets``: Oxford-IIIT Pet (3 breeds), classes background / pet, trimap border pixels ignored. Training
  images: the original ``trainval`` split less every 7th image, which is the validation set that picks the
  best epoch; the original ``test`` split stays untouched for the model card (``rtseg eval``).
* ``aerial``: Dubai land cover, classes building / land / road / vegetation / water ("unlabeled" ignored);
  whole tiles held out, one for validation and two for the model card (:func:`rtseg.data.shared_sets.aerial_splits`).
Prints the result (best epoch, validation metrics, history) as JSON on stdout.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import cv2
import torch

from rtseg.data.shared_sets import pets_semantic, shared_data
from rtseg.train.semantic import Augment, plot_history, train_semantic


def pets(args: argparse.Namespace) -> tuple[list, list, tuple, None, Augment]:
    pairs = [(cv2.imread(str(p)), lab) for p, lab in pets_semantic(shared_data() / "pets", "trainval")]
    val = pairs[::7]
    train = [p for i, p in enumerate(pairs) if i % 7]
    # whole images (<= 384 px) are letterboxed to imgsz at inference: scale 0.58..1 for imgsz 224
    return train, val, ("background", "pet"), None, Augment(crop=args.crop, scale=(0.45, 1.0), colour=0.25)


def aerial(args: argparse.Namespace) -> tuple[list, list, tuple, tuple, Augment]:
    from rtseg.data.aerial import CLASS_NAMES, PALETTE_BGR
    from rtseg.data.shared_sets import aerial_splits

    train_pairs, val_pairs, _ = aerial_splits()
    load = lambda pairs: [(cv2.imread(str(p)), lab) for p, lab in pairs]  # noqa: E731
    return (load(train_pairs), load(val_pairs), CLASS_NAMES[:5], PALETTE_BGR[:5],
            Augment(crop=args.crop, scale=(0.25, 1.0), vflip=True, rot90=True, colour=0.1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("task", choices=("pets", "aerial"))
    parser.add_argument("--arch", default="Linknet")
    parser.add_argument("--encoder", default=None, help="smp encoder (default: the architecture's, mobilenet_v2)")
    parser.add_argument("--loss", default="ce+dice")
    parser.add_argument("--minutes", type=float, default=30)
    parser.add_argument("--epochs", type=int, default=200)
    parser.add_argument("--crop", type=int, default=224)
    parser.add_argument("--imgsz", type=int, default=224)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=1, help="crops per training image per epoch")
    parser.add_argument("--init", type=Path, default=None, help="rtseg checkpoint to continue training from")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    train, val, names, palette, augment = (pets if args.task == "pets" else aerial)(args)
    result = train_semantic(train * args.repeat, val, names, args.out, arch=args.arch, encoder=args.encoder,
                            loss=args.loss, augment=augment, epochs=args.epochs, minutes=args.minutes,
                            batch=args.batch, lr=args.lr, imgsz=args.imgsz, palette_bgr=palette, half=True,
                            init=args.init)
    plot_history(result.history, args.out.with_suffix(".png"))
    print(json.dumps({"checkpoint": str(result.checkpoint), "best_epoch": result.best_epoch,
                      "train_images": len(train), "val_images": len(val), "args": {k: str(v) for k, v in
                      vars(args).items()}, **result.metrics, "history": result.history}))


if __name__ == "__main__":
    main()
