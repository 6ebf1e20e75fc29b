"""What the pipeline calls on a model stage: the instance and semantic stage protocols.

A stage owns everything about its model: how frames become a network input, which frames can share one
call and how a batch's outputs split back per frame, how many calls may run at once, and where it
computes. The pipeline only schedules: it calls :meth:`InstanceStage.prepare` on each decode thread,
:meth:`InstanceStage.infer_frames` on ``workers`` inference threads, :meth:`InstanceStage.finish` on the
post-processing thread in frame order, and a :class:`SemanticStage` on a thread of its own.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np
from numpy.typing import NDArray

from rtseg.types import FrameResult

if TYPE_CHECKING:
    import torch

    from rtseg.backends.base import HostDevice


@runtime_checkable
class InstanceStage(Protocol):
    """An instance-segmentation stage (:class:`~rtseg.models.yolo_seg.YoloSegModel`,
    :class:`~rtseg.models.tiling.TiledYoloSeg`): frames in, one :class:`FrameResult` per frame out.

    ``prepare`` and ``finish`` see one frame at a time in the pipeline; ``infer_frames`` sees up to
    ``max_batch`` prepared frames (from one or several streams) and decides itself which of them can run as
    one network call.
    """

    @property
    def max_batch(self) -> int | None:
        """The most frames one :meth:`infer_frames` call takes; None: no limit (1 for a tiled model, whose
        tiles of one frame are its batch)."""
        ...

    @property
    def workers(self) -> int:
        """How many :meth:`infer_frames` calls may run at once from different threads (ONNX Runtime on a
        CPU: one per session); the pipeline keeps that many batches in flight."""
        ...

    @property
    def device(self) -> torch.device | HostDevice | None:
        """Where the network runs; on CUDA each inference thread queues its calls on a stream of its own."""
        ...

    @property
    def uses_torch_cpu(self) -> bool:
        """The network computes with PyTorch on the CPU: the run keeps PyTorch's intra-op threads."""
        ...

    def prepare(self, images: Sequence[NDArray[np.uint8]]) -> Any:
        """The network input of BGR uint8 (H, W, 3) frames (the pipeline passes one frame)."""
        ...

    def infer_frames(self, prepared: Sequence[Any]) -> list[Any]:
        """Raw outputs of each prepared frame, in order: frames that can share a call are batched, and the
        batch's outputs are split back so that item ``i`` belongs to ``prepared[i]`` alone."""
        ...

    def finish(self, raw: Any, prepared: Any, frame_indices: Sequence[int]) -> list[FrameResult]:
        """Detections in frame pixels: one :class:`FrameResult` per frame of ``prepared``."""
        ...


@runtime_checkable
class SemanticStage(Protocol):
    """A semantic-segmentation stage (:class:`~rtseg.models.semantic.SemanticModel` and its tiled and
    remapped wrappers): BGR uint8 (H, W, 3) frames in, one (H, W) uint8 class-id map per frame out."""

    @property
    def device(self) -> torch.device | None:
        """Where the network runs; on CUDA its thread queues work on a stream of its own."""
        ...

    @property
    def uses_torch_cpu(self) -> bool:
        """The network computes with PyTorch on the CPU: the run keeps PyTorch's intra-op threads."""
        ...

    def __call__(self, images: Sequence[NDArray[np.uint8]]) -> list[NDArray[np.uint8]]: ...


class CallableSemantic:
    """A plain function ``images -> label maps`` as a :class:`SemanticStage` that computes on the CPU
    without PyTorch (a hand-written labeller, a test fake)."""

    device = None
    uses_torch_cpu = False

    def __init__(self, labels_of: Callable[[Sequence[NDArray[np.uint8]]], list[NDArray[np.uint8]]]) -> None:
        self._labels_of = labels_of

    def __call__(self, images: Sequence[NDArray[np.uint8]]) -> list[NDArray[np.uint8]]:
        return self._labels_of(images)


def as_semantic_stage(stage: SemanticStage | Callable[[Sequence[NDArray[np.uint8]]], list[NDArray[np.uint8]]]
                      ) -> SemanticStage:
    """``stage`` when it implements :class:`SemanticStage`; a plain callable wrapped in :class:`CallableSemantic`.

    Raises:
        TypeError: ``stage`` is not callable.
    """
    if isinstance(stage, SemanticStage):
        return stage
    if not callable(stage):
        raise TypeError(f"semantic: expected a semantic stage or a function of images, got {type(stage).__name__}")
    return CallableSemantic(stage)
