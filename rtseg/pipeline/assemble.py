"""Turning "these sources, these outputs" into pipeline streams: one output of each kind per source, named
after the source, and each source's own annotator and tracker (track ids never cross videos)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from rtseg.analytics import Analytics
from rtseg.errors import ConfigError
from rtseg.overlay.annotator import Annotator
from rtseg.pipeline.streams import Stream
from rtseg.postprocess.panoptic import PanopticFuser
from rtseg.sinks import ImageFolderSink, JsonlSink, LabelMapSink, VideoFileSink, WindowSink
from rtseg.sinks.base import OutputPath, Sink, check_output_paths
from rtseg.sinks.boundaries import BoundarySink
from rtseg.sinks.panoptic import PanopticSink
from rtseg.sinks.segments import SegmentedSink, segment_path
from rtseg.sources.base import Source
from rtseg.tracking import TRACKERS, Tracker


@dataclass
class Outputs:
    """Where a run writes. ``out`` and ``jsonl`` are file names; with several sources each gets its own file,
    suffixed with the source's name (``out_a.mp4``); ``save_frames`` / ``save_labels`` are folders (one
    subfolder per source when there are several)."""

    out: Path | None = None
    jsonl: Path | None = None
    save_frames: Path | None = None
    save_labels: Path | None = None
    show: bool = False
    save_panoptic: Path | None = None  # COCO panoptic PNGs + panoptic.json (rtseg.sinks.panoptic)
    save_boundaries: Path | None = None  # boundary maps (rtseg.sinks.boundaries)

    def any(self) -> bool:
        return bool(self.writes_files() or self.show)

    def writes_files(self) -> bool:
        return bool(self.out or self.jsonl or self.save_frames or self.save_labels or self.save_panoptic
                    or self.save_boundaries)


@dataclass
class LiveOutputs:
    """What a run sends out while it goes on, besides its files.

    Attributes:
        view: the browser view (:class:`rtseg.serve.view.LiveView`); each source gets a sink on it.
        events: started event outputs (:func:`rtseg.sinks.events.open_event_outputs`: webhook, MQTT), shared by
            every source; each source gets its own :class:`~rtseg.sinks.events.EventSink` (its own filter).
        every, on_change: which records the event outputs get (every frame by default); event_masks: with masks.
        segment_s: rotate the video and JSONL files every so many seconds (``out_000.mp4``, ...).
    """

    view: object | None = None
    events: Sequence[object] = ()
    every: int | None = None
    on_change: bool = False
    event_masks: bool = False
    segment_s: float | None = None


@dataclass
class Drawing:
    """How each source's frames are annotated."""

    hud: bool = False
    alpha: float = 0.45
    semantic_alpha: float = 0.35
    trails: int = 0
    palette: tuple | None = None
    style: str = "fill"  # fill, contour or both (rtseg.overlay.annotator.STYLES)
    boundary_width: int = 2  # --save-boundaries' band width
    panoptic: bool = False  # fuse things and stuff into one map: written, recorded and drawn
    min_area: int = 0  # stuff segments smaller than this are void in the fused map


def source_tag(spec: str) -> str:
    """A short name for a source, used in output file names: ``camera0``, ``stream``, a file's stem."""
    if spec.isdigit():
        return f"camera{spec}"
    if "://" in spec:
        return "stream"
    return Path(spec).stem.replace("*", "all") or "images"


def source_tags(specs: Sequence[str]) -> list[str]:
    """One distinct tag per source: two sources with one tag (two rtsp:// URLs) must not write one file."""
    tags = [source_tag(s) for s in specs]
    return [f"{t}{tags[:i].count(t) + 1}" if tags.count(t) > 1 else t for i, t in enumerate(tags)]


def suffixed(path: Path | None, tag: str, many: bool) -> Path | None:
    if path is None or not many or str(path) == "-":  # "-": standard output, shared
        return path
    return path.with_name(f"{path.stem}_{tag}{path.suffix}")


def default_outputs(specs: Sequence[str], outputs: Outputs) -> Outputs:
    """With no output at all, an annotated video named after the source in the current folder."""
    if outputs.any():
        return outputs
    name = source_tag(specs[0]) if len(specs) == 1 else "rtseg"
    return Outputs(out=Path(f"{name}_rtseg.mp4"))


def stream_outputs(specs: Sequence[str], outputs: Outputs) -> list[Outputs]:
    """Each source's own outputs, as :func:`build_streams` opens them: with several sources, files suffixed
    with the source's tag (``out_a.mp4``) and one subfolder per source (``frames/a``)."""
    many = len(specs) > 1
    return [Outputs(out=suffixed(outputs.out, tag, many), jsonl=suffixed(outputs.jsonl, tag, many),
                    save_frames=outputs.save_frames / tag if many and outputs.save_frames else outputs.save_frames,
                    save_labels=outputs.save_labels / tag if many and outputs.save_labels else outputs.save_labels,
                    show=outputs.show, save_panoptic=_sub(outputs.save_panoptic, tag, many),
                    save_boundaries=_sub(outputs.save_boundaries, tag, many))
            for tag in source_tags(specs)]


def _sub(folder: Path | None, tag: str, many: bool) -> Path | None:
    return folder / tag if many and folder is not None else folder


