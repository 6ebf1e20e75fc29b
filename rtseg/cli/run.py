"""``rtseg run`` and ``rtseg demo``: options in, :func:`rtseg.run` called, a progress bar, a summary and an
exit code out (0 done, 2 bad input, 130 interrupted by Ctrl-C or SIGTERM with every output finalized)."""

from __future__ import annotations

import signal
import tempfile
import threading
import time
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from rtseg.cli.common import TRUST_WEIGHTS_HELP, apply_trust, fail, setup_logging
from rtseg.cli.edge import guard
from rtseg.cli.options import ranged
from rtseg.cli.ray_run import CpusPerWorker, GpusPerWorker, OutDir, RayAddress, RayWorkers, Retries, Split
from rtseg.config import FULL_MODEL_HINT, check_options
from rtseg.errors import RtsegError
from rtseg.tracking import TRACKERS


class StopOnSignal:
    """First Ctrl-C / SIGTERM asks the pipeline to stop after the current frame; the outputs are then always
    finalized, whatever else arrives while they are: a second signal within :attr:`ABORT_AFTER_S` of the first
    (an impatient double press) is ignored; a later one aborts (a stop that hangs), outputs or not.

    Until :meth:`started` (sources opening, the model loading or exporting: nothing written yet) the first
    one aborts at once, rather than after a load that can take a while.
    """

    ABORT_AFTER_S = 3.0  # a stop takes about 1 s (rtseg.pipeline.core's grace) plus the outputs' closing

    def __init__(self) -> None:
        self.event = threading.Event()
        self.writing = False
        self.ignored = 0  # signals that came while the outputs were being finalized
        self._first_s: float | None = None
        self._previous: dict[int, object] = {}

    def started(self) -> None:
        """Outputs are about to open: from here on a stop finalizes them."""
        self.writing = True

    def _handle(self, signum: int, _frame: object) -> None:
        # Runs on the main thread between two bytecodes, possibly inside a sink's close: it must not print
        # (a write to stderr under way would raise "reentrant call") nor raise while the outputs are closing.
        now = time.monotonic()
        if not self.writing:
            self.event.set()
            raise KeyboardInterrupt
        if self._first_s is None:
            self._first_s = now
            self.event.set()
            return
        if now - self._first_s < self.ABORT_AFTER_S:
            self.ignored += 1
            return
        raise KeyboardInterrupt

    def __enter__(self) -> StopOnSignal:
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)  # type: ignore[arg-type]


def print_summary(summary: Any) -> None:
    several = summary.streams if len(summary.streams) > 1 else []
    head = f"{len(several)} sources" if several else summary.source
    lines = [f"{head}: {summary.frames} frames in {summary.elapsed_s:.1f} s = {summary.fps:.1f} FPS"
             + (f", {summary.dropped} dropped (live source)" if summary.dropped else "")
             + (f", {summary.skipped} buffered before the start skipped" if getattr(summary, "skipped", 0) else "")]
    for stream in several:  # each stream's own rate: its frames over the time to its last frame
        lines.append(f"  {stream.source}: {stream.frames} frames, {stream.fps:.1f} FPS"
                     + (f", {stream.dropped} dropped" if stream.dropped else "")
                     + (f", {stream.reconnects} reconnects" if stream.reconnects else ""))
    if not several and summary.streams and summary.streams[0].reconnects:
        lines.append(f"  reconnected {summary.streams[0].reconnects} times")
    for name, counts in getattr(summary, "events", {}).items():  # webhook, mqtt
        lines.append(f"  {name}: {counts.get('sent', 0)} records sent, {counts.get('dropped', 0)} dropped, "
                     f"{counts.get('failed', 0)} failed")
    if summary.stages_ms:
        lines.append(f"  {'stage':<12}{'p50 ms':>9}{'p95 ms':>9}")
        for name, stats in summary.stages_ms.items():
            lines.append(f"  {name:<12}{stats['p50']:>9.1f}{stats['p95']:>9.1f}")
    lines += [f"  wrote {o}" for o in summary.outputs]
    typer.echo("\n".join(lines), err=True)


