"""Which task a model file holds, read from the file without building the network."""

from __future__ import annotations

import os
from pathlib import Path

from rtseg.backends.base import SEMANTIC_METADATA_KEY
from rtseg.backends.trt_meta import read_engine_meta
from rtseg.config import cache_dir, file_digest


def model_task(model: str | Path) -> str:
    """``"semantic"`` for a semantic-segmentation model, else ``"segment"`` (instance segmentation).

    Decided from the file without building the network: rtseg semantic checkpoints and ONNX exports carry
    a marker, Ultralytics checkpoints their task, rtseg TensorRT engines their metadata header, YOLO ``-sem``
    configs their name, and pretrained semantic weights are named ``arch.WEIGHTS``. Anything unreadable
    counts as instance segmentation, whose loader then reports the problem, except a ``.pt``/``.pth`` that
    :func:`rtseg.backends.weights.load_weights` refuses or cannot read: its :class:`~rtseg.errors.ModelError`
    is raised here. What a ``.pt`` holds is remembered by its content (``$RTSEG_CACHE/task``), so that a run
    on cached weights does not import PyTorch to read them again.
    """
    source = str(model)
    path = Path(source)
    suffix = path.suffix.lower()
    if "-sem" in path.stem.lower():
        return "semantic"
    if not path.exists():
        from rtseg.models.zoo import ARCHS

        head = source.split(".", 1)[0].lower()
        return "semantic" if "." in source and head in {a.lower() for a in ARCHS} else "segment"
    if suffix in (".pt", ".pth"):
        return _checkpoint_task(path)
    try:
        if suffix == ".onnx":
            import onnx

            meta = {p.key: p.value for p in onnx.load(source, load_external_data=False).metadata_props}
            return "semantic" if SEMANTIC_METADATA_KEY in meta or meta.get("task") == "semantic" else "segment"
        if suffix == ".engine":
            return read_engine_meta(source).task
    except Exception:  # noqa: BLE001 - unreadable: let the instance loader say what is wrong
        return "segment"
    return "segment"


def _checkpoint_task(path: Path) -> str:
    """The task a ``.pt`` / ``.pth`` file holds, read once per content and remembered.

    Only a file that :func:`~rtseg.backends.weights.load_weights` read as plain data (weights not trusted) is
    remembered: a file that needed trust is read, and refused, again in a run without it.
    """
    from rtseg.backends.weights import weights_trusted

    try:
        digest = file_digest(path)
    except OSError:
        digest = None  # unreadable: load_weights says why
    memo = cache_dir() / "task" / f"{digest}.txt" if digest else None
    if memo is not None:
        try:
            known = memo.read_text(encoding="utf-8").strip()
            if known in ("semantic", "segment"):
                return known
        except OSError:
            pass
    from rtseg.backends.weights import load_weights
    from rtseg.models.zoo import CHECKPOINT_FORMAT

    trusted = weights_trusted()
    ckpt = load_weights(path)  # as data unless trusted: never a full unpickle on its own
    net = ckpt.get("model") if isinstance(ckpt, dict) else None
    family = CHECKPOINT_FORMAT.partition("/")[0]  # any version of rtseg's semantic checkpoint
    semantic = getattr(net, "task", None) == "semantic" or (  # an Ultralytics YOLO26-sem checkpoint
        isinstance(ckpt, dict) and str(ckpt.get("format", "")).startswith(family))
    task = "semantic" if semantic else "segment"
    if memo is not None and not trusted:
        try:
            memo.parent.mkdir(parents=True, exist_ok=True)
            partial = memo.with_name(f".{memo.name}.{os.getpid()}")
            partial.write_text(task, encoding="utf-8")
            partial.replace(memo)
        except OSError:
            pass  # a read-only cache costs the next run a load, nothing else
    return task
