"""Train an smp segmentation network on the aerial (Dubai land cover) set, on a CPU, within a time budget.

    python scripts/train_aerial_semantic.py --minutes 12 --out /tmp/aerial_unet.pt

* Data: :func:`rtseg.data.aerial.load_aerial`, split by whole tiles (:func:`~rtseg.data.aerial.split_aerial`).
* Training: random crops (``--crop``) at a random scale, flips and 90-degree rotations (overhead imagery has
  no "up"), cross-entropy ignoring ``unlabeled``, AdamW with a cosine learning rate over the time budget.
  The scale range defaults to 0.25..1.0, not 0.5..1.0: rtseg runs the model on whole frames letterboxed to
  ``--imgsz`` 512, which shrinks these tiles (509 to 2149 px wide) by 0.24..1.0, so training covers the pixel
  scales the model will see.
* An "epoch" is ``--steps-per-epoch`` steps (the time budget, not a data pass, ends training). After each
  one the held-out tiles are segmented whole through :class:`rtseg.models.semantic.SemanticModel` at
  ``--imgsz``, exactly as ``rtseg run`` would, and the checkpoint with the best mIoU is written with
  :func:`rtseg.models.semantic_zoo.save_semantic` (class names, palette, imgsz, ImageNet mean/std inside).
* Prints the best checkpoint's validation metrics as JSON on the last line of stdout.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
import time
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from rtseg.backends.semantic_backend import TorchSemanticBackend
from rtseg.data.aerial import CLASS_NAMES, PALETTE_BGR, UNLABELED, load_aerial, split_aerial, tile_of
from rtseg.evaluate_semantic import confusion_matrix, semantic_metrics
from rtseg.models.semantic import SemanticModel
from rtseg.models.semantic_zoo import build_semantic, save_semantic

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "aerial" / "dubai_landcover_hitl"
PAD_VALUE = 114  # grey of rtseg's letterbox, so padded crop borders look like padded frames


def random_crop(image: np.ndarray, labels: np.ndarray, crop: int, scale: float, rng: np.random.Generator
                ) -> tuple[np.ndarray, np.ndarray]:
    """A crop x crop patch showing the image at ``scale``; borders beyond the image are padded (ignored)."""
    h, w = labels.shape
    side = max(1, round(crop / scale))
    ch, cw = min(side, h), min(side, w)
    y0, x0 = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
    oh, ow = min(crop, max(1, round(ch * scale))), min(crop, max(1, round(cw * scale)))
    patch = cv2.resize(image[y0 : y0 + ch, x0 : x0 + cw], (ow, oh), interpolation=cv2.INTER_LINEAR)
    lab = cv2.resize(labels[y0 : y0 + ch, x0 : x0 + cw], (ow, oh), interpolation=cv2.INTER_NEAREST)
    out_im = np.full((crop, crop, 3), PAD_VALUE, np.uint8)
    out_lab = np.full((crop, crop), UNLABELED, np.uint8)
    out_im[:oh, :ow], out_lab[:oh, :ow] = patch, lab
    if rng.random() < 0.5:
        out_im, out_lab = out_im[:, ::-1], out_lab[:, ::-1]
    if rng.random() < 0.5:
        out_im, out_lab = out_im[::-1], out_lab[::-1]
    k = int(rng.integers(0, 4))
    return np.rot90(out_im, k), np.rot90(out_lab, k)


def make_batch(train: list[tuple[np.ndarray, np.ndarray]], args: argparse.Namespace, mean: np.ndarray,
               std: np.ndarray, rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    images, labels = [], []
    for _ in range(args.batch):
        image, lab = train[int(rng.integers(0, len(train)))]
        scale = math.exp(rng.uniform(math.log(args.scale_min), math.log(args.scale_max)))
        im, lb = random_crop(image, lab, args.crop, scale, rng)
        images.append(im)
        labels.append(lb)
    # the same contract as SemanticModel.prepare: BGR -> RGB, /255, (x - mean) / std
    x = np.stack(images)[..., ::-1].transpose(0, 3, 1, 2).astype(np.float32) / 255.0
    x = (x - mean) / std
    return torch.from_numpy(np.ascontiguousarray(x)), torch.from_numpy(np.stack(labels).astype(np.int64))


def evaluate(net: torch.nn.Module, info, val: list[tuple[np.ndarray, np.ndarray]], args: argparse.Namespace
             ) -> tuple[dict, np.ndarray]:
    """Whole held-out images through rtseg's own semantic stage; metrics of the summed confusion matrix."""
    model = SemanticModel(TorchSemanticBackend(net, info), imgsz=args.imgsz, quality=args.quality)
    conf = np.zeros((len(CLASS_NAMES), len(CLASS_NAMES)), np.int64)
    for image, gt in val:
        (pred,) = model([image])
        conf += confusion_matrix(pred, gt, len(CLASS_NAMES), ignore_index=UNLABELED)
    net.train()  # TorchSemanticBackend put it in eval mode
    return semantic_metrics(conf), conf


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--arch", default="Linknet", help="smp architecture (Linknet: fastest of Unet/FPN/Linknet "
                        "on this CPU, 0.9 vs 1.3 (FPN) vs 2.2 s (Unet) per step of 8 x 256^2 on one thread)")
    parser.add_argument("--encoder", default="mobilenet_v2")
    parser.add_argument("--minutes", type=float, default=12.0, help="training time budget (validation included)")
    parser.add_argument("--crop", type=int, default=256)
    parser.add_argument("--scale-min", type=float, default=0.25)
    parser.add_argument("--scale-max", type=float, default=1.0)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--weight-decay", type=float, default=1e-4)
    parser.add_argument("--steps-per-epoch", type=int, default=60)
    parser.add_argument("--imgsz", type=int, default=512)
    parser.add_argument("--quality", default="fast", choices=("fast", "high"))
    parser.add_argument("--val-fraction", type=float, default=0.25)
    parser.add_argument("--val-tiles", type=str, default=None, help="comma-separated tile numbers to hold out")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=Path("/tmp/aerial_unet.pt"))
    args = parser.parse_args(argv)

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    random.seed(args.seed)
    rng = np.random.default_rng(args.seed)
    t_start = time.perf_counter()
    budget_s = args.minutes * 60

    pairs = load_aerial(args.data)
    val_tiles = [int(t) for t in args.val_tiles.split(",")] if args.val_tiles else None
    train_pairs, val_pairs = split_aerial(pairs, args.val_fraction, args.seed, val_tiles=val_tiles)
    print(f"train tiles {sorted({tile_of(p) for p, _ in train_pairs})} ({len(train_pairs)} images), "
          f"val tiles {sorted({tile_of(p) for p, _ in val_pairs})} ({len(val_pairs)} images)", file=sys.stderr)
    train = [(cv2.imread(str(p), cv2.IMREAD_COLOR), lab) for p, lab in train_pairs]
    val = [(cv2.imread(str(p), cv2.IMREAD_COLOR), lab) for p, lab in val_pairs]

    net, info = build_semantic(args.arch, names=CLASS_NAMES, encoder=args.encoder, imgsz=args.imgsz)
    info = replace(info, palette_bgr=PALETTE_BGR)
    mean = np.asarray(info.mean_rgb, np.float32).reshape(1, 3, 1, 1)
    std = np.asarray(info.std_rgb, np.float32).reshape(1, 3, 1, 1)
    net.train()
    opt = torch.optim.AdamW(net.parameters(), lr=args.lr, weight_decay=args.weight_decay)

    best: dict | None = None
    history = []
    step, epoch, val_s = 0, 0, 0.0
    step_s = None  # running estimate of one training step, to stop before the budget runs out
    while True:
        epoch += 1
        bar = tqdm(range(args.steps_per_epoch), desc=f"epoch {epoch}", file=sys.stderr, mininterval=10)
        for _ in bar:
            elapsed = time.perf_counter() - t_start
            # keep time for one more validation (estimated from the last one) after the last step
            if step_s is not None and elapsed + step_s + max(val_s, 1.0) > budget_s:
                break
            t0 = time.perf_counter()
            lr = args.lr * 0.5 * (1 + math.cos(math.pi * min(1.0, elapsed / budget_s)))
            for group in opt.param_groups:
                group["lr"] = lr
            x, y = make_batch(train, args, mean, std, rng)
            loss = F.cross_entropy(net(x), y, ignore_index=UNLABELED)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1
            dt = time.perf_counter() - t0
            step_s = dt if step_s is None else 0.9 * step_s + 0.1 * dt
            bar.set_postfix(loss=f"{loss.item():.3f}", lr=f"{lr:.1e}")
        bar.close()
        t0 = time.perf_counter()
        metrics, conf = evaluate(net, info, val, args)
        val_s = time.perf_counter() - t0
        elapsed = time.perf_counter() - t_start
        record = {"epoch": epoch, "step": step, "elapsed_s": round(elapsed, 1), "loss": round(loss.item(), 4),
                  "val_mIoU": round(metrics["mIoU"], 4), "val_pixel_accuracy": round(metrics["pixel_accuracy"], 4)}
        history.append(record)
        print(json.dumps(record), file=sys.stderr, flush=True)
        if best is None or metrics["mIoU"] > best["metrics"]["mIoU"]:
            best = {"epoch": epoch, "step": step, "metrics": metrics, "confusion": conf.tolist()}
            args.out.parent.mkdir(parents=True, exist_ok=True)
            save_semantic(args.out, net, info)
        if step_s is not None and elapsed + step_s + val_s > budget_s:
            break

    result = {
        "checkpoint": str(args.out), "arch": args.arch, "encoder": args.encoder, "imgsz": args.imgsz,
        "quality": args.quality, "train_steps": step, "epochs": epoch, "batch": args.batch, "crop": args.crop,
        "wall_s": round(time.perf_counter() - t_start, 1), "threads": args.threads,
        "val_tiles": sorted({tile_of(p) for p, _ in val_pairs}), "val_images": len(val_pairs),
        "best_epoch": best["epoch"], "best_step": best["step"], "class_names": list(CLASS_NAMES),
        "ignore_index": UNLABELED, **best["metrics"], "confusion": best["confusion"], "history": history,
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
