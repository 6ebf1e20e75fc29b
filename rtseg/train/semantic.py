"""Semantic-segmentation training: random scale-crops, flips, colour jitter, a chosen loss, validation mIoU.

:func:`train_semantic` trains any architecture of :data:`rtseg.models.zoo.ARCHS` (smp U-Net,
LinkNet, FPN, PSPNet, DeepLabV3/3+ with a MobileNetV2 encoder by default; torchvision DeepLabV3 /
LR-ASPP) on a :class:`rtseg.data.datasets.Dataset`. Each epoch is one pass of random crops over the
training images; the validation images are then segmented whole through
:class:`rtseg.models.semantic.SemanticModel` at ``imgsz``, exactly as ``rtseg run`` would, and the
checkpoint with the best validation mIoU is written as a self-describing rtseg checkpoint.

Losses (``loss="ce+0.5*dice"``): ``ce``, ``bce`` (per class, one-hot), ``dice``, ``focal``, ``tversky``
(alpha 0.3, beta 0.7), ``focal_tversky`` (the Tversky loss to the power 0.75); label 255 is ignored by all.
"""

from __future__ import annotations

import json
import math
import re
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from numpy.typing import NDArray

from rtseg.config import check_options
from rtseg.data.convert import IGNORE
from rtseg.errors import ConfigError, SinkError
from rtseg.sinks.atomic import save_figure, written

