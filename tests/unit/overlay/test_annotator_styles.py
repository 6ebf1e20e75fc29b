"""Drawing from the panoptic map (the picture is the data) and the fill / contour / both styles."""

from __future__ import annotations

import numpy as np
import pytest

from rtseg.errors import ConfigError
from rtseg.overlay.annotator import Annotator
from rtseg.postprocess.panoptic import PanopticFuser
from rtseg.types import FrameResult, InstanceMasks

NAMES, SEMANTIC = ("person",), ("background", "road", "person")
PALETTE = ((0, 0, 0), (0, 0, 255), (255, 0, 0))


def _result(semantic: np.ndarray | None = None) -> FrameResult:
    """Three people: #0 (score 0.9) overlaps #1 (0.6); #2 (0.5) lies almost all under #0: a duplicate."""
    boxes = [[0, 0, 20, 20], [10, 0, 30, 20], [1, 1, 19, 19]]
    crops = tuple(np.ones((y2 - y1, x2 - x1), bool) for x1, y1, x2, y2 in boxes)
    return FrameResult(0, (30, 40), boxes, [0.9, 0.6, 0.5], [0, 0, 0],
                       InstanceMasks(crops, [[b[0], b[1]] for b in boxes]), semantic=semantic, names=NAMES,
                       semantic_names=SEMANTIC)


def _annotator(**kw) -> Annotator:
    return Annotator(NAMES, alpha=1.0, boxes=False, labels=False, semantic_names=SEMANTIC, semantic_palette=PALETTE,
                     semantic_alpha=1.0, legend=False, **kw)


def test_panoptic_overlaps_are_drawn_as_fused() -> None:
    labels = np.ones((30, 40), np.uint8)  # road
    labels[25:, 35:] = 2  # semantic "person" no instance claims: void in the fused map
    fused = PanopticFuser(NAMES, SEMANTIC)(_result(labels))
    annotator = _annotator()
    c0, c1, _ = annotator.colours(fused)
    out = annotator.draw(np.zeros((30, 40, 3), np.uint8), fused)
    assert (out[0, 15] == c0).all()  # the shared pixels belong to #0, the higher score ...
    plain = annotator.draw(np.zeros((30, 40, 3), np.uint8), _result(labels))
    assert (plain[0, 15] == c1).all()  # ... where unfused drawing paints the later instance on top
    assert (out[5, 25] == c1).all() and (out[22, 5] == PALETTE[1]).all()  # #1's own pixels; road
    assert (out[27, 37] == 0).all()  # void: no colour, though the label map says "person"
    assert (plain[27, 37] == PALETTE[2]).all()


def test_a_duplicate_the_fusion_dropped_is_not_drawn() -> None:
    fused = PanopticFuser(NAMES, SEMANTIC)(_result(np.ones((30, 40), np.uint8)))
    assert [s.get("detection") for s in fused.panoptic.segments_info()] == [0, 1, None]
    boxes = Annotator(NAMES, alpha=0.0, labels=False).draw(np.zeros((30, 40, 3), np.uint8), fused[[2]])
    assert boxes.any()  # a box is drawn for #2 alone ...
    drawn = Annotator(NAMES, alpha=0.0, labels=False, colour_by="class").draw(np.zeros((30, 40, 3), np.uint8), fused)
    alone = Annotator(NAMES, alpha=0.0, labels=False, colour_by="class").draw(
        np.zeros((30, 40, 3), np.uint8), fused[[0, 1]])
    assert (drawn == alone).all()  # ... but not when it is a dropped duplicate


def test_contour_style_outlines_without_filling() -> None:
    labels = np.zeros((30, 40), np.uint8)
    labels[:, 30:] = 1
    result = _result(labels)[[1]]
    image = np.full((30, 40, 3), 100, np.uint8)
    fill = _annotator(style="fill").draw(image, result)
    contour = _annotator(style="contour").draw(image, result)
    both = _annotator(style="both").draw(image, result)
    (colour,) = _annotator().colours(result)
    assert (fill[10, 20] == colour).all() and (contour[10, 20] == 100).all()  # inside: filled / untouched
    assert (contour[10, 10] != 100).any() and (both[10, 10] != 100).any()  # the outline (anti-aliased)
    assert (both[10, 20] == colour).all()
    assert (contour[5, 35] == 100).all() and (fill[5, 35] == PALETTE[1]).all()  # road inside: untouched / filled
    assert (contour[5, 30] == PALETTE[1]).all() or (contour[5, 29] == PALETTE[1]).all()  # road's edge
    assert (contour[5, 2] == 100).all()  # background is not drawn in any style


def test_unknown_style_is_refused() -> None:
    with pytest.raises(ConfigError, match="style='outline': expected one of fill, contour, both"):
        Annotator(NAMES, style="outline")
