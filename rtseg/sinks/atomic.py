"""Files written under a temporary name beside their final one and renamed into place once complete.

A reader never sees half a file under the final name, and a write that fails (a full disk, a crash of the
encoder) never replaces what was there. The temporary name is ``.<stem>.partial<suffix>`` in the same folder:
the same file system, so ``os.replace`` is atomic; hidden; and with the suffix kept, because encoders
(PyAV, OpenCV, matplotlib) pick the format from it. A killed process (SIGKILL) leaves only that hidden file.

A path that exists and is not a regular file (``/dev/stdout``, ``/dev/full``, a FIFO) is written in place:
it cannot be renamed over, and writing to it replaces nothing.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from rtseg.errors import SinkError


def partial_path(path: Path) -> Path:
    """Where ``path`` is written until it is complete: ``.<stem>.partial<suffix>`` beside it."""
    path = Path(path)
    return path.with_name(f".{path.stem}.partial{path.suffix}")


def is_special(path: Path) -> bool:
    """``path`` exists and is not a regular file or folder (a device, a FIFO, a socket)."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return False
    return not (stat.S_ISREG(mode) or stat.S_ISDIR(mode))


def reason(exc: BaseException) -> str:
    """The words of an OSError without its file name (the caller names the output): "No space left on device"."""
    return getattr(exc, "strerror", None) or str(exc)


class PartialFile:
    """One output file: written at :attr:`temp`, then :meth:`commit` renames it to :attr:`path`.

    Example:
        >>> partial = PartialFile(tmp / "report.json")
        >>> _ = partial.temp.write_text("{}")
        >>> partial.commit().name, partial.temp.exists()
        ('report.json', False)
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.temp = self.path if is_special(self.path) else partial_path(self.path)

    def commit(self) -> Path:
        """Rename the complete file to its final name (nothing to do for a device or FIFO)."""
        if self.temp != self.path:
            os.replace(self.temp, self.path)
        return self.path

    def discard(self) -> None:
        """Remove what was written: it is not a valid file (nothing to do for a device or FIFO)."""
        if self.temp != self.path:
            self.temp.unlink(missing_ok=True)


@contextmanager
def written(path: Path, *, what: str = "output") -> Iterator[Path]:
    """Write ``path`` through its temporary name: ``with written(path) as temp: fig.savefig(temp)``.

    On success the file is renamed into place; on any error it is removed, and an ``OSError`` (a full disk,
    a missing folder) becomes one :class:`SinkError` line: ``cannot write JSON x.json: No space left on device``.
    """
    partial = PartialFile(path)
    try:
        yield partial.temp
        partial.commit()
    except OSError as exc:
        partial.discard()
        raise SinkError(f"cannot write {what} {path}: {reason(exc)}") from None
    except BaseException:
        partial.discard()
        raise


def write_bytes(path: Path, data: bytes | str, *, what: str = "output") -> Path:
    """Write ``data`` (text is UTF-8) to ``path`` through its temporary name; ``OSError`` -> :class:`SinkError`."""
    with written(path, what=what) as temp, open(temp, "wb") as f:
        f.write(data.encode("utf-8") if isinstance(data, str) else data)
    return Path(path)


def save_figure(fig: object, path: Path, *, dpi: int = 100) -> Path:
    """Save a Matplotlib figure to ``path`` through its temporary name, then close it (whatever happens)."""
    import matplotlib.pyplot as plt

    try:
        with written(path, what="plot") as temp:  # renamed once complete; a full disk is one SinkError line
            fig.savefig(temp, dpi=dpi)  # type: ignore[attr-defined]
    finally:
        plt.close(fig)  # type: ignore[arg-type]
    return Path(path)
