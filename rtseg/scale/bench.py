"""``rtseg bench --ray``: the same sources through ``rtseg run --ray`` with 1, 2, ... N workers, one Ray for all
the runs, each run into a fresh out dir (no resume), and a scaling curve made of their summaries
(:mod:`rtseg.bench.ray`).
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from rtseg.bench.ray import add_speedup, scaling_row
from rtseg.errors import ConfigError
from rtseg.scale.plan import ClusterError, parse_address, plan_workers, probe_reachable

LOGGER = logging.getLogger(__name__)


def default_worker_counts(room: int) -> list[int]:
    """1, 2, 4, ... up to ``room`` workers, and ``room`` itself.

    Example:
        >>> default_worker_counts(6), default_worker_counts(1)
        ([1, 2, 4, 6], [1])
    """
    counts = [1]
    while counts[-1] * 2 < room:
        counts.append(counts[-1] * 2)
    return counts + [room] if room > counts[-1] else counts


def bench_on_ray(sources: Sequence[str], *, address: str | None = None, worker_counts: Sequence[int] | None = None,
                 copies: int | None = None, out_dir: str | Path | None = None, model: str | None = None,
                 model_options: dict[str, Any] | None = None, run_options: dict[str, Any] | None = None,
                 repeats: int = 1, cpus_per_worker: float = 1.0, gpus_per_worker: float | None = None,
                 split_s: float | None = None, progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Run ``sources`` on the cluster with each worker count and measure the cluster's aggregate FPS.

    Args:
        sources: video files every node sees under the same path.
        address: as :func:`rtseg.scale.cluster.run_on_ray`; None: ``$RAY_ADDRESS``, else a Ray started here
            for the benchmark (once, for every run).
        worker_counts: default 1, 2, 4, ... up to what the cluster's resources fit.
        copies: the sources are repeated until there are this many (default: the most workers measured), so
            every worker count has the same frames to do and enough sources to keep its workers busy.
        out_dir: where the runs write (a folder every node sees); default a temporary folder on this machine.
            Each run writes into a fresh subfolder, removed after it.
        repeats: runs per worker count; the row is the run of median FPS.
        split_s: ``--split``: cut each source into parts (one long video across the workers).

    Returns:
        ``{"rows": [one per worker count: workers, fps, speedup, efficiency, frames, busy_s, wall_s, nodes,
        runs], "sources": ..., "address": ...}``.

    Raises:
        ClusterError, ConfigError, SinkError: one line, before any run (as ``rtseg run --ray``).
    """
    from rtseg.scale.cluster import _init_ray, run_on_ray

    if not sources:
        raise ConfigError("sources: give at least one video file to benchmark on")
    if repeats < 1 or any(w < 1 for w in worker_counts or ()):
        raise ConfigError("repeats, workers: expected 1 or more")
    say = progress or (lambda _msg: None)
    joined = parse_address(address)
    if joined is not None:
        probe_reachable(joined)
    own_dir = out_dir is None
    root = Path(tempfile.mkdtemp(prefix="rtseg-bench-ray-")) if own_dir else Path(out_dir).expanduser().absolute()
    import ray

    _init_ray(ray, joined, None)
    try:
        nodes = [n.get("Resources", {}) for n in ray.nodes() if n.get("Alive")]
        gpus = gpus_per_worker if gpus_per_worker is not None else (1.0 if any(n.get("GPU") for n in nodes) else 0.0)
        room = plan_workers(nodes, sources=10**6, workers=None, cpus_per_worker=cpus_per_worker, gpus_per_worker=gpus)
        counts = sorted(set(worker_counts)) if worker_counts else default_worker_counts(room)
        if counts[-1] > room:
            raise ClusterError(f"ray_workers={counts[-1]}: at most {room} workers of {cpus_per_worker:g} CPU"
                               + (f" and {gpus:g} GPU" if gpus else "") + f" each fit on the cluster ({len(nodes)} "
                               "nodes)")
        specs = [str(s) for s in sources]
        many = max(copies or counts[-1], len(specs))
        specs = [specs[i % len(specs)] for i in range(many)]
        rows = []
        for count in counts:
            summaries = []
            for attempt in range(repeats):
                say(f"{count} worker{'s' if count > 1 else ''}, run {attempt + 1}/{repeats}: {len(specs)} sources")
                folder = root / f"w{count}-r{attempt + 1}"
                try:
                    summary = run_on_ray(specs, folder, address=joined, model=model, model_options=model_options,
                                         run_options=run_options, workers=count, cpus_per_worker=cpus_per_worker,
                                         gpus_per_worker=gpus, retries=0, split_s=split_s)
                    if summary.failed:
                        first = summary.failed[0]
                        raise ClusterError(f"{first.tag}: {first.error}")
                    summaries.append(json.loads(json.dumps(summary.to_json())))
                finally:
                    shutil.rmtree(folder, ignore_errors=True)
            rows.append(scaling_row(count, summaries))
            say(f"{count} workers: {rows[-1]['fps']:.1f} FPS over {rows[-1]['frames']} frames")
        return {"address": joined or "local", "sources": specs, "split_s": split_s, "repeats": repeats,
                "cpus_per_worker": cpus_per_worker, "gpus_per_worker": gpus, "cluster": _cluster(nodes),
                "rows": add_speedup(rows)}
    finally:
        ray.shutdown()
        if own_dir:
            shutil.rmtree(root, ignore_errors=True)


def _cluster(nodes: Sequence[dict[str, float]]) -> dict[str, Any]:
    return {"nodes": len(nodes), "cpus": sum(n.get("CPU", 0) for n in nodes),
            "gpus": sum(n.get("GPU", 0) for n in nodes)}
