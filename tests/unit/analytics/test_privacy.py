"""Privacy blur changes exactly the mask pixels plus the feather and nothing else; the background mode keeps
every person pixel identical to the input, and its edge does not flicker."""

from __future__ import annotations

import doctest
from pathlib import Path

import cv2
import numpy as np
import pytest

import rtseg.analytics.background as background_module
import rtseg.analytics.privacy as privacy_module
from rtseg.analytics.background import Background, parse_background
from rtseg.analytics.privacy import Privacy, feather_alpha, obscure
from rtseg.errors import ConfigError
from rtseg.types import FrameResult, InstanceMasks

HW = (120, 160)


def noise(hw: tuple[int, int] = HW, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (*hw, 3), dtype=np.uint8)


def disc(cx: int, cy: int, r: int, hw: tuple[int, int] = HW) -> np.ndarray:
    yy, xx = np.mgrid[: hw[0], : hw[1]]
    return (xx - cx) ** 2 + (yy - cy) ** 2 <= r * r


def result_of(masks: list[np.ndarray], classes: list[int], hw: tuple[int, int] = HW) -> FrameResult:
    crops, origins, boxes = [], [], []
    for m in masks:
        ys, xs = np.nonzero(m)
        x1, y1, x2, y2 = xs.min(), ys.min(), xs.max() + 1, ys.max() + 1
        crops.append(m[y1:y2, x1:x2].copy())
        origins.append([x1, y1])
        boxes.append([x1, y1, x2, y2])
    return FrameResult(0, hw, np.array(boxes, np.float32), np.full(len(masks), 0.9, np.float32),
                       np.array(classes, np.int32), InstanceMasks(crops, np.array(origins)))


