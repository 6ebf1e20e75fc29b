"""rtseg.scale.storage and rtseg.scale.live's naming: paths and fsspec URLs for a cluster run's sources and out
dir. The URL branches run against fsspec's in-memory file system (one process: real fsspec calls, no server);
tests/integration/test_ray_fsspec.py runs them against a real S3 server."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest

from rtseg.errors import SinkError, SourceError
from rtseg.scale import storage
from rtseg.scale.live import next_part, part_location
from rtseg.scale.plan import STATE_DIR, check_out_dir, is_complete, plan_tasks, write_marker


def test_urls_paths_and_streams_are_told_apart() -> None:
    assert [storage.is_url(s) for s in ("s3://b/a.mp4", "gs://b/a", "file:///x", "rtsp://c/1", "http://h/a.mp4",
                                        "/data/a.mp4", "0")] == [True, True, True, False, False, False, False]
    assert [storage.is_stream(s) for s in ("rtsp://c/1", "tcp://127.0.0.1:9", "0", "s3://b/a.mp4", "a.mp4")] == [
        True, True, True, False, False]
    assert storage.local_path("file:///data/my%20clip.mp4") == "/data/my clip.mp4"
    assert storage.join("s3://b/out/", "x", "a.mp4") == "s3://b/out/x/a.mp4"
    assert storage.join(Path("/out"), "a.mp4") == "/out/a.mp4"
    assert storage.tag_spec("s3://b/in/clip.avi") == "b/in/clip.avi"


def test_a_protocol_nobody_implements_is_one_line_naming_it() -> None:
    with pytest.raises(SourceError, match=r"^nosuch://b/a.mp4: no fsspec implementation of nosuch:// is known"):
        storage.expand_sources(["nosuch://b/a.mp4"])
    with pytest.raises(SinkError, match=r"^out_dir=nosuch://b/out: no fsspec implementation"):
        check_out_dir("nosuch://b/out")


@pytest.fixture
def memory() -> str:
    """A fresh prefix of fsspec's in-memory file system (an object store: writes land whole)."""
    return f"memory:///rtseg-test-{uuid.uuid4().hex[:8]}"  # the form fsspec gives back from a glob


def test_url_sources_are_checked_and_globs_listed(memory: str, tmp_path: Path) -> None:
    import fsspec

    fs = fsspec.filesystem("memory")
    for name in ("b.mp4", "a.mp4", "notes.txt"):
        fs.pipe_file(f"{memory}/in/{name}", b"x" * 10)
    assert storage.expand_sources([f"{memory}/in/*.mp4", "/local/c.mp4"]) == [
        f"{memory}/in/a.mp4", f"{memory}/in/b.mp4", "/local/c.mp4"]
    with pytest.raises(SourceError, match="no such file or object"):
        storage.expand_sources([f"{memory}/in/missing.mp4"])
    with pytest.raises(SourceError, match="no file matches"):
        storage.expand_sources([f"{memory}/in/*.mkv"])
    with pytest.raises(SourceError, match="a folder, not a video file"):
        storage.expand_sources([f"{memory}/in"])
    local, _ = storage.fetch(f"{memory}/in/a.mp4", tmp_path / "src")
    assert local == tmp_path / "src" / "a.mp4" and local.read_bytes() == b"x" * 10


def test_resume_works_against_a_url_out_dir(memory: str, tmp_path: Path) -> None:
    out = f"{memory}/out"
    check_out_dir(out)
    assert storage.listdir(f"{out}/{STATE_DIR}") == []  # the probe object was deleted
    task = plan_tasks([f"{memory}/in/a.mp4"], ["a"], out, key="k")[0]
    assert task.outputs == {"video": f"{out}/a.mp4", "jsonl": f"{out}/a.jsonl"}
    assert not is_complete(task, out)
    sizes = {}
    for kind, final in task.outputs.items():
        local = tmp_path / storage.name_of(final)
        local.write_bytes(b"y" * (7 if kind == "video" else 3))
        sizes[kind] = local.stat().st_size
        storage.publish(local, final)
        assert not local.exists() and storage.size(final) == sizes[kind]
    write_marker(task, out, sizes=sizes)
    assert json.loads(storage.read_bytes(f"{out}/{STATE_DIR}/a.done.json"))["sizes"] == sizes
    assert is_complete(task, out)
    assert not is_complete(plan_tasks([f"{memory}/in/a.mp4"], ["a"], out, key="other")[0], out)
    storage.remove(task.outputs["video"])
    assert not is_complete(task, out)


def test_live_parts_are_numbered_after_those_already_there(memory: str, tmp_path: Path) -> None:
    for out in (f"{memory}/out", str(tmp_path)):
        outputs = {"video": storage.join(out, "cam.mp4"), "jsonl": storage.join(out, "cam.jsonl")}
        assert next_part(out, outputs) == 0
        for name in ("cam_000.mp4", "cam_000.jsonl", "cam_001.jsonl", "camera_007.mp4", "cam_x.mp4"):
            storage.write_bytes(storage.join(out, name), b"z")
        assert next_part(out, outputs) == 2  # cam_001.jsonl counts; another source's parts do not
        assert part_location(outputs["video"], 2) == storage.join(out, "cam_002.mp4")
    task = plan_tasks(["rtsp://cam/1"], ["cam"], tmp_path, key="k", segment_s=2)[0]
    write_marker(task, tmp_path, parts={"cam_000.mp4": 1, "cam_000.jsonl": 1})
    assert is_complete(task, tmp_path)
    (tmp_path / "cam_000.mp4").write_bytes(b"longer")
    assert not is_complete(task, tmp_path)


@pytest.mark.parametrize(("sources", "out", "expected"), [
    (["memory://b/a.mp4"], "out", "memory://b/a.mp4: memory:// is each process's own memory"),
    (["a.mp4"], "memory://b/out", "out_dir=memory://b/out: memory:// is each process's own memory"),
])
def test_memory_urls_are_refused_for_a_cluster_run(sources: list[str], out: str, expected: str,
                                                   tmp_path: Path) -> None:
    from rtseg.errors import ConfigError
    from rtseg.scale.cluster import run_on_ray

    with pytest.raises(ConfigError, match="^" + expected.replace("(", r"\(")):
        run_on_ray(sources, out if "://" in out else tmp_path / out, address="127.0.0.1:1")
    assert list(tmp_path.iterdir()) == []  # refused before the out dir was made
