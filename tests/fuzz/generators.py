"""Bad inputs for the fuzz suite, one builder per case, each writing into a fresh case folder.

A case folder holds ``in/`` (every input the command reads: hashed before and after the run), ``out/`` (where
outputs go) and ``cwd/`` (the command's working folder, where a default output would land). A builder returns a
:class:`Spec`: the command line and the outcome the README promises for it. Everything is deterministic: random
bytes come from seeded generators, cut points are fractions of a file generated the same way each time.

:func:`cases` gives the small set (every category, run by plain ``pytest``) or, with ``full=True``, the larger
one (more cut points, seeds, option values and commands; ``pytest --fuzz-all``).
"""

from __future__ import annotations

import functools
import itertools
import json
import pickle
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from tests.support import ROOT, YOLO26_WEIGHTS, free_port, write_video

SEMANTIC = ROOT / "rtseg" / "assets" / "linknet-pets.pt"  # an rtseg semantic checkpoint (background, pet)
INSTANCE = YOLO26_WEIGHTS  # Ultralytics YOLO-seg weights (COCO classes)
MARKER = "PWNED"  # every hostile payload creates a file whose name starts with this
GARBAGE_HTTP = "garbage-http"  # Spec.server: the test runs a loopback server answering garbage


@dataclass
class Spec:
    """A command line and the outcome it must have.

    ``code`` is the exit code; 0 means the run is expected to succeed (e.g. a truncated video whose first frames
    decode), and then ``outputs`` must exist and stderr may hold at most ``warnings`` lines starting
    ``rtseg: WARNING``. Otherwise stderr is exactly one ``rtseg: error:`` line (plus ``warnings`` warning lines
    at most), and ``out/`` and ``cwd/`` stay empty.
    """

    args: list[str]
    code: int = 2
    warnings: int = 0
    outputs: list[Path] = field(default_factory=list)
    extra_inputs: list[Path] = field(default_factory=list)  # files outside in/ the command reads (hashed too)
    server: str | None = None  # GARBAGE_HTTP: {port} in args is the port of a loopback server answering garbage


@dataclass(frozen=True)
class Case:
    category: str
    name: str
    build: Callable[[Path], Spec]

    @property
    def id(self) -> str:
        return f"{self.category}:{self.name}"


def folders(root: Path) -> tuple[Path, Path, Path]:
    ins, out, cwd = root / "in", root / "out", root / "cwd"
    for d in (ins, out, cwd):
        d.mkdir(parents=True, exist_ok=True)
    return ins, out, cwd


# --- small valid inputs the bad ones are made from


def clip(path: Path, frames: int = 8) -> Path:
    return write_video(path, frames=frames, size_wh=(96, 64), fps=10.0)


def image(path: Path, value: int = 90) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    img = np.full((48, 64, 3), value, np.uint8)
    img[10:30, 10:40] = (40, 40, 200)
    cv2.imwrite(str(path), img)
    return path


def write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def random_bytes(path: Path, n: int, seed: int) -> Path:
    path.write_bytes(np.random.default_rng(seed).integers(0, 256, n, dtype=np.uint8).tobytes())
    return path


def cut(path: Path, fraction: float | None = None, nbytes: int | None = None) -> Path:
    data = path.read_bytes()
    path.write_bytes(data[: nbytes if nbytes is not None else int(len(data) * fraction)])
    return path


H, W = 48, 64
SQUARE = "0 0.1 0.1 0.5 0.1 0.5 0.5 0.1 0.5"
POLY = [[10, 10, 40, 10, 40, 30, 10, 30]]


def yolo_set(root: Path, bad: str) -> Path:
    for split in ("train", "val"):
        for i, text in enumerate([SQUARE, SQUARE, bad]):
            image(root / "images" / split / f"{i:03d}.png")
            (root / "labels" / split).mkdir(parents=True, exist_ok=True)
            (root / "labels" / split / f"{i:03d}.txt").write_text(text)
    (root / "data.yaml").write_text(f"path: {root}\ntrain: images/train\nval: images/val\nnames: [person]\n")
    return root / "data.yaml"


