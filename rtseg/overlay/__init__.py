"""Drawing results onto frames: per-class palette, masks, boxes, labels, HUD."""

from rtseg.overlay.annotator import Annotator
from rtseg.overlay.palette import color_for

__all__ = ["Annotator", "color_for"]
