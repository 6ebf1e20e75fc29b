"""Where a cluster run reads and writes: a path on storage every node sees, or an fsspec URL (``s3://``,
``gs://``, ``az://``, ...) that the workers read and write themselves.

Every function takes either and branches on :func:`is_url`; fsspec, and the package of the URL's protocol
(s3fs, gcsfs, adlfs), is imported only when a URL is given. A URL source is fetched by its worker into a local
file, in chunks, before it runs (:func:`fetch`); an output is written locally, complete, then uploaded under its
final key (:func:`publish`): on an object store an object appears only once its upload is complete, so nobody
ever reads half of one; on other fsspec file systems (SFTP, HDFS, ...) it is uploaded under a temporary name and
renamed. Credentials and endpoints are those each process finds itself (the environment, ``~/.aws``, an
instance role; fsspec's ``FSSPEC_S3_*`` variables): the driver checks with its own, each worker uses its node's.
"""

from __future__ import annotations

import os
import posixpath
import shutil
import time
import urllib.parse
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rtseg.errors import RtsegError, SinkError, SourceError
from rtseg.sources.base import STREAM_SCHEMES

CHUNK_BYTES = 8 << 20  # a fetch copies this much at a time: memory stays flat whatever the video's size
# protocols whose put is atomic (the object appears once its upload completes): written under the final key
OBJECT_STORES = frozenset({"s3", "s3a", "gs", "gcs", "az", "abfs", "abfss", "adl", "oci", "oss", "memory"})
_GLOB = frozenset("*?[")


def scheme(spec: str) -> str:
    """``s3`` for ``s3://b/k``, ``simplecache::s3`` for a chained URL, ``""`` for a path."""
    return str(spec).split("://", 1)[0].lower() if "://" in str(spec) else ""


def is_url(spec: str | Path) -> bool:
    """An fsspec URL: a ``://`` whose scheme is not one of a stream's (``rtsp``, ``http``, ``tcp``, ...), which
    FFmpeg reads itself.

    Example:
        >>> is_url("s3://bucket/a.mp4"), is_url("rtsp://cam/live"), is_url("/data/a.mp4")
        (True, False, False)
    """
    found = scheme(str(spec))
    return bool(found) and found not in STREAM_SCHEMES


def is_stream(spec: str) -> bool:
    """A live source: a stream URL (``rtsp://``, ``http(s)://``, ``udp://``, ``tcp://``, ...) or a camera index."""
    text = str(spec).strip()
    return text.isdigit() or scheme(text) in STREAM_SCHEMES


def local_path(spec: str) -> str:
    """``file:///data/a.mp4`` -> ``/data/a.mp4`` (a path renames atomically; fsspec's local copy does not);
    anything else unchanged."""
    if scheme(spec) != "file":
        return spec
    parsed = urllib.parse.urlparse(spec)
    return urllib.parse.unquote(parsed.path) if parsed.netloc in ("", "localhost") else spec


def join(base: str | Path, *names: str) -> str:
    """``base/name`` for a path or a URL (a URL keeps its ``//``, which :class:`~pathlib.Path` would fold)."""
    if is_url(str(base)):
        return "/".join([str(base).rstrip("/"), *names])
    return str(Path(base, *names))


def name_of(location: str) -> str:
    """The last component of a path or URL: ``a.mp4`` for ``s3://b/in/a.mp4``."""
    return posixpath.basename(str(location).rstrip("/")) if is_url(location) else Path(location).name


def tag_spec(spec: str) -> str:
    """What :func:`rtseg.pipeline.assemble.source_tags` should name a source by: a URL's path (``b/in/a.mp4``
    is tagged ``a``, where a URL alone would be tagged ``stream``)."""
    return str(spec).split("://", 1)[1] if is_url(spec) else spec


def filesystem(url: str, *, error: Callable[[str], RtsegError] = SourceError, param: str = "") -> tuple[Any, str]:
    """fsspec's file system for ``url`` and the path in it.

    Raises:
        ``error``: fsspec, or the package of the URL's protocol, is not installed (the message says what to
            ``pip install``), or the protocol is unknown. ``param`` prefixes the message (``out_dir=``).
    """
    try:
        import fsspec
        from fsspec.registry import known_implementations
    except ImportError:
        raise error(f"{param}{url}: reading and writing URLs needs fsspec: pip install fsspec") from None
    for protocol in scheme(url).split("::"):
        try:
            fsspec.get_filesystem_class(protocol)
        except ImportError:
            package = known_implementations.get(protocol, {}).get("class", protocol).split(".")[0]
            raise error(f"{param}{url}: {protocol}:// URLs need {package}: pip install {package}") from None
        except ValueError:
            raise error(f"{param}{url}: no fsspec implementation of {protocol}:// is known; give a path, a stream URL "
                        f"({', '.join(s + '://' for s in STREAM_SCHEMES)}) or an fsspec URL such as s3://") from None
    try:
        return fsspec.core.url_to_fs(url)
    except Exception as exc:  # noqa: BLE001 - bad options for the protocol, a malformed URL: one line
        raise error(f"{param}{url}: {why(exc)}") from None


