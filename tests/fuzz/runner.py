"""The fuzz suite's machinery: each case's CLI run (time limit, blocked network), the hashes of its inputs, a
loopback server answering garbage, and the pool that runs the selected cases' commands.

Each case is its own ``python -m rtseg.cli`` run. The CLI's start-up dominates a case's time, so the selected
cases' runs start together, ``RTSEG_FUZZ_JOBS`` at a time (default 2), when the first fuzz test asks; each test
then waits for its own run and checks it. A run's time limit (``RTSEG_FUZZ_TIMEOUT``, default 90 s) counts from
its own start, so waiting in the queue never counts as a hang.
"""

from __future__ import annotations

import hashlib
import os
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from tests.fuzz.generators import GARBAGE_HTTP, Case, Spec
from tests.support import NONET

JOBS = int(os.environ.get("RTSEG_FUZZ_JOBS", "2"))
TIMEOUT = float(os.environ.get("RTSEG_FUZZ_TIMEOUT", "90"))
CASES: dict[str, dict] = {}  # case id -> command, exit code, seconds, stderr (for the JSON report)


@dataclass
class Outcome:
    spec: Spec
    root: Path
    before: dict[str, str]
    returncode: int | None  # None: killed at the time limit (a hang)
    stdout: str
    stderr: str
    seconds: float


def tree_hashes(root: Path) -> dict[str, str]:
    """sha256 of every file under ``root`` (links as their target), folders by name: what a run must not change."""
    found = {}
    for p in sorted(root.rglob("*")):
        rel = str(p.relative_to(root))
        if p.is_symlink():
            found[rel] = "link:" + os.readlink(p)
        elif p.is_dir():
            found[rel] = "dir"
        else:
            found[rel] = hashlib.sha256(p.read_bytes()).hexdigest()
    return found


def input_hashes(root: Path, spec: Spec) -> dict[str, str]:
    found = tree_hashes(root / "in")
    for p in spec.extra_inputs:
        found[str(p)] = hashlib.sha256(p.read_bytes()).hexdigest()
    return found


def _run(args: list[str], cwd: Path) -> tuple[int | None, str, str, float]:
    """The real CLI with the network blocked (tests/nonet); a run past the time limit is killed: a hang."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(NONET), os.environ.get("PYTHONPATH")])))
    env.pop("RTSEG_DEBUG", None)
    env.pop("RTSEG_TRUST_WEIGHTS", None)
    start = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-m", "rtseg.cli", *args], cwd=cwd, env=env, text=True,
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True)
    try:
        out, err = proc.communicate(timeout=TIMEOUT)
        return proc.returncode, out, err, time.monotonic() - start
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, 9)
        out, err = proc.communicate()
        return None, out, err, time.monotonic() - start


class GarbageServer:
    """A loopback TCP server that answers every connection with random bytes, then closes it."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.stop = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        import numpy as np

        rng = np.random.default_rng(5)
        self.sock.settimeout(0.5)
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            with conn:
                try:
                    conn.settimeout(2)
                    conn.recv(4096)
                    conn.sendall(b"HTTP/1.0 200 OK\r\nContent-Type: video/mp4\r\n\r\n"
                                 + rng.integers(0, 256, 20000, dtype=np.uint8).tobytes())
                except OSError:
                    pass

    def close(self) -> None:
        self.stop.set()
        self.sock.close()


class FuzzRunner:
    """Builds every selected case, then runs their CLI commands in a pool; ``outcome(case)`` waits for one."""

    def __init__(self, selected: list[Case], base: Path) -> None:
        self.server = GarbageServer()
        self.pool = ThreadPoolExecutor(max_workers=max(1, JOBS))
        self.futures: dict[str, Future] = {}
        for i, case in enumerate(selected):
            root = base / f"{i:03d}"
            spec = case.build(root)
            if spec.server == GARBAGE_HTTP:
                spec.args = [a.replace("{port}", str(self.server.port)) for a in spec.args]
            before = input_hashes(root, spec)
            self.futures[case.id] = self.pool.submit(self._one, spec, root, before)

    def _one(self, spec: Spec, root: Path, before: dict[str, str]) -> Outcome:
        code, out, err, seconds = _run(spec.args, root / "cwd")
        outcome = Outcome(spec, root, before, code, out, err, seconds)
        return outcome

    def outcome(self, case: Case) -> Outcome:
        outcome = self.futures[case.id].result()
        CASES[case.id] = {"command": ["rtseg", *outcome.spec.args], "exit": outcome.returncode,
                           "seconds": round(outcome.seconds, 1), "stderr": outcome.stderr[-2000:]}
        return outcome

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)
        self.server.close()

