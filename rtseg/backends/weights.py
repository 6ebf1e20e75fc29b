"""Weights are data: every PyTorch file rtseg opens is unpickled against an allow-list, unless the user trusts it.

A ``.pt`` file is a pickle, and a pickle may name any function for the loader to call: ``torch.load`` with
``weights_only=False`` (what Ultralytics' own loader does) runs whatever code a downloaded checkpoint carries.
rtseg therefore opens every ``.pt``/``.pth`` with PyTorch's weights-only unpickler and an allow-list of exactly
what Ultralytics YOLO-seg checkpoints and rtseg's own checkpoints hold:

* tensors, storages, dtypes, ``collections.OrderedDict`` (PyTorch's own weights-only set);
* the ``torch.nn`` layer classes and the ``nn.Module`` classes of ``ultralytics.nn.modules`` and
  ``ultralytics.nn.tasks`` (every Ultralytics architecture), which a file may only *create* the way
  ``torch.save`` pickles a module (``cls.__new__`` then ``__setstate__``), never *call*: calling a model class
  runs its constructor with arguments from the file, and ``SegmentationModel(cfg)`` builds whatever layers
  ``cfg`` names, ``torch_safe_load`` included, which unpickles a second file without the allow-list;
* ``ultralytics.utils.IterableSimpleNamespace`` and ``types.SimpleNamespace`` (training arguments),
  ``pathlib`` paths, numpy dtypes and scalars (metrics), and ``getattr`` restricted to a module's ``forward``
  / ``forward_fuse`` (how YOLOv8 and YOLO11 heads pickle a method);
* rtseg's semantic checkpoints need nothing more: strings and a state dict.

Anything else is refused with one line naming ``--trust-weights`` and ``RTSEG_TRUST_WEIGHTS=1``, the explicit
ways to unpickle a file the user trusts (:func:`trust_weights`). No code path falls back to a full unpickle on
its own. :func:`ultralytics_loads` makes Ultralytics' loader (which ``YOLO(path)`` and its trainer call) go
through :func:`load_weights` too.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import logging
import os
import pickle
import pickletools
import pkgutil
import re
import threading
import warnings
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from rtseg.errors import ModelError

LOGGER = logging.getLogger(__name__)

TRUST_ENV = "RTSEG_TRUST_WEIGHTS"
TRUST_HINT = f"if you trust this file pass --trust-weights (or set {TRUST_ENV}=1)"
_GETATTR_NAMES = frozenset({"forward", "forward_fuse"})
# Allow-list key of a class that only __setstate__ (BUILD) may see: a GLOBAL opcode reads "module\nname\n", so
# no pickle can spell a name that starts with a newline and reach the class itself.
_BUILD_ONLY = "\n"

_trusted: bool | None = None  # trust_weights(); None: the environment variable decides
_load_lock = threading.RLock()
_patch_lock = threading.Lock()
_patch_depth = 0
_patched: list[tuple[object, str, object]] = []


def trust_weights(enabled: bool | None = True) -> None:
    """Unpickle ``.pt`` files fully (``weights_only=False``) from now on in this process, or stop doing so.

    Only for files from a source the user trusts: a full unpickle runs any code the file names. ``True`` or
    ``False`` overrides the ``RTSEG_TRUST_WEIGHTS`` environment variable; ``None`` follows it again. The CLI's
    ``--trust-weights`` calls ``trust_weights(True)``.

    Example:
        >>> from rtseg.backends.weights import trust_weights, weights_trusted
        >>> trust_weights(True); weights_trusted()
        True
        >>> trust_weights(False); weights_trusted()
        False
        >>> trust_weights(None)  # back to RTSEG_TRUST_WEIGHTS (unset: not trusted)
    """
    global _trusted
    _trusted = None if enabled is None else bool(enabled)


def weights_trusted() -> bool:
    """Whether ``.pt`` files are unpickled fully: :func:`trust_weights`, else ``RTSEG_TRUST_WEIGHTS=1``."""
    if _trusted is not None:
        return _trusted
    return os.environ.get(TRUST_ENV, "").strip().lower() in ("1", "true", "yes", "on")


def load_weights(path: str | Path) -> Any:  # noqa: ANN401 - whatever the checkpoint holds
    """The object a ``.pt`` / ``.pth`` file holds, on the CPU, unpickled as data (see the module docstring).

    Args:
        path: a file written by ``torch.save`` (zip) or a legacy / raw pickle.

    Returns:
        Usually a dict: an Ultralytics checkpoint (``{"model": SegmentationModel, "train_args": ...}``) or an
        rtseg semantic checkpoint (``{"format": "rtseg-semantic/1", "state_dict": ...}``).

    Raises:
        ModelError: the file is missing or not a PyTorch file, or (unless trusted) it names a class or function
            outside the allow-list; that message names ``--trust-weights``.

    Example:
        >>> import tempfile, torch
        >>> from rtseg.backends.weights import load_weights
        >>> path = tempfile.mkdtemp() + "/w.pt"
        >>> torch.save({"format": "demo", "state_dict": {"w": torch.ones(2)}}, path)
        >>> load_weights(path)["state_dict"]["w"].tolist()
        [1.0, 1.0]
    """
    source = str(path)
    if not Path(source).is_file():
        raise ModelError(f"model file not found: {source}")
    import torch

    if weights_trusted():
        LOGGER.info("%s: unpickling fully (trusted weights)", source)
        with contextlib.suppress(ImportError):
            import ultralytics.nn.tasks  # noqa: F401 - its classes resolve by import during the unpickle
        return _torch_load(torch, source, weights_only=False)
    allow = _allow_list()
    with _own_safe_globals() as register:
        named = _globals_named(source)  # with no other registration hiding a name from the scan
        if named is None:
            raise ModelError(_cut_short(source) or f"cannot load {source}: not a PyTorch checkpoint (neither a "
                             "torch.save archive nor a pickle)")
        refused = sorted({n for n in named if n not in allow})
        if refused:
            more = f" and {len(refused) - 1} more" if len(refused) > 1 else ""
            raise ModelError(f"{source}: refusing to unpickle {_printable(refused[0])}{more} (not a tensor nor a "
                             f"class of Ultralytics YOLO-seg or rtseg checkpoints); {TRUST_HINT}")
        register(_entries_for(named, allow))
        try:
            return _torch_load(torch, source, weights_only=True)
        except pickle.UnpicklingError as exc:
            raise ModelError(f"{source}: refusing to unpickle it ({_unpickler_reason(exc)}); {TRUST_HINT}") from None


def allowed_names() -> frozenset[str]:
    """Every global name a checkpoint may hold beyond PyTorch's own weights-only set (for docs and tests)."""
    return frozenset(k for k in _allow_list() if not k.startswith(_BUILD_ONLY))


