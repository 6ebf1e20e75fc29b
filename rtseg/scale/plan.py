"""What a cluster run will do, decided without Ray: each source's tag and output paths, which sources a
previous run already finished (resume), the order they go out in (longest first), how many workers the
cluster's resources allow, and the tables of the summary.

Everything here is plain Python over paths (or fsspec URLs, through :mod:`rtseg.scale.storage`) and dicts, so it
is unit-tested without a cluster.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import socket
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rtseg.errors import ConfigError, RtsegError, SinkError
from rtseg.scale import storage

STATE_DIR = ".rtseg-ray"  # inside --out-dir: attempts in progress, and a marker per finished source
SUMMARY_NAME = "cluster_summary.json"
LIVE_SEGMENT_S = 60.0  # a live source's outputs go out in parts this long unless --segment says otherwise
TABLE_STAGES = ("decode", "infer", "postprocess", "encode")  # per node; every stage is in each source's summary
_ADDRESS = re.compile(r"(?:ray://)?[\w.\-]+:\d{1,5}|auto|local")


class ClusterError(RtsegError):
    """The Ray cluster cannot be reached, lacks the resources asked for, or its workers cannot do the work."""


@dataclass(frozen=True)
class SourceTask:
    """One source as the unit of work: a worker reads ``source`` and writes ``outputs`` itself.

    Attributes:
        tag: the source's name in file names and tables (``clip`` for ``/data/clip.mp4``).
        source: what the worker opens: a path on storage every node sees, a stream URL, or an fsspec URL
            (``s3://b/clip.mp4``) the worker fetches first.
        outputs: final path (or URL) per kind (``{"video": ".../clip.mp4", "jsonl": ".../clip.jsonl"}``); for a
            live source the names its parts are numbered from (``clip_000.mp4``, ...).
        frames: frame count from the file's header, 0 when unknown (streams, unreadable files).
        key: a digest of the model and options; a finished source counts as finished only for the same key.
        start, stop: for a part of a split source (``--split``), the frames it writes, ``[start, stop)`` in the
            source's numbering (``stop`` None: to the end); a whole source is ``0, None``.
        lead: frames before ``start`` the part runs but does not write, so that its tracks are established
            when its first frame is written; their track boxes go to ``outputs["lead"]``.
        part_of: the tag of the source a part belongs to ("" for a whole source).
        first_ms: the timestamp OpenCV gives the first frame a part reads (frame ``start - lead``), from the
            container's packets: a worker seeks there and checks it landed on that frame; -1 when unknown (the
            worker then decodes from the start).
        segment_s: a live source (a stream, which never completes): its outputs are written in parts of this
            many seconds, each moved into the out dir once finished (:mod:`rtseg.scale.live`); 0 for a file.
    """

    tag: str
    source: str
    outputs: dict[str, str]
    frames: int = 0
    key: str = ""
    start: int = 0
    stop: int | None = None
    lead: int = 0
    part_of: str = ""
    first_ms: float = -1.0
    segment_s: float = 0.0


@dataclass
class SourceResult:
    """What a worker sends back for one attempt at a source: a few hundred bytes, never frames."""

    tag: str
    source: str
    status: str  # "ok", "failed", "skipped" (finished by an earlier run)
    frames: int = 0
    elapsed_s: float = 0.0
    fps: float = 0.0
    stages_ms: dict[str, dict[str, float]] = field(default_factory=dict)
    node: str = ""
    pid: int = 0
    attempts: int = 0
    error: str = ""
    started_at: float = 0.0  # wall clock (time.time) when the attempt began: comparable across processes
    finished_at: float = 0.0  # wall clock when it ended (its outputs in place)
    gpus: str = ""  # the GPUs Ray gave the worker (its CUDA_VISIBLE_DEVICES), "" on a CPU-only worker
    parts: list[dict[str, Any]] = field(default_factory=list)  # a split source's parts (--split), as dicts
    seek: str = ""  # a part: how it reached its first frame, "seek" (checked) or "decode" (from the start)
    seek_s: float = 0.0  # and the seconds that took
    fetch_s: float = 0.0  # a URL source: the seconds its worker took to copy it to a local file
    upload_s: float = 0.0  # an out dir URL: the seconds the uploads of its outputs took
    segments: list[str] = field(default_factory=list)  # a live source: the parts this attempt put in the out dir


def options_key(model: str | None, options: Mapping[str, Any]) -> str:
    """A short digest of what decides an output's content, so a rerun with other options redoes the work."""
    text = json.dumps({"model": model, **{k: options[k] for k in sorted(options)}}, default=str, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def plan_tasks(specs: Sequence[str], tags: Sequence[str], out_dir: Path | str, *, key: str = "",
               frames: Sequence[int] | None = None, segment_s: float = LIVE_SEGMENT_S) -> list[SourceTask]:
    """One task per source, longest first (ties keep the command line's order), so that a long video does
    not start last and leave the other workers idle at the end. A stream is a live source, its outputs in
    parts of ``segment_s`` seconds (which its key includes).

    Example:
        >>> tasks = plan_tasks(["a.mp4", "b.mp4", "rtsp://cam/1"], ["a", "b", "cam"], Path("out"), frames=[10, 50, 0])
        >>> [(t.tag, t.outputs["video"], t.segment_s) for t in tasks]
        [('b', 'out/b.mp4', 0.0), ('a', 'out/a.mp4', 0.0), ('cam', 'out/cam.mp4', 60.0)]
        >>> plan_tasks(["s3://in/a.mp4"], ["a"], "s3://bucket/out")[0].outputs["jsonl"]
        's3://bucket/out/a.jsonl'
    """
    counts = list(frames) if frames is not None else [0] * len(specs)
    tasks = []
    for spec, tag, n in zip(specs, tags, counts):
        live = segment_s if storage.is_stream(spec) else 0.0
        tasks.append(SourceTask(tag=tag, source=spec, frames=max(0, int(n or 0)), segment_s=live,
                                key=options_key(key, {"segment_s": live}) if live else key,
                                outputs={kind: storage.join(out_dir, f"{tag}.{ext}") for kind, ext in _KINDS}))
    return sorted(tasks, key=lambda t: -t.frames)


_KINDS = (("video", "mp4"), ("jsonl", "jsonl"))


def marker_path(out_dir: Path, tag: str) -> Path:
    """Where a finished source's marker lives: written last, after every output of it was renamed into place."""
    return Path(out_dir) / STATE_DIR / f"{tag}.done.json"


def marker_location(out_dir: Path | str, tag: str) -> str:
    """:func:`marker_path` for an out dir that may be a URL (``s3://b/out/.rtseg-ray/a.done.json``)."""
    return storage.join(out_dir, STATE_DIR, f"{tag}.done.json")


def write_marker(task: SourceTask, out_dir: Path | str, *, sizes: Mapping[str, int] | None = None,
                 parts: Mapping[str, int] | None = None) -> str:
    """Record that ``task`` is complete: its source, options key and each output's size (``sizes``, by kind;
    default: read from the outputs), or for a live source each part's (``parts``, by name in the out dir).
    Written whole (renamed into place, or one upload)."""
    if sizes is None:
        sizes = {} if parts is not None else {kind: storage.size(path) for kind, path in task.outputs.items()}
    location = marker_location(out_dir, task.tag)
    record = {"source": task.source, "key": task.key, "sizes": dict(sizes),
              **({"parts": dict(parts)} if parts is not None else {})}
    storage.write_bytes(location, json.dumps(record).encode())
    return location


def is_complete(task: SourceTask, out_dir: Path | str) -> bool:
    """Whether an earlier run finished ``task``: its marker names the same source and options, and every
    output (every part, for a live source) is there with the size the marker recorded (a file deleted or
    replaced since is redone).

    Example:
        >>> task = plan_tasks(["a.mp4"], ["a"], tmp)[0]
        >>> is_complete(task, tmp)
        False
    """
    try:
        marker = json.loads(storage.read_bytes(marker_location(out_dir, task.tag)))
        if marker.get("source") != task.source or marker.get("key") != task.key:
            return False
        if "parts" in marker:
            return bool(marker["parts"]) and all(storage.size(storage.join(out_dir, name)) == size
                                                 for name, size in marker["parts"].items())
        return (set(marker["sizes"]) == set(task.outputs)
                and all(storage.size(task.outputs[kind]) == size for kind, size in marker["sizes"].items()))
    except (OSError, ValueError, KeyError, TypeError, AttributeError, RtsegError):
        return False


def check_out_dir(out_dir: Path | str) -> None:
    """Create ``out_dir`` (and its state folder) and prove it writable, before any work: a probe file written
    and deleted (an object, when ``out_dir`` is a URL).

    Raises:
        SinkError: ``out_dir=...: cannot write there (...)``; for a URL also when fsspec or the protocol's
            package (s3fs, gcsfs, ...) is not installed.
    """
    if storage.is_url(str(out_dir)):
        storage.filesystem(str(out_dir), error=SinkError, param="out_dir=")
        probe = storage.join(out_dir, STATE_DIR, f".probe.{socket.gethostname()}.{os.getpid()}")
        try:
            storage.write_bytes(probe, b"")
            storage.remove(probe)
        except RtsegError:
            raise
        except Exception as exc:  # noqa: BLE001 - a missing bucket, no permission, no credentials: one line
            raise SinkError(f"out_dir={out_dir}: cannot write there ({storage.why(exc)}); choose a bucket and "
                            "prefix every worker can write") from None
        return
    probe = Path(out_dir) / STATE_DIR / f".probe.{socket.gethostname()}.{os.getpid()}"
    try:
        probe.parent.mkdir(parents=True, exist_ok=True)
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise SinkError(f"out_dir={out_dir}: cannot write there ({exc.strerror or exc}); "
                        "choose a folder every worker can write (shared storage)") from None


def parse_address(text: str | None, environ: Mapping[str, str] | None = None) -> str | None:
    """The Ray address to join: the given one, else ``$RAY_ADDRESS``, else None (start a local Ray for the run).

    ``auto`` joins the cluster started on this machine by ``ray start``; ``local`` always starts a new one.

    Example:
        >>> parse_address(None, {"RAY_ADDRESS": "10.0.0.5:6379"}), parse_address("local", {})
        ('10.0.0.5:6379', None)
    """
    env = os.environ if environ is None else environ
    address = (text or "").strip() or env.get("RAY_ADDRESS", "").strip() or None
    if address is None or address == "local":
        return None
    if not _ADDRESS.fullmatch(address):
        raise ConfigError(f"ray={address}: expected HOST:PORT of a Ray head (ray start --head prints it), "
                          "ray://HOST:PORT, auto or local")
    return address


def looks_like_address(text: str) -> bool:
    """Whether a command-line word after ``--ray`` is an address rather than the first source."""
    return bool(_ADDRESS.fullmatch(text)) and not Path(text).exists()


def probe_reachable(address: str, timeout_s: float = 3.0) -> None:
    """Fail fast, in one line, when nothing listens at a ``HOST:PORT`` address (Ray itself retries for a minute).

    Raises:
        ClusterError: the address refuses or does not answer.
    """
    if address == "auto":
        return
    host, _, port = address.removeprefix("ray://").rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=timeout_s):
            pass
    except OSError as exc:
        raise ClusterError(f"ray={address}: cannot reach a Ray cluster there ({exc.strerror or exc}); start one "
                           "with `ray start --head`, or give no address to start a local one for this run") from None


