"""``rtseg run --ray [ADDRESS] SOURCES... --out-dir DIR [--split 60s]``: the options, and the command's cluster
branch (a progress bar over the cluster's frames, the tables, ``cluster_summary.json``, exit codes); and
``rtseg bench --ray`` (:func:`bench_ray`), the scaling curve.

Nothing here imports Ray: :mod:`rtseg.scale.cluster` does, once ``--ray`` is given.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from rtseg.cli.common import fail

PANEL = "Scale-out (Ray)"
RayAddress = Annotated[Optional[str], typer.Option(
    "--ray", metavar="[ADDRESS]", rich_help_panel=PANEL, show_default=False,
    help="Run the sources across a Ray cluster, one whole source per worker, outputs in --out-dir. ADDRESS: a "
         "head's HOST:PORT (ray start --head prints it), ray://HOST:PORT or auto; alone: $RAY_ADDRESS, else a Ray "
         "started on this machine for the run. See docs/scale-out.md.")]
OutDir = Annotated[Optional[str], typer.Option(  # str: a URL's // would fold in a Path
    "--out-dir", rich_help_panel=PANEL, help="With --ray: a folder every worker can write (shared storage), or an "
    "fsspec URL (s3://bucket/out, gs://...): SOURCE.mp4 and SOURCE.jsonl per source (a live stream's in parts, "
    "SOURCE_000.mp4, ..., as each is finished), cluster_summary.json. A rerun skips sources already complete.")]
RayWorkers = Annotated[Optional[int], typer.Option(
    "--ray-workers", rich_help_panel=PANEL, help="With --ray: how many workers (each loads the model once). "
    "Default: as many as the cluster's resources allow, at most one per source.")]
CpusPerWorker = Annotated[float, typer.Option(
    "--cpus-per-worker", rich_help_panel=PANEL, help="With --ray: CPUs each worker reserves (Ray num_cpus).")]
GpusPerWorker = Annotated[Optional[float], typer.Option(
    "--gpus-per-worker", rich_help_panel=PANEL, help="With --ray: GPUs each worker reserves (Ray num_gpus; 0.5: "
    "two workers share a GPU). Default: 1 when the cluster has GPUs, else 0.")]
Split = Annotated[Optional[str], typer.Option(
    "--split", rich_help_panel=PANEL, metavar="DURATION", show_default=False,
    help="With --ray: cut each video file longer than DURATION (60s, 2m, 90 = seconds) into parts run on several "
         "workers at once, then joined: the video remuxed without re-encoding, the JSONL in frame order with the "
         "file's frame numbers and timestamps; with --track, ids continue across cuts in the JSONL.")]
Retries = Annotated[int, typer.Option(
    "--retries", rich_help_panel=PANEL, help="With --ray: times a source goes out again after its worker died "
    "(node lost, process killed). A source that fails on its own (a corrupt file) is not retried.")]

# rtseg.run options a worker applies to each source; the others write files or serve, which --out-dir replaces
PASSED = ("track", "trails", "max_frames", "batch", "video_preset", "hud", "alpha", "semantic_alpha", "image_fps",
          "blur", "blur_style", "blur_only", "panoptic", "style", "boundary_width", "reconnect", "stall_timeout")
REFUSED = ("out", "jsonl", "show", "save_frames", "save_labels", "serve", "webhook", "mqtt", "zones", "zone", "line",
           "report", "heatmap", "heatmap_overlay", "background", "save_panoptic", "save_boundaries")


def ray_alone(argv: list[str]) -> list[str]:
    """``--ray`` with no address means ``--ray=`` ($RAY_ADDRESS or a local Ray): typer options take a value,
    and the word after ``--ray`` is often the first source."""
    out = list(argv)
    if "--ray" not in out:  # every command passes here: rtseg.scale.plan (numpy, through the sources) only for --ray
        return out
    from rtseg.scale.plan import looks_like_address

    for i, arg in enumerate(out):
        if arg == "--ray" and (i + 1 == len(out) or not looks_like_address(out[i + 1])):
            out[i] = "--ray="
    return out


def run_ray(sources: list[str], params: dict[str, Any], model_options: dict[str, Any]) -> int:
    """The cluster branch of ``rtseg run``: ``params`` are the command's arguments, ``model_options`` the
    :func:`rtseg.load_model` keywords it built. Returns the exit code."""
    from rtseg.errors import RtsegError

    if params.get("split") is not None and params.get("ray") is None:
        raise fail("--split goes with --ray: it cuts a video into parts for several Ray workers")
    if params.get("out_dir") is None:
        raise fail("--ray needs --out-dir DIR: a folder every worker can write")
    if params.get("ray") is None:
        raise fail("--out-dir goes with --ray; for one machine use --out and --jsonl")
    given = [name for name in REFUSED if params.get(name) not in (None, False, (), [], "")]
    if given:
        flag = "--" + given[0].replace("_", "-")
        raise fail(f"{flag} does not apply with --ray: each source's video and JSONL go to --out-dir")
    from rtseg.scale.split import parse_split
    from rtseg.sinks.segments import parse_duration

    try:
        split_s = parse_split(params.get("split"))
        segment_s = parse_duration(params["segment"]) if params.get("segment") else None
    except RtsegError as exc:
        raise fail(_as_ray_flags(str(exc))) from None
    from rtseg.scale.cluster import run_on_ray

    if params.get("trust"):  # --trust-weights set this process's switch; the workers are other processes
        model_options = {**model_options, "trust_weights": True}

    quiet = params.get("quiet", False)
    bar: dict[str, Any] = {}

    def on_start(total: int, todo: int, skipped: int) -> None:
        if skipped and not quiet:
            typer.echo(f"rtseg: {skipped} sources already complete in {params['out_dir']}: skipped", err=True)
        if not quiet and todo:
            from tqdm import tqdm

            bar["bar"] = tqdm(total=total or None, desc=f"{todo} sources", unit="frame", dynamic_ncols=True,
                              leave=False, disable=None)
            bar["todo"] = todo

    def on_progress(frames: int, finished: int) -> None:
        if "bar" in bar:
            bar["bar"].n = frames
            bar["bar"].set_postfix_str(f"{finished}/{bar['todo']} sources", refresh=True)

    try:
        summary = run_on_ray(sources, params["out_dir"], address=params["ray"], model=params.get("model") or None,
                             model_options=model_options, run_options={k: params[k] for k in PASSED if k in params},
                             workers=params.get("ray_workers"), cpus_per_worker=params.get("cpus_per_worker", 1.0),
                             gpus_per_worker=params.get("gpus_per_worker"), retries=params.get("retries", 2),
                             split_s=split_s, segment_s=segment_s, on_start=on_start, on_progress=on_progress)
    except RtsegError as exc:
        raise fail(_as_ray_flags(str(exc))) from None
    except KeyboardInterrupt:
        raise fail("stopped; sources already complete are kept, and the same command resumes", 130) from None
    finally:
        if "bar" in bar:
            bar["bar"].close()
    from rtseg.scale.plan import SUMMARY_NAME, format_tables
    from rtseg.scale.storage import join

    if not quiet:
        done = sum(r.frames for r in summary.sources if r.status == "ok")
        typer.echo(f"{len(summary.sources)} sources on {summary.workers} Ray workers: {done} frames in "
                   f"{summary.elapsed_s:.1f} s", err=True)
        typer.echo(format_tables(summary.sources, summary.nodes), err=True)
        typer.echo(f"  wrote {join(params['out_dir'], SUMMARY_NAME)}", err=True)
    for result in summary.failed:  # last: the error lines are what the user reads
        typer.echo(f"rtseg: error: {result.tag}: {result.error}", err=True)
    return 2 if summary.failed else 0


_FLAGS = {"ray": "--ray", "out_dir": "--out-dir", "workers": "--ray-workers", "cpus_per_worker": "--cpus-per-worker",
          "gpus_per_worker": "--gpus-per-worker", "retries": "--retries", "split": "--split", "segment": "--segment"}
_BENCH_FLAGS = {**_FLAGS, "workers": "--workers", "ray_workers": "--ray-workers", "imgsz": "--imgsz",
                "backend": "--backend", "video_preset": "--video-preset", "repeats": "--repeats", "frames": "--frames",
                "json_out": "--json", "plot_out": "--plot"}


def _as_ray_flags(message: str, flags: dict[str, str] = _FLAGS) -> str:
    """rtseg.scale names its parameters (``workers=3: ...``); here they are this command's flags."""
    import re

    return re.sub(r"^(" + "|".join(flags) + r")=", lambda m: flags[m.group(1)] + " ", message)


