"""rtseg.cli.ray_run: ``--ray`` alone, options that do not apply, and no Ray import without ``--ray``."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from rtseg.cli.ray_run import _as_ray_flags, ray_alone


@pytest.mark.parametrize(("argv", "expected"), [
    (["run", "--ray", "a.mp4", "--out-dir", "o"], ["run", "--ray=", "a.mp4", "--out-dir", "o"]),
    (["run", "--ray", "10.0.0.1:6379", "a.mp4"], ["run", "--ray", "10.0.0.1:6379", "a.mp4"]),
    (["run", "a.mp4", "--ray"], ["run", "a.mp4", "--ray="]),
    (["run", "--ray", "--out-dir", "o", "a.mp4"], ["run", "--ray=", "--out-dir", "o", "a.mp4"]),
    (["run", "--ray=auto", "a.mp4"], ["run", "--ray=auto", "a.mp4"]),
])
def test_ray_alone_means_the_default_address(argv: list[str], expected: list[str]) -> None:
    assert ray_alone(argv) == expected


def test_library_parameters_read_as_this_commands_flags() -> None:
    assert _as_ray_flags("workers=3: do not fit") == "--ray-workers 3: do not fit"
    assert _as_ray_flags("out_dir=/x: cannot write there") == "--out-dir /x: cannot write there"


def test_the_cli_imports_no_ray_without_ray() -> None:
    code = "import sys, rtseg.cli.app; print(sorted(m for m in sys.modules if m == 'ray' or m.startswith('ray.')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize(("args", "message"), [
    (["--out-dir", "o"], "--out-dir goes with --ray"),
    (["--ray"], "--ray needs --out-dir"),
    (["--ray", "--out-dir", "o", "--show"], "--show does not apply with --ray"),
])
def test_options_that_do_not_go_together(tmp_path: Path, args: list[str], message: str) -> None:
    from tests.support import run_cli

    clip = tmp_path / "a.mp4"
    clip.write_bytes(b"")
    result = run_cli("run", str(clip), *args, cwd=tmp_path, timeout=120)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1 and lines[0].startswith(f"rtseg: error: {message}")
    assert not (tmp_path / "o").exists()
