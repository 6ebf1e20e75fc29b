"""The analytics options of a run (``rtseg.run(zone=..., blur=...)``, ``rtseg run --zone ...``) as one object:
checked before any work, turned into one :class:`~rtseg.analytics.stage.Analytics` per source, finished at the
end (the report of every source written, heatmaps saved).

What :func:`rtseg.run` does with it, in order: :meth:`AnalyticsOptions.check` (no model yet: shapes, ranges,
suffixes, the background file), :meth:`~AnalyticsOptions.output_paths` and :meth:`~AnalyticsOptions.inputs` go
into the run's output check; once the model is loaded, :meth:`~AnalyticsOptions.check` again with its class names
(an unknown class in ``blur``), :meth:`~AnalyticsOptions.build` per source (pixel zones checked against the
frame size when it can be known up front), and :func:`finish_analytics` after the pipeline, interrupted or not.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2

from rtseg.analytics.background import IMAGE_SUFFIXES, VIDEO_SUFFIXES
from rtseg.analytics.report import write_report
from rtseg.analytics.stage import Analytics, check_analytics_options
from rtseg.sinks.base import OutputPath

__all__ = ["AnalyticsOptions", "finish_analytics", "probe_frame_hw"]


@dataclass
class AnalyticsOptions:
    """Every analytics option of a run (the parameters of :meth:`Analytics.from_options`, plus ``report``).

    Example:
        >>> opts = AnalyticsOptions(zone=["door:0.1,0.2,0.4,0.2,0.4,0.9"], report="counts.json")
        >>> opts.check(); opts.wanted, opts.needs_tracking
        (True, True)
        >>> AnalyticsOptions().wanted
        False
    """

    zones: str | Path | None = None
    zone: Sequence[str] = ()
    line: Sequence[str] = ()
    zone_overlap: float = 0.5
    zone_anchor: str = "mask"
    heatmap: str | Path | None = None
    heatmap_overlay: bool = False
    heatmap_decay_s: float | None = None
    blur: str | Sequence[str] | None = None
    blur_style: str = "blur"
    blur_only: bool = False
    background: str | None = None
    report: str | Path | None = None

    def __post_init__(self) -> None:
        # None from a caller that passes every keyword: the same as not given
        self.zone, self.line = self.zone or (), self.line or ()

    def _shape_options(self) -> dict:
        return {k: v for k, v in asdict(self).items() if k != "report"}

    @property
    def wanted(self) -> bool:
        """Some option asks for analytics."""
        return bool(self.zones not in (None, "") or self.zone or self.line or self.heatmap not in (None, "")
                    or self.heatmap_overlay or self.blur is not None or self.background not in (None, ""))

    @property
    def writes_files(self) -> bool:
        """A report or a heatmap is asked for (a run with only these writes no default video)."""
        return self.report not in (None, "") or self.heatmap not in (None, "")

    @property
    def needs_tracking(self) -> bool:
        """Lines, dwell times and enter/leave events need track ids: tracking switches on for them."""
        return bool(self.zones not in (None, "") or self.zone or self.line)

    def check(self, names: Sequence[str] | None = None, semantic_names: Sequence[str] = ()) -> None:
        """:func:`~rtseg.analytics.stage.check_analytics_options`; with ``names``, the blur classes too.

        Raises:
            ConfigError: one line naming the parameter.
        """
        check_analytics_options(**self._shape_options(), report=self.report, names=names,
                                semantic_names=semantic_names)

    def inputs(self) -> list[Path]:
        """Files the analytics read (the zones file, a background image or video): no output may replace them."""
        found = [Path(self.zones).expanduser()] if self.zones not in (None, "") else []
        if self.background not in (None, ""):
            path = Path(str(self.background)).expanduser()
            if path.suffix.lower() in IMAGE_SUFFIXES + VIDEO_SUFFIXES or path.is_file():
                found.append(path)
        return found

    def heatmap_path(self, tag: str, many: bool) -> Path | None:
        """The heatmap file of one source: with several sources, suffixed with its tag (``heat_a.png``)."""
        if self.heatmap in (None, ""):
            return None
        path = Path(self.heatmap).expanduser()
        return path.with_name(f"{path.stem}_{tag}{path.suffix}") if many else path

    def output_paths(self, tags: Sequence[str]) -> list[OutputPath]:
        """What the analytics write, for the run's output check: the report, each source's heatmap."""
        paths = [OutputPath("report", Path(self.report).expanduser(), what="report")] \
            if self.report not in (None, "") else []
        for tag in tags:
            heat = self.heatmap_path(tag, len(tags) > 1)
            if heat is not None:
                paths.append(OutputPath("heatmap", heat, what="heatmap"))
        return paths

    def build(self, *, names: Sequence[str], semantic_names: Sequence[str] = (), fps: float = 0.0, tag: str = "",
              source: str = "", many: bool = False, image_hw: tuple[int, int] | None = None) -> Analytics | None:
        """One source's :class:`Analytics` (None when no option asks for any). With ``image_hw`` (the source's
        frame size, when known before the first frame) its pixel zones and lines are checked against it now.

        Raises:
            ConfigError: as :meth:`Analytics.from_options`; a zone or line outside the ``image_hw`` frame.
        """
        options = self._shape_options()
        options["heatmap"] = self.heatmap_path(tag, many)
        analytics = Analytics.from_options(names=names, semantic_names=semantic_names, fps=fps, tag=tag,
                                           source=source, **options)
        if analytics is not None and image_hw is not None:
            analytics.fit(image_hw)
        return analytics


def probe_frame_hw(spec: str) -> tuple[int, int] | None:
    """The frame size (H, W) of a video or image file, read from its header; None for anything else (a camera,
    a stream, a folder: their zones are checked at the first frame)."""
    path = Path(spec).expanduser()
    if "://" in spec or not path.is_file():
        return None
    if path.suffix.lower() in IMAGE_SUFFIXES:
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        return None if image is None else (int(image.shape[0]), int(image.shape[1]))
    capture = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
    try:
        h, w = int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT) or 0), int(capture.get(cv2.CAP_PROP_FRAME_WIDTH) or 0)
    finally:
        capture.release()
    return (h, w) if h > 0 and w > 0 else None


def finish_analytics(analytics: Sequence[Analytics | None], report: str | Path | None = None) -> list[Path]:
    """End of a run, complete or interrupted: close each source's analytics (open visits closed, heatmaps
    written) and write the report of every source that saw a frame. Returns the files written.

    Raises:
        SinkError: a heatmap or the report cannot be written (after the others were attempted).
    """
    written: list[Path] = []
    error: Exception | None = None
    for a in analytics:
        if a is not None:
            try:
                written += a.close()
            except Exception as exc:  # noqa: BLE001 - the others still close; the first error is raised after
                error = error or exc
    reports = [a.report() for a in analytics if a is not None and (a.zones or a.lines)]
    if report not in (None, "") and any(r["frames"] for r in reports):
        written.append(write_report(report, reports))  # type: ignore[arg-type]
    if error is not None:
        raise error
    return written
