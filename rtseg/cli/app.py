"""The ``rtseg`` command line: a thin typer layer over the library's front door (:mod:`rtseg.api`).

Every :class:`~rtseg.errors.RtsegError` becomes one line on stderr and exit code 2, an exception from a
dependency one line and exit code 3 (:mod:`rtseg.cli.edge`, around each command); Ctrl-C and SIGTERM end a
run cleanly (outputs finalized) with exit code 130.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated, Optional

import typer

from rtseg.cli import label as label_commands
from rtseg.cli import run as run_commands
from rtseg.cli import serve as serve_commands
from rtseg.cli.common import TRUST_WEIGHTS_HELP, apply_trust, check_report_paths
from rtseg.cli.common import fail as _fail
from rtseg.cli.common import setup_logging as _setup_logging
from rtseg.cli.edge import guard, ignore_stops, leave, route_native_stderr, sigterm_as_ctrl_c
from rtseg.cli.options import RtsegGroup, ranged, use_rtseg_commands
from rtseg.cli.ray_run import BenchOutDir, BenchRay, BenchRayWorkers, Split
from rtseg.config import DEFAULT_MODEL, __version__, check_options
from rtseg.errors import ConfigError, RtsegError
from rtseg.exporters.quantize import DEFAULT_CALIB_FRAMES

app = typer.Typer(
    name="rtseg",
    help="Real-time video segmentation (instance, semantic, or both): read video, a camera, images or a "
         "stream; write annotated video, a live window, JSON Lines or label maps; measure it with rtseg "
         "bench.\n\nStart with: rtseg demo",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
    cls=RtsegGroup,  # usage errors in one line, flags shown as flags
)
LOGGER = logging.getLogger("rtseg")
run_commands.register(app)  # run, demo


@app.command("export")
@guard("exporting")
def export_cmd(
    weights: Annotated[str, typer.Argument(help="YOLO-seg weights (.pt) or a semantic model.", show_default=False)],
    format: Annotated[str, typer.Option("--format", "-f", help="Target format: onnx, or engine (TensorRT; "
                                        "needs an NVIDIA GPU and the tensorrt package).")] = "onnx",
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="Output file. Default: beside the "
                                                 "weights (onnx), engines/<model>_<imgsz>_<precision>_<batch>"
                                                 ".engine (engine).")] = None,
    imgsz: Annotated[Optional[int], typer.Option(help=ranged("imgsz", "Input size. Default: the size the "
                                                  "weights were trained at."))] = None,
    dynamic: Annotated[Optional[bool], typer.Option("--dynamic/--static", help="onnx: dynamic input accepts "
                                                     "any frame shape (default). engine: a dynamic batch "
                                                     "1..--max-batch (default: static).",
                                                     show_default=False)] = None,
    half: Annotated[bool, typer.Option(help="engine: FP16 precision.")] = False,
    int8: Annotated[bool, typer.Option(help="INT8 precision, calibrated on --calib frames. onnx: ONNX Runtime "
                                       "static quantization (QDQ, per-channel), for the CPU.")] = False,
    calib: Annotated[Optional[Path], typer.Option(help="INT8 calibration frames: a folder of images (engine, "
                                                  "onnx) or a video (onnx), like those the model will see.")
                     ] = None,
    calib_frames: Annotated[int, typer.Option(help="onnx --int8: frames used for calibration (1..2048).")
                            ] = DEFAULT_CALIB_FRAMES,
    val: Annotated[Optional[Path], typer.Option(help="onnx --int8: labelled data (as rtseg eval --data reads) "
                                                "measured before and after quantization.")] = None,
    val_split: Annotated[str, typer.Option(help="--val: split, as rtseg eval --split.")] = "val",
    val_labels: Annotated[str, typer.Option(help="--val: how mask PNGs are read, as rtseg eval --labels.")
                          ] = "semantic",
    max_drop: Annotated[float, typer.Option(help="onnx --int8 --val: refuse to write the INT8 file when box or "
                                            "mask mAP@0.5 (instance) or mIoU (semantic) drops by more.")] = 0.01,
    force: Annotated[bool, typer.Option("--force", help="Write the INT8 file even when it fails --max-drop.")
                     ] = False,
    batch: Annotated[int, typer.Option(help=ranged("batch", "engine: batch size of a static engine."))] = 1,
    max_batch: Annotated[int, typer.Option(help=ranged("max_batch", "engine: largest batch of a dynamic "
                                                       "engine."))] = 8,
    workspace: Annotated[float, typer.Option(help=ranged("workspace_gb", "engine: builder workspace, GiB."))] = 4.0,
    nms: Annotated[Optional[bool], typer.Option("--nms/--no-nms", help="YOLO26: export the one-to-many head for "
                                                "NMS (default, as Ultralytics), or --no-nms: the one-to-one "
                                                "NMS-free head.", show_default=False)] = None,
    trust: Annotated[bool, typer.Option("--trust-weights", help=TRUST_WEIGHTS_HELP)] = False,
) -> None:
    """Export weights for another backend; the file carries class names, input size and task.

    \b
    Examples:
      rtseg export best.pt --format onnx && rtseg run clip.mp4 --model best.onnx
      rtseg export best.pt --format engine --half --imgsz 640
      rtseg run clip.mp4 --model engines/best_640_fp16_b1.engine --device cuda
      rtseg export best.pt --format engine --int8 --calib frames/ --dynamic --max-batch 4
      rtseg export best.pt --int8 --calib clip.mp4 --val data.yaml --val-split test   (CPU INT8, gated)
    """
    _setup_logging(False)
    apply_trust(trust)
    # the library's checks (rtseg.export makes them again), before it and PyTorch load
    check_options(imgsz=imgsz, batch=batch, max_batch=max_batch, workspace_gb=workspace)
    from rtseg.api import export

    if format == "engine" and (val is not None or force):
        raise _fail("--val and --force check an ONNX INT8 export (--format onnx --int8)")
    if format == "engine":
        kwargs = {"dynamic": bool(dynamic), "half": half, "int8": int8, "calib": calib, "batch": batch,
                  "max_batch": max_batch, "workspace_gb": workspace}
    elif int8:
        kwargs = {"dynamic": True if dynamic is None else dynamic, "int8": True, "calib": calib,
                  "calib_frames": calib_frames, "val": val, "val_split": val_split, "val_labels": val_labels,
                  "max_drop": max_drop, "force": force}
        if half or batch != 1:
            raise _fail("--half and --batch apply to --format engine only")
        if calib is None:
            raise _fail("--int8 needs --calib SOURCE: a folder of images or a video like those the model will see")
    else:
        kwargs = {"dynamic": True if dynamic is None else dynamic}
        if half or calib is not None or batch != 1:
            raise _fail("--half, --calib and --batch apply to --format engine, or to onnx with --int8")
    if not int8 and (val is not None or force):
        raise _fail("--val and --force check an INT8 export: add --int8 --calib SOURCE")
    if nms is not None:
        kwargs["nms"] = nms
    try:
        target = export(weights, format, out=out, imgsz=imgsz, **kwargs)
    except RtsegError as exc:
        raise _fail(str(exc)) from None
    if int8 and format == "onnx":
        from rtseg.bench.gate import summary_lines
        from rtseg.exporters.quantize import quantization_info

        for line in summary_lines(quantization_info(target)):
            typer.echo(f"rtseg: {line}", err=True)
    typer.echo(str(target))


def _csv(text: str, cast, name: str, what: str = "values") -> list:  # noqa: ANN001
    """A swept comma list of option ``name`` (``--imgsz 320,640``), each item checked as that option alone."""
    try:
        values = [cast(v.strip()) for v in text.split(",") if v.strip()]
    except ValueError:
        raise ConfigError(f"{name}={text!r}: expected a comma-separated list of {what}") from None
    if not values:
        raise ConfigError(f"{name}={text!r}: expected at least one of {what}")
    for value in values:
        check_options(**{name: value})  # imgsz=0 -> --imgsz 0: expected 32..4096
    return values


@app.command()
@guard("benchmarking")
def bench(
    model: Annotated[str, typer.Option("--model", "-m", help="Instance model (.pt, .yaml, .onnx). Default: "
                                       "rtseg's bundled nano model.")] = "",
    semantic: Annotated[str, typer.Option("--semantic", "-s", help="Also run this semantic model "
                                          "(combined mode).")] = "",
    source: Annotated[Optional[str], typer.Option(help="Video file to benchmark on.")] = None,
    synthetic: Annotated[Optional[str], typer.Option(help="Generated frames of this size instead, e.g. "
                                                      "1920x1080 (no decode cost).")] = None,
    frames: Annotated[int, typer.Option(help=ranged("frames", "Frames per timed run."))] = 100,
    backend: Annotated[str, typer.Option(help="Comma list: auto, torch, onnxruntime.")] = "auto",
    imgsz: Annotated[str, typer.Option(help=ranged("imgsz", "Comma list of inference sizes; 'model' = the "
                                       "model's own."))] = "model",
    batch: Annotated[str, typer.Option(help=ranged("batch", "Comma list of batch sizes (frames per inference "
                                       "call)."))] = "1",
    workers: Annotated[str, typer.Option(help=ranged("workers", "Comma list of inference calls in flight (ONNX "
                                         "Runtime sessions sharing the cores); 'auto' = the backend's "
                                         "default."))] = "auto",
    frame_path: Annotated[str, typer.Option(help="Comma list: where frames are letterboxed and masks drawn; "
                                            "auto (the model's device on CUDA), cpu, device.")] = "auto",
    video_preset: Annotated[str, typer.Option(help="Comma list of x264 presets for the encoded video, e.g. "
                                              "ultrafast,superfast; auto: ultrafast with the model on the CPU, "
                                              "superfast on a GPU (as rtseg run).")] = "auto",
    device: Annotated[str, typer.Option(help="auto, cpu, cuda, cuda:N.")] = "auto",
    half: Annotated[bool, typer.Option("--half", help="FP16 inference (CUDA only).")] = False,
    warmup: Annotated[int, typer.Option(help=ranged("warmup", "Frames run before timing."))] = 10,
    repeats: Annotated[int, typer.Option(help=ranged("repeats", "Timed runs per configuration; the median is "
                                         "reported."))] = 3,
    json_out: Annotated[Optional[Path], typer.Option("--json", help="Write the full report (with machine "
                                                     "and library versions) here.")] = None,
    plot_out: Annotated[Optional[Path], typer.Option("--plot", help="Write per-stage stacked bars and FPS "
                                                     "per configuration as a PNG.")] = None,
    live: Annotated[Optional[float], typer.Option("--live", help=ranged("live_fps", "Also play the source in "
                                                  "real time at this FPS, like a camera, and report frame-in "
                                                  "to frame-out latency and dropped frames."))] = None,
    viewers: Annotated[int, typer.Option(help=ranged("viewers", "Serve the browser view (--serve) to this many "
                                         "MJPEG readers during the end-to-end runs: its cost shows as the "
                                         "'serve' stage and in FPS."))] = 0,
    precision: Annotated[str, typer.Option(help="Comma list: fp32, int8 (ONNX Runtime INT8 copy, calibrated on "
                                           "--calib or on the benchmarked frames).")] = "fp32",
    calib: Annotated[Optional[str], typer.Option(help="int8 rows: calibration frames (a folder of images or a "
                                                 "video). Default: the benchmarked source.")] = None,
    val: Annotated[Optional[Path], typer.Option(help="Labelled data (as rtseg eval --data): box and mask mAP@0.5 "
                                                "of each row.")] = None,
    val_split: Annotated[str, typer.Option(help="--val: split, as rtseg eval --split.")] = "val",
    val_labels: Annotated[str, typer.Option(help="--val: as rtseg eval --labels.")] = "semantic",
    vs: Annotated[Optional[str], typer.Option("--vs", help="'ultralytics': also time Ultralytics predict on "
                                              "the same weights, source, imgsz and device, saving on and "
                                              "off.")] = None,
    trust: Annotated[bool, typer.Option("--trust-weights", help=TRUST_WEIGHTS_HELP)] = False,
    ray: BenchRay = None, ray_workers: BenchRayWorkers = None, out_dir: BenchOutDir = None, split: Split = None,
) -> None:
    """Measure model-only throughput, end-to-end FPS (decode to encode), per-stage latency and memory.

    \b
    Examples:
      rtseg bench --source clip.mp4 --vs ultralytics
      rtseg bench --synthetic 1920x1080 --imgsz 320,640 --backend torch,onnxruntime --plot bench.png
      rtseg bench --source clip.mp4 --precision fp32,int8 --imgsz 320,640   (INT8 against FP32, side by side)
      rtseg bench --ray HEAD:6379 --source a.mp4,b.mp4 --ray-workers 1,2,4 --json scaling.json --plot scaling.png
    """
    _setup_logging(False)
    apply_trust(trust)
    if ray is not None or ray_workers is not None or out_dir is not None or split is not None:
        from rtseg.cli.ray_run import bench_ray  # a Ray cluster's scaling curve

        raise typer.Exit(bench_ray(dict(locals())))
    import json

    from rtseg.bench.core import format_table, parse_synthetic, plot, run_bench

    try:
        # every option checked before any work, each comma list item as its own flag
        check_options(frames=frames, warmup=warmup, repeats=repeats, live_fps=live)
        sizes = _csv(imgsz, lambda v: None if v == "model" else int(v), "imgsz", "sizes or 'model'")
        batches = _csv(batch, int, "batch", "whole numbers")
        worker_counts = _csv(workers, lambda v: None if v == "auto" else int(v), "workers", "counts or 'auto'")
        backends, frame_paths = _csv(backend, str, "backend", "backends"), _csv(frame_path, str, "frame_path")
        presets = _csv(video_preset, str, "video_preset", "presets")
        precisions = _csv(precision, str, "precision", "precisions (fp32, int8)")
        from rtseg.exporters.quantize import check_precision

        for value in precisions:
            check_precision(value)
        if synthetic is not None:
            parse_synthetic(synthetic)
        if vs not in (None, "ultralytics"):
            raise ConfigError(f"--vs {vs!r}: only 'ultralytics' is supported")
        # before any work: writable, and neither an input nor one path
        check_report_paths(json_out, plot_out, inputs=[model or str(DEFAULT_MODEL), semantic, source or ""])
        if source is not None and synthetic is None:
            from rtseg.sources import open_source

            open_source(source).close()  # a bad source fails here, before any model loads
        from rtseg.models.task import model_task

        for weights in filter(None, (model, semantic)):  # unreadable or untrusted weights: refused before any output
            model_task(weights)
        report = run_bench(model=model or str(DEFAULT_MODEL), semantic=semantic, source=source,
                           synthetic=synthetic, frames=frames, backends=backends, imgszs=sizes, batches=batches,
                           workers=worker_counts, frame_paths=frame_paths, presets=presets, device=device,
                           half=half, warmup=warmup,
                           repeats=repeats, vs_ultralytics=vs == "ultralytics", live_fps=live,
                           precisions=precisions, calib=calib, val=str(val) if val else None, val_split=val_split,
                           val_labels=val_labels, viewers=viewers,
                           progress=lambda msg: typer.echo(f"rtseg bench: {msg}", err=True))
    except ValueError as exc:  # batch=16: expected at most 8 (an engine's largest batch), from the pipeline
        raise _fail(str(exc)) from None
    except RtsegError as exc:
        raise _fail(str(exc)) from None
    typer.echo(format_table(report))
    from rtseg.sinks.atomic import write_bytes

    try:  # each written whole or not at all; a full disk is one line
        if json_out is not None:
            write_bytes(json_out, json.dumps(report, indent=2) + "\n", what="JSON")
        if plot_out is not None:
            plot(report, plot_out)
    except RtsegError as exc:
        raise _fail(str(exc)) from None


@app.command()
def version() -> None:
    """Print rtseg's version and the versions of the libraries it runs on."""
    import cv2
    import torch

    typer.echo(f"rtseg {__version__}\ntorch {torch.__version__} (CUDA: {torch.cuda.is_available()})\n"
               f"opencv {cv2.__version__}")


from rtseg.cli.data import register  # noqa: E402

register(app)  # eval, train, convert
label_commands.register(app)  # label
serve_commands.register(app)  # serve --webrtc
use_rtseg_commands(app)


def main() -> None:
    import sys

    from rtseg.cli.ray_run import ray_alone
    from rtseg.cli.run import track_alone

    try:
        route_native_stderr()  # libjpeg, FFmpeg, ... print to the log, not around rtseg's lines
        sigterm_as_ctrl_c()
        app(args=ray_alone(track_alone(sys.argv[1:])), prog_name="rtseg")
    except KeyboardInterrupt:  # in typer's own work around a command (its guard covers the command itself)
        typer.echo("rtseg: interrupted while starting", err=True)
        leave(130)
    except SystemExit as exc:  # typer always ends this way
        ignore_stops()  # the command is over: a signal now would only break the interpreter's teardown
        leave(exc.code if isinstance(exc.code, int) else 0 if exc.code is None else 1)  # after a stop: now
        raise


if __name__ == "__main__":
    main()