PAD_VALUE = 114  # grey of rtseg's letterbox: padded crop borders look like padded frames
LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def _bce(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    keep = (target != IGNORE).unsqueeze(1).float()
    onehot = F.one_hot(target.clamp_max(logits.shape[1] - 1), logits.shape[1]).permute(0, 3, 1, 2).float()
    loss = F.binary_cross_entropy_with_logits(logits, onehot, reduction="none") * keep
    return loss.sum() / keep.sum().clamp_min(1) / logits.shape[1]


def _term(name: str) -> LossFn:
    from segmentation_models_pytorch import losses

    if name == "ce":
        return lambda x, y: F.cross_entropy(x, y, ignore_index=IGNORE)
    if name == "bce":
        return _bce
    if name == "dice":
        return losses.DiceLoss("multiclass", ignore_index=IGNORE)
    if name == "focal":
        return losses.FocalLoss("multiclass", ignore_index=IGNORE)
    if name == "tversky":
        return losses.TverskyLoss("multiclass", ignore_index=IGNORE, alpha=0.3, beta=0.7)
    if name == "focal_tversky":
        return losses.TverskyLoss("multiclass", ignore_index=IGNORE, alpha=0.3, beta=0.7, gamma=0.75)
    raise ConfigError(f"loss term {name!r} is unknown; use ce, bce, dice, focal, tversky, focal_tversky, "
                      "combined as e.g. ce+0.5*dice")


def parse_loss(spec: str) -> LossFn:
    """A weighted sum of loss terms from ``"ce+0.5*dice"`` (weights default to 1)."""
    terms = []
    for part in spec.replace(" ", "").lower().split("+"):
        match = re.fullmatch(r"(?:(\d+(?:\.\d*)?|\.\d+)\*)?([a-z_]+)", part)
        if not match:
            raise ConfigError(f"loss={spec!r}: cannot read {part!r}; expected e.g. ce+0.5*dice")
        terms.append((float(match.group(1) or 1.0), _term(match.group(2))))
    return lambda x, y: sum(w * fn(x, y) for w, fn in terms)


@dataclass
class Augment:
    """Training augmentation: a random crop at a random scale, flips, 90-degree turns, colour jitter."""

    crop: int = 256
    scale: tuple[float, float] = (0.5, 1.0)  # output pixels per input pixel (log-uniform)
    hflip: bool = True
    vflip: bool = False
    rot90: bool = False
    colour: float = 0.2  # brightness / contrast / saturation jitter amplitude; 0 = off

    def __call__(self, image: NDArray[np.uint8], labels: NDArray[np.uint8], rng: np.random.Generator
                 ) -> tuple[NDArray[np.uint8], NDArray[np.uint8]]:
        scale = math.exp(rng.uniform(math.log(self.scale[0]), math.log(self.scale[1])))
        h, w = labels.shape
        side = max(1, round(self.crop / scale))
        ch, cw = min(side, h), min(side, w)
        y0, x0 = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
        oh, ow = min(self.crop, max(1, round(ch * scale))), min(self.crop, max(1, round(cw * scale)))
        patch = cv2.resize(image[y0 : y0 + ch, x0 : x0 + cw], (ow, oh), interpolation=cv2.INTER_LINEAR)
        lab = cv2.resize(labels[y0 : y0 + ch, x0 : x0 + cw], (ow, oh), interpolation=cv2.INTER_NEAREST)
        im = np.full((self.crop, self.crop, 3), PAD_VALUE, np.uint8)
        lb = np.full((self.crop, self.crop), IGNORE, np.uint8)
        im[:oh, :ow], lb[:oh, :ow] = patch, lab
        if self.hflip and rng.random() < 0.5:
            im, lb = im[:, ::-1], lb[:, ::-1]
        if self.vflip and rng.random() < 0.5:
            im, lb = im[::-1], lb[::-1]
        if self.rot90:
            k = int(rng.integers(0, 4))
            im, lb = np.rot90(im, k), np.rot90(lb, k)
        if self.colour > 0:
            im = _jitter(np.ascontiguousarray(im), self.colour, rng)
        return np.ascontiguousarray(im), np.ascontiguousarray(lb)


def _jitter(image: NDArray[np.uint8], amount: float, rng: np.random.Generator) -> NDArray[np.uint8]:
    brightness, contrast, saturation = 1 + rng.uniform(-amount, amount, 3)
    x = image.astype(np.float32)
    grey = x.mean(axis=2, keepdims=True)
    x = grey + (x - grey) * saturation
    x = (x - x.mean()) * contrast + x.mean() * brightness
    return x.clip(0, 255).astype(np.uint8)


@dataclass
class TrainResult:
    checkpoint: Path
    best_epoch: int
    metrics: dict
    history: list[dict] = field(default_factory=list)


def _to_batch(images: Sequence[NDArray[np.uint8]], mean: NDArray[np.float32], std: NDArray[np.float32]
              ) -> torch.Tensor:
    # SemanticModel.prepare's contract: BGR -> RGB, /255, (x - mean) / std
    x = np.stack(images)[..., ::-1].transpose(0, 3, 1, 2).astype(np.float32) / 255.0
    return torch.from_numpy(np.ascontiguousarray((x - mean) / std))


def evaluate_net(net: torch.nn.Module, info, pairs: Sequence[tuple[NDArray[np.uint8], NDArray[np.uint8]]], *,
                 imgsz: int, quality: str = "fast") -> tuple[dict, NDArray[np.int64]]:
    """Whole images through rtseg's own semantic stage; metrics of the summed confusion matrix."""
    from rtseg.backends.torch_backend import TorchSemanticBackend
    from rtseg.evaluate.semantic import confusion_matrix, semantic_metrics
    from rtseg.models.semantic import SemanticModel

    model = SemanticModel(TorchSemanticBackend(net, info), imgsz=imgsz, quality=quality)
    n = len(info.names)
    conf = np.zeros((n, n), np.int64)
    for image, gt in pairs:
        (pred,) = model([image])
        conf += confusion_matrix(pred, gt, n, ignore_index=IGNORE)
    return semantic_metrics(conf), conf


def train_semantic(train: Sequence[tuple[NDArray[np.uint8], NDArray[np.uint8]]],
                   val: Sequence[tuple[NDArray[np.uint8], NDArray[np.uint8]]], names: Sequence[str], out: Path, *,
                   arch: str = "Linknet", encoder: str | None = None, loss: str = "ce+dice",
                   augment: Augment | None = None, epochs: int = 30, minutes: float | None = None,
                   batch: int = 8, lr: float = 2e-3, weight_decay: float = 1e-4, imgsz: int = 512,
                   palette_bgr: Sequence[tuple[int, int, int]] | None = None, half: bool = False,
                   seed: int = 0, progress: bool = True, log: Callable[[str], None] | None = None,
                   init: Path | None = None) -> TrainResult:
    """Train from scratch and keep the checkpoint with the best validation mIoU.

    Args:
        train, val: (BGR image, label map with 255 = ignore) pairs.
        minutes: a time budget that ends training early (the cosine learning-rate schedule follows it).
        half: store the weights as float16 (half the file size; they load back as float32).
        init: an rtseg semantic checkpoint to start from (fine-tuning); its classes must be ``names``;
            ``arch`` and ``encoder`` are then taken from it.
        log: receives one JSON line per epoch (default: stderr).
    """
    from tqdm import tqdm

    from rtseg.models.zoo import build_semantic, save_semantic

    check_options(epochs=epochs, minutes=minutes, batch=batch, lr=lr, imgsz=imgsz)
    if augment is not None:
        check_options(crop=augment.crop, colour=augment.colour)
    if not train:
        raise ConfigError("no training images")
    if not val:
        raise ConfigError("no validation images")
    _check_pairs(train, len(names), "training")
    _check_pairs(val, len(names), "validation")
    log = log or (lambda line: print(line, file=sys.stderr, flush=True))
    augment = augment or Augment()
    loss_fn = parse_loss(loss)
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    if init is not None:
        from rtseg.models.zoo import load_semantic

        net, info = load_semantic(init)
        if tuple(info.names) != tuple(names):
            raise ConfigError(f"{init}: its classes {list(info.names)} differ from the data's {list(names)}")
        info = replace(info, imgsz=(imgsz, imgsz))
    else:
        net, info = build_semantic(arch, names=names, encoder=encoder, imgsz=imgsz)
    if palette_bgr is not None:
        info = replace(info, palette_bgr=tuple(tuple(int(v) for v in c) for c in palette_bgr))
    mean = np.asarray(info.mean_rgb, np.float32).reshape(1, 3, 1, 1)
    std = np.asarray(info.std_rgb, np.float32).reshape(1, 3, 1, 1)
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=weight_decay)
    steps_per_epoch = max(1, math.ceil(len(train) / batch))
    total_steps = steps_per_epoch * epochs
    budget = minutes * 60 if minutes else None
    t_start = time.perf_counter()
    best: TrainResult | None = None
    history: list[dict] = []
    step, val_s = 0, 0.0
    for epoch in range(1, epochs + 1):
        net.train()
        order = rng.permutation(len(train))
        bar = tqdm(range(steps_per_epoch), desc=f"epoch {epoch}/{epochs}", disable=not progress, file=sys.stderr,
                   leave=False, mininterval=1)
        losses = []
        for k in bar:
            elapsed = time.perf_counter() - t_start
            frac = min(1.0, elapsed / budget) if budget else step / total_steps
            for group in opt.param_groups:
                group["lr"] = lr * 0.5 * (1 + math.cos(math.pi * frac))
            idx = order[k * batch : (k + 1) * batch]
            if len(idx) < batch:  # a full batch every step (BatchNorm dislikes tiny ones)
                idx = np.concatenate([idx, rng.integers(0, len(train), batch - len(idx))])
            crops = [augment(*train[int(i)], rng) for i in idx]
            x = _to_batch([c[0] for c in crops], mean, std)
            y = torch.from_numpy(np.stack([c[1] for c in crops]).astype(np.int64))
            value = loss_fn(net(x), y)
            if not torch.isfinite(value):  # stop here: one more step spreads NaN into every weight
                _diverged(f"the training loss became {float(value.detach())} at epoch {epoch}, step {step + 1}",
                          lr, best)
            opt.zero_grad(set_to_none=True)
            value.backward()
            opt.step()
            step += 1
            losses.append(float(value.detach()))
            bar.set_postfix(loss=f"{losses[-1]:.3f}")
        bar.close()
        t0 = time.perf_counter()
        metrics, conf = evaluate_net(net, info, val, imgsz=imgsz)
        val_s = time.perf_counter() - t0
        elapsed = time.perf_counter() - t_start
        record = {"epoch": epoch, "step": step, "elapsed_s": round(elapsed, 1),
                  "loss": round(float(np.mean(losses)), 4), "val_mIoU": round(metrics["mIoU"], 4),
                  "val_pixel_accuracy": round(metrics["pixel_accuracy"], 4)}
        history.append(record)
        log(json.dumps(record))
        if not all(torch.isfinite(p).all() for p in net.parameters()):
            _diverged(f"the weights became NaN or infinite in epoch {epoch}", lr, best)
        if best is None or metrics["mIoU"] > best.metrics["mIoU"]:
            out.parent.mkdir(parents=True, exist_ok=True)
            _save(save_semantic, out, net, info, half)
            best = TrainResult(out, epoch, {**metrics, "confusion": conf.tolist()})
        if budget and elapsed + val_s + (elapsed - val_s) / epoch > budget:
            break
    assert best is not None
    best.history = history
    return best


