"""``rtseg label``: a model pre-labels frames of a video or an image folder; people correct the files."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from rtseg.cli.common import TRUST_WEIGHTS_HELP, apply_trust, fail, setup_logging
from rtseg.cli.edge import guard
from rtseg.cli.options import ranged
from rtseg.config import DEFAULT_MODEL, check_options
from rtseg.errors import ConfigError, RtsegError

FORMAT_HELP = ("labelme: NAME.jpg + NAME.json side by side (LabelMe, AnyLabeling); coco: images/ + "
               "annotations.json; yolo-seg: images/ + labels/ + data.yaml (Ultralytics); cvat: images/ + "
               "annotations.xml (CVAT for images 1.1).")
REVIEW_HELP = ("Flag objects scored below this for review. LabelMe: shape flag 'review' (and 'score=0.42 review' "
               "in the description); COCO: 'review' and 'score' in each annotation; CVAT: the 'review' and 'score' "
               "attributes; YOLO-seg: listed in review.txt (the format has no room for flags). Semantic models give "
               "no score: nothing is flagged.")


def label(
    source: Annotated[str, typer.Argument(help="A video file, an image, or a folder of images.", show_default=False)],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder: images and labels.", show_default=False)],
    model: Annotated[str, typer.Option("--model", "-m", help="Instance model (YOLO-seg .pt/.onnx; each object's "
                                       "mask is outlined, its score kept) or a semantic model (each region of a "
                                       "class becomes an object). Default: rtseg's bundled person/cat/dog model.")
                     ] = "",
    format: Annotated[str, typer.Option("--format", "-f", help=FORMAT_HELP)] = "labelme",  # noqa: A002
    every: Annotated[Optional[int], typer.Option(help=ranged("every", "Label every N-th frame (default 1: each "
                                                 "frame)."))] = None,
    max_frames: Annotated[Optional[int], typer.Option("--max-frames", "--max", help=ranged(
        "max_frames", "Stop after this many labelled frames."))] = None,
    scene_change: Annotated[bool, typer.Option("--scene-change", help="One frame per scene: the first, then each "
                                               "frame that differs from the one before by more than "
                                               "--scene-threshold (instead of --every).")] = False,
    scene_threshold: Annotated[float, typer.Option(help="--scene-change: mean absolute difference of grey 64x36 "
                                                   "thumbnails, in grey levels (0..255), that counts as a cut.")
                               ] = 30.0,
    tolerance: Annotated[float, typer.Option(help="Polygon simplification: the largest distance in pixels from "
                                             "the mask's outline (0 keeps every corner).")] = 1.0,
    review_below: Annotated[float, typer.Option(help=REVIEW_HELP)] = 0.5,
    conf: Annotated[float, typer.Option(help=ranged("conf", "Instance models: minimum score kept."))] = 0.25,
    imgsz: Annotated[Optional[int], typer.Option(help=ranged("imgsz", "Inference size. Default: the model's "
                                                  "own."))] = None,
    min_area: Annotated[int, typer.Option(help="Semantic models: regions smaller than this (pixels) are left "
                                          "out.")] = 16,
    backend: Annotated[str, typer.Option(help="auto, torch, onnxruntime.")] = "auto",
    device: Annotated[str, typer.Option(help="auto, cpu, cuda, cuda:N.")] = "auto",
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
    trust: Annotated[bool, typer.Option("--trust-weights", help=TRUST_WEIGHTS_HELP)] = False,
) -> None:
    """Pre-label frames with a model, for people to correct (LabelMe, AnyLabeling, CVAT, COCO or YOLO-seg tools).

    Label, correct, then train: rtseg convert reads a corrected LabelMe folder (and COCO / YOLO-seg) back.

    \b
    Examples:
      rtseg label clip.mp4 --out to_check --every 30 --max 200
      rtseg label clip.mp4 --out to_check --scene-change --format cvat
      rtseg label photos/ --model pets.pt --out pets_labels --format coco --review-below 0.6
      rtseg convert to_check --to yolo-seg --out corrected && rtseg train --data corrected --model yolo11n-seg.pt ...
    """
    setup_logging(False)
    apply_trust(trust)
    check_options(every=every, max_frames=max_frames, conf=conf, imgsz=imgsz, min_area=min_area)
    from rtseg.label.core import check_label_options, prelabel

    try:
        check_label_options(format, tolerance, review_below)
        if scene_change and every is not None:
            raise ConfigError("--scene-change and --every choose frames two ways: give one")
        from rtseg.label.frames import check_source

        check_source(source, open_video=True)  # before the model loads: a typo costs a second, not ten
        _check_out(out, source)
        from rtseg.models.task import model_task
        from rtseg.pipeline.loading import RunOptions, load_models

        spec = model or str(DEFAULT_MODEL)
        semantic = model_task(spec) == "semantic"
        seg, sem = load_models(RunOptions(model=spec, conf=conf, imgsz=imgsz, backend=backend, device=device))
        from rtseg.label.frames import planned_frames

        total = planned_frames(source, every=every or 1, max_frames=max_frames,
                               scene_threshold=scene_threshold if scene_change else None)
        bar = _bar(quiet, Path(source).name, total)
        try:
            report = prelabel(source, None if semantic else seg, sem if semantic else None, out=out, fmt=format,
                              every=every or 1, max_frames=max_frames,
                              scene_threshold=scene_threshold if scene_change else None, tolerance=tolerance,
                              review_below=review_below, min_area=min_area, progress=bar.update)
        finally:
            bar.close()
    except RtsegError as exc:
        raise fail(str(exc)) from None
    flagged = f", {report.review} flagged for review" if not semantic else ""
    typer.echo(f"{report.frames} frames, {report.objects} objects{flagged} -> {out} ({format})")


def _check_out(out: Path, source: str) -> None:
    """Before the model loads: the folder can be made, and it is not the image folder being read."""
    from rtseg.sinks.base import OutputPath, check_output_paths

    src = Path(source)
    check_output_paths([OutputPath("out", out, ("*.json", "images", "labels"), what="label folder")],
                       inputs=[source], trees=[src] if src.is_dir() else [])


def _bar(quiet: bool, desc: str, total: int | None):  # noqa: ANN202
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="frame", file=sys.stderr, dynamic_ncols=True, leave=False,
                disable=True if quiet else None)


def register(app: typer.Typer) -> None:
    """Add ``label`` to the ``rtseg`` command line."""
    app.command()(guard("labelling")(label))
