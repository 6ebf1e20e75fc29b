"""Hostile ``.pt`` files through the real CLI: weights are data unless the user says otherwise.

Every command that loads weights refuses a pickle that would run code, with one line naming ``--trust-weights``
and exit code 2, and the payload never runs (its marker file is never created). A file that names only
allowed model classes but *calls* one (its constructor builds layers named by the file, ``torch_safe_load``
among them) is refused too. With ``--trust-weights`` or ``RTSEG_TRUST_WEIGHTS=1`` a checkpoint holding a custom
layer class loads; the bundled models and the test weights load without trust.
"""

from __future__ import annotations

import doctest
import importlib
import json
import os
import pickle
import sys
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from rtseg.backends import weights
from rtseg.backends.weights import load_weights, ultralytics_loads, weights_trusted
from rtseg.errors import ModelError
from tests.conftest import ROOT, YOLO11_WEIGHTS, YOLO26_WEIGHTS, run_cli

BUNDLED = sorted((ROOT / "rtseg" / "assets").glob("*.pt")) + [YOLO11_WEIGHTS, YOLO26_WEIGHTS]
CUSTOM_MODULE = "rtseg_test_custom_layers"


class _Payload:
    """Unpickling it runs a shell command that creates ``marker``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return os.system, (f"touch {self.marker}",)


class _CallsModelClass:
    """Unpickling it calls ``SegmentationModel(cfg)``: an allowed class, constructed with the file's arguments.

    ``cfg`` names ``torch_safe_load`` as a layer, which unpickles ``second`` fully: under an allow-list that
    lets a file call the classes it allows, the second file's payload runs.
    """

    def __init__(self, second: Path) -> None:
        self.second = second

    def __reduce__(self) -> tuple:
        from ultralytics.nn.tasks import SegmentationModel

        cfg = {"nc": 1, "backbone": [[-1, 1, "torch_safe_load", [repr(str(self.second))]]], "head": []}
        return SegmentationModel, (cfg,)


def _hostile(folder: Path, kind: str) -> tuple[Path, Path]:
    """(hostile file, marker its payload would create)."""
    folder.mkdir(parents=True, exist_ok=True)
    marker = folder / f"PWNED-{kind}"
    path = folder / f"{kind}.pt"
    if kind == "raw":  # a bare pickle, as pickle.dump writes it
        path.write_bytes(pickle.dumps(_Payload(marker)))
    elif kind == "zip":  # a torch.save checkpoint with the payload among ordinary entries
        torch.save({"date": "2025", "model": _Payload(marker), "state_dict": {"w": torch.zeros(2)}}, path)
    else:  # "calls": the payload sits in a second file that only an allowed class's constructor would open
        second = folder / "second.pt"
        second.write_bytes(pickle.dumps(_Payload(marker), protocol=2))
        torch.save({"model": _CallsModelClass(second)}, path)
    return path, marker


def _mask_png_set(root: Path) -> Path:
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    for i in range(2):
        labels = np.zeros((32, 32), np.uint8)
        labels[8:20, 8:20] = 1
        cv2.imwrite(str(root / "images" / f"{i}.png"), np.full((32, 32, 3), 90 + 40 * labels[..., None], np.uint8))
        cv2.imwrite(str(root / "masks" / f"{i}.png"), labels)
    (root / "classes.txt").write_text("background\nthing\n")
    return root


def _commands(model: Path, video: Path, data: Path, tmp: Path) -> dict[str, list[str]]:
    return {
        "run --model": ["run", str(video), "--model", str(model), "--out", str(tmp / "o.mp4")],
        "run --semantic": ["run", str(video), "--semantic", str(model), "--out", str(tmp / "o.mp4")],
        "eval": ["eval", "--model", str(model), "--data", str(data)],
        "export": ["export", str(model), "--format", "onnx", "--out", str(tmp / "o.onnx")],
        "bench": ["bench", "--model", str(model), "--synthetic", "64x64", "--frames", "1", "--warmup", "0",
                  "--repeats", "1"],
        "train": ["train", "--data", str(data), "--model", str(model), "--out", str(tmp / "m.pt"), "--epochs", "1"],
    }


def _assert_refused(res, marker: Path, named: str) -> None:  # noqa: ANN001
    lines = [line for line in res.stderr.strip().splitlines() if not line.startswith("rtseg bench: ")]  # progress
    assert res.returncode == 2, res.stderr
    assert len(lines) == 1 and "Traceback" not in res.stderr, res.stderr
    assert lines[0].startswith("rtseg: error: ") and named in lines[0] and "--trust-weights" in lines[0]
    assert not marker.exists(), "the payload ran"


COMMANDS = ["run --model", "run --semantic", "eval", "export", "bench", "train"]


@pytest.mark.parametrize(("command", "kind"), [(c, k) for c in COMMANDS for k in ("raw", "zip")]
                         + [("run --model", "calls"), ("eval", "calls")])
def test_every_command_refuses_a_hostile_pickle(tmp_path: Path, video30: Path, command: str, kind: str) -> None:
    path, marker = _hostile(tmp_path / "w", kind)
    data = _mask_png_set(tmp_path / "data")
    res = run_cli(*_commands(path, video30, data, tmp_path)[command], cwd=tmp_path)
    _assert_refused(res, marker, named={"raw": "posix.system", "zip": "posix.system",
                                        "calls": "SegmentationModel(...)"}[kind])


@pytest.mark.parametrize("kind", ["raw", "zip", "calls"])
def test_library_loaders_refuse_without_running_it(tmp_path: Path, kind: str) -> None:
    from rtseg.backends.torch_backend import load_yolo
    from rtseg.models.task import model_task
    from rtseg.models.zoo import load_semantic

    path, marker = _hostile(tmp_path, kind)
    for load in (load_weights, model_task, load_yolo, load_semantic):
        with pytest.raises(ModelError, match="--trust-weights"):
            load(str(path))
    assert not marker.exists()


def test_a_model_class_registered_elsewhere_still_cannot_be_called(tmp_path: Path) -> None:
    """Ultralytics' opt-in safe mode registers real model classes process-wide; rtseg's load ignores them."""
    from ultralytics.nn.tasks import SegmentationModel

    path, marker = _hostile(tmp_path, "calls")
    saved = torch.serialization.get_safe_globals()
    torch.serialization.add_safe_globals([SegmentationModel])
    try:
        with pytest.raises(ModelError, match=r"calls ultralytics\.nn\.tasks\.SegmentationModel\(\.\.\.\)"):
            load_weights(path)
        assert SegmentationModel in torch.serialization.get_safe_globals()  # put back as it was
    finally:
        torch.serialization.clear_safe_globals()
        torch.serialization.add_safe_globals(saved)
    assert not marker.exists()


def test_getattr_is_limited_to_module_forwards(tmp_path: Path) -> None:
    """YOLOv8/YOLO11 checkpoints pickle ``Detect.forward`` and ``module.forward_fuse``; nothing else passes."""
    from ultralytics.nn.modules.head import Detect

    reference = torch.load(YOLO11_WEIGHTS, map_location="cpu", weights_only=False)  # a file we made: reference
    net = reference["model"]
    net.model[-1].detect = Detect.forward
    net.model[0].forward = net.model[0].forward_fuse
    torch.save(reference, tmp_path / "methods.pt")
    loaded = load_weights(tmp_path / "methods.pt")["model"]
    assert loaded.model[-1].detect is Detect.forward
    assert loaded.model[0].forward.__func__ is type(net.model[0]).forward_fuse

    class _Getattr:
        def __reduce__(self) -> tuple:
            return getattr, (Detect, "__init__")

    torch.save({"model": _Getattr()}, tmp_path / "getattr.pt")
    with pytest.raises(ModelError, match=r"getattr\(ultralytics\.nn\.modules\.head\.Detect, '__init__'\)"):
        load_weights(tmp_path / "getattr.pt")


def test_pretrained_weights_in_the_hub_cache_load_as_data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """torch.hub unpickles fully by default and checks the hash only when it downloads: a file dropped into
    its cache (as the offline hint tells users to do) is read as data."""
    from torchvision.models import get_model_weights

    from rtseg.models.zoo import build_semantic, load_pretrained

    name = "lraspp_mobilenet_v3_large.COCO_WITH_VOC_LABELS_V1"
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    weights = get_model_weights("lraspp_mobilenet_v3_large").COCO_WITH_VOC_LABELS_V1
    cached = tmp_path / "torch" / "hub" / "checkpoints" / Path(weights.url).name
    cached.parent.mkdir(parents=True)
    marker = tmp_path / "PWNED"
    torch.save({"model": _Payload(marker)}, cached)
    with pytest.raises(ModelError, match="cannot read the weights of"):
        load_pretrained(name)
    assert not marker.exists()
    net, _ = build_semantic("lraspp_mobilenet_v3_large", names=[str(c) for c in weights.meta["categories"]])
    torch.save(net.net.state_dict(), cached)  # a plain state dict, as torchvision publishes
    loaded, info = load_pretrained(name)
    assert len(info.names) == 21 and torch.equal(loaded.net.state_dict()["classifier.low_classifier.weight"],
                                                 net.net.state_dict()["classifier.low_classifier.weight"])


@pytest.mark.parametrize("path", BUNDLED, ids=lambda p: p.name)
def test_bundled_and_test_weights_load_without_trust(path: Path) -> None:
    """Every shipped checkpoint loads as data, equal to a full unpickle (rtseg's own files: a fair reference)."""
    from rtseg.models.task import model_task

    assert not weights_trusted()
    ckpt = load_weights(path)
    reference = torch.load(path, map_location="cpu", weights_only=False)
    if "state_dict" in reference:  # rtseg semantic checkpoint
        state, expected = ckpt["state_dict"], reference["state_dict"]
        assert model_task(path) == "semantic"
    else:
        state, expected = ckpt["model"].state_dict(), reference["model"].state_dict()
        assert type(ckpt["model"]) is type(reference["model"]) and model_task(path) == "segment"
        assert ckpt["train_args"] == reference["train_args"]
    assert state.keys() == expected.keys() and all(torch.equal(state[k], expected[k]) for k in state)


def test_ultralytics_loader_goes_through_rtseg_and_is_restored() -> None:
    import ultralytics.nn.tasks as tasks
    import ultralytics.utils.torch_utils as torch_utils

    from rtseg.backends.torch_backend import load_yolo

    originals = tasks.torch_load, torch_utils.torch_load
    with ultralytics_loads(), ultralytics_loads():  # nested: one patch
        assert tasks.torch_load is torch_utils.torch_load is weights._torch_load_as_data
    assert (tasks.torch_load, torch_utils.torch_load) == originals
    assert load_yolo(str(YOLO26_WEIGHTS)).task == "segment"
    assert (tasks.torch_load, torch_utils.torch_load) == originals


def test_doc_examples_run() -> None:
    finder, runner = doctest.DocTestFinder(), doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    for test in finder.find(weights):
        runner.run(test)
    assert runner.failures == 0 and runner.tries >= 4
    assert not weights_trusted()


@pytest.fixture
def custom_layer_checkpoint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The test YOLO11n-seg with one activation of a class from a module outside rtseg and Ultralytics."""
    (tmp_path / f"{CUSTOM_MODULE}.py").write_text(
        "from torch import nn\n\n\nclass MySiLU(nn.SiLU):\n    \"\"\"A user's own layer.\"\"\"\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(tmp_path), os.environ.get("PYTHONPATH")])))
    custom = importlib.import_module(CUSTOM_MODULE)
    ckpt = torch.load(YOLO11_WEIGHTS, map_location="cpu", weights_only=False)
    ckpt["model"].model[0].act = custom.MySiLU()
    path = tmp_path / "custom.pt"
    torch.save(ckpt, path)
    yield path
    sys.modules.pop(CUSTOM_MODULE, None)


def test_custom_layer_needs_trust_then_loads(custom_layer_checkpoint: Path, video30: Path, tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    model = str(custom_layer_checkpoint)
    refused = run_cli("bench", "--model", model, "--synthetic", "64x64", "--frames", "2", "--warmup", "0",
                      "--repeats", "1", "--backend", "torch")
    _assert_refused(refused, tmp_path / "no-marker", named=f"{CUSTOM_MODULE}.MySiLU")

    flag = run_cli("bench", "--model", model, "--synthetic", "64x64", "--frames", "2", "--warmup", "0",
                   "--repeats", "1", "--backend", "torch", "--trust-weights")
    assert flag.returncode == 0, flag.stderr

    monkeypatch.setenv("RTSEG_TRUST_WEIGHTS", "1")
    env = run_cli("run", str(video30), "--model", model, "--backend", "torch", "--max-frames", "2",
                  "--jsonl", str(tmp_path / "o.jsonl"))
    assert env.returncode == 0, env.stderr
    assert len([json.loads(line) for line in (tmp_path / "o.jsonl").read_text().splitlines()]) == 2
