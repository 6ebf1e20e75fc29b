"""Semi-automatic labelling (``rtseg label``): a model pre-labels sampled frames, people correct the result in
LabelMe, AnyLabeling, CVAT or any COCO / YOLO-seg tool, and ``rtseg convert`` / ``rtseg train`` read it back.

:func:`~rtseg.label.core.prelabel` does the work; :mod:`rtseg.label.frames` picks the frames,
:mod:`rtseg.label.shapes` turns masks into simplified polygons, :mod:`rtseg.label.writers` writes the formats.
"""

from rtseg.label.core import LabelReport, prelabel
from rtseg.label.writers import FORMATS

__all__ = ["FORMATS", "LabelReport", "prelabel"]
