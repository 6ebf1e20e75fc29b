"""``rtseg serve --webrtc``: a page that sends the browser's camera over WebRTC and shows it back segmented.

Options in, the model loaded (:func:`rtseg.load_model`), :class:`rtseg.serve.webrtc.WebRtcService` served by
uvicorn on a thread of its own until Ctrl-C or SIGTERM, then every connection closed and exit code 130.
Errors are one line and exit code 2: a port in use, a missing certificate, bad weights, an out-of-range option.
"""

from __future__ import annotations

import re
import ssl
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from rtseg.cli.common import TRUST_WEIGHTS_HELP, apply_trust, fail, setup_logging
from rtseg.cli.edge import guard
from rtseg.cli.options import ranged
from rtseg.cli.run import StopOnSignal
from rtseg.config import check_options
from rtseg.errors import ConfigError, RtsegError

DEFAULT_ADDRESS = "127.0.0.1:8080"
MAX_PEERS = 64  # each browser runs its own model pipeline: more than this is a mistake on any machine
_STUN = re.compile(r"stuns?:[A-Za-z0-9.\-\[\]:]+")  # stun:HOST[:PORT], as browsers and aiortc take it
_LOCAL = ("127.0.0.1", "localhost", "::1")


def check_tls(tls: tuple[Path, Path] | None) -> tuple[str, str] | tuple[None, None]:
    """``--tls CERT KEY``: both files readable and a certificate with its key, before anything loads."""
    if tls is None:
        return None, None
    cert, key = tls
    for what, path in (("certificate", cert), ("key", key)):
        if not path.is_file():
            raise ConfigError(f"--tls {cert} {key}: {what} {path}: no such file")
        try:
            path.open("rb").close()
        except OSError as exc:
            raise ConfigError(f"--tls {cert} {key}: cannot read the {what} {path}: {exc.strerror or exc}") from None
    try:  # a password callback that gives none: an encrypted key fails here rather than prompting
        ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(cert, key, password=lambda: b"")
    except (ssl.SSLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", None) or str(exc).splitlines()[0]
        raise ConfigError(f"--tls {cert} {key}: not a PEM certificate and its unencrypted private key "
                          f"({reason})") from None
    return str(cert), str(key)


def check_stun(url: str | None) -> list[str]:
    if not url:
        return []
    if not _STUN.fullmatch(url):
        raise ConfigError(f"--stun {url!r}: expected stun:HOST[:PORT], e.g. stun:stun.l.google.com:19302")
    return [url]


def serve(
    address: Annotated[Optional[str], typer.Argument(
        help="[HOST:]PORT to listen on. Default: 127.0.0.1:8080, this machine only (browsers give the camera "
             "to http://127.0.0.1 pages); 0.0.0.0:8443 with --tls for browsers on other machines.",
        show_default=False, metavar="ADDRESS")] = None,
    webrtc: Annotated[bool, typer.Option("--webrtc", help="Serve the WebRTC webcam page: the browser's camera "
                                         "in, the annotated video back (the only mode for now).")] = False,
    model: Annotated[str, typer.Option("--model", "-m", help="YOLO-seg weights (.pt), architecture config "
                                       "(.yaml) or exported model (.onnx, .engine); or a semantic model. Default: "
                                       "rtseg's bundled nano model.")] = "",
    conf: Annotated[float, typer.Option(help=ranged("conf", "Minimum detection score."))] = 0.25,
    imgsz: Annotated[Optional[int], typer.Option(help=ranged("imgsz", "Inference size (longer side). Default: "
                                                  "the model's own. Larger finds smaller objects, slower."))] = None,
    classes: Annotated[Optional[str], typer.Option(help="Keep only these classes: ids or names, "
                                                    "comma-separated ('0,16' or 'person,dog'). Default: all.")] = None,
    device: Annotated[str, typer.Option(help="auto (a CUDA GPU when there is one, else the CPU), cpu, cuda, "
                                        "cuda:N or a GPU index.")] = "auto",
    backend: Annotated[str, typer.Option(help="auto (from the model file), torch, onnxruntime or tensorrt.")] = "auto",
    tls: Annotated[Optional[tuple[Path, Path]], typer.Option(
        "--tls", metavar="CERT KEY", help="Serve HTTPS with this PEM certificate and key: browsers give the "
        "camera only to https:// pages, or to http://localhost on their own machine.", show_default=False)] = None,
    serve_token: Annotated[Optional[str], typer.Option(help="Every request must carry this token (?token=... "
                                                       "once; the page keeps it). Default: "
                                                       "$RTSEG_SERVE_TOKEN.")] = None,
    stun: Annotated[Optional[str], typer.Option(help="STUN server for both ends, stun:HOST[:PORT]: needed only "
                                                "across NAT (browser and server on different networks). Default: "
                                                "none; on one machine or a LAN direct addresses suffice.")] = None,
    max_peers: Annotated[int, typer.Option(help=f"Browsers served at once, each with its own model run; one "
                                           f"more is told the server is busy (503). (range: 1..{MAX_PEERS})")] = 4,
    hud: Annotated[bool, typer.Option("--hud/--no-hud", help="Draw frame index, FPS and object count on the "
                                      "video.")] = True,
    trust: Annotated[bool, typer.Option("--trust-weights", help=TRUST_WEIGHTS_HELP)] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print only the address, not who connects.")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log what the server and WebRTC do.")] = False,
) -> None:
    """Serve a page that sends the browser's camera over WebRTC and shows it back segmented.

    The model runs here (a GPU box, say), the camera is the browser's. /stats.json: per-browser FPS and latency.

    \b
    Examples:
      rtseg serve --webrtc                              (open http://127.0.0.1:8080/ on this machine)
      rtseg serve --webrtc 0.0.0.0:8443 --tls cert.pem key.pem --serve-token s3cret   (browsers on the LAN)
      rtseg serve --webrtc 0.0.0.0:8443 --tls cert.pem key.pem --stun stun:stun.l.google.com:19302   (across NAT)
    """
    setup_logging(verbose)
    apply_trust(trust)
    if not webrtc:
        raise fail("only --webrtc exists for now: rtseg serve --webrtc [HOST:]PORT")
    # every option checked before anything loads
    check_options(conf=conf, imgsz=imgsz, classes=classes)
    if not 1 <= max_peers <= MAX_PEERS:
        raise fail(f"--max-peers {max_peers}: expected 1..{MAX_PEERS}")
    certfile, keyfile = check_tls(tls)
    ice_servers = check_stun(stun)
    try:
        from rtseg.serve import webrtc as service_module
    except ModuleNotFoundError as exc:
        raise fail(f"rtseg serve --webrtc needs {exc.name or 'aiortc'}: pip install 'rtseg[webrtc]'") from None
    from rtseg.serve.access import resolve_token
    from rtseg.serve.server import WebServer, parse_address

    _quiet_webrtc_logs(verbose)
    try:  # bound now: a port in use is one line before the model loads
        host, port = parse_address(address or DEFAULT_ADDRESS, param="address")
        server = WebServer(None, host, port, certfile=certfile, keyfile=keyfile, param="address")
    except ConfigError as exc:
        raise fail(str(exc).replace("address=", "address ", 1)) from None
    token = resolve_token(serve_token)
    stopper = StopOnSignal()
    try:
        with stopper:
            seg = _load(model, conf=conf, imgsz=imgsz, classes=classes, device=device, backend=backend)
            service = service_module.WebRtcService(seg, token=token, ice_servers=ice_servers, hud=hud,
                                                   max_peers=max_peers, on_peer=None if quiet else _announce)
            server.app = service.app  # the socket was bound above; the app is served from here on
            stopper.started()
            server.start()
            url = server.url + (f"?token={token}" if token else "")
            typer.echo(f"rtseg: serving the webcam page at {url} (open it in a browser; Ctrl-C stops)", err=True)
            if host not in _LOCAL and certfile is None:
                typer.echo("rtseg: warning: browsers give the camera only to https:// pages or to localhost: for "
                           "browsers on other machines serve with --tls CERT KEY", err=True)
            while not stopper.event.wait(0.5):
                pass
            service.close()
            server.stop()
    except RtsegError as exc:
        server.stop()
        raise fail(str(exc)) from None
    except KeyboardInterrupt:
        server.stop()
        if not stopper.writing:
            typer.echo("rtseg: stopped before serving", err=True)
            raise typer.Exit(130) from None
        raise fail("aborted", 130) from None
    if not quiet:
        typer.echo(f"rtseg: stopped; served {service.served} connection{'s' * (service.served != 1)}, "
                   f"{service.frames_served} frames", err=True)
    raise typer.Exit(130)


def _load(model: str, **options: Any) -> Any:
    import rtseg

    return rtseg.load_model(model or None, **options)


def _announce(event: str, peer: Any, reason: str) -> None:
    """A browser came or went (not with --quiet)."""
    if event == "connected":
        typer.echo(f"rtseg: browser {peer.id} connected", err=True)
        return
    stats = peer.stats()
    typer.echo(f"rtseg: browser {peer.id} left after {stats['frames_sent']} frames "
               f"(server latency p50 {stats['latency_ms']['p50']:.0f} ms): {reason}", err=True)


def _quiet_webrtc_logs(verbose: bool) -> None:
    """aiortc, aioice and uvicorn log through the root logger, which prints warnings bare; through rtseg's
    handler instead, and only with --verbose (a browser that leaves abruptly is no warning of ours)."""
    import logging

    handlers = logging.getLogger("rtseg").handlers
    for name in ("aiortc", "aioice", "uvicorn", "uvicorn.error"):
        logger = logging.getLogger(name)
        logger.handlers[:] = list(handlers)
        logger.setLevel(logging.INFO if verbose else logging.ERROR)
        logger.propagate = False


def register(app: typer.Typer) -> None:
    app.command()(guard("serving")(serve))
