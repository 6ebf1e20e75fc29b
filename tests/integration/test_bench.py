"""``rtseg bench`` through the real CLI on the bundled model, a few frames."""

from __future__ import annotations

import json

import cv2
import pytest

from rtseg.backends.ort_backend import default_workers
from tests.support import run_cli


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, object, str]:
    tmp = tmp_path_factory.mktemp("bench")
    proc = run_cli("bench", "--synthetic", "320x240", "--frames", "12", "--warmup", "2", "--repeats", "2",
                   "--backend", "auto,torch", "--imgsz", "160,model", "--batch", "1,2", "--json",
                   str(tmp / "b.json"), "--plot", str(tmp / "b.png"), "--vs", "ultralytics", "--live", "15")
    assert proc.returncode == 0, proc.stderr
    return json.loads((tmp / "b.json").read_text()), tmp / "b.png", proc.stdout


def test_report_schema(report) -> None:
    data, _, stdout = report
    assert set(data) >= {"source", "settings", "configs", "ultralytics", "peak_rss_mib", "peak_gpu_mib",
                         "machine", "versions"}
    assert data["source"] == {"kind": "synthetic", "name": "320x240", "size_wh": [320, 240]}
    assert data["machine"]["cpu_count"] >= 1 and {"torch", "onnxruntime", "ultralytics"} <= set(data["versions"])
    assert len(data["configs"]) == 2 * 2 * 2  # backends x imgsz x batch
    combos = {(c["backend"], tuple(c["imgsz"]), c["batch"]) for c in data["configs"]}
    assert combos == {(b, s, n) for b in ("auto", "torch") for s in ((160, 160), (320, 320)) for n in (1, 2)}
    # the letterboxed input of a 320x240 frame: 160x128 at imgsz 160 (stride 32), 320x256 at 320
    assert {tuple(c["imgsz"]): c["input_wh"] for c in data["configs"]} == {(160, 160): [160, 128],
                                                                          (320, 320): [320, 256]}
    for c in data["configs"]:
        assert c["backend_class"] == ("OrtBackend" if c["backend"] == "auto" else "TorchBackend")
        # model-only runs as many calls at once as the pipeline does: ONNX Runtime's default, PyTorch's 1
        assert c["workers"] == c["model_only"]["workers"] == (default_workers("cpu") if c["backend"] == "auto" else 1)
        assert c["model_only"]["fps"] > 0 and c["end_to_end"]["fps"] > 0 and len(c["end_to_end"]["runs_fps"]) == 2
        assert len(c["model_only"]["runs_fps"]) == 2  # one model-only round before each end-to-end run
        assert c["end_to_end"]["frames"] == 12 and c["end_to_end"]["latency_first_frame_s"] > 0
        assert c["end_to_end"]["fps_whole_run"] > 0
        # time to the first frame: in-process, and a fresh `rtseg run` from launch to its first frame out
        launch = c["launch"]
        assert launch["runs"] == 2 and c["time_to_first_frame_s"] > 0
        assert 0 < launch["first_frame_s"] <= launch["exit_s"]
        assert launch["command"][0] == "run" and "--max-frames" in launch["command"]
        # CPU time per frame: model-only, and end to end by stage; the model's share of it
        cpu = c["end_to_end"]["cpu_ms_per_frame"]
        assert set(cpu) == {"decode", "infer", "post", "sinks", "other", "total"}
        assert c["model_only"]["cpu_ms_per_frame"] > 0
        assert sum(v for k, v in cpu.items() if k != "total") == pytest.approx(cpu["total"], abs=0.01)
        assert c["model_cpu_share"] == pytest.approx(c["model_only"]["cpu_ms_per_frame"] / cpu["total"], abs=2e-3)
        assert c["video_preset"] == c["end_to_end"]["video_preset"] == "ultrafast"  # auto, the model on the CPU
        live = c["live"]
        assert live["fps_in"] == 15 and live["frames_out"] + live["dropped"] == 12
        assert 0 < live["latency_ms"]["p50"] <= live["latency_ms"]["p95"]
        for stage in ("decode", "preprocess", "infer", "postprocess", "overlay", "encode", "queue_wait", "latency"):
            assert set(c["end_to_end"]["stages_ms"][stage]) == {"mean", "p50", "p95", "p99"}
    assert data["ultralytics"]["save"]["frames"] == data["ultralytics"]["nosave"]["frames"] == 12
    # one Ultralytics run per inference size; each row is held against the run at its own size
    runs = {u["imgsz"]: u for u in data["ultralytics_runs"]}
    assert sorted(runs) == [160, 320] and data["ultralytics"] == data["ultralytics_runs"][0]
    for c in data["configs"]:
        assert c["e2e_vs_ultralytics_nosave"] == pytest.approx(
            c["end_to_end"]["fps"] / runs[max(c["imgsz"])]["nosave"]["fps"], rel=1e-2)
    assert data["peak_rss_mib"] > 100 and "model-only" in stdout and "p95" in stdout


