"""The source protocol and :func:`open_source`, which picks a source from what the user typed."""

from __future__ import annotations

import glob
from pathlib import Path
from typing import Protocol

import numpy as np
from numpy.typing import NDArray

from rtseg.config import check_options
from rtseg.errors import SourceError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
STREAM_SCHEMES = ("rtsp", "rtsps", "rtmp", "http", "https", "udp", "tcp", "srt")


class Source(Protocol):
    """Yields BGR frames until it ends.

    Attributes:
        name: what the user passed (path, URL or camera index).
        live: frames arrive in real time (camera, stream): a slow consumer should drop the oldest, not wait.
        fps: frames per second, for timestamps and the output video.
        frame_count: number of frames, when known in advance.
    """

    name: str
    live: bool
    fps: float
    frame_count: int | None

    def read(self) -> NDArray[np.uint8] | None:
        """The next frame, or None at the end."""
        ...

    def interrupt(self) -> None:
        """Called from another thread when the run stops: end a wait inside :meth:`read` now (a stream's
        reconnect back-off, say). Nothing to do by default.

        :meth:`close` follows once the reading thread has ended, or, when a read is still blocked inside
        native code a second later (a stalled stream), from the stopping thread while that read goes on: a
        source whose read can block must then leave the release to the reading thread
        (:class:`~rtseg.sources.video.VideoSource` does)."""
        return None

    def close(self) -> None: ...


def open_source(spec: str, *, image_fps: float = 10.0, reconnect: int | None = None,
                stall_timeout: float = 10.0) -> Source:
    """Open what the user typed as a source.

    A whole number is a camera index; ``rtsp://``, ``http(s)://``, ``udp://``, ``tcp://``, ``rtmp://`` and
    ``srt://`` are network streams; a folder or a glob pattern is a sequence of images; any other path is
    a video file (or a single image).

    A live stream is reopened whenever it drops or stalls (:class:`~rtseg.sources.video.VideoSource`). An
    ``http(s)`` URL is live whatever its name (``.ts``, ``.m3u8``, ``.mjpg``): only one whose server gives a
    length, a video file on a web server, is read as a file, to its end, once.

    Args:
        spec: what the user typed.
        image_fps: frame rate given to an image folder.
        reconnect: reopen attempts in a row before a stream that dropped is given up (it then ends, with
            ``gave_up`` set); ``None``: forever.
        stall_timeout: seconds without a frame, the stream still connected, before it is reopened; also
            FFmpeg's open and read timeout, so a read never blocks longer.

    Raises:
        ConfigError: ``reconnect`` or ``stall_timeout`` out of range.
        SourceError: the path does not exist, the URL scheme is not supported, or it cannot be opened.

    Example:
        >>> from rtseg.sources import open_source
        >>> source = open_source(clip)   # clip: a video file's path
        >>> source.live, source.read().shape
        (False, (240, 320, 3))
        >>> source.close()
    """
    from rtseg.sources.video import VideoSource

    check_options(reconnect=reconnect, stall_timeout=stall_timeout)
    text = str(spec).strip()
    if text.isdigit():
        return VideoSource.camera(int(text))
    if "://" in text:
        scheme = text.split("://", 1)[0].lower()
        if scheme not in STREAM_SCHEMES:
            raise SourceError(f"unsupported URL {text!r}: rtseg reads {', '.join(s + '://' for s in STREAM_SCHEMES)}")
        live = None if scheme in ("http", "https") else True  # http(s): a live stream, or a file with a length
        return VideoSource.stream(text, live=live, max_reconnects=reconnect, stall_timeout_s=float(stall_timeout))
    try:
        return _open_path(text, image_fps)
    except OSError as exc:  # a file or folder the user may not read, a name too long, ...
        raise SourceError(f"cannot read {text}: {exc.strerror or exc}") from None


def _open_path(text: str, image_fps: float) -> Source:
    from rtseg.sources.images import ImageSource
    from rtseg.sources.video import VideoSource

    try:
        path = Path(text).expanduser()
    except RuntimeError:  # ~nouser/...: no such user, or no home folder
        raise SourceError(f"no such file: {text} (cannot expand {text.split('/', 1)[0]!r}: no such user or no "
                          "home folder)") from None
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise SourceError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in folder {text}")
        return ImageSource(text, files, fps=image_fps)
    if any(c in text for c in "*?["):
        files = sorted(Path(p) for p in glob.glob(str(path)) if Path(p).suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise SourceError(f"no images match {text!r}")
        return ImageSource(text, files, fps=image_fps)
    if not path.exists():
        raise SourceError(f"no such file: {text}")
    if not path.is_file():
        raise SourceError(f"not a file: {text}")
    with open(path, "rb"):  # unreadable (permissions): say so, rather than "cannot decode" below
        pass
    if path.suffix.lower() in IMAGE_SUFFIXES:
        return ImageSource(text, [path], fps=image_fps)
    return VideoSource.file(path)
