"""SegNet against LinkNet under the same training budget, on the pets set (issue #20).

Both architectures train side by side, from scratch, with the same recipe and wall-clock budget
(``scripts/train_default_semantic.py pets --arch A --minutes M --threads 1``: 224-px crops, CE + Dice, AdamW
2e-3 cosine, batch 8, one thread each, so they share the CPU alike), then ``rtseg eval`` measures both on the
untouched pets test split (trimap borders ignored; :func:`rtseg.data.shared_sets.held_out_eval_args`).

Usage:
    python benchmarks/segnet_vs_linknet.py --minutes 30 [--work DIR]
    python benchmarks/segnet_vs_linknet.py --skip-train --work DIR   (evaluate checkpoints already trained there)
Results: ``benchmarks/results/segnet_vs_linknet.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ARCHS = ("SegNet", "Linknet")


def train_both(work: Path, minutes: float) -> dict[str, dict]:
    env = dict(os.environ, OMP_NUM_THREADS="1")
    procs = {}
    for arch in ARCHS:
        command = [sys.executable, str(ROOT / "scripts" / "train_default_semantic.py"), "pets", "--arch", arch,
                   "--minutes", str(minutes), "--threads", "1", "--out", str(work / f"{arch.lower()}.pt")]
        procs[arch] = subprocess.Popen(command, stdout=open(work / f"{arch.lower()}.json", "w"),  # noqa: SIM115
                                       stderr=subprocess.DEVNULL, env=env)
    for arch, proc in procs.items():
        if proc.wait() != 0:
            raise SystemExit(f"training {arch} failed ({proc.returncode})")
    return {arch: trained(work, arch) for arch in ARCHS}


def trained(work: Path, arch: str) -> dict:
    record = json.loads((work / f"{arch.lower()}.json").read_text())
    history = record["history"]
    return {"best_epoch": record["best_epoch"], "epochs_run": len(history), "minutes": float(record["args"]["minutes"]),
            "val_mIoU_best": max(h["val_mIoU"] for h in history)}


def evaluate(work: Path, arch: str) -> dict:
    from rtseg.data.shared_sets import held_out_eval_args

    report = work / f"{arch.lower()}.eval.json"
    args = held_out_eval_args("pets", work / "held_out")
    done = subprocess.run([sys.executable, "-m", "rtseg.cli", "eval", "--model", str(work / f"{arch.lower()}.pt"),
                           *args, "--imgsz", "224", "--json", str(report)], capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"rtseg eval of {arch} failed: {done.stderr.strip()[-500:]}")
    metrics = json.loads(report.read_text())
    m = metrics.get("metrics", metrics)
    return {"test_mIoU": round(float(m["mIoU"]), 4), "pixel_accuracy": round(float(m["pixel_accuracy"]), 4),
            "images": metrics.get("images")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=30)
    parser.add_argument("--work", type=Path, default=None)
    parser.add_argument("--skip-train", action="store_true")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "segnet_vs_linknet.json")
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="rtseg-segnet-"))
    work.mkdir(parents=True, exist_ok=True)
    rows = train_both(work, args.minutes) if not args.skip_train else {arch: trained(work, arch) for arch in ARCHS}
    for arch in ARCHS:
        rows[arch].update(evaluate(work, arch))
        print(json.dumps({arch: rows[arch]}), flush=True)
    result = {"command": "python benchmarks/segnet_vs_linknet.py " + " ".join(sys.argv[1:]),
              "recipe": "scripts/train_default_semantic.py pets --arch A --minutes M --threads 1, both at once",
              "held_out": "pets test split, trimap borders ignored, input 224", "rows": rows}
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(args.out)


if __name__ == "__main__":
    main()
