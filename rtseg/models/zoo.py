"""Semantic segmentation models: one table of architectures, named pretrained weights, rtseg checkpoints.

* :data:`ARCHS` builds untrained networks: torchvision (DeepLabV3, LR-ASPP), segmentation-models-pytorch
  (U-Net, Linknet, FPN, PSPNet, DeepLabV3, DeepLabV3+, any smp encoder), SegNet (:mod:`rtseg.models.segnet`),
  Ultralytics YOLO26-sem and
  MediaPipe's selfie segmenters (:mod:`rtseg.models.selfie`, converted weights in ``rtseg/assets``).
* :func:`load_pretrained` loads torchvision's published weights by name
  (``deeplabv3_mobilenet_v3_large.COCO_WITH_VOC_LABELS_V1``), downloading them only when asked.
* :func:`save_semantic` / :func:`load_semantic` write and read a self-describing checkpoint: architecture,
  encoder, :class:`~rtseg.backends.base.SemanticInfo` and weights, readable with
  ``torch.load(weights_only=True)`` (no pickled code).
* :func:`torch_semantic_backend` is the PyTorch semantic backend of the format table
  (:data:`rtseg.backends.registry.FORMATS`): the network :func:`load_semantic` rebuilds, run by
  :class:`~rtseg.backends.torch_backend.TorchSemanticBackend`.

Every network is wrapped in :class:`LogitsNet`, whose forward returns (B, C, h, w) logits.
"""

from __future__ import annotations

import importlib.util
import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from rtseg.backends.base import SemanticInfo
from rtseg.backends.torch_backend import TorchSemanticBackend, load_yolo
from rtseg.backends.weights import load_weights
from rtseg.errors import BackendUnavailable, ModelError
from rtseg.models.segnet import SegNet
from rtseg.models.selfie import SIZES as SELFIE_SIZES
from rtseg.models.selfie import build_selfie

LOGGER = logging.getLogger(__name__)

CHECKPOINT_FORMAT = "rtseg-semantic/1"  # value of the "format" key of a checkpoint written by save_semantic
IMAGENET_MEAN_RGB = (0.485, 0.456, 0.406)
IMAGENET_STD_RGB = (0.229, 0.224, 0.225)


def voc_palette_bgr(n: int) -> tuple[tuple[int, int, int], ...]:
    """The PASCAL VOC colour map (bit-interleaved class ids) for ``n`` classes, as (B, G, R)."""
    colours = []
    for i in range(n):
        r = g = b = 0
        c = i
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        colours.append((b, g, r))
    return tuple(colours)


class LogitsNet(nn.Module):
    """Wraps a segmentation network so that ``forward`` returns a (B, C, h, w) logits tensor.

    torchvision returns ``{"out": ..., "aux": ...}``; Ultralytics may return a tuple in training mode.

    Attributes:
        net: the wrapped network; its ``state_dict`` is what checkpoints store.
        family: ``"torchvision"``, ``"smp"`` or ``"ultralytics"``.
        yaml: the Ultralytics model config (YOLO26-sem), needed to rebuild the network; else None.
    """

    def __init__(self, net: nn.Module, family: str, yaml: dict | None = None) -> None:
        super().__init__()
        self.net, self.family, self.yaml = net, family, yaml

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.net(x)
        if isinstance(out, dict):
            return out["out"]
        if isinstance(out, (tuple, list)):
            return out[0]
        return out


@dataclass(frozen=True)
class Arch:
    """One architecture: how to build it untrained, and the input contract of its family.

    Attributes:
        family: ``"torchvision"``, ``"smp"``, ``"ultralytics"``, ``"mediapipe"`` or ``"rtseg"`` (SegNet).
        build: ``build(num_classes, encoder)`` -> the bare network.
        encoder: default encoder (smp only).
        mean_rgb, std_rgb: normalisation the family expects (ImageNet's; YOLO uses raw 0..1 pixels).
    """

    family: str
    build: Callable[[int, str | None], nn.Module]
    encoder: str | None = None
    mean_rgb: tuple[float, float, float] = IMAGENET_MEAN_RGB
    std_rgb: tuple[float, float, float] = IMAGENET_STD_RGB


def _torchvision(name: str) -> Callable[[int, str | None], nn.Module]:
    def build(num_classes: int, encoder: str | None) -> nn.Module:
        from torchvision.models import segmentation

        builder = getattr(segmentation, name)
        kwargs = {} if name.startswith("lraspp") else {"aux_loss": False}  # lraspp has no auxiliary head
        return builder(weights=None, weights_backbone=None, num_classes=num_classes, **kwargs)

    return build


