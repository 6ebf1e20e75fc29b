"""Library errors name parameters (``conf=2: ...``); the CLI shows the same message with its flags
(``--conf 2: ...``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from rtseg.cli.common import FLAGS, PARAMS, as_flags


@pytest.mark.parametrize(("message", "expected"), [
    ("conf=2: expected a number in [0, 1]", "--conf 2: expected a number in [0, 1]"),
    ("backend='tf': expected one of auto, torch", "--backend 'tf': expected one of auto, torch"),
    ("tile_merge='x': expected one of nmm, nms", "--tile-merge 'x': expected one of nmm, nms"),
    ("quality='x': expected one of fast, fine", "--semantic-quality 'x': expected one of fast, fine"),
    ("workspace_gb=0: expected a positive size in GiB", "--workspace 0: expected a positive size in GiB"),
    ("pad=0, open_px=-1: expected values >= 0", "--pad 0, --morph-open -1: expected values >= 0"),
    ("device='cuda': no CUDA GPU; use device='cpu'", "--device 'cuda': no CUDA GPU; use --device 'cpu'"),
    ("max_batch=2: must be at least batch=4", "--max-batch 2: must be at least --batch 4"),
    # booleans: name=True is the switch itself, name=False its off form
    ("half=True needs a CUDA device", "--half needs a CUDA device"),
    ("int8=True needs calib=DIR: a folder", "--int8 needs --calib DIR: a folder"),
    ("export with dynamic=False and a fixed imgsz", "export with --static and a fixed imgsz"),
    ("nms=False keeps the one-to-one head", "--no-nms keeps the one-to-one head"),
    # a parameter named before a verb at the very start
    ("save_labels needs a semantic model (semantic=..., or a semantic model=...)",
     "--save-labels needs a semantic model (--semantic ..., or a semantic --model ...)"),
    ("calib is only used with int8=True", "--calib is only used with --int8"),
    ("track needs an instance-segmentation model", "--track needs an instance-segmentation model"),
])
def test_parameters_become_flags(message: str, expected: str) -> None:
    assert as_flags(message) == expected


@pytest.mark.parametrize("message", [
    "a=b.mp4: no such file",  # a file name with '=' that names no parameter
    "cannot open stream rtsp://cam/live?source=1&conf=2: connection refused",  # a URL query
    "model file not found: /data/conf=2/w.pt",  # a path component, and 'model' as an ordinary word
    "semantic model not found: unet.pt",
    "split by tile needs at least 2 tiles",
    "rebuild it: rtseg export w.pt --format engine --half",  # a command line is already in flags
    "video preset 'quick': expected one of ultrafast, superfast",
    "reconf=2 is not a parameter; xconf=3 neither",
])
def test_other_text_is_left_alone(message: str) -> None:
    assert as_flags(message) == message


def test_every_flag_exception_names_a_parameter() -> None:
    assert set(FLAGS) <= set(PARAMS)


def test_cli_shows_the_flag_and_python_the_parameter(tmp_path: Path) -> None:
    import rtseg
    from rtseg.errors import ConfigError
    from tests.support import run_cli, write_video

    with pytest.raises(ConfigError, match=r"^conf=2: ") as err:
        rtseg.load_model(conf=2)
    assert "--" not in str(err.value)

    video = write_video(tmp_path / "v.avi", frames=2)
    proc = run_cli("run", str(video), "--conf", "2", "--out", str(tmp_path / "o.mp4"))
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 2, proc.stderr
    assert len(lines) == 1 and lines[0].startswith("rtseg: error: --conf 2"), proc.stderr
    assert "conf=" not in proc.stderr and "Traceback" not in proc.stderr
