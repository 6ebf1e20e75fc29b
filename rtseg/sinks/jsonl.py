"""JSON Lines: one record per frame, flushed as it is written, so an interrupted run keeps every frame so far.

Unlike the other file outputs, the JSONL is written under its final name from the start, so that it can be
followed while the run goes on (``tail -f``): every record is one complete line once written, so the file
is valid at any moment. A write that fails (a full disk) is one :class:`~rtseg.errors.SinkError` line, and
the file is cut back to its last complete record.

Record::

    {"frame": 12, "timestamp_s": 0.48, "source": "in.mp4", "image_hw": [720, 1280],
     "detections": [{"class_id": 0, "class_name": "person", "score": 0.91,
                     "box_xyxy": [x1, y1, x2, y2],
                     "mask": {"size": [720, 1280], "counts": "<COCO compressed RLE>"}}],
     "timings_ms": {"decode": 1.2, "preprocess": 0.8, "infer": 35.1, "postprocess": 2.0,
                    "overlay": 0.9, "queue_wait": 0.3}}

From an image folder or glob the record also has ``"path"``, the image file (``"source"`` is then the
folder or pattern); video files, streams and cameras have no ``"path"``. With ``--track`` each detection
also has ``"track_id"``. ``mask`` decodes with
``pycocotools.mask.decode`` (``counts`` encoded to bytes). With a semantic model the record also has
``"semantic": [{"class_id", "class_name", "area_fraction", "mask"}]``, one entry per class present in the
frame, the mask being that class's pixels as COCO RLE.

The path ``-`` writes the records to standard output instead, each line flushed as soon as it is written, so
that ``rtseg run cam --jsonl - | jq`` shows each frame as it comes (rtseg's logs and progress go to standard
error). When the reading program goes away (a closed pipe), the next record raises one
:class:`~rtseg.errors.SinkError` line, ``jsonl=-: ...``, and the run stops.
"""

from __future__ import annotations

import io
import json
import os
import sys
import threading
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from rtseg.errors import SinkError
from rtseg.sinks.atomic import reason
from rtseg.sinks.base import check_writable
from rtseg.types import Frame, FrameResult

STDOUT = "-"  # the JSONL path that means standard output
_STDOUT_LOCK = threading.Lock()  # the sinks of several sources share standard output: one whole line at a time


def is_stdout(path: str | Path | None) -> bool:
    """``path`` is ``-``: the records go to standard output (no file to check, name per source or collide)."""
    return path is not None and str(path) == STDOUT


def _silence_stdout() -> None:
    """After a broken pipe, point standard output at /dev/null, so that the interpreter's flush at exit finds
    no closed pipe (it would print a traceback-like "Exception ignored" message)."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):  # no real standard output (a test's capture): nothing at exit
        pass


def result_record(frame: Frame, result: FrameResult, names: tuple[str, ...],
                  semantic_names: tuple[str, ...] = ()) -> dict:
    """The JSON-ready record of one frame (:meth:`FrameResult.to_dict` with the frame's source and file)."""
    return result.to_dict(frame, names=names, semantic_names=semantic_names)


class JsonlSink:
    """Writes one JSON record per frame to ``path``, or to standard output when ``path`` is ``-``."""

    needs_image = False

    def __init__(self, path: Path | str, names: tuple[str, ...], semantic_names: tuple[str, ...] = ()) -> None:
        self.names, self.semantic_names = names, semantic_names
        self._stdout = None
        if is_stdout(path):
            self.path = Path(STDOUT)
            self._stdout = getattr(sys.stdout, "buffer", sys.stdout)  # bytes; a text stream as a fallback
            return
        self.path = check_writable(Path(path), what="JSONL")
        try:
            self._file = self.path.open("wb", buffering=0)  # one write per record: nothing held back
        except OSError as exc:
            raise SinkError(f"cannot write JSONL {self.path}: {reason(exc)}") from None
        self._complete = 0  # bytes up to the end of the last record written whole

    def write(self, frame: Frame, annotated: NDArray[np.uint8] | None, result: FrameResult) -> None:
        record = result_record(frame, result, self.names, self.semantic_names)
        text = json.dumps(record, separators=(",", ":")) + "\n"
        if self._stdout is not None:
            self._write_stdout(text)
            return
        line = memoryview(text.encode("utf-8"))
        try:
            while line:  # a raw write may take part of the line
                written = self._file.write(line)
                if not written:
                    raise OSError(f"the file took none of {len(line)} bytes")
                line = line[written:]
        except OSError as exc:
            try:  # keep only whole records
                os.ftruncate(self._file.fileno(), self._complete)
            except OSError:
                pass  # a device (/dev/full) cannot be cut
            raise SinkError(f"cannot write JSONL {self.path}: {reason(exc)}") from None
        self._complete = self._file.tell() if self._file.seekable() else 0

    def _write_stdout(self, text: str) -> None:
        stream = self._stdout
        try:
            with _STDOUT_LOCK:
                stream.write(text if isinstance(stream, io.TextIOBase) else text.encode("utf-8"))
                stream.flush()  # the reader sees each frame now, not a block of them later
        except BrokenPipeError:
            _silence_stdout()
            raise SinkError("jsonl=-: the program reading standard output went away (broken pipe)") from None
        except (OSError, ValueError) as exc:  # ValueError: standard output was closed
            raise SinkError(f"jsonl=-: cannot write to standard output: {reason(exc)}") from None

    def close(self) -> None:
        if self._stdout is None and not self._file.closed:
            self._file.close()