# rtseg bench --ray: the scaling curve of a cluster (rtseg.scale.bench)
BenchRay = Annotated[Optional[str], typer.Option(
    "--ray", metavar="[ADDRESS]", rich_help_panel=PANEL, show_default=False,
    help="Measure a Ray cluster instead: --source (a comma list of files) through rtseg run --ray with 1, 2, ... N "
         "workers; aggregate FPS, speed-up and per-node stage latency per worker count (--json, --plot). ADDRESS as "
         "rtseg run --ray. See docs/scale-out.md.")]
BenchRayWorkers = Annotated[Optional[str], typer.Option(
    "--ray-workers", rich_help_panel=PANEL, help="With --ray: comma list of worker counts (1,2,4). Default: 1, 2, "
    "4, ... up to what the cluster's resources fit.")]
BenchOutDir = Annotated[Optional[Path], typer.Option(
    "--out-dir", rich_help_panel=PANEL, help="With --ray: where the runs write (each into a subfolder removed "
    "after it); on a cluster of several nodes a folder they all see. Default: a temporary folder here.")]
# bench options a cluster benchmark does not take, and the value each has when not given
_BENCH_REFUSED = {"synthetic": None, "live": None, "viewers": 0, "vs": None, "val": None, "precision": "fp32",
                  "calib": None, "batch": "1", "frame_path": "auto"}


