"""Helpers shared by the command modules: logging setup and the one-line error exit."""

from __future__ import annotations

import logging
import sys

import typer


def setup_logging(verbose: bool) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("rtseg: %(levelname)s: %(message)s"))
    root = logging.getLogger("rtseg")
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO if verbose else logging.WARNING)
    root.propagate = False


def fail(message: str, code: int = 2) -> typer.Exit:
    typer.echo(f"rtseg: error: {message}", err=True)
    return typer.Exit(code)
