"""The sink protocol, a null sink, and the output-path checks every command runs before any work starts."""

from __future__ import annotations

import glob
import os
from collections.abc import Sequence
from dataclasses import dataclass
from fnmatch import fnmatch
from pathlib import Path, PurePath
from typing import Protocol

import numpy as np
from numpy.typing import NDArray

from rtseg.errors import SinkError
from rtseg.sinks.atomic import is_special
from rtseg.types import Frame, FrameResult


class StopRequested(Exception):  # noqa: N818 - a signal, not an error
    """A sink asks the pipeline to stop (the user closed the window)."""


class Sink(Protocol):
    """Consumes results in frame order.

    Attributes:
        needs_image: the sink wants the annotated frame; when no sink does, drawing is skipped.
    """

    needs_image: bool

    def write(self, frame: Frame, annotated: NDArray[np.uint8] | None, result: FrameResult) -> None: ...

    def close(self) -> None: ...


class NullSink:
    """Discards everything (for benchmarks and tests)."""

    needs_image = False

    def write(self, frame: Frame, annotated: NDArray[np.uint8] | None, result: FrameResult) -> None:
        pass

    def close(self) -> None:
        pass


def ensure_folder(folder: Path) -> Path:
    """Create an output folder (and its parents) and check it is writable."""
    folder = Path(folder).expanduser()
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise SinkError(f"cannot create folder {folder}: {exc.strerror}") from None
    if not os.access(folder, os.W_OK):
        raise SinkError(f"cannot write into folder {folder}: permission denied")
    return folder


