"""The converted MediaPipe selfie models: parity with MediaPipe's own runtime, and IoU on the held-out people.

Three commands::

    # 1. MediaPipe's masks, with a Python that has the `mediapipe` wheel (its own venv: it pins numpy/OpenCV)
    /tmp/mpenv/bin/python scripts/eval_selfie_people.py reference /tmp/package /tmp/ref IMAGE_DIR [IMAGE_DIR ...]
    # 2. rtseg's masks against them (thresholded agreement, probability differences)
    python scripts/eval_selfie_people.py parity /tmp/ref --json benchmarks/results/selfie_parity.json
    # 3. mean IoU of the person mask with the truth, held-out third of ../shared/data/people (hsd_003, hsd_006, ...)
    python scripts/eval_selfie_people.py iou --people ../shared/data/people

``reference`` runs MediaPipe Tasks' ``ImageSegmenter`` (TFLite with XNNPACK, MediaPipe's custom
``Convolution2DTransposeBias`` op built in) on the original ``.tflite`` files. The Tasks API needs model
metadata the npm package's files lack, so it first writes a copy with only that added: input normalisation
mean 0, std 255 (RGB in [0, 1], what the legacy selfie graph feeds) and no output activation (the graph ends
in a sigmoid); MediaPipe's metadata writer is used when it imports, else the wheel's broken native version
check is stubbed. For each image it stores MediaPipe's confidence mask at the image's size (MediaPipe stretches
the frame to the network size and resizes the mask back bilinearly) and, to isolate the network itself, its
mask for the image pre-resized to the network size (no resize inside MediaPipe then).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
import types
from pathlib import Path

import cv2
import numpy as np

MODELS = {"square": "selfie_segmentation", "landscape": "selfie_segmentation_landscape"}
SIZES = {"square": (256, 256), "landscape": (144, 256)}
ROOT = Path(__file__).resolve().parents[1]
SUFFIXES = (".jpg", ".jpeg", ".png")


def _images(dirs: list[Path]) -> list[Path]:
    return sorted(p for d in dirs for p in d.rglob("*") if p.suffix.lower() in SUFFIXES and "mask" not in p.parts)


def _read_rgb(path: Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise SystemExit(f"cannot read {path}")
    return np.ascontiguousarray(image[..., ::-1])


# -- 1. MediaPipe's reference masks ---------------------------------------------------------------------------

def _with_metadata(src: Path, dst: Path) -> Path:
    """``src`` with the Tasks metadata added: RGB in [0, 1], no output activation, labels background/person."""
    try:
        from mediapipe.tasks.python.metadata import metadata  # noqa: F401
    except ImportError:  # wheels without the native version check: it only computes a version string
        names = ["mediapipe.tasks.cc", "mediapipe.tasks.cc.metadata", "mediapipe.tasks.cc.metadata.python"]
        for name in names:
            sys.modules.setdefault(name, types.ModuleType(name))
        stub = types.ModuleType(f"{names[-1]}._pywrap_metadata_version")
        stub.GetMinimumMetadataParserVersion = lambda *_: "1.5.0"  # type: ignore[attr-defined]
        sys.modules[stub.__name__] = stub
        sys.modules[names[-1]]._pywrap_metadata_version = stub  # type: ignore[attr-defined]
    from mediapipe.tasks.python.metadata.metadata_writers import image_segmenter, metadata_writer

    labels = metadata_writer.Labels().add(["background", "person"])
    writer = image_segmenter.MetadataWriter.create(bytearray(src.read_bytes()), [0.0], [255.0], labels=labels,
                                                   activation=image_segmenter.Activation.NONE)
    model, _ = writer.populate()
    dst.write_bytes(model)
    return dst


def reference(package: Path, out: Path, dirs: list[Path], png: bool = False) -> None:
    """MediaPipe's confidence masks of every image under ``dirs`` into ``out`` (``--png``: also one 8-bit PNG per
    image and model, ``out/<stem>.mediapipe_<variant>.png``, confidence x 255, as the unit tests keep them)."""
    import mediapipe as mp
    from mediapipe.tasks.python.core import base_options
    from mediapipe.tasks.python.vision import image_segmenter

    out.mkdir(parents=True, exist_ok=True)
    images = _images(dirs)
    meta = {"mediapipe": mp.__version__, "runtime": "mediapipe.tasks ImageSegmenter (CPU)",
            "images": [str(p) for p in images]}
    for variant, stem in MODELS.items():
        model = _with_metadata(package / f"{stem}.tflite", out / f"{stem}.with_metadata.tflite")
        options = image_segmenter.ImageSegmenterOptions(
            base_options=base_options.BaseOptions(model_asset_path=str(model)), output_confidence_masks=True,
            output_category_mask=False)
        segmenter = image_segmenter.ImageSegmenter.create_from_options(options)
        full, native = {}, {}
        for i, path in enumerate(images):
            rgb = _read_rgb(path)
            small = cv2.resize(rgb, SIZES[variant][::-1], interpolation=cv2.INTER_LINEAR)
            for arr, store in ((rgb, full), (small, native)):
                result = segmenter.segment(mp.Image(image_format=mp.ImageFormat.SRGB, data=arr))
                store[f"m{i}"] = result.confidence_masks[0].numpy_view()[..., 0].astype(np.float16)
            if png:
                mask = np.rint(full[f"m{i}"].astype(np.float32) * 255).astype(np.uint8)
                cv2.imwrite(str(out / f"{path.stem}.mediapipe_{variant}.png"), mask)
        segmenter.close()
        np.savez_compressed(out / f"{variant}_full.npz", **full)
        np.savez_compressed(out / f"{variant}_native.npz", **native)
        print(f"{variant}: {len(images)} images")
    (out / "reference.json").write_text(json.dumps(meta, indent=1) + "\n")


# -- 2. parity --------------------------------------------------------------------------------------------------

def _probabilities(net, rgb: np.ndarray) -> np.ndarray:  # noqa: ANN001
    import torch

    x = torch.from_numpy(np.ascontiguousarray(rgb.transpose(2, 0, 1))).float().div_(255)[None]
    with torch.inference_mode():
        return torch.sigmoid(net(x))[0, 0].numpy()


def parity(ref: Path, json_out: Path | None, assets: Path) -> dict:
    import rtseg
    from rtseg.models.zoo import load_semantic

    meta = json.loads((ref / "reference.json").read_text())
    images = [Path(p) for p in meta["images"]]
    report: dict = {"reference": meta["runtime"], "mediapipe_version": meta["mediapipe"],
                    "images": len(images), "image_sets": sorted({_set_name(p) for p in images}),
                    "threshold": 0.5, "models": {}}
    for variant, stem in MODELS.items():
        ckpt = assets / f"{stem}.pt"
        net, _ = load_semantic(ckpt)
        full, native = np.load(ref / f"{variant}_full.npz"), np.load(ref / f"{variant}_native.npz")
        rows = {"fast": [], "high": []}
        seg = {q: rtseg.load_model(str(ckpt), backend="torch", device="cpu", quality=q) for q in rows}
        net_agree, net_diff, net_max = [], [], 0.0
        for i, path in enumerate(images):
            rgb = _read_rgb(path)
            small = cv2.resize(rgb, SIZES[variant][::-1], interpolation=cv2.INTER_LINEAR)
            p, ref_native = _probabilities(net, small), native[f"m{i}"].astype(np.float32)
            diff = np.abs(p - ref_native)
            net_diff.append(float(diff.mean()))
            net_max = max(net_max, float(diff.max()))
            net_agree.append(float(((p > 0.5) == (ref_native > 0.5)).mean()))
            ref_full = full[f"m{i}"].astype(np.float32) > 0.5
            bgr = np.ascontiguousarray(rgb[..., ::-1])
            for quality, s in seg.items():
                labels = s.predict(bgr)[0].semantic
                rows[quality].append(float(((labels == 1) == ref_full).mean()))
        report["models"][stem] = {
            "network_at_native_size": {"pixel_agreement_mean": _r(np.mean(net_agree)),
                                       "pixel_agreement_min": _r(np.min(net_agree)),
                                       "probability_abs_diff_mean": _r(np.mean(net_diff), 6),
                                       "probability_abs_diff_max": _r(net_max, 6)},
            **{f"rtseg_load_model_quality_{q}": {"pixel_agreement_mean": _r(np.mean(v)),
                                                  "pixel_agreement_min": _r(np.min(v)),
                                                  "images_below_0.99": int(np.sum(np.array(v) < 0.99))}
               for q, v in rows.items()}}
        print(stem, json.dumps(report["models"][stem]))
    report["how"] = ("MediaPipe: Tasks ImageSegmenter on the original .tflite (metadata added: RGB in [0, 1], no "
                     "output activation), confidence mask at the image size, > 0.5. rtseg: "
                     "rtseg.load_model(<checkpoint>).predict(BGR image)[0].semantic == person, backend torch, "
                     "CPU. network_at_native_size: both given the image pre-resized to the network size "
                     "(cv2 INTER_LINEAR), sigmoid of the converted network against MediaPipe's mask.")
    report["machine"] = f"{platform.machine()}, {platform.python_implementation()} {platform.python_version()}"
    report["date"] = time.strftime("%Y-%m-%d")
    if json_out is not None:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(json.dumps(report, indent=1) + "\n")
    return report


def _set_name(path: Path) -> str:
    parts = path.parts
    return "/".join(parts[parts.index("images") - 1 : parts.index("images")]) if "images" in parts else path.parent.name


def _r(v: float, nd: int = 5) -> float:
    return round(float(v), nd)


# -- 3. held-out IoU ---------------------------------------------------------------------------------------------

def held_out(people: Path) -> list[tuple[Path, Path]]:
    """Every third image of the person set (``hsd_003``, ``hsd_006``, ...), the issue's held-out split."""
    pairs = []
    for image in sorted((people / "images").glob("hsd_*.jpg")):
        number = int(image.stem.split("_")[1])
        if number % 3 == 0:
            pairs.append((image, people / "masks" / f"{image.stem}.png"))
    return pairs


