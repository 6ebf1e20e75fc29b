"""How ``rtseg bench`` shows a report: the text table (:func:`format_table`) and the figure (:func:`plot`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from rtseg.sinks.atomic import save_figure

PARTS = ("decode", "preprocess", "infer", "semantic", "postprocess", "overlay", "encode", "serve", "queue_wait")


def _row_label(row: dict) -> str:
    extra = (" fp16" if row.get("half") else "") + (" dev-frames" if row.get("frame_path") == "device" else "")
    w, h = row.get("input_wh", row["imgsz"][::-1])
    precision = f" {row['precision']}" if row.get("precision", "fp32") != "fp32" else ""
    return (f"{row['backend']} ({row['backend_class']}) {w}x{h} b{row['batch']} "
            f"w{row['workers']} {row.get('video_preset', '')}{extra}{precision}")


def format_table(report: dict) -> str:
    """A plain-text summary: one line per configuration, then the per-stage p50/p95/p99."""
    accuracy = any("accuracy" in row for row in report["configs"])
    lines = [f"{'configuration':<62}{'model-only':>11}{'end-to-end':>11}{'e2e/model':>10}{'model CPU':>10}"
             f"{'1st frame':>10}" + (f"{'vs UL save':>11}" if report["ultralytics"] else "")
             + (f"{'box/mask mAP50':>16}" if accuracy else "")]
    for row in report["configs"]:
        line = f"{_row_label(row):<62}{row['model_only']['fps']:>11.1f}{row['end_to_end']['fps']:>11.1f}"
        line += f"{row['e2e_vs_model_only']:>10.2f}{row['model_cpu_share']:>10.2f}"
        line += f"{row.get('launch', {}).get('first_frame_s', float('nan')):>9.2f}s"
        if report["ultralytics"]:
            line += f"{row['e2e_vs_ultralytics_save']:>10.2f}x"
        if "accuracy" in row:
            line += f"{row['accuracy']['box_mAP50']:>9.3f}/{row['accuracy']['mask_mAP50']:.3f}"
        lines.append(line)
    fp32 = {(r["backend"], tuple(r["imgsz"]), r["batch"]): r for r in report["configs"]
            if r.get("precision", "fp32") == "fp32"}
    for row in report["configs"]:  # INT8 against the FP32 row of the same configuration
        base = fp32.get((row["backend"], tuple(row["imgsz"]), row["batch"]))
        if row.get("precision", "fp32") != "fp32" and base is not None:
            lines.append(f"{row['precision']} vs fp32 ({_row_label(row)}): model-only "
                         f"{row['model_only']['fps'] / base['model_only']['fps']:.2f}x, end-to-end "
                         f"{row['end_to_end']['fps'] / base['end_to_end']['fps']:.2f}x")
    for skip in report.get("skipped", ()):
        lines.append(f"skipped {skip['config']}: {skip['reason']}")
    for u in report.get("ultralytics_runs") or ([report["ultralytics"]] if report["ultralytics"] else []):
        lines.append(f"ultralytics predict (imgsz {u.get('imgsz', '?')}): {u['save']['fps']:.1f} FPS saving video, "
                     f"{u['nosave']['fps']:.1f} FPS without saving")
    lines.append("1st frame: launch of a fresh `rtseg run` to its first segmented frame out (median of up to 3: "
                 "imports, model load from the cache, source open, one frame); the JSON also has the in-process figure")
    for row in report["configs"]:
        if "error" in row.get("launch", {}):
            lines.append(f"1st frame of {_row_label(row)}: not measured, the run failed: {row['launch']['error']}")
    lines.append("model CPU: the model's share of the CPU time per frame (model-only CPU ms / end-to-end CPU ms); "
                 "where the cores set the pace, e2e/model cannot exceed it")
    lines.append("")
    fastest = max(report["configs"], key=lambda r: r["end_to_end"]["fps"])
    lines.append(f"{'stage (ms)':<14}{'p50':>8}{'p95':>8}{'p99':>8}   (fastest end to end: {_row_label(fastest)})")
    stages = fastest["end_to_end"]["stages_ms"]
    for name in (*PARTS, "latency"):
        if name in stages:
            s = stages[name]
            lines.append(f"{name:<14}{s['p50']:>8.1f}{s['p95']:>8.1f}{s['p99']:>8.1f}")
    if fastest.get("viewers"):
        lines.append(f"serve: the browser view, read by {fastest['viewers']} MJPEG viewers at full size (--viewers)")
    cpu = fastest["end_to_end"]["cpu_ms_per_frame"]
    lines.append(f"CPU ms per frame: model only {fastest['model_only']['cpu_ms_per_frame']:.1f}; end to end "
                 f"{cpu['total']:.1f} = " + ", ".join(f"{k} {v:.1f}" for k, v in cpu.items() if k != "total"))
    for row in report["configs"]:
        if "live" in row:
            live = row["live"]
            lines.append(f"live at {live['fps_in']:g} FPS ({_row_label(row)}): latency p50 "
                         f"{live['latency_ms'].get('p50', 0):.1f} ms, p95 {live['latency_ms'].get('p95', 0):.1f} ms, "
                         f"{live['dropped']} of {live['frames_out'] + live['dropped']} frames dropped")
    lines.append(f"peak RSS {report['peak_rss_mib']:.0f} MiB"
                 + (f", peak GPU {report['peak_gpu_mib']:.0f} MiB" if report["peak_gpu_mib"] is not None else ""))
    return "\n".join(lines)


def plot(report: dict, path: Path) -> Path:
    """Per-stage stacked bars (mean ms per frame), CPU time per frame by stage, and FPS per configuration, as a
    PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = report["configs"]
    # "backend\n(Class)\n640x384 b1 w2\npreset ...": one short line each
    labels = [_row_label(r).replace(" (", "\n(").replace(") ", ")\n", 1).replace(f" w{r['workers']} ",
                                                                                  f" w{r['workers']}\n")
              for r in rows]
    fig, (ax1, ax3, ax2) = plt.subplots(1, 3, figsize=(max(12, 3.3 * len(rows) + 6), 4.8))
    bottom = np.zeros(len(rows))
    for name in PARTS:
        values = np.array([r["end_to_end"]["stages_ms"].get(name, {}).get("mean", 0.0) for r in rows])
        if values.any():
            ax1.bar(labels, values, bottom=bottom, label=name)
            bottom += values
    ax1.set_ylabel("ms per frame (mean)")
    ax1.set_title("where the time goes")
    ax1.legend(fontsize=7)
    x = np.arange(len(rows))
    ax3.bar(x - 0.2, [r["model_only"]["cpu_ms_per_frame"] for r in rows], 0.4, label="model only", color="0.6")
    bottom = np.zeros(len(rows))
    for name in ("infer", "semantic", "decode", "post", "sinks", "other"):
        values = np.array([r["end_to_end"]["cpu_ms_per_frame"].get(name, 0.0) for r in rows])
        if values.any():
            ax3.bar(x + 0.2, values, 0.4, bottom=bottom, label=f"e2e {name}")
            bottom += values
    ax3.set_xticks(x, labels)
    ax3.set_ylabel("CPU ms per frame")
    ax3.set_title("CPU time per frame")
    ax3.legend(fontsize=7)
    ax2.bar(x - 0.2, [r["model_only"]["fps"] for r in rows], 0.4, label="model only")
    ax2.bar(x + 0.2, [r["end_to_end"]["fps"] for r in rows], 0.4, label="end to end")
    ultra = {u["imgsz"]: u["save"]["fps"] for u in report.get("ultralytics_runs") or ()}
    if ultra:  # Ultralytics predict saving video, at each configuration's inference size
        ax2.scatter(x, [ultra.get(max(r["imgsz"]), np.nan) for r in rows], marker="_", s=900, color="k", zorder=3,
                    label="ultralytics (save)")
    ax2.set_xticks(x, labels)
    ax2.set_ylabel("frames per second")
    ax2.set_title("throughput")
    ax2.legend(fontsize=7)
    fig.tight_layout()
    return save_figure(fig, path, dpi=100)
