"""TensorRT runtime helpers shared by building (:mod:`rtseg.exporters.engine`) and running
(:mod:`rtseg.backends.trt_backend`) engines: the import with a one-line error, the one logger of the process,
and the GPU identity an engine is built for.

Importing this module needs neither TensorRT nor CUDA (nor PyTorch); the functions import them when called.
"""

from __future__ import annotations

import functools
import logging
import threading
from typing import Any

from rtseg.errors import BackendUnavailable

LOGGER = logging.getLogger(__name__)

NO_TENSORRT = ("TensorRT is needed to build and run engines: install the NVIDIA TensorRT Python package "
               "(pip install tensorrt) on a machine with an NVIDIA GPU")


def import_tensorrt() -> Any:
    """``import tensorrt``, or a one-line :class:`BackendUnavailable`."""
    try:
        import tensorrt as trt
    except ImportError:
        raise BackendUnavailable(NO_TENSORRT) from None
    return trt


class _TrtLog:
    """Forwards TensorRT's messages to Python logging and remembers the last error (for one-line reports)."""

    def __init__(self) -> None:
        self.last_error = ""
        self._lock = threading.Lock()

    def log(self, severity: Any, msg: str, trt: Any) -> None:
        sev = trt.ILogger.Severity
        if severity in (sev.INTERNAL_ERROR, sev.ERROR):
            with self._lock:
                self.last_error = " ".join(str(msg).split())[:300]
            LOGGER.error("TensorRT: %s", msg)
        elif severity == sev.WARNING:
            LOGGER.warning("TensorRT: %s", msg)
        elif severity == sev.INFO:
            LOGGER.debug("TensorRT: %s", msg)

    def take_error(self) -> str:
        with self._lock:
            msg, self.last_error = self.last_error, ""
        return msg


@functools.lru_cache(maxsize=1)
def trt_logger() -> Any:
    """The one TensorRT logger of this process (builders and runtimes must share one), with ``.sink``."""
    trt = import_tensorrt()
    sink = _TrtLog()

    class Logger(trt.ILogger):
        def __init__(self) -> None:
            trt.ILogger.__init__(self)
            self.sink = sink

        def log(self, severity, msg):  # noqa: ANN001, ANN202 - TensorRT callback signature
            sink.log(severity, msg, trt)

    return Logger()


def gpu_identity(device: int | None = None) -> tuple[str, str]:
    """(name, compute capability such as ``"9.0"``) of a CUDA device (default: the current one)."""
    import torch

    index = torch.cuda.current_device() if device is None else device
    major, minor = torch.cuda.get_device_capability(index)
    return torch.cuda.get_device_name(index), f"{major}.{minor}"
