"""Settings every layer may read: the package version, the bundled model, the process environment rtseg runs
best in (quiet native libraries, no package installs behind the user's back), and the accepted range of every
numeric option (:data:`LIMITS`, checked by :func:`check_options`)."""

from __future__ import annotations

import functools
import hashlib
import math
import numbers
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from rtseg.errors import ConfigError

__version__ = "0.1.0"

ASSETS = Path(__file__).parent / "assets"
DEFAULT_MODEL = ASSETS / "yolo11n-seg-person-cat-dog.pt"  # see assets/MODEL_CARD.md
# MediaPipe selfie segmenter, converted (assets/MODEL_CARD.md): people on webcams, the background mask
PEOPLE_MODEL = ASSETS / "selfie_segmentation_landscape.pt"
FULL_MODEL_HINT = ("the bundled model knows person, cat and dog only; for the 80 COCO classes pass "
                   "--model yolo26n-seg.pt (downloaded once when online)")


def cache_dir() -> Path:
    """Where rtseg keeps derived files (exported models, what a checkpoint holds): ``$RTSEG_CACHE``, else
    ``~/.cache/rtseg``."""
    return Path(os.environ.get("RTSEG_CACHE") or Path.home() / ".cache" / "rtseg")


def file_digest(path: str | Path) -> str:
    """SHA-256 of a file's content (hex): the key of what the cache derives from it. Computed once per file
    version in a process (keyed by path, size and modification time): a run looks a ``.pt`` up twice, for what
    it holds and for its ONNX export."""
    path = Path(path)
    stat = path.stat()
    return _digest(str(path.resolve()), stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=32)
def _digest(path: str, size: int, mtime_ns: int) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def quiet_environment() -> None:
    """Set (unless the user did) the variables that keep OpenCV, FFmpeg and Ultralytics from printing around
    rtseg's own one-line errors, and Ultralytics from pip-installing packages at run time. Call it before
    those libraries are imported; :mod:`rtseg` does, on import."""
    os.environ.setdefault("OPENCV_LOG_LEVEL", "OFF")
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")
    os.environ.setdefault("YOLO_VERBOSE", "False")
    os.environ.setdefault("YOLO_AUTOINSTALL", "False")


NO_LIMITS_ENV = "RTSEG_NO_LIMITS"  # =1 lifts the memory guards below (the sizes' upper ends)


@dataclass(frozen=True)
class Limit:
    """The accepted range of one numeric option: ``low <= value <= high`` (``low < value`` when ``above``)."""

    low: float
    high: float | None = None  # None: no upper end
    integer: bool = True
    above: bool = False  # the low end itself is refused (a rate or a duration must be above 0)
    memory: bool = False  # the upper end guards memory; RTSEG_NO_LIMITS=1 lifts it

    def describe(self) -> str:
        """The range as ``--help`` and error messages show it: ``32..4096``, ``1 or more``, ``above 0, up to 1000``."""
        if self.above:
            return f"above {self.low:g}" + (f", up to {self.high:g}" if self.high is not None else "")
        return f"{self.low:g}..{self.high:g}" if self.high is not None else f"{self.low:g} or more"


