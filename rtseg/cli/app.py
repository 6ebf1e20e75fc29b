"""The ``rtseg`` command line: a thin typer layer that builds options and calls one library function.

Every :class:`~rtseg.errors.RtsegError` becomes one line on stderr and exit code 2; Ctrl-C and SIGTERM
end a run cleanly (outputs finalized) with exit code 130.
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENCV_LOG_LEVEL", "OFF")  # OpenCV's and FFmpeg's native warnings would break
os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")  # one-line errors; rtseg reports problems itself
os.environ.setdefault("YOLO_VERBOSE", "False")
os.environ.setdefault("YOLO_AUTOINSTALL", "False")  # never pip-install behind the user's back

import logging  # noqa: E402
import signal  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Annotated, Optional  # noqa: E402

import typer  # noqa: E402

from rtseg import DEFAULT_MODEL, __version__  # noqa: E402
from rtseg.cli.common import fail as _fail  # noqa: E402
from rtseg.cli.common import setup_logging as _setup_logging  # noqa: E402
from rtseg.errors import ConfigError, RtsegError  # noqa: E402
from rtseg.pipeline.loading import RunOptions, load_models  # noqa: E402

app = typer.Typer(
    name="rtseg",
    help="Real-time video segmentation (instance, semantic, or both): read video, a camera, images or a "
         "stream; write annotated video, a live window, JSON Lines or label maps; measure it with rtseg "
         "bench.\n\nStart with: rtseg demo",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
LOGGER = logging.getLogger("rtseg")


def _suffixed(path: Path | None, tag: str, many: bool) -> Path | None:
    if path is None or not many:
        return path
    return path.with_name(f"{path.stem}_{tag}{path.suffix}")


def _source_tag(spec: str) -> str:
    if spec.isdigit():
        return f"camera{spec}"
    if "://" in spec:
        return "stream"
    return Path(spec).stem.replace("*", "all") or "images"


class _StopOnSignal:
    """First Ctrl-C / SIGTERM asks the pipeline to stop after the current frame; a second one aborts."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self._previous: dict[int, object] = {}

    def _handle(self, signum: int, _frame: object) -> None:
        if self.event.is_set():
            raise KeyboardInterrupt
        self.event.set()

    def __enter__(self) -> _StopOnSignal:
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)  # type: ignore[arg-type]


def _print_summary(summary, outputs: list[str]) -> None:  # noqa: ANN001
    several = summary.streams if len(summary.streams) > 1 else []
    head = f"{len(several)} sources" if several else summary.source
    lines = [f"{head}: {summary.frames} frames in {summary.elapsed_s:.1f} s = {summary.fps:.1f} FPS"
             + (f", {summary.dropped} dropped (live source)" if summary.dropped else "")]
    for stream in several:  # each stream's own rate: its frames over the time to its last frame
        lines.append(f"  {stream.source}: {stream.frames} frames, {stream.fps:.1f} FPS"
                     + (f", {stream.dropped} dropped" if stream.dropped else ""))
    if summary.stages_ms:
        lines.append(f"  {'stage':<12}{'p50 ms':>9}{'p95 ms':>9}")
        for name, stats in summary.stages_ms.items():
            lines.append(f"  {name:<12}{stats['p50']:>9.1f}{stats['p95']:>9.1f}")
    lines += [f"  wrote {o}" for o in outputs]
    typer.echo("\n".join(lines), err=True)


