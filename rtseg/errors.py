"""Typed errors. The CLI turns any :class:`RtsegError` into one line on stderr and exit code 2."""

from __future__ import annotations


class RtsegError(Exception):
    """Base class for every error rtseg reports to a user as one line; its message names the parameter.

    Example:
        >>> import rtseg
        >>> try:
        ...     rtseg.load_model(conf=2)
        ... except rtseg.RtsegError as exc:
        ...     print(exc)
        conf=2: expected 0..1
    """


class SourceError(RtsegError):
    """A video file, camera, image folder or stream could not be opened or read."""


class ModelError(RtsegError):
    """Weights are missing, corrupt, of the wrong task, or cannot be downloaded."""


class BackendUnavailable(RtsegError):
    """The requested backend or device is not installed or not present on this machine."""


class SinkError(RtsegError):
    """An output (video file, JSONL, folder, window) cannot be written."""


class ConfigError(RtsegError):
    """Options that contradict each other or are out of range."""
