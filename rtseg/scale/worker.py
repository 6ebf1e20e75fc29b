"""A cluster worker: loads the model once through the front door, then segments whole sources handed to it.

:class:`SourceWorker` is a plain class; :mod:`rtseg.scale.cluster` makes it a Ray actor. Each source is
written into an attempt folder of its own, ``OUT_DIR/.rtseg-ray/<tag>.<pid>.a<attempt>/``, renamed into
``OUT_DIR`` once complete, and then marked done (:func:`rtseg.scale.plan.write_marker`): a worker killed half way
leaves only its attempt folder, which the driver removes at the end, never half a file under a final name.
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import threading
import time
from pathlib import Path
from typing import Any

from rtseg.errors import RtsegError
from rtseg.scale.plan import STATE_DIR, SourceResult, SourceTask, write_marker

LOGGER = logging.getLogger(__name__)
REPORT_EVERY_S = 0.5  # frames reported to the driver's progress bar at most this often


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
            check_out_dir(Path(out_dir))
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
        work = Path(out_dir) / STATE_DIR / f"{task.tag}.{os.getpid()}.a{attempt}"
        frames = [0]
        done = threading.Event()
        reporter = threading.Thread(target=self._report, args=(task.tag, frames, done), daemon=True)
        reporter.start()
        try:
            work.mkdir(parents=True, exist_ok=True)
            temps = {kind: work / Path(path).name for kind, path in task.outputs.items()}
            if self.segmenter is None:
                self.ready(out_dir)

            def count(*_: object) -> None:
                frames[0] += 1

            summary = rtseg.run([task.source], self.segmenter, out=temps.get("video"), jsonl=temps.get("jsonl"),
                                on_frame=count, **self.run_options)
            for kind, temp in temps.items():  # each rename atomic; the marker after the last one
                os.replace(temp, task.outputs[kind])
            write_marker(task, Path(out_dir))
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
        if result.status != "ok":
            result.frames = frames[0]
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


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0]}" if text else type(exc).__name__
