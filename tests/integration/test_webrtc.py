"""``rtseg serve --webrtc`` as a person runs it: the real CLI in a subprocess, headless Chromium (Playwright) whose
fake camera plays a real clip of a dog, the annotated video back in the page; the token, TLS, bad input, and
Ctrl-C / SIGTERM (exit code 130, no traceback)."""

from __future__ import annotations

import datetime
import http.client
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.support import DATA, NONET, free_port, run_cli

pytest.importorskip("aiortc", reason="needs aiortc (pip install 'rtseg[webrtc]')")
CHROMIUM = Path("/usr/bin/chromium")
DOG_CLIP = DATA / "videos" / "pet_dog_pomeranian.mp4"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream"]
TOKEN = "t0k3n-for-tests"
# the fraction of pixels of the HUD box's dark grey (40, 40, 40) in the top-left corner, in the page's canvas
HUD_GREY = """(id) => {
  const v = document.getElementById(id), c = document.createElement("canvas");
  c.width = v.videoWidth; c.height = v.videoHeight;
  const g = c.getContext("2d"); g.drawImage(v, 0, 0);
  const d = g.getImageData(0, 2, Math.min(110, c.width), 13).data;
  let grey = 0;
  for (let i = 0; i < d.length; i += 4) {
    const lo = Math.min(d[i], d[i + 1], d[i + 2]), hi = Math.max(d[i], d[i + 1], d[i + 2]);
    grey += lo >= 22 && hi <= 60 && hi - lo <= 12;
  }
  return grey / (d.length / 4);
}"""
# the annotated video plays, or the page said why not
REMOTE_PLAYING = """() => { const v = document.getElementById("remote");
  return (v.videoWidth > 0 && v.getVideoPlaybackQuality().totalVideoFrames >= 30)
    || document.getElementById("status").className === "error"; }"""


class Server:
    """``rtseg serve --webrtc 127.0.0.1:PORT ARGS`` in a subprocess, network blocked but loopback, its stderr
    collected line by line."""

    def __init__(self, *args: str) -> None:
        self.port = free_port()
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(NONET), os.environ.get("PYTHONPATH")])))
        self.proc = subprocess.Popen([sys.executable, "-m", "rtseg.cli", "serve", "--webrtc",
                                      f"127.0.0.1:{self.port}", *args], stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        self.lines: list[str] = []
        self._reader = threading.Thread(target=lambda: self.lines.extend(self.proc.stderr), daemon=True)
        self._reader.start()

    def wait_serving(self, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while not any("serving the webcam page at" in line for line in self.lines):
            assert self.proc.poll() is None and time.monotonic() < deadline, "".join(self.lines)
            time.sleep(0.1)

    def stop(self, sig: int = signal.SIGINT) -> tuple[int, str]:
        self.proc.send_signal(sig)
        code = self.proc.wait(timeout=60)
        self._reader.join(10)
        return code, "".join(self.lines)


@contextmanager
def serving(*args: str) -> Iterator[Server]:
    server = Server(*args)
    try:
        server.wait_serving()
        yield server
    finally:
        if server.proc.poll() is None:
            server.proc.kill()
            server.proc.wait(timeout=30)


def _get(port: int, path: str, *, tls: bool = False, headers: dict | None = None) -> tuple[int, str]:
    if tls:
        context = ssl.create_default_context()
        context.check_hostname, context.verify_mode = False, ssl.CERT_NONE  # self-signed
        conn: http.client.HTTPConnection = http.client.HTTPSConnection("127.0.0.1", port, timeout=10, context=context)
    else:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("GET", path, headers=headers or {})
    reply = conn.getresponse()
    body = reply.read().decode()
    conn.close()
    return reply.status, body


@pytest.fixture(scope="module")
def fake_camera(tmp_path_factory: pytest.TempPathFactory) -> Path | None:
    """The dog clip as the Y4M file Chromium's fake camera plays in a loop (3 s at 15 FPS); None without the
    data (Chromium's own test pattern then)."""
    if not DOG_CLIP.is_file():
        return None
    ffmpeg = pytest.importorskip("imageio_ffmpeg", reason="needs imageio-ffmpeg for the clip").get_ffmpeg_exe()
    y4m = tmp_path_factory.mktemp("camera") / "dog.y4m"
    subprocess.run([ffmpeg, "-loglevel", "error", "-y", "-i", str(DOG_CLIP), "-t", "3", "-vf", "fps=15",
                    "-pix_fmt", "yuv420p", str(y4m)], check=True, timeout=60)
    return y4m


def _has_network_interface() -> bool:
    from aioice.ice import get_host_addresses

    return bool(get_host_addresses(use_ipv4=True, use_ipv6=True))


@pytest.mark.slow
@pytest.mark.skipif(not CHROMIUM.is_file(), reason=f"needs Chromium at {CHROMIUM}")
@pytest.mark.skipif(not _has_network_interface(), reason="WebRTC needs a network interface with an address")
def test_browser_camera_in_annotated_video_back_then_ctrl_c(fake_camera: Path | None) -> None:
    sync_api = pytest.importorskip("playwright.sync_api", reason="needs Playwright (python)")
    args = CHROMIUM_ARGS + ([f"--use-file-for-fake-video-capture={fake_camera}"] if fake_camera else [])
    with serving("--serve-token", TOKEN) as server:
        assert _get(server.port, "/")[0] == 401  # the token guards the page
        assert _get(server.port, "/stats.json")[0] == 401
        seen: list[dict] = []
        with sync_api.sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=args)
            try:
                page = browser.new_page()
                page.goto(f"http://127.0.0.1:{server.port}/?token={TOKEN}")  # the page keeps it for its requests
                page.wait_for_function(REMOTE_PLAYING, timeout=90_000)
                failed = page.evaluate("document.getElementById('status').className === 'error'")
                assert not failed, page.evaluate("document.getElementById('status').textContent")
                before = page.evaluate("document.getElementById('remote').currentTime")
                for _ in range(8):  # the peer's counts and objects, as the page shows them, over 4 s
                    time.sleep(0.5)
                    status, body = _get(server.port, "/stats.json", headers={"Authorization": f"Bearer {TOKEN}"})
                    assert status == 200
                    seen.append(json.loads(body))
                after = page.evaluate("document.getElementById('remote').currentTime")
                size = page.evaluate("[document.getElementById('remote').videoWidth, "
                                     "document.getElementById('remote').videoHeight]")
                hud_out, hud_in = page.evaluate(HUD_GREY, "remote"), page.evaluate(HUD_GREY, "local")
                status_line = page.evaluate("document.getElementById('status').textContent")
            finally:
                browser.close()
        code, stderr = server.stop(signal.SIGINT)
    assert after > before + 1.0, "the annotated video does not advance"
    assert status_line == "connected"
    assert hud_out > hud_in + 0.25, f"no HUD in the video that came back ({hud_out:.2f} vs {hud_in:.2f})"
    [peer] = seen[-1]["peers"]
    assert peer["frames_sent"] >= 30 and peer["state"] == "connected" and peer["latency_ms"]["p50"] > 0
    assert peer["size"] == size
    if fake_camera is not None:  # the clip is 640x360; the bundled model finds the dog (or calls it a cat)
        assert size == [640, 360]
        assert any(set(s["peers"][0]["objects"]) & {"dog", "cat"} for s in seen if s["peers"]), seen
    assert code == 130, stderr
    assert "Traceback" not in stderr and "browser 1 connected" in stderr
    assert stderr.strip().splitlines()[-1].startswith("rtseg: stopped; served 1 connection"), stderr


def _self_signed(folder: Path) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now)
            .not_valid_after(now + datetime.timedelta(days=1)).sign(key, hashes.SHA256()))
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


