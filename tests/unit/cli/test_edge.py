"""The command's edge (rtseg.cli.edge): every failure leaves a command as one line and an exit code."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
import typer

from rtseg.cli.edge import first_line, guard
from rtseg.errors import ModelError


@pytest.fixture(autouse=True)
def not_verbose() -> Iterator[None]:
    """As a command without --verbose (another test may have turned rtseg's logger to INFO)."""
    logger = logging.getLogger("rtseg")
    level = logger.level
    logger.setLevel(logging.WARNING)
    yield
    logger.setLevel(level)


def _exit_of(exc: BaseException, capsys: pytest.CaptureFixture[str],
             monkeypatch: pytest.MonkeyPatch) -> tuple[int, str]:
    monkeypatch.delenv("RTSEG_DEBUG", raising=False)

    @guard("training with Ultralytics")
    def command() -> None:
        raise exc

    with pytest.raises(typer.Exit) as info:
        command()
    return info.value.exit_code, capsys.readouterr().err


@pytest.mark.parametrize(("exc", "code", "line"), [
    (ModelError("cannot load x.pt: the file is truncated"), 2, "rtseg: error: cannot load x.pt: the file is truncated"),
    (FileNotFoundError("\x1b[34m\x1b[1mval: \x1b[0mError loading data from /d/images/val\nSee https://docs"), 2,
     "rtseg: error: training with Ultralytics failed: val: Error loading data from /d/images/val"),
    (PermissionError(13, "Permission denied", "/d/x.jpg"), 2,
     "rtseg: error: training with Ultralytics failed: Permission denied: /d/x.jpg"),
    (MemoryError(), 2, "rtseg: error: training with Ultralytics failed: out of memory"),
    (RuntimeError("\x1b[31mCUDA error: device-side assert\x1b[0m\n  more"), 3,
     "rtseg: error: training with Ultralytics failed: CUDA error: device-side assert (RTSEG_DEBUG=1 shows the "
     "traceback)"),
    (KeyError("names"), 3, "rtseg: error: training with Ultralytics failed: KeyError: 'names' (RTSEG_DEBUG=1 shows "
                           "the traceback)"),
    (KeyboardInterrupt(), 130, "rtseg: interrupted while training with Ultralytics"),
], ids=["rtseg", "dependency-oserror", "permission", "memory", "dependency", "terse", "ctrl-c"])
def test_failures_become_one_line(exc: BaseException, code: int, line: str, capsys: pytest.CaptureFixture[str],
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    assert _exit_of(exc, capsys, monkeypatch) == (code, line + "\n")


def test_decided_exits_pass_through(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    assert _exit_of(typer.Exit(130), capsys, monkeypatch) == (130, "")
    with guard("running"):
        pass  # nothing happens on success


def test_inner_guard_names_the_step_and_the_outer_one_keeps_it(capsys: pytest.CaptureFixture[str]) -> None:
    @guard("training")
    def command() -> None:
        with guard("converting the data set"):
            raise ValueError("bad polygon")

    with pytest.raises(typer.Exit) as info:
        command()
    assert info.value.exit_code == 3
    assert capsys.readouterr().err.startswith("rtseg: error: converting the data set failed: ValueError: bad polygon")


def test_traceback_with_rtseg_debug(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RTSEG_DEBUG", "1")
    with pytest.raises(typer.Exit):
        with guard("evaluating"):
            raise RuntimeError("boom")
    err = capsys.readouterr().err
    assert err.startswith("Traceback") and err.endswith("rtseg: error: evaluating failed: boom\n")


def test_first_line() -> None:
    assert first_line(RuntimeError("\n\n  \x1b[1mfirst\x1b[0m  \nsecond")) == "first"
    assert first_line(RuntimeError()) == "RuntimeError"
    assert first_line(OSError(28, "No space left on device")) == "No space left on device"
