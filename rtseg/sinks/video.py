"""Annotated video file: H.264 through PyAV's libx264 when available, else OpenCV's MPEG-4 Part 2.

OpenCV's pip wheels carry no H.264 encoder, PyAV's do. Odd frame sizes are encoded 4:4:4 to keep the
exact size (OpenCV's writers silently crop them to even).

The x264 preset trades CPU time for file size: :func:`auto_preset` picks ``ultrafast`` when the models run
on the CPU, whose cores the encoder takes from them, and ``superfast`` when they run on a GPU.

The file takes the source's frame rate and size; frames of another size (image folders) are resized to
the first frame's. It is written as ``.<stem>.partial<suffix>`` beside its final name (:mod:`rtseg.sinks.atomic`);
``close()`` finalizes the container and renames it, so an interrupted run still leaves a playable file under
the name asked for. When finalizing fails (a full disk) nothing stays under either name: a container without
its index is not a video. A failed write (``OSError``: no space left, file too large) is one
:class:`~rtseg.errors.SinkError` line.
"""

from __future__ import annotations

import logging
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np
from numpy.typing import NDArray

from rtseg.errors import ConfigError, SinkError
from rtseg.sinks.atomic import PartialFile, reason
from rtseg.sinks.base import check_writable
from rtseg.types import Frame, FrameResult

LOGGER = logging.getLogger(__name__)

VIDEO_SUFFIXES = (".mp4", ".mkv", ".mov", ".m4v", ".avi")
X264_PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow")


def auto_preset(models_on_cpu: bool) -> str:
    """The x264 preset for ``--video-preset auto``.

    On the CPU the encoder competes with the model for the same cores: ``ultrafast`` costs less CPU time
    than ``superfast`` (720p, 2 cores, measured: 5.3 against 9.2 ms per frame) for twice the bytes at about
    the same PSNR (41.1 against 41.9 dB); end to end on a 720p video, the bundled model ran 25% faster at its
    imgsz 320 and 4% at 640 (``benchmarks/results/cpu_time_per_frame.md``). With the model on a GPU the CPU
    has room, and ``superfast`` keeps files small.
    """
    return "ultrafast" if models_on_cpu else "superfast"


def check_preset(preset: str) -> str:
    if preset not in X264_PRESETS:
        raise ConfigError(f"video preset {preset!r}: expected one of {', '.join(X264_PRESETS)}")
    return preset


class _PyAvWriter:
    def __init__(self, path: Path, fps: float, size_wh: tuple[int, int], preset: str, *,
                 fragmented: bool = False) -> None:
        import av

        mp4 = path.suffix.lower() in (".mp4", ".m4v", ".mov")
        # fragmented MP4: a header up front, then a self-contained fragment per keyframe, so a file cut at any
        # point (a crash, a power loss) plays up to its last fragment; Matroska is cut-tolerant by design
        options = {"movflags": "frag_keyframe+empty_moov+default_base_moof"} if fragmented and mp4 else {}
        if fragmented:  # each packet reaches the file now, not when an I/O buffer fills
            options["flush_packets"] = "1"
        self._container = av.open(str(path), "w", options=options)
        rate = Fraction(fps).limit_denominator(1001)
        self._stream = self._container.add_stream("libx264", rate=rate)
        self._stream.width, self._stream.height = size_wh
        # 4:2:0 needs even sizes; 4:4:4 keeps an odd-sized source's exact size (fewer players support it)
        even = size_wh[0] % 2 == 0 and size_wh[1] % 2 == 0
        self._stream.pix_fmt = "yuv420p" if even else "yuv444p"
        self._i420 = even
        codec_options = {"preset": preset, "crf": "23"}
        if fragmented:  # a keyframe, hence a fragment, every half second: a cut loses less than a second
            codec_options["g"] = str(max(1, round(fps / 2)))
        self._stream.options = codec_options
        self._time_base = 1 / rate
        self._stream.codec_context.time_base = self._time_base
        self._av = av
        self._pts = 0
        self.codec = "h264"
        self.errors: tuple[type[Exception], ...] = (OSError, av.error.FFmpegError)

    def write(self, image: NDArray[np.uint8]) -> None:
        if self._i420:
            # OpenCV converts BGR to 4:2:0 in 0.4 ms (720p) without the GIL, and more exactly (colour PSNR after
            # a round trip 46 dB) than PyAV's own swscale conversion does in 3.1 ms holding it (37 dB); measured
            frame = self._av.VideoFrame.from_ndarray(cv2.cvtColor(image, cv2.COLOR_BGR2YUV_I420), format="yuv420p")
        else:
            frame = self._av.VideoFrame.from_ndarray(image, format="bgr24")
        frame.pts, frame.time_base = self._pts, self._time_base
        self._pts += 1
        for packet in self._stream.encode(frame):
            self._container.mux(packet)

    def close(self) -> None:
        for packet in self._stream.encode():
            self._container.mux(packet)
        self._container.close()