def _smp(name: str) -> Callable[[int, str | None], nn.Module]:
    def build(num_classes: int, encoder: str | None) -> nn.Module:
        if importlib.util.find_spec("segmentation_models_pytorch") is None:
            raise BackendUnavailable(f"architecture {name!r} needs segmentation-models-pytorch: "
                                     "pip install 'segmentation-models-pytorch>=0.5'")
        import segmentation_models_pytorch as smp

        try:
            return getattr(smp, name)(encoder_name=encoder, encoder_weights=None, classes=num_classes)
        except KeyError as exc:  # smp lists the valid encoders in the message
            raise ModelError(f"{name}: {str(exc).strip(chr(34))[:2000]}") from None

    return build


def _selfie(name: str) -> Callable[[int, str | None], nn.Module]:
    def build(num_classes: int, encoder: str | None) -> nn.Module:
        return build_selfie(name, num_classes)

    return build


def _segnet(num_classes: int, encoder: str | None) -> nn.Module:
    return SegNet(num_classes)


def _yolo(scale: str) -> Callable[[int, str | None], nn.Module]:
    def build(num_classes: int, encoder: str | None) -> nn.Module:
        from ultralytics.nn.tasks import SemanticSegmentationModel

        return SemanticSegmentationModel(f"yolo26{scale}-sem.yaml", nc=num_classes, verbose=False)

    return build


_YOLO_INPUT = {"mean_rgb": (0.0, 0.0, 0.0), "std_rgb": (1.0, 1.0, 1.0)}
ARCHS: dict[str, Arch] = {
    **{name: Arch("torchvision", _torchvision(name))
       for name in ("deeplabv3_mobilenet_v3_large", "deeplabv3_resnet50", "lraspp_mobilenet_v3_large")},
    **{name: Arch("smp", _smp(name), encoder="mobilenet_v2")
       for name in ("Unet", "Linknet", "FPN", "PSPNet", "DeepLabV3", "DeepLabV3Plus")},
    "SegNet": Arch("rtseg", _segnet),  # rtseg.models.segnet: pooling indices reused for unpooling
    **{f"yolo26{s}-sem": Arch("ultralytics", _yolo(s), **_YOLO_INPUT) for s in "nsmlx"},
    **{name: Arch("mediapipe", _selfie(name), **_YOLO_INPUT) for name in SELFIE_SIZES},  # RGB in [0, 1]
}


def resolve_arch(name: str) -> str:
    """The :data:`ARCHS` key for ``name`` (case-insensitive); ModelError listing the valid names otherwise."""
    keys = {k.lower(): k for k in ARCHS}
    key = keys.get(str(name).lower())
    if key is None:
        raise ModelError(f"unknown semantic architecture {name!r}; expected one of {', '.join(ARCHS)}")
    return key


def build_semantic(arch: str, *, num_classes: int | None = None, names: Sequence[str] | None = None,
                   encoder: str | None = None, imgsz: int | Sequence[int] = 512) -> tuple[LogitsNet, SemanticInfo]:
    """An untrained (randomly initialised) network and its description.

    Args:
        arch: a key of :data:`ARCHS` (case-insensitive).
        num_classes: number of classes; default ``len(names)``.
        names: class names; default ``"0"``, ``"1"``, ...
        encoder: smp encoder (default ``mobilenet_v2``); must be None for other families.
        imgsz: default inference size, one int or (height, width).
    """
    key = resolve_arch(arch)
    spec = ARCHS[key]
    if names is None and num_classes is None:
        raise ModelError("build_semantic: give num_classes or names")
    names = tuple(str(n) for n in names) if names is not None else tuple(str(i) for i in range(num_classes or 0))
    if num_classes is not None and num_classes != len(names):
        raise ModelError(f"build_semantic: num_classes={num_classes} but {len(names)} names")
    if spec.family != "smp" and encoder is not None:
        raise ModelError(f"{key} has a fixed backbone; encoder={encoder!r} applies to smp architectures only")
    encoder = encoder or spec.encoder
    net = spec.build(len(names), encoder)
    yaml = dict(net.yaml) if spec.family == "ultralytics" else None
    size = (imgsz, imgsz) if isinstance(imgsz, int) else tuple(int(v) for v in imgsz)
    info = SemanticInfo(names=names, palette_bgr=voc_palette_bgr(len(names)), imgsz=size, mean_rgb=spec.mean_rgb,
                        std_rgb=spec.std_rgb, arch=key, encoder=encoder)
    return LogitsNet(net, spec.family, yaml).eval(), info


