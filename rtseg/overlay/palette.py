"""Per-class colours: a fixed, high-contrast palette, cycled for models with many classes."""

from __future__ import annotations

_HEX = ("FF3838", "2C99A8", "FF9D97", "FF701F", "FFB21D", "CFD231", "48F90A", "92CC17", "3DDB86", "1A9334",
        "00D4BB", "FF6FDD", "00C2FF", "344593", "6473FF", "0018EC", "8438FF", "520085", "CB38FF", "FF95C8")
PALETTE_BGR: tuple[tuple[int, int, int], ...] = tuple(
    (int(h[4:6], 16), int(h[2:4], 16), int(h[0:2], 16)) for h in _HEX)


def color_for(class_id: int) -> tuple[int, int, int]:
    """BGR colour of a class id."""
    return PALETTE_BGR[int(class_id) % len(PALETTE_BGR)]


def instance_color(rank: int) -> tuple[int, int, int]:
    """BGR colour of a frame's ``rank``-th instance: palette entries 7 apart, so that instances next to each
    other in that order get far-apart hues (neighbouring entries include red, pink and orange)."""
    return PALETTE_BGR[(7 * int(rank)) % len(PALETTE_BGR)]
