"""rtseg's front door: :func:`load_model` -> :class:`Segmenter`, :func:`run`, :func:`export`.

The command line, and anything else built on rtseg, goes through these: ``rtseg run`` is :func:`run` plus a
progress bar, signal handling, printing and exit codes. Errors are :class:`rtseg.errors.RtsegError`
subclasses whose message names the parameter (``conf=2: expected a number in [0, 1]``).
"""

from __future__ import annotations

import glob
import logging
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from rtseg.analytics import Analytics, AnalyticsOptions, finish_analytics, probe_frame_hw
from rtseg.backends.registry import check_device
from rtseg.backends.weights import trust_weights as set_trust
from rtseg.backends.weights import weights_trusted
from rtseg.config import check_options
from rtseg.errors import ConfigError, SourceError
from rtseg.overlay.annotator import Annotator, check_drawing
from rtseg.pipeline.assemble import (
    Drawing,
    LiveOutputs,
    Outputs,
    build_streams,
    check_outputs,
    default_outputs,
    source_tags,
    written_paths,
)
from rtseg.pipeline.core import Pipeline, Stream
from rtseg.pipeline.loading import RunOptions, load_models, people_model
from rtseg.pipeline.streams import RunSummary
from rtseg.sinks.segments import parse_duration
from rtseg.sources.arrays import ArraySource
from rtseg.sources.base import IMAGE_SUFFIXES, Source, open_source
from rtseg.types import Frame, FrameResult

__all__ = ["Segmenter", "export", "load_model", "run"]

LOGGER = logging.getLogger(__name__)

ImageInput = NDArray[np.uint8] | str | Path | Sequence[NDArray[np.uint8] | str | Path]


class Segmenter:
    """A loaded instance and/or semantic model with its settings: what :func:`load_model` returns.

    Attributes:
        names: instance class names, indexed by class id (empty for a semantic-only model).
        semantic_names: semantic class names (empty without a semantic model).
        instance: the instance-segmentation stage, or None.
        semantic: the semantic-segmentation stage, or None.

    Example:
        >>> import numpy as np, rtseg
        >>> seg = rtseg.load_model()                       # the bundled person/cat/dog model
        >>> seg.names
        ('person', 'cat', 'dog')
        >>> [result] = seg.predict(np.zeros((480, 640, 3), np.uint8))
        >>> result.image_hw, len(result)
        ((480, 640), 0)
    """

    def __init__(self, instance: Any = None, semantic: Any = None, *, palette: tuple | None = None,
                 device: str = "cpu") -> None:
        if instance is None and semantic is None:
            raise ConfigError("model: a Segmenter needs an instance model, a semantic model, or both")
        self.instance, self.semantic = instance, semantic
        self.palette = palette
        self.device = device
        self.names: tuple[str, ...] = tuple(instance.names) if instance is not None else ()
        self.semantic_names: tuple[str, ...] = tuple(semantic.names) if semantic is not None else ()
        self.semantic_palette: tuple = tuple(semantic.info.palette_bgr) if semantic is not None else ()

    def __repr__(self) -> str:
        parts = [f"instance={len(self.names)} classes"] if self.instance is not None else []
        if self.semantic is not None:
            parts.append(f"semantic={len(self.semantic_names)} classes")
        return f"Segmenter({', '.join(parts)}, device={self.device!r})"

    def _named(self, result: FrameResult) -> FrameResult:
        return replace(result, names=self.names, semantic_names=self.semantic_names)

    def predict(self, images: ImageInput) -> list[FrameResult]:
        """Segment still images: one :class:`~rtseg.types.FrameResult` per image, in order.

        Args:
            images: a BGR uint8 (H, W, 3) array (as OpenCV reads it), a list of them, an image path, a folder
                or a glob (``'photos/*.jpg'``), or a list of paths. Images may differ in size.

        Example:
            >>> import numpy as np, rtseg
            >>> seg = rtseg.load_model()
            >>> results = seg.predict([np.zeros((240, 320, 3), np.uint8), np.zeros((100, 200, 3), np.uint8)])
            >>> [r.image_hw for r in results]
            [(240, 320), (100, 200)]
        """
        return [result for _, result in self.stream(_image_source(images))]

    def stream(self, source: str | Path | int | Source, *, max_frames: int | None = None,
               batch: int | None = None, stop: threading.Event | None = None) -> Iterator[tuple[Frame, FrameResult]]:
        """Run the threaded pipeline over a video, camera, image folder, glob or stream URL and yield each
        ``(frame, result)`` in order as it is ready. Decoding, inference and post-processing overlap in
        threads; a live source (camera, stream) drops its oldest frames when you fall behind, a file never
        does. Leaving the loop early stops the run and closes the source.

        Args:
            source: what ``rtseg run`` takes (``"clip.mp4"``, ``0``, ``"rtsp://..."``, ``"frames/*.jpg"``) or
                an opened :class:`~rtseg.sources.base.Source`.
            max_frames: stop after this many frames.
            batch: frames per inference call (default 1; 1 with tiling).
            stop: set it from another thread to end the run after the current frame.

        Example:
            >>> import rtseg
            >>> seg = rtseg.load_model()
            >>> for frame, result in seg.stream(clip, max_frames=2):    # clip: a video file's path
            ...     print(frame.index, frame.image.shape, type(result).__name__)
            0 (240, 320, 3) FrameResult
            1 (240, 320, 3) FrameResult
        """
        check_options(max_frames=max_frames, batch=batch)
        opened = source if hasattr(source, "read") else open_source(str(source))
        pipeline = Pipeline.multi([Stream(opened, ())], self.instance, semantic=self.semantic,  # type: ignore[arg-type]
                                  max_frames=max_frames, batch=batch, stop=stop)
        for frame, result in pipeline:
            yield frame, self._named(result)

    def annotate(self, image: NDArray[np.uint8], result: FrameResult, *, alpha: float = 0.45) -> NDArray[np.uint8]:
        """A copy of ``image`` with ``result`` drawn on it: masks, boxes, labels, semantic colours.

        Example:
            >>> import numpy as np, rtseg
            >>> seg = rtseg.load_model()
            >>> image = np.zeros((240, 320, 3), np.uint8)
            >>> seg.annotate(image, seg.predict(image)[0]).shape
            (240, 320, 3)
        """
        annotator = Annotator(self.names, alpha=alpha, semantic_names=self.semantic_names,
                              semantic_palette=self.semantic_palette, palette=self.palette)
        return annotator.draw(image, result)


