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
import sys  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Annotated, Optional  # noqa: E402

import typer  # noqa: E402

from rtseg import DEFAULT_MODEL, __version__  # noqa: E402
from rtseg.errors import ConfigError, RtsegError  # noqa: E402

app = typer.Typer(
    name="rtseg",
    help="Real-time video instance segmentation: read video, a camera, images or a stream; write annotated "
         "video, a live window or JSON Lines.\n\nStart with: rtseg demo",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
LOGGER = logging.getLogger("rtseg")


def _setup_logging(verbose: bool) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("rtseg: %(levelname)s: %(message)s"))
    root = logging.getLogger("rtseg")
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO if verbose else logging.WARNING)
    root.propagate = False


def _fail(message: str, code: int = 2) -> typer.Exit:
    typer.echo(f"rtseg: error: {message}", err=True)
    return typer.Exit(code)


def _parse_classes(text: str | None, names: tuple[str, ...]) -> list[int] | None:
    if not text:
        return None
    ids = []
    lookup = {n.lower(): i for i, n in enumerate(names)}
    for part in (p.strip() for p in text.split(",") if p.strip()):
        if part.isdigit():
            ids.append(int(part))
        elif part.lower() in lookup:
            ids.append(lookup[part.lower()])
        else:
            raise ConfigError(f"--classes: {part!r} is neither a class id nor a class name of this model")
    return ids


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
    lines = [f"{summary.source}: {summary.frames} frames in {summary.elapsed_s:.1f} s = {summary.fps:.1f} FPS"
             + (f", {summary.dropped} dropped (live source)" if summary.dropped else "")]
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
             "(rtsp://, http(s)://, udp://, tcp://). Several are processed one after another.",
        show_default=False)],
    model: Annotated[str, typer.Option("--model", "-m", help="YOLO-seg weights (.pt), architecture config "
                                       "(.yaml) or exported model (.onnx). Names such as yolo26n-seg.pt download "
                                       "when online. Default: rtseg's bundled nano model.")] = "",
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="Annotated video (.mp4/.mkv/.mov: H.264 "
                                                 "when available; .avi: MJPEG).")] = None,
    jsonl: Annotated[Optional[Path], typer.Option(help="JSON Lines, one record per frame: boxes, scores, "
                                                   "classes, masks as COCO RLE.")] = None,
    show: Annotated[bool, typer.Option("--show", help="Live window; q or Esc quits.")] = False,
    save_frames: Annotated[Optional[Path], typer.Option(help="Folder for annotated frames as JPEG.")] = None,
    imgsz: Annotated[Optional[int], typer.Option(help="Inference size (longer side). Default: the model's "
                                                  "own. Larger finds smaller objects, slower.")] = None,
    conf: Annotated[float, typer.Option(help="Minimum detection score.")] = 0.25,
    iou: Annotated[float, typer.Option(help="NMS IoU: overlapping same-class boxes above it are merged "
                                        "(no effect on NMS-free YOLO26).")] = 0.7,
    classes: Annotated[Optional[str], typer.Option(help="Keep only these classes: ids or names, "
                                                    "comma-separated ('0,16' or 'person,dog').")] = None,
    device: Annotated[str, typer.Option(help="cpu, cuda, cuda:N or a GPU index.")] = "cpu",
    backend: Annotated[str, typer.Option(help="auto (from the model file), torch or onnxruntime.")] = "auto",
    half: Annotated[bool, typer.Option("--half", help="FP16 inference (CUDA only).")] = False,
    max_frames: Annotated[Optional[int], typer.Option(min=1, help="Stop after this many frames per "
                                                       "source.")] = None,
    hud: Annotated[bool, typer.Option("--hud/--no-hud", help="Draw frame index and FPS.")] = True,
    alpha: Annotated[float, typer.Option(min=0.0, max=1.0, help="Mask opacity.")] = 0.45,
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
    """
    _setup_logging(verbose)
    try:
        code = _run(sources, model=model or str(DEFAULT_MODEL), out=out, jsonl=jsonl, show=show,
                    save_frames=save_frames, imgsz=imgsz, conf=conf, iou=iou, classes=classes, device=device,
                    backend=backend, half=half, max_frames=max_frames, hud=hud, alpha=alpha,
                    image_fps=image_fps, quiet=quiet)
    except RtsegError as exc:
        raise _fail(str(exc)) from None
    except KeyboardInterrupt:
        raise _fail("aborted", 130) from None
    if code:
        raise typer.Exit(code)


def _run(sources: list[str], *, model: str, out: Path | None, jsonl: Path | None, show: bool,
         save_frames: Path | None, imgsz: int | None, conf: float, iou: float, classes: str | None, device: str,
         backend: str, half: bool, max_frames: int | None, hud: bool, alpha: float, image_fps: float,
         quiet: bool) -> int:
    from rtseg.backends.registry import load_backend
    from rtseg.models.yolo_seg import YoloSegModel
    from rtseg.overlay.annotator import Annotator
    from rtseg.pipeline import Pipeline
    from rtseg.sinks import ImageFolderSink, JsonlSink, VideoFileSink, WindowSink, check_writable
    from rtseg.sources import open_source

    many = len(sources) > 1
    if not (out or jsonl or show or save_frames):
        out = Path(f"{_source_tag(sources[0]) if not many else 'rtseg'}_rtseg.mp4")
    for path, what in ((out, "video"), (jsonl, "JSONL")):  # fail before the model loads
        if path is not None:
            check_writable(path, what=what)
    opened = [open_source(s, image_fps=image_fps) for s in sources]  # every source checked up front
    try:
        net = load_backend(model, backend=backend, device=device, half=half)
        seg = YoloSegModel(net, imgsz=imgsz, conf=conf, iou=iou, classes=_parse_classes(classes, net.info.names))
    except BaseException:
        for src in opened:
            src.close()
        raise
    annotator = Annotator(seg.names, alpha=alpha, hud=hud)
    with _StopOnSignal() as stopper:
        for spec, source in zip(sources, opened):
            tag = _source_tag(spec)
            sinks, outputs = [], []
            try:
                if out is not None:
                    sinks.append(VideoFileSink(_suffixed(out, tag, many), fps=source.fps))  # type: ignore[arg-type]
                if jsonl is not None:
                    sinks.append(JsonlSink(_suffixed(jsonl, tag, many), seg.names))  # type: ignore[arg-type]
                if save_frames is not None:
                    sinks.append(ImageFolderSink(save_frames / tag if many else save_frames))
                if show:
                    sinks.append(WindowSink(f"rtseg - {spec}"))
            except BaseException:
                for sink in sinks:
                    sink.close()
                for src in opened:
                    src.close()
                raise
            outputs = [str(getattr(s, "path", getattr(s, "folder", ""))) for s in sinks
                       if hasattr(s, "path") or hasattr(s, "folder")]
            total = min(filter(None, (source.frame_count, max_frames)), default=None)
            bar = _progress(total, spec, quiet)
            pipeline = Pipeline(source, seg, sinks, annotator=annotator, max_frames=max_frames,
                                stop=stopper.event, on_frame=(lambda f, r, bar=bar: bar.update(1)) if bar else None)
            try:
                summary = pipeline.run()
            finally:
                if bar:
                    bar.close()
            if not quiet:
                _print_summary(summary, outputs)
            if summary.interrupted:
                typer.echo(f"rtseg: stopped after {summary.frames} frames; outputs are complete up to that "
                           "frame", err=True)
                for src in opened:
                    src.close()
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
    weights: Annotated[str, typer.Argument(help="YOLO-seg weights (.pt).", show_default=False)],
    format: Annotated[str, typer.Option("--format", "-f", help="Target format: onnx.")] = "onnx",
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="Output file. Default: beside the "
                                                 "weights.")] = None,
    imgsz: Annotated[Optional[int], typer.Option(help="Input size. Default: the size the weights were "
                                                  "trained at.")] = None,
    dynamic: Annotated[bool, typer.Option("--dynamic/--static", help="Dynamic input accepts any frame "
                                           "shape, padded only to the stride (faster on wide video); "
                                           "static fixes a square input.")] = True,
) -> None:
    """Export weights for another backend; the file carries class names, input size and task.

    \b
    Example:
      rtseg export best.pt --format onnx && rtseg run clip.mp4 --model best.onnx
    """
    _setup_logging(False)
    from rtseg.export import export

    try:
        target = export(weights, format, out=out, imgsz=imgsz, dynamic=dynamic)
    except RtsegError as exc:
        raise _fail(str(exc)) from None
    typer.echo(str(target))


@app.command()
def demo(
    out: Annotated[Path, typer.Option("--out", "-o", help="Annotated demo video.")] = Path("rtseg_demo.mp4"),
    model: Annotated[str, typer.Option("--model", "-m", help="Weights to run. Default: rtseg's bundled nano "
                                       "model (trained on coco128, see rtseg/assets/MODEL_CARD.md).")] = "",
    jsonl: Annotated[Optional[Path], typer.Option(help="Also write JSON Lines results.")] = None,
) -> None:
    """Build a short clip from sample photos shipped with Ultralytics and segment it (works offline)."""
    _setup_logging(False)
    from rtseg.demo import build_clip

    try:
        with tempfile.TemporaryDirectory(prefix="rtseg-demo-") as tmp:
            clip = build_clip(Path(tmp) / "demo_clip.avi")
            code = _run([str(clip)], model=model or str(DEFAULT_MODEL), out=out, jsonl=jsonl, show=False,
                        save_frames=None, imgsz=None, conf=0.25, iou=0.7, classes=None, device="cpu",
                        backend="auto", half=False, max_frames=None, hud=True, alpha=0.45, image_fps=10.0,
                        quiet=False)
    except RtsegError as exc:
        raise _fail(str(exc)) from None
    if code:
        raise typer.Exit(code)
    typer.echo(f"demo written to {out}")


@app.command()
def version() -> None:
    """Print rtseg's version and the versions of the libraries it runs on."""
    import cv2
    import torch

    typer.echo(f"rtseg {__version__}\ntorch {torch.__version__} (CUDA: {torch.cuda.is_available()})\n"
               f"opencv {cv2.__version__}")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