@app.command()
def run(
    sources: Annotated[list[str], typer.Argument(
        help="Video file, camera index (0), image folder or glob ('frames/*.jpg'), or stream URL "
             "(rtsp://, http(s)://, udp://, tcp://). Several run together in one pipeline, their frames "
             "batched into shared inference calls, with one output per source (OUT_NAME.mp4).",
        show_default=False)],
    model: Annotated[str, typer.Option("--model", "-m", help="YOLO-seg weights (.pt), architecture config "
                                       "(.yaml) or exported model (.onnx); or a semantic model, for a "
                                       "semantic-only run. Names such as yolo26n-seg.pt download when online. "
                                       "Default: rtseg's bundled nano model.")] = "",
    semantic: Annotated[str, typer.Option("--semantic", "-s", help="Semantic model drawn under the instances "
                                          "(combined mode; both models run concurrently): an rtseg semantic "
                                          "checkpoint or .onnx, a YOLO '-sem' model, or a torchvision name "
                                          "such as deeplabv3_mobilenet_v3_large.COCO_WITH_VOC_LABELS_V1 "
                                          "(downloads when online).")] = "",
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="Annotated video (.mp4/.mkv/.mov: H.264 "
                                                 "when available; .avi: MJPEG).")] = None,
    jsonl: Annotated[Optional[Path], typer.Option(help="JSON Lines, one record per frame: boxes, scores, "
                                                   "classes, masks as COCO RLE, semantic classes.")] = None,
    show: Annotated[bool, typer.Option("--show", help="Live window; q or Esc quits.")] = False,
    save_frames: Annotated[Optional[Path], typer.Option(help="Folder for annotated frames as JPEG.")] = None,
    save_labels: Annotated[Optional[Path], typer.Option(help="Folder for semantic label maps (PNG, pixel = "
                                                         "class id) and classes.json.")] = None,
    imgsz: Annotated[Optional[int], typer.Option(help="Inference size (longer side). Default: the model's "
                                                  "own. Larger finds smaller objects, slower.")] = None,
    semantic_imgsz: Annotated[Optional[int], typer.Option(help="Inference size of the --semantic model. "
                                                           "Default: its own.")] = None,
    conf: Annotated[float, typer.Option(help="Minimum detection score.")] = 0.25,
    iou: Annotated[float, typer.Option(help="NMS IoU: overlapping same-class boxes above it are merged "
                                        "(no effect on NMS-free YOLO26).")] = 0.7,
    classes: Annotated[Optional[str], typer.Option(help="Keep only these classes: ids or names, "
                                                    "comma-separated ('0,16' or 'person,dog').")] = None,
    quality: Annotated[str, typer.Option("--semantic-quality", help="fast: argmax at model resolution, "
                                         "labels resized to the frame (cheap); high: logits upsampled "
                                         "bilinearly before the argmax (smooth edges, slower).")] = "fast",
    pad: Annotated[int, typer.Option(min=0, help="Reflect-pad frames by this many pixels before the "
                                     "semantic model, so labels do not fray at the frame edges.")] = 0,
    morph_open: Annotated[int, typer.Option(min=0, help="Morphological opening (kernel px) of masks and "
                                            "labels: removes specks thinner than it.")] = 0,
    morph_close: Annotated[int, typer.Option(min=0, help="Morphological closing (kernel px): fills holes "
                                             "and gaps narrower than it.")] = 0,
    min_area: Annotated[int, typer.Option(min=0, help="Drop mask and label regions smaller than this many "
                                          "pixels.")] = 0,
    tile: Annotated[Optional[int], typer.Option(help="Sliced inference for large frames with small objects "
                                                "(drones, 4K): cut each frame into TILE-pixel tiles run as "
                                                "one batch; --imgsz defaults to the tile size.")] = None,
    overlap: Annotated[float, typer.Option(min=0.0, max=0.9, help="Fraction of a tile shared with its "
                                           "neighbour; objects smaller than tile x overlap are always whole "
                                           "in some tile.")] = 0.2,
    tile_full: Annotated[bool, typer.Option("--tile-full", help="Also run the whole frame, for objects "
                                            "larger than a tile.")] = False,
    tile_merge: Annotated[str, typer.Option(help="Duplicates across tile seams: nmm merges them into their "
                                            "union (objects cut by a seam come out whole), nms keeps the "
                                            "best.")] = "nmm",
    class_file: Annotated[Optional[Path], typer.Option(help="YAML/JSON with class names, colours and merges "
                                                       "(e.g. aerial land cover); see rtseg/classmap.py.")] = None,
    track: Annotated[Optional[str], typer.Option(help="Give instances persistent ids with Ultralytics' "
                                                 "tracker: bytetrack, or botsort (compensates camera motion, "
                                                 "for drones). Ids go to the JSONL and the overlay.")] = None,
    trails: Annotated[int, typer.Option(min=0, help="With --track, draw each object's path over this many "
                                        "frames.")] = 0,
    device: Annotated[str, typer.Option(help="auto (a CUDA GPU when there is one, else the CPU), cpu, cuda, "
                                        "cuda:N or a GPU index.")] = "auto",
    backend: Annotated[str, typer.Option(help="auto (from the model file), torch, onnxruntime or tensorrt.")] = "auto",
    half: Annotated[bool, typer.Option("--half", help="FP16 inference (CUDA only).")] = False,
    max_frames: Annotated[Optional[int], typer.Option(min=1, help="Stop after this many frames per "
                                                       "source.")] = None,
    batch: Annotated[Optional[int], typer.Option(min=1, help="Frames per inference call, taken from the "
                                                 "sources in turn. Default: the number of sources (one frame "
                                                 "of each per call); 1 with --tile.")] = None,
    workers: Annotated[Optional[int], typer.Option(min=1, help="Inference calls in flight at once (ONNX "
                                                   "Runtime: one session each, sharing the cores). Default: 2 "
                                                   "on a CPU with 2+ cores, else 1.")] = None,
    video_preset: Annotated[str, typer.Option(help="x264 preset of the --out video: ultrafast, superfast, "
                                              "veryfast, ... medium (slower ones write smaller files). auto: "
                                              "ultrafast when the model runs on the CPU (the encoder takes CPU "
                                              "time from it), superfast on a GPU.")] = "auto",
    hud: Annotated[bool, typer.Option("--hud/--no-hud", help="Draw frame index and FPS.")] = True,
    alpha: Annotated[float, typer.Option(min=0.0, max=1.0, help="Instance mask opacity.")] = 0.45,
    semantic_alpha: Annotated[float, typer.Option(min=0.0, max=1.0, help="Semantic colour opacity.")] = 0.35,
    image_fps: Annotated[float, typer.Option(help="Frame rate given to image folders in the output "
                                              "video.")] = 10.0,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar or summary.")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log what each stage does.")] = False,
) -> None:
    """Segment every frame of SOURCE and write annotated video, a window, JSON Lines and/or frames.

    With no output option, writes SOURCE-NAME_rtseg.mp4 in the current folder.

    \b
    Examples:
      rtseg run clip.mp4 --out clip_seg.mp4 --jsonl clip.jsonl
      rtseg run 0 --show --model yolo26n-seg.pt
      rtseg run rtsp://cam.local/stream --jsonl events.jsonl --classes person
      rtseg run 'frames/*.jpg' --save-frames annotated/ --model best.onnx
      rtseg run drone.mp4 --model deeplab.pt --save-labels labels/          (semantic only)
      rtseg run street.mp4 --model yolo.pt --semantic deeplab.pt -o both.mp4 (combined)
      rtseg run drone.mp4 --track botsort --trails 30 --jsonl tracks.jsonl
      rtseg run a.mp4 b.mp4 rtsp://cam/live -o out.mp4   (one batched pipeline: out_a.mp4, out_b.mp4, ...)
    """
    _setup_logging(verbose)
    opts = RunOptions(model=model, semantic=semantic, out=out, jsonl=jsonl, show=show, save_frames=save_frames,
                      save_labels=save_labels, imgsz=imgsz, semantic_imgsz=semantic_imgsz, conf=conf, iou=iou,
                      classes=classes, device=device, backend=backend, half=half, max_frames=max_frames, hud=hud,
                      alpha=alpha, semantic_alpha=semantic_alpha, quality=quality, pad=pad, morph_open=morph_open,
                      morph_close=morph_close, min_area=min_area, image_fps=image_fps, quiet=quiet, track=track,
                      trails=trails, tile=tile, overlap=overlap, tile_full=tile_full, tile_merge=tile_merge,
                      class_file=class_file, batch=batch, workers=workers, video_preset=video_preset)
    try:
        code = _run(sources, opts)
    except RtsegError as exc:
        raise _fail(str(exc)) from None
    except KeyboardInterrupt:
        raise _fail("aborted", 130) from None
    if code:
        raise typer.Exit(code)


