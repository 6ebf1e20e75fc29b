"""Put this folder on PYTHONPATH to forbid network access in a subprocess (loopback still works)."""

import socket

_connect = socket.socket.connect


def _guarded(self, address):  # noqa: ANN001, ANN202
    host = address[0] if isinstance(address, tuple) else str(address)
    loopback = isinstance(host, str) and (host.startswith("127.") or host in ("localhost", "::1"))
    if loopback or self.family == socket.AF_UNIX:
        return _connect(self, address)
    raise OSError(f"network access blocked in tests: {address}")


socket.socket.connect = _guarded
_getaddrinfo = socket.getaddrinfo


def _no_dns(host, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
    if host in (None, "localhost") or str(host).startswith("127.") or host == "::1":
        return _getaddrinfo(host, *args, **kwargs)
    raise socket.gaierror(f"DNS blocked in tests: {host}")


socket.getaddrinfo = _no_dns