def why(exc: BaseException) -> str:
    """One line for what a file system raised: ``NoSuchBucket: The specified bucket does not exist``."""
    text = getattr(exc, "strerror", None) or str(exc).strip()
    text = text.splitlines()[0] if text else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def expand_sources(specs: list[str]) -> list[str]:
    """Each URL source checked, before any work: its protocol installed, the object there and readable; a URL
    with ``*``, ``?`` or ``[`` is a glob, replaced by the objects it matches (sorted). Paths and streams as given.

    Raises:
        SourceError: one line, naming the URL (``s3://b/a.mp4: no such object``).
    """
    expanded: list[str] = []
    for spec in specs:
        if not is_url(spec):
            expanded.append(spec)
            continue
        fs, path = filesystem(spec)
        if _GLOB & set(path):
            try:
                found = sorted(fs.unstrip_protocol(p) for p in fs.glob(path) if fs.isfile(p))
            except Exception as exc:  # noqa: BLE001 - credentials, a missing bucket: one line
                raise SourceError(f"{spec}: cannot list it ({why(exc)})") from None
            if not found:
                raise SourceError(f"{spec}: no file matches")
            expanded += found
            continue
        try:
            info = fs.info(path)
        except FileNotFoundError:
            raise SourceError(f"{spec}: no such file or object") from None
        except Exception as exc:  # noqa: BLE001
            raise SourceError(f"{spec}: cannot read it ({why(exc)})") from None
        if info.get("type") == "directory":
            raise SourceError(f"{spec}: a folder, not a video file; a glob ({spec.rstrip('/')}/*.mp4) lists its files")
        expanded.append(spec)
    return expanded


def read_bytes(location: str | Path) -> bytes:
    """The bytes at a path or URL (``OSError``, ``FileNotFoundError`` when absent)."""
    if is_url(str(location)):
        fs, path = filesystem(str(location))
        return fs.cat_file(path)
    return Path(location).read_bytes()


def size(location: str | Path) -> int:
    """The size in bytes of a file or object (``FileNotFoundError`` when absent)."""
    if is_url(str(location)):
        fs, path = filesystem(str(location))
        fs.invalidate_cache(path)  # s3fs answers from its listings: another process may have written since
        return int(fs.info(path)["size"])
    return os.path.getsize(location)


def write_bytes(location: str | Path, data: bytes) -> None:
    """Write a small file or object whole: a path through a temporary name renamed, a URL in one upload."""
    if is_url(str(location)):
        fs, path = filesystem(str(location), error=SinkError)
        if set(_protocols(fs)) & OBJECT_STORES:
            fs.pipe_file(path, data)
        else:
            temp = _temp_name(path)
            fs.pipe_file(temp, data)
            fs.mv(temp, path)
        return
    path = Path(location)
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".{path.name}.{os.getpid()}")
    temp.write_bytes(data)
    os.replace(temp, path)


def remove(location: str | Path) -> None:
    """Delete a file or object; nothing when it is absent."""
    if is_url(str(location)):
        fs, path = filesystem(str(location), error=SinkError)
        try:
            fs.rm_file(path)
        except FileNotFoundError:
            pass
        return
    Path(location).unlink(missing_ok=True)


def listdir(location: str | Path) -> list[str]:
    """The names in a folder or under a URL prefix; [] when there is none."""
    if is_url(str(location)):
        fs, path = filesystem(str(location), error=SinkError)
        fs.invalidate_cache(path)
        try:
            return [posixpath.basename(p.rstrip("/")) for p in fs.ls(path, detail=False)]
        except FileNotFoundError:
            return []
    try:
        return os.listdir(location)
    except FileNotFoundError:
        return []


def publish(local: Path, location: str | Path) -> float:
    """Put a complete local file under its final name: renamed when ``location`` is a path (the same file
    system: atomic), uploaded when it is a URL (under the final key on an object store, where the object
    appears only once complete; else under a temporary name, then renamed). The local file is gone after.
    Returns the seconds it took."""
    t0 = time.perf_counter_ns()
    if is_url(str(location)):
        fs, path = filesystem(str(location), error=SinkError)
        if set(_protocols(fs)) & OBJECT_STORES:
            fs.put_file(str(local), path)
        else:
            temp = _temp_name(path)
            fs.put_file(str(local), temp)
            fs.mv(temp, path)
        Path(local).unlink()
    else:
        Path(location).parent.mkdir(parents=True, exist_ok=True)
        try:
            os.replace(local, location)
        except OSError:  # another file system (a staging folder elsewhere): copied beside, then renamed
            temp = Path(location).with_name(f".{Path(location).name}.{os.getpid()}")
            shutil.copyfile(local, temp)
            os.replace(temp, location)
            Path(local).unlink()
    return (time.perf_counter_ns() - t0) / 1e9


def fetch(url: str, folder: Path) -> tuple[Path, float]:
    """Copy the object at ``url`` into ``folder`` (same name), :data:`CHUNK_BYTES` at a time: (the local file,
    seconds taken).

    Raises:
        SourceError: it cannot be read (gone since the driver checked it, no permission on this node).
    """
    t0 = time.perf_counter_ns()
    fs, path = filesystem(url)
    folder.mkdir(parents=True, exist_ok=True)
    local = folder / (name_of(url) or "source")
    try:
        with fs.open(path, "rb") as src, open(local, "wb") as dst:
            shutil.copyfileobj(src, dst, CHUNK_BYTES)
    except FileNotFoundError:
        raise SourceError(f"{url}: no such file or object") from None
    except Exception as exc:  # noqa: BLE001 - credentials, the network: this source fails, the others go on
        raise SourceError(f"{url}: cannot fetch it ({why(exc)})") from None
    return local, (time.perf_counter_ns() - t0) / 1e9


def _protocols(fs: Any) -> tuple[str, ...]:
    protocol = fs.protocol
    return (protocol,) if isinstance(protocol, str) else tuple(protocol)


def _temp_name(path: str) -> str:
    head, _, name = path.rpartition("/")
    return f"{head}/.{name}.partial.{os.getpid()}" if head else f".{name}.partial.{os.getpid()}"