def _image_source(images: ImageInput) -> Source:
    if isinstance(images, np.ndarray):
        return ArraySource([images])
    if isinstance(images, (str, Path)):
        return open_source(str(images))
    items = list(images)
    if all(isinstance(i, np.ndarray) for i in items):
        return ArraySource(items)
    if all(isinstance(i, (str, Path)) for i in items):
        from rtseg.sources.images import ImageSource

        files = []
        for item in items:
            text = str(item)
            found = sorted(glob.glob(text)) if any(c in text for c in "*?[") else [text]
            files += [Path(f) for f in found]
        bad = [f for f in files if not f.is_file() or f.suffix.lower() not in IMAGE_SUFFIXES]
        if bad or not files:
            raise SourceError(f"images: {bad[0] if bad else 'nothing'} is not an image file")
        return ImageSource("images", files)
    raise SourceError("images: expected an array, a list of arrays, a path, a glob or a list of paths")


def load_model(model: str | Path | Any | None = None, *, semantic: str | Path | Any | None = None,
               backend: str = "auto", device: str = "auto", half: bool = False, imgsz: int | None = None,
               conf: float = 0.25, iou: float = 0.7, classes: str | Sequence[int | str] | None = None,
               nms: bool | None = None, tile: int | None = None, overlap: float = 0.2, tile_full: bool = False,
               tile_merge: str = "nmm", semantic_imgsz: int | None = None, quality: str = "fast", pad: int = 0,
               morph_open: int = 0, morph_close: int = 0, min_area: int = 0, class_file: str | Path | None = None,
               workers: int | None = None, trust_weights: bool = False, precision: str = "fp32",
               calib: str | Path | None = None, calib_frames: int | None = None,
               scales: Sequence[float] | str = (1.0,), flip: bool = False) -> Segmenter:
    """Load an instance-segmentation model, a semantic one, or both (combined mode) into a :class:`Segmenter`.

    Args:
        model: YOLO-seg weights (``.pt``), an architecture ``.yaml`` (untrained), an ``.onnx`` exported by
            :func:`export`, a TensorRT ``.engine``, a semantic model (then the run is semantic-only), or a
            backend object (anything with ``info`` and ``infer``, see :class:`rtseg.backends.base.Backend`).
            Default: rtseg's bundled person/cat/dog model.
        semantic: a semantic model drawn under the instances (both run concurrently).
        backend: ``auto`` (from the file; a ``.pt`` on a CPU runs on ONNX Runtime through an export cached in
            ``$RTSEG_CACHE``), ``torch``, ``onnxruntime`` or ``tensorrt``.
        device: ``auto`` (the first CUDA GPU, else the CPU), ``cpu``, ``cuda``, ``cuda:N``.
        half: FP16 (CUDA only).
        imgsz: inference size (longer side); default: the model's own.
        conf: minimum detection score, in [0, 1].
        iou: NMS overlap above which the weaker of two same-class boxes is dropped, in [0, 1].
        classes: keep only these classes: ids or names (``["person", "dog"]`` or ``"person,dog"``).
        nms: YOLO26 head: None (default) and True run NMS on the one-to-many head, as Ultralytics'
            ``predict()`` does; False runs the one-to-one (NMS-free) head. Exported files keep the head they
            were exported with.
        tile: sliced inference: cut each frame into ``tile``-pixel tiles run as one batch (small objects in
            large frames); ``overlap``, ``tile_full`` and ``tile_merge`` as in ``rtseg run --help``.
        class_file: YAML/JSON class names, colours and merges.
        scales, flip: semantic multi-scale inference: also run each frame resized by these factors (``"0.5,1,1.5"``;
            1.0 = the model's size) and, with ``flip``, mirrored; the class probabilities are averaged. ``(1.0,)``
            without flip is plain inference. See :class:`rtseg.models.semantic.SemanticModel`.
        workers: inference calls in flight at once (ONNX Runtime).
        precision: ``fp32``, or ``int8``: an INT8 ONNX Runtime copy on the CPU, quantized once from
            ``calib_frames`` (default 64) frames of ``calib`` (a folder of images or a video) and cached
            (:func:`rtseg.pipeline.loading.int8_model`); an INT8 ``.onnx`` needs no ``calib``.
        trust_weights: unpickle ``.pt`` files fully, running any code they carry: only for files you trust.
            By default weights load as data (tensors and the classes of Ultralytics and rtseg checkpoints) and
            anything else is refused (:mod:`rtseg.backends.weights`; also ``RTSEG_TRUST_WEIGHTS=1``).

    Example:
        >>> import rtseg
        >>> seg = rtseg.load_model(conf=0.3, classes="person")
        >>> seg.names[0], seg.instance.conf
        ('person', 0.3)
    """
    check_options(imgsz=imgsz, semantic_imgsz=semantic_imgsz, conf=conf, iou=iou, tile=tile, overlap=overlap,
                  pad=pad, morph_open=morph_open, morph_close=morph_close, min_area=min_area, workers=workers,
                  classes=classes)
    if classes is not None and not isinstance(classes, str):
        classes = ",".join(str(c) for c in classes)
    opts = RunOptions(semantic=str(semantic or ""), imgsz=imgsz, semantic_imgsz=semantic_imgsz, conf=conf, iou=iou,
                      classes=classes, device=device, backend=backend, half=half, quality=quality, pad=pad,
                      morph_open=morph_open, morph_close=morph_close, min_area=min_area, tile=tile,
                      overlap=overlap, tile_full=tile_full, tile_merge=tile_merge,
                      class_file=Path(class_file) if class_file is not None else None, workers=workers,
                      scales=scales, flip=flip)
    opts.nms = nms
    opts.precision, opts.calib, opts.calib_frames = precision, str(calib) if calib else None, calib_frames
    if model is not None and not isinstance(model, (str, Path)):  # a backend object
        from rtseg.models.yolo_seg import YoloSegModel

        if not (hasattr(model, "info") and hasattr(model, "infer")):
            raise ConfigError(f"model: expected a path, a model name or a backend object, got {type(model).__name__}")
        instance = YoloSegModel(model, imgsz=imgsz, conf=conf, iou=iou)
        return Segmenter(instance, None, device=str(getattr(model, "device", "cpu")))
    opts.model = str(model or "")
    trusted_before = weights_trusted()
    if trust_weights:
        set_trust(True)
    try:
        instance, sem = load_models(opts)
    finally:
        if trust_weights and not trusted_before:
            set_trust(None)

    return Segmenter(instance, sem, palette=opts.instance_palette, device=check_device(device, half=half))