def iou(people: Path, assets: Path, json_out: Path | None, quality: str) -> dict:
    import rtseg

    pairs = held_out(people)
    report: dict = {"set": f"{people.name}/ held-out third (hsd_NNN with NNN % 3 == 0)", "images": len(pairs),
                    "quality": quality, "models": {}}
    for stem in MODELS.values():
        seg = rtseg.load_model(str(assets / f"{stem}.pt"), backend="torch", device="cpu", quality=quality)
        ious, found, t0 = [], 0, time.perf_counter()
        for image, mask in pairs:
            truth = cv2.imread(str(mask), cv2.IMREAD_GRAYSCALE) > 127
            pred = seg.predict(cv2.imread(str(image), cv2.IMREAD_COLOR))[0].semantic == 1
            union = np.logical_or(truth, pred).sum()
            ious.append(float(np.logical_and(truth, pred).sum() / union) if union else 1.0)
            found += bool(pred.any())  # any person pixel at all: a weak "found"
        report["models"][stem] = {"mean_iou": _r(np.mean(ious), 4), "median_iou": _r(np.median(ious), 4),
                                  "images_iou_below_0.5": int(np.sum(np.array(ious) < 0.5)),
                                  "images_with_any_person_pixel": found, "seconds": _r(time.perf_counter() - t0, 1)}
        print(stem, json.dumps(report["models"][stem]))
    if json_out is not None:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(json.dumps(report, indent=1) + "\n")
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("reference", help="MediaPipe's masks (needs the mediapipe wheel)")
    p.add_argument("package", type=Path, help="unpacked @mediapipe/selfie_segmentation folder")
    p.add_argument("out", type=Path)
    p.add_argument("dirs", type=Path, nargs="+", help="image folders (searched recursively)")
    p.add_argument("--png", action="store_true", help="also write each mask as an 8-bit PNG")
    p = sub.add_parser("parity", help="rtseg's masks against MediaPipe's")
    p.add_argument("ref", type=Path)
    p.add_argument("--json", type=Path)
    p.add_argument("--assets", type=Path, default=ROOT / "rtseg" / "assets")
    p = sub.add_parser("iou", help="mean IoU on the held-out third of the person set")
    p.add_argument("--people", type=Path, default=ROOT.parent / "shared" / "data" / "people")
    p.add_argument("--assets", type=Path, default=ROOT / "rtseg" / "assets")
    p.add_argument("--quality", choices=("fast", "high"), default="high")
    p.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    if args.command == "reference":
        reference(args.package, args.out, args.dirs, args.png)
    elif args.command == "parity":
        parity(args.ref, args.json, args.assets)
    else:
        iou(args.people, args.assets, args.json, args.quality)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
