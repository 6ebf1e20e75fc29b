"""The command's edge: whatever goes wrong inside a command reaches the user as one line of rtseg's own.

* :class:`guard` wraps each command: an :class:`~rtseg.errors.RtsegError` becomes ``rtseg: error: ...`` and
  exit code 2; an exception from a dependency (Ultralytics' trainer, PyTorch, OpenCV, PyAV, ONNX Runtime)
  becomes ``rtseg: error: <what rtseg was doing> failed: <its first line, colour codes removed>`` and exit
  code 3 (2 for a file-system refusal or an exhausted memory: the input or the machine, not a bug); Ctrl-C
  or SIGTERM (:func:`sigterm_as_ctrl_c`) outside a run's own handling, exit code 130. The traceback is shown
  only with ``--verbose`` or ``RTSEG_DEBUG=1``.
* :func:`route_native_stderr` sends what native libraries print straight to file descriptor 2 (libjpeg's
  ``Premature end of JPEG file``, ``libpng error``, FFmpeg, PyTorch's C++ warnings) and Python warnings
  to the log (``--verbose`` shows them), so they never surround the one-line error or the progress bar.
* :func:`leave` ends the process at once after a stop, outputs finalized: without the interpreter's slow
  teardown, and without tearing down under a stage thread still inside a native call (a stalled stream's
  read, one huge frame's inference), which aborts the process (ONNX Runtime: ``terminate called``).
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import sys
import threading
import traceback
import warnings
from types import TracebackType

import typer

from rtseg.cli.common import fail
from rtseg.errors import RtsegError

LOGGER = logging.getLogger("rtseg.cli")
NATIVE = logging.getLogger("rtseg.native")
ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]")  # colour and cursor codes (Ultralytics colours its errors)
DEBUG_ENV = "RTSEG_DEBUG"
INTERNAL = 3  # exit code of a failure rtseg did not anticipate (a dependency's exception)
# a bare message of these says little without the type's name ("'names'" for a KeyError)
_TERSE = (KeyError, IndexError, AttributeError, TypeError, ValueError, AssertionError, ZeroDivisionError,
          NameError, NotImplementedError, LookupError, ArithmeticError)


def debug_wanted() -> bool:
    """``RTSEG_DEBUG=1``: tracebacks, and native libraries print to the terminal as they like."""
    return os.environ.get(DEBUG_ENV, "").strip().lower() not in ("", "0", "false", "no")


def first_line(exc: BaseException) -> str:
    """An exception in one line: its first non-empty line, colour codes removed; the type's name when the
    message alone says little; an OSError's reason and file."""
    if isinstance(exc, OSError) and exc.strerror:
        return f"{exc.strerror}: {exc.filename}" if exc.filename else exc.strerror
    lines = [ANSI.sub("", line).strip() for line in str(exc).splitlines()]
    text = next((line for line in lines if line), "")[:300]
    if not text:
        return type(exc).__name__
    return f"{type(exc).__name__}: {text}" if isinstance(exc, _TERSE) else text


class guard(contextlib.ContextDecorator):  # noqa: N801 - used as a decorator, named as one
    """Around a command (``@guard("training")``) or one step of it (``with guard("training with
    Ultralytics"):``): every failure leaves as one line on stderr and an exit code.

    Args:
        doing: what rtseg was doing, as the error line says it: ``rtseg: error: <doing> failed: ...``.
    """

    def __init__(self, doing: str) -> None:
        self.doing = doing

    def __enter__(self) -> guard:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> bool:
        if exc is None or isinstance(exc, (typer.Exit, typer.Abort, typer.TyperException, SystemExit)):
            return False  # an exit already decided (an inner guard's, typer's usage errors)
        if isinstance(exc, RtsegError):
            self._trace(exc)
            raise fail(str(exc)) from None
        if isinstance(exc, KeyboardInterrupt):  # Ctrl-C, or SIGTERM (sigterm_as_ctrl_c): asked for, no error
            typer.echo(f"rtseg: interrupted while {self.doing}", err=True)
            raise typer.Exit(130) from None
        if not isinstance(exc, Exception):
            return False
        self._trace(exc)
        if isinstance(exc, (OSError, MemoryError)):  # the file system or the machine said no: not a bug
            reason = "out of memory" if isinstance(exc, MemoryError) else first_line(exc)
            raise fail(f"{self.doing} failed: {reason}") from None
        hint = "" if _verbose() else f" ({DEBUG_ENV}=1 shows the traceback)"
        raise fail(f"{self.doing} failed: {first_line(exc)}{hint}", INTERNAL) from None

    @staticmethod
    def _trace(exc: BaseException) -> None:
        if _verbose():  # before the one line, which stays the last thing said
            traceback.print_exception(exc, file=sys.stderr)
            sys.stderr.flush()


