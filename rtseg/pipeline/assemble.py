"""Turning "these sources, these outputs" into pipeline streams: one output of each kind per source, named
after the source, and each source's own annotator and tracker (track ids never cross videos)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from rtseg.errors import ConfigError
from rtseg.overlay.annotator import Annotator
from rtseg.pipeline.streams import Stream
from rtseg.sinks import ImageFolderSink, JsonlSink, LabelMapSink, VideoFileSink, WindowSink
from rtseg.sinks.base import OutputPath, Sink, check_output_paths
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


def stream_outputs(specs: Sequence[str], outputs: Outputs) -> list[Outputs]:
    """Each source's own outputs, as :func:`build_streams` opens them: with several sources, files suffixed
    with the source's tag (``out_a.mp4``) and one subfolder per source (``frames/a``)."""
    many = len(specs) > 1
    return [Outputs(out=suffixed(outputs.out, tag, many), jsonl=suffixed(outputs.jsonl, tag, many),
                    save_frames=outputs.save_frames / tag if many and outputs.save_frames else outputs.save_frames,
                    save_labels=outputs.save_labels / tag if many and outputs.save_labels else outputs.save_labels,
                    show=outputs.show)
            for tag in source_tags(specs)]


def output_paths(specs: Sequence[str], outputs: Outputs) -> list[OutputPath]:
    """Every path a run writes, after per-source naming."""
    paths = []
    for own in stream_outputs(specs, outputs):
        paths += [OutputPath("out", own.out, what="video")] if own.out is not None else []
        paths += [OutputPath("jsonl", own.jsonl, what="JSONL")] if own.jsonl is not None else []
        if own.save_frames is not None:
            paths.append(OutputPath("save_frames", own.save_frames, ImageFolderSink.FILES, what="frames"))
        if own.save_labels is not None:
            paths.append(OutputPath("save_labels", own.save_labels, LabelMapSink.FILES, what="label maps"))
    return paths


def check_outputs(specs: Sequence[str], outputs: Outputs, inputs: Sequence[str | Path] = ()) -> None:
    """Fail before any source opens or model loads when an output cannot be written, or would overwrite a
    source (or another input file: weights, a class file), or two outputs would write one file
    (:func:`rtseg.sinks.base.check_output_paths`)."""
    check_output_paths(output_paths(specs, outputs), inputs=[*specs, *inputs])


def build_streams(specs: Sequence[str], sources: Sequence[Source], outputs: Outputs, drawing: Drawing, *,
                  names: tuple[str, ...], semantic_names: tuple[str, ...] = (),
                  semantic_palette: tuple = (), track: str | None = None, min_score: float | None = None,
                  video_preset: str = "ultrafast") -> list[Stream]:
    """One :class:`Stream` per source with its sinks, annotator and tracker. On an error every sink opened so
    far is closed (the caller still owns the sources)."""
    if track is not None and track not in TRACKERS:
        raise ConfigError(f"track={track!r}: expected one of {', '.join(TRACKERS)}")
    streams: list[Stream] = []
    try:
        for spec, source, own in zip(specs, sources, stream_outputs(specs, outputs)):
            annotator = Annotator(names, alpha=drawing.alpha, hud=drawing.hud, semantic_names=semantic_names,
                                  semantic_palette=semantic_palette, semantic_alpha=drawing.semantic_alpha,
                                  trails=drawing.trails if track else 0, palette=drawing.palette)
            tracker = Tracker(track, frame_rate=source.fps, min_score=min_score) if track else None
            sinks: list[Sink] = []
            streams.append(Stream(source, sinks, annotator, tracker))  # first, so an error closes its sinks
            if own.out is not None:
                sinks.append(VideoFileSink(own.out, fps=source.fps, preset=video_preset))
            if own.jsonl is not None:
                sinks.append(JsonlSink(own.jsonl, names, semantic_names))
            if own.save_frames is not None:
                sinks.append(ImageFolderSink(own.save_frames))
            if own.save_labels is not None:
                sinks.append(LabelMapSink(own.save_labels, semantic_names, semantic_palette))
            if own.show:
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