class _OpenCvWriter:
    def __init__(self, path: Path, fps: float, size_wh: tuple[int, int]) -> None:
        fourcc = "MJPG" if path.suffix.lower() == ".avi" else "mp4v"
        self._writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, size_wh)
        if not self._writer.isOpened():
            raise SinkError(f"cannot open a video writer for {path} (codec {fourcc})")
        self.codec = fourcc
        self.errors: tuple[type[Exception], ...] = (OSError, cv2.error)

    def write(self, image: NDArray[np.uint8]) -> None:
        self._writer.write(image)

    def close(self) -> None:
        self._writer.release()


def _h264_available() -> bool:
    try:
        import av
    except ImportError:
        return False
    return "libx264" in av.codecs_available


class VideoFileSink:
    """Writes annotated frames to a video file.

    From a live source (``live=True``: a run that may last days, and end by a crash or a power cut) the file is
    written under its final name from the start, as fragmented MP4 (or Matroska) with a keyframe every half
    second and each packet flushed to the file, so that it plays up to less than a second before its end at any
    moment: while the run goes on, and after it died.

    Args:
        path: output file; ``.mp4``, ``.mkv``, ``.mov`` and ``.m4v`` get H.264 when PyAV's libx264 is
            installed (MPEG-4 Part 2 otherwise), ``.avi`` gets Motion-JPEG.
        fps: frame rate, normally the source's.
        preset: x264 preset (:data:`X264_PRESETS`); faster ones cost less CPU per frame and write larger
            files. ``superfast`` takes half the CPU time of ``veryfast`` for ~1.6x the bytes (720p, measured).
    """

    needs_image = True

    def __init__(self, path: Path, fps: float, preset: str = "superfast", *, live: bool = False) -> None:
        self.path = check_writable(Path(path), what="video")
        self.live = live
        self.preset = check_preset(preset)
        if self.path.suffix.lower() not in VIDEO_SUFFIXES:
            raise SinkError(f"cannot write video {self.path}: use one of {', '.join(VIDEO_SUFFIXES)}")
        self.fps = fps
        self.frames_written = 0
        self.codec: str | None = None
        self._writer: _PyAvWriter | _OpenCvWriter | None = None
        self._size_wh: tuple[int, int] | None = None
        self._partial = PartialFile(self.path)

    def _open(self, size_wh: tuple[int, int]) -> None:
        temp = self._partial.temp if not self.live else self.path
        try:
            if self.path.suffix.lower() != ".avi" and _h264_available():
                self._writer = _PyAvWriter(temp, self.fps, size_wh, self.preset, fragmented=self.live)
            else:
                self._writer = _OpenCvWriter(temp, self.fps, size_wh)
        except OSError as exc:
            self._partial.discard()
            raise SinkError(f"cannot write video {self.path}: {reason(exc)}") from None
        self.codec = self._writer.codec
        self._size_wh = size_wh
        LOGGER.info("writing %s (%s %s, %dx%d, %.2f fps)", self.path, self.codec,
                    self.preset if isinstance(self._writer, _PyAvWriter) else "", *size_wh, self.fps)

    def write(self, frame: Frame, annotated: NDArray[np.uint8] | None, result: FrameResult) -> None:
        image = annotated if annotated is not None else frame.image
        size_wh = (int(image.shape[1]), int(image.shape[0]))
        if self._writer is None:
            self._open(size_wh)
        elif size_wh != self._size_wh:
            image = cv2.resize(image, self._size_wh, interpolation=cv2.INTER_AREA)
        writer = self._writer
        try:
            writer.write(np.ascontiguousarray(image))  # type: ignore[union-attr]
        except writer.errors as exc:  # type: ignore[union-attr]
            raise SinkError(f"cannot write video {self.path}: {reason(exc)}") from None
        self.frames_written += 1

    def close(self) -> None:
        """Finalize the container and rename it to :attr:`path`; when that fails, remove it (not a video)."""
        writer, self._writer = self._writer, None
        if writer is None:
            return
        try:
            writer.close()
            if not self.live:
                self._partial.commit()
        except Exception as exc:
            if not self.live:  # a live run's file is fragmented: what was written still plays
                self._partial.discard()
            if isinstance(exc, writer.errors):
                raise SinkError(f"cannot write video {self.path}: {reason(exc)}") from None
            raise
