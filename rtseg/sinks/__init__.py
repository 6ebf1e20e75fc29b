"""Outputs: video file, live window, JSON Lines, annotated image files, and a null sink."""

from rtseg.sinks.base import NullSink, Sink, check_writable
from rtseg.sinks.images import ImageFolderSink
from rtseg.sinks.jsonl import JsonlSink
from rtseg.sinks.labels import LabelMapSink
from rtseg.sinks.video import VideoFileSink
from rtseg.sinks.window import WindowSink

__all__ = ["ImageFolderSink", "JsonlSink", "LabelMapSink", "NullSink", "Sink", "VideoFileSink", "WindowSink",
           "check_writable"]
