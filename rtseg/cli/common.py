"""Helpers shared by the command modules: logging setup and the one-line error exit."""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Sequence
from pathlib import Path

import typer

from rtseg.backends.weights import trust_weights
from rtseg.errors import ConfigError


def setup_logging(verbose: bool) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("rtseg: %(levelname)s: %(message)s"))
    root = logging.getLogger("rtseg")
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO if verbose else logging.WARNING)
    root.propagate = False


# library parameters (rtseg.load_model, rtseg.run, ...) and their command-line flags
PARAMS = ("model semantic backend device half imgsz semantic_imgsz conf iou classes nms tile overlap tile_full "
          "tile_merge quality pad morph_open morph_close min_area class_file workers sources out jsonl show "
          "save_frames save_labels track trails max_frames batch video_preset hud alpha semantic_alpha image_fps "
          "format dynamic int8 calib calib_frames precision val val_split val_labels max_drop force max_batch "
          "workspace frames warmup repeats json_out plot_out live "
          "synthetic source split labels images epochs minutes crop scale flips loss lr encoder workspace_gb "
          "frame_path open_px close_px val_every colour live_fps serve serve_token webhook mqtt every on_change "
          "event_masks reconnect stall_timeout segment zones zone line zone_overlap zone_anchor report heatmap "
          "heatmap_overlay heatmap_decay_s blur blur_style blur_only background viewers "
          "tolerance review_below scene_threshold scales flip "
          "panoptic save_panoptic save_boundaries boundary_width style panoptic_masks").split()
FLAGS = {"quality": "--semantic-quality", "json_out": "--json", "plot_out": "--plot", "workspace_gb": "--workspace",
         "open_px": "--morph-open", "close_px": "--morph-close", "live_fps": "--live",
         "heatmap_decay_s": "--heatmap-decay"}
OFF_FLAGS = {"dynamic": "--static"}  # name=False on the command line; default --no-name
_NAMES = "|".join(sorted(PARAMS, key=len, reverse=True))
_SWITCHED = re.compile(r"(?:^|(?<=[\s(]))(" + _NAMES + r")=(True|False)\b")  # half=True -> --half
_ASSIGNED = re.compile(r"(?:^|(?<=[\s(]))(" + _NAMES + r")=")  # conf=2
# save_labels needs ...: only before a verb, so that "model file not found" stays prose
_LEADING = re.compile(r"^(" + _NAMES + r")(?= (?:needs|is|are|and|or|with|without|must|lists|applies|only|has)\b)")


def as_flags(message: str) -> str:
    """A library error names parameters (``conf=2: expected ...``, ``save_labels needs ...``); on the command
    line the same words name flags (``--conf 2: expected ...``, ``--save-labels needs ...``)."""
    def flag(name: str) -> str:
        return FLAGS.get(name, "--" + name.replace("_", "-"))

    def switch(match: re.Match) -> str:
        name = match.group(1)
        return flag(name) if match.group(2) == "True" else OFF_FLAGS.get(name, "--no-" + name.replace("_", "-"))

    message = _SWITCHED.sub(switch, message)
    message = _ASSIGNED.sub(lambda m: flag(m.group(1)) + " ", message)
    return _LEADING.sub(lambda m: flag(m.group(1)), message)


def fail(message: str, code: int = 2) -> typer.Exit:
    typer.echo(f"rtseg: error: {as_flags(message)}", err=True)
    return typer.Exit(code)


TRUST_WEIGHTS_HELP = ("Unpickle .pt weights fully, running any code the file carries: only for files you trust "
                      "(or set RTSEG_TRUST_WEIGHTS=1). Default: weights load as data (tensors and the classes of "
                      "Ultralytics YOLO-seg and rtseg checkpoints); anything else is refused.")


def apply_trust(trust: bool) -> None:
    """``--trust-weights``: from here on this process unpickles ``.pt`` files fully (see rtseg.backends.weights)."""
    if trust:
        trust_weights(True)


def check_plot_format(param: str, path: Path) -> None:
    """A figure path whose suffix matplotlib cannot write fails now, not after the work (none: PNG)."""
    suffix = path.suffix.lower().lstrip(".")
    if suffix:
        from matplotlib.backend_bases import FigureCanvasBase

        formats = FigureCanvasBase.get_supported_filetypes()
        if suffix not in formats:
            raise ConfigError(f"{param}={path}: not a figure format; use .png, .pdf, .svg or another of "
                              f"{', '.join(sorted(formats))}")


def data_inputs(data: Path) -> list[Path]:
    """Files of a data set (``--data``) that no output may replace: the data file itself, or a data folder's
    class list and data.yaml."""
    if data.is_dir():
        return [data / name for name in ("classes.txt", "classes.json", "data.yaml")]
    return [data]


def check_report_paths(json_out: Path | None, plot_out: Path | None, *, inputs: Sequence[str | Path] = ()) -> None:
    """``--json`` / ``--plot`` of ``eval`` and ``bench``, before any work: writable, a figure format, neither an
    input nor one path."""
    from rtseg.sinks.base import OutputPath, check_output_paths

    outputs = [OutputPath("json_out", json_out, what="JSON")] if json_out is not None else []
    if plot_out is not None:
        check_plot_format("plot_out", plot_out)
        outputs.append(OutputPath("plot_out", plot_out, what="plot"))
    check_output_paths(outputs, inputs=inputs)
