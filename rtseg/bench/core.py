"""``rtseg bench``: how fast is it, where does the time go, and is it faster than what I use now?

For every configuration (backend x imgsz x batch) it measures, on the user's own machine:

* model-only throughput: warm forward passes on one prepared input, as many at once as the pipeline runs
  (the backend's ``workers``): the ceiling for that model and configuration. Its rounds alternate with the
  end-to-end runs, so a machine whose speed drifts (a shared VM) skews both alike;
* end-to-end FPS of the whole pipeline, decode to H.264 encode (median of ``repeats`` runs after a warm-up),
  counted once the pipeline has filled (:attr:`rtseg.pipeline.streams.RunSummary.steady_fps`: the rate a long run
  settles at; ``fps_whole_run`` also counts the time the pipeline takes to fill, ``latency_first_frame_s``),
  with per-stage latency percentiles, queue waits and frame-in to frame-out latency;
* CPU milliseconds per frame, model-only and end to end by stage (:func:`rtseg.pipeline.flow.cpu_ms_per_frame`); their
  ratio, ``model_cpu_share``, bounds end-to-end / model-only when the cores set the pace (a CPU backend);
* with ``live_fps``: the same source played in real time like a camera (oldest frames dropped when the
  pipeline falls behind): the latency a live user sees, and how many frames were dropped;
* time to the first frame: in-process (model load from the cache, session, one frame) and, as a user waits
  for it, from launching a fresh ``rtseg run`` to its first frame out (:mod:`rtseg.bench.launch`);
* peak CPU RSS and GPU memory;
* with ``vs_ultralytics``: Ultralytics ``predict`` on the same weights, source, imgsz and device, with saving
  on and off, and the ratios.
"""

from __future__ import annotations

import itertools
import platform
import resource
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from numpy.typing import NDArray

from rtseg.bench.launch import launch_to_first_frame, run_command
from rtseg.bench.report import format_table, plot
from rtseg.bench.viewers import Viewers
from rtseg.config import check_options
from rtseg.errors import ConfigError, SourceError
from rtseg.types import STAGES

__all__ = ["format_table", "plot", "run_bench"]

