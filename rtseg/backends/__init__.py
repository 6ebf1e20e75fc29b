"""Inference backends behind two protocols (:mod:`rtseg.backends.base`), chosen from one table
(:mod:`rtseg.backends.registry`); one module per runtime holds its instance and semantic backends."""

from rtseg.backends.base import Backend, ModelInfo, SemanticBackend, SemanticInfo
from rtseg.backends.registry import FORMATS, load_backend, load_semantic_backend

__all__ = ["FORMATS", "Backend", "ModelInfo", "SemanticBackend", "SemanticInfo", "load_backend",
           "load_semantic_backend"]