@contextlib.contextmanager
def ultralytics_loads() -> Iterator[None]:
    """Within this block, Ultralytics reads every ``.pt`` through :func:`load_weights` (unless trusted).

    Ultralytics' ``torch_safe_load`` (behind ``YOLO(path)``, its trainer and validator) and ``strip_optimizer``
    (end of training) call ``ultralytics.utils.patches.torch_load``, which unpickles with
    ``weights_only=False``. Here the name they call is :func:`load_weights` instead; everything around the load
    (a bare official name downloaded when online, error messages) is unchanged, and a refusal surfaces as the
    :class:`~rtseg.errors.ModelError` of :func:`load_weights`. Nested and concurrent blocks share one patch,
    removed when the last one exits. With trusted weights this does nothing.

    Example:
        >>> from rtseg.backends.weights import ultralytics_loads
        >>> with ultralytics_loads():
        ...     pass  # from ultralytics import YOLO; YOLO("best.pt") loads as data here
    """
    if weights_trusted():
        yield
        return
    global _patch_depth
    import ultralytics.nn.tasks as tasks
    import ultralytics.utils.torch_utils as torch_utils

    with _patch_lock:
        if _patch_depth == 0:
            _patched[:] = [(module, "torch_load", module.torch_load) for module in (tasks, torch_utils)]
            for module, name, _ in _patched:
                setattr(module, name, _torch_load_as_data)
        _patch_depth += 1
    try:
        yield
    finally:
        with _patch_lock:
            _patch_depth -= 1
            if _patch_depth == 0:
                for module, name, original in _patched:
                    setattr(module, name, original)
                _patched.clear()


def _torch_load_as_data(f: str | Path, *args: Any, **kwargs: Any) -> Any:  # noqa: ANN401, ARG001
    """Stands in for ``ultralytics.utils.patches.torch_load`` (always to the CPU, as Ultralytics asks)."""
    return load_weights(f)


def _torch_load(torch: Any, source: str, *, weights_only: bool) -> Any:  # noqa: ANN401
    with warnings.catch_warnings():
        # e.g. "Detected pickle protocol 4": a warning per file would break the CLI's one-line errors
        warnings.simplefilter("ignore")
        try:
            return torch.load(source, map_location="cpu", weights_only=weights_only)
        except pickle.UnpicklingError:
            if weights_only:
                raise
            reason = "a pickle that fails to load"
        except Exception as exc:  # noqa: BLE001 - torch.load raises many types on a damaged file
            reason = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0][:200]}" if str(exc).strip() \
                else type(exc).__name__
        raise ModelError(_cut_short(source) or f"cannot load {source}: not a PyTorch checkpoint ({reason})")


