"""INT8 export with an accuracy gate: quantize, measure before and after on labelled data, refuse a bad copy.

:func:`export_int8` is what ``rtseg export W --format onnx --int8 --calib SOURCE [--val DATA]`` and
``rtseg.export(W, "onnx", int8=True, calib=..., val=...)`` run. It lives above :mod:`rtseg.evaluate`
(the exporters may not import it): the measurement is ``rtseg eval``'s, on the FP32 export and on the
INT8 copy, at the model's own input size. The figures go into the INT8 file's ``rtseg_quantization``
metadata (:func:`rtseg.exporters.quantize.quantization_info`), where the CLI reads them back.
"""

from __future__ import annotations

import json
import logging
import math
import tempfile
from pathlib import Path

from rtseg.errors import ConfigError, RtsegError
from rtseg.exporters.quantize import (
    DEFAULT_CALIB_FRAMES,
    QUANT_METADATA_KEY,
    calibration_frames,
    calibration_name,
    check_calib_frames,
    quantize_onnx,
    save_onnx,
)

LOGGER = logging.getLogger(__name__)
DEFAULT_MAX_DROP = 0.01
# what the gate compares: box and mask mAP@0.5 (instance), mIoU (semantic)
GATE_METRICS = {"instance": ("box_mAP50", "mask_mAP50"), "semantic": ("mIoU",)}


class AccuracyGateError(ConfigError):
    """The INT8 copy lost more accuracy than ``max_drop`` allows; nothing was written."""


def check_max_drop(max_drop: float) -> float:
    if isinstance(max_drop, bool) or not isinstance(max_drop, (int, float)) or not 0 <= max_drop <= 1 \
            or math.isnan(max_drop):
        raise ConfigError(f"max_drop={max_drop!r}: expected a number in [0, 1] (an absolute drop in mAP or mIoU)")
    return float(max_drop)


def measure(model: str | Path, dataset, *, imgsz: int | None = None) -> dict:  # noqa: ANN001 - Dataset
    """``rtseg eval``'s metrics of ``model`` on ``dataset`` (ONNX Runtime, CPU): ``{"task", metric: value}``.

    Raises:
        ConfigError: the data's classes share none with the model's (one line, from :mod:`rtseg.evaluate`).
    """
    from rtseg.evaluate.core import evaluate_instance_model, evaluate_semantic_model
    from rtseg.models.task import model_task
    from rtseg.pipeline.loading import RunOptions, load_models

    semantic = model_task(model) == "semantic"
    seg, sem = load_models(RunOptions(model=str(model), imgsz=imgsz, conf=0.001, iou=0.7, device="cpu",
                                      backend="auto" if str(model).endswith(".pt") else "onnxruntime"))
    report = evaluate_semantic_model(sem, dataset) if semantic else evaluate_instance_model(seg, dataset)
    return {"task": report.task, "images": report.images,
            **{k: float(report.metrics[k]) for k in GATE_METRICS[report.task]}}


def load_val(val: str | Path, split: str = "val", labels: str = "semantic"):  # noqa: ANN201 - Dataset
    """The ``--val`` data set, read as ``rtseg eval --data`` reads it (one-line errors)."""
    from rtseg.data.datasets import load_dataset

    return load_dataset(Path(val), split, None, labels)


def data_name(val: str | Path) -> str:
    """How reports name a labelled set: ``pets/data.yaml`` for a YAML file, else the folder or file name."""
    path = Path(str(val))
    return f"{path.parent.name}/{path.name}" if path.suffix.lower() in (".yaml", ".yml", ".json") else path.name


def drop_of(before: dict, after: dict) -> float:
    """The largest loss over the gated metrics (negative when INT8 scores higher on all of them)."""
    return max(before[k] - after[k] for k in GATE_METRICS[before["task"]])


def describe(before: dict, after: dict) -> str:
    """``box mAP@0.5 0.836 -> 0.836, mask mAP@0.5 0.816 -> 0.815``."""
    label = {"box_mAP50": "box mAP@0.5", "mask_mAP50": "mask mAP@0.5", "mIoU": "mIoU"}
    return ", ".join(f"{label[k]} {before[k]:.4f} -> {after[k]:.4f}" for k in GATE_METRICS[before["task"]])