def run(sources: str | Path | int | Sequence[str | Path | int], model: str | Path | Segmenter | None = None, *,
        out: str | Path | None = None, jsonl: str | Path | None = None, show: bool = False,
        save_frames: str | Path | None = None, save_labels: str | Path | None = None, track: str | None = None,
        trails: int = 0, max_frames: int | None = None, batch: int | None = None, video_preset: str = "auto",
        hud: bool | None = None, alpha: float = 0.45, semantic_alpha: float = 0.35, image_fps: float = 10.0,
        serve: str | int | Any = None, serve_token: str | None = None, webhook: str | None = None,
        mqtt: str | None = None, every: int | None = None, on_change: bool = False, event_masks: bool = False,
        reconnect: int | None = None,
        stall_timeout: float = 10.0, segment: str | float | None = None,
        zones: str | Path | None = None, zone: Sequence[str] = (), line: Sequence[str] = (),
        zone_overlap: float = 0.5, zone_anchor: str = "mask", report: str | Path | None = None,
        heatmap: str | Path | None = None, heatmap_overlay: bool = False, heatmap_decay_s: float | None = None,
        blur: str | Sequence[str] | None = None, blur_style: str = "blur", blur_only: bool = False,
        background: str | None = None, panoptic: bool = False, save_panoptic: str | Path | None = None,
        save_boundaries: str | Path | None = None, boundary_width: int = 2, style: str = "fill",
        stop: threading.Event | None = None, on_start: Callable[[int | None], None] | None = None,
        on_frame: Callable[[Frame, FrameResult], None] | None = None, **model_options: Any) -> RunSummary:
    """Everything ``rtseg run`` does: segment every frame of each source and write the outputs.

    Several sources run in one pipeline (their frames batched into shared inference calls) with one output
    of each kind per source (``out_a.mp4``, ``out_b.mp4``). With no output at all, writes
    ``<source>_rtseg.mp4`` in the current folder (a ``report`` or ``heatmap`` is an output too).

    Args:
        sources: a video file, camera index, image folder or glob, stream URL, or a list of them.
        model: weights or a model name (as :func:`load_model`), or a loaded :class:`Segmenter`.
        out: annotated video (``.mp4/.mkv/.mov``: H.264; ``.avi``: MJPEG). From a live source it is fragmented
            MP4, playable at any moment, even after a crash.
        jsonl: JSON Lines, one record per frame (:meth:`FrameResult.to_dict`); ``"-"``: standard output.
        show: a live window (q or Esc quits).
        save_frames: folder for annotated JPEG frames. save_labels: folder for semantic label maps.
        track: ``"bytetrack"`` or ``"botsort"``: persistent instance ids. trails: draw paths over N frames.
        max_frames: stop each source after this many frames.
        batch: frames per inference call (default: one of each source).
        video_preset: x264 preset of ``out``; ``auto``: ``ultrafast`` with the model on the CPU, else ``superfast``.
        hud: draw frame index and FPS; default: only in a window, never burned into written files.
        serve: ``[HOST:]PORT`` (host 127.0.0.1 unless given): a browser view of the run (MJPEG per source,
            snapshots, ``/stats.json``, ``/events``); or a started :class:`rtseg.serve.view.LiveView`, which the
            run leaves running. serve_token: every request must carry it (default ``$RTSEG_SERVE_TOKEN``).
        webhook: POST each record (JSON) to this URL; mqtt: publish it to ``mqtt://host:port/topic``. Both are
            checked at start-up, send from a bounded queue (a slow peer loses records, counted, and never slows
            the run) and retry. every: only every Nth frame's record; on_change: only when a class or track
            appears or leaves (with ``every`` too: the changes, and a heartbeat after N frames without one).
            event_masks: records with masks (COCO RLE: ~10x the bytes, ~1 ms per record at 720p); the JSONL
            always has them.
        reconnect: attempts in a row before a live stream that dropped is given up (default: forever);
            stall_timeout: reopen a stream that is connected but sent no frame for this many seconds.
        segment: a new video / JSONL file every so long (``"10m"``, ``"1h"``, seconds): ``out_000.mp4``, ...
        zones: a YAML/JSON file of named zones and lines (:mod:`rtseg.analytics.shapes`); zone, line: more of
            them as strings (``["door:0.1,0.2,0.4,0.2,0.4,0.9"]``, ``["gate:0,0.5,1,0.5"]``; fractions of the
            frame, or pixels). Occupancy per zone and class, enter/leave events and dwell times, line crossings
            in/out go to the JSONL records and the overlay; ``track`` defaults to ``"bytetrack"`` with them.
            zone_overlap: the fraction of an instance's mask that must lie in a zone; zone_anchor: ``"mask"``,
            or ``"box"`` (the box's bottom centre, as peers do).
        report: counts per zone and line, per class, per minute of every source, written at the end (also
            when stopped early): ``.json`` or ``.csv``.
        heatmap: a PNG of where each class was, over a frame of the video (one per source when there are
            several; ``{class}`` in the name: one per class); heatmap_overlay: draw it live;
            heatmap_decay_s: half-life in seconds (default: the whole run counts the same).
        blur: classes to obscure in every visual output (``"person"``), exactly their mask pixels; blur_style:
            ``blur``, ``pixelate`` or ``box``; blur_only: no masks, boxes, labels or HUD drawn.
        background: replace everything but the people: ``"blur"``, a colour (``"#00ff00"``, ``"0,177,64"``,
            ``"green"``), an image or a video file; nothing else is drawn.
        panoptic: fuse the instance and semantic models' results (combined mode) into one panoptic map per
            frame (:func:`rtseg.postprocess.panoptic.fuse_panoptic`): the JSONL records get its segments and
            the overlay draws it. save_panoptic: a folder for COCO panoptic PNGs and ``panoptic.json`` (implies
            ``panoptic``). ``min_area`` also removes stuff segments smaller than it.
        save_boundaries: a folder for boundary maps (PNG, 255 where the labels change), ``boundary_width``
            pixels wide (1..64). style: ``"fill"``, ``"contour"`` or ``"both"``: how masks and classes are drawn.
        stop: set it to end the run after the current frame (outputs are finalized).
        on_start: called once, once the sources are open and the model loaded but before any output opens,
            with the total frame count (None when unknown: live).
        on_frame: called after each frame reached every output.
        model_options: :func:`load_model` keywords (``conf``, ``imgsz``, ``semantic``, ``tile``, ...) when
            ``model`` is not a Segmenter.

    Returns:
        The run's :class:`~rtseg.pipeline.streams.RunSummary`: frames, FPS, per-stage latency, whether it was
        interrupted, ``outputs`` (the paths written), ``events`` (records sent and dropped per event output) and
        each stream's ``reconnects`` and ``gave_up``.

    Raises:
        SinkError: before any source opens or model loads, when an output cannot be written, is an input
            (a source, the weights, the class file; links resolved), would be read by a source (an image in a
            source folder, a file a source glob matches), or shares its path with another output; during the
            run, when a write fails (a full disk), after the other outputs are finalized.

    Example:
        >>> import rtseg
        >>> summary = rtseg.run(clip, out=tmp / "seg.mp4", jsonl=tmp / "seg.jsonl", max_frames=5)
        >>> summary.frames, [Path(p).name for p in summary.outputs]
        (5, ['seg.mp4', 'seg.jsonl'])
    """
    specs = [str(s) for s in ([sources] if isinstance(sources, (str, Path, int)) else sources)]
    if not specs:
        raise ConfigError("sources: give at least one video, camera, image folder or stream")
    if video_preset != "auto":
        from rtseg.sinks.video import check_preset

        check_preset(video_preset)
    check_options(trails=trails, max_frames=max_frames, batch=batch, alpha=alpha, semantic_alpha=semantic_alpha,
                  image_fps=image_fps, every=every, reconnect=reconnect, stall_timeout=stall_timeout,
                  **model_options)  # before any source opens or model loads
    segment_s = parse_duration(segment) if segment not in (None, "") else None
    if isinstance(model, Segmenter) and model_options:
        raise ConfigError(f"{', '.join(model_options)}: pass model options to load_model, not with a Segmenter")
    if model_options.get("tile") and (batch or 1) > 1:
        raise ConfigError(f"batch={batch} with tile={model_options['tile']}: the tiles of a frame are already one "
                          "batch; use batch=1")
    outputs = Outputs(out=_path(out), jsonl=_path(jsonl), save_frames=_path(save_frames),
                      save_labels=_path(save_labels), show=show, save_panoptic=_path(save_panoptic),
                      save_boundaries=_path(save_boundaries))
    check_drawing(style=style, boundary_width=boundary_width)
    if (panoptic or save_panoptic) and not isinstance(model, Segmenter) and not model_options.get("semantic"):
        raise ConfigError(f"{'save_panoptic' if save_panoptic else 'panoptic'} needs an instance model and a "
                          "semantic model (model=..., semantic=...)")
    analytics_opts = AnalyticsOptions(zones=zones, zone=zone, line=line, zone_overlap=zone_overlap,
                                      zone_anchor=zone_anchor, heatmap=heatmap, heatmap_overlay=heatmap_overlay,
                                      heatmap_decay_s=heatmap_decay_s, blur=blur, blur_style=blur_style,
                                      blur_only=blur_only, background=background, report=report)
    analytics_opts.check()  # shapes, ranges, suffixes, a readable background: before any work
    if not (serve not in (None, "") or webhook or mqtt or analytics_opts.writes_files):  # outputs too
        outputs = default_outputs(specs, outputs)
    model_files = [m for m in (model, model_options.get("semantic"), model_options.get("class_file"))
                   if isinstance(m, (str, Path)) and m]
    check_outputs(specs, outputs, inputs=[*model_files, *analytics_opts.inputs()], segmented=segment_s is not None,
                  extra=analytics_opts.output_paths(source_tags(specs)))  # before any work
    live = LiveOutputs(every=every, on_change=on_change, event_masks=event_masks, segment_s=segment_s)
    own_view = serve not in (None, "") and isinstance(serve, (str, int))
    opened: list[Source] = []
    analytics: list[Analytics | None] = []
    try:
        if own_view:  # a port in use or a bad host: one line now, before the model loads
            from rtseg.serve.view import LiveView

            live.view = LiveView(str(serve), token=serve_token).start()
        elif serve not in (None, ""):
            live.view = serve
        if webhook or mqtt:  # unreachable peers: one line now
            from rtseg.sinks.events import open_event_outputs

            live.events = open_event_outputs(webhook=webhook or None, mqtt=mqtt or None)
            if live.view is not None:  # their sent and dropped counts in /stats.json
                live.view.hub.outputs = list(live.events)  # type: ignore[attr-defined]
        opened += [open_source(s, image_fps=image_fps, reconnect=reconnect, stall_timeout=stall_timeout)
                   for s in specs]  # every source checked up front
        if not isinstance(model, Segmenter):
            people = people_model(specs, model, model_options.get("semantic"), background)
            if people is not None:  # a webcam, or background replacement: people from the selfie segmenter
                role, path = people
                model_options["quality"] = "high"  # logits resized before the threshold: MediaPipe's own edges
                model, model_options["semantic"] = (str(path), None) if role == "model" else (None, str(path))
            if model_options.get("precision", "fp32") != "fp32" and not model_options.get("calib"):
                model_options["calib"] = specs[0]  # calibrated on the first frames of the (first) source
            model = load_model(model, **model_options)
        if outputs.save_labels is not None and model.semantic is None:
            raise ConfigError("save_labels needs a semantic model (semantic=..., or a semantic model=...)")
        if track and model.instance is None:
            raise ConfigError("track needs an instance-segmentation model")
        panoptic = panoptic or outputs.save_panoptic is not None
        if panoptic and (model.instance is None or model.semantic is None):
            raise ConfigError(f"{'save_panoptic' if outputs.save_panoptic else 'panoptic'} needs an instance model "
                              "and a semantic model (model=..., semantic=...)")
        analytics = _build_analytics(analytics_opts, specs, opened, model)
        if analytics_opts.needs_tracking and not track and model.instance is not None:
            track = "bytetrack"  # crossings and dwell count tracks; the CLI says so on one line
            LOGGER.info("zones and lines need track ids: tracking with bytetrack")
        if on_start is not None:  # before any output opens: until here, stopping leaves nothing behind
            totals = [min(filter(None, (src.frame_count, max_frames)), default=None) for src in opened]
            on_start(None if None in totals else sum(totals))  # type: ignore[arg-type]
        preset = video_preset
        if preset == "auto":
            from rtseg.sinks.video import auto_preset

            preset = auto_preset(model.device == "cpu")
        drawing = Drawing(hud=(show and not outputs.writes_files()) if hud is None else hud, alpha=alpha,
                          semantic_alpha=semantic_alpha, trails=trails, palette=model.palette, style=style,
                          boundary_width=boundary_width, panoptic=panoptic,
                          min_area=int(getattr(model.semantic, "min_area", 0) or 0))
        streams = build_streams(specs, opened, outputs, drawing, names=model.names,
                                semantic_names=model.semantic_names, semantic_palette=model.semantic_palette,
                                track=track, min_score=getattr(model.instance, "conf", None), video_preset=preset,
                                live=live, analytics=analytics)
    except BaseException:
        for src in opened:
            src.close()
        for stage in analytics:
            if stage is not None:
                stage.close()  # a background video's reader; nothing is written before a frame
        _close_live(live, own_view)
        raise
    pipeline = Pipeline.multi(streams, model.instance, max_frames=max_frames, stop=stop, semantic=model.semantic,
                              batch=batch, on_frame=on_frame)
    try:
        summary = pipeline.run()  # closes every sink and source
    finally:
        events = _close_live(live, own_view)
        finished = finish_analytics(analytics, analytics_opts.report)  # the report also when stopped early
    summary.outputs = written_paths(streams) + [str(p) for p in finished]
    summary.events = events
    return summary