def _check_pairs(pairs: Sequence[tuple[NDArray[np.uint8], NDArray[np.uint8]]], n_classes: int, what: str) -> None:
    """Labels a loss can learn from: their image's size, ids below ``n_classes`` (or 255), some pixel labelled."""
    labelled = 0
    for k, (image, labels) in enumerate(pairs):
        if image is None or image.shape[:2] != labels.shape[:2]:
            got = "no image" if image is None else f"a {image.shape[1]}x{image.shape[0]} image"
            raise ConfigError(f"{what} image {k}: {got} for a {labels.shape[1]}x{labels.shape[0]} label map")
        ids = np.unique(labels)
        beyond = ids[(ids >= n_classes) & (ids != IGNORE)]
        if len(beyond):
            raise ConfigError(f"{what} image {k}: label id {int(beyond[0])}, but the model has {n_classes} classes "
                              f"(ids 0-{n_classes - 1}; 255 = ignore)")
        labelled += int(np.count_nonzero(labels != IGNORE))
    if not labelled:
        raise ConfigError(f"no labelled pixel in the {len(pairs)} {what} images: every label is 255 (ignore), "
                          "so there is nothing to learn or measure: check the masks")


def _diverged(what: str, lr: float, best: TrainResult | None) -> None:
    kept = f"the best checkpoint so far (epoch {best.best_epoch}) stays in {best.checkpoint}" if best else \
        "no checkpoint was written"
    raise ConfigError(f"{what}: training diverged; {kept}. Lower the learning rate (lr={lr:g} now) or check "
                      "the labels")