def coco_set(root: Path, text: str | None = None, **bad: object) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for i in range(3):
        image(root / f"{i}.png")
    anns = [{"id": i + 1, "image_id": i + 1, "category_id": 1, "segmentation": POLY, "iscrowd": 0} for i in range(3)]
    anns[0].update(bad)
    spec = {"images": [{"id": i + 1, "file_name": f"{i}.png", "height": H, "width": W} for i in range(3)],
            "annotations": anns, "categories": [{"id": 1, "name": "pet"}]}
    (root / "i.json").write_text(text if text is not None else json.dumps(spec))
    return root / "i.json"


def coco_spec_text(mutate: Callable[[dict], None]) -> str:
    spec = {"images": [{"id": i + 1, "file_name": f"{i}.png", "height": H, "width": W} for i in range(3)],
            "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "segmentation": POLY, "iscrowd": 0}],
            "categories": [{"id": 1, "name": "pet"}]}
    mutate(spec)
    return json.dumps(spec)


def mask_set(root: Path, bad: np.ndarray, classes: str = "background\npet\n") -> Path:
    (root / "masks").mkdir(parents=True, exist_ok=True)
    for i in range(3):
        image(root / "images" / f"{i:03d}.png")
        mask = np.zeros((H, W), np.uint8)
        mask[10:30, 10:40] = 1
        cv2.imwrite(str(root / "masks" / f"{i:03d}.png"), bad if i == 0 else mask)
    (root / "classes.txt").write_text(classes)
    return root


def square(value: int, dtype: type = np.uint8) -> np.ndarray:
    mask = np.zeros((H, W), dtype)
    mask[10:30, 10:40] = value
    return mask


# --- hostile weights