def _build_analytics(opts: AnalyticsOptions, specs: Sequence[str], opened: Sequence[Source],
                     model: Segmenter) -> list[Analytics | None]:
    """Each source's analytics, once the model's classes are known (an unknown class in ``blur`` fails here),
    pixel zones checked against a file's frame size before any output opens."""
    if not opts.wanted:
        return [None] * len(specs)
    opts.check(model.names, model.semantic_names)
    tags = source_tags(specs)
    return [opts.build(names=model.names, semantic_names=model.semantic_names, fps=src.fps, tag=tag, source=spec,
                       many=len(specs) > 1, image_hw=probe_frame_hw(spec) if opts.needs_tracking else None)
            for spec, tag, src in zip(specs, tags, opened)]


def _close_live(live: LiveOutputs, own_view: bool) -> dict[str, dict[str, int]]:
    """Flush and close the event outputs (what cannot be sent within a few seconds is counted as dropped) and
    stop the view this run started; each event output's counts."""
    stats = {}
    for output in live.events:
        try:
            output.close(timeout=2.0)  # type: ignore[attr-defined]
        finally:
            stats[output.name] = output.stats()  # type: ignore[attr-defined]
    if own_view and live.view is not None:
        live.view.stop()  # type: ignore[attr-defined]
    return stats