def _run(sources: list[str], opts: RunOptions) -> int:
    from rtseg.backends.registry import check_device
    from rtseg.overlay.annotator import Annotator
    from rtseg.pipeline.core import Pipeline, Stream
    from rtseg.sinks import ImageFolderSink, JsonlSink, LabelMapSink, VideoFileSink, WindowSink, check_writable
    from rtseg.sinks.video import auto_preset, check_preset
    from rtseg.sources import open_source
    from rtseg.tracking import TRACKERS

    if opts.video_preset != "auto":
        check_preset(opts.video_preset)
    if opts.track and opts.track not in TRACKERS:
        raise ConfigError(f"--track {opts.track!r}: expected one of {', '.join(TRACKERS)}")
    if opts.tile and (opts.batch or 1) > 1:
        raise ConfigError("--batch with --tile: the tiles of a frame are already its batch; drop --batch")
    many = len(sources) > 1
    out = opts.out
    if not (out or opts.jsonl or opts.show or opts.save_frames or opts.save_labels):
        out = Path(f"{_source_tag(sources[0]) if not many else 'rtseg'}_rtseg.mp4")
    for path, what in ((out, "video"), (opts.jsonl, "JSONL")):  # fail before the model loads
        if path is not None:
            check_writable(path, what=what)
    tags = [_source_tag(s) for s in sources]
    # the streams run at once: two sources with one tag (two rtsp:// URLs) must not write the same file
    tags = [f"{t}{tags[:i].count(t) + 1}" if tags.count(t) > 1 else t for i, t in enumerate(tags)]
    opened = [open_source(s, image_fps=opts.image_fps) for s in sources]  # every source checked up front
    try:
        seg, sem = load_models(opts)
        if opts.track and seg is None:
            raise ConfigError("--track needs an instance-segmentation model")
        preset = opts.video_preset
        if preset == "auto":  # every model runs on the one device check_device resolves
            preset = auto_preset(check_device(opts.device, half=opts.half) == "cpu")
    except BaseException:
        for src in opened:
            src.close()
        raise
    names = seg.names if seg is not None else ()
    sem_names = sem.names if sem is not None else ()
    sem_palette = sem.info.palette_bgr if sem is not None else ()
    totals = [min(filter(None, (src.frame_count, opts.max_frames)), default=None) for src in opened]
    bar = _progress(None if None in totals else sum(totals),  # type: ignore[arg-type]
                    f"{len(sources)} sources" if many else sources[0], opts.quiet)
    streams: list[Stream] = []
    with _StopOnSignal() as stopper:
        try:
            for spec, source, tag in zip(sources, opened, tags):
                annotator = Annotator(names, alpha=opts.alpha, hud=opts.hud, semantic_names=sem_names,
                                      semantic_palette=sem_palette, semantic_alpha=opts.semantic_alpha,
                                      trails=opts.trails if opts.track else 0, palette=opts.instance_palette)
                tracker = None
                if opts.track:  # one tracker per stream: track ids and their state never cross sources
                    from rtseg.tracking import Tracker

                    tracker = Tracker(opts.track, frame_rate=source.fps, min_score=opts.conf)
                sinks: list = []
                streams.append(Stream(source, sinks, annotator, tracker))  # first, so an error closes its sinks
                if out is not None:
                    sinks.append(VideoFileSink(_suffixed(out, tag, many), fps=source.fps,  # type: ignore[arg-type]
                                               preset=preset))
                if opts.jsonl is not None:
                    sinks.append(JsonlSink(_suffixed(opts.jsonl, tag, many), names, sem_names))  # type: ignore[arg-type]
                if opts.save_frames is not None:
                    sinks.append(ImageFolderSink(opts.save_frames / tag if many else opts.save_frames))
                if opts.save_labels is not None:
                    sinks.append(LabelMapSink(opts.save_labels / tag if many else opts.save_labels, sem_names,
                                              sem_palette))
                if opts.show:
                    sinks.append(WindowSink(f"rtseg - {spec}"))
            pipeline = Pipeline.multi(streams, seg, max_frames=opts.max_frames, stop=stopper.event, semantic=sem,
                                      batch=opts.batch,
                                      on_frame=(lambda f, r, bar=bar: bar.update(1)) if bar is not None else None)
        except BaseException:
            for sink in (s for stream in streams for s in stream.sinks):
                sink.close()
            for src in opened:
                src.close()
            if bar is not None:
                bar.close()
            raise
        try:
            summary = pipeline.run()  # closes every sink and source
        finally:
            if bar is not None:
                bar.close()
    outputs = [str(getattr(s, "path", getattr(s, "folder", ""))) for stream in streams for s in stream.sinks
               if hasattr(s, "path") or hasattr(s, "folder")]
    if not opts.quiet:
        _print_summary(summary, outputs)
    if summary.interrupted:
        per_stream = f" ({', '.join(f'{t} {s.frames}' for t, s in zip(tags, summary.streams))})" if many else ""
        typer.echo(f"rtseg: stopped after {summary.frames} frames{per_stream}; outputs are complete up to that "
                   "frame", err=True)
        return 0 if summary.user_quit else 130
    return 0


