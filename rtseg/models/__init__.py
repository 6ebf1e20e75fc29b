"""Model families: pre- and post-processing around a backend."""

from rtseg.models.yolo_seg import YoloSegModel

__all__ = ["YoloSegModel"]