def _path(value: str | Path | None) -> Path | None:
    return None if value is None or value == "" else Path(value).expanduser()


def export(weights: str | Path, format: str = "onnx", **options: Any) -> Path:  # noqa: A002 - the CLI's word
    """Export weights for another runtime; the file carries class names, input size and task, so
    ``load_model`` needs nothing else. Returns the written path.

    Args:
        weights: YOLO-seg weights (``.pt``) or a semantic model.
        format: ``onnx``, or ``engine`` (TensorRT: an NVIDIA GPU and the ``tensorrt`` package).
        options: ``out``, ``imgsz``, ``dynamic``; for engines also ``half``, ``int8``, ``calib``, ``batch``,
            ``max_batch``, ``workspace_gb``; for ONNX ``int8=True`` with ``calib``, ``calib_frames``, ``val``,
            ``val_split``, ``val_labels``, ``max_drop``, ``force`` (:func:`rtseg.bench.gate.export_int8`).

    Example:
        >>> import rtseg
        >>> path = rtseg.export(rtseg.DEFAULT_MODEL, "onnx", out=tmp / "model.onnx")
        >>> path.name, rtseg.load_model(path).names
        ('model.onnx', ('person', 'cat', 'dog'))
    """
    from rtseg.exporters.onnx import export as export_to

    check_options(**options)  # imgsz, batch, max_batch, workspace_gb: before the model loads
    if format == "onnx" and options.get("int8"):  # ONNX Runtime INT8 for the CPU, gated on accuracy
        from rtseg.bench.gate import export_int8

        return export_int8(str(weights), **{k: v for k, v in options.items() if k != "int8"})
    if options.get("out"):  # before the model loads: writable, and not the weights or calibration images
        from rtseg.sinks.base import OutputPath, check_output_paths

        calib = [options["calib"]] if options.get("calib") else []
        check_output_paths([OutputPath("out", Path(options["out"]), what="export")], inputs=[weights, *calib])
    return export_to(str(weights), format, **options)