def max_workers() -> int:
    """The most inference calls in flight that this machine can use: twice its cores, at most 16 (each ONNX
    Runtime session holds a copy of the model; beyond that they only contend for the same cores)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, min(16, 2 * cores))


# One table for the library (rtseg.load_model, rtseg.run, rtseg.export, bench, train) and the command line,
# which shows these ranges in --help. Sizes have upper ends because memory grows with their square: a typo
# such as imgsz=100000 would otherwise allocate gigabytes before the first frame.
LIMITS: dict[str, Limit] = {
    "imgsz": Limit(32, 4096, memory=True),
    "semantic_imgsz": Limit(32, 4096, memory=True),
    "tile": Limit(32, 8192, memory=True),
    "crop": Limit(32, 4096, memory=True),
    "synthetic": Limit(32, 8192, memory=True),  # each side of rtseg bench's generated frames
    "pad": Limit(0, 1024),
    "morph_open": Limit(0, 255),
    "morph_close": Limit(0, 255),
    "min_area": Limit(0),
    "conf": Limit(0, 1, integer=False),
    "iou": Limit(0, 1, integer=False),
    "overlap": Limit(0, 0.9, integer=False),
    "alpha": Limit(0, 1, integer=False),
    "semantic_alpha": Limit(0, 1, integer=False),
    "colour": Limit(0, 1, integer=False),
    "workers": Limit(1, max_workers()),
    "batch": Limit(1, 256),
    "max_batch": Limit(1, 256),
    "max_frames": Limit(1),
    "trails": Limit(0, 10000),
    "frames": Limit(1),
    "warmup": Limit(0),
    "repeats": Limit(1, 100),
    "viewers": Limit(0, 64),
    "epochs": Limit(1),
    "val_every": Limit(2),
    "image_fps": Limit(0, 1000, integer=False, above=True),
    "live_fps": Limit(0, 1000, integer=False, above=True),
    "minutes": Limit(0, integer=False, above=True),
    "lr": Limit(0, integer=False, above=True),  # too high a rate is caught as divergence, with its value
    "workspace_gb": Limit(0, 1024, integer=False, above=True),
    "every": Limit(1),  # event outputs: every Nth frame
    "reconnect": Limit(0),  # attempts in a row before a live stream is given up (None: forever)
    "stall_timeout": Limit(0, 3600, integer=False, above=True),
}


def _shown(value: object) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    return repr(value) if isinstance(value, (str, bool)) else str(value)


def check_option(name: str, value: object) -> None:
    """Refuse ``value`` for option ``name`` unless it lies in ``LIMITS[name]`` (None, the default, passes; a
    size may also be a sequence such as ``(height, width)``, each checked).

    Raises:
        ConfigError: ``imgsz=0: expected 32..4096``: the message names the parameter, which the command line
            turns into its flag.
    """
    limit = LIMITS[name]
    if value is None:
        return
    if limit.memory and isinstance(value, Sequence) and not isinstance(value, str) and value:
        for item in value:
            check_option(name, item)
        return
    integral = isinstance(value, numbers.Integral) and not isinstance(value, bool)
    real = integral or (isinstance(value, numbers.Real) and not isinstance(value, bool))
    if limit.integer and not integral:
        raise ConfigError(f"{name}={_shown(value)}: expected a whole number, {limit.describe()}")
    if not real or not math.isfinite(float(value)):  # type: ignore[arg-type]
        raise ConfigError(f"{name}={_shown(value)}: expected a finite number, {limit.describe()}")
    number = float(value)  # type: ignore[arg-type]
    too_low = number <= limit.low if limit.above else number < limit.low
    too_high = limit.high is not None and number > limit.high
    if too_high and limit.memory and os.environ.get(NO_LIMITS_ENV, "") not in ("", "0"):
        too_high = False
    if too_low or too_high:
        hint = ""
        if too_high and limit.memory:
            hint = f" (memory grows with its square; {NO_LIMITS_ENV}=1 lifts the upper end)"
        elif too_high and name == "workers":
            hint = " (twice this machine's cores, at most 16)"
        raise ConfigError(f"{name}={_shown(value)}: expected {limit.describe()}{hint}")


def check_classes(classes: object) -> None:
    """A class filter (``"person,dog"``, ``"0,16"``, ``["person", 16]``) names at least one class: an empty
    one (``""``, ``",,,"``, ``[]``) would silently keep every class. Whether the ids and names exist is for
    the model to say, once loaded."""
    if classes is None:
        return
    items = classes.split(",") if isinstance(classes, str) else list(classes)  # type: ignore[call-overload]
    if not [item for item in items if str(item).strip()]:
        raise ConfigError(f"classes={classes!r}: name at least one class id or name")


def check_options(**values: object) -> None:
    """:func:`check_option` for each ``name=value`` that has a range in :data:`LIMITS`, and
    :func:`check_classes` for ``classes``, :func:`parse_scales` for ``scales``; other names are skipped.

    Example:
        >>> from rtseg.config import check_options
        >>> check_options(imgsz=640, conf=0.25, tile=None)
        >>> check_options(imgsz=0)
        Traceback (most recent call last):
        rtseg.errors.ConfigError: imgsz=0: expected 32..4096
    """
    for name, value in values.items():
        if name in LIMITS:
            check_option(name, value)
        elif name == "classes":
            check_classes(value)
        elif name == "scales":
            parse_scales(value)  # type: ignore[arg-type]


MAX_SCALE = 4.0  # semantic multi-scale inference: memory grows with the square of the scale


def parse_scales(scales: Sequence[float] | str) -> tuple[float, ...]:
    """Semantic multi-scale factors from ``"0.5,1,1.5"`` or a sequence, each checked.

    Raises:
        ConfigError: an empty list, a value that is not a number, or one outside (0, 4].

    Example:
        >>> parse_scales("0.5,1,1.5"), parse_scales([1])
        ((0.5, 1.0, 1.5), (1.0,))
    """
    text = scales if isinstance(scales, str) else ",".join(str(v) for v in scales)
    try:
        values = tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise ConfigError(f"scales={text!r}: expected comma-separated numbers, e.g. 0.5,1.0,1.5") from None
    if not values:
        raise ConfigError(f"scales={text!r}: expected at least one scale, e.g. 1.0 (the model's own size)")
    bad = [v for v in values if not 0 < v <= MAX_SCALE]
    if bad:
        raise ConfigError(f"scales={text}: {bad[0]:g} is out of range; each scale must be above 0 and at most "
                          f"{MAX_SCALE:g} (1.0 = the model's own size)")
    return values
