"""Boundary maps: where labels change, as wide as asked; what --save-boundaries draws from."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from rtseg.errors import ConfigError
from rtseg.postprocess.boundaries import boundary_map, mask_boundary, segment_map
from rtseg.types import FrameResult, InstanceMasks


@pytest.mark.parametrize("width", [1, 2, 3, 4])
def test_the_band_is_width_pixels_wide_around_each_change(width) -> None:
    labels = np.zeros((10, 20), np.uint8)
    labels[:, 10:] = 7
    band = boundary_map(labels, width)
    assert band.sum(1).tolist() == [width] * 10  # each row: width pixels, at the change
    cols = np.flatnonzero(band[0])
    assert cols.min() <= 10 <= cols.max() + 1 and cols.max() - cols.min() == width - 1
    assert not boundary_map(np.full((5, 5), 3, np.uint8), width).any()  # no change, no boundary (edges too)


def test_large_segment_ids() -> None:
    ids = np.zeros((6, 6), np.int32)
    ids[:, 3:] = 70000  # beyond uint16
    assert boundary_map(ids, 2)[:, 2:4].all() and boundary_map(ids, 2).sum() == 12


@pytest.mark.parametrize("width", [0, -1, 65, 2.5, True])
def test_bad_widths_are_refused(width) -> None:
    with pytest.raises(ConfigError, match="boundary_width=.*expected a whole number of pixels, 1..64"):
        boundary_map(np.zeros((4, 4), np.uint8), width)


def test_segment_map_puts_instances_over_the_classes() -> None:
    labels = np.zeros((10, 10), np.uint8)
    labels[5:] = 1
    r = FrameResult(0, (10, 10), [[2, 2, 6, 6]], [0.5], [0], InstanceMasks((np.ones((4, 4), bool),), [[2, 2]]),
                    semantic=labels)
    ids = segment_map(r)
    assert ids[3, 3] == 256 and ids[0, 0] == 0 and ids[9, 9] == 1
    assert segment_map(FrameResult.empty(0, (4, 4))) is None
    m = np.zeros((5, 5), bool)
    m[1:4, 1:4] = True
    assert mask_boundary(m).sum() == 8 and not mask_boundary(m)[2, 2]


def test_segment_map_of_a_fused_result_is_its_panoptic_map() -> None:
    from rtseg.postprocess.panoptic import fuse_panoptic

    labels = np.zeros((10, 10), np.uint8)
    boxes = [[0, 0, 6, 6], [1, 1, 7, 7]]  # the second, 69% under the first, is a duplicate the fusion drops
    r = FrameResult(0, (10, 10), boxes, [0.9, 0.8], [0, 0],
                    InstanceMasks((np.ones((6, 6), bool), np.ones((6, 6), bool)), [[0, 0], [1, 1]]), semantic=labels,
                    names=("person",), semantic_names=("background",))
    fused = replace(r, panoptic=fuse_panoptic(r))
    assert segment_map(fused) is fused.panoptic.ids
    assert set(np.unique(segment_map(r))) == {0, 256, 257}  # unfused: the duplicate's outline too
