"""The ``rtseg`` command line: typer commands that call the library's front door (:mod:`rtseg.api`)."""

from __future__ import annotations

import os
import signal
import sys
from types import FrameType

IMPORTING = "<frozen importlib."
_pending: list[int] = []


def main() -> None:
    """Entry point of the ``rtseg`` console script (and of ``python -m rtseg.cli``).

    SIGTERM becomes a Ctrl-C first thing, before the imports below (typer, NumPy, the commands: a few hundred
    milliseconds on a busy machine), so a service manager that stops rtseg while it starts gets what Ctrl-C
    gives, exit code 130 and one line, rather than a process killed by the signal. Both signals wait for an
    import under way to finish (:func:`interrupt`).
    """
    # NumPy's BLAS on one thread (before NumPy loads it): the box-local mask products of ONNX Runtime's outputs
    # are small, and idle BLAS threads spinning beside the inference sessions cost CPU time the run needs
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, interrupt)  # rtseg.cli.edge.sigterm_as_ctrl_c then leaves it
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
        signal.signal(signal.SIGINT, interrupt)
    for signum in (signal.SIGTERM, signal.SIGINT):  # a system call they land in is resumed, not failed with
        signal.siginterrupt(signum, False)          # EINTR (native start-up code can abort on that)
    try:
        from rtseg.cli.app import main as run_app

        run_app()  # a stop in a command is the command's to handle: what reaches here came before it
    except KeyboardInterrupt:
        sys.stderr.write("rtseg: interrupted while starting\n")
        raise SystemExit(130) from None


def interrupt(signum: int, frame: FrameType | None) -> None:
    """Ctrl-C or SIGTERM: a KeyboardInterrupt, except in the middle of an import, which it would leave half
    done. PyTorch's import runs Python code called from C++, where an exception can abort the process
    (SIGABRT, seen once in 75 SIGTERMs at start-up); the interrupt then comes as soon as the import is over.
    """
    if _importing(frame):
        _defer(signum)
        return
    raise KeyboardInterrupt


def _importing(frame: FrameType | None) -> bool:
    while frame is not None:
        if frame.f_code.co_filename.startswith(IMPORTING):
            return True
        frame = frame.f_back
    return False


def _defer(signum: int) -> None:  # noqa: ARG001
    """Interrupt once the main thread is out of every import: a timer signal looks every 20 ms (no thread
    started and nothing imported here: this runs inside the import, possibly inside PyTorch's C++ code)."""
    if _pending:
        return
    _pending.append(signum)
    signal.signal(signal.SIGALRM, _after_import)
    signal.siginterrupt(signal.SIGALRM, False)
    signal.setitimer(signal.ITIMER_REAL, 0.02)


def _after_import(signum: int, frame: FrameType | None) -> None:  # noqa: ARG001
    if _importing(frame):
        signal.setitimer(signal.ITIMER_REAL, 0.02)
        return
    signal.signal(signal.SIGALRM, signal.SIG_DFL)
    _pending.clear()
    raise KeyboardInterrupt