def _verbose() -> bool:
    return debug_wanted() or logging.getLogger("rtseg").isEnabledFor(logging.INFO)


_routed = False


def route_native_stderr() -> None:
    """From here on, file descriptor 2 is a pipe whose lines go to the log (logger ``rtseg.native``, INFO:
    shown with ``--verbose``), while Python's ``sys.stderr`` (rtseg's messages, the progress bar,
    tracebacks) keeps the terminal. Python warnings go to the log too. Nothing with ``RTSEG_DEBUG=1``.

    Native libraries write to descriptor 2 themselves, from any thread, with no switch to turn them off
    (libjpeg, libpng and FFmpeg inside OpenCV, PyTorch's C++ side): only the descriptor can be moved.
    A fatal signal's report (:mod:`faulthandler`) still reaches the terminal.
    """
    global _routed
    if _routed or debug_wanted():
        return
    try:
        sys.stderr.flush()
        terminal = os.dup(2)
        read_fd, write_fd = os.pipe()
        os.dup2(write_fd, 2)
        os.close(write_fd)
    except (OSError, ValueError, AttributeError):  # no descriptor 2 to move (embedded, closed): leave it
        return
    _routed = True
    encoding = getattr(sys.stderr, "encoding", None) or "utf-8"
    sys.stderr = open(terminal, "w", buffering=1, encoding=encoding, errors="backslashreplace")  # noqa: SIM115
    with contextlib.suppress(Exception):
        import faulthandler

        faulthandler.enable(file=sys.stderr)
    warnings.showwarning = _log_warning
    threading.Thread(target=_forward, args=(read_fd,), name="native-stderr", daemon=True).start()


def _forward(read_fd: int) -> None:
    with open(read_fd, "rb", buffering=0) as pipe:
        for raw in iter(pipe.readline, b""):
            line = ANSI.sub("", raw.decode(errors="replace")).strip()
            if line:
                NATIVE.info("%s", line)


def _log_warning(message: Warning | str, category: type[Warning], filename: str, lineno: int,
                 file: object = None, line: str | None = None) -> None:  # noqa: ARG001
    text = next((t.strip() for t in str(message).splitlines() if t.strip()), "")
    NATIVE.info("%s: %s (%s:%d)", category.__name__, text, os.path.basename(filename), lineno)


def sigterm_as_ctrl_c() -> None:
    """SIGTERM ends every command as Ctrl-C does (exit code 130, one line, outputs handled by the command)
    rather than killing it mid-write; ``rtseg run`` handles both signals itself during a run."""
    import signal

    if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _raise_interrupt)


def _raise_interrupt(signum: int, frame: object) -> None:  # noqa: ARG001
    raise KeyboardInterrupt


def ignore_stops() -> None:
    """Ignore Ctrl-C and SIGTERM from now on, and one waiting for an import: the command has ended and the
    process is on its way out, where an interrupt would only break the interpreter's teardown."""
    import signal

    signal.setitimer(signal.ITIMER_REAL, 0)
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGALRM):
        signal.signal(signum, signal.SIG_IGN)


def leave(code: int) -> None:
    """Exit now with ``code`` after a stop (130), or when a pipeline stage thread outlived its run (see the
    module docstring); otherwise return and let the interpreter exit normally.

    After a stop the outputs are finalized; what is skipped is the interpreter's teardown of PyTorch and the
    other native libraries, which takes 1 to 2 s on the 2-core machine (measured: ``import torch`` alone, 1.3 s)
    and would make a stop feel ignored. The ``atexit`` functions still run, unless a stage thread is left.
    """
    lingering = any(t.name.startswith("rtseg-") and t.is_alive() for t in threading.enumerate())
    if code != 130 and not lingering:
        return
    if not lingering:
        import atexit

        atexit._run_exitfuncs()  # what a normal exit runs first (logging.shutdown among them)
    else:
        logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(code)
