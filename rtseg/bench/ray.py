"""``rtseg bench --ray``: the scaling curve of a Ray cluster, from the summaries of ``rtseg run --ray`` runs with
1, 2, ... N workers over the same sources (:func:`rtseg.scale.bench.bench_on_ray` runs them).

Here only what is made of those summaries: one row per worker count (:func:`scaling_row`), the text table
(:func:`format_scaling`) and the figure (:func:`plot_scaling`). No Ray: the summaries are plain dicts
(``cluster_summary.json``).
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from rtseg.sinks.atomic import save_figure

STAGES = ("decode", "infer", "postprocess", "encode")


def _leaves(summary: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """What the workers ran: the whole sources, and the parts of split ones."""
    out: list[Mapping[str, Any]] = []
    for source in summary["sources"]:
        out += source.get("parts") or [source]
    return [s for s in out if s["status"] == "ok"]


def busy_span_s(summary: Mapping[str, Any]) -> float:
    """Seconds from the first source's start on a worker to the last one's end (wall clock, across nodes): the
    time the cluster spent on the frames, without Ray's start and the model loads.

    Example:
        >>> busy_span_s({"sources": [{"status": "ok", "started_at": 10.0, "elapsed_s": 4.0},
        ...                          {"status": "ok", "started_at": 11.0, "elapsed_s": 5.0}]})
        6.0
    """
    ran = _leaves(summary)
    if not ran:
        return 0.0
    return (max(s.get("finished_at") or s["started_at"] + s["elapsed_s"] for s in ran)
            - min(s["started_at"] for s in ran))


def scaling_row(workers: int, summaries: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """One worker count's row from its repeated runs' ``cluster_summary.json``: the run of median FPS, its
    frames, busy span, wall time (with the workers' start and model loads) and per-node stage p50/p95.

    Example:
        >>> s = {"frames": 120, "elapsed_s": 9.0, "failed": 0, "nodes": [], "sources": [
        ...     {"status": "ok", "started_at": 0.0, "elapsed_s": 3.0, "frames": 120}]}
        >>> row = scaling_row(2, [s])
        >>> row["workers"], row["fps"], row["wall_s"]
        (2, 40.0, 9.0)
    """
    runs = []
    for summary in summaries:
        span = busy_span_s(summary)
        runs.append({"frames": summary["frames"], "busy_s": round(span, 3), "wall_s": round(summary["elapsed_s"], 3),
                     "fps": round(summary["frames"] / span, 2) if span > 0 else 0.0, "failed": summary["failed"],
                     "nodes": summary["nodes"]})
    median_fps = statistics.median(r["fps"] for r in runs)
    chosen = min(runs, key=lambda r: abs(r["fps"] - median_fps))
    return {"workers": workers, "fps": chosen["fps"], "frames": chosen["frames"], "busy_s": chosen["busy_s"],
            "wall_s": chosen["wall_s"], "failed": chosen["failed"], "nodes": chosen["nodes"],
            "runs": [{k: r[k] for k in ("fps", "busy_s", "wall_s")} for r in runs]}


def add_speedup(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each row's speed-up over the fewest workers measured, scaled to one worker, and its efficiency
    (speed-up per worker: 1.0 is linear scaling)."""
    if not rows:
        return rows
    base = min(rows, key=lambda r: r["workers"])
    per_worker = base["fps"] / base["workers"] if base["workers"] else 0.0
    for row in rows:
        row["speedup"] = round(row["fps"] / per_worker, 2) if per_worker else 0.0
        row["efficiency"] = round(row["speedup"] / row["workers"], 2) if row["workers"] else 0.0
    return rows


def _stage_p50(row: Mapping[str, Any], stage: str) -> float:
    values = [n["stages_ms"][stage]["p50"] for n in row["nodes"] if stage in n.get("stages_ms", {})]
    return statistics.median(values) if values else 0.0


def format_scaling(report: Mapping[str, Any]) -> str:
    """The scaling table: per worker count, aggregate FPS, speed-up, efficiency, busy and wall time, and the
    nodes' stage p50/p95."""
    lines = [f"{'workers':>7}{'FPS':>9}{'speedup':>9}{'eff.':>6}{'busy s':>8}{'wall s':>8}  node: stages p50/p95 ms"]
    for row in report["rows"]:
        nodes = row["nodes"] or [{"node": "-", "stages_ms": {}}]
        for i, node in enumerate(nodes):
            stages = ", ".join(f"{k} {v['p50']:.1f}/{v['p95']:.1f}" for k, v in node.get("stages_ms", {}).items())
            head = " " * 47
            if i == 0:
                head = (f"{row['workers']:>7}{row['fps']:>9.1f}{row.get('speedup', 0):>9.2f}"
                        f"{row.get('efficiency', 0):>6.2f}{row['busy_s']:>8.1f}{row['wall_s']:>8.1f}")
            lines.append(f"{head}  {node['node']}: {stages}")
    return "\n".join(lines)


def plot_scaling(report: Mapping[str, Any], path: Path) -> Path:
    """The scaling curve (aggregate FPS against workers, with linear scaling from the first row) and the
    per-stage p50 latency on the nodes at each worker count, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    rows = sorted(report["rows"], key=lambda r: r["workers"])
    workers = [r["workers"] for r in rows]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.5))
    ax1.plot(workers, [r["fps"] for r in rows], "o-", label="measured")
    if rows and rows[0]["workers"]:
        per_worker = rows[0]["fps"] / rows[0]["workers"]
        ax1.plot(workers, [per_worker * w for w in workers], "--", color="0.5", label="linear")
    ax1.set_xlabel("Ray workers")
    ax1.set_ylabel("frames per second (cluster)")
    ax1.set_xticks(workers)
    ax1.set_title("scaling")
    ax1.legend(fontsize=8)
    x = np.arange(len(rows))
    width = 0.8 / len(STAGES)
    for i, stage in enumerate(STAGES):
        ax2.bar(x + (i - (len(STAGES) - 1) / 2) * width, [_stage_p50(r, stage) for r in rows], width, label=stage)
    ax2.set_xticks(x, [str(w) for w in workers])
    ax2.set_xlabel("Ray workers")
    ax2.set_ylabel("ms per frame (p50, median over nodes)")
    ax2.set_title("stages on the nodes")
    ax2.legend(fontsize=8)
    fig.tight_layout()
    return save_figure(fig, path, dpi=100)
