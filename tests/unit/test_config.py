"""rtseg.config: the one table of option ranges (LIMITS) and its checks."""

from __future__ import annotations

import math

import numpy as np
import pytest

from rtseg import config
from rtseg.config import LIMITS, check_classes, check_option, check_options, max_workers
from rtseg.errors import ConfigError


@pytest.mark.parametrize(("name", "value", "message"), [
    ("imgsz", 0, "imgsz=0: expected 32..4096"),
    ("imgsz", -5, "imgsz=-5: expected 32..4096"),
    ("imgsz", 31, "imgsz=31: expected 32..4096"),
    ("imgsz", 640.5, "imgsz=640.5: expected a whole number, 32..4096"),
    ("imgsz", True, "imgsz=True: expected a whole number, 32..4096"),
    ("imgsz", "640", "imgsz='640': expected a whole number, 32..4096"),
    ("imgsz", (640, 0), "imgsz=0: expected 32..4096"),
    ("tile", 0, "tile=0: expected 32..8192"),
    ("conf", math.nan, "conf=nan: expected a finite number, 0..1"),
    ("conf", 1.5, "conf=1.5: expected 0..1"),
    ("iou", -math.inf, "iou=-inf: expected a finite number, 0..1"),
    ("overlap", 0.95, "overlap=0.95: expected 0..0.9"),
    ("image_fps", 0.0, "image_fps=0: expected above 0, up to 1000"),
    ("image_fps", -5, "image_fps=-5: expected above 0, up to 1000"),
    ("image_fps", math.inf, "image_fps=inf: expected a finite number, above 0, up to 1000"),
    ("image_fps", 1001, "image_fps=1001: expected above 0, up to 1000"),
    ("minutes", 0, "minutes=0: expected above 0"),
    ("max_frames", 0, "max_frames=0: expected 1 or more"),
    ("batch", 257, "batch=257: expected 1..256"),
    ("warmup", -1, "warmup=-1: expected 0 or more"),
])
def test_out_of_range_values_are_refused_in_the_parameter_s_name(name: str, value: object, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        check_option(name, value)
    assert str(info.value).startswith(message)


@pytest.mark.parametrize(("name", "value"), [
    ("imgsz", None), ("imgsz", 32), ("imgsz", 4096), ("imgsz", np.int64(640)), ("imgsz", (480, 640)),
    ("tile", 8192), ("conf", 0), ("conf", 1.0), ("overlap", 0.9), ("image_fps", 0.5), ("image_fps", 1000),
    ("workers", 1), ("max_frames", 10**9), ("lr", 1e-5), ("minutes", 0.01),
])
def test_values_in_range_pass(name: str, value: object) -> None:
    check_option(name, value)


def test_only_the_sizes_upper_ends_yield_to_the_escape(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError, match=r"RTSEG_NO_LIMITS=1 lifts the upper end"):
        check_option("imgsz", 100000)
    monkeypatch.setenv("RTSEG_NO_LIMITS", "1")
    check_options(imgsz=100000, tile=100000, semantic_imgsz=5000)
    for name, value in (("imgsz", 0), ("conf", 2.0), ("workers", 1000), ("batch", 100000)):
        with pytest.raises(ConfigError):
            check_option(name, value)


def test_workers_are_bounded_by_the_machine(monkeypatch: pytest.MonkeyPatch) -> None:
    assert LIMITS["workers"].high == max_workers()
    with pytest.raises(ConfigError, match=r"^workers=1000: expected 1\.\.\d+ \(twice this machine's cores"):
        check_option("workers", 1000)
    monkeypatch.setattr(config.os, "sched_getaffinity", lambda _pid: {0, 1}, raising=False)
    assert max_workers() == 4
    monkeypatch.setattr(config.os, "sched_getaffinity", lambda _pid: set(range(64)), raising=False)
    assert max_workers() == 16


@pytest.mark.parametrize("classes", ["", ",,,", " , ", [], ["", " "]])
def test_an_empty_class_filter_is_refused(classes: object) -> None:
    with pytest.raises(ConfigError, match=r"^classes=.*: name at least one class id or name"):
        check_classes(classes)
    with pytest.raises(ConfigError):
        check_options(classes=classes)


def test_check_options_skips_names_without_a_range() -> None:
    check_options(model="x.pt", classes="person", device="cpu", imgsz=None, conf=0.5)


def test_every_range_reads_as_help_text() -> None:
    assert LIMITS["imgsz"].describe() == "32..4096"
    assert LIMITS["conf"].describe() == "0..1"
    assert LIMITS["min_area"].describe() == "0 or more"
    assert LIMITS["image_fps"].describe() == "above 0, up to 1000"
    assert all(limit.describe() for limit in LIMITS.values())
