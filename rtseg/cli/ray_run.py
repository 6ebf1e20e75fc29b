"""``rtseg run --ray [ADDRESS] SOURCES... --out-dir DIR``: the options, and the command's cluster branch (a
progress bar over the cluster's frames, the tables, ``cluster_summary.json``, exit codes).

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
OutDir = Annotated[Optional[Path], typer.Option(
    "--out-dir", rich_help_panel=PANEL, help="With --ray: a folder every worker can write (shared storage): "
    "SOURCE.mp4 and SOURCE.jsonl per source, cluster_summary.json. A rerun skips sources already complete.")]
RayWorkers = Annotated[Optional[int], typer.Option(
    "--ray-workers", rich_help_panel=PANEL, help="With --ray: how many workers (each loads the model once). "
    "Default: as many as the cluster's resources allow, at most one per source.")]
CpusPerWorker = Annotated[float, typer.Option(
    "--cpus-per-worker", rich_help_panel=PANEL, help="With --ray: CPUs each worker reserves (Ray num_cpus).")]
GpusPerWorker = Annotated[Optional[float], typer.Option(
    "--gpus-per-worker", rich_help_panel=PANEL, help="With --ray: GPUs each worker reserves (Ray num_gpus; 0.5: "
    "two workers share a GPU). Default: 1 when the cluster has GPUs, else 0.")]
Retries = Annotated[int, typer.Option(
    "--retries", rich_help_panel=PANEL, help="With --ray: times a source goes out again after its worker died "
    "(node lost, process killed). A source that fails on its own (a corrupt file) is not retried.")]

# rtseg.run options a worker applies to each source; the others write files or serve, which --out-dir replaces
PASSED = ("track", "trails", "max_frames", "batch", "video_preset", "hud", "alpha", "semantic_alpha", "image_fps",
          "blur", "blur_style", "blur_only", "panoptic", "style", "boundary_width")
REFUSED = ("out", "jsonl", "show", "save_frames", "save_labels", "serve", "webhook", "mqtt", "segment", "zones",
           "zone", "line", "report", "heatmap", "heatmap_overlay", "background", "save_panoptic", "save_boundaries")


def ray_alone(argv: list[str]) -> list[str]:
    """``--ray`` with no address means ``--ray=`` ($RAY_ADDRESS or a local Ray): typer options take a value,
    and the word after ``--ray`` is often the first source."""
    from rtseg.scale.plan import looks_like_address

    out = list(argv)
    for i, arg in enumerate(out):
        if arg == "--ray" and (i + 1 == len(out) or not looks_like_address(out[i + 1])):
            out[i] = "--ray="
    return out


def run_ray(sources: list[str], params: dict[str, Any], model_options: dict[str, Any]) -> int:
    """The cluster branch of ``rtseg run``: ``params`` are the command's arguments, ``model_options`` the
    :func:`rtseg.load_model` keywords it built. Returns the exit code."""
    from rtseg.errors import RtsegError

    if params.get("out_dir") is None:
        raise fail("--ray needs --out-dir DIR: a folder every worker can write")
    if params.get("ray") is None:
        raise fail("--out-dir goes with --ray; for one machine use --out and --jsonl")
    given = [name for name in REFUSED if params.get(name) not in (None, False, (), [], "")]
    if given:
        flag = "--" + given[0].replace("_", "-")
        raise fail(f"{flag} does not apply with --ray: each source's video and JSONL go to --out-dir")
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
                             on_start=on_start, on_progress=on_progress)
    except RtsegError as exc:
        raise fail(_as_ray_flags(str(exc))) from None
    except KeyboardInterrupt:
        raise fail("stopped; sources already complete are kept, and the same command resumes", 130) from None
    finally:
        if "bar" in bar:
            bar["bar"].close()
    from rtseg.scale.plan import SUMMARY_NAME, format_tables

    if not quiet:
        done = sum(r.frames for r in summary.sources if r.status == "ok")
        typer.echo(f"{len(summary.sources)} sources on {summary.workers} Ray workers: {done} frames in "
                   f"{summary.elapsed_s:.1f} s", err=True)
        typer.echo(format_tables(summary.sources, summary.nodes), err=True)
        typer.echo(f"  wrote {Path(params['out_dir']) / SUMMARY_NAME}", err=True)
    for result in summary.failed:  # last: the error lines are what the user reads
        typer.echo(f"rtseg: error: {result.tag}: {result.error}", err=True)
    return 2 if summary.failed else 0


_FLAGS = {"ray": "--ray", "out_dir": "--out-dir", "workers": "--ray-workers", "cpus_per_worker": "--cpus-per-worker",
          "gpus_per_worker": "--gpus-per-worker", "retries": "--retries"}


def _as_ray_flags(message: str) -> str:
    """rtseg.scale names its parameters (``workers=3: ...``); here they are this command's flags."""
    import re

    return re.sub(r"^(" + "|".join(_FLAGS) + r")=", lambda m: _FLAGS[m.group(1)] + " ", message)
