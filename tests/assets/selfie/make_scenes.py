"""Draw the synthetic webcam scenes the selfie tests use (no photograph involved): ``python make_scenes.py``.

Each scene is a person-like figure drawn with OpenCV primitives (head, hair, neck, shoulders and torso,
sometimes arms) in front of a textured room-like background, with soft shading and sensor noise from a
seeded generator. ``reference.json`` beside them records MediaPipe's own masks for them (see README.md).
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

HERE = Path(__file__).resolve().parent
SCENES = {"portrait_640x480": (480, 640, 0, 1.0), "offcentre_640x480": (480, 640, 1, 1.0),
          "tall_360x480": (480, 360, 2, 1.0), "small_320x240": (240, 320, 3, 1.0),
          "closeup_360x480": (480, 360, 5, 1.4)}


def draw(h: int, w: int, seed: int, zoom: float) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    wall = np.array(rng.uniform(120, 220, 3), np.float32)
    img = wall[None, None] * (0.75 + 0.25 * (xx / w))[..., None]  # a lit wall
    for _ in range(4):  # shelves and frames
        x0, y0 = int(rng.uniform(0, w * 0.8)), int(rng.uniform(0, h * 0.6))
        cv2.rectangle(img, (x0, y0), (x0 + int(rng.uniform(40, 120)), y0 + int(rng.uniform(20, 80))),
                      tuple(float(v) for v in rng.uniform(40, 200, 3)), -1)
    cx = w * (0.5 if seed % 2 == 0 else 0.35)
    s = min(h, w) / 480 * zoom
    skin = tuple(float(v) for v in (rng.uniform(90, 140), rng.uniform(130, 170), rng.uniform(180, 230)))  # BGR
    shirt = tuple(float(v) for v in rng.uniform(20, 160, 3))
    hair = (25.0, 30.0, 40.0)
    head_c, head_r = (int(cx), int(h - 330 * s)), int(70 * s)
    cv2.ellipse(img, (int(cx), h + int(40 * s)), (int(190 * s), int(230 * s)), 0, 180, 360, shirt, -1)  # shoulders
    cv2.rectangle(img, (int(cx - 28 * s), int(h - 270 * s)), (int(cx + 28 * s), int(h - 190 * s)), skin, -1)  # neck
    if seed == 2:  # arms down the sides
        for side in (-1, 1):
            x = int(cx + side * 175 * s)
            cv2.rectangle(img, (x - int(28 * s), int(h - 180 * s)), (x + int(28 * s), h), shirt, -1)
    cv2.ellipse(img, head_c, (head_r, int(head_r * 1.25)), 0, 0, 360, skin, -1)  # face
    cv2.ellipse(img, (head_c[0], head_c[1] - int(30 * s)), (int(head_r * 1.05), int(head_r * 0.95)), 0, 180, 360,
                hair, -1)
    for side in (-1, 1):  # eyes and mouth
        cv2.circle(img, (head_c[0] + side * int(24 * s), head_c[1] - int(5 * s)), max(2, int(7 * s)), (40, 30, 30), -1)
    cv2.ellipse(img, (head_c[0], head_c[1] + int(40 * s)), (int(22 * s), int(8 * s)), 0, 0, 180, (60, 60, 150), -1)
    shade = 0.85 + 0.15 * np.cos((xx - cx) / w * np.pi)  # soft light from the front
    img = img * shade[..., None]
    return np.clip(img, 0, 255).astype(np.uint8)


def main() -> None:
    for name, (h, w, seed, zoom) in SCENES.items():
        cv2.imwrite(str(HERE / f"{name}.png"), draw(h, w, seed, zoom))


if __name__ == "__main__":
    main()
