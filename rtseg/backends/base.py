"""The backend protocols, the model descriptions backends expose, and the metadata keys exported files carry.

Two protocols, one per task: :class:`Backend` runs instance-segmentation (YOLO-seg) networks and describes
them with :class:`ModelInfo`; :class:`SemanticBackend` runs semantic networks and describes them with
:class:`SemanticInfo`. Both descriptions travel inside exported models, under the keys below; the key names
are part of the file formats (changing one orphans every file already written).

Importing this module needs neither PyTorch nor NumPy (they appear in annotations only).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    import numpy as np
    import torch
    from numpy.typing import NDArray

INSTANCE_METADATA_KEY = "rtseg"  # ONNX metadata entry of an instance model: its ModelInfo as JSON
SEMANTIC_METADATA_KEY = "rtseg_semantic"  # ONNX metadata entry of a semantic model: its SemanticInfo as JSON
ENGINE_METADATA_KEY = "rtseg_engine"  # marks rtseg's JSON header of a TensorRT engine (value: layout version)


@dataclass(frozen=True)
class ModelInfo:
    """What the pipeline needs to know about a loaded model; exported models carry it in their metadata.

    Attributes:
        names: class names, indexed by class id.
        imgsz: (height, width) the model was trained or exported at; the default inference size.
        task: ``"segment"`` for instance segmentation.
        stride: the largest feature stride; dynamic inputs are padded to a multiple of it.
        end2end: the head is one-to-one (YOLO26): outputs are final detections, no NMS.
        dynamic: the backend accepts any input size that is a multiple of ``stride``.
    """

    names: tuple[str, ...]
    imgsz: tuple[int, int]
    task: str = "segment"
    stride: int = 32
    end2end: bool = False
    dynamic: bool = True

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> ModelInfo:
        d = json.loads(text)
        return cls(names=tuple(d["names"]), imgsz=tuple(d["imgsz"]), task=d["task"], stride=int(d["stride"]),
                   end2end=bool(d["end2end"]), dynamic=bool(d.get("dynamic", True)))


class Backend(Protocol):
    """Runs the network: a (B, 3, H, W) float32 RGB batch in [0, 1] in, raw head outputs out.

    The batch is a NumPy array, or a tensor already on ``device`` (the device frame path,
    :mod:`rtseg.preprocess.device`). ``infer`` returns ``(preds, protos)``: ``preds`` is (B, 4 + nc + nm, A) for
    a one-to-many head or (B, K, 6 + nm) for an end-to-end head; ``protos`` is (B, nm, mh, mw). Both are
    tensors on ``device``, or float32 NumPy arrays from a backend that computes without PyTorch (ONNX Runtime
    on the CPU, ``device`` :data:`HOST`): post-processing then runs in NumPy and the run never imports PyTorch.

    Optional attributes the pipeline reads: ``workers`` (how many ``infer`` calls may run at once from
    different threads; 1 when absent) and ``computes_with_torch`` (the network runs on PyTorch, so on a CPU
    the run keeps PyTorch's intra-op threads).
    """

    info: ModelInfo
    device: torch.device | HostDevice

    def infer(self, batch: NDArray[np.float32] | torch.Tensor
              ) -> tuple[torch.Tensor, torch.Tensor] | tuple[NDArray[np.float32], NDArray[np.float32]]: ...


@dataclass(frozen=True)
class HostDevice:
    """The CPU, named without importing PyTorch: the ``device`` of backends whose outputs are NumPy arrays.

    It answers as ``torch.device("cpu")`` does where the pipeline asks (``.type``, ``.index``, ``str()``, and
    ``== "cpu"``).

    Example:
        >>> HOST.type, str(HOST), HOST == "cpu", HOST == "cuda"
        ('cpu', 'cpu', True, False)
    """

    type: str = "cpu"
    index: None = None

    def __str__(self) -> str:
        return self.type

    def __eq__(self, other: object) -> bool:
        return str(other) == self.type if isinstance(other, str) or hasattr(other, "type") else NotImplemented

    def __hash__(self) -> int:
        return hash(self.type)


HOST = HostDevice()


@dataclass(frozen=True)
class SemanticInfo:
    """What the semantic stage needs to know about a model; checkpoints and ONNX exports carry it.

    Attributes:
        names: class names, indexed by class id (at most 256: labels are uint8).
        palette_bgr: one (B, G, R) colour per class, 0..255, in frame channel order.
        imgsz: (height, width) the model was trained or exported at; the default inference size.
        mean_rgb: per-channel mean subtracted from RGB pixels scaled to 0..1.
        std_rgb: per-channel standard deviation the centred RGB pixels are divided by.
        arch: architecture name, a key of :data:`rtseg.models.zoo.ARCHS`.
        encoder: backbone name for encoder-decoder architectures (segmentation-models-pytorch), else None.
        stride: inputs are padded to a multiple of this.
        dynamic: the backend accepts any input size that is a multiple of ``stride``; False for an ONNX file
            exported at a fixed size (frames are then letterboxed to exactly ``imgsz``).
    """

    names: tuple[str, ...]
    palette_bgr: tuple[tuple[int, int, int], ...]
    imgsz: tuple[int, int]
    mean_rgb: tuple[float, float, float]
    std_rgb: tuple[float, float, float]
    arch: str
    encoder: str | None = None
    stride: int = 32
    dynamic: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "names", tuple(str(n) for n in self.names))
        object.__setattr__(self, "palette_bgr", tuple(tuple(int(v) for v in c) for c in self.palette_bgr))
        object.__setattr__(self, "imgsz", tuple(int(v) for v in self.imgsz))
        object.__setattr__(self, "mean_rgb", tuple(float(v) for v in self.mean_rgb))
        object.__setattr__(self, "std_rgb", tuple(float(v) for v in self.std_rgb))
        if not 1 <= len(self.names) <= 256:
            raise ValueError(f"SemanticInfo.names: expected 1 to 256 classes, got {len(self.names)}")
        if len(self.palette_bgr) != len(self.names) or any(len(c) != 3 for c in self.palette_bgr):
            raise ValueError(f"SemanticInfo.palette_bgr: expected {len(self.names)} (B, G, R) triples")
        if len(self.imgsz) != 2 or len(self.mean_rgb) != 3 or len(self.std_rgb) != 3:
            raise ValueError(f"SemanticInfo: expected imgsz (h, w), 3 means and 3 stds, got {self.imgsz}, "
                             f"{self.mean_rgb}, {self.std_rgb}")
        if min(self.std_rgb) <= 0:
            raise ValueError(f"SemanticInfo.std_rgb: expected positive values, got {self.std_rgb}")

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> SemanticInfo:
        d = json.loads(text)
        return cls(names=tuple(d["names"]), palette_bgr=tuple(tuple(c) for c in d["palette_bgr"]),
                   imgsz=tuple(d["imgsz"]), mean_rgb=tuple(d["mean_rgb"]), std_rgb=tuple(d["std_rgb"]),
                   arch=str(d["arch"]), encoder=d.get("encoder"), stride=int(d.get("stride", 32)),
                   dynamic=bool(d.get("dynamic", True)))


class SemanticBackend(Protocol):
    """Runs a semantic network: a (B, 3, H, W) float32 normalised RGB batch in, (B, C, h, w) logits out.

    ``h, w`` is the input size for most architectures; YOLO26-sem returns logits at 1/8 of it.
    """

    info: SemanticInfo
    device: torch.device

    def infer(self, batch: NDArray[np.float32]) -> torch.Tensor: ...