def _progress(total: int | None, desc: str, quiet: bool):  # noqa: ANN202
    if quiet:
        return None
    from tqdm import tqdm

    return tqdm(total=total, desc=Path(desc).name if "://" not in desc else desc, unit="frame",
                dynamic_ncols=True, leave=False, disable=None)


@app.command("export")
def export_cmd(
    weights: Annotated[str, typer.Argument(help="YOLO-seg weights (.pt) or a semantic model.", show_default=False)],
    format: Annotated[str, typer.Option("--format", "-f", help="Target format: onnx, or engine (TensorRT; "
                                        "needs an NVIDIA GPU and the tensorrt package).")] = "onnx",
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="Output file. Default: beside the "
                                                 "weights (onnx), engines/<model>_<imgsz>_<precision>_<batch>"
                                                 ".engine (engine).")] = None,
    imgsz: Annotated[Optional[int], typer.Option(help="Input size. Default: the size the weights were "
                                                  "trained at.")] = None,
    dynamic: Annotated[Optional[bool], typer.Option("--dynamic/--static", help="onnx: dynamic input accepts "
                                                     "any frame shape (default). engine: a dynamic batch "
                                                     "1..--max-batch (default: static).",
                                                     show_default=False)] = None,
    half: Annotated[bool, typer.Option(help="engine: FP16 precision.")] = False,
    int8: Annotated[bool, typer.Option(help="engine: INT8 precision, calibrated on --calib images.")] = False,
    calib: Annotated[Optional[Path], typer.Option(help="engine: folder of representative images for INT8 "
                                                  "calibration (a cache is kept beside the engine).")] = None,
    batch: Annotated[int, typer.Option(min=1, help="engine: batch size of a static engine.")] = 1,
    max_batch: Annotated[int, typer.Option(min=1, help="engine: largest batch of a dynamic engine.")] = 8,
    workspace: Annotated[float, typer.Option(help="engine: builder workspace, GiB.")] = 4.0,
) -> None:
    """Export weights for another backend; the file carries class names, input size and task.

    \b
    Examples:
      rtseg export best.pt --format onnx && rtseg run clip.mp4 --model best.onnx
      rtseg export best.pt --format engine --half --imgsz 640
      rtseg run clip.mp4 --model engines/best_640_fp16_b1.engine --device cuda
      rtseg export best.pt --format engine --int8 --calib frames/ --dynamic --max-batch 4
    """
    _setup_logging(False)
    from rtseg.exporters.onnx import export

    if format == "engine":
        kwargs = {"dynamic": bool(dynamic), "half": half, "int8": int8, "calib": calib, "batch": batch,
                  "max_batch": max_batch, "workspace_gb": workspace}
    else:
        kwargs = {"dynamic": True if dynamic is None else dynamic}
        if half or int8 or calib is not None or batch != 1:
            raise _fail("--half, --int8, --calib and --batch apply to --format engine only")
    try:
        target = export(weights, format, out=out, imgsz=imgsz, **kwargs)
    except RtsegError as exc:
        raise _fail(str(exc)) from None
    typer.echo(str(target))