def plan_workers(nodes: Sequence[Mapping[str, float]], *, sources: int, workers: int | None,
                 cpus_per_worker: float, gpus_per_worker: float) -> int:
    """How many workers to start: what fits on the alive nodes' resources (``{"CPU": 8, "GPU": 2}`` each),
    at most one per source, or exactly ``workers`` when given and it fits.

    Raises:
        ClusterError: no node has the resources of one worker, or ``workers`` do not fit.

    Example:
        >>> plan_workers([{"CPU": 8, "GPU": 2}, {"CPU": 8, "GPU": 1}], sources=10, workers=None,
        ...              cpus_per_worker=1, gpus_per_worker=1)
        3
    """
    def fits(node: Mapping[str, float]) -> int:
        by_cpu = int(node.get("CPU", 0) // cpus_per_worker) if cpus_per_worker > 0 else 10**6
        by_gpu = int(node.get("GPU", 0) // gpus_per_worker) if gpus_per_worker > 0 else 10**6
        return min(by_cpu, by_gpu)

    room = sum(fits(node) for node in nodes)
    total_gpus = sum(node.get("GPU", 0) for node in nodes)
    need = f"{gpus_per_worker:g} GPU and {cpus_per_worker:g} CPU" if gpus_per_worker else f"{cpus_per_worker:g} CPU"
    if room == 0:
        if gpus_per_worker and total_gpus < gpus_per_worker:
            raise ClusterError(f"gpus_per_worker={gpus_per_worker:g}: the cluster has {total_gpus:g} GPUs "
                               f"({len(nodes)} nodes); use --gpus-per-worker 0 to run on CPUs")
        raise ClusterError(f"no node has room for one worker ({need}); lower --cpus-per-worker / --gpus-per-worker")
    if workers is not None:
        if workers > room:
            what = (f"{total_gpus:g} GPUs" if gpus_per_worker else
                    f"{sum(n.get('CPU', 0) for n in nodes):g} CPUs")
            raise ClusterError(f"workers={workers}: {workers} workers of {need} each do not fit on the cluster "
                               f"({what}, {len(nodes)} nodes); at most {room}")
        return workers
    return max(1, min(room, sources))


def node_table(results: Sequence[SourceResult]) -> list[dict[str, Any]]:
    """Per node: sources done and failed, frames, the node's FPS (its frames over its workers' busy time) and
    per-stage latency (p50: the median of its sources' p50, p95: the worst of their p95)."""
    rows = []
    for node in sorted({r.node for r in results if r.node}):
        mine = [r for r in results if r.node == node]
        ok = [r for r in mine if r.status == "ok"]
        busy_s = sum(r.elapsed_s for r in ok)
        frames = sum(r.frames for r in ok)
        stages: dict[str, dict[str, float]] = {}
        for name in [s for s in TABLE_STAGES if any(s in r.stages_ms for r in ok)]:
            p50s = [r.stages_ms[name]["p50"] for r in ok if name in r.stages_ms]
            p95s = [r.stages_ms[name]["p95"] for r in ok if name in r.stages_ms]
            stages[name] = {"p50": statistics.median(p50s), "p95": max(p95s)}
        rows.append({"node": node, "sources": len(ok), "failed": sum(r.status == "failed" for r in mine),
                     "frames": frames, "busy_s": round(busy_s, 3), "fps": round(frames / busy_s, 2) if busy_s else 0.0,
                     "stages_ms": stages})
    return rows


def format_tables(results: Sequence[SourceResult], nodes: Sequence[Mapping[str, Any]]) -> str:
    """The end-of-run tables: one row per source (status, frames, FPS, attempts, node, infer p50/p95, error),
    each part of a split source indented below it, and one row per node."""
    rows = []
    for r in results:
        rows.append((r.tag, r))
        rows += [("  " + p["tag"].rsplit(".", 1)[-1], SourceResult(**p)) for p in r.parts]
    width = max([6, *(len(name) for name, _ in rows)])
    lines = [f"{'source':<{width}}  {'status':<7}{'frames':>7}{'FPS':>8}{'tries':>6}  {'infer p50/p95 ms':<17} node"]
    for name, r in rows:
        infer = r.stages_ms.get("infer")
        lat = f"{infer['p50']:.1f}/{infer['p95']:.1f}" if infer else "-"
        lines.append(f"{name:<{width}}  {r.status:<7}{r.frames:>7}{r.fps:>8.1f}{r.attempts:>6}  {lat:<17} "
                     f"{r.node or '-'}" + (f"  {r.error}" if r.error else ""))
    if nodes:
        nwidth = max([4, *(len(n["node"]) for n in nodes)])
        lines.append(f"{'node':<{nwidth}}  {'sources':>7}{'failed':>7}{'frames':>8}{'FPS':>8}  stages p50/p95 ms")
        for n in nodes:
            stages = ", ".join(f"{k} {v['p50']:.1f}/{v['p95']:.1f}" for k, v in n["stages_ms"].items())
            lines.append(f"{n['node']:<{nwidth}}  {n['sources']:>7}{n['failed']:>7}{n['frames']:>8}{n['fps']:>8.1f}  "
                         f"{stages}")
    return "\n".join(lines)