@pytest.mark.slow
def test_tls_serves_the_page_over_https_then_sigterm(tmp_path: Path) -> None:
    cert, key = _self_signed(tmp_path)
    with serving("--tls", str(cert), str(key), "--quiet") as server:
        assert f"https://127.0.0.1:{server.port}/" in "".join(server.lines)
        status, page = _get(server.port, "/", tls=True)
        assert status == 200 and "getUserMedia" in page
        code, stderr = server.stop(signal.SIGTERM)
    assert code == 130 and "Traceback" not in stderr, stderr


def _one_error_line(proc: subprocess.CompletedProcess, *words: str) -> str:
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 2, proc.stderr
    assert len(lines) == 1 and lines[0].startswith("rtseg: error: ") and "Traceback" not in proc.stderr, proc.stderr
    assert all(word in lines[0] for word in words), lines[0]
    return lines[0]


def test_tls_with_a_missing_file_is_one_line(tmp_path: Path) -> None:
    cert, _ = _self_signed(tmp_path)
    _one_error_line(run_cli("serve", "--webrtc", "127.0.0.1:0", "--tls", str(cert), str(tmp_path / "nope.pem")),
                    "--tls", "nope.pem", "no such file")


def test_tls_with_files_that_are_no_certificate_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "cert.pem").write_text("not a certificate\n")
    (tmp_path / "key.pem").write_text("not a key\n")
    _one_error_line(run_cli("serve", "--webrtc", "127.0.0.1:0", "--tls", str(tmp_path / "cert.pem"),
                            str(tmp_path / "key.pem")), "--tls", "not a PEM certificate")


def test_a_port_in_use_is_one_line() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        _one_error_line(run_cli("serve", "--webrtc", f"127.0.0.1:{port}"), f"port {port} is in use")


@pytest.mark.parametrize(("args", "words"), [
    (["serve"], ["only --webrtc exists"]),
    (["serve", "--webrtc", "127.0.0.1:99999"], ["address 127.0.0.1:99999", "0..65535"]),
    (["serve", "--webrtc", "--max-peers", "0"], ["--max-peers 0", "1..64"]),
    (["serve", "--webrtc", "--stun", "stun.example.org"], ["--stun", "stun:HOST[:PORT]"]),
    (["serve", "--webrtc", "--conf", "2"], ["--conf 2"]),
])
def test_bad_options_are_one_line(args: list[str], words: list[str]) -> None:
    _one_error_line(run_cli(*args), *words)