def export_int8(weights: str | Path, *, calib: str | Path | None = None, calib_frames: int = DEFAULT_CALIB_FRAMES,
                val: str | Path | None = None, val_split: str = "val", val_labels: str = "semantic",
                max_drop: float = DEFAULT_MAX_DROP, force: bool = False, out: str | Path | None = None,
                imgsz: int | None = None, dynamic: bool = True, nms: bool | None = None) -> Path:
    """Export ``weights`` (instance or semantic) to an INT8 ONNX file, gated on accuracy when ``val`` is given.

    Args:
        weights: what ``rtseg export --format onnx`` reads (``.pt``, a semantic checkpoint), or an FP32
            ``.onnx`` written by it.
        calib: calibration frames: a folder of images, a glob, or a video (required).
        calib_frames: how many frames calibrate (spread over a folder; see
            :func:`rtseg.exporters.quantize.calibration_frames`).
        val: labelled data (anything ``rtseg eval --data`` reads) measured before and after; None: accuracy
            is not checked (the metadata says so). val_split, val_labels: as ``rtseg eval --split/--labels``.
        max_drop: the largest loss allowed in box or mask mAP@0.5 (instance) or mIoU (semantic).
        force: write the INT8 file even when the loss is larger.
        out: the INT8 file; default beside the weights, ``<stem>-int8.onnx``.
        imgsz, dynamic, nms: as :func:`rtseg.exporters.onnx.export_onnx`; the calibration frames are
            letterboxed at ``imgsz`` (default: the model's own), as ``rtseg run`` would.

    Raises:
        AccuracyGateError: the loss exceeds ``max_drop`` (and not ``force``); nothing is written.
        ConfigError: no calibration images, a ``val`` set with no class in common, bad options.
    """
    import onnx

    from rtseg.exporters.onnx import export as export_fp32
    from rtseg.models.task import model_task

    if calib in (None, ""):
        raise ConfigError("int8=True needs calib=SOURCE: a folder of images or a video like those the model "
                          "will see")
    check_calib_frames(calib_frames)
    max_drop = check_max_drop(max_drop)
    target = Path(out) if out else Path(str(weights)).with_name(f"{Path(str(weights)).stem}-int8.onnx")
    if target.suffix.lower() != ".onnx":
        raise ConfigError(f"out={target}: an ONNX export needs the .onnx suffix")
    if not target.parent.exists():
        raise ConfigError(f"out={target}: folder {target.parent} does not exist")
    frames = calibration_frames(calib, calib_frames)  # no images: one line, before any export
    dataset = load_val(val, val_split, val_labels) if val not in (None, "") else None
    task = model_task(weights)
    with tempfile.TemporaryDirectory(prefix="rtseg-int8-") as tmp:
        if str(weights).lower().endswith(".onnx"):
            fp32 = Path(str(weights))
        else:
            options: dict = {"out": Path(tmp) / "fp32.onnx", "imgsz": imgsz, "dynamic": dynamic}
            if nms is not None:
                options["nms"] = nms
            fp32 = export_fp32(str(weights), "onnx", **options)
        before = measure(fp32, dataset) if dataset is not None else None  # a class mismatch fails here
        staged = quantize_onnx(fp32, Path(tmp) / "int8.onnx", frames=frames, calib_name=calibration_name(calib),
                               task=task, imgsz=imgsz)
        accuracy = None
        if dataset is not None:
            after = measure(staged, dataset)
            drop = drop_of(before, after)
            accuracy = {"data": data_name(val), "split": val_split, "images": before["images"], "fp32": before,
                        "int8": after, "drop": round(drop, 6), "max_drop": max_drop, "passed": drop <= max_drop}
            if drop > max_drop and not force:
                raise AccuracyGateError(f"INT8 loses {drop:.4f} on {data_name(val)} "
                                        f"({describe(before, after)}), "
                                        f"more than max_drop={max_drop}; nothing written (force=True writes it "
                                        "anyway; more calib_frames or another calib set may help)")
        proto = onnx.load(str(staged))
        entry = next(p for p in proto.metadata_props if p.key == QUANT_METADATA_KEY)
        entry.value = json.dumps({**json.loads(entry.value), "accuracy": accuracy})
        save_onnx(proto, target)
    return target


def summary_lines(info: dict | None) -> list[str]:
    """What ``rtseg export --int8`` prints after writing: calibration, and the gate's figures or that there
    were none."""
    if not info:
        return []
    calib = info.get("calibration", {})
    lines = [f"INT8 (ONNX Runtime QDQ) calibrated on {calib.get('frames')} frames of {calib.get('name')} at "
             f"{'x'.join(str(s) for s in calib.get('input_hw', []))}"]
    acc = info.get("accuracy")
    if not acc:
        lines.append("accuracy was not checked: pass --val DATA (labelled, as rtseg eval reads) to measure it")
    else:
        verdict = "within" if acc["passed"] else "MORE than (written because of --force)"
        lines.append(f"accuracy on {acc['data']} ({acc['images']} images): {describe(acc['fp32'], acc['int8'])}; "
                     f"drop {acc['drop']:.4f}, {verdict} --max-drop {acc['max_drop']}")
    return lines


__all__ = ["AccuracyGateError", "export_int8", "measure", "summary_lines", "RtsegError"]