def test_stage_times_add_up_to_end_to_end_latency(report) -> None:
    """Mean of per-frame sums = sum of means: stages plus queue waits account for the latency within 5%."""
    for c in report[0]["configs"]:
        stages = c["end_to_end"]["stages_ms"]
        parts = sum(stages[k]["mean"] for k in ("decode", "preprocess", "infer", "postprocess", "overlay",
                                                "encode", "queue_wait")) - stages["decode"]["mean"]
        assert parts == pytest.approx(stages["latency"]["mean"], rel=0.05, abs=1.0), c


def test_plot_is_a_png(report) -> None:
    path = report[1]
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    image = cv2.imread(str(path))
    assert image is not None and image.shape[0] > 200 and image.shape[1] > 400


def _sweep(tmp_path, *args: str) -> tuple[dict, str]:  # noqa: ANN001
    """A short bench on 256x192 synthetic frames at imgsz 128 (unless ``args`` say otherwise): (JSON, stdout)."""
    proc = run_cli("bench", "--synthetic", "256x192", "--frames", "6", "--warmup", "1", "--repeats", "1",
                   "--imgsz", "128", *args, "--json", str(tmp_path / "b.json"))
    assert proc.returncode == 0, proc.stderr
    return json.loads((tmp_path / "b.json").read_text()), proc.stdout


def test_workers_sweep_skips_what_a_backend_cannot_run(tmp_path) -> None:
    data, stdout = _sweep(tmp_path, "--backend", "auto,torch", "--workers", "1,2")
    rows = [(c["backend"], c["workers"], c["model_only"]["workers"]) for c in data["configs"]]
    assert rows == [("auto", 1, 1), ("auto", 2, 2), ("torch", 1, 1)]
    assert [s["config"] for s in data["skipped"]] == ["torch imgsz=128 batch=1 workers=2"]
    assert "skipped torch imgsz=128 batch=1 workers=2: workers=2: only the ONNX Runtime" in stdout
    assert " w2 " in stdout


def test_frame_path_sweep_runs_the_device_path_on_the_cpu(tmp_path) -> None:
    data, stdout = _sweep(tmp_path, "--frame-path", "cpu,device")
    assert [c["frame_path"] for c in data["configs"]] == ["cpu", "device"]
    assert all(c["end_to_end"]["frames"] == 6 and not c["half"] for c in data["configs"])
    assert "dev-frames" in stdout


def test_video_preset_sweep_encodes_with_each_preset(tmp_path) -> None:
    data, stdout = _sweep(tmp_path, "--video-preset", "superfast,ultrafast")
    assert [(c["video_preset"], c["end_to_end"]["video_preset"]) for c in data["configs"]] == [
        ("superfast", "superfast"), ("ultrafast", "ultrafast")]
    assert " superfast " in stdout and " ultrafast " in stdout and "CPU ms per frame" in stdout


def test_viewers_serve_the_browser_view_as_a_timed_stage(tmp_path) -> None:
    data, stdout = _sweep(tmp_path, "--viewers", "2")
    (row,) = data["configs"]
    assert row["viewers"] == 2 and row["end_to_end"]["stages_ms"]["serve"]["p50"] > 0
    assert "\nserve " in stdout and "read by 2 MJPEG viewers" in stdout


@pytest.mark.parametrize(("args", "message"), [
    (["--synthetic", "64x64", "--viewers", "-1"], "--viewers"),
    (["--synthetic", "big"], "WIDTHxHEIGHT"),
    (["--source", "missing.mp4"], "no such file"),
    (["--synthetic", "64x64", "--vs", "deepstream"], "only 'ultralytics'"),
    (["--synthetic", "64x64", "--imgsz", "a,b"], "--imgsz"),
    (["--synthetic", "64x64", "--workers", "two"], "--workers"),
    (["--synthetic", "64x64", "--frame-path", "gpu"], "--frame-path 'gpu'"),
    (["--synthetic", "64x64", "--video-preset", "quick"], "video preset 'quick': expected one of"),
    (["--synthetic", "64x64", "--device", "cpu", "--half"], "--half"),
    (["--synthetic", "64x64", "--backend", "torch", "--workers", "2"], "only the ONNX Runtime backend"),
    ([], "exactly one of --source"),
])
def test_bench_errors(args, message, tmp_path) -> None:
    proc = run_cli("bench", *args, cwd=tmp_path)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert message in proc.stderr.strip().splitlines()[-1]
