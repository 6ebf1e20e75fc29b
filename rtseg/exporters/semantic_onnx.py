"""Export a semantic segmentation model to ONNX, with its :class:`SemanticInfo` in the file's metadata.

The graph takes the normalised (B, 3, H, W) float32 RGB batch that :meth:`SemanticModel.prepare` builds and
returns (B, C, h, w) logits, like the PyTorch backend; the label maps are computed outside the graph so
both backends share one post-processing path (and its "fast" / "high" qualities).
"""

from __future__ import annotations

import dataclasses
import logging
import warnings
from collections.abc import Sequence
from pathlib import Path

import torch

from rtseg.backends.base import SEMANTIC_METADATA_KEY
from rtseg.errors import ConfigError, ModelError
from rtseg.models.zoo import load_semantic

LOGGER = logging.getLogger(__name__)
DEFAULT_OPSET = 17


def export_semantic_onnx(checkpoint: str | Path, *, out: str | Path | None = None,
                         imgsz: int | Sequence[int] | None = None, dynamic: bool = True,
                         opset: int = DEFAULT_OPSET) -> Path:
    """Export a semantic checkpoint (or pretrained name) to ONNX, for
    :class:`~rtseg.backends.ort_backend.OrtSemanticBackend`.

    Args:
        checkpoint: anything :func:`rtseg.models.zoo.load_semantic` reads.
        out: output path; default: beside the checkpoint (or in the current folder for a pretrained name),
            with the ``.onnx`` suffix.
        imgsz: trace size, and the fixed input size when ``dynamic`` is False; default: the model's own,
            rounded up to its stride.
        dynamic: accept any batch and any input size that is a multiple of the stride (rtseg then pads frames
            only to the stride, as with PyTorch). ``False`` fixes the input at ``imgsz``; PSPNet needs it
            (its pyramid pooling has no shape-generic ONNX form).
        opset: ONNX opset (>= 17).

    Raises:
        ModelError: the checkpoint cannot be loaded or the exporter failed.
        ConfigError: bad ``out`` or ``opset``.
    """
    import onnx

    if opset < 17:
        raise ConfigError(f"opset {opset}: semantic export needs opset 17 or newer")
    model, info = load_semantic(checkpoint)
    size = info.imgsz if imgsz is None else (imgsz, imgsz) if isinstance(imgsz, int) else tuple(imgsz)
    size = tuple(-(-int(s) // info.stride) * info.stride for s in size)
    if info.arch == "PSPNet":
        # ONNX has no adaptive pooling: its 1/2/3/6-bin pyramid on stride-8 features becomes fixed AvgPools, which
        # the exporter only writes when the feature size is a multiple of 6, i.e. the input a multiple of 48 (and 32)
        if dynamic:
            raise ConfigError("PSPNet cannot be exported with a dynamic input size (adaptive pyramid pooling); "
                              "export with dynamic=False and an imgsz that is a multiple of 96")
        if size[0] % 96 or size[1] % 96:
            raise ConfigError(f"PSPNet export at {size[0]}x{size[1]}: the fixed input must be a multiple of 96 "
                              "(e.g. 384, 480, 576)")
    target = Path(out) if out else Path(Path(str(checkpoint)).name).with_suffix(".onnx")
    if out is None and Path(str(checkpoint)).is_file():
        target = Path(str(checkpoint)).with_suffix(".onnx")
    if target.suffix.lower() != ".onnx":
        raise ConfigError(f"out={target}: an ONNX export needs the .onnx suffix")
    if not target.parent.exists():
        raise ConfigError(f"out={target}: folder {target.parent} does not exist")
    partial = target.with_name(f".{target.name}.partial")  # renamed once complete: never half a file
    try:
        _export(model, partial, size, opset, dynamic, checkpoint)
        proto = onnx.load(str(partial))
        meta = dataclasses.replace(info, imgsz=size, dynamic=dynamic)
        entry = next((p for p in proto.metadata_props if p.key == SEMANTIC_METADATA_KEY), None) \
            or proto.metadata_props.add()
        entry.key, entry.value = SEMANTIC_METADATA_KEY, meta.to_json()
        onnx.save(proto, str(partial))
        partial.replace(target)
    finally:
        partial.unlink(missing_ok=True)
    LOGGER.info("exported %s -> %s", checkpoint, target)
    return target


def _export(model: torch.nn.Module, target: Path, size: tuple[int, int], opset: int | None, dynamic: bool,
            checkpoint: str | Path) -> None:
    dummy = torch.zeros((1, 3, *size), dtype=torch.float32)
    axes = {"images": {0: "batch", 2: "height", 3: "width"}, "logits": {0: "batch", 2: "out_height", 3: "out_width"}}
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")  # tracer warnings about shape arithmetic in torchvision/smp heads
            # dynamo=False: the TorchScript exporter needs no onnxscript and handles data-dependent resize sizes
            torch.onnx.export(model.cpu().eval(), (dummy,), str(target), input_names=["images"],
                              output_names=["logits"], opset_version=opset,
                              dynamic_axes=axes if dynamic else None, dynamo=False)
    except Exception as exc:  # noqa: BLE001 - exporter failures come in many types
        raise ModelError(f"ONNX export of {checkpoint} failed: {str(exc).strip().splitlines()[0][:300]}") from None