def pretrained_names() -> list[str]:
    """Every ``ARCH.WEIGHTS`` name :func:`load_pretrained` accepts (torchvision's published weights)."""
    from torchvision.models import get_model_weights

    return [f"{a}.{w.name}" for a, s in ARCHS.items() if s.family == "torchvision" for w in get_model_weights(a)]


def load_pretrained(name: str) -> tuple[LogitsNet, SemanticInfo]:
    """torchvision's pretrained weights by name, e.g. ``lraspp_mobilenet_v3_large.COCO_WITH_VOC_LABELS_V1``.

    Downloaded once into torch's hub cache (``$TORCH_HOME/hub/checkpoints``) and read from there afterwards.

    Raises:
        ModelError: unknown name (the valid ones are listed), or the download failed (offline): the message
            says where to put the file by hand.
    """
    from torchvision.models import get_model_weights

    arch, _, tag = name.partition(".")
    key = next((k for k in ARCHS if k.lower() == arch.lower() and ARCHS[k].family == "torchvision"), None)
    try:
        weights = get_model_weights(key)[tag] if key is not None else None  # type: ignore[index]
    except KeyError:
        weights = None
    if weights is None:
        raise ModelError(f"unknown pretrained weights {name!r}; expected one of {', '.join(pretrained_names())}")
    cached = Path(torch.hub.get_dir()) / "checkpoints" / Path(weights.url).name
    try:
        # torch.hub unpickles fully by default, and the hash is checked only on download, not on a cached file
        state = weights.get_state_dict(progress=False, check_hash=True, weights_only=True)
    except OSError as exc:  # urllib's URLError / HTTPError and socket errors are all OSErrors
        raise ModelError(f"cannot download {name} ({type(exc).__name__}, offline?): fetch {weights.url} on a "
                         f"connected machine and copy it to {cached}, or pass a local rtseg checkpoint "
                         "(.pt written by save_semantic)") from None
    except Exception as exc:  # noqa: BLE001 - a damaged cached file, or a download failing its hash check
        reason = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        raise ModelError(f"cannot read the weights of {name} ({reason}): delete {cached} and try again") from None
    state = {k: v for k, v in state.items() if not k.startswith("aux_classifier.")}
    names = tuple("background" if c == "__background__" else c for c in weights.meta["categories"])
    net, _ = build_semantic(key, names=names)
    net.net.load_state_dict(state)
    transforms = weights.transforms()
    side = int(transforms.resize_size[0])
    info = SemanticInfo(names=names, palette_bgr=voc_palette_bgr(len(names)), imgsz=(side, side),
                        mean_rgb=tuple(transforms.mean), std_rgb=tuple(transforms.std), arch=key)
    return net.eval(), info


def save_semantic(path: str | Path, model: nn.Module, info: SemanticInfo) -> Path:
    """Write an rtseg semantic checkpoint that :func:`load_semantic` reads back without side files.

    The file is ``torch.save`` of a dict of strings and a state dict only, so it loads with
    ``torch.load(weights_only=True)``.

    Args:
        path: output file (``.pt``).
        model: a :class:`LogitsNet` (or the bare network of ``info.arch``).
        info: its description; ``info.arch`` and ``info.encoder`` say how to rebuild it.
    """
    net = model.net if isinstance(model, LogitsNet) else model
    yaml = model.yaml if isinstance(model, LogitsNet) else getattr(net, "yaml", None)
    ckpt = {"format": CHECKPOINT_FORMAT, "arch": info.arch, "encoder": info.encoder or "",
            "info": info.to_json(), "yaml": json.dumps(yaml) if yaml else "",
            "state_dict": {k: v.detach().cpu() for k, v in net.state_dict().items()}}
    path = Path(path)
    torch.save(ckpt, path)
    return path


