"""``rtseg eval``, ``rtseg train`` and ``rtseg convert``: the commands that work on labelled data sets.

:func:`register` adds them to :data:`rtseg.cli.app.app`; same conventions: one line on stderr and exit 2 for
any :class:`~rtseg.errors.RtsegError`.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path
from typing import Annotated, Optional

import typer

from rtseg.cli.common import (
    TRUST_WEIGHTS_HELP,
    apply_trust,
    check_plot_format,
    check_report_paths,
    data_inputs,
    fail,
    setup_logging,
)
from rtseg.cli.edge import guard
from rtseg.cli.options import ranged
from rtseg.config import check_options
from rtseg.errors import ConfigError, RtsegError

DATA_HELP = ("Labelled data: a YOLO-seg data.yaml (or its folder), a COCO instances .json, a mask-PNG folder "
             "(images/, masks/, classes.txt), or a LabelMe folder (NAME.json beside NAME.jpg, as rtseg label "
             "writes and LabelMe saves).")
LABELS_HELP = ("How a mask-PNG folder's PNGs are read: semantic (class ids), instance (object ids, one class) "
               "or trimap (Oxford-IIIT Pet: 1 object, 2 background, 3 border, ignored).")


def _bar(total: int, desc: str):  # noqa: ANN202
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="img", file=sys.stderr, leave=False, disable=not sys.stderr.isatty())


def eval_cmd(
    model: Annotated[str, typer.Option("--model", "-m", help="Model to evaluate: YOLO-seg weights (.pt/.onnx) "
                                       "or a semantic model (rtseg checkpoint, .onnx).", show_default=False)],
    data: Annotated[Path, typer.Option("--data", "-d", help=DATA_HELP, show_default=False)],
    split: Annotated[str, typer.Option(help="Split of a YOLO-seg data.yaml, or sub-folder of a mask-PNG "
                                       "folder (the whole folder when it has none).")] = "val",
    labels: Annotated[str, typer.Option(help=LABELS_HELP)] = "semantic",
    images: Annotated[Optional[Path], typer.Option(help="Image folder of a COCO .json (default: beside it).")
                      ] = None,
    semantic_model: Annotated[str, typer.Option("--semantic", "-s", help="Panoptic ground truth (a COCO "
                                                "panoptic .json): the semantic model whose stuff goes under "
                                                "--model's things, fused as rtseg run --panoptic does (instances from "
                                                "--conf 0.25 unless another --conf is given).")] = "",
    panoptic_masks: Annotated[Optional[Path], typer.Option(help="PNG folder of a COCO panoptic .json (default: "
                                                           "its path without .json, as panopticapi).")] = None,
    imgsz: Annotated[Optional[int], typer.Option(help=ranged("imgsz", "Inference size. Default: the model's "
                                                  "own."))] = None,
    conf: Annotated[float, typer.Option(help=ranged("conf", "Instance models: minimum score kept (COCO "
                                        "evaluation wants all detections, hence 0.001)."))] = 0.001,
    iou: Annotated[float, typer.Option(help=ranged("iou", "Instance models: NMS IoU."))] = 0.7,
    backend: Annotated[str, typer.Option(help="auto, torch, onnxruntime.")] = "auto",
    device: Annotated[str, typer.Option(help="auto, cpu, cuda, cuda:N.")] = "auto",
    scales: Annotated[str, typer.Option(help="Semantic models: multi-scale inference, a comma list of input "
                                        "scales (1 = the model's size), e.g. 0.5,1,1.5 (as rtseg run).")] = "1",
    flip: Annotated[bool, typer.Option("--flip", help="Semantic models: also average the mirror image.")] = False,
    json_out: Annotated[Optional[Path], typer.Option("--json", help="Write every metric here.")] = None,
    plot_out: Annotated[Optional[Path], typer.Option("--plot", help="Write the confusion matrix here (PNG).")
                        ] = None,
    trust: Annotated[bool, typer.Option("--trust-weights", help=TRUST_WEIGHTS_HELP)] = False,
) -> None:
    """Measure a model on labelled images: mIoU, Dice, accuracy (semantic) or box/mask mAP (instance).

    \b
    Examples:
      rtseg eval --model pets.pt --data pets_test/ --labels trimap --plot confusion.png
      rtseg eval --model best.pt --data data.yaml --split val --json metrics.json
      rtseg eval --model yolo.pt --semantic stuff.pt --data panoptic_val.json      (PQ, SQ, RQ)
    """
    setup_logging(False)
    apply_trust(trust)
    check_options(imgsz=imgsz, conf=conf, iou=iou, scales=scales)  # load_models checks again; here before imports
    from rtseg.data.datasets import load_dataset
    from rtseg.evaluate.core import (
        evaluate_instance_model,
        evaluate_panoptic_files,
        evaluate_semantic_model,
    )
    from rtseg.evaluate.panoptic import is_panoptic_json
    from rtseg.models.task import model_task
    from rtseg.pipeline.loading import RunOptions, load_models

    try:  # before any work: writable, and neither the model, the data set nor one path
        check_report_paths(json_out, plot_out, inputs=[model, *data_inputs(data), *([images] if images else []),
                                                       *filter(None, (semantic_model, panoptic_masks))])
        if is_panoptic_json(data) or semantic_model or panoptic_masks:  # PQ of the fused pair, then the report
            report = evaluate_panoptic_files(model, semantic_model, data, images, panoptic_masks, plot_out, _bar,
                                             imgsz=imgsz, conf=conf, iou=iou, backend=backend, device=device,
                                             scales=scales, flip=flip)
            return _print_report(report, model, data, json_out, None)
        dataset = load_dataset(data, split, images, labels)
        semantic = model_task(model) == "semantic"
        opts = RunOptions(model=model, imgsz=imgsz, conf=conf, iou=iou, backend=backend, device=device,
                          scales=scales, flip=flip)
        seg, sem = load_models(opts)
        with _bar(len(dataset), "eval") as bar:
            if semantic:
                report = evaluate_semantic_model(sem, dataset, bar.update)
            else:
                report = evaluate_instance_model(seg, dataset, bar.update)
    except RtsegError as exc:
        raise fail(str(exc)) from None
    _print_report(report, model, data, json_out, plot_out)


def _print_report(report, model: str, data: Path, json_out: Path | None, plot_out: Path | None) -> None:  # noqa: ANN001
    from rtseg.evaluate.core import format_table, plot_confusion, write_json

    report.model, report.data = model, str(data)
    if report.skipped:
        what = "class" if len(report.skipped) == 1 else f"{len(report.skipped)} classes"
        typer.echo(f"rtseg: WARNING: not measured, the data's {what} the model does not know: "
                   f"{', '.join(report.skipped)}",
                   err=True)
    typer.echo(f"{report.task} evaluation of {model} on {data} ({report.images} images)")
    typer.echo(format_table(report))
    try:  # each written whole or not at all; a full disk is one line
        if json_out is not None:
            write_json(report, json_out)
        if plot_out is not None:
            plot_confusion(report, plot_out)
    except RtsegError as exc:
        raise fail(str(exc)) from None


def _pairs(dataset):  # noqa: ANN001, ANN202 - (BGR image, label map) of every image, in memory
    return [(dataset.image(i), dataset.semantic(i)) for i in range(len(dataset))]


def train(
    data: Annotated[Path, typer.Option("--data", "-d", help=DATA_HELP, show_default=False)],
    out: Annotated[Path, typer.Option("--out", "-o", help="Where the best checkpoint is written.",
                                      show_default=False)],
    model: Annotated[str, typer.Option("--model", "-m", help="Semantic: an architecture (Unet, Linknet, FPN, "
                                       "PSPNet, DeepLabV3, DeepLabV3Plus, SegNet, deeplabv3_mobilenet_v3_large, "
                                       "lraspp_mobilenet_v3_large) or an rtseg semantic checkpoint "
                                       "to fine-tune. Instance: a YOLO-seg config "
                                       "(yolo11n-seg.yaml) or weights to fine-tune (.pt).")] = "Linknet",
    encoder: Annotated[Optional[str], typer.Option(help="smp encoder (default mobilenet_v2).")] = None,
    labels: Annotated[str, typer.Option(help=LABELS_HELP)] = "semantic",
    val_split: Annotated[str, typer.Option(help="Validation split; without one, every --val-every-th "
                                           "training image is held out.")] = "val",
    val_every: Annotated[int, typer.Option(help=ranged("val_every", "Hold out every N-th image when there is "
                                           "no validation split."))] = 7,
    epochs: Annotated[int, typer.Option(help=ranged("epochs", "Passes over the training images."))] = 30,
    minutes: Annotated[Optional[float], typer.Option(help=ranged("minutes", "Stop after this long (the "
                                                     "learning-rate schedule follows). Default: no time "
                                                     "limit."))] = None,
    imgsz: Annotated[int, typer.Option(help=ranged("imgsz", "Inference size the model is validated (and later "
                                       "run) at."))] = 512,
    crop: Annotated[int, typer.Option(help=ranged("crop", "Semantic: training crop side."))] = 256,
    scale: Annotated[str, typer.Option(help="Semantic: crop scale range, output px per input px.")] = "0.5,1.0",
    batch: Annotated[int, typer.Option(help=ranged("batch", "Images per training step."))] = 8,
    lr: Annotated[float, typer.Option(help=ranged("lr", "AdamW learning rate."))] = 2e-3,
    loss: Annotated[str, typer.Option(help="Semantic loss: ce, bce, dice, focal, tversky, focal_tversky, "
                                      "or a weighted sum like ce+0.5*dice.")] = "ce+dice",
    flips: Annotated[str, typer.Option(help="Semantic: h (left-right), hv, or hvr (also 90-degree turns: "
                                       "overhead imagery).")] = "h",
    colour: Annotated[float, typer.Option(help=ranged("colour", "Semantic: colour jitter amplitude (0 = "
                                          "off)."))] = 0.2,
    device: Annotated[str, typer.Option(help="Instance training device: cpu, 0 (CUDA).")] = "cpu",
    half: Annotated[bool, typer.Option(help="Semantic: store float16 weights (half the file).")] = False,
    plot_out: Annotated[Optional[Path], typer.Option("--plot", help="Loss and validation mIoU per epoch "
                                                     "(PNG). Default: beside --out.")] = None,
    trust: Annotated[bool, typer.Option("--trust-weights", help=TRUST_WEIGHTS_HELP)] = False,
) -> None:
    """Train a semantic model (smp / torchvision) or an instance model (Ultralytics YOLO-seg) on your data.

    An architecture name or rtseg semantic checkpoint trains a semantic model; a YOLO-seg .yaml/.pt, Ultralytics.

    \b
    Examples:
      rtseg train --data pets/ --labels trimap --model Linknet --imgsz 224 --crop 224 --out pets.pt
      rtseg train --data people/data.yaml --model yolo11n-seg.yaml --imgsz 320 --epochs 50 --out people.pt
    """
    setup_logging(False)
    apply_trust(trust)
    check_options(val_every=val_every, epochs=epochs, minutes=minutes, imgsz=imgsz, crop=crop, batch=batch, lr=lr,
                  colour=colour)  # before hours of work: the library's ranges (rtseg.config.LIMITS)
    from rtseg.data.datasets import SplitNotFound, load_dataset

    try:
        try:  # before hours of training, not after
            out.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(f"--out {out}: cannot create its folder ({exc.strerror})") from None
        instance = _is_instance_model(model)
        _check_train_outputs(out, None if instance else plot_out or out.with_suffix(".png"), model, data)
        if instance:
            _train_instance(data, out, model, labels, val_split, val_every, epochs, minutes, imgsz, batch, lr,
                            device)
            return
        from rtseg.train.semantic import Augment, plot_history, train_semantic

        try:
            lo, hi = (float(v) for v in scale.split(","))
        except ValueError:
            raise ConfigError(f"--scale {scale!r}: expected two numbers like 0.5,1.0") from None
        if set(flips) - set("hvr"):
            raise ConfigError(f"--flips {flips!r}: use letters h, v, r")
        dataset = load_dataset(data, "train", None, labels)
        try:
            val_set = load_dataset(data, val_split, None, labels)
            same = [p.resolve() for p in val_set.images] == [p.resolve() for p in dataset.images]
        except SplitNotFound:
            val_set, same = None, True
        if same:
            dataset, val_set = dataset.split_every(val_every)
        train_pairs, val_pairs = _pairs(dataset), _pairs(val_set)
        typer.echo(f"training on {len(train_pairs)} images, validating on {len(val_pairs)}", err=True)
        augment = Augment(crop=crop, scale=(lo, hi), hflip="h" in flips, vflip="v" in flips, rot90="r" in flips,
                          colour=colour)
        init = Path(model) if Path(model).suffix.lower() in (".pt", ".pth") else None
        result = train_semantic(train_pairs, val_pairs, dataset.semantic_names, out, arch=model, encoder=encoder,
                                loss=loss, augment=augment, epochs=epochs, minutes=minutes, batch=batch, lr=lr,
                                imgsz=imgsz, half=half, progress=sys.stderr.isatty(), init=init)
    except RtsegError as exc:
        raise fail(str(exc)) from None
    try:
        plot_history(result.history, plot_out or out.with_suffix(".png"))
    except RtsegError as exc:
        raise fail(str(exc)) from None
    m = result.metrics
    typer.echo(json.dumps({"checkpoint": str(out), "best_epoch": result.best_epoch, "val_mIoU": m["mIoU"],
                           "val_pixel_accuracy": m["pixel_accuracy"], "history": result.history}))


def _check_train_outputs(out: Path, plot: Path | None, model: str, data: Path) -> None:
    """Before any training: the checkpoint and its plot can be written, and neither replaces the start weights
    or a file of the data set, nor each other."""
    from rtseg.sinks.base import OutputPath, check_output_paths

    outputs = [OutputPath("out", out, what="checkpoint")]
    if plot is not None:
        check_plot_format("plot_out", plot)
        outputs.append(OutputPath("plot_out", plot, what="plot"))
    check_output_paths(outputs, inputs=[model, *data_inputs(data)])


def _is_instance_model(model: str) -> bool:
    """A YOLO-seg config or checkpoint (Ultralytics trains it); else a semantic architecture or checkpoint."""
    from rtseg.models.task import model_task

    suffix = Path(model).suffix.lower()
    if suffix in (".pt", ".pth") and Path(model).is_file():
        return model_task(model) != "semantic"
    return suffix in (".yaml", ".yml", ".pt")  # a config, or Ultralytics weights it downloads by name


def _train_instance(data: Path, out: Path, model: str, labels: str, val_split: str, val_every: int, epochs: int,
                    minutes: float | None, imgsz: int, batch: int, lr: float, device: str) -> None:
    from rtseg.data.convert import dataset_to_yolo_seg
    from rtseg.data.datasets import SplitNotFound, load_dataset
    from rtseg.data.shared_sets import write_data_yaml
    from rtseg.train.instance import train_instance

    data_yaml = data / "data.yaml" if data.is_dir() and (data / "data.yaml").is_file() else data
    if data_yaml.suffix.lower() in (".yaml", ".yml"):  # Ultralytics reads it; check its labels first
        load_dataset(data_yaml, "train")
        try:
            load_dataset(data_yaml, val_split)
        except SplitNotFound:
            pass
    else:  # COCO / mask-PNG: convert to YOLO-seg first
        work = Path(tempfile.mkdtemp(prefix="rtseg-yolo-"))
        train_set = load_dataset(data, "train", None, labels)
        try:
            val_set = load_dataset(data, val_split, None, labels)
        except SplitNotFound:
            val_set = None
        if val_set is None or [p.resolve() for p in val_set.images] == [p.resolve() for p in train_set.images]:
            train_set, val_set = train_set.split_every(val_every)
        dataset_to_yolo_seg(train_set, work, "train")
        dataset_to_yolo_seg(val_set, work, "val")
        data_yaml = write_data_yaml(work, train_set.names, {"train": "images/train", "val": "images/val"})
        typer.echo(f"converted to YOLO-seg in {work} ({len(train_set)} training, {len(val_set)} validation "
                   "images)", err=True)
    with guard("training with Ultralytics"):  # its exceptions, coloured and multi-line, become one line
        path = train_instance(data_yaml, out, model=model, epochs=epochs, imgsz=imgsz, batch=batch,
                              hours=minutes / 60 if minutes else None, device=device, lr0=lr)
    typer.echo(json.dumps({"checkpoint": str(path)}))


def convert(
    data: Annotated[Path, typer.Argument(help=DATA_HELP, show_default=False)],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder.", show_default=False)],
    to: Annotated[str, typer.Option(help="yolo-seg (polygons, for Ultralytics) or mask-png (class-id PNGs).")
                  ] = "yolo-seg",
    labels: Annotated[str, typer.Option(help=LABELS_HELP)] = "semantic",
    split: Annotated[str, typer.Option(help="Split to read, and the split name written.")] = "train",
) -> None:
    """Convert labels between formats: mask PNGs, instance PNGs, trimaps, COCO JSON, LabelMe -> YOLO-seg or mask-PNG.

    \b
    Examples:
      rtseg convert pennfudan/ --labels instance --out pf_yolo        (classes.txt: person)
      rtseg convert instances.json --to mask-png --out masks_dataset
    """
    setup_logging(False)
    from rtseg.data.convert import dataset_to_mask_png, dataset_to_yolo_seg
    from rtseg.data.datasets import load_dataset
    from rtseg.data.shared_sets import write_data_yaml

    try:
        if to not in ("yolo-seg", "mask-png"):
            raise ConfigError(f"--to {to!r}: expected yolo-seg or mask-png")
        from rtseg.sinks.base import OutputPath, check_output_paths

        # before any file is written: not into the data set being read (same-named images would replace it)
        names = ("images", "labels", "data.yaml") if to == "yolo-seg" else ("images", "masks", "classes.txt")
        check_output_paths([OutputPath("out", out, names, what="data set")], inputs=data_inputs(data),
                           trees=[data if data.is_dir() else data.parent])
        dataset = load_dataset(data, split, None, labels)
        with _bar(len(dataset), "convert") as bar:
            if to == "yolo-seg":
                count = dataset_to_yolo_seg(dataset, out, split, bar.update)
                write_data_yaml(out, dataset.names, {"train": f"images/{split}", "val": f"images/{split}"})
                typer.echo(f"{len(dataset)} images, {count} instances -> {out / 'data.yaml'}")
            else:
                dataset_to_mask_png(dataset, out, bar.update)
                typer.echo(f"{len(dataset)} images -> {out}")
    except RtsegError as exc:
        raise fail(str(exc)) from None


def register(app: typer.Typer) -> None:
    """Add ``eval``, ``train`` and ``convert`` to the ``rtseg`` command line."""
    app.command("eval")(guard("evaluating")(eval_cmd))
    app.command()(guard("training")(train))
    app.command()(guard("converting")(convert))
