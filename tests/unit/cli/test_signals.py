"""Ctrl-C and SIGTERM in the middle of an import wait for it to finish (a half-done import of PyTorch can abort
the process), then interrupt as usual."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

SCRIPT = textwrap.dedent("""
    import signal, sys, time
    sys.path.insert(0, sys.argv[1])
    from rtseg.cli import interrupt
    signal.signal(signal.SIGTERM, interrupt)
    signal.signal(signal.SIGINT, interrupt)
    print("ready", flush=True)
    try:
        import slowmod
        print("imported", slowmod.DONE, flush=True)
        time.sleep(30)
        print("never interrupted", flush=True)
    except KeyboardInterrupt:
        print("interrupted after import", "slowmod" in sys.modules, flush=True)
""")


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_during_an_import_comes_once_the_import_is_done(tmp_path: Path, signum: int) -> None:
    (tmp_path / "slowmod.py").write_text("import time\nfor _ in range(40):\n    time.sleep(0.025)\nDONE = True\n")
    proc = subprocess.Popen([sys.executable, "-c", SCRIPT, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "ready"
    time.sleep(0.3)  # inside the 1 s import
    proc.send_signal(signum)
    out, _ = proc.communicate(timeout=20)
    assert proc.returncode == 0, out
    assert out.splitlines() == ["imported True", "interrupted after import True"], out


def test_outside_an_import_it_is_a_keyboard_interrupt_at_once() -> None:
    from rtseg.cli import interrupt

    with pytest.raises(KeyboardInterrupt):
        interrupt(signal.SIGTERM, sys._getframe())  # noqa: SLF001