def _cut_short(source: str) -> str | None:
    """The message for a ``torch.save`` archive whose end is missing (a copy or download cut short), or None.

    Such a file starts as a zip archive but has no central directory, which a zip keeps at its end.
    """
    try:
        with open(source, "rb") as f:
            starts_as_zip = f.read(4) == b"PK\x03\x04"
    except OSError:
        return None
    if not starts_as_zip or zipfile.is_zipfile(source):
        return None
    return (f"cannot load {source}: the file is truncated (a torch.save archive whose end is missing); copy or "
            "download it again")


class _NewOnly:
    """Allow-list entry for a class that a checkpoint may create as ``torch.save`` pickles a module, not call.

    PyTorch's weights-only unpickler runs ``entry.__new__(entry, *args)`` for NEWOBJ (how a module is pickled:
    no constructor runs, then ``__setstate__`` fills it) and ``entry(*args)`` for REDUCE (a call with arguments
    from the file). The first creates an instance of the real class; the second is refused.
    """

    def __init__(self, cls: type, name: str) -> None:
        self.cls, self.name = cls, name
        # The instance attribute shadows object.__new__ (a non-descriptor) for NEWOBJ's entry.__new__ lookup.
        self.__dict__["__new__"] = lambda _entry, *args: cls.__new__(cls, *args)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:  # noqa: ANN401
        raise pickle.UnpicklingError(f"the file calls {self.name}(...), which would run its constructor with "
                                     "arguments from the file")

    def __repr__(self) -> str:
        return self.name


def _module_getattr(obj: Any, name: str) -> Any:  # noqa: ANN401
    """``builtins.getattr`` as checkpoints use it: ``Detect.forward`` (YOLOv8 heads), ``module.forward_fuse``."""
    from torch import nn

    if name in _GETATTR_NAMES:
        if isinstance(obj, _NewOnly):
            return getattr(obj.cls, name)
        if isinstance(obj, nn.Module) and _BUILD_ONLY + _qualname(type(obj)) in _allow_list():
            return getattr(type(obj), name).__get__(obj)
    raise pickle.UnpicklingError(f"the file calls getattr({_printable(repr(obj))[:80]}, {_printable(repr(name))})")


def _qualname(obj: Any) -> str:  # noqa: ANN401
    return f"{obj.__module__}.{obj.__qualname__}"


@functools.lru_cache(maxsize=1)
def _allow_list() -> dict[str, object]:
    """``{global name: what the unpickler gets}``, built once: classes of every Ultralytics architecture."""
    import pathlib
    import types

    import numpy as np
    from torch import nn

    classes = {_qualname(c): c for c in vars(nn).values() if isinstance(c, type) and issubclass(c, nn.Module)}
    plain: dict[str, object] = {"types.SimpleNamespace": types.SimpleNamespace,
                                "builtins.getattr": _module_getattr}
    with contextlib.suppress(ImportError):
        import ultralytics.nn.modules
        import ultralytics.nn.tasks
        from ultralytics.utils import IterableSimpleNamespace

        modules = [importlib.import_module(f"ultralytics.nn.modules.{m.name}")
                   for m in pkgutil.iter_modules(ultralytics.nn.modules.__path__)] + [ultralytics.nn.tasks]
        for module in modules:
            classes.update({_qualname(c): c for c in vars(module).values() if isinstance(c, type)
                            and issubclass(c, nn.Module) and c.__module__ == module.__name__})
        classes["ultralytics.nn.modules.block.Silence"] = nn.Identity  # YOLOv9 checkpoints: the class was removed
        plain[_qualname(IterableSimpleNamespace)] = IterableSimpleNamespace
        plain["ultralytics.yolo.utils.IterableSimpleNamespace"] = IterableSimpleNamespace  # before 8.0.44
    scalar = np.float64(0).__reduce__()[0]  # numpy scalars in training metrics; numpy 1 pickles name numpy.core
    plain.update({"numpy.dtype": np.dtype, "numpy._core.multiarray.scalar": scalar,
                  "numpy.core.multiarray.scalar": scalar})
    path_cls = type(pathlib.Path())  # paths in training arguments, pickled on either OS
    plain.update({f"{m}.{c}": path_cls for m in ("pathlib", "pathlib._local") for c in ("PosixPath", "WindowsPath")})
    allow: dict[str, object] = {**plain, **{name: _NewOnly(cls, name) for name, cls in classes.items()}}
    allow.update({_BUILD_ONLY + _qualname(cls): cls for cls in classes.values()})
    dtypes = ("?", "i1", "i2", "i4", "i8", "u1", "u2", "u4", "u8", "f2", "f4", "f8", "c8", "c16")
    allow.update({_BUILD_ONLY + _qualname(type(np.dtype(d))): type(np.dtype(d)) for d in dtypes})
    return allow