class Progress:
    """A tqdm bar over the run's frames, opened once the total is known (None: a live source, no total)."""

    def __init__(self, desc: str, quiet: bool) -> None:
        self.desc = Path(desc).name if "://" not in desc else desc
        self.quiet = quiet
        self.bar: Any = None

    def start(self, total: int | None) -> None:
        if not self.quiet:
            from tqdm import tqdm

            self.bar = tqdm(total=total, desc=self.desc, unit="frame", dynamic_ncols=True, leave=False,
                            disable=None)

    def update(self, *_: object) -> None:
        if self.bar is not None:
            self.bar.update(1)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def run_and_report(sources: list[str], model: str | None, *, quiet: bool, notices: tuple[str, ...] = (),
                   **options: Any) -> int:
    """Call :func:`rtseg.run` with a progress bar and Ctrl-C handling; print the summary; return the exit
    code. Errors become one line on stderr (exit 2), as does a live stream given up after ``reconnect``
    attempts (the other streams ran on; every output is complete). ``notices``: lines printed once every
    option has been accepted (the sources open, the model loaded), before the first frame."""
    import rtseg
    from rtseg.pipeline.loading import people_model

    people = people_model(sources, model, options.get("semantic"), options.get("background"))
    if people is not None:  # rtseg.run makes the same choice
        notices = (*notices, "people from MediaPipe's selfie segmenter (assets/MODEL_CARD.md)" +
                   (", with the bundled instance model; --semantic to choose another" if people[0] == "semantic"
                    else "; --model to choose another"))
    progress = Progress(f"{len(sources)} sources" if len(sources) > 1 else sources[0], quiet)
    stopper = StopOnSignal()

    def on_start(total: int | None) -> None:
        stopper.started()
        for line in notices:
            typer.echo(f"rtseg: {line}", err=True)
        progress.start(total)

    try:
        with stopper:
            try:
                summary = rtseg.run(sources, model, stop=stopper.event, on_start=on_start,
                                    on_frame=progress.update, **options)
            finally:
                progress.close()
    except RtsegError as exc:
        raise fail(str(exc)) from None
    except KeyboardInterrupt:
        if not stopper.writing:
            typer.echo("rtseg: stopped before the first frame; nothing was written", err=True)
            raise typer.Exit(130) from None
        raise fail("aborted", 130) from None
    if not quiet:
        print_summary(summary)
        if not model and (people is None or people[0] == "semantic"):
            typer.echo(f"rtseg: {FULL_MODEL_HINT}", err=True)
    gave_up = [s for s in summary.streams if getattr(s, "gave_up", False)]
    if summary.interrupted:
        per_stream = (f" ({', '.join(f'{s.source} {s.frames}' for s in summary.streams)})"
                      if len(summary.streams) > 1 else "")
        typer.echo(f"rtseg: stopped after {summary.frames} frames{per_stream}; outputs are complete up to that "
                   "frame", err=True)
    for stream in gave_up:  # last: the error lines are what the user reads
        typer.echo(f"rtseg: error: stream {stream.source}: gave up after {options.get('reconnect')} reconnect "
                   f"attempts; outputs are complete ({stream.frames} frames)", err=True)
    if gave_up:
        return 2
    if summary.interrupted:
        return 0 if summary.user_quit else 130
    return 0


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
                                                 "when available; .avi: MJPEG). From a live source: fragmented "
                                                 "MP4, playable at any moment, even after a crash.")] = None,
    jsonl: Annotated[Optional[Path], typer.Option(help="JSON Lines, one record per frame: boxes, scores, "
                                                   "classes, masks as COCO RLE, semantic classes. '-': standard "
                                                   "output (logs stay on stderr).")] = None,
    show: Annotated[bool, typer.Option("--show", help="Live window; q or Esc quits.")] = False,
    save_frames: Annotated[Optional[Path], typer.Option(help="Folder for annotated frames as JPEG.")] = None,
    save_labels: Annotated[Optional[Path], typer.Option(help="Folder for semantic label maps (PNG, pixel = "
                                                         "class id) and classes.json.")] = None,
    panoptic: Annotated[bool, typer.Option("--panoptic", help="Combined mode (--model and --semantic): fuse "
                                           "instances (things) over semantic classes (stuff), one segment per "
                                           "pixel, overlaps to the higher score; the JSONL and the overlay show "
                                           "the fused segments.")] = False,
    save_panoptic: Annotated[Optional[Path], typer.Option(help="Folder for COCO panoptic PNGs (segment ids "
                                                           "RGB-encoded) and panoptic.json; implies --panoptic.")
                             ] = None,
    save_boundaries: Annotated[Optional[Path], typer.Option(help="Folder for boundary maps (PNG, 255 where the "
                                                             "labels or segments change).")] = None,
    boundary_width: Annotated[int, typer.Option(help="Width of the --save-boundaries lines in pixels (1..64).")
                              ] = 2,
    style: Annotated[str, typer.Option(help="How masks and classes are drawn: fill, contour or both.")] = "fill",
    imgsz: Annotated[Optional[int], typer.Option(help=ranged("imgsz", "Inference size (longer side). Default: "
                                                  "the model's own. Larger finds smaller objects, slower."))] = None,
    semantic_imgsz: Annotated[Optional[int], typer.Option(help=ranged("semantic_imgsz", "Inference size of the "
                                                           "--semantic model. Default: its own."))] = None,
    conf: Annotated[float, typer.Option(help=ranged("conf", "Minimum detection score."))] = 0.25,
    nms: Annotated[Optional[bool], typer.Option("--nms/--no-nms", help="YOLO26 head: NMS on the one-to-many "
                                                "head (default, as Ultralytics' predict), or --no-nms: the "
                                                "one-to-one NMS-free head.", show_default=False)] = None,
    iou: Annotated[float, typer.Option(help=ranged("iou", "NMS IoU: overlapping same-class boxes above it are "
                                        "merged (no effect on NMS-free YOLO26)."))] = 0.7,
    classes: Annotated[Optional[str], typer.Option(help="Keep only these classes: ids or names, "
                                                    "comma-separated ('0,16' or 'person,dog'). Default: all.")] = None,
    quality: Annotated[str, typer.Option("--semantic-quality", help="fast: argmax at model resolution, "
                                         "labels resized to the frame (cheap); high: logits upsampled "
                                         "bilinearly before the argmax (smooth edges, slower).")] = "fast",
    scales: Annotated[str, typer.Option(help="Semantic multi-scale inference: comma list of input scales (1 = the "
                                        "model's size), e.g. 0.5,1,1.5; class probabilities are averaged. Each "
                                        "scale costs about scale^2 of one pass.")] = "1",
    flip: Annotated[bool, typer.Option("--flip", help="Semantic: also run each scale mirrored and average it "
                                       "in (2x the cost).")] = False,
    pad: Annotated[int, typer.Option(help=ranged("pad", "Reflect-pad frames by this many pixels before the "
                                     "semantic model, so labels do not fray at the frame edges."))] = 0,
    morph_open: Annotated[int, typer.Option(help=ranged("morph_open", "Morphological opening (kernel px) of "
                                            "masks and labels: removes specks thinner than it."))] = 0,
    morph_close: Annotated[int, typer.Option(help=ranged("morph_close", "Morphological closing (kernel px): "
                                             "fills holes and gaps narrower than it."))] = 0,
    min_area: Annotated[int, typer.Option(help=ranged("min_area", "Drop mask and label regions smaller than "
                                          "this many pixels."))] = 0,
    tile: Annotated[Optional[int], typer.Option(help=ranged("tile", "Sliced inference for large frames with "
                                                "small objects (drones, 4K): cut each frame into TILE-pixel "
                                                "tiles run as one batch; --imgsz defaults to the tile size. Default: "
                                                "off (whole frames)."))] = None,
    overlap: Annotated[float, typer.Option(help=ranged("overlap", "Fraction of a tile shared with its "
                                           "neighbour; objects smaller than tile x overlap are always whole "
                                           "in some tile."))] = 0.2,
    tile_full: Annotated[bool, typer.Option("--tile-full", help="Also run the whole frame, for objects "
                                            "larger than a tile.")] = False,
    tile_merge: Annotated[str, typer.Option(help="Duplicates across tile seams: nmm merges them into their "
                                            "union (objects cut by a seam come out whole), nms keeps the "
                                            "best.")] = "nmm",
    class_file: Annotated[Optional[Path], typer.Option(help="YAML/JSON with class names, colours and merges "
                                                       "(e.g. aerial land cover); see "
                                                       "rtseg/models/classmap.py.")] = None,
    track: Annotated[Optional[str], typer.Option(help="Give instances persistent ids with Ultralytics' "
                                                 "tracker: bytetrack (what --track alone means), or "
                                                 "botsort (compensates camera motion, "
                                                 "for drones). Ids go to the JSONL and the overlay. Default: "
                                                 "off.")] = None,
    trails: Annotated[int, typer.Option(help=ranged("trails", "With --track, draw each object's path over this "
                                        "many frames."))] = 0,
    device: Annotated[str, typer.Option(help="auto (a CUDA GPU when there is one, else the CPU), cpu, cuda, "
                                        "cuda:N or a GPU index.")] = "auto",
    backend: Annotated[str, typer.Option(help="auto (from the model file), torch, onnxruntime or tensorrt.")] = "auto",
    half: Annotated[bool, typer.Option("--half", help="FP16 inference (CUDA only).")] = False,
    precision: Annotated[str, typer.Option(help="fp32, or int8: an INT8 ONNX Runtime copy on the CPU, quantized "
                                           "once (cached) from the first frames of SOURCE or --calib.")] = "fp32",
    calib: Annotated[Optional[str], typer.Option(help="--precision int8: calibration frames (a folder of images "
                                                 "or a video). Default: the first frames of SOURCE.")] = None,
    max_frames: Annotated[Optional[int], typer.Option(help=ranged("max_frames", "Stop after this many frames "
                                                       "per source. Default: all of them."))] = None,
    batch: Annotated[Optional[int], typer.Option(help=ranged("batch", "Frames per inference call, taken from "
                                                 "the sources in turn. Default: the number of sources (one "
                                                 "frame of each per call); 1 with --tile."))] = None,
    workers: Annotated[Optional[int], typer.Option(help=ranged("workers", "Inference calls in flight at once "
                                                   "(ONNX Runtime: one session each, sharing the cores). "
                                                   "Default: 2 on a CPU with 2+ cores, else 1."))] = None,
    video_preset: Annotated[str, typer.Option(help="x264 preset of the --out video: ultrafast, superfast, "
                                              "veryfast, ... medium (slower ones write smaller files). auto: "
                                              "ultrafast when the model runs on the CPU (the encoder takes CPU "
                                              "time from it), superfast on a GPU.")] = "auto",
    hud: Annotated[Optional[bool], typer.Option("--hud/--no-hud", help="Draw frame index and FPS. Default: in "
                                                "the --show window only, never burned into written files.",
                                                show_default=False)] = None,
    alpha: Annotated[float, typer.Option(help=ranged("alpha", "Instance mask opacity."))] = 0.45,
    semantic_alpha: Annotated[float, typer.Option(help=ranged("semantic_alpha", "Semantic colour opacity."))] = 0.35,
    image_fps: Annotated[float, typer.Option(help=ranged("image_fps", "Frame rate given to image folders in "
                                              "the output video."))] = 10.0,
    serve: Annotated[Optional[str], typer.Option(help="Watch the run in a browser: serve the live annotated view "
                                                 "on [HOST:]PORT (host 127.0.0.1, this machine only, unless "
                                                 "given; 0.0.0.0:8080 for the network). Routes: / (the page), "
                                                 "/stream/NAME.mjpg, /frame/NAME.jpg, /stats.json, /events.",
                                                 rich_help_panel="Live")] = None,
    serve_token: Annotated[Optional[str], typer.Option(help="Every request to --serve must carry this token "
                                                       "(?token=... once; the page keeps it). Default: "
                                                       "$RTSEG_SERVE_TOKEN.", rich_help_panel="Live")] = None,
    webhook: Annotated[Optional[str], typer.Option(help="POST each frame's JSON record to this URL (retried; a "
                                                   "slow server loses records, counted, never slows the run).",
                                                   rich_help_panel="Live")] = None,
    mqtt: Annotated[Optional[str], typer.Option(help="Publish each record to mqtt://HOST[:PORT]/TOPIC "
                                                "(?qos=1 for at-least-once).", rich_help_panel="Live")] = None,
    every: Annotated[Optional[int], typer.Option(help=ranged("every", "Send only every Nth frame's record to "
                                                 "--webhook / --mqtt."), rich_help_panel="Live")] = None,
    on_change: Annotated[bool, typer.Option("--on-change", help="Send a record to --webhook / --mqtt only when "
                                            "a class or a track appears or leaves.",
                                            rich_help_panel="Live")] = False,
    event_masks: Annotated[bool, typer.Option("--event-masks", help="Put the masks (COCO RLE) in the --webhook / "
                                              "--mqtt records too (about 10x the bytes).",
                                              rich_help_panel="Live")] = False,
    reconnect: Annotated[Optional[int], typer.Option(help=ranged("reconnect", "Give a dropped live stream up "
                                                     "after this many reconnect attempts in a row (the run then "
                                                     "exits 2). Default: retry forever."),
                                                     rich_help_panel="Live")] = None,
    stall_timeout: Annotated[float, typer.Option(help=ranged("stall_timeout", "Reopen a live stream that is "
                                                 "connected but sent no frame for this many seconds."),
                                                 rich_help_panel="Live")] = 10.0,
    segment: Annotated[Optional[str], typer.Option(help="Start a new --out video and --jsonl file every so long "
                                                   "(90s, 10m, 1h): OUT_000.mp4, OUT_001.mp4, ... for runs of "
                                                   "days. With --ray: the length of a live stream's parts, each "
                                                   "published when finished (default 1m).",
                                                   rich_help_panel="Live")] = None,
    zones: Annotated[Optional[Path], typer.Option(help="YAML/JSON file of named zones and lines (fractions of the "
                                                   "frame or pixels; per source if wanted): see README, "
                                                   "Analytics.", rich_help_panel="Analytics")] = None,
    zone: Annotated[Optional[list[str]], typer.Option(help="A zone 'name:x1,y1,x2,y2,x3,y3,...' (at least 3 "
                                                      "points, fractions 0..1 or pixels); repeat for more. "
                                                      "Occupancy per class, enter/leave, dwell time.",
                                                      metavar="NAME:X,Y,...", rich_help_panel="Analytics",
                                                      show_default=False)] = None,
    line: Annotated[Optional[list[str]], typer.Option(help="A counting line 'name:x1,y1,x2,y2'; repeat for more. "
                                                      "Crossings in/out per class, once per track.",
                                                      metavar="NAME:X1,Y1,X2,Y2", rich_help_panel="Analytics",
                                                      show_default=False)] = None,
    zone_overlap: Annotated[float, typer.Option(help="An instance is in a zone when at least this fraction of "
                                                "its mask lies inside (above 0, up to 1).",
                                                rich_help_panel="Analytics")] = 0.5,
    zone_anchor: Annotated[str, typer.Option(help="mask (the overlap above; lines use the mask centroid) or box "
                                             "(the box's bottom centre, as other tools do).",
                                             rich_help_panel="Analytics")] = "mask",
    report: Annotated[Optional[Path], typer.Option(help="At the end (also on Ctrl-C): counts per zone and line, "
                                                   "per class, per minute: .json or .csv.",
                                                   rich_help_panel="Analytics")] = None,
    heatmap: Annotated[Optional[Path], typer.Option(help="Save where each class was over the run as a PNG over a "
                                                    "frame of the video ({class} in the name: one per class).",
                                                    rich_help_panel="Analytics")] = None,
    heatmap_overlay: Annotated[bool, typer.Option("--heatmap-overlay", help="Draw the heatmap live on the "
                                                  "outputs.", rich_help_panel="Analytics")] = False,
    heatmap_decay: Annotated[Optional[float], typer.Option("--heatmap-decay", help="Half-life in seconds of a "
                                                           "decaying heatmap. Default: the whole run counts the "
                                                           "same.", rich_help_panel="Analytics")] = None,
    blur: Annotated[Optional[str], typer.Option(help="Privacy: blur exactly the mask pixels of these classes "
                                                "('person', 'person,dog') in every visual output.",
                                                rich_help_panel="Analytics")] = None,
    blur_style: Annotated[str, typer.Option(help="blur or pixelate (the mask, feathered), or box (the whole "
                                            "box, for comparison).", rich_help_panel="Analytics")] = "blur",
    blur_only: Annotated[bool, typer.Option("--blur-only", help="With --blur: draw nothing else (no masks, "
                                            "boxes, labels, HUD).", rich_help_panel="Analytics")] = False,
    background: Annotated[Optional[str], typer.Option(help="Replace everything but the people: blur, a colour "
                                                      "('#00ff00', '0,177,64', green), an image or a video file. "
                                                      "Nothing else is drawn.", rich_help_panel="Analytics")] = None,
    trust: Annotated[bool, typer.Option("--trust-weights", help=TRUST_WEIGHTS_HELP)] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar or summary.")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log what each stage does.")] = False,
    ray: RayAddress = None, out_dir: OutDir = None, ray_workers: RayWorkers = None,
    cpus_per_worker: CpusPerWorker = 1.0, gpus_per_worker: GpusPerWorker = None, retries: Retries = 2,
    split: Split = None,
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
      rtseg run drone.mp4 --track --trails 30 --jsonl tracks.jsonl          (ByteTrack; --track botsort)
      rtseg run a.mp4 b.mp4 rtsp://cam/live -o out.mp4   (one batched pipeline: out_a.mp4, out_b.mp4, ...)
      rtseg run rtsp://cam/live --serve 8080 --jsonl - --segment 1h -o cam.mp4   (browser view, records on stdout)
      rtseg run 0 --mqtt mqtt://broker/cam0 --on-change          (an event when a class or track comes or goes)
      rtseg run shop.mp4 --zone "door:0.1,0.2,0.4,0.2,0.4,0.9" --line "gate:0,0.6,1,0.6" --report counts.csv
      rtseg run street.mp4 --blur person --blur-only -o private.mp4      (people blurred, nothing else drawn)
      rtseg run 0 --background blur --show                                (webcam: blur behind the person)
    """
    setup_logging(verbose)
    apply_trust(trust)
    model_options = dict(semantic=semantic, imgsz=imgsz, semantic_imgsz=semantic_imgsz, conf=conf, iou=iou, nms=nms,
                         classes=classes, device=device, backend=backend, half=half, quality=quality, pad=pad,
                         morph_open=morph_open, morph_close=morph_close, min_area=min_area, tile=tile,
                         overlap=overlap, tile_full=tile_full, tile_merge=tile_merge, class_file=class_file,
                         workers=workers, **({"precision": precision, "calib": calib} if precision != "fp32" or calib
                                             else {}), **({"scales": scales, "flip": flip} if scales != "1" or flip
                                                          else {}))
    # the library's own checks (rtseg.run makes them again), here before it and PyTorch load: a second, not ten
    check_options(trails=trails, max_frames=max_frames, batch=batch, alpha=alpha, semantic_alpha=semantic_alpha,
                  image_fps=image_fps, every=every, reconnect=reconnect, stall_timeout=stall_timeout,
                  **model_options)
    if ray is not None or out_dir is not None or split is not None:  # across a Ray cluster: rtseg.cli.ray_run
        from rtseg.cli.ray_run import run_ray

        raise typer.Exit(run_ray(sources, dict(locals()), model_options))
    if segment:
        from rtseg.sinks.segments import parse_duration

        parse_duration(segment)
    view = None
    if serve:  # bound now: a port in use is one line before anything loads; the address is printed at once
        from rtseg.serve.view import LiveView

        view = LiveView(serve, token=serve_token).start()
        typer.echo(f"rtseg: live view at {view.link}", err=True)
    analytics = dict(zones=zones, zone=zone or (), line=line or (), zone_overlap=zone_overlap,
                     zone_anchor=zone_anchor, report=report, heatmap=heatmap, heatmap_overlay=heatmap_overlay,
                     heatmap_decay_s=heatmap_decay, blur=blur, blur_style=blur_style, blur_only=blur_only,
                     background=background)
    from rtseg.analytics import check_analytics_options  # OpenCV: not for --help

    check_analytics_options(**analytics)  # shapes, suffixes, the background file: before PyTorch loads
    from rtseg.overlay.annotator import check_drawing  # --style, --boundary-width: before PyTorch loads too

    check_drawing(style=style, boundary_width=boundary_width)
    notices = ()
    if not track and (zones or zone or line):
        notices = ("zones and lines count tracks: tracking switched on (bytetrack; --track botsort to choose)",)
    live = dict(serve=view, webhook=webhook, mqtt=mqtt, every=every, on_change=on_change, event_masks=event_masks,
                reconnect=reconnect,
                stall_timeout=stall_timeout, segment=segment)
    try:
        code = run_and_report(sources, model or None, quiet=quiet, out=out, jsonl=jsonl, show=show,
                              save_frames=save_frames, save_labels=save_labels, track=track, trails=trails,
                              max_frames=max_frames, batch=batch, video_preset=video_preset, hud=hud, alpha=alpha,
                              semantic_alpha=semantic_alpha, image_fps=image_fps, notices=notices, **live,
                              panoptic=panoptic, save_panoptic=save_panoptic, save_boundaries=save_boundaries,
                              boundary_width=boundary_width, style=style,
                              **analytics, **model_options)
    finally:
        if view is not None:
            view.stop()
    if code:
        raise typer.Exit(code)


def demo(
    out: Annotated[Path, typer.Option("--out", "-o", help="Annotated demo video.")] = Path("rtseg_demo.mp4"),
    model: Annotated[str, typer.Option("--model", "-m", help="Weights to run. Default: rtseg's bundled nano "
                                       "model (person, cat, dog; see rtseg/assets/MODEL_CARD.md).")] = "",
    jsonl: Annotated[Optional[Path], typer.Option(help="Also write JSON Lines results.")] = None,
    conf: Annotated[float, typer.Option(help=ranged("conf", "Minimum detection score."))] = 0.25,
    trust: Annotated[bool, typer.Option("--trust-weights", help=TRUST_WEIGHTS_HELP)] = False,
) -> None:
    """Build a short clip from sample photos shipped with Ultralytics and segment it (works offline)."""
    setup_logging(False)
    apply_trust(trust)
    from rtseg.sources.demo import build_clip

    with tempfile.TemporaryDirectory(prefix="rtseg-demo-") as tmp:
        try:
            clip = build_clip(Path(tmp) / "demo_clip.avi")
        except RtsegError as exc:
            raise fail(str(exc)) from None
        code = run_and_report([str(clip)], model or None, quiet=False, out=out, jsonl=jsonl, conf=conf)
    if code:
        raise typer.Exit(code)
    typer.echo(f"demo written to {out}")


def track_alone(argv: list[str]) -> list[str]:
    """``--track`` with no tracker name means ``--track bytetrack`` (typer options always take a value)."""
    out = list(argv)
    for i, arg in enumerate(out):
        if arg == "--track" and (i + 1 == len(out) or out[i + 1] not in TRACKERS):
            nxt = out[i + 1] if i + 1 < len(out) else ""
            if not nxt or nxt.startswith("-") or _looks_like_source(nxt):
                out[i] = "--track=bytetrack"
    return out


def _looks_like_source(text: str) -> bool:
    return text.isdigit() or "://" in text or any(c in text for c in "*?[") or Path(text).exists() or \
        Path(text).suffix.lower() in (".mp4", ".avi", ".mkv", ".mov", ".jpg", ".png", ".webm", ".ts")


def register(app: typer.Typer) -> None:
    app.command()(guard("running")(run))
    app.command()(guard("running the demo")(demo))
