"""The driver of a cluster run: join (or start) Ray, check what was asked against the cluster, start the
workers, hand them whole sources from a pool (longest first, the next to whichever worker is free), retry a
source whose worker died, and gather the small summaries into ``cluster_summary.json``.

Ray is imported here and only here, when a cluster run is asked for; fsspec only when a source or the out dir
is a URL (:mod:`rtseg.scale.storage`).
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from rtseg.errors import ConfigError, SinkError
from rtseg.scale import storage
from rtseg.scale.plan import (
    LIVE_SEGMENT_S,
    STATE_DIR,
    SUMMARY_NAME,
    ClusterError,
    SourceResult,
    SourceTask,
    check_out_dir,
    is_complete,
    node_table,
    options_key,
    parse_address,
    plan_tasks,
    plan_workers,
    probe_reachable,
)
from rtseg.scale.split import PARTS_DIR, expand_splits, finish_split

LOGGER = logging.getLogger(__name__)
POLL_S = 0.25  # how often the driver looks at the workers' progress while it waits


@dataclass
class ClusterSummary:
    """What a cluster run did: one :class:`~rtseg.scale.plan.SourceResult` per source, the per-node table,
    and each retry (when the driver saw the worker's death, when the source went out again)."""

    address: str
    workers: int
    elapsed_s: float
    sources: list[SourceResult] = field(default_factory=list)
    nodes: list[dict[str, Any]] = field(default_factory=list)
    retries: list[dict[str, Any]] = field(default_factory=list)
    interrupted: bool = False

    @property
    def failed(self) -> list[SourceResult]:
        return [r for r in self.sources if r.status == "failed"]

    def to_json(self) -> dict[str, Any]:
        return {"address": self.address, "workers": self.workers, "elapsed_s": round(self.elapsed_s, 3),
                "interrupted": self.interrupted, "frames": sum(r.frames for r in self.sources if r.status == "ok"),
                "failed": len(self.failed), "sources": [asdict(r) for r in self.sources], "nodes": self.nodes,
                "retries": self.retries}


def _probe_frames(spec: str) -> int:
    """The header's frame count when this machine can open the file (to send long videos first); else 0."""
    if "://" in spec or not Path(spec).is_file():
        return 0
    import cv2

    capture = cv2.VideoCapture(spec)
    try:
        return max(0, int(capture.get(cv2.CAP_PROP_FRAME_COUNT) or 0)) if capture.isOpened() else 0
    finally:
        capture.release()


def run_on_ray(sources: Sequence[str], out_dir: str | Path, *, address: str | None = None, model: str | None = None,
               model_options: dict[str, Any] | None = None, run_options: dict[str, Any] | None = None,
               workers: int | None = None, cpus_per_worker: float = 1.0, gpus_per_worker: float | None = None,
               retries: int = 2, object_store_bytes: int | None = None, split_s: float | None = None,
               segment_s: float | None = None, on_start: Callable[[int, int, int], None] | None = None,
               on_progress: Callable[[int, int], None] | None = None) -> ClusterSummary:
    """Segment every source on a Ray cluster, one whole source per worker at a time, outputs in ``out_dir``.

    Args:
        sources: video files (on storage every node sees under the same path, or fsspec URLs such as
            ``s3://bucket/a.mp4``, which each worker fetches; a URL with ``*`` is a glob) or stream URLs.
        out_dir: where each source's ``<tag>.mp4`` and ``<tag>.jsonl`` go, and ``cluster_summary.json``: a
            folder every node sees, or an fsspec URL (``s3://bucket/out``) the workers upload to.
        address: a Ray head's ``HOST:PORT`` (or ``ray://``, ``auto``); None: ``$RAY_ADDRESS``, else a Ray
            started on this machine for the run; ``local``: always that.
        model, model_options: what :func:`rtseg.load_model` takes; each worker loads it once.
        run_options: :func:`rtseg.run` keywords applied to every source (``track``, ``max_frames``, ...).
        workers: how many; default as many as the resources allow, at most one per source.
        cpus_per_worker, gpus_per_worker: each worker's Ray resources (``num_cpus``, ``num_gpus``; fractions
            share a GPU). ``gpus_per_worker`` None: 1 when the cluster has GPUs, else 0.
        retries: times a source is sent again after its worker died (a node lost, a process killed). A source
            that fails on its own (a corrupt file) is not retried.
        split_s: cut each video file longer than this many seconds into parts run on several workers at once and
            joined (:mod:`rtseg.scale.split`); a part is retried, and resumed, like a source. Not with URLs.
        segment_s: a live source (a stream) writes its outputs in parts this long, each put in ``out_dir`` once
            finished (:mod:`rtseg.scale.live`); default :data:`~rtseg.scale.plan.LIVE_SEGMENT_S`.
        on_start: called once the workers are ready with (total frames or 0, sources to do, sources skipped).
        on_progress: called with (frames done, sources finished) a few times a second.

    Returns:
        A :class:`ClusterSummary`, also written to ``out_dir/cluster_summary.json``. Sources finished by an
        earlier run with the same options are ``skipped``.

    Raises:
        ClusterError, SinkError, SourceError, ConfigError: before any source is sent, in one line: an unreachable
            address, GPUs the cluster does not have, an ``out_dir`` this machine or a worker cannot write, a URL
            source that is not there, a URL protocol whose package is not installed, bad weights.
    """
    from rtseg.pipeline.assemble import source_tags

    specs = [_spec(str(s)) for s in sources]
    if not specs:
        raise ConfigError("sources: give at least one video or stream")
    if retries < 0:
        raise ConfigError(f"retries={retries}: expected 0 or more")
    if cpus_per_worker < 0 or (gpus_per_worker or 0) < 0 or (workers is not None and workers < 1):
        raise ConfigError("cpus_per_worker, gpus_per_worker: expected 0 or more; workers: 1 or more")
    out_text = storage.local_path(str(out_dir))
    out: Path | str = out_text.rstrip("/") if storage.is_url(out_text) else Path(out_text).expanduser().absolute()
    for spec, param in [*((s, "") for s in specs), (str(out), "out_dir=")]:
        if storage.scheme(spec) == "memory":
            raise ConfigError(f"{param}{spec}: memory:// is each process's own memory, which the workers do not "
                              "share; use a bucket (s3://, gs://) or shared storage")
    if split_s and (isinstance(out, str) or any(storage.is_url(s) for s in specs)):
        raise ConfigError(f"split={split_s:g}s: not with URLs; it needs video files this machine reads (to count their "
                          "frames) and an out dir it sees as a folder (to join the parts): run without --split")
    if segment_s is not None and not any(storage.is_stream(s) for s in specs):
        raise ConfigError(f"segment={segment_s:g}s: on a cluster it cuts live streams' outputs into parts; video "
                          "files get one output each (split shares a long one among workers)")
    check_out_dir(out)  # before Ray starts: this machine's view of it
    specs = storage.expand_sources(specs)  # URL sources there and readable, globs listed: before Ray starts
    model_options, run_options = dict(model_options or {}), dict(run_options or {})
    keyed = {k: v for k, v in run_options.items() if k not in ("reconnect", "stall_timeout")}  # no effect on outputs
    key = options_key(model, {**model_options, **keyed, **({"split_s": split_s} if split_s else {})})
    tags = source_tags([storage.tag_spec(s) for s in specs])
    tasks = plan_tasks(specs, tags, out, key=key, frames=[_probe_frames(s) for s in specs],
                       segment_s=segment_s or LIVE_SEGMENT_S)
    joined = parse_address(address)
    start_ns = time.perf_counter_ns()
    splits = expand_splits(tasks, Path(out), split_s=split_s, run_options=run_options) if split_s else {}
    skipped = {t.tag: SourceResult(tag=t.tag, source=t.source, status="skipped") for t in tasks
               if t.tag not in splits and is_complete(t, out)}
    leaves = [t for t in tasks if t.tag not in splits] + [p for parts in splits.values() for p in parts]
    todo = sorted((t for t in leaves if t.tag not in skipped and not is_complete(t, out)), key=lambda t: -t.frames)
    results: dict[str, SourceResult] = {}
    count, retries_log = 0, []
    if todo:
        count, results, retries_log = _run_pool(todo, out, joined, len(skipped), model=model,
                                                model_options=model_options, run_options=run_options,
                                                workers=workers, cpus_per_worker=cpus_per_worker,
                                                gpus_per_worker=gpus_per_worker, retries=retries,
                                                object_store_bytes=object_store_bytes, on_start=on_start,
                                                on_progress=on_progress)
    elif on_start is not None:  # everything done by an earlier run: no cluster needed
        on_start(0, 0, len(skipped))
    rows = {**skipped, **results}
    for task in tasks:
        if task.tag in splits:  # its parts done, now or before: joined here
            rows[task.tag] = finish_split(task, splits[task.tag], results, Path(out))  # a folder: see above
    ordered = [rows[tag] for tag in tags]  # the command line's order
    ran = [r for r in ordered if not r.parts] + [SourceResult(**p) for r in ordered for p in r.parts]
    summary = ClusterSummary(address=joined or "local", workers=count, sources=ordered, nodes=node_table(ran),
                             elapsed_s=(time.perf_counter_ns() - start_ns) / 1e9, retries=retries_log)
    _write_summary(out, summary)
    return summary


def _spec(text: str) -> str:
    """A source as the workers get it: ``file://`` URLs as paths, and a relative path this machine sees made
    absolute (a worker runs in a folder of its own)."""
    text = storage.local_path(text)
    return str(Path(text).absolute()) if "://" not in text and Path(text).exists() else text


def _run_pool(todo: list[SourceTask], out: Path | str, address: str | None, skipped: int, *, model: str | None,
              model_options: dict[str, Any], run_options: dict[str, Any], workers: int | None,
              cpus_per_worker: float, gpus_per_worker: float | None, retries: int, object_store_bytes: int | None,
              on_start: Callable[[int, int, int], None] | None,
              on_progress: Callable[[int, int], None] | None) -> tuple[int, dict[str, SourceResult], list[dict]]:
    """Start the workers on the cluster (joined, or started for this run unless Ray is already initialized in
    this process) and run ``todo``: (workers, result per tag, retries)."""
    if address is not None:
        probe_reachable(address)
    import ray

    own = not ray.is_initialized()  # rtseg bench --ray keeps one Ray for all its runs
    if own:
        _init_ray(ray, address, object_store_bytes)
    actors: list[Any] = []
    try:
        nodes = [n.get("Resources", {}) for n in ray.nodes() if n.get("Alive")]
        if gpus_per_worker is None:
            gpus_per_worker = 1.0 if any(n.get("GPU", 0) for n in nodes) else 0.0
        count = plan_workers(nodes, sources=max(1, len(todo)), workers=workers, cpus_per_worker=cpus_per_worker,
                             gpus_per_worker=gpus_per_worker)
        pool = _Pool(ray, out, model, model_options, run_options, cpus_per_worker, gpus_per_worker, retries)
        pool.start(count)
        actors = pool.actors
        pool.wait_ready()  # bad weights, an out dir a node cannot write: one line, before any source
        if on_start is not None:
            cap = 0 if any(t.part_of for t in todo) else run_options.get("max_frames") or 0
            total = sum(min(t.frames, cap) if cap else t.frames for t in todo) if all(t.frames for t in todo) else 0
            on_start(total, len(todo), skipped)
        results = pool.run(todo, on_progress)
        actors = pool.actors
        return count, results, pool.retry_log
    finally:
        for actor in actors:
            ray.kill(actor, no_restart=True)
        _clean_attempts(out)
        if own:
            ray.shutdown()


def _init_ray(ray: Any, address: str | None, object_store_bytes: int | None) -> None:
    options: dict[str, Any] = {"include_dashboard": False, "logging_level": logging.ERROR, "log_to_driver": False,
                               "configure_logging": True}
    try:
        if address is None:  # a Ray of this machine, for this run only
            ray.init(object_store_memory=object_store_bytes or 200_000_000, **options)
        else:
            ray.init(address=address, **options)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ClusterError(f"ray={address or 'local'}: cannot join the Ray cluster: {first}") from None


def _write_summary(out: Path | str, summary: ClusterSummary) -> None:
    text = json.dumps(summary.to_json(), indent=2) + "\n"
    if isinstance(out, str):  # a URL: one upload
        try:
            storage.write_bytes(storage.join(out, SUMMARY_NAME), text.encode())
        except Exception as exc:  # noqa: BLE001 - lost credentials, a deleted bucket: one line
            raise SinkError(f"cannot write cluster summary {storage.join(out, SUMMARY_NAME)}: {storage.why(exc)}") \
                from None
        return
    from rtseg.sinks.atomic import write_bytes

    write_bytes(out / SUMMARY_NAME, text, what="cluster summary")


def _clean_attempts(out: Path | str) -> None:
    """Attempt folders of workers that died (their outputs never reached a final name); markers, and the
    finished parts of split sources not joined yet, stay. (With an out dir URL they are on the workers' disks,
    and each worker removes those of dead ones when it starts.)"""
    if isinstance(out, str):
        return
    state = out / STATE_DIR
    if state.is_dir():
        for entry in state.iterdir():
            if entry.is_dir() and entry.name != PARTS_DIR:
                shutil.rmtree(entry, ignore_errors=True)


class _Pool:
    """Workers and the sources in flight (as ``ray.util.ActorPool`` does, plus retries and replacements)."""

    def __init__(self, ray: Any, out: Path | str, model: str | None, model_options: dict[str, Any],
                 run_options: dict[str, Any], cpus: float, gpus: float, retries: int) -> None:
        from rtseg.scale.worker import ProgressBoard, SourceWorker

        self.ray, self.out, self.retries = ray, out, retries
        self.args = (model, model_options, run_options)
        self.worker_cls = ray.remote(max_restarts=0, max_task_retries=0)(SourceWorker).options(
            num_cpus=cpus, num_gpus=gpus)
        self.board = ray.remote(ProgressBoard).options(num_cpus=0).remote()
        self.actors: list[Any] = []
        self.retry_log: list[dict[str, Any]] = []
        self.t0 = time.perf_counter_ns()
        self.replacements = 0
        self.max_replacements = 0  # set by run(): a worker that dies on every start is not replaced forever

    def _seconds(self) -> float:
        return round((time.perf_counter_ns() - self.t0) / 1e9, 3)

    def _new_actor(self) -> Any:
        actor = self.worker_cls.remote(*self.args, board=self.board)
        self.actors.append(actor)
        return actor

    def start(self, count: int) -> None:
        for _ in range(count):
            self._new_actor()

    def wait_ready(self) -> None:
        for info in self._get([a.ready.remote(str(self.out)) for a in self.actors]):
            if "error" in info:
                raise ClusterError(info["error"])

    def _get(self, refs: list[Any]) -> list[Any]:
        try:
            return self.ray.get(refs)
        except self.ray.exceptions.RayActorError as exc:
            raise ClusterError(f"a worker died while loading the model: {_first_line(exc)}") from None
        except self.ray.exceptions.RayTaskError as exc:  # raised in a worker outside what it reports itself
            raise ClusterError(f"a worker failed: {_cause(exc)}") from None

    def run(self, tasks: list[SourceTask], on_progress: Callable[[int, int], None] | None) -> dict[str, SourceResult]:
        queue: deque[tuple[SourceTask, int]] = deque((t, 1) for t in tasks)
        self.max_replacements = len(self.actors) + len(tasks) * (self.retries + 1)
        idle = list(self.actors)
        flying: dict[Any, tuple[str, Any, SourceTask | None, int]] = {}  # ref -> (kind, actor, task, attempt)
        results: dict[str, SourceResult] = {}
        last_frames = -1
        while queue or flying:
            while queue and idle:
                task, attempt = queue.popleft()
                actor = idle.pop(0)
                ref = actor.process.remote(task, str(self.out), attempt)
                flying[ref] = ("task", actor, task, attempt)
                if attempt > 1:
                    self.retry_log[_last_index(self.retry_log, task.tag)]["dispatched_s"] = self._seconds()
            done, _ = self.ray.wait(list(flying), num_returns=1, timeout=POLL_S)
            for ref in done:
                kind, actor, task, attempt = flying.pop(ref)
                try:
                    value = self.ray.get(ref)
                except self.ray.exceptions.RayTaskError as exc:  # not from the source: the worker's own code
                    raise ClusterError(f"a worker failed: {_cause(exc)}") from None
                except self.ray.exceptions.RayActorError as exc:
                    self.actors.remove(actor)
                    if task is not None:
                        self._died(task, attempt, exc, queue, results)
                    if self.replacements < self.max_replacements:  # as many workers as before, wherever there is room
                        self.replacements += 1
                        replacement = self._new_actor()
                        flying[replacement.ready.remote(str(self.out))] = ("ready", replacement, None, 0)
                    continue
                if kind == "ready":
                    if "error" in value:
                        raise ClusterError(value["error"])
                    idle.append(actor)
                    continue
                results[value.tag] = value
                idle.append(actor)
            if queue and not idle and not flying:  # every worker died and none may replace it
                for task, attempt in queue:
                    results[task.tag] = SourceResult(tag=task.tag, source=task.source, status="failed",
                                                     attempts=attempt - 1, error="no worker left to run it")
                queue.clear()
            if on_progress is not None:
                frames = sum(self.ray.get(self.board.snapshot.remote()).values())
                if frames != last_frames or done:
                    last_frames = frames
                    on_progress(frames, len(results))
        return results

    def _died(self, task: SourceTask, attempt: int, exc: BaseException, queue: deque,
              results: dict[str, SourceResult]) -> None:
        seen = self._seconds()
        LOGGER.warning("worker died on %s (attempt %d): %s", task.source, attempt, _first_line(exc))
        self.retry_log.append({"tag": task.tag, "attempt": attempt, "death_seen_s": seen, "dispatched_s": None})
        if attempt > self.retries:
            results[task.tag] = SourceResult(tag=task.tag, source=task.source, status="failed", attempts=attempt,
                                             error=f"its worker died {attempt} times (--retries {self.retries})")
        else:
            queue.appendleft((task, attempt + 1))  # next out, on whichever worker is free first


def _last_index(log: list[dict[str, Any]], tag: str) -> int:
    return max(i for i, entry in enumerate(log) if entry["tag"] == tag)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _cause(exc: BaseException) -> str:
    """``TypeError: ...``: what a worker raised, without Ray's wrapping (its own first line names the actor)."""
    cause = getattr(exc, "cause", None) or exc
    return f"{type(cause).__name__}: {_first_line(cause)}"