def distance_to(mask: np.ndarray) -> np.ndarray:
    return cv2.distanceTransform((~mask).view(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_PRECISE)


@pytest.mark.parametrize("module", [privacy_module, background_module])
def test_examples_run(module: object) -> None:
    finder, runner = doctest.DocTestFinder(), doctest.DocTestRunner()
    for test in finder.find(module):
        runner.run(test)
    result = runner.summarize(verbose=False)
    assert result.failed == 0 and result.attempted > 0


@pytest.mark.parametrize("style", ["blur", "pixelate"])
def test_blur_changes_exactly_the_mask_and_its_feather(style: str) -> None:
    image = noise()
    person, dog = disc(50, 60, 25), disc(125, 60, 20)
    out = Privacy([0], style=style, feather_px=3).apply(image.copy(), result_of([person, dog], [0, 1]))
    changed = (out != image).any(2)
    dist = distance_to(person)
    assert not changed[dist >= 3].any()  # nothing beyond the feather: the dog and the background untouched
    assert changed[person].mean() > 0.98  # a noise image: a blurred pixel all but never equals the original
    assert out[person].std() < 0.3 * image[person].std()  # and the noise is gone: obscured, not just changed
    ramp = (dist > 0) & (dist < 2.5)
    assert changed[ramp].mean() > 0.5  # the feather fades (its outer pixels may round back to the original)
    # inside the mask, exactly the obscured region's pixels: nothing of the original mixed in
    ys, xs = np.nonzero(person)
    region = (slice(ys.min() - 3, ys.max() + 4), slice(xs.min() - 3, xs.max() + 4))
    if style == "pixelate":
        expected = obscure(image[region], style, max(np.ptp(ys), np.ptp(xs)) + 1)
        assert np.array_equal(out[region][person[region]], expected[person[region]])
    assert np.array_equal(out[dist >= 3], image[dist >= 3])


def test_blur_without_feather_and_at_the_frame_edge() -> None:
    image = noise()
    edge = disc(0, 0, 30)  # cut by the frame's corner
    out = Privacy([0], feather_px=0).apply(image.copy(), result_of([edge], [0]))
    changed = (out != image).any(2)
    assert not changed[~edge].any() and changed[edge].mean() > 0.98


def test_box_style_blurs_the_whole_box_as_peers_do() -> None:
    image = noise()
    person = disc(60, 60, 25)
    r = result_of([person], [0])
    out = Privacy([0], style="box").apply(image.copy(), r)
    changed = (out != image).any(2)
    x1, y1, x2, y2 = (int(v) for v in r.boxes_xyxy[0])
    inside_box = np.zeros(HW, bool)
    inside_box[y1:y2, x1:x2] = True
    assert not changed[~inside_box].any() and changed[inside_box & ~person].mean() > 0.98


def test_semantic_classes_are_blurred_too() -> None:
    image = noise()
    labels = np.zeros(HW, np.uint8)
    labels[30:60, 40:90] = 2
    r = FrameResult.empty(0, HW)
    from dataclasses import replace

    out = Privacy([], semantic_ids=[2], feather_px=0).apply(image.copy(), replace(r, semantic=labels))
    changed = (out != image).any(2)
    assert not changed[labels != 2].any() and changed[labels == 2].mean() > 0.98


def test_feather_alpha() -> None:
    m = np.zeros((9, 9), bool)
    m[4, 4] = True
    a = feather_alpha(m, 2)
    assert a[4, 4] == 1 and a[4, 5] == pytest.approx(0.5) and a[4, 6] == 0
    assert a[5, 5] == pytest.approx(1 - 2**0.5 / 2, abs=0.03)  # the distance is approximate, within 3%


def test_bad_style() -> None:
    with pytest.raises(ConfigError, match="blur_style='smudge': expected one of blur, pixelate, box"):
        Privacy([0], style="smudge")


# --- background -------------------------------------------------------------------------------------------------


def test_background_keeps_person_pixels_identical() -> None:
    image = noise()
    person = disc(70, 60, 30)
    cat = disc(140, 20, 10)
    r = result_of([person, cat], [0, 1])
    back = Background("#00ff00", person_ids=[0], edge_px=4)
    out = back.apply(image.copy(), r)
    assert np.array_equal(out[person], image[person])
    far = distance_to(person) > (1 + 2**0.5) * 4 + 1
    assert (out[far] == (0, 255, 0)).all()  # the cat is background too
    between = ~person & ~far
    assert ((out[between] != image[between]).any(1)).mean() > 0.5
    for i in range(1, 6):  # a person walking: the smoothed edge lags behind, the person's pixels never do
        person = disc(70 + 6 * i, 60, 30)
        image = noise(seed=i)
        out = back.apply(image.copy(), result_of([person], [0]))
        assert np.array_equal(out[person], image[person])


@pytest.mark.parametrize("spec", ["blur", "black", "0,177,64", "#fff", "image", "video"])
def test_every_backdrop_keeps_people(tmp_path: Path, spec: str) -> None:
    if spec == "image":
        spec = str(tmp_path / "beach.png")
        cv2.imwrite(spec, noise((60, 80), seed=3))
    elif spec == "video":
        spec = str(tmp_path / "loop.avi")
        writer = cv2.VideoWriter(spec, cv2.VideoWriter_fourcc(*"MJPG"), 10, (80, 60))
        for i in range(3):
            writer.write(np.full((60, 80, 3), 40 * i, np.uint8))
        writer.release()
    back = Background(spec, person_ids=[0])
    person = disc(70, 60, 30)
    for i in range(5):  # the video loops after 3 frames
        image = noise(seed=i)
        out = back.apply(image.copy(), result_of([person], [0]))
        assert np.array_equal(out[person], image[person])
        assert (out[~person] != image[~person]).any()
    back.close()


def test_background_edge_does_not_flicker() -> None:
    """Masks that jitter by a few pixels from frame to frame: the smoothed edge changes far less between frames."""
    image = noise()
    flicker = {}
    for smoothing in (0.0, 0.6):
        back = Background("black", person_ids=[0], smoothing=smoothing, edge_px=3)
        outs = [back.apply(image.copy(), result_of([disc(70, 60, 30 + 3 * (i % 2))], [0])).astype(np.int16)
                for i in range(12)]
        ring = ~disc(70, 60, 30) & disc(70, 60, 40)
        flicker[smoothing] = np.mean([np.abs(a - b)[ring].mean() for a, b in zip(outs[4:], outs[5:])])
    assert flicker[0.6] < 0.5 * flicker[0.0]


def test_semantic_person_class() -> None:
    image = noise()
    labels = np.zeros(HW, np.uint8)
    labels[20:100, 30:80] = 1
    from dataclasses import replace

    r = replace(FrameResult.empty(0, HW), semantic=labels)
    out = Background("black", person_ids=[], semantic_person_ids=[1]).apply(image.copy(), r)
    assert np.array_equal(out[labels == 1], image[labels == 1]) and (out[:5, :5] == 0).all()


def test_bad_backgrounds(tmp_path: Path) -> None:
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not a png at all")
    with pytest.raises(ConfigError, match=r"background='.*broken.png': cannot read it as an image"):
        parse_background(str(broken))
    with pytest.raises(ConfigError, match=r"background='.*gone.jpg': no such file"):
        parse_background(str(tmp_path / "gone.jpg"))
    with pytest.raises(ConfigError, match=r"background='sparkles': expected blur, a colour"):
        parse_background("sparkles")
    bad_video = tmp_path / "bad.mp4"
    bad_video.write_bytes(b"\x00" * 100)
    with pytest.raises(ConfigError, match="cannot read a frame from this video"):
        parse_background(str(bad_video))
    assert parse_background("0,177,64") == ("colour", (64, 177, 0))