def check_writable(path: Path, *, what: str = "output") -> Path:
    """Fail early, before any model is loaded, when an output file cannot be created."""
    path = Path(path).expanduser()
    parent = path.parent if str(path.parent) else Path(".")
    if path.is_dir():
        raise SinkError(f"cannot write {what} {path}: it is a folder")
    if not parent.is_dir():
        raise SinkError(f"cannot write {what} {path}: folder {parent} does not exist")
    if not os.access(parent, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise SinkError(f"cannot write {what} {path}: permission denied")
    return path


def check_folder(folder: Path, *, what: str = "output") -> Path:
    """Fail early when an output folder cannot be created or written into, without creating it yet (a run
    refused later leaves no empty folder behind)."""
    folder = Path(folder).expanduser()
    if folder.exists() and not folder.is_dir():
        raise SinkError(f"cannot write {what} into {folder}: it is a file")
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise SinkError(f"cannot create folder {folder}: {existing} is a file")
    if not os.access(existing, os.W_OK):
        raise SinkError(f"cannot write {what} into {folder}: permission denied")
    return folder


@dataclass(frozen=True)
class OutputPath:
    """One path a command writes, named by its parameter (``out``, ``jsonl``, ``json_out``; the command line
    shows the flag).

    Attributes:
        files: None for a file; for a folder, glob patterns of the names written into it (``frame_*.jpg``).
        what: the words of a writability error (``video``, ``JSONL``, ``frames``).
    """

    param: str
    path: Path
    files: tuple[str, ...] | None = None
    what: str = "output"


def _real(path: str | Path) -> Path:
    # realpath: follows every link, also of paths that do not exist yet (their existing part)
    return Path(os.path.realpath(os.path.expanduser(str(path))))


def _same_file(a: Path, b: Path) -> bool:
    if _real(a) == _real(b):
        return True
    try:
        return os.path.samefile(a, b)  # hard links
    except OSError:
        return False


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def _probes(patterns: tuple[str, ...]) -> list[str]:
    """Names a folder output writes: ``frame_*.jpg`` -> ``frame_000000.jpg``."""
    return [p.replace("*", "000000") for p in patterns]


# what an image folder source reads, as rtseg.sources lists them (a sibling layer, so not imported from there)
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")


@dataclass
class _Input:
    text: str
    file: Path | None = None  # a file read
    folder: Path | None = None  # an image folder read (its files directly inside)
    pattern: str | None = None  # a glob pattern (absolute)
    matches: tuple[Path, ...] = ()  # the files it matches now (resolved)


def _inputs(inputs: Sequence[str | Path]) -> list[_Input]:
    found = []
    for item in inputs:
        text = str(item).strip()
        if not text or text.isdigit() or "://" in text:  # a camera or a stream: nothing on disk
            continue
        try:
            path = Path(text).expanduser()
            if any(c in text for c in "*?[") and not path.exists():
                pattern = os.path.abspath(str(path))
                found.append(_Input(text, pattern=pattern, matches=tuple(_real(p) for p in glob.glob(pattern))))
            elif path.is_dir():
                found.append(_Input(text, folder=_real(path)))
            elif path.exists():
                found.append(_Input(text, file=path))
        except (OSError, RuntimeError):  # ~nouser, a folder without permission: nothing an output can replace
            continue  # here; opening the input reports it as one line
    return found


def _collides_with_input(out: OutputPath, src: _Input) -> str | None:
    """Why writing ``out`` would destroy or change what ``src`` reads, or None."""
    real = _real(out.path)
    if out.files is None:  # a file
        if src.file is not None and _same_file(out.path, src.file):
            same = os.path.abspath(Path(out.path).expanduser()) != os.path.abspath(src.file)
            return f"it is the input {src.text}" + (" (the same file, through a link)" if same else "")
        if src.folder is not None and real.parent == src.folder and real.suffix.lower() in IMAGE_SUFFIXES:
            return f"it is an image in the source folder {src.text}"
        if src.pattern is not None and (real in src.matches or PurePath(real).match(src.pattern)
                                        or PurePath(os.path.abspath(out.path)).match(src.pattern)):
            return f"the source {src.text!r} matches it"
        return None
    # a folder: the files written into it
    if src.file is not None and _real(src.file).parent == real and any(fnmatch(src.file.name, p) for p in out.files):
        return f"it holds the input {src.text}, which a written file would replace"
    if src.folder is not None and real == src.folder:
        return f"it is the source folder {src.text}"
    if src.pattern is not None:
        written = [real / n for n in _probes(out.files)] + [Path(os.path.abspath(out.path)) / n
                                                            for n in _probes(out.files)]
        if any(PurePath(w).match(src.pattern) for w in written) or any(
                m.parent == real and any(fnmatch(m.name, p) for p in out.files) for m in src.matches):
            return f"the source {src.text!r} matches the files written there"
    return None


def _collides_with_tree(out: OutputPath, tree: Path) -> str | None:
    """Why writing ``out`` would replace files of the data set folder ``tree``, or None."""
    real, root = _real(out.path), _real(tree)
    if out.files is None:
        if real.is_file() and _inside(real, root):
            return f"it would replace a file of the data set {tree}"
        return None
    if _inside(root, real):
        return f"the data set {tree} is inside it"
    return None


def _overlap(a: OutputPath, b: OutputPath) -> bool:
    """``a`` and ``b`` would write one file."""
    real_a, real_b = _real(a.path), _real(b.path)
    if is_special(a.path) or is_special(b.path):  # /dev/null twice replaces nothing
        return False
    if a.files is None and b.files is None:
        return _same_file(a.path, b.path)
    if real_a == real_b:  # a file and a folder, or two folders, on one path
        return a.files is None or b.files is None or any(
            fnmatch(n, p) for n in _probes(a.files) for p in b.files) or any(
            fnmatch(n, p) for n in _probes(b.files) for p in a.files)
    if a.files is None or b.files is None:
        file, folder = (a, b) if a.files is None else (b, a)
        return _real(file.path).parent == _real(folder.path) and any(
            fnmatch(Path(file.path).name, p) for p in folder.files)  # type: ignore[union-attr]
    return False


def check_output_paths(outputs: Sequence[OutputPath], *, inputs: Sequence[str | Path] = (),
                       trees: Sequence[Path] = ()) -> None:
    """Refuse, before any work starts, outputs that cannot be written or that would destroy what the user has.

    Each file output must be creatable (:func:`check_writable`), each folder output creatable
    (:func:`check_folder`); then, with links resolved (and hard links compared by inode):

    - no output is an input file (``rtseg run dog.mp4 --out dog.mp4``), an image in an input image folder, or
      a file an input glob matches (``'frames/*.jpg' --save-frames frames/``); no output folder is an input
      image folder;
    - no two outputs write one file (``--out x.mp4 --jsonl x.mp4``; the names after per-source suffixing);
    - no output replaces a file of a data set folder in ``trees``, and no output folder holds one.

    Args:
        outputs: every path the command will write.
        inputs: what it reads: files, image folders and glob patterns as typed (camera indexes and URLs are
            skipped).
        trees: data set folders read as a whole (``rtseg eval --data``, ``rtseg convert``).

    Raises:
        SinkError: one line naming the output's parameter and the input or other output it collides with.
    """
    for out in outputs:
        if out.files is None:
            check_writable(out.path, what=out.what)
        else:
            check_folder(out.path, what=out.what)
    sources = _inputs(inputs)
    for out in outputs:
        for src in sources:
            why = _collides_with_input(out, src)
            if why:
                raise SinkError(f"{out.param}={out.path}: {why}; write the output elsewhere")
        for tree in trees:
            why = _collides_with_tree(out, tree)
            if why:
                raise SinkError(f"{out.param}={out.path}: {why}; write the output elsewhere")
    for i, a in enumerate(outputs):
        for b in outputs[i + 1:]:
            if _overlap(a, b):
                raise SinkError(f"{a.param}={a.path} and {b.param}={b.path}: both write {_real(b.path)}; give "
                                "each output its own path")
