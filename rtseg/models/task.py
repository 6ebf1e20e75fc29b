"""Which task a model file holds, read from the file without building the network."""

from __future__ import annotations

from pathlib import Path

from rtseg.backends.base import SEMANTIC_METADATA_KEY
from rtseg.backends.trt_meta import read_engine_meta
from rtseg.models.zoo import ARCHS, CHECKPOINT_FORMAT


def model_task(model: str | Path) -> str:
    """``"semantic"`` for a semantic-segmentation model, else ``"segment"`` (instance segmentation).

    Decided from the file without building the network: rtseg semantic checkpoints and ONNX exports carry
    a marker, Ultralytics checkpoints their task, rtseg TensorRT engines their metadata header, YOLO ``-sem``
    configs their name, and pretrained semantic weights are named ``arch.WEIGHTS``. Anything unreadable
    counts as instance segmentation, whose loader then reports the problem, except a ``.pt``/``.pth`` that
    :func:`rtseg.backends.weights.load_weights` refuses or cannot read: its :class:`~rtseg.errors.ModelError`
    is raised here.
    """
    source = str(model)
    path = Path(source)
    suffix = path.suffix.lower()
    if "-sem" in path.stem.lower():
        return "semantic"
    if not path.exists():
        head = source.split(".", 1)[0].lower()
        return "semantic" if "." in source and head in {a.lower() for a in ARCHS} else "segment"
    if suffix in (".pt", ".pth"):
        from rtseg.backends.weights import load_weights

        ckpt = load_weights(source)  # as data unless trusted: never a full unpickle on its own
        net = ckpt.get("model") if isinstance(ckpt, dict) else None
        if getattr(net, "task", None) == "semantic":  # an Ultralytics YOLO26-sem checkpoint
            return "semantic"
        family = CHECKPOINT_FORMAT.partition("/")[0]  # any version of rtseg's semantic checkpoint
        return "semantic" if isinstance(ckpt, dict) and str(ckpt.get("format", "")).startswith(family) \
            else "segment"
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