class _Payload:
    """Unpickling it runs a shell command that creates ``marker``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        import os

        return os.system, (f"touch {self.marker}",)


def hostile(ins: Path, kind: str, name: str = "w.pt") -> Path:
    """A .pt whose unpickling creates ``<case>/PWNED-<kind>`` (outside in/: its presence is checked on its own)."""
    marker = ins.parent / f"{MARKER}-{kind}"
    path = ins / name
    if kind == "raw":
        path.write_bytes(pickle.dumps(_Payload(marker)))
    else:
        import torch

        torch.save({"date": "2025", "model": _Payload(marker), "state_dict": {"w": torch.zeros(2)}}, path)
    return path


# --- categories


def media_cases(full: bool) -> list[Case]:
    out: list[Case] = []

    def run_on(name: str, make: Callable[[Path], Path], code: int = 2, warnings: int = 0) -> Case:
        def build(root: Path) -> Spec:
            ins, o, _ = folders(root)
            src = make(ins)
            outs = [o / "o.mp4"] if code == 0 else []
            return Spec(["run", str(src), "--out", str(o / "o.mp4"), "--imgsz", "64", "--quiet"], code=code,
                        warnings=warnings, outputs=outs)
        return Case("media", name, build)

    out.append(run_on("zero-byte.mp4", lambda d: write(d / "z.mp4", b"")))
    suffixes = [".mp4", ".avi"] + ([".mkv", ".mov", ".webm", ".ts"] if full else [])
    seeds = [0] + ([1, 2] if full else [])
    for suffix, seed in itertools.product(suffixes, seeds):
        out.append(run_on(f"random-bytes{suffix}-seed{seed}",
                          lambda d, s=suffix, k=seed: random_bytes(d / f"r{s}", 4096 * (k + 1), k)))
    # an mp4v .mp4 from OpenCV keeps its index (moov) in the last ~13 %: a cut before it leaves no decodable
    # frame (exit 2); a cut of the moov's last bytes (0.99) still decodes every frame, so the run succeeds quietly
    mp4_cuts = [(64, 2), (0.5, 2)] + ([(8, 2), (1024, 2), (0.1, 2), (0.9, 2), (0.99, 0)] if full else [])
    for c, code in mp4_cuts:
        kw = {"nbytes": c} if isinstance(c, int) else {"fraction": c}
        out.append(run_on(f"mp4-cut-at-{c}", lambda d, kw=kw: cut(clip(d / "c.mp4"), **kw), code=code))
    # MJPEG .avi: frames stream before the index, so a cut past the first frames leaves a playable prefix:
    # exit 0 with one warning that the file ended early; a cut inside the header leaves nothing: exit 2. The
    # warning comes when more than 10% of the header's frame count is missing (README): 0.95 (19 of 20) is quiet
    avi_cuts = [(32, 2, 0), (0.5, 0, 1)] + ([(0.25, 0, 1), (0.75, 0, 1), (0.95, 0, 0)] if full else [])
    for c, code, warned in avi_cuts:
        kw = {"nbytes": c} if isinstance(c, int) else {"fraction": c}
        out.append(run_on(f"avi-cut-at-{c}", lambda d, kw=kw: cut(clip(d / "c.avi", frames=20), **kw),
                          code=code, warnings=warned))
    out.append(run_on("garbage.jpg", lambda d: random_bytes(d / "g.jpg", 2000, 3)))
    if full:
        out.append(run_on("garbage-after-png-signature.png",
                          lambda d: write(d / "g.png", b"\x89PNG\r\n\x1a\n" + b"\x00" * 64)))
        out.append(run_on("zero-byte.jpg", lambda d: write(d / "z.jpg", b"")))

    def folder_with_truncated_jpeg(d: Path) -> Path:
        folder = d / "frames"
        for i in range(3):
            image(folder / f"{i:03d}.jpg", 60 + 40 * i)
        cut(folder / "001.jpg", fraction=0.5)
        return folder

    def folder_of_garbage(d: Path) -> Path:
        folder = d / "frames"
        folder.mkdir()
        for i in range(3):
            random_bytes(folder / f"{i:03d}.jpg", 500, 10 + i)
        return folder

    # a truncated JPEG among good ones: the run goes on (decoded in part, or skipped with one warning)
    def build_truncated(root: Path) -> Spec:
        ins, o, _ = folders(root)
        src = folder_with_truncated_jpeg(ins)
        return Spec(["run", str(src), "--save-frames", str(o / "f"), "--imgsz", "64", "--quiet"], code=0,
                    warnings=1, outputs=[o / "f"])

    out.append(Case("media", "image-folder-with-truncated-jpeg", build_truncated))
    out.append(run_on("image-folder-all-garbage", folder_of_garbage))
    return out


def weights_cases(full: bool) -> list[Case]:
    out: list[Case] = []

    def with_weights(name: str, make: Callable[[Path], Path], command: str = "run", semantic: bool = False,
                     ) -> Case:
        def build(root: Path) -> Spec:
            ins, o, _ = folders(root)
            w = make(ins)
            if command == "run":
                args = ["run", str(clip(ins / "c.avi", frames=4)), "--out", str(o / "o.mp4"), "--quiet"]
                args += ["--model", str(INSTANCE), "--semantic", str(w)] if semantic else ["--model", str(w)]
            elif command == "eval":
                args = ["eval", "--model", str(w), "--data", str(yolo_set(ins / "data", SQUARE)),
                        "--json", str(o / "m.json")]
            elif command == "export":
                args = ["export", str(w), "--out", str(o / "m.onnx")]
            elif command == "bench":
                args = ["bench", "--model", str(w), "--synthetic", "96x64", "--frames", "2", "--warmup", "0",
                        "--repeats", "1", "--json", str(o / "b.json")]
            else:  # train: fine-tuning from the file
                args = ["train", "--data", str(yolo_set(ins / "data", SQUARE)), "--model", str(w), "--epochs", "1",
                        "--imgsz", "32", "--out", str(o / "t.pt")]
            return Spec(args, extra_inputs=[INSTANCE] if semantic else [])
        return Case("weights", f"{name}-{command}" + ("-semantic" if semantic else ""), build)

    commands = ["run"] + (["eval", "export", "bench", "train"] if full else [])
    for command in commands:
        out.append(with_weights("raw-pickle-payload", lambda d: hostile(d, "raw"), command))
        out.append(with_weights("torch-zip-payload", lambda d: hostile(d, "zip"), command))
    out.append(with_weights("torch-zip-payload", lambda d: hostile(d, "zip"), "run", semantic=True))

    def truncated(d: Path, fraction: float) -> Path:
        (d / "t.pt").write_bytes(INSTANCE.read_bytes()[: int(INSTANCE.stat().st_size * fraction)])
        return d / "t.pt"

    for fraction in [0.5] + ([0.01, 0.9, 0.999] if full else []):
        out.append(with_weights(f"truncated-pt-{fraction}", lambda d, f=fraction: truncated(d, f)))
    for suffix in [".pt", ".onnx", ".engine"]:
        for seed in [0] + ([1] if full else []):
            out.append(with_weights(f"random-bytes{suffix}-seed{seed}",
                                    lambda d, s=suffix, k=seed: random_bytes(d / f"r{s}", 3000, 20 + k)))

    # wrong task: a semantic checkpoint evaluated on instance data, an instance model given as --semantic
    def semantic_on_instance_data(root: Path) -> Spec:
        ins, o, _ = folders(root)
        return Spec(["eval", "--model", str(SEMANTIC), "--data", str(yolo_set(ins / "data", SQUARE)),
                     "--json", str(o / "m.json")], extra_inputs=[SEMANTIC])

    def instance_as_semantic(root: Path) -> Spec:
        ins, o, _ = folders(root)
        return Spec(["run", str(clip(ins / "c.avi", frames=4)), "--model", str(SEMANTIC), "--semantic", str(INSTANCE),
                     "--out", str(o / "o.mp4"), "--quiet"], extra_inputs=[SEMANTIC, INSTANCE])

    out.append(Case("weights", "semantic-model-eval-on-instance-data", semantic_on_instance_data))
    out.append(Case("weights", "instance-model-as-semantic", instance_as_semantic))
    if full:
        def instance_eval_on_masks(root: Path) -> Spec:
            ins, o, _ = folders(root)
            return Spec(["eval", "--model", str(INSTANCE), "--data", str(mask_set(ins / "data", square(1))),
                         "--json", str(o / "m.json")], extra_inputs=[INSTANCE])

        out.append(Case("weights", "instance-model-eval-on-mask-png", instance_eval_on_masks))
    return out


# option -> values that are valid for it (the rest of BAD_VALUES must be refused)
OPTIONS = {"--imgsz": set(), "--tile": set(), "--conf": {"0"}, "--iou": {"0"}, "--workers": set(), "--batch": set(),
           "--image-fps": set(), "--classes": {"0"}, "--max-frames": {"99999999999999999999"}, "--trails": {"0"}}
BAD_VALUES = {"zero": "0", "minus-one": "-1", "nan": "nan", "inf": "inf", "huge": "99999999999999999999",
              "empty": "", "unicode-digits": "\u0660", "text": "abc"}
# the small set: every option and every kind of value at least once, none needing a model
SMALL_OPTIONS = [("--imgsz", "zero"), ("--imgsz", "unicode-digits"), ("--tile", "minus-one"), ("--conf", "nan"),
                 ("--iou", "inf"), ("--workers", "huge"), ("--batch", "empty"), ("--image-fps", "zero"),
                 ("--classes", "empty"), ("--max-frames", "text"), ("--trails", "minus-one")]


def option_cases(full: bool) -> list[Case]:
    pairs = [(o, v) for o in OPTIONS for v in BAD_VALUES if BAD_VALUES[v] not in OPTIONS[o]] if full else SMALL_OPTIONS
    out = []
    for option, kind in pairs:
        def build(root: Path, option: str = option, kind: str = kind) -> Spec:
            ins, o, _ = folders(root)
            extra = ["--track"] if option == "--trails" else []
            return Spec(["run", str(clip(ins / "c.avi", frames=4)), "--out", str(o / "o.mp4"), "--quiet", *extra,
                         option, BAD_VALUES[kind]])
        out.append(Case("options", f"{option[2:]}-{kind}", build))
    extra = [("classes-commas", ["--classes", ",,,"])]
    if full:
        extra += [("bench-batch-list", ["bench", "--batch", "1,0"]),
                  ("bench-imgsz-list", ["bench", "--imgsz", "64,nan"]),
                  ("classes-unknown-name", ["--classes", "notaclass"]),
                  ("classes-huge-id", ["--classes", "99999"])]
    for name, args in extra:
        def build_extra(root: Path, args: list[str] = args) -> Spec:
            ins, o, _ = folders(root)
            if args[0] == "bench":
                return Spec([*args, "--synthetic", "96x64", "--frames", "2", "--json", str(o / "b.json")])
            return Spec(["run", str(clip(ins / "c.avi", frames=4)), "--out", str(o / "o.mp4"), "--quiet", *args])
        out.append(Case("options", name, build_extra))
    return out + analytics_option_cases(full)


# analytics flags (README, Analytics): name -> the flags, given the case's in/ and out/ folders
ANALYTICS_OPTIONS: dict[str, Callable[[Path, Path], list[str]]] = {
    "zone-two-points": lambda ins, o: ["--zone", "door:0.1,0.2,0.4,0.2"],
    "zone-outside-frame": lambda ins, o: ["--zone", "door:10,10,900,10,900,200"],
    "blur-unknown-class": lambda ins, o: ["--blur", "notaclass"],
    "background-unreadable": lambda ins, o: ["--background", str(write(ins / "back.png", b"\x89PNG\r\n\x1a\n junk"))],
    "report-suffix": lambda ins, o: ["--line", "gate:0,0.5,1,0.5", "--report", str(o / "counts.xlsx")],
}
ANALYTICS_OPTIONS_FULL: dict[str, Callable[[Path, Path], list[str]]] = {
    "zone-nan": lambda ins, o: ["--zone", "door:nan,0,1,0,1,1"],
    "zone-no-area": lambda ins, o: ["--zone", "door:0,0,0.5,0.5,1,1"],
    "line-one-point": lambda ins, o: ["--line", "gate:0.5,0.5"],
    "zones-binary-file": lambda ins, o: ["--zones", str(random_bytes(ins / "z.yaml", 256, seed=3))],
    "zone-overlap-zero": lambda ins, o: ["--zone", "door:0,0,1,0,1,1", "--zone-overlap", "0"],
    "background-text": lambda ins, o: ["--background", "#12"],
    "heatmap-suffix": lambda ins, o: ["--heatmap", str(o / "h.txt")],
}


def analytics_option_cases(full: bool) -> list[Case]:
    table = {**ANALYTICS_OPTIONS, **(ANALYTICS_OPTIONS_FULL if full else {})}
    out = []
    for name, flags in table.items():
        def build(root: Path, flags: Callable[[Path, Path], list[str]] = flags) -> Spec:
            ins, o, _ = folders(root)
            return Spec(["run", str(clip(ins / "c.avi", frames=4)), "--out", str(o / "o.mp4"), "--quiet",
                         *flags(ins, o)])
        out.append(Case("options", f"analytics-{name}", build))
    return out


CLASS_FILES: dict[str, bytes] = {
    "binary.yaml": b"\xff\xfe\x00\x81\x00garbage\x00\x00",
    "deeply-nested.yaml": b"names: " + b"[" * 20000 + b"]" * 20000 + b"\n",
    "names-an-int.yaml": b"names: 5\n",
    "palette-bad-hex.yaml": b"names: [background, pet]\npalette: ['#GGGGGG', '#000000']\n",
    "palette-out-of-range.yaml": b"names: [background, pet]\npalette: [[300, 0, 0], [0, 0, -1]]\n",
}
CLASS_FILES_FULL: dict[str, bytes] = {
    "deeply-nested.json": b'{"names": ' + b"[" * 20000 + b"]" * 20000 + b"}",
    "deeply-nested-dict.yaml": b"names: " + b"{a: " * 5000 + b"b" + b"}" * 5000 + b"\n",
    "names-of-dicts.yaml": b"names: [{a: 1}, {b: 2}]\n",
    "palette-a-string.yaml": b"names: [background, pet]\npalette: red\n",
    "palette-text-triples.yaml": b"names: [background, pet]\npalette: [[a, b, c], [1, 2, 3]]\n",
    "palette-nan.yaml": b"names: [background, pet]\npalette: [[.nan, 0, 0], [1, 2, 3]]\n",
    "map-wrong-types.yaml": b"names: [background, pet]\nmap: {x: [1]}\n",
    "map-out-of-range.yaml": b"names: [background, pet]\nmap: {1: 999}\n",
    "yaml-alias-bomb.yaml": b"a: &a [x,x,x,x,x,x,x,x,x]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\n"
                            b"c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\n"
                            b"d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]\ne: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]\n"
                            b"f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]\nnames: [*f,*f,*f,*f,*f,*f,*f,*f,*f]\n",
    "a-list-at-top.yaml": b"- background\n- pet\n",
    "empty.yaml": b"",
}


def class_file_cases(full: bool) -> list[Case]:
    files = dict(CLASS_FILES, **(CLASS_FILES_FULL if full else {}))
    out = []
    for name, content in files.items():
        def build(root: Path, name: str = name, content: bytes = content) -> Spec:
            ins, o, _ = folders(root)
            (ins / name).write_bytes(content)
            return Spec(["run", str(image(ins / "a.png")), "--model", str(SEMANTIC), "--class-file", str(ins / name),
                         "--save-labels", str(o / "labels"), "--quiet"], extra_inputs=[SEMANTIC])
        out.append(Case("class-files", name, build))
    return out


# data set builders: name -> (builder(folder) -> data path, --labels value)
DATASETS: dict[str, Callable[[Path], Path]] = {
    "yolo-nan": lambda d: yolo_set(d, "0 0.1 nan 0.5 0.1 0.5 0.5"),
    "yolo-garbage": lambda d: yolo_set(d, "\x00\x01garbage ]] 0.1"),
    "yolo-out-of-range": lambda d: yolo_set(d, "0 3 0.1 9 0.1 9 9 3 9"),
    "coco-truncated": lambda d: coco_set(d, text='{"images": [{"id": 1, "file_na'),
    "coco-wrong-types": lambda d: coco_set(d, text=coco_spec_text(lambda s: s.update(images="x"))),
    "mask-rgb": lambda d: mask_set(d, np.dstack([square(1), square(0), square(1)])),
    "mask-16-bit": lambda d: mask_set(d, square(1000, np.uint16)),
    "mask-ids-beyond-classes": lambda d: mask_set(d, square(5)),
}
DATASETS_FULL: dict[str, Callable[[Path], Path]] = {
    "yolo-inf": lambda d: yolo_set(d, "0 0.1 inf 0.5 0.1 0.5 0.5"),
    "yolo-negative-class": lambda d: yolo_set(d, "-1 0.1 0.1 0.5 0.1 0.5 0.5"),
    "yolo-odd-coordinates": lambda d: yolo_set(d, "0 0.1 0.1 0.5"),
    "yolo-binary-label": lambda d: _binary_label(yolo_set(d, SQUARE)),
    "coco-zero-bytes": lambda d: coco_set(d, text=""),
    "coco-annotations-a-dict": lambda d: coco_set(d, text=coco_spec_text(lambda s: s.update(annotations={"a": 1}))),
    "coco-height-a-string": lambda d: coco_set(d, text=coco_spec_text(lambda s: s["images"][0].update(height="x"))),
    "coco-bbox-nan": lambda d: coco_set(d, text=coco_spec_text(
        lambda s: s["annotations"][0].update(segmentation=[[10, 10, float("nan"), 10, 40, 30]]))),
    "coco-rle-garbage": lambda d: coco_set(d, segmentation={"counts": 5, "size": "x"}),
    "mask-garbage-png": lambda d: _garbage_mask(mask_set(d, square(1))),
}


def _binary_label(data_yaml: Path) -> Path:
    for split in ("train", "val"):
        random_bytes(data_yaml.parent / "labels" / split / "002.txt", 200, 8)
    return data_yaml


def _garbage_mask(root: Path) -> Path:
    random_bytes(root / "masks" / "000.png", 300, 7)
    return root


def dataset_cases(full: bool) -> list[Case]:
    sets = dict(DATASETS, **(DATASETS_FULL if full else {}))
    out = []
    for name, make in sets.items():
        commands = ["convert"] + (["eval", "train"] if full else [])
        if not full and name in ("yolo-nan", "mask-ids-beyond-classes"):
            commands.append("eval")
        if not full and name == "coco-wrong-types":
            commands.append("train")
        for command in commands:
            def build(root: Path, make: Callable[[Path], Path] = make, command: str = command,
                      name: str = name) -> Spec:
                ins, o, _ = folders(root)
                data = make(ins / "data")
                if command == "convert":
                    return Spec(["convert", str(data), "--out", str(o / "conv"),
                                 "--to", "mask-png" if name.startswith("yolo") else "yolo-seg"])
                model = SEMANTIC if name.startswith("mask") or command == "train" else INSTANCE
                if command == "eval":
                    return Spec(["eval", "--model", str(model), "--data", str(data), "--json", str(o / "m.json")],
                                extra_inputs=[model])
                return Spec(["train", "--data", str(data), "--model", "Linknet", "--epochs", "1", "--imgsz", "32",
                             "--crop", "32", "--batch", "2", "--val-every", "2", "--out", str(o / "t.pt")])
            out.append(Case("datasets", f"{name}-{command}", build))
    return out


def output_cases(full: bool) -> list[Case]:
    def run_video(root: Path) -> tuple[Path, Path, Path]:
        ins, o, _ = folders(root)
        return clip(ins / "c.avi", frames=4), ins, o

    def out_is_input(root: Path) -> Spec:
        src, _, _ = run_video(root)
        return Spec(["run", str(src), "--out", str(src), "--quiet"])

    def out_and_jsonl(root: Path) -> Spec:
        src, _, o = run_video(root)
        return Spec(["run", str(src), "--out", str(o / "same.mp4"), "--jsonl", str(o / "same.mp4"), "--quiet"])

    def missing_folder(root: Path) -> Spec:
        src, _, o = run_video(root)
        return Spec(["run", str(src), "--out", str(o / "no" / "such" / "o.mp4"), "--quiet"])

    def out_is_folder(root: Path) -> Spec:
        src, ins, _ = run_video(root)
        (ins / "adir").mkdir()
        return Spec(["run", str(src), "--out", str(ins / "adir"), "--quiet"])

    def jsonl_dev_full(root: Path) -> Spec:
        src, _, _ = run_video(root)
        return Spec(["run", str(src), "--jsonl", "/dev/full", "--imgsz", "64", "--quiet"])

    def eval_json_missing(root: Path) -> Spec:
        ins, o, _ = folders(root)
        return Spec(["eval", "--model", str(SEMANTIC), "--data", str(mask_set(ins / "data", square(1))),
                     "--json", str(o / "no" / "m.json")], extra_inputs=[SEMANTIC])

    def bench_plot_missing(root: Path) -> Spec:
        _, o, _ = folders(root)
        return Spec(["bench", "--synthetic", "96x64", "--frames", "2", "--plot", str(o / "no" / "b.png")])

    def eval_plot_missing(root: Path) -> Spec:
        ins, o, _ = folders(root)
        return Spec(["eval", "--model", str(SEMANTIC), "--data", str(mask_set(ins / "data", square(1))),
                     "--plot", str(o / "no" / "c.png")], extra_inputs=[SEMANTIC])

    def bench_json_missing(root: Path) -> Spec:
        _, o, _ = folders(root)
        return Spec(["bench", "--synthetic", "96x64", "--frames", "2", "--json", str(o / "no" / "b.json")])

    def jsonl_is_input(root: Path) -> Spec:
        src, _, _ = run_video(root)
        return Spec(["run", str(src), "--jsonl", str(src), "--quiet"])

    def convert_out_is_data(root: Path) -> Spec:
        ins, _, _ = folders(root)
        data = mask_set(ins / "data", square(1))
        return Spec(["convert", str(data), "--out", str(data)])

    builders = [out_is_input, out_and_jsonl, missing_folder, out_is_folder, jsonl_dev_full, eval_json_missing,
                bench_plot_missing]
    if full:
        builders += [eval_plot_missing, bench_json_missing, jsonl_is_input, convert_out_is_data]
    return [Case("outputs", b.__name__.replace("_", "-"), b) for b in builders]


def network_cases(full: bool) -> list[Case]:
    def tcp_closed(root: Path) -> Spec:
        _, o, _ = folders(root)
        return Spec(["run", f"tcp://127.0.0.1:{free_port()}", "--out", str(o / "o.mp4"), "--quiet"])

    def unsupported_scheme(root: Path, url: str = "gopher://127.0.0.1/clip") -> Spec:
        _, o, _ = folders(root)
        return Spec(["run", url, "--out", str(o / "o.mp4"), "--quiet"])

    def http_garbage(root: Path, path: str = "/stream.mjpg") -> Spec:
        _, o, _ = folders(root)
        return Spec(["run", f"http://127.0.0.1:{{port}}{path}", "--out", str(o / "o.mp4"), "--quiet"],
                    server=GARBAGE_HTTP)

    out = [Case("network", "tcp-closed-port", tcp_closed), Case("network", "unsupported-scheme", unsupported_scheme),
           Case("network", "http-garbage", http_garbage)]
    if full:
        out += [Case("network", "rtsp-closed-port", lambda r: unsupported_scheme(r, f"rtsp://127.0.0.1:{free_port()}/x")),
                Case("network", "scheme-typo", lambda r: unsupported_scheme(r, "htp://127.0.0.1/x")),
                Case("network", "http-garbage-mp4", lambda r: http_garbage(r, "/clip.mp4"))]
    return out


BUNDLED = ROOT / "rtseg" / "assets" / "yolo11n-seg-person-cat-dog.pt"  # the default instance model (person, cat, dog)


@functools.lru_cache(maxsize=1)
def _int8_bytes() -> bytes:
    """A real INT8 ONNX file of the bundled model (imgsz 64, one calibration frame), made once per session."""
    import tempfile

    from rtseg.exporters.onnx import export_onnx
    from rtseg.exporters.quantize import quantize_onnx

    with tempfile.TemporaryDirectory() as tmp:
        fp32 = export_onnx(str(BUNDLED), out=Path(tmp) / "fp32.onnx", imgsz=64)
        frame = cv2.imread(str(image(Path(tmp) / "a.png")))
        return quantize_onnx(fp32, Path(tmp) / "int8.onnx", frames=[frame], calib_name="a", task="segment",
                             imgsz=64).read_bytes()


def int8_cases(full: bool) -> list[Case]:  # noqa: ARG001 - the same few cases in both sets
    """INT8 export and run: calibration sources without images, a --val set of other classes, a corrupt INT8 file."""

    def export(root: Path, calib: Callable[[Path], Path], *extra: str) -> Spec:
        ins, o, _ = folders(root)
        return Spec(["export", str(BUNDLED), "--int8", "--calib", str(calib(ins)), *extra, "--out", str(o / "m.onnx")],
                    extra_inputs=[BUNDLED])

    def empty(ins: Path) -> Path:
        (ins / "calib").mkdir()
        (ins / "calib" / "readme.txt").write_text("no images")
        return ins / "calib"

    def garbage(ins: Path) -> Path:
        (ins / "calib").mkdir()
        for i in range(3):
            random_bytes(ins / "calib" / f"{i}.jpg", 500, i)
        return ins / "calib"

    def other_classes(root: Path) -> Spec:
        ins, o, _ = folders(root)
        data = mask_set(ins / "cars", square(1), classes="car\n")
        return Spec(["export", str(BUNDLED), "--int8", "--calib", str(data / "images"), "--calib-frames", "1",
                     "--imgsz", "64", "--val", str(data), "--val-labels", "instance", "--out", str(o / "m.onnx")],
                    extra_inputs=[BUNDLED])

    def corrupt(root: Path, keep: float) -> Spec:
        ins, o, _ = folders(root)
        model = write(ins / "m-int8.onnx", _int8_bytes()[: int(len(_int8_bytes()) * keep)])
        return Spec(["run", str(clip(ins / "c.avi", frames=3)), "--model", str(model), "--out", str(o / "o.mp4"),
                     "--quiet"])

    def bad_precision(root: Path) -> Spec:
        ins, o, _ = folders(root)
        return Spec(["run", str(clip(ins / "c.avi", frames=3)), "--precision", "int4", "--out", str(o / "o.mp4")])

    return [Case("int8", "calib-empty-folder", lambda r: export(r, empty)),
            Case("int8", "calib-garbage-images", lambda r: export(r, garbage)),
            Case("int8", "calib-missing", lambda r: export(r, lambda ins: ins / "nothing-here")),
            Case("int8", "calib-frames-zero", lambda r: export(r, garbage, "--calib-frames", "0")),
            Case("int8", "val-other-classes", other_classes),
            Case("int8", "corrupt-int8-half", lambda r: corrupt(r, 0.5)),
            Case("int8", "corrupt-int8-head", lambda r: corrupt(r, 0.02)),
            Case("int8", "precision-unknown", bad_precision)]


def cases(full: bool = False) -> list[Case]:
    """Every case of every category: the small set, or with ``full`` the larger one."""
    made = [*media_cases(full), *weights_cases(full), *option_cases(full), *class_file_cases(full),
            *dataset_cases(full), *output_cases(full), *network_cases(full), *int8_cases(full)]
    ids = [c.id for c in made]
    assert len(ids) == len(set(ids)), "duplicate fuzz case ids"
    return made
