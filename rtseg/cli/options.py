"""How the commands' options read and fail: ranges in ``--help``, flags shown as flags, and a mistyped option
(``--imgsz abc``, ``--bogus``) as one line on stderr with exit code 2, like every other rtseg error.

The ranges come from :data:`rtseg.config.LIMITS`, the table the library checks them against; typer is given
no ``min=``/``max=`` of its own, so an out-of-range value is refused once, by the library, in its words.
"""

from __future__ import annotations

import re
from typing import Any

import typer
from typer.core import TyperCommand, TyperGroup

from rtseg.cli.common import fail
from rtseg.config import LIMITS

_UsageError = typer.BadParameter.__mro__[1]  # click's UsageError, wherever this typer version keeps it
_RANGE = re.compile(r"\(range: ([^)]*)\)")  # what ranged() appends to a help text


def ranged(name: str, help: str) -> str:  # noqa: A002 - typer's word
    """``help`` with the accepted range of option ``name`` (a key of :data:`rtseg.config.LIMITS`) appended."""
    return f"{help} (range: {LIMITS[name].describe()})"


def _value_of(param: Any, args: list[str]) -> str | None:
    """What the user typed for ``param`` (the last occurrence), read back from the command line."""
    value = None
    for i, arg in enumerate(args):
        for opt in getattr(param, "opts", ()):
            if arg == opt and i + 1 < len(args):
                value = args[i + 1]
            elif arg.startswith(opt + "="):
                value = arg[len(opt) + 1:]
    return value


def usage_error(exc: Exception, args: list[str], command: str) -> Exception:
    """typer's usage errors (unknown option, value of the wrong type, missing argument) as one line; a bare
    ``rtseg`` (typer's NoArgsIsHelpError, which prints the help) passes through."""
    if type(exc).__name__ == "NoArgsIsHelpError":
        return exc
    param = getattr(exc, "param", None)
    message = " ".join(str(getattr(exc, "message", exc)).split())
    message = message[:1].lower() + message[1:]
    opts = [o for o in getattr(param, "opts", ()) if o.startswith("--")]
    kind = type(exc).__name__
    if kind == "NoSuchOption":
        possible = getattr(exc, "possibilities", None)
        line = f"{exc.option_name}: no such option" + (f"; did you mean {', '.join(sorted(possible))}?"  # type: ignore[attr-defined]
                                                       if possible else "")
    elif kind == "BadOptionUsage" and "requires an argument" in message:
        line = f"{exc.option_name} needs a value"  # type: ignore[attr-defined]
    elif kind == "MissingParameter":
        line = f"{opts[0]} is required" if opts else f"missing {getattr(param, 'name', 'an argument').upper()}"
    elif opts:
        for typer_words, ours in (("valid integer", "expected a whole number"), ("valid number", "expected a number")):
            if typer_words in message:
                found = _RANGE.search(getattr(param, "help", None) or "")
                message = ours + (f", {found.group(1)}" if found else "")
        value = _value_of(param, args)
        line = f"{opts[0]} {value!r}: {message}" if value is not None else f"{opts[0]}: {message}"
    else:
        line = " ".join(exc.format_message().split()) if hasattr(exc, "format_message") else message
    return fail(f"{line} (see {command} -h)")


def _flags_as_flags(params: list) -> list:
    for param in params:
        if getattr(param, "is_flag", False) and param.metavar is None:
            param.metavar = ""  # the type column stays empty
    return params


class _OneLineUsage:
    """Usage errors in one line; ``--help`` shows flags without a ``<bool>`` type (typer prints one for every
    flag, though a flag takes no value)."""

    def get_params(self, ctx: Any) -> list:
        return _flags_as_flags(super().get_params(ctx))  # type: ignore[misc]

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        try:
            return super().parse_args(ctx, list(args))  # type: ignore[misc]
        except _UsageError as exc:
            raise usage_error(exc, args, ctx.command_path) from None


class RtsegCommand(_OneLineUsage, TyperCommand):
    """A command whose usage errors are one line and whose flags show as flags."""


class RtsegGroup(_OneLineUsage, TyperGroup):
    """The ``rtseg`` group: an unknown command or option is one line too."""

    def resolve_command(self, ctx: Any, args: list[str]) -> Any:
        try:
            return super().resolve_command(ctx, args)
        except _UsageError as exc:
            raise usage_error(exc, args, ctx.command_path) from None


def use_rtseg_commands(app: typer.Typer) -> None:
    """Make every command registered on ``app`` so far an :class:`RtsegCommand`."""
    for info in app.registered_commands:
        if info.cls in (None, TyperCommand):
            info.cls = RtsegCommand
