"""Malformed class files (``--class-file``) end in one line naming the file, never a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

from rtseg.errors import ConfigError
from rtseg.models.classmap import load_class_file

CASES = [
    ("bin.yaml", b"\xff\xfe\x00\x81\x00garbage", "not a text file"),
    ("deep.yaml", b"names: " + b"[" * 5000 + b"]" * 5000, "nested too deeply"),
    ("deep.json", b'{"names": ' + b"[" * 100000 + b"]" * 100000 + b"}", "nested too deeply"),
    ("bad.json", b'{"names": ["a",', r"not valid JSON \(line 1:"),
    ("bad.yaml", b"names: [a\npalette: x\n", r"not valid YAML \(line \d+:"),
    ("section.yaml", b"semantic: 5\n", r"\[semantic\]: expected a mapping"),
    ("nested.yaml", b"names: [[a, b], c]\n", "'names' must be a list"),
    ("keys.yaml", b"names: {a: x, b: y}\n", "needs the ids 0, 1, 2"),
    ("mixed.yaml", b"names: {0: x, b: y}\n", "needs the ids 0, 1, 2"),
    ("hex.yaml", b"names: [a]\npalette: ['#GGGGGG']\n", "colour '#GGGGGG' is neither"),
    ("range.yaml", b"names: [a]\npalette: [[300, 0, 0]]\n", r"colour '\[300, 0, 0\]' is neither"),
    ("bools.yaml", b"names: [a]\npalette: [[true, 0, 0]]\n", "is neither"),
    ("map-list.yaml", b"names: [a, b]\nmap: [1, 2]\n", "'map' must map model class ids"),
    ("map-text.yaml", b"names: [a, b]\nmap: {x: 1}\n", r"map x -> 1 is out of range"),
]


@pytest.mark.parametrize(("name", "content", "why"), CASES, ids=[case[0] for case in CASES])
def test_malformed_class_files(tmp_path: Path, name: str, content: bytes, why: str) -> None:
    (tmp_path / name).write_bytes(content)
    with pytest.raises(ConfigError, match=why) as info:
        load_class_file(tmp_path / name)
    assert "\n" not in str(info.value) and str(info.value).startswith(f"class_file={tmp_path / name}")