class SyntheticSource:
    """In-memory frames (moving shapes on a fixed texture): benchmarks without a video file, no decode cost."""

    live = False

    def __init__(self, size_wh: tuple[int, int], frames: int, fps: float = 30.0) -> None:
        w, h = size_wh
        rng = np.random.default_rng(0)
        self._background = rng.integers(40, 200, (h, w, 3), dtype=np.uint8)
        self.name, self.fps, self.frame_count = f"synthetic {w}x{h}", fps, frames
        self._size_wh, self._next = size_wh, 0

    def read(self) -> NDArray[np.uint8] | None:
        if self._next >= (self.frame_count or 0):
            return None
        w, h = self._size_wh
        image = self._background.copy()
        i = self._next
        cv2.circle(image, (int(w * (0.2 + 0.6 * ((i * 7) % 100) / 100)), h // 2), max(h // 8, 4), (30, 220, 60), -1)
        cv2.rectangle(image, (w // 10, h // 10), (w // 10 + w // 6, h // 10 + h // 5), (200, 60, 40), -1)
        self._next += 1
        return image

    def close(self) -> None:
        self._next = self.frame_count or 0


class PacedSource:
    """Plays another source in real time, as a camera would: a live source (slow stages drop frames)."""

    live = True

    def __init__(self, inner, fps: float) -> None:  # noqa: ANN001
        self._inner, self.fps = inner, fps
        self.name, self.frame_count = f"{inner.name} (live at {fps:g} FPS)", None
        self._t0: float | None = None
        self._n = 0

    def read(self) -> NDArray[np.uint8] | None:
        if self._t0 is None:
            self._t0 = time.perf_counter()
        delay = self._t0 + self._n / self.fps - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        self._n += 1
        return self._inner.read()

    def close(self) -> None:
        self._inner.close()


def live_run(make_source, seg, sem, *, frames: int, fps: float, out_dir: Path,  # noqa: ANN001
             preset: str = "superfast") -> dict:
    """Frame-in to frame-out latency when frames arrive in real time at ``fps`` (camera-like)."""
    from rtseg.pipeline.core import Pipeline
    from rtseg.sinks import VideoFileSink

    source = PacedSource(make_source(), fps)
    summary = Pipeline(source, seg, [VideoFileSink(out_dir / "live.mp4", fps=fps, preset=preset)], semantic=sem,
                       max_frames=frames).run()
    latency = summary.stages_ms.get("latency", {})
    return {"fps_in": fps, "frames_out": summary.frames, "dropped": summary.dropped,
            "latency_ms": {k: round(v, 2) for k, v in latency.items()}}


def parse_synthetic(text: str) -> tuple[int, int]:
    """``"1920x1080"`` -> (1920, 1080)."""
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise ConfigError(f"synthetic={text!r}: expected WIDTHxHEIGHT, e.g. 1920x1080") from None
    check_options(synthetic=w)
    check_options(synthetic=h)
    return w, h


@dataclass(frozen=True)
class BenchConfig:
    backend: str
    imgsz: int | None
    batch: int
    workers: int | None = None  # None: the backend's default
    frame_path: str = "auto"  # auto (device on CUDA), cpu, device: where frames are letterboxed and drawn
    preset: str = "auto"  # x264 preset of the encoded video; auto: rtseg.sinks.video.auto_preset
    precision: str = "fp32"  # int8: ONNX Runtime INT8 copy (rtseg.pipeline.loading.int8_model)

    @property
    def label(self) -> str:
        path = "" if self.frame_path == "auto" else f" frames={self.frame_path}"
        preset = "" if self.preset == "auto" else f" preset={self.preset}"
        precision = "" if self.precision == "fp32" else f" {self.precision}"
        return (f"{self.backend} imgsz={self.imgsz or 'model'} batch={self.batch} workers={self.workers or 'auto'}"
                f"{path}{preset}{precision}")


def _versions() -> dict[str, str]:
    import importlib.metadata as md

    out = {}
    for name in ("rtseg", "torch", "torchvision", "onnxruntime", "ultralytics", "opencv-python", "numpy", "av"):
        try:
            out[name] = md.version(name)
        except md.PackageNotFoundError:
            pass
    return out


def _machine() -> dict[str, object]:
    import os

    import torch

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return {"platform": platform.platform(), "python": platform.python_version(), "processor": platform.processor(),
            "cpu_count": os.cpu_count(), "gpu": gpu}


def _peak_memory_mib() -> tuple[float, float | None]:
    import torch

    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    gpu = torch.cuda.max_memory_allocated() / 2**20 if torch.cuda.is_available() else None
    return round(rss, 1), None if gpu is None else round(gpu, 1)


def model_only(seg, image: NDArray[np.uint8], batch: int, *, warmup: int, iters: int,  # noqa: ANN001
               repeats: int = 1) -> dict:
    """Warm forward passes on one prepared batch: frames per second the model alone can do.

    As many calls run at once as the backend serves (``workers``: the pipeline keeps that many in flight),
    so the figure is the same ceiling the end-to-end run is held against: the median of ``repeats`` rounds
    of ``iters`` calls. ``ms_per_batch`` is the median latency of one call while they run.
    """
    import threading

    import torch

    prepared = seg.prepare([image] * batch)
    workers = max(1, int(getattr(seg.backend, "workers", 1)))
    device = getattr(seg.backend, "device", None)
    cuda = device is not None and device.type == "cuda"

    def call() -> None:  # a CUDA call returns before the GPU is done: wait, as the pipeline does
        seg.infer(prepared)
        if cuda:
            torch.cuda.synchronize(device)

    for _ in range(max(warmup, workers)):
        call()
    times: list[int] = []
    left = [max(iters, workers)]
    lock = threading.Lock()

    def loop() -> None:
        while True:
            with lock:
                if left[0] <= 0:
                    return
                left[0] -= 1
            t0 = time.perf_counter_ns()
            call()
            dt = time.perf_counter_ns() - t0
            with lock:
                times.append(dt)

    rounds, cpu = [], []
    for _ in range(max(repeats, 1)):
        left[0] = max(iters, workers)
        t0, c0 = time.perf_counter_ns(), time.process_time_ns()
        threads = [threading.Thread(target=loop, name=f"rtseg-bench{i}") for i in range(workers)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        rounds.append(batch * max(iters, workers) * 1e9 / (time.perf_counter_ns() - t0))
        cpu.append((time.process_time_ns() - c0) / 1e6 / (batch * max(iters, workers)))
    return {"fps": round(statistics.median(rounds), 2), "runs_fps": [round(r, 2) for r in rounds],
            "workers": workers, "ms_per_batch": round(statistics.median(times) / 1e6, 2),
            "cpu_ms_per_frame": round(statistics.median(cpu), 3)}


def merge_rounds(rounds: list[dict]) -> dict:
    """One model-only result from several :func:`model_only` calls of one round each: medians, every round."""
    fps = [r["fps"] for r in rounds]
    return {"fps": round(statistics.median(fps), 2), "runs_fps": fps, "workers": rounds[0]["workers"],
            "ms_per_batch": round(statistics.median(r["ms_per_batch"] for r in rounds), 2),
            "cpu_ms_per_frame": round(statistics.median(r["cpu_ms_per_frame"] for r in rounds), 3)}


def end_to_end(make_source, seg, sem, batch: int, *, frames: int, warmup: int, repeats: int,  # noqa: ANN001
               out_dir: Path, preset: str = "superfast", before_each: Callable[[], object] | None = None,
               viewers: Viewers | None = None) -> dict:
    """The whole pipeline writing H.264, ``repeats`` times after a warm-up run (``before_each`` is called before
    each timed run); the median run's details. ``viewers``: the browser view and its MJPEG readers as well."""
    from rtseg.overlay.annotator import Annotator
    from rtseg.pipeline.core import Pipeline
    from rtseg.sinks import VideoFileSink

    annotator = Annotator(seg.names if seg is not None else (), hud=True,
                          semantic_names=sem.names if sem is not None else (),
                          semantic_palette=sem.info.palette_bgr if sem is not None else ())

    def once(n: int):  # noqa: ANN202
        source = make_source()
        t0 = time.perf_counter()
        sinks = [VideoFileSink(out_dir / "bench.mp4", fps=source.fps, preset=preset)]
        if viewers is not None:
            sinks += viewers.sinks(source, annotator.names, annotator.semantic_names)
        summary = Pipeline(source, seg, sinks, annotator=annotator, max_frames=n, semantic=sem, batch=batch).run()
        return summary.steady_fps, summary, summary.frames / (time.perf_counter() - t0)

    if warmup:
        once(warmup)
    runs = []
    for _ in range(max(repeats, 1)):
        if before_each is not None:
            before_each()
        runs.append(once(frames))
    fps_values = [round(r[0], 2) for r in runs]
    median_run = sorted(runs, key=lambda r: r[0])[len(runs) // 2]
    summary = median_run[1]
    if summary.frames < frames:
        raise SourceError(f"the source gave {summary.frames} frames, fewer than frames={frames}")
    stages = {k: {q: round(v, 3) for q, v in s.items()} for k, s in summary.stages_ms.items()}
    return {"fps": round(statistics.median(r[0] for r in runs), 2), "runs_fps": fps_values,
            "fps_whole_run": round(statistics.median(r[2] for r in runs), 2),
            "latency_first_frame_s": round(summary.first_out_s, 3),
            "frames": summary.frames, "stages_ms": stages, "cpu_ms_per_frame": summary.cpu_ms, "video_preset": preset}


def ultralytics_predict(weights: str, video: Path, *, imgsz: int | None, device: str, frames: int, warmup: int,
                        save: bool, project: Path, half: bool = False) -> dict:
    """Ultralytics ``predict`` over the same video: frames per second, model load excluded."""
    from ultralytics import YOLO

    from rtseg.backends.weights import ultralytics_loads

    with ultralytics_loads():  # as data unless trusted, as rtseg's own load of the same file
        model = YOLO(weights, task="segment")
    ul_device = device.split(":")[1] if device.startswith("cuda:") else "0" if device == "cuda" else device
    kwargs = {"imgsz": imgsz or 640, "device": ul_device, "half": half, "verbose": False, "stream": True, "save": save,
              "project": str(project), "name": "ultralytics", "exist_ok": True}
    for i, _ in enumerate(model.predict(str(video), **kwargs)):
        if i + 1 >= warmup:
            break
    t0 = time.perf_counter()
    n = 0
    for _ in model.predict(str(video), **kwargs):
        n += 1
        if n == frames:
            break
    return {"fps": round(n / (time.perf_counter() - t0), 2), "frames": n, "save": save}


def _write_clip(source, path: Path, frames: int) -> Path:  # noqa: ANN001
    writer = None
    for _ in range(frames):
        image = source.read()
        if image is None:
            break
        if writer is None:
            writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), source.fps, image.shape[1::-1])
        writer.write(image)
    if writer is not None:
        writer.release()
    return path


def run_bench(*, model: str, semantic: str = "", source: str | None = None, synthetic: str | None = None,
              frames: int = 100, backends: Sequence[str] = ("auto",), imgszs: Sequence[int | None] = (None,),
              batches: Sequence[int] = (1,), workers: Sequence[int | None] = (None,),
              frame_paths: Sequence[str] = ("auto",), presets: Sequence[str] = ("auto",), device: str = "auto",
              half: bool = False,
              warmup: int = 10, repeats: int = 3,
              vs_ultralytics: bool = False, live_fps: float | None = None, progress=None,  # noqa: ANN001
              precisions: Sequence[str] = ("fp32",), calib: str | None = None, val: str | None = None,
              val_split: str = "val", val_labels: str = "semantic", viewers: int = 0) -> dict:
    """Measure every configuration; return the JSON-ready report (see the module docstring).

    ``viewers``: end-to-end runs also serve the browser view to this many MJPEG readers (:mod:`.viewers`).
    ``precisions``: ``fp32`` and/or ``int8`` rows (INT8 calibrated on ``calib``, default the benchmarked video,
    or the synthetic frames); ``val``: labelled data (as ``rtseg eval --data``) measured for every row.
    """
    from rtseg.backends.registry import check_device
    from rtseg.models.yolo_seg import YoloSegModel
    from rtseg.pipeline.loading import load_runtime
    from rtseg.sinks.video import auto_preset, check_preset
    from rtseg.sources import open_source

    check_options(frames=frames, warmup=warmup, repeats=repeats, live_fps=live_fps, viewers=viewers)
    for name, values in (("imgsz", imgszs), ("batch", batches), ("workers", workers)):  # each swept value
        if not values:
            raise ConfigError(f"{name} needs at least one value to sweep")
        for value in values:
            check_options(**{name: value})
    device = check_device(device, half=half)  # "auto" -> cuda / cpu, once, for every configuration
    if (source is None) == (synthetic is None):
        raise ConfigError("give exactly one of source=VIDEO or synthetic=WxH")
    if synthetic is not None:
        size_wh = parse_synthetic(synthetic)

        def make_source():  # noqa: ANN202
            return SyntheticSource(size_wh, frames + warmup)
    else:
        probe = open_source(source)  # type: ignore[arg-type]
        first = probe.read()
        probe.close()
        assert first is not None
        size_wh = (int(first.shape[1]), int(first.shape[0]))

        def make_source():  # noqa: ANN202
            return open_source(source)  # type: ignore[arg-type]

    sem = None
    if semantic:
        from rtseg.backends.registry import load_semantic_backend
        from rtseg.models.semantic import SemanticModel

        sem = SemanticModel(load_semantic_backend(semantic, device=device))
    for path in frame_paths:
        if path not in ("auto", "cpu", "device"):
            raise ConfigError(f"frame_path={path!r}: expected auto, cpu or device")
    for preset in presets:
        if preset != "auto":
            check_preset(preset)
    from rtseg.exporters.quantize import check_precision

    for precision in precisions:
        check_precision(precision)
    dataset = None
    if val:
        from rtseg.bench.gate import load_val

        dataset = load_val(val, val_split, val_labels)  # a bad set: one line, before any run
    configs = [BenchConfig(*c) for c in itertools.product(backends, imgszs, batches, workers, frame_paths, presets,
                                                          precisions)]
    sample = make_source().read()
    rows, skipped = [], []
    with tempfile.TemporaryDirectory(prefix="rtseg-bench-") as tmp, Viewers(viewers) as view:
        if calib is None and "int8" in precisions:  # calibrated on the benchmarked frames
            calib = str(source) if source else str(_write_clip(make_source(), Path(tmp) / "calib.avi", frames))
        one_frame = Path(source) if source else _write_clip(make_source(), Path(tmp) / "first.avi", 1)
        launches: dict[tuple[str, ...], dict] = {}  # one measurement per distinct command (batch is not in it)
        for config in configs:
            if progress:
                progress(f"{config.label}: model only and end to end, in turn")
            load = {"backend": config.backend, "device": device, "half": half, "workers": config.workers}
            if config.precision != "fp32":
                load.update(precision=config.precision, calib=calib, imgsz=config.imgsz)
            try:
                if config.precision != "fp32":
                    load_runtime(model, **load)  # builds the cached INT8 copy once: not start-up
                started = time.perf_counter()
                net = load_runtime(model, **load)
            except ConfigError as exc:
                if len(workers) == 1 or not str(exc).startswith("workers="):
                    raise
                skipped.append({"config": config.label, "reason": str(exc)})  # a sweep's combination that
                continue  # cannot run (PyTorch x 2 workers): the other rows still can
            preset = auto_preset(device == "cpu") if config.preset == "auto" else config.preset
            seg = YoloSegModel(net, imgsz=config.imgsz,
                               frames_on_device=None if config.frame_path == "auto" else config.frame_path == "device")
            loaded_s = time.perf_counter() - started
            first_source = make_source()
            seg([first_source.read()])  # type: ignore[list-item]
            first_frame_s = time.perf_counter() - started
            first_source.close()
            row: dict[str, object] = {"backend": config.backend, "backend_class": type(seg.backend).__name__,
                                      "precision": config.precision,
                                      # in-process: model load (cached export), session, source open, one frame
                                      "time_to_first_frame_s": round(first_frame_s, 3),
                                      "model_load_s": round(loaded_s, 3),
                                      "imgsz": list(seg.imgsz), "batch": config.batch, "half": half,
                                      # what the model is given for this source: the letterboxed width x height
                                      "input_wh": _input_wh(seg, sample),
                                      "frame_path": "device" if seg.frames_on_device else "cpu",
                                      "workers": int(getattr(seg.backend, "workers", 1)),
                                      "video_preset": preset}
            rounds: list[dict] = []  # a model-only round before each end-to-end run: on a machine whose speed
            # drifts (a shared VM) both figures of a ratio are then taken under the same conditions
            row["end_to_end"] = end_to_end(
                make_source, seg, sem, config.batch, frames=frames, warmup=warmup, repeats=repeats, out_dir=Path(tmp),
                preset=preset, before_each=lambda rounds=rounds, seg=seg, batch=config.batch: rounds.append(
                    model_only(seg, sample, batch, warmup=3, iters=max(10, min(frames, 120)))), viewers=view)
            row["viewers"] = viewers
            command = run_command(model=model, source=one_frame, imgsz=config.imgsz, backend=config.backend,
                                  device=device, half=half, workers=config.workers, precision=config.precision,
                                  calib=calib, semantic=semantic)
            if tuple(command) not in launches:
                launches[tuple(command)] = launch_to_first_frame(command, repeats=min(repeats, 3))
            row["launch"] = launches[tuple(command)]
            row["model_only"] = merge_rounds(rounds)
            row["e2e_vs_model_only"] = round(row["end_to_end"]["fps"] / row["model_only"]["fps"], 3)
            # the model's share of the CPU time a frame costs end to end: when the cores set the pace, the most
            # end-to-end / model-only can reach, however well the stages overlap
            row["model_cpu_share"] = round(row["model_only"]["cpu_ms_per_frame"]
                                           / max(row["end_to_end"]["cpu_ms_per_frame"]["total"], 1e-9), 3)
            if dataset is not None:
                row["accuracy"] = _accuracy(net, config.imgsz, dataset)
            if live_fps:
                if progress:
                    progress(f"{config.label}: live at {live_fps:g} FPS")
                row["live"] = live_run(make_source, seg, sem, frames=frames, fps=live_fps, out_dir=Path(tmp),
                                       preset=preset)
            rows.append(row)
        if not rows:
            raise ConfigError(skipped[0]["reason"])
        ultra_runs: dict[int, dict] = {}  # one Ultralytics run per inference size in the sweep
        if vs_ultralytics:
            video = Path(source) if source else _write_clip(make_source(), Path(tmp) / "synthetic.avi",
                                                            frames + warmup)
            for row in rows:
                size = max(row["imgsz"])
                if size not in ultra_runs:
                    ultra_runs[size] = {"imgsz": size}
                    for save in (True, False):
                        if progress:
                            progress(f"ultralytics predict imgsz={size} save={save}")
                        ultra_runs[size]["save" if save else "nosave"] = ultralytics_predict(
                            model, video, imgsz=size, device=device, frames=frames, warmup=min(warmup, 5) or 1,
                            save=save, project=Path(tmp), half=half)
                ultra = ultra_runs[size]
                row["e2e_vs_ultralytics_save"] = round(row["end_to_end"]["fps"] / ultra["save"]["fps"], 3)
                row["e2e_vs_ultralytics_nosave"] = round(row["end_to_end"]["fps"] / ultra["nosave"]["fps"], 3)
    rss, gpu = _peak_memory_mib()
    return {"source": {"kind": "synthetic" if synthetic else "video", "name": source or synthetic,
                       "size_wh": list(size_wh)},
            "settings": {"model": model, "semantic": semantic or None, "device": device, "half": half, "frames": frames,
                         "warmup": warmup, "repeats": repeats},
            "configs": rows, "skipped": skipped,
            # the first configuration's size; every size of the sweep in ultralytics_runs
            "ultralytics": next(iter(ultra_runs.values()), None), "ultralytics_runs": list(ultra_runs.values()),
            "peak_rss_mib": rss, "peak_gpu_mib": gpu,
            "machine": _machine(), "versions": _versions(), "stages": list((*STAGES, "semantic"))}


def _accuracy(net, imgsz: int | None, dataset) -> dict:  # noqa: ANN001
    """``rtseg eval``'s box and mask mAP@0.5 of a loaded instance backend on ``dataset``."""
    from rtseg.evaluate.core import evaluate_instance_model
    from rtseg.models.yolo_seg import YoloSegModel

    report = evaluate_instance_model(YoloSegModel(net, imgsz=imgsz, conf=0.001, iou=0.7), dataset)
    return {k: round(float(report.metrics[k]), 4) for k in ("box_mAP50", "mask_mAP50")} | {"images": report.images}


def _input_wh(seg, image: NDArray[np.uint8]) -> list[int]:  # noqa: ANN001
    shape = seg.prepare([image]).batch.shape
    return [int(shape[-1]), int(shape[-2])]