def _entries_for(named: set[str], allow: dict[str, object]) -> list[tuple[object, str]]:
    """The allow-list entries one file needs: PyTorch scans the whole registered list at every opcode."""
    keys = {n for n in named if n in allow}
    keys |= {_BUILD_ONLY + _qualname(entry.cls) for n in keys if isinstance(entry := allow[n], _NewOnly)}
    if "numpy.dtype" in named:  # np.dtype("f8") then __setstate__ on a numpy.dtypes.Float64DType
        keys |= {k for k, v in allow.items() if k.startswith(_BUILD_ONLY) and getattr(v, "__module__", "") ==
                 "numpy.dtypes"}
    return [(allow[k], k) for k in keys]


@contextlib.contextmanager
def _own_safe_globals() -> Iterator[Callable[[list], None]]:
    """PyTorch's process-wide safe-globals list holds only what this load registers, until the block ends.

    Emptied rather than added to: another library may have registered a real model class under an allowed
    name (Ultralytics' opt-in safe mode does), which would let a file call it, and would hide that name from
    the checkpoint scan. The list is put back afterwards; loads are serialised by a lock.
    """
    import torch.serialization as ts

    with _load_lock:
        saved = ts.get_safe_globals()
        ts.clear_safe_globals()
        try:
            yield ts.add_safe_globals
        finally:
            ts.clear_safe_globals()
            ts.add_safe_globals(saved)


def _globals_named(source: str) -> set[str] | None:
    """Names of the globals a file's pickle references, without unpickling it (beyond PyTorch's own set).

    For a ``torch.save`` zip, PyTorch's scanner; for a legacy or raw pickle, a walk over its opcodes (naming
    only: the weights-only unpickler still refuses whatever the walk misses). None: not a pickle at all.
    """
    import torch

    if zipfile.is_zipfile(source):
        with contextlib.suppress(Exception):  # a damaged archive: torch.load reports it
            return set(torch.serialization.get_unsafe_globals_in_checkpoint(source))
        return set()
    try:  # PyTorch's own weights-only set (private: without it, legacy files are refused, never let through)
        from torch._weights_only_unpickler import _get_allowed_globals

        builtin = _get_allowed_globals()
    except (ImportError, AttributeError):
        builtin = {}
    names = _raw_pickle_globals(source)
    return None if names is None else {n for n in names if n not in builtin}


def _raw_pickle_globals(source: str, max_pickles: int = 8) -> set[str] | None:
    names: set[str] = set()
    with open(source, "rb") as f:
        for count in range(max_pickles):  # a legacy torch file is several pickles in a row, then raw storage bytes
            strings: list[str] = []
            memo: dict[int, Any] = {}
            try:
                for op, arg, _pos in pickletools.genops(f):
                    if op.name == "GLOBAL":
                        names.add(str(arg).replace(" ", ".", 1))
                    elif op.name == "STACK_GLOBAL" and len(strings) >= 2:
                        names.add(f"{strings[-2]}.{strings[-1]}")
                    elif isinstance(arg, str) and "UNICODE" in op.name:
                        strings.append(arg)
                    elif op.name == "MEMOIZE" and strings:
                        memo[len(memo)] = strings[-1]
                    elif op.name in ("BINGET", "LONG_BINGET", "GET") and isinstance(memo.get(arg), str):
                        strings.append(memo[arg])
            except Exception:  # noqa: BLE001 - end of the pickles, or not a pickle at all
                if count == 0:
                    return None
                break
    return names


def _unpickler_reason(exc: BaseException) -> str:
    """The unpickler's own complaint, out of PyTorch's multi-line explanation around it."""
    text = str(exc)
    match = re.search(r"GLOBAL (\S+)", text)
    if match:
        return f"it names {_printable(match.group(1))}"
    boiler = ("Weights only load failed", "Please file an issue", "Check the documentation", "WeightsUnpickler error")
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith(boiler)]
    reason = lines[0] if lines else "not a plain weights file"
    if reason.startswith("Unsupported operand"):
        reason = f"not a file torch.save writes: {reason.lower()}"
    return _printable(reason)[:200]


def _printable(text: str) -> str:
    """Names read from a hostile file, made safe to print on one line."""
    return "".join(c if c.isprintable() else "?" for c in text)[:120]