def output_paths(specs: Sequence[str], outputs: Outputs, *, segmented: bool = False) -> list[OutputPath]:
    """Every path a run writes, after per-source naming (the first part's, ``out_000.mp4``, when segmented)."""
    def part(path: Path) -> Path:
        return segment_path(path, 0) if segmented else path

    paths = []
    for own in stream_outputs(specs, outputs):
        paths += [OutputPath("out", part(own.out), what="video")] if own.out is not None else []
        paths += [OutputPath("jsonl", part(own.jsonl), what="JSONL")] if own.jsonl not in (None, Path("-")) else []
        if own.save_frames is not None:
            paths.append(OutputPath("save_frames", own.save_frames, ImageFolderSink.FILES, what="frames"))
        if own.save_labels is not None:
            paths.append(OutputPath("save_labels", own.save_labels, LabelMapSink.FILES, what="label maps"))
        if own.save_panoptic is not None:
            paths.append(OutputPath("save_panoptic", own.save_panoptic, PanopticSink.FILES, what="panoptic maps"))
        if own.save_boundaries is not None:
            paths.append(OutputPath("save_boundaries", own.save_boundaries, BoundarySink.FILES,
                                    what="boundary maps"))
    return paths


def check_outputs(specs: Sequence[str], outputs: Outputs, inputs: Sequence[str | Path] = (), *,
                  segmented: bool = False, extra: Sequence[OutputPath] = ()) -> None:
    """Fail before any source opens or model loads when an output cannot be written, or would overwrite a
    source (or another input file: weights, a class file), or two outputs would write one file
    (:func:`rtseg.sinks.base.check_output_paths`). ``extra``: other files the run writes (an analytics
    report, heatmaps)."""
    check_output_paths([*output_paths(specs, outputs, segmented=segmented), *extra], inputs=[*specs, *inputs])


def build_streams(specs: Sequence[str], sources: Sequence[Source], outputs: Outputs, drawing: Drawing, *,
                  names: tuple[str, ...], semantic_names: tuple[str, ...] = (),
                  semantic_palette: tuple = (), track: str | None = None, min_score: float | None = None,
                  video_preset: str = "ultrafast", live: LiveOutputs | None = None,
                  analytics: Sequence[Analytics | None] = ()) -> list[Stream]:
    """One :class:`Stream` per source with its sinks, annotator and tracker. On an error every sink opened so
    far is closed (the caller still owns the sources).

    ``analytics``: each source's :class:`~rtseg.analytics.Analytics` (zones, lines, blur, ...) or None.

    A live source's video is written fragmented, playable at any moment (:class:`VideoFileSink` ``live``).
    """
    live = live or LiveOutputs()
    if track is not None and track not in TRACKERS:
        raise ConfigError(f"track={track!r}: expected one of {', '.join(TRACKERS)}")
    streams: list[Stream] = []
    each = list(analytics) + [None] * (len(specs) - len(analytics))
    try:
        for spec, tag, source, own, stage in zip(specs, source_tags(specs), sources, stream_outputs(specs, outputs),
                                                 each):
            annotator = Annotator(names, alpha=drawing.alpha, hud=drawing.hud, semantic_names=semantic_names,
                                  semantic_palette=semantic_palette, semantic_alpha=drawing.semantic_alpha,
                                  trails=drawing.trails if track else 0, palette=drawing.palette,
                                  style=drawing.style)
            tracker = Tracker(track, frame_rate=source.fps, min_score=min_score) if track else None
            sinks: list[Sink] = []
            fuser = PanopticFuser(names, semantic_names, min_area=drawing.min_area) if drawing.panoptic else None
            streams.append(Stream(source, sinks, annotator, tracker, stage, fuser))  # first: an error closes its sinks
            if own.out is not None:
                sinks.append(_segmented(own.out, live.segment_s, lambda path, fps=source.fps, on=bool(source.live):
                                        VideoFileSink(path, fps=fps, preset=video_preset, live=on)))
            if own.jsonl is not None:
                segment_s = live.segment_s if str(own.jsonl) != "-" else None
                sinks.append(_segmented(own.jsonl, segment_s, lambda path: JsonlSink(path, names, semantic_names)))
            if own.save_frames is not None:
                sinks.append(ImageFolderSink(own.save_frames))
            if own.save_labels is not None:
                sinks.append(LabelMapSink(own.save_labels, semantic_names, semantic_palette))
            if own.save_panoptic is not None:
                sinks.append(PanopticSink(own.save_panoptic, names, semantic_names))
            if own.save_boundaries is not None:
                sinks.append(BoundarySink(own.save_boundaries, drawing.boundary_width))
            if own.show:
                sinks.append(WindowSink(f"rtseg - {spec}"))
            if live.view is not None:
                sinks.append(live.view.sink(tag=tag, source=source, names=names,  # type: ignore[attr-defined]
                                            semantic_names=semantic_names))
            if live.events:
                from rtseg.sinks.events import EventSink

                sinks.append(EventSink(live.events, names=names, semantic_names=semantic_names, every=live.every,
                                       on_change=live.on_change, tag=tag, masks=live.event_masks))
    except BaseException:
        for sink in (s for stream in streams for s in stream.sinks):
            sink.close()
        raise
    return streams


def _segmented(path: Path, segment_s: float | None, open_part: Callable[[Path], Sink]) -> Sink:
    return open_part(path) if segment_s is None else SegmentedSink(path, segment_s, open_part)  # type: ignore[return-value]


def written_paths(streams: Sequence[Stream]) -> list[str]:
    """The files and folders the streams' sinks write, in order (each part of a segmented output)."""
    paths: list[str] = []
    for sink in (s for stream in streams for s in stream.sinks):
        if getattr(sink, "parts", None):
            paths += [str(p) for p in sink.parts]  # type: ignore[attr-defined]
        elif getattr(sink, "path", None) is not None or getattr(sink, "folder", None) is not None:
            paths.append(str(getattr(sink, "path", None) or sink.folder))  # type: ignore[attr-defined]
    return paths
