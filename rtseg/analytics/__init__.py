"""What users do with masks: zone occupancy, line crossings, dwell times, heatmaps, privacy blur and background.

One :class:`Analytics` per stream (``Analytics.from_options(...)``), updated by the pipeline after the tracker
(:mod:`rtseg.analytics.stage` describes the protocol); :func:`check_analytics_options` checks the options
before any work; :func:`write_report` writes the end-of-run summary of every stream.
:class:`AnalyticsOptions` bundles a run's options (what :func:`rtseg.run` takes) and :func:`finish_analytics`
ends them.
"""

from rtseg.analytics.options import AnalyticsOptions, finish_analytics, probe_frame_hw
from rtseg.analytics.report import write_report
from rtseg.analytics.shapes import Line, Zone, load_shapes, parse_line, parse_zone
from rtseg.analytics.stage import Analytics, check_analytics_options

__all__ = ["Analytics", "AnalyticsOptions", "Line", "Zone", "check_analytics_options", "finish_analytics",
           "load_shapes", "parse_line", "parse_zone", "probe_frame_hw", "write_report"]
