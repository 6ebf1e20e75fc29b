#!/usr/bin/env bash
# Everything issues #5 and #6 still need from a CUDA machine, in one run; figures go to benchmarks/results/gpu/.
#
#   VIDEO=../shared/data/videos/aerial_drone_city_traffic.mp4 bash benchmarks/gpu_suite.sh
#
# Prerequisites: the project installed (pip install -e ".[dev]"); tensorrt installed for the engine steps
# (skipped, and said so, without it). VIDEO should be a 1080p clip; without one, generated 1920x1080 frames
# are used (no decode cost: say so when quoting). Nothing here has run yet: no GPU was lent while writing it.
set -uo pipefail
OUT=${OUT:-benchmarks/results/gpu}
WEIGHTS=${WEIGHTS:-rtseg/assets/yolo11n-seg-person-cat-dog.pt}
FRAMES=${FRAMES:-300}
mkdir -p "$OUT"
if [[ -n "${VIDEO:-}" && -f "$VIDEO" ]]; then SRC=(--source "$VIDEO"); else SRC=(--synthetic 1920x1080); fi

python - > "$OUT/machine.txt" <<'EOF'
import torch, platform
print(platform.platform(), torch.__version__, torch.version.cuda, torch.cuda.get_device_name(0))
EOF

# 1. GPU and TensorRT tests, and GPU-vs-CPU agreement
python -m pytest -q -m "gpu or tensorrt" tests 2>&1 | tee "$OUT/pytest_gpu.txt"

# 2. model-only vs end-to-end and Ultralytics predict on the same weights and GPU (#5, #6): PyTorch CUDA FP32
#    with frames letterboxed and drawn on the CPU and on the GPU (the device frame path), then FP16
rtseg bench --model "$WEIGHTS" "${SRC[@]}" --frames "$FRAMES" --device cuda --backend torch --imgsz 640 \
    --frame-path cpu,device --vs ultralytics --live 30 --json "$OUT/bench_torch.json" --plot "$OUT/bench_torch.png" \
    | tee "$OUT/bench_torch.txt"
rtseg bench --model "$WEIGHTS" "${SRC[@]}" --frames "$FRAMES" --device cuda --backend torch --imgsz 640 --half \
    --vs ultralytics --json "$OUT/bench_torch_fp16.json" | tee "$OUT/bench_torch_fp16.txt"

# 3. TensorRT FP16 engine, batch 1 and a dynamic batch for multi-stream
if python -c "import tensorrt" 2>/dev/null; then
    ENGINE=$(rtseg export "$WEIGHTS" --format engine --half --imgsz 640 | tail -1)
    rtseg bench --model "$ENGINE" "${SRC[@]}" --frames "$FRAMES" --device cuda --json "$OUT/bench_trt.json" \
        --plot "$OUT/bench_trt.png" | tee "$OUT/bench_trt.txt"
    DYN=$(rtseg export "$WEIGHTS" --format engine --half --imgsz 640 --dynamic --max-batch 4 | tail -1)
else
    echo "tensorrt not importable: engine steps skipped" | tee "$OUT/trt_skipped.txt"
    DYN=""
fi

# 4. four streams batched vs one after the other (#5 item 6)
if [[ -n "${VIDEO:-}" && -f "$VIDEO" ]]; then
    python benchmarks/multistream.py --video "$VIDEO" --weights "${DYN:-$WEIGHTS}" --streams 4 --device cuda \
        --frames 150 --out "$OUT/multistream_4.json" | tee "$OUT/multistream_4.txt"
fi
echo "figures in $OUT; copy the table into docs/benchmarks.md"
