from __future__ import annotations

import json

import numpy as np
import pytest

from rtseg.errors import ConfigError
from rtseg.models.classmap import RemappedSemantic, load_class_file
from rtseg.overlay.annotator import Annotator
from tests.fakes import ColourBackend, make_result

AERIAL = """
names: [building, land, road, vegetation, water, unlabeled]
palette: ["#3C1098", "#8429F6", "#6EC1E4", "#FEDD3A", "#E2A929", [155, 155, 155]]
map: {5: 1}
"""


def test_yaml_class_file(tmp_path) -> None:
    (tmp_path / "aerial.yaml").write_text(AERIAL)
    cmap = load_class_file(tmp_path / "aerial.yaml")["default"]
    assert cmap.names[2] == "road" and cmap.palette_bgr[0] == (0x98, 0x10, 0x3C) and cmap.palette_bgr[5] == (155,) * 3
    assert cmap.lut[5] == 1 and cmap.lut[3] == 3


def test_sections_and_json(tmp_path) -> None:
    (tmp_path / "c.json").write_text(json.dumps({"semantic": {"names": ["bg", "a", "b"]},
                                                 "instance": {"names": {"0": "car", "1": "truck"}}}))
    maps = load_class_file(tmp_path / "c.json")
    assert maps["semantic"].names == ("bg", "a", "b") and maps["instance"].names == ("car", "truck")


@pytest.mark.parametrize(("text", "message"), [
    ("names: []", "names"),
    ("names: [a, b]\npalette: ['#FFFFFF']", "one colour per name"),
    ("names: [a]\npalette: [pink]", "neither"),
    ("names: [a, b]\nmap: {7: 5}", "out of range"),
    ("[1, 2", "not valid"),
])
def test_bad_class_files(tmp_path, text, message) -> None:
    (tmp_path / "bad.yaml").write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_class_file(tmp_path / "bad.yaml")


def test_remapped_semantic_merges_classes_and_renames() -> None:
    from rtseg.models.semantic import SemanticModel

    (cmap,) = load_class_file_from_text("names: [dark, light]\npalette: ['#000000', '#FFFFFF']\nmap: {2: 1}")
    model = RemappedSemantic(SemanticModel(ColourBackend()), cmap)
    image = np.zeros((64, 96, 3), np.uint8)
    image[:, 32:64, 2], image[:, 64:, 2] = 128, 230  # red bands: classes 0, 1, 2
    labels = model([image])[0]
    assert (labels[:, :30] == 0).all() and (labels[:, 34:] == 1).all()  # bright (2) merged into 1
    assert set(np.unique(labels)) == {0, 1}
    assert model.names == ("dark", "light") and model.info.palette_bgr[1] == (255, 255, 255)


def load_class_file_from_text(text: str):  # noqa: ANN201
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "c.yaml").write_text(text)
        return tuple(load_class_file(Path(tmp) / "c.yaml").values())


def test_instance_palette_colours_masks() -> None:
    out = Annotator(("a", "b", "c"), alpha=1.0, boxes=False, labels=False,
                    palette=((1, 2, 3), (4, 5, 6), (7, 8, 9))).draw(np.zeros((40, 60, 3), np.uint8), make_result())
    assert out[1, 1].tolist() == [1, 2, 3]
