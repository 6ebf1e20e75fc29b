"""Frame sources: video files, cameras, network streams, image folders and globs."""

from rtseg.sources.base import Source, open_source

__all__ = ["Source", "open_source"]