def bench_ray(params: dict[str, Any]) -> int:
    """``rtseg bench --ray``: ``params`` are the bench command's arguments. Returns the exit code."""
    import json

    from rtseg.cli.common import check_report_paths
    from rtseg.config import DEFAULT_MODEL, check_options
    from rtseg.errors import ConfigError, RtsegError

    if params.get("ray") is None:
        raise fail("--ray-workers, --out-dir and --split go with --ray: rtseg bench --ray measures a cluster")
    given = [name for name, unset in _BENCH_REFUSED.items() if params.get(name) not in (unset, None)]
    if given:
        raise fail(f"--{given[0].replace('_', '-')} does not apply with --ray: it measures rtseg run --ray on --source")
    if not params.get("source"):
        raise fail("--ray needs --source: the video files to run (a comma list), each on storage every node sees")
    try:
        check_options(frames=params["frames"], repeats=params["repeats"])
        sources = [s.strip() for s in params["source"].split(",") if s.strip()]
        options = {name: _one(params, name) for name in ("imgsz", "backend", "workers", "video_preset")}
        imgsz = None if options["imgsz"] == "model" else _number(options["imgsz"], "imgsz")
        workers = None if options["workers"] == "auto" else _number(options["workers"], "workers")
        check_options(imgsz=imgsz, workers=workers)
        counts = None
        if params.get("ray_workers") is not None:
            counts = [_number(v, "ray_workers") for v in params["ray_workers"].split(",") if v.strip()]
            if not counts or min(counts) < 1:
                raise ConfigError(f"ray_workers={params['ray_workers']}: expected a comma list of worker counts, 1 "
                                  "or more")
        from rtseg.scale.split import parse_split

        split_s = parse_split(params.get("split"))
        check_report_paths(params.get("json_out"), params.get("plot_out"),
                           inputs=[params.get("model") or str(DEFAULT_MODEL), *sources])
        from rtseg.sources import open_source

        for source in sources:  # a bad source: one line here, before Ray starts
            open_source(source).close()
        from rtseg.scale.bench import bench_on_ray

        model_options = {"imgsz": imgsz, "device": params.get("device", "auto"), "backend": options["backend"],
                         "half": params.get("half", False), "workers": workers,
                         **({"semantic": params["semantic"]} if params.get("semantic") else {}),
                         **({"trust_weights": True} if params.get("trust") else {})}
        report = bench_on_ray(sources, address=params["ray"], worker_counts=counts, out_dir=params.get("out_dir"),
                              model=params.get("model") or None, model_options=model_options,
                              run_options={"max_frames": params["frames"], "video_preset": options["video_preset"]},
                              repeats=params["repeats"], split_s=split_s,
                              progress=lambda msg: typer.echo(f"rtseg bench: {msg}", err=True))
    except RtsegError as exc:
        raise fail(_as_ray_flags(str(exc), _BENCH_FLAGS)) from None
    except KeyboardInterrupt:
        raise fail("stopped", 130) from None
    from rtseg.bench.core import _machine, _versions
    from rtseg.bench.ray import format_scaling, plot_scaling
    from rtseg.sinks.atomic import write_bytes

    report = {"kind": "ray-scaling", "frames_per_source": params["frames"], "model": params.get("model") or
              str(DEFAULT_MODEL), **report, "machine": _machine(), "versions": _versions()}
    typer.echo(format_scaling(report))
    try:
        if params.get("json_out") is not None:
            write_bytes(params["json_out"], json.dumps(report, indent=2) + "\n", what="JSON")
        if params.get("plot_out") is not None:
            plot_scaling(report, params["plot_out"])
    except RtsegError as exc:
        raise fail(str(exc)) from None
    return 0


def _one(params: dict[str, Any], name: str) -> str:
    """A bench option that takes a comma list elsewhere: one value with --ray (one configuration measured)."""
    from rtseg.errors import ConfigError

    values = [v.strip() for v in str(params.get(name, "")).split(",") if v.strip()]
    if len(values) != 1:
        raise ConfigError(f"{name}={params.get(name)}: --ray measures one configuration; give one value")
    return values[0]


def _number(text: str, name: str) -> int:
    from rtseg.errors import ConfigError

    try:
        return int(text)
    except ValueError:
        raise ConfigError(f"{name}={text}: expected a whole number") from None