@app.command()
def demo(
    out: Annotated[Path, typer.Option("--out", "-o", help="Annotated demo video.")] = Path("rtseg_demo.mp4"),
    model: Annotated[str, typer.Option("--model", "-m", help="Weights to run. Default: rtseg's bundled nano "
                                       "model (person, cat, dog; see rtseg/assets/MODEL_CARD.md).")] = "",
    jsonl: Annotated[Optional[Path], typer.Option(help="Also write JSON Lines results.")] = None,
    conf: Annotated[float, typer.Option(help="Minimum detection score.")] = 0.25,
) -> None:
    """Build a short clip from sample photos shipped with Ultralytics and segment it (works offline)."""
    _setup_logging(False)
    from rtseg.sources.demo import build_clip

    try:
        with tempfile.TemporaryDirectory(prefix="rtseg-demo-") as tmp:
            clip = build_clip(Path(tmp) / "demo_clip.avi")
            code = _run([str(clip)], RunOptions(model=model, out=out, jsonl=jsonl, conf=conf))
    except RtsegError as exc:
        raise _fail(str(exc)) from None
    if code:
        raise typer.Exit(code)
    typer.echo(f"demo written to {out}")


def _csv(text: str, cast, what: str) -> list:  # noqa: ANN001
    try:
        return [cast(v.strip()) for v in text.split(",") if v.strip()]
    except ValueError:
        raise ConfigError(f"{what} {text!r}: expected a comma-separated list") from None


