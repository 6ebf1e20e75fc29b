"""Instance-segmentation training: Ultralytics' trainer on a YOLO-seg data set, the result copied out.

rtseg does not re-implement YOLO training: :func:`train_instance` fixes the settings that matter on an
offline machine (no pretrained download, no auto-install, AdamW at a learning rate that learns from
scratch) and copies the final weights to ``out``. :func:`train_resumable` does the same for runs that take
many hours on a CPU: a persistent work folder, resumed from its ``last.pt`` when called again, a per-session
time budget, and the checkpoint that scored best on the validation split copied out.
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from rtseg.backends.weights import ultralytics_loads
from rtseg.config import check_options
from rtseg.errors import ConfigError
from rtseg.sinks.atomic import written

logger = logging.getLogger(__name__)


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


# -- resumable training in a persistent work folder -----------------------------------------------------------

# Augmentation for people from drone height to full-frame portraits (Ultralytics hyper-parameter names):
# mosaic puts four images at half size into one sample (small people, crowded scenes), scale 0.6 zooms each
# sample by 0.4-1.6x (default 0.5: 0.5-1.5x) so a portrait also appears person-sized and a small figure larger,
# copy_paste pastes mirrored instances into the same image (more, overlapping instances: groups), and the
# last close_mosaic epochs train on whole, unmosaicked images, the distribution the held-out sets and a
# webcam show.
AUGMENT = {"mosaic": 1.0, "scale": 0.6, "copy_paste": 0.3, "fliplr": 0.5, "degrees": 0.0, "mixup": 0.0}
# Fine-tuning warm-up: Ultralytics ramps the bias learning rate down from warmup_bias_lr (default 0.1, meant
# for SGD) over at least 100 iterations; with AdamW that wrecks a trained start (measured in a smoke run:
# validation box mAP@0.5 0.14 -> 0.08 after one epoch from the bundled model; 0.14 kept with these settings).
# Ramp the biases up from 0 like the other weights.
WARMUP = {"warmup_bias_lr": 0.0, "warmup_epochs": 1.0}
DONE = "finished.json"


class SessionPaused(Exception):  # noqa: N818 (a signal, not an error)
    """Raised by the epoch-end callback to end a session between epochs with ``last.pt`` still resumable
    (Ultralytics strips the optimizer from ``last.pt`` when its own loop stops, after which it cannot resume)."""


@dataclass(frozen=True)
class RunPlan:
    """What a training call in ``work`` does: ``fresh`` (no run yet), ``resume`` (from ``last.pt``) or ``done``."""

    action: str
    checkpoint: Path | None


def plan_run(work: Path, *, fresh: bool = False) -> RunPlan:
    """Resume or start: ``resume`` when ``work/run/weights/last.pt`` exists and the run has not finished
    (no ``work/finished.json``), ``done`` when it has (its ``best.pt``), else ``fresh``; ``fresh=True`` always
    starts again (the caller moves the old run aside)."""
    weights = Path(work) / "run" / "weights"
    if fresh:
        return RunPlan("fresh", None)
    if (Path(work) / DONE).is_file() and (weights / "best.pt").is_file():
        return RunPlan("done", weights / "best.pt")
    if (weights / "last.pt").is_file():
        return RunPlan("resume", weights / "last.pt")
    return RunPlan("fresh", None)


def train_resumable(data_yaml: Path, work: Path, out: Path, *, model: str = "yolo11n-seg.yaml", epochs: int = 60,
                    imgsz: int = 640, batch: int = 16, session_hours: float | None = None, device: str = "cpu",
                    lr0: float = 0.001, workers: int = 2, seed: int = 0, fraction: float = 1.0,
                    fresh: bool = False, augment: dict | None = None, verbose: bool = True) -> dict:
    """Train (or resume training) in ``work`` and copy the best checkpoint (on the data set's ``val`` split) to ``out``.

    The run lives in ``work/run`` (Ultralytics' folder: ``weights/last.pt`` after every epoch, ``best.pt``,
    ``results.csv``). Calling again with the same ``work`` resumes from ``last.pt`` (Ultralytics
    ``resume=True``: optimizer, EMA, epoch and schedule restored; the settings are the checkpoint's, except
    ``imgsz``, ``batch``, ``workers`` and ``device``); after the last epoch it only copies ``best.pt`` again.

    Args:
        epochs: the whole schedule (cosine learning rate over it); fixed, so sessions add up to one run.
        session_hours: end this session at the first epoch end where one more epoch would pass this budget;
            rerun to continue. None: run to the end.
        fraction: train on this fraction of the ``train`` split (smoke runs).
        fresh: start again even if ``work`` holds a run (the old ``work/run`` is renamed ``run.old-N``).

    Returns:
        ``{"status": "paused" | "finished" | "done", "epoch": epochs completed, "best": out, "seconds": s}``;
        ``out`` is written in every case (paused: the best checkpoint so far, optimizer stripped).
    """
    check_options(epochs=epochs, imgsz=imgsz, batch=batch)
    from ultralytics import YOLO
    from ultralytics.utils.torch_utils import strip_optimizer

    if not Path(data_yaml).is_file():
        raise ConfigError(f"data set description not found: {data_yaml}")
    work = Path(work)
    plan = plan_run(work, fresh=fresh)
    if fresh and (work / "run").exists():
        n = sum(1 for _ in work.glob("run.old-*"))
        (work / "run").rename(work / f"run.old-{n}")
        (work / DONE).unlink(missing_ok=True)
    weights = work / "run" / "weights"
    start = time.perf_counter()
    status = "done"
    if plan.action != "done":
        def pause(trainer) -> None:  # noqa: ANN001 (Ultralytics' trainer)
            spent = time.perf_counter() - start
            m = trainer.metrics or {}
            # Ultralytics calls this once more after the loop (epoch + 1 then), for the final validation of best.pt
            final = trainer.epoch >= trainer.epochs
            what = "final validation of best.pt" if final else f"epoch {trainer.epoch + 1}/{trainer.epochs}"
            logger.info("%s: %.0f s, session %.2f h; val mAP@0.5 box %.3f mask %.3f", what, trainer.epoch_time or 0,
                        spent / 3600, m.get("metrics/mAP50(B)", float("nan")), m.get("metrics/mAP50(M)", float("nan")))
            # never once the loop is ending (last epoch, early stop, final validation): last.pt is stripped then
            if (session_hours is not None and not trainer.stop and trainer.epoch + 1 < trainer.epochs
                    and spent + trainer.epoch_time > session_hours * 3600):
                raise SessionPaused(f"session budget {session_hours} h reached after epoch {trainer.epoch + 1}")

        status = "finished"
        with ultralytics_loads():
            if plan.action == "resume":
                yolo = YOLO(str(plan.checkpoint))
                yolo.add_callback("on_fit_epoch_end", pause)
                kwargs = {"resume": str(plan.checkpoint)}
            else:
                yolo = YOLO(model)
                yolo.add_callback("on_fit_epoch_end", pause)
                kwargs = {"epochs": epochs, "optimizer": "AdamW", "lr0": lr0, "cos_lr": True, "seed": seed,
                          "fraction": fraction, "amp": device != "cpu", "plots": False, "project": str(work),
                          "name": "run", "exist_ok": True, **WARMUP, **AUGMENT, **(augment or {})}
            try:
                yolo.train(data=str(data_yaml), imgsz=imgsz, batch=batch, workers=workers, device=device,
                           verbose=verbose, **kwargs)
            except SessionPaused as exc:
                logger.info("%s; rerun with the same work folder to resume", exc)
                status = "paused"
            best = weights / ("best.pt" if (weights / "best.pt").is_file() else "last.pt")
            out.parent.mkdir(parents=True, exist_ok=True)
            with written(out, what="checkpoint") as temp:
                shutil.copyfile(best, temp)
                if status == "paused":  # an unstripped checkpoint carries the optimizer: 3x the size
                    strip_optimizer(temp)
    else:
        with written(out, what="checkpoint") as temp:
            shutil.copyfile(plan.checkpoint, temp)
    seconds = time.perf_counter() - start
    epoch = _epochs_done(work / "run" / "results.csv")
    record = {"status": status, "epoch": epoch, "best": str(out), "seconds": round(seconds, 1), "plan": plan.action}
    with open(work / "sessions.jsonl", "a") as log:  # how many hours the run took, over all its sessions
        log.write(json.dumps({**record, "device": device, "imgsz": imgsz, "batch": batch}) + "\n")
    if status == "finished":
        (work / DONE).write_text(json.dumps(record) + "\n")
    return record


def _epochs_done(results_csv: Path) -> int:
    if not results_csv.is_file():
        return 0
    return max(0, len(results_csv.read_text().strip().splitlines()) - 1)
