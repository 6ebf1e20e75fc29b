"""Pre-label files in the formats labelling tools open: LabelMe, COCO, YOLO-seg and CVAT for images 1.1.

Each writer gets the frames one by one (:meth:`LabelWriter.add`) and finishes with :meth:`LabelWriter.close`;
every file is written whole or not at all (:mod:`rtseg.sinks.atomic`). Layouts under ``out``:

* ``labelme``: ``NAME.jpg`` and ``NAME.json`` side by side (LabelMe and AnyLabeling open the folder), and
  ``classes.txt`` (the model's classes in id order, so ``rtseg convert`` keeps the ids). Each piece of an object
  is a ``polygon`` shape; pieces of one object share a ``group_id``. Low-confidence objects have the shape flag
  ``review: true`` and the score in ``description`` (``score=0.42 review``).
* ``coco``: ``images/NAME.jpg`` and ``annotations.json`` (instances; each annotation also holds ``score`` and
  ``review``, which COCO readers ignore).
* ``yolo-seg``: ``images/NAME.jpg``, ``labels/NAME.txt`` (``class x1 y1 x2 y2 ...``, normalised, one line per
  piece) and ``data.yaml`` as Ultralytics reads them; the format has no room for flags, so objects to review are
  listed in ``review.txt`` (``NAME line class score``).
* ``cvat``: ``images/NAME.jpg`` and ``annotations.xml`` (CVAT for images 1.1, ``source="auto"``; each polygon has
  the attributes ``review`` and ``score``; pieces of one object share a ``group_id``).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Protocol
from xml.etree import ElementTree as ET

import cv2
import yaml

from rtseg.errors import ConfigError, SinkError
from rtseg.label.frames import Sampled
from rtseg.label.shapes import LabelledFrame, PreLabel
from rtseg.sinks.atomic import write_bytes

FORMATS = ("labelme", "coco", "yolo-seg", "cvat")
LABELME_VERSION = "5.5.0"  # the file format LabelMe 5 writes (and 6 reads), which AnyLabeling also opens


class LabelWriter(Protocol):
    def add(self, frame: Sampled, labelled: LabelledFrame) -> None: ...
    def close(self) -> None: ...


def check_format(fmt: str) -> str:
    """``fmt`` if rtseg writes it, else ConfigError listing the formats."""
    if fmt not in FORMATS:
        raise ConfigError(f"format={fmt!r}: expected one of {', '.join(FORMATS)}")
    return fmt


def open_writer(fmt: str, out: Path, names: tuple[str, ...]) -> LabelWriter:
    """The writer of ``fmt`` into folder ``out`` (created) for a model with class ``names``."""
    cls = {"labelme": LabelMeWriter, "coco": CocoWriter, "yolo-seg": YoloSegWriter, "cvat": CvatWriter}
    writer = cls[check_format(fmt)]
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise SinkError(f"cannot create {out}: {exc.strerror}") from None
    return writer(out, names)


def save_image(frame: Sampled, folder: Path) -> str:
    """The frame's image in ``folder``: the original file copied as it is, a video frame as JPEG (quality 95).
    Returns its file name."""
    folder.mkdir(parents=True, exist_ok=True)
    if frame.file is not None:
        target = folder / f"{frame.name}{frame.file.suffix.lower()}"
        try:
            if not target.exists() or not target.samefile(frame.file):
                shutil.copyfile(frame.file, target)
        except OSError as exc:
            raise SinkError(f"cannot copy {frame.file} to {target}: {exc.strerror}") from None
        return target.name
    ok, data = cv2.imencode(".jpg", frame.image, [cv2.IMWRITE_JPEG_QUALITY, 95])
    if not ok:
        raise SinkError(f"cannot encode frame {frame.frame_index} as JPEG")
    write_bytes(folder / f"{frame.name}.jpg", data.tobytes(), what="image")
    return f"{frame.name}.jpg"


def _points(poly) -> list[list[float]]:  # noqa: ANN001
    return [[float(x), float(y)] for x, y in poly]


def _description(obj: PreLabel) -> str:
    if obj.score is None:
        return ""
    return f"score={obj.score:.3f}" + (" review" if obj.review else "")


class LabelMeWriter:
    def __init__(self, out: Path, names: tuple[str, ...]) -> None:
        self.out = out
        write_bytes(out / "classes.txt", "".join(f"{n}\n" for n in names), what="class list")

    def add(self, frame: Sampled, labelled: LabelledFrame) -> None:
        image = save_image(frame, self.out)
        shapes = []
        for k, obj in enumerate(labelled.objects, 1):
            for poly in obj.polygons:
                shapes.append({"label": obj.label, "points": _points(poly), "group_id": k,
                               "description": _description(obj), "shape_type": "polygon",
                               "flags": {"review": obj.review}, "mask": None})
        h, w = labelled.image_hw
        doc = {"version": LABELME_VERSION, "flags": {}, "shapes": shapes, "imagePath": image, "imageData": None,
               "imageHeight": h, "imageWidth": w}
        write_bytes(self.out / f"{labelled.name}.json", json.dumps(doc, indent=2) + "\n", what="LabelMe JSON")

    def close(self) -> None:
        return None


class CocoWriter:
    def __init__(self, out: Path, names: tuple[str, ...]) -> None:
        self.out, self.names = out, names
        self.images: list[dict] = []
        self.annotations: list[dict] = []

    def add(self, frame: Sampled, labelled: LabelledFrame) -> None:
        image = save_image(frame, self.out / "images")
        h, w = labelled.image_hw
        image_id = len(self.images) + 1
        self.images.append({"id": image_id, "file_name": image, "height": h, "width": w})
        for obj in labelled.objects:
            seg = [[float(v) for v in poly.reshape(-1)] for poly in obj.polygons]
            xy = [p for poly in obj.polygons for p in poly]
            x0, y0 = min(p[0] for p in xy), min(p[1] for p in xy)
            x1, y1 = max(p[0] for p in xy), max(p[1] for p in xy)
            area = float(sum(cv2.contourArea(poly) for poly in obj.polygons))
            self.annotations.append({"id": len(self.annotations) + 1, "image_id": image_id,
                                     "category_id": obj.class_id + 1, "segmentation": seg, "area": area,
                                     "bbox": [float(x0), float(y0), float(x1 - x0), float(y1 - y0)], "iscrowd": 0,
                                     "score": obj.score, "review": obj.review})

    def close(self) -> None:
        doc = {"info": {"description": "rtseg label: pre-labels to correct"}, "images": self.images,
               "annotations": self.annotations,
               "categories": [{"id": i + 1, "name": n, "supercategory": ""} for i, n in enumerate(self.names)]}
        write_bytes(self.out / "annotations.json", json.dumps(doc) + "\n", what="COCO JSON")


class YoloSegWriter:
    def __init__(self, out: Path, names: tuple[str, ...]) -> None:
        self.out, self.names = out, names
        self.review: list[str] = []

    def add(self, frame: Sampled, labelled: LabelledFrame) -> None:
        save_image(frame, self.out / "images")
        h, w = labelled.image_hw
        lines = []
        for obj in labelled.objects:
            for poly in obj.polygons:
                xy = (poly / [w, h]).clip(0, 1).reshape(-1)
                lines.append(f"{obj.class_id} " + " ".join(f"{v:.6f}" for v in xy))
                if obj.review:
                    self.review.append(f"{labelled.name} {len(lines)} {obj.label} {obj.score:.3f}")
        (self.out / "labels").mkdir(exist_ok=True)
        write_bytes(self.out / "labels" / f"{labelled.name}.txt", "".join(f"{x}\n" for x in lines), what="labels")

    def close(self) -> None:
        spec = {"path": str(self.out.resolve()), "train": "images", "val": "images",
                "names": dict(enumerate(self.names))}
        write_bytes(self.out / "data.yaml", yaml.safe_dump(spec, sort_keys=False), what="data.yaml")
        write_bytes(self.out / "review.txt", "".join(f"{x}\n" for x in self.review), what="review list")


class CvatWriter:
    def __init__(self, out: Path, names: tuple[str, ...]) -> None:
        self.out, self.names = out, names
        self.root = ET.Element("annotations")
        ET.SubElement(self.root, "version").text = "1.1"
        self._meta = ET.SubElement(self.root, "meta")
        self._count = 0

    def add(self, frame: Sampled, labelled: LabelledFrame) -> None:
        image = save_image(frame, self.out / "images")
        h, w = labelled.image_hw
        node = ET.SubElement(self.root, "image", id=str(self._count), name=image, width=str(w), height=str(h))
        self._count += 1
        for k, obj in enumerate(labelled.objects, 1):
            for poly in obj.polygons:
                attrs = {"label": obj.label, "source": "auto", "occluded": "0", "z_order": "0",
                         "points": ";".join(f"{x:.2f},{y:.2f}" for x, y in poly)}
                if len(obj.polygons) > 1:
                    attrs["group_id"] = str(k)
                shape = ET.SubElement(node, "polygon", attrs)
                ET.SubElement(shape, "attribute", name="review").text = "true" if obj.review else "false"
                ET.SubElement(shape, "attribute", name="score").text = "" if obj.score is None else f"{obj.score:.3f}"

    def close(self) -> None:
        task = ET.SubElement(self._meta, "task")
        ET.SubElement(task, "name").text = "rtseg pre-labels"
        ET.SubElement(task, "size").text = str(self._count)
        ET.SubElement(task, "mode").text = "annotation"
        labels = ET.SubElement(task, "labels")
        for n in self.names:
            label = ET.SubElement(labels, "label")
            ET.SubElement(label, "name").text = n
            ET.SubElement(label, "type").text = "polygon"
            attributes = ET.SubElement(label, "attributes")
            for name, kind, default, values in (("review", "checkbox", "false", "false\ntrue"),
                                                ("score", "text", "", "")):
                attr = ET.SubElement(attributes, "attribute")
                for key, value in (("name", name), ("mutable", "True"), ("input_type", kind),
                                   ("default_value", default), ("values", values)):
                    ET.SubElement(attr, key).text = value
        ET.indent(self.root)
        data = ET.tostring(self.root, encoding="utf-8", xml_declaration=True) + b"\n"
        write_bytes(self.out / "annotations.xml", data, what="CVAT XML")
