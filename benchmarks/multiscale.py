"""Multi-scale (and mirrored) semantic inference against one scale: mIoU gain and time per frame (issue #20).

The bundled semantic models on their held-out sets, exactly as the model card measures them (``rtseg eval``'s
data: :func:`rtseg.data.shared_sets.held_out_eval_args`, built as links into ``../shared/data``; its confusion
matrix and mIoU definitions), once per configuration of ``scales`` / ``flip``:

* ``linknet-pets.pt`` on the pets test split (298 images, trimap borders ignored), input 256;
* ``linknet-aerial.pt`` on the aerial held-out tiles (tiles 3 and 5), input 512.

Time per frame is the model stage's own (letterbox, every scale's inference, averaging, label map), median over
the images, PyTorch on the CPU with ``--threads`` threads; the configurations run interleaved image by image, so
that load from other jobs on a shared machine hits each alike.

Usage:
    nice -n 15 python benchmarks/multiscale.py [--threads 1] [--limit N]
Results: ``benchmarks/results/multiscale.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = [("1", False), ("1", True), ("0.75,1,1.25", False), ("0.5,1,1.5", False), ("0.75,1,1.25", True),
           ("0.5,1,1.5", True)]
CASES = {"pets": ("linknet-pets.pt", ["--labels", "trimap"]), "aerial": ("linknet-aerial.pt", [])}


def measure(case: str, work: Path, limit: int | None) -> list[dict]:
    import numpy as np

    from rtseg.backends.registry import load_semantic_backend
    from rtseg.data.datasets import load_dataset
    from rtseg.data.shared_sets import held_out_eval_args
    from rtseg.evaluate.semantic import confusion_matrix, semantic_metrics
    from rtseg.models.semantic import SemanticModel

    checkpoint = ROOT / "rtseg" / "assets" / CASES[case][0]
    args = held_out_eval_args(case, work / case)
    labels = args[args.index("--labels") + 1] if "--labels" in args else "semantic"
    dataset = load_dataset(args[1], "val", None, labels)
    indices = range(len(dataset)) if limit is None else range(min(limit, len(dataset)))
    pairs = [(dataset.image(i), dataset.semantic(i)) for i in indices]
    backend = load_semantic_backend(str(checkpoint), device="cpu")
    n = len(backend.info.names)
    models = [SemanticModel(backend, scales=scales, flip=flip) for scales, flip in CONFIGS]
    for model in models:
        model([pairs[0][0]])  # warm-up
    confs = [np.zeros((n, n), np.int64) for _ in CONFIGS]
    times: list[list[float]] = [[] for _ in CONFIGS]
    for image, gt in pairs:  # configurations interleaved image by image: load from other jobs hits them alike
        for k, model in enumerate(models):
            t0 = time.perf_counter_ns()
            (pred,) = model([image])
            times[k].append((time.perf_counter_ns() - t0) / 1e6)
            confs[k] += confusion_matrix(pred, gt, n, ignore_index=255)
    rows = []
    for k, (scales, flip) in enumerate(CONFIGS):
        m = semantic_metrics(confs[k])
        row = {"case": case, "model": checkpoint.name, "images": len(pairs), "scales": scales, "flip": flip,
               "mIoU": round(float(m["mIoU"]), 4), "pixel_accuracy": round(float(m["pixel_accuracy"]), 4),
               "ms_per_frame_median": round(float(np.median(times[k])), 1)}
        rows.append(row)
        print(json.dumps(row), flush=True)
    base = rows[0]
    for row in rows:
        row["mIoU_gain"] = round(row["mIoU"] - base["mIoU"], 4)
        row["cost_x"] = round(row["ms_per_frame_median"] / base["ms_per_frame_median"], 2)
    return rows


def main() -> None:
    import torch

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1, help="PyTorch CPU threads (default 1: a shared machine)")
    parser.add_argument("--limit", type=int, default=None, help="only the first N images of each set")
    parser.add_argument("--cases", default="pets,aerial")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "multiscale")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rows = []
    with tempfile.TemporaryDirectory(prefix="rtseg-ms-") as tmp:
        for case in args.cases.split(","):
            rows += measure(case, Path(tmp), args.limit)
    meta = {"machine": platform.processor() or platform.machine(), "torch": torch.__version__,
            "threads": args.threads, "command": "nice -n 15 python benchmarks/multiscale.py"
            + (f" --limit {args.limit}" if args.limit else "") + f" --threads {args.threads}"}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=2) + "\n")
    lines = ["| set | model | scales | flip | mIoU | gain | ms/frame (median) | cost |",
             "|---|---|---|---|---|---|---|---|"]
    lines += [f"| {r['case']} ({r['images']} images) | {r['model']} | {r['scales']} | "
              f"{'yes' if r['flip'] else 'no'} | {r['mIoU']:.4f} | {r['mIoU_gain']:+.4f} | "
              f"{r['ms_per_frame_median']} | {r['cost_x']}x |" for r in rows]
    text = "# Multi-scale semantic inference\n\n" + "\n".join(lines) + f"\n\n`{meta['command']}`; torch " \
        f"{meta['torch']}, {args.threads} CPU thread(s), on a 2-core machine shared with other jobs (times are " \
        "indicative; the ratios matter).\n"
    args.out.with_suffix(".md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
