"""The ``rtseg`` command line: typer commands that call the library's front door (:mod:`rtseg.api`)."""

from __future__ import annotations


def main() -> None:
    """Entry point of the ``rtseg`` console script."""
    from rtseg.cli.app import main as run_app

    run_app()
