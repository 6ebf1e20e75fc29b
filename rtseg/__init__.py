"""rtseg: real-time video segmentation (instance, semantic or both) with a threaded, timed pipeline.

The front door (loaded on first use, so ``import rtseg`` stays light)::

    seg = rtseg.load_model("yolo26n-seg.pt")          # or no argument: the bundled person/cat/dog model
    results = seg.predict("photo.jpg")                # list[FrameResult]
    for frame, result in seg.stream("clip.mp4"):      # threaded pipeline, frames in order
        ...
    summary = rtseg.run("clip.mp4", out="clip_seg.mp4", jsonl="clip.jsonl")   # what `rtseg run` does
    rtseg.export("best.pt", "onnx")
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rtseg.config import ASSETS, DEFAULT_MODEL, __version__, quiet_environment

quiet_environment()

if TYPE_CHECKING:
    from rtseg.api import Segmenter, export, load_model, run
    from rtseg.errors import RtsegError
    from rtseg.pipeline.streams import RunSummary
    from rtseg.types import Frame, FrameResult, InstanceMasks

_LAZY = {
    "load_model": "rtseg.api", "Segmenter": "rtseg.api", "run": "rtseg.api", "export": "rtseg.api",
    "Frame": "rtseg.types", "FrameResult": "rtseg.types", "InstanceMasks": "rtseg.types",
    "RunSummary": "rtseg.pipeline.streams", "RtsegError": "rtseg.errors",
}
__all__ = ["ASSETS", "DEFAULT_MODEL", "Frame", "FrameResult", "InstanceMasks", "RtsegError", "RunSummary", "Segmenter",
           "__version__", "export", "load_model", "run"]


def __getattr__(name: str) -> object:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'rtseg' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
