"""A cluster worker: loads the model once through the front door, then segments whole sources handed to it.

:class:`SourceWorker` is a plain class; :mod:`rtseg.scale.cluster` makes it a Ray actor. Each source is
written into an attempt folder of its own, ``OUT_DIR/.rtseg-ray/<tag>.<pid>.a<attempt>/``, renamed into
``OUT_DIR`` once complete, and then marked done (:func:`rtseg.scale.plan.write_marker`): a worker killed half way
leaves only its attempt folder, which the driver removes at the end, never half a file under a final name.

With an out dir URL (``s3://...``) the attempt folder is on the worker's own disk (``$TMPDIR/rtseg-ray/``) and
each complete output is uploaded under its final key (:func:`rtseg.scale.storage.publish`); a URL source is first
fetched there (:func:`rtseg.scale.storage.fetch`). A live source's outputs go out in parts while it runs
(:mod:`rtseg.scale.live`).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import socket
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from rtseg.errors import RtsegError
from rtseg.scale import storage
from rtseg.scale.plan import STATE_DIR, SourceResult, SourceTask, write_marker

LOGGER = logging.getLogger(__name__)
REPORT_EVERY_S = 0.5  # frames reported to the driver's progress bar at most this often
STREAM_ONLY = ("reconnect", "stall_timeout")  # rtseg.run options that only a stream reads


class ProgressBoard:
    """Frames done per source, reported by the workers and read by the driver for its one progress bar (a Ray
    actor with no CPU of its own: a few calls a second)."""

    def __init__(self) -> None:
        self.frames: dict[str, int] = {}

    def report(self, tag: str, frames: int) -> None:
        self.frames[tag] = frames

    def snapshot(self) -> dict[str, int]:
        return dict(self.frames)


class SourceWorker:
    """Segments one source at a time with a model loaded once (``rtseg.load_model``), writing its outputs itself.

    Args:
        model: weights, as ``rtseg run --model`` takes them (None: the bundled model).
        model_options: :func:`rtseg.load_model` keywords.
        run_options: :func:`rtseg.run` keywords for every source (``track``, ``max_frames``, ``video_preset``, ...).
        board: the :class:`ProgressBoard` actor, or None.
    """

    def __init__(self, model: str | None, model_options: dict[str, Any], run_options: dict[str, Any],
                 board: Any = None) -> None:
        self.model, self.model_options, self.run_options = model, dict(model_options), dict(run_options)
        self.board = board
        self.segmenter: Any = None
        self.node = socket.gethostname()

    def ready(self, out_dir: str) -> dict[str, Any]:
        """Load the model and prove ``out_dir`` writable from this node: ``{"node", "pid"}``, or ``{"error"}``
        with one line for the user (bad weights, an out dir this node cannot write)."""
        from rtseg.scale.plan import check_out_dir

        try:
            check_out_dir(out_dir)
            sweep_scratch()
            if self.segmenter is None:
                import rtseg

                self.segmenter = rtseg.load_model(self.model, **self.model_options)
        except RtsegError as exc:
            return {"error": f"worker on {self.node}: {exc}", "node": self.node, "pid": os.getpid()}
        except Exception as exc:  # noqa: BLE001 - a library's failure while loading: one line on the driver
            LOGGER.warning("loading the model failed", exc_info=True)
            return {"error": f"worker on {self.node}: loading the model failed: {_first_line(exc)}",
                    "node": self.node, "pid": os.getpid()}
        return {"node": self.node, "pid": os.getpid(), "device": self.segmenter.device}

    def process(self, task: SourceTask, out_dir: str, attempt: int) -> SourceResult:
        """Segment ``task.source`` into ``task.outputs``; a source that fails on its own (a corrupt file) comes
        back as ``status="failed"`` with the reason, and nothing of it is left under a final name."""
        import rtseg

        started_at = time.time()
        result = SourceResult(tag=task.tag, source=task.source, status="failed", node=self.node, pid=os.getpid(),
                              attempts=attempt, started_at=started_at,
                              gpus=os.environ.get("CUDA_VISIBLE_DEVICES", ""))  # set by Ray from num_gpus
        scratch = SCRATCH / f"{task.tag}.{os.getpid()}.a{attempt}"  # this node's disk: a fetched source
        remote = storage.is_url(out_dir)  # outputs staged on this node, then uploaded
        work = scratch / "out" if remote else Path(out_dir) / STATE_DIR / f"{task.tag}.{os.getpid()}.a{attempt}"
        frames = [0]
        done = threading.Event()
        reporter = threading.Thread(target=self._report, args=(task.tag, frames, done), daemon=True)
        reporter.start()
        try:
            work.mkdir(parents=True, exist_ok=True)
            temps = {kind: work / storage.name_of(path) for kind, path in task.outputs.items()}
            if self.segmenter is None:
                self.ready(out_dir)

            def count(*_: object) -> None:
                frames[0] += 1

            source = task.source
            if storage.is_url(source):  # read from a local copy: FFmpeg seeks and rereads, an object store streams
                local, fetch_s = storage.fetch(source, scratch / "src")
                source, result.fetch_s = str(local), round(fetch_s, 3)
            options = {k: v for k, v in self.run_options.items() if k not in STREAM_ONLY or storage.is_stream(source)}
            if task.part_of:  # a part of a split source: its frames only, numbered as in the whole file
                from rtseg.scale.ranged import run_part

                options.pop("max_frames", None)  # the plan's range
                summary, ranged = run_part(self.segmenter, source, start=task.start, stop=task.stop, lead=task.lead,
                                           outputs=temps, run_options=options, on_written=count,
                                           first_ms=task.first_ms)
                summary.frames, summary.elapsed_s = frames[0], summary.elapsed_s + ranged.seek_s
                result.seek, result.seek_s = ranged.seek, round(ranged.seek_s, 3)
            elif task.segment_s:  # a live source: its parts go into the out dir while it runs
                from rtseg.scale.live import run_live

                summary, publisher = run_live(self.segmenter, task, work, out_dir, run_options=options, on_frame=count)
                result.segments = sorted(publisher.published)
                result.upload_s = round(publisher.upload_s, 3) if remote else 0.0
                write_marker(task, out_dir, parts=publisher.published)
            else:
                summary = rtseg.run([source], self.segmenter, out=temps.get("video"), jsonl=temps.get("jsonl"),
                                    on_frame=count, **options)
                if source != task.source and "jsonl" in temps:  # the records name the URL, not the local copy
                    rename_source(temps["jsonl"], source, task.source)
            if not task.segment_s:
                sizes = {kind: temp.stat().st_size for kind, temp in temps.items()}
                upload_s = sum(storage.publish(temp, task.outputs[kind]) for kind, temp in temps.items())
                result.upload_s = round(upload_s, 3) if remote else 0.0
                write_marker(task, out_dir, sizes=sizes)  # after the last output is in place
            result.status, result.frames = "ok", summary.frames
            result.elapsed_s, result.fps = summary.elapsed_s, summary.fps
            result.stages_ms = {name: {"p50": s["p50"], "p95": s["p95"]} for name, s in summary.stages_ms.items()}
        except RtsegError as exc:
            result.error = str(exc)
        except Exception as exc:  # noqa: BLE001 - a library's failure on this source: reported, the others go on
            result.error = _first_line(exc)
            LOGGER.warning("source %s failed", task.source, exc_info=True)
        finally:
            done.set()
            reporter.join(timeout=2)
            shutil.rmtree(work, ignore_errors=True)
            shutil.rmtree(scratch, ignore_errors=True)
        if result.status != "ok":
            result.frames = frames[0]
        result.finished_at = time.time()
        return result

    def _report(self, tag: str, frames: list[int], done: threading.Event) -> None:
        if self.board is None:
            return
        last = -1
        while True:
            finished = done.wait(REPORT_EVERY_S)
            if frames[0] != last:
                last = frames[0]
                self.board.report.remote(tag, last)
            if finished:
                return


SCRATCH = Path(tempfile.gettempdir()) / "rtseg-ray"  # per node: fetched sources, outputs staged for an upload


def sweep_scratch() -> None:
    """Remove the scratch folders of this node's workers that died (``<tag>.<pid>.a<attempt>``, the process gone):
    a killed worker cannot clean up after itself."""
    try:
        entries = list(SCRATCH.iterdir())
    except OSError:
        return
    for entry in entries:
        try:
            pid = int(entry.name.rsplit(".", 2)[-2])
            os.kill(pid, 0)
        except (ValueError, IndexError):
            continue
        except ProcessLookupError:
            shutil.rmtree(entry, ignore_errors=True)
        except PermissionError:  # another user's process, alive
            continue


def rename_source(jsonl: Path, old: str, new: str) -> None:
    """Rewrite the ``"source"`` of every record of ``jsonl`` from ``old`` (a fetched copy) to ``new`` (the URL)."""
    before = b'"source":' + json.dumps(old).encode()
    after = b'"source":' + json.dumps(new).encode()
    temp = jsonl.with_name(f".{jsonl.name}.renamed")
    with open(jsonl, "rb") as src, open(temp, "wb") as dst:
        for line in src:
            dst.write(line.replace(before, after, 1))
    os.replace(temp, jsonl)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0]}" if text else type(exc).__name__