def _save(save_semantic, out: Path, net, info, half: bool) -> None:  # noqa: ANN001
    """Write the checkpoint under a temporary name and rename it: the best epoch so far stays whole until the
    next one is complete."""
    try:
        with written(out, what="checkpoint") as temp:
            save_semantic(temp, net, info)
            if half:  # float16 storage; load_state_dict copies the values back into float32 parameters
                ckpt = torch.load(temp, weights_only=True)
                ckpt["state_dict"] = {k: v.half() if v.is_floating_point() else v
                                      for k, v in ckpt["state_dict"].items()}
                torch.save(ckpt, temp)
    except RuntimeError as exc:  # torch.save reports a failed write (a full disk) as a RuntimeError
        raise SinkError(f"cannot write checkpoint {out}: {str(exc).strip().splitlines()[0][:200]}") from None


def plot_history(history: Sequence[dict], path: Path) -> Path:
    """Loss and validation mIoU per epoch, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [h["epoch"] for h in history]
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot(epochs, [h["loss"] for h in history], "o-", color="tab:red", label="training loss")
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    ax2 = ax.twinx()
    ax2.plot(epochs, [h["val_mIoU"] for h in history], "s-", color="tab:blue", label="validation mIoU")
    ax2.set_ylabel("mIoU")
    ax2.set_ylim(0, 1)
    fig.legend(loc="upper center", ncol=2)
    fig.tight_layout()
    return save_figure(fig, path, dpi=100)