def _rebuild(ckpt: dict, source: str) -> tuple[LogitsNet, SemanticInfo]:
    info = SemanticInfo.from_json(ckpt["info"])
    key = resolve_arch(ckpt["arch"])
    spec = ARCHS[key]
    if spec.family == "ultralytics" and ckpt.get("yaml"):
        from ultralytics.nn.tasks import SemanticSegmentationModel

        net = LogitsNet(SemanticSegmentationModel(json.loads(ckpt["yaml"]), nc=len(info.names), verbose=False),
                        "ultralytics", json.loads(ckpt["yaml"]))
    else:
        net, _ = build_semantic(key, names=info.names, encoder=ckpt.get("encoder") or None)
    try:
        net.net.load_state_dict(ckpt["state_dict"])
    except RuntimeError as exc:
        raise ModelError(f"{source}: weights do not fit {key} "
                         f"({str(exc).strip().splitlines()[0][:200]})") from None
    return net, info


def _load_ultralytics(path: str) -> tuple[LogitsNet, SemanticInfo]:
    yolo = load_yolo(path)
    if yolo.task != "semantic":
        raise ModelError(f"{path} is an Ultralytics {yolo.task!r} model; semantic segmentation needs a "
                         "YOLO '-sem' model or an rtseg semantic checkpoint")
    net = yolo.model
    names = tuple(str(net.names[i]) for i in range(len(net.names)))
    args = getattr(net, "args", None) or {}
    imgsz = args.get("imgsz", 640) if isinstance(args, dict) else 640
    imgsz = (imgsz, imgsz) if isinstance(imgsz, int) else tuple(imgsz)
    yaml = dict(net.yaml)
    scale = yaml.get("scale") or "n"
    arch = f"yolo26{scale}-sem" if f"yolo26{scale}-sem" in ARCHS else "yolo26n-sem"
    info = SemanticInfo(names=names, palette_bgr=voc_palette_bgr(len(names)), imgsz=imgsz, mean_rgb=(0, 0, 0),
                        std_rgb=(1, 1, 1), arch=arch, stride=int(max(net.stride)))
    return LogitsNet(net.float(), "ultralytics", yaml), info


def load_semantic(path_or_name: str | Path, device: str = "cpu") -> tuple[nn.Module, SemanticInfo]:
    """A semantic network in eval mode on ``device``, and its description.

    Args:
        path_or_name: an rtseg checkpoint written by :func:`save_semantic`; an Ultralytics YOLO26-sem ``.pt``
            checkpoint or ``.yaml`` config (untrained, for tests); or a pretrained name from
            :func:`pretrained_names`.
        device: ``cpu`` or ``cuda[:N]``.

    Raises:
        ModelError: missing, corrupt or wrong-kind file, unknown name, or weights that cannot be downloaded.
    """
    source = str(path_or_name)
    path = Path(source)
    if path.suffix.lower() in (".yaml", ".yml"):
        net, info = _load_ultralytics(source)
    elif path.is_file():
        net, info = _load_file(path)
    elif "." in source and path.parent == Path(".") and source.split(".", 1)[0].lower() in {k.lower() for k in ARCHS}:
        net, info = load_pretrained(source)
    else:
        raise ModelError(f"semantic model not found: {source} (neither a file nor a pretrained name such as "
                         f"{pretrained_names()[0]})")
    return net.to(torch.device(device)).eval(), info  # type: ignore[union-attr]


def torch_semantic_backend(path_or_name: str | Path, *, device: str = "cpu", half: bool = False
                           ) -> TorchSemanticBackend:
    """Anything :func:`load_semantic` reads, ready to run on PyTorch (``half``: FP16, CUDA only).

    The ``"semantic"`` backend of the ``torch`` row of :data:`rtseg.backends.registry.FORMATS`: prefer
    :func:`rtseg.backends.registry.load_semantic_backend`, which picks the backend from the file.
    """
    model, info = load_semantic(path_or_name, device=device)
    return TorchSemanticBackend(model, info, device=device, half=half)


def _load_file(path: Path) -> tuple[LogitsNet, SemanticInfo]:
    ckpt = load_weights(path)  # ModelError: not a PyTorch file, or (untrusted) it names code to run
    if isinstance(ckpt, dict) and isinstance(ckpt.get("ema") or ckpt.get("model"), nn.Module):
        return _load_ultralytics(str(path))  # an Ultralytics checkpoint: YOLO26-sem
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        raise ModelError(f"{path} is not an rtseg semantic checkpoint (no format={CHECKPOINT_FORMAT!r} entry); "
                         "write one with rtseg.models.zoo.save_semantic")
    try:
        return _rebuild(ckpt, str(path))
    except (KeyError, ValueError, TypeError, json.JSONDecodeError) as exc:
        raise ModelError(f"{path}: damaged rtseg semantic checkpoint ({type(exc).__name__}: {exc})") from None
