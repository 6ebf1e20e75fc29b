"""OpenVINO against ONNX Runtime for rtseg's INT8 model on this CPU (issue #17: add OpenVINO as a backend only
if it measures faster).

The bundled instance model's FP32 ONNX export and its INT8 QDQ copy (``rtseg run --precision int8``'s cache,
calibrated on the clip), each run by ONNX Runtime and by OpenVINO (``openvino.Core().compile_model`` on the
same ONNX file, CPU plugin, the same thread count, ``INFERENCE_PRECISION_HINT`` f32 so FP32 stays FP32: its
default on CPUs with AMX/AVX-512-BF16 is bf16, which changes the outputs), on one real frame letterboxed by
rtseg. Calls are interleaved round-robin over the four (runtime, precision) pairs; each ratio is the median
of the per-round ratios, so load from other processes hits both sides alike. The outputs are compared too
(max abs difference of the raw head outputs against ONNX Runtime FP32).

OpenVINO is not an rtseg dependency: ``pip install openvino`` to run this.

Usage:
    nice -n 15 python benchmarks/openvino_int8.py [--rounds 30] [--threads 1,2]
Results: ``benchmarks/results/openvino_int8.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from benchmarks.int8 import CLIPS, MODEL, frame_of, session  # noqa: E402


def openvino_model(path: Path, threads: int):  # noqa: ANN201
    import openvino as ov

    core = ov.Core()
    config = {"INFERENCE_NUM_THREADS": threads, "INFERENCE_PRECISION_HINT": "f32", "PERFORMANCE_HINT": "LATENCY"}
    return core.compile_model(str(path), "CPU", config)


def compare(fp32: Path, int8: Path, batch, threads: int, rounds: int) -> dict:  # noqa: ANN001
    import numpy as np

    ort = {"fp32": session(fp32, threads), "int8": session(int8, threads)}
    ov = {"fp32": openvino_model(fp32, threads), "int8": openvino_model(int8, threads)}
    name = ort["fp32"].get_inputs()[0].name
    calls = {("ort", p): (lambda s=s: s.run(None, {name: batch})) for p, s in ort.items()}
    calls.update({("ov", p): (lambda m=m: [m(batch)[o] for o in m.outputs]) for p, m in ov.items()})
    reference = calls[("ort", "fp32")]()
    diffs = {f"{rt}_{p}": round(float(max(np.abs(np.asarray(a) - np.asarray(b)).max()
                                         for a, b in zip(reference, call()))), 4)
             for (rt, p), call in calls.items()}
    for call in list(calls.values()) * 2:  # warm-up
        call()
    keys = list(calls)
    times: dict[tuple, list[float]] = {k: [] for k in keys}
    for r in range(rounds):
        for k in keys[r % len(keys):] + keys[:r % len(keys)]:  # rotate who goes first
            t = time.perf_counter()
            calls[k]()
            times[k].append(time.perf_counter() - t)

    def ratio(a: tuple, b: tuple) -> float:
        return round(statistics.median(x / y for x, y in zip(times[a], times[b])), 3)

    return {"threads": threads, "rounds": rounds,
            "median_ms": {f"{rt}_{p}": round(1000 * statistics.median(v), 2) for (rt, p), v in times.items()},
            "ov_int8_vs_ort_int8_speedup": ratio(("ort", "int8"), ("ov", "int8")),
            "ov_fp32_vs_ort_fp32_speedup": ratio(("ort", "fp32"), ("ov", "fp32")),
            "ort_int8_vs_fp32_speedup": ratio(("ort", "fp32"), ("ort", "int8")),
            "max_abs_diff_vs_ort_fp32": diffs}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--threads", default=f"1,{os.cpu_count() or 1}")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "openvino_int8.json")
    args = parser.parse_args()
    import numpy as np
    import openvino

    from rtseg.exporters.onnx import cached_onnx
    from rtseg.exporters.quantize import cached_int8, prepared_batches

    fp32 = cached_onnx(str(MODEL))
    assert fp32 is not None
    rows = []
    for clip_name, clip in CLIPS.items():
        if not clip.is_file():
            print(f"skipped {clip_name}: {clip} not found", file=sys.stderr)
            continue
        for imgsz in (320, 640):
            int8 = cached_int8(str(MODEL), calib=str(clip), imgsz=imgsz)
            (batch,) = prepared_batches(fp32, "segment", [frame_of(clip)], imgsz)
            for threads in (int(t) for t in args.threads.split(",")):
                row = {"clip": clip_name, "imgsz": imgsz,
                       **compare(fp32, int8, np.ascontiguousarray(batch), threads, args.rounds)}
                print(json.dumps(row), flush=True)
                rows.append(row)
    import onnxruntime

    report = {"model": str(MODEL.relative_to(ROOT)), "rows": rows,
              "versions": {"openvino": openvino.__version__, "onnxruntime": onnxruntime.__version__},
              "machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
                          "loadavg_at_end": [round(v, 2) for v in os.getloadavg()]}}
    args.out.write_text(json.dumps(report, indent=1) + "\n")
    print(args.out)


if __name__ == "__main__":
    main()