@app.command()
def bench(
    model: Annotated[str, typer.Option("--model", "-m", help="Instance model (.pt, .yaml, .onnx). Default: "
                                       "rtseg's bundled nano model.")] = "",
    semantic: Annotated[str, typer.Option("--semantic", "-s", help="Also run this semantic model "
                                          "(combined mode).")] = "",
    source: Annotated[Optional[str], typer.Option(help="Video file to benchmark on.")] = None,
    synthetic: Annotated[Optional[str], typer.Option(help="Generated frames of this size instead, e.g. "
                                                      "1920x1080 (no decode cost).")] = None,
    frames: Annotated[int, typer.Option(min=1, help="Frames per timed run.")] = 100,
    backend: Annotated[str, typer.Option(help="Comma list: auto, torch, onnxruntime.")] = "auto",
    imgsz: Annotated[str, typer.Option(help="Comma list of inference sizes; 'model' = the model's own.")] = "model",
    batch: Annotated[str, typer.Option(help="Comma list of batch sizes (frames per inference call).")] = "1",
    workers: Annotated[str, typer.Option(help="Comma list of inference calls in flight (ONNX Runtime sessions "
                                         "sharing the cores); 'auto' = the backend's default.")] = "auto",
    frame_path: Annotated[str, typer.Option(help="Comma list: where frames are letterboxed and masks drawn; "
                                            "auto (the model's device on CUDA), cpu, device.")] = "auto",
    video_preset: Annotated[str, typer.Option(help="Comma list of x264 presets for the encoded video, e.g. "
                                              "ultrafast,superfast; auto: ultrafast with the model on the CPU, "
                                              "superfast on a GPU (as rtseg run).")] = "auto",
    device: Annotated[str, typer.Option(help="auto, cpu, cuda, cuda:N.")] = "auto",
    half: Annotated[bool, typer.Option("--half", help="FP16 inference (CUDA only).")] = False,
    warmup: Annotated[int, typer.Option(min=0, help="Frames run before timing.")] = 10,
    repeats: Annotated[int, typer.Option(min=1, help="Timed runs per configuration; the median is "
                                         "reported.")] = 3,
    json_out: Annotated[Optional[Path], typer.Option("--json", help="Write the full report (with machine "
                                                     "and library versions) here.")] = None,
    plot_out: Annotated[Optional[Path], typer.Option("--plot", help="Write per-stage stacked bars and FPS "
                                                     "per configuration as a PNG.")] = None,
    live: Annotated[Optional[float], typer.Option("--live", help="Also play the source in real time at this "
                                                  "FPS, like a camera, and report frame-in to frame-out "
                                                  "latency and dropped frames.")] = None,
    vs: Annotated[Optional[str], typer.Option("--vs", help="'ultralytics': also time Ultralytics predict on "
                                              "the same weights, source, imgsz and device, saving on and "
                                              "off.")] = None,
) -> None:
    """Measure model-only throughput, end-to-end FPS (decode to encode), per-stage latency and memory.

    \b
    Examples:
      rtseg bench --source clip.mp4 --vs ultralytics
      rtseg bench --synthetic 1920x1080 --imgsz 320,640 --backend torch,onnxruntime --plot bench.png
    """
    _setup_logging(False)
    import json

    from rtseg.bench.core import format_table, plot, run_bench
    from rtseg.sinks import check_writable

    try:
        if vs not in (None, "ultralytics"):
            raise ConfigError(f"--vs {vs!r}: only 'ultralytics' is supported")
        for path, what in ((json_out, "JSON"), (plot_out, "plot")):
            if path is not None:
                check_writable(path, what=what)
        if source is not None and synthetic is None:
            from rtseg.sources import open_source

            open_source(source).close()  # a bad source fails here, before any model loads
        sizes = _csv(imgsz, lambda v: None if v == "model" else int(v), "--imgsz")
        worker_counts = _csv(workers, lambda v: None if v == "auto" else int(v), "--workers")
        report = run_bench(model=model or str(DEFAULT_MODEL), semantic=semantic, source=source,
                           synthetic=synthetic, frames=frames, backends=_csv(backend, str, "--backend"),
                           imgszs=sizes, batches=_csv(batch, int, "--batch"), workers=worker_counts,
                           frame_paths=_csv(frame_path, str, "--frame-path"),
                           presets=_csv(video_preset, str, "--video-preset"), device=device, half=half, warmup=warmup,
                           repeats=repeats, vs_ultralytics=vs == "ultralytics", live_fps=live,
                           progress=lambda msg: typer.echo(f"rtseg bench: {msg}", err=True))
    except ValueError as exc:
        raise _fail(f"--imgsz {imgsz!r}: {exc}") from None
    except RtsegError as exc:
        raise _fail(str(exc)) from None
    typer.echo(format_table(report))
    if json_out is not None:
        json_out.write_text(json.dumps(report, indent=2) + "\n")
    if plot_out is not None:
        plot(report, plot_out)


@app.command()
def version() -> None:
    """Print rtseg's version and the versions of the libraries it runs on."""
    import cv2
    import torch

    typer.echo(f"rtseg {__version__}\ntorch {torch.__version__} (CUDA: {torch.cuda.is_available()})\n"
               f"opencv {cv2.__version__}")


from rtseg.cli.data import register  # noqa: E402

register(app)  # eval, train, convert


def main() -> None:
    app()


if __name__ == "__main__":
    main()
