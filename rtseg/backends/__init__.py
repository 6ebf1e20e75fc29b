"""Inference backends behind one protocol, chosen from one table (:mod:`rtseg.backends.registry`)."""

from rtseg.backends.base import Backend, ModelInfo
from rtseg.backends.registry import FORMATS, load_backend

__all__ = ["FORMATS", "Backend", "ModelInfo", "load_backend"]
