"""Turning "these sources, these outputs" into pipeline streams: one output of each kind per source, named
after the source, and each source's own annotator and tracker (track ids never cross videos)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from rtseg.errors import ConfigError
from rtseg.overlay.annotator import Annotator
from rtseg.pipeline.streams import Stream
from rtseg.sinks import ImageFolderSink, JsonlSink, LabelMapSink, VideoFileSink, WindowSink, check_writable
from rtseg.sinks.base import Sink
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

    def any(self) -> bool:
        return bool(self.out or self.jsonl or self.save_frames or self.save_labels or self.show)

    def writes_files(self) -> bool:
        return bool(self.out or self.jsonl or self.save_frames or self.save_labels)


@dataclass
class Drawing:
    """How each source's frames are annotated."""

    hud: bool = False
    alpha: float = 0.45
    semantic_alpha: float = 0.35
    trails: int = 0
    palette: tuple | None = None


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
    if path is None or not many:
        return path
    return path.with_name(f"{path.stem}_{tag}{path.suffix}")


def default_outputs(specs: Sequence[str], outputs: Outputs) -> Outputs:
    """With no output at all, an annotated video named after the source in the current folder."""
    if outputs.any():
        return outputs
    name = source_tag(specs[0]) if len(specs) == 1 else "rtseg"
    return Outputs(out=Path(f"{name}_rtseg.mp4"))


def check_outputs(outputs: Outputs) -> None:
    """Fail before any model loads when an output file cannot be written."""
    for path, what in ((outputs.out, "video"), (outputs.jsonl, "JSONL")):
        if path is not None:
            check_writable(path, what=what)


def build_streams(specs: Sequence[str], sources: Sequence[Source], outputs: Outputs, drawing: Drawing, *,
                  names: tuple[str, ...], semantic_names: tuple[str, ...] = (),
                  semantic_palette: tuple = (), track: str | None = None, min_score: float | None = None,
                  video_preset: str = "ultrafast") -> list[Stream]:
    """One :class:`Stream` per source with its sinks, annotator and tracker. On an error every sink opened so
    far is closed (the caller still owns the sources)."""
    if track is not None and track not in TRACKERS:
        raise ConfigError(f"track={track!r}: expected one of {', '.join(TRACKERS)}")
    many = len(specs) > 1
    streams: list[Stream] = []
    try:
        for spec, source, tag in zip(specs, sources, source_tags(specs)):
            annotator = Annotator(names, alpha=drawing.alpha, hud=drawing.hud, semantic_names=semantic_names,
                                  semantic_palette=semantic_palette, semantic_alpha=drawing.semantic_alpha,
                                  trails=drawing.trails if track else 0, palette=drawing.palette)
            tracker = Tracker(track, frame_rate=source.fps, min_score=min_score) if track else None
            sinks: list[Sink] = []
            streams.append(Stream(source, sinks, annotator, tracker))  # first, so an error closes its sinks
            if outputs.out is not None:
                sinks.append(VideoFileSink(suffixed(outputs.out, tag, many), fps=source.fps,  # type: ignore[arg-type]
                                           preset=video_preset))
            if outputs.jsonl is not None:
                sinks.append(JsonlSink(suffixed(outputs.jsonl, tag, many), names, semantic_names))  # type: ignore[arg-type]
            if outputs.save_frames is not None:
                sinks.append(ImageFolderSink(outputs.save_frames / tag if many else outputs.save_frames))
            if outputs.save_labels is not None:
                sinks.append(LabelMapSink(outputs.save_labels / tag if many else outputs.save_labels,
                                          semantic_names, semantic_palette))
            if outputs.show:
                sinks.append(WindowSink(f"rtseg - {spec}"))
    except BaseException:
        for sink in (s for stream in streams for s in stream.sinks):
            sink.close()
        raise
    return streams


def written_paths(streams: Sequence[Stream]) -> list[str]:
    """The files and folders the streams' sinks write, in order."""
    return [str(getattr(s, "path", None) or s.folder) for stream in streams for s in stream.sinks
            if getattr(s, "path", None) is not None or getattr(s, "folder", None) is not None]
