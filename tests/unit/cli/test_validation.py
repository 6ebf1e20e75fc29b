"""The command line's side of option checking: ranges and defaults in ``--help``, flags shown as flags, typer's
own usage errors (a value of the wrong type, an unknown option) as one ``rtseg: error:`` line with exit 2."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from rtseg.cli.app import app
from rtseg.cli.common import as_flags
from rtseg.config import LIMITS, max_workers

COMMANDS = ["run", "demo", "bench", "eval", "train", "export", "convert", "serve"]


def _help(command: str) -> str:
    result = CliRunner().invoke(app, [command, "--help"], prog_name="rtseg", env={"COLUMNS": "1000"})
    assert result.exit_code == 0, result.output
    return result.stdout


def _row(text: str, flag: str) -> str:
    """The help row of ``flag`` (one line at a width of 1000 columns)."""
    rows = [line for line in text.splitlines() if line.lstrip("│ ").startswith(flag + " ")]
    assert rows, f"{flag} not in help"
    return rows[0]


@pytest.mark.parametrize("command", COMMANDS)
def test_help_shows_flags_as_flags(command: str) -> None:
    text = _help(command)
    assert "<bool>" not in text and "BOOLEAN" not in text.upper()


@pytest.mark.parametrize(("command", "flag", "name"), [
    ("run", "--imgsz", "imgsz"), ("run", "--tile", "tile"), ("run", "--workers", "workers"), ("run", "--conf", "conf"),
    ("run", "--image-fps", "image_fps"), ("run", "--overlap", "overlap"), ("run", "--batch", "batch"),
    ("bench", "--imgsz", "imgsz"), ("bench", "--workers", "workers"), ("bench", "--live", "live_fps"),
    ("eval", "--imgsz", "imgsz"), ("eval", "--conf", "conf"), ("train", "--epochs", "epochs"),
    ("train", "--lr", "lr"), ("train", "--crop", "crop"), ("export", "--imgsz", "imgsz"),
    ("export", "--workspace", "workspace_gb"),
])
def test_help_shows_the_range_the_library_checks(command: str, flag: str, name: str) -> None:
    assert f"(range: {LIMITS[name].describe()})" in _row(_help(command), flag)


def test_help_ranges_are_this_machine_s() -> None:
    text = _help("run")
    assert "(range: 32..4096)" in _row(text, "--imgsz") and "(range: 32..8192)" in _row(text, "--tile")
    assert f"(range: 1..{max_workers()})" in _row(text, "--workers")
    assert "(range: 0..1) [default: 0.25]" in _row(text, "--conf")


@pytest.mark.parametrize("flag", ["--classes", "--tile", "--max-frames"])
def test_help_says_what_an_unset_option_means(flag: str) -> None:
    assert "Default:" in _row(_help("run"), flag)


@pytest.mark.parametrize(("args", "line"), [
    (["run", "x.mp4", "--imgsz", "abc"], "rtseg: error: --imgsz 'abc': expected a whole number, 32..4096"),
    (["run", "x.mp4", "--imgsz=²"], "rtseg: error: --imgsz '²': expected a whole number, 32..4096"),
    (["run", "x.mp4", "--conf", "high"], "rtseg: error: --conf 'high': expected a number, 0..1"),
    (["run", "x.mp4", "--bogus"], "rtseg: error: --bogus: no such option"),
    (["run", "x.mp4", "--imgsz"], "rtseg: error: --imgsz needs a value"),
    (["run"], "rtseg: error: missing SOURCES"),
    (["eval", "--model", "m.pt"], "rtseg: error: --data is required"),
    (["train", "--data", "d", "--out", "m.pt", "--epochs", "1.5"], "rtseg: error: --epochs '1.5': expected a whole"),
    (["bogus"], "rtseg: error: No such command 'bogus'"),
])
def test_typer_s_usage_errors_are_one_line(args: list[str], line: str) -> None:
    result = CliRunner().invoke(app, args, prog_name="rtseg")
    lines = [text for text in result.stderr.splitlines() if text.strip()]
    assert result.exit_code == 2
    assert len(lines) == 1 and lines[0].startswith(line), result.stderr
    assert "Traceback" not in result.output and "╭" not in result.stderr


@pytest.mark.parametrize(("message", "expected"), [
    ("live_fps=0: expected above 0, up to 1000", "--live 0: expected above 0, up to 1000"),
    ("val_every=1: expected 2 or more", "--val-every 1: expected 2 or more"),
    ("colour=2: expected 0..1", "--colour 2: expected 0..1"),
])
def test_the_new_parameters_read_as_their_flags(message: str, expected: str) -> None:
    assert as_flags(message) == expected
