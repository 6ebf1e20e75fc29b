"""``prelabel``: sample frames, segment them, write the outlines as files people correct in a labelling tool."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from rtseg.errors import ConfigError
from rtseg.label.frames import sample_frames
from rtseg.label.shapes import LabelledFrame, instance_prelabels, semantic_prelabels
from rtseg.label.writers import check_format, open_writer


@dataclass
class LabelReport:
    """What :func:`prelabel` wrote: frames, objects, and how many of them are flagged for review."""

    out: Path
    format: str
    frames: int = 0
    objects: int = 0
    review: int = 0
    names: tuple[str, ...] = field(default_factory=tuple)


def check_label_options(fmt: str, tolerance: float, review_below: float) -> None:
    """ConfigError for a format rtseg does not write, a negative tolerance, or a threshold outside 0..1."""
    check_format(fmt)
    if not tolerance >= 0:
        raise ConfigError(f"tolerance={tolerance:g}: expected a distance in pixels >= 0 (0 keeps every corner)")
    if not 0 <= review_below <= 1:
        raise ConfigError(f"review_below={review_below:g}: expected a score in 0..1")


def prelabel(source: str | Path, instance=None, semantic=None, *, out: Path, fmt: str = "labelme",  # noqa: ANN001
             every: int = 1, max_frames: int | None = None, scene_threshold: float | None = None,
             tolerance: float = 1.0, review_below: float = 0.5, min_area: int = 16,
             progress: Callable[[int], object] | None = None) -> LabelReport:
    """Pre-label frames of ``source`` with one model, for people to correct.

    Args:
        source: a video file, an image or a folder of images.
        instance: an instance stage (:class:`~rtseg.models.yolo_seg.YoloSegModel`): each object's mask becomes
            polygons, its score kept; or None.
        semantic: a semantic stage: each connected region of a class (but the background) becomes an object
            with no score; used when ``instance`` is None.
        out: the output folder (see :mod:`rtseg.label.writers` for each format's layout).
        fmt: ``labelme``, ``coco``, ``yolo-seg`` or ``cvat``.
        every, max_frames, scene_threshold: which frames, see :func:`rtseg.label.frames.sample_frames`.
        tolerance: polygon simplification, the largest distance in pixels from the mask's outline.
        review_below: objects scored below this are flagged for review.
        min_area: semantic regions smaller than this (pixels) are left out.
        progress: called with 1 after each frame.

    Raises:
        ConfigError: an unknown format or an option out of range; SourceError: an unreadable source;
        SinkError: an output that cannot be written.
    """
    check_label_options(fmt, tolerance, review_below)
    if instance is None and semantic is None:
        raise ConfigError("prelabel: give an instance or a semantic model")
    names = tuple(instance.names if instance is not None else semantic.names)
    frames = sample_frames(source, every=every, max_frames=max_frames, scene_threshold=scene_threshold)
    first = next(frames, None)  # a bad source fails here, before the output folder is made
    writer = open_writer(fmt, Path(out), names)
    report = LabelReport(Path(out), fmt, names=names)
    pending = [first] if first is not None else []
    for frame in _chain(pending, frames):
        if instance is not None:
            (result,) = instance([frame.image], [frame.frame_index])
            objects = instance_prelabels(result, names, tolerance=tolerance, review_below=review_below)
        else:
            (labels,) = semantic([frame.image])
            objects = semantic_prelabels(labels, names, tolerance=tolerance, min_area=min_area)
        writer.add(frame, LabelledFrame(frame.name, frame.image.shape[:2], objects))
        report.frames += 1
        report.objects += len(objects)
        report.review += sum(o.review for o in objects)
        if progress is not None:
            progress(1)
    writer.close()
    return report


def _chain(first, rest):  # noqa: ANN001, ANN202
    yield from first
    yield from rest
