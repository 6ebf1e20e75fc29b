"""The ``rtseg`` command line: typer commands that call the library's front door (:mod:`rtseg.api`)."""

from __future__ import annotations


def main() -> None:
    """Entry point of the ``rtseg`` console script (and of ``python -m rtseg.cli``).

    SIGTERM becomes a Ctrl-C first thing, before the imports below (typer, NumPy, the commands: a few hundred
    milliseconds on a busy machine), so a service manager that stops rtseg while it starts gets what Ctrl-C
    gives, exit code 130 and one line, rather than a process killed by the signal.
    """
    import signal
    import sys

    if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _interrupt)  # rtseg.cli.edge.sigterm_as_ctrl_c then leaves it
    try:
        from rtseg.cli.app import main as run_app
    except KeyboardInterrupt:
        sys.stderr.write("rtseg: interrupted while starting\n")
        raise SystemExit(130) from None
    run_app()


def _interrupt(signum: int, frame: object) -> None:  # noqa: ARG001
    raise KeyboardInterrupt
