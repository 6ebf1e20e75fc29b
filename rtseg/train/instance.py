"""Instance-segmentation training: Ultralytics' trainer on a YOLO-seg data set, the result copied out.

rtseg does not re-implement YOLO training: :func:`train_instance` fixes the settings that matter on an
offline machine (no pretrained download, no auto-install, AdamW at a learning rate that learns from
scratch) and copies the final weights to ``out``.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from rtseg.backends.weights import ultralytics_loads
from rtseg.config import check_options
from rtseg.errors import ConfigError
from rtseg.sinks.atomic import written


def train_instance(data_yaml: Path, out: Path, *, model: str = "yolo11n-seg.yaml", epochs: int = 50,
                   imgsz: int = 320, batch: int = 16, hours: float | None = None, device: str = "cpu",
                   lr0: float = 0.002, workers: int = 2, seed: int = 0, verbose: bool = False) -> Path:
    """Train a YOLO-seg model on ``data_yaml`` and write its last weights to ``out``.

    Args:
        model: an Ultralytics architecture config (``yolo11n-seg.yaml``: from scratch) or weights to start
            from (``.pt``; the class head is rebuilt when the class count differs), read as data unless
            weights are trusted (:mod:`rtseg.backends.weights`).
        hours: a time budget; when given, Ultralytics fits the epoch count and learning-rate schedule to it.
    """
    check_options(epochs=epochs, imgsz=imgsz, batch=batch)
    from ultralytics import YOLO

    if not Path(data_yaml).is_file():
        raise ConfigError(f"data set description not found: {data_yaml}")
    work = Path(tempfile.mkdtemp(prefix="rtseg-train-"))
    kwargs = {"time": hours} if hours else {}
    with ultralytics_loads():  # the start weights, and every checkpoint the trainer reads back, load as data
        yolo = YOLO(model)
        yolo.train(data=str(data_yaml), epochs=epochs, imgsz=imgsz, batch=batch, workers=workers, device=device,
                   optimizer="AdamW", lr0=lr0, cos_lr=True, amp=device != "cpu", plots=False, seed=seed,
                   project=str(work), name="run", exist_ok=True, verbose=verbose, **kwargs)
    last = work / "run" / "weights" / "last.pt"
    out.parent.mkdir(parents=True, exist_ok=True)
    with written(out, what="checkpoint") as temp:  # renamed once complete; a full disk is one SinkError line
        shutil.copyfile(last, temp)
    return out
