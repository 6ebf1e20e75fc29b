"""``rtseg run --ray`` with sources and the out dir in S3: the real CLI, a real Ray head on this machine, and a real
S3 server (moto's, on 127.0.0.1) that the driver and the workers reach through the standard AWS variables; a live
stream (FFmpeg on 127.0.0.1) beside the files, its parts uploaded as they are finished.

The Ray head is started with those variables, as a cluster node would have its own credentials: the workers
inherit them from it, not from the driver. The clips are uploaded with boto3 and the outputs read back with it
(not with rtseg's own code), and decoded with OpenCV.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import count_frames, free_port, run_cli, write_video
from tests.support import ray_head as start_ray_head

pytest.importorskip("ray", reason="needs Ray (pip install -e '.[ray]')")
pytest.importorskip("s3fs", reason="needs s3fs for s3:// URLs (pip install -e '.[dev]')")
pytest.importorskip("moto.server", reason="needs moto[server] for a local S3 server (pip install -e '.[dev]')")
pytestmark = pytest.mark.slow
FRAMES = {"a": 24, "b": 18}
FAST = ("--device", "cpu", "--imgsz", "160")
BUCKET = "rtseg-test"


@pytest.fixture(scope="module")
def s3() -> dict[str, str]:  # noqa: ANN201
    """moto's S3 server on a free port of 127.0.0.1, a bucket in it, and the environment that points AWS clients
    (botocore, hence s3fs) at it; this process's environment too, which the CLI's subprocesses inherit."""
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    env = {"AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}", "AWS_ACCESS_KEY_ID": "testing",
           "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true"}
    with pytest.MonkeyPatch.context() as patch:
        for name, value in env.items():
            patch.setenv(name, value)
        for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "FSSPEC_S3", "FSSPEC_S3_ENDPOINT_URL"):
            patch.delenv(name, raising=False)
        _client().create_bucket(Bucket=BUCKET)
        try:
            yield env
        finally:
            server.stop()


def _client():  # noqa: ANN202 - a boto3 S3 client of the moto server (the environment set by the fixture)
    import boto3

    return boto3.client("s3", endpoint_url=os.environ["AWS_ENDPOINT_URL"])


def _keys(prefix: str) -> dict[str, dict]:
    listing = _client().list_objects_v2(Bucket=BUCKET, Prefix=prefix)
    return {o["Key"].removeprefix(prefix): o for o in listing.get("Contents", [])}


@pytest.fixture(scope="module")
def ray_head(s3: dict[str, str]) -> Iterator[str]:
    """A Ray head on 127.0.0.1 whose workers have the S3 server's variables (:func:`tests.support.ray_head`)."""
    with start_ray_head(env=s3) as address:
        yield address


@pytest.fixture(scope="module")
def sources(s3: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    folder = tmp_path_factory.mktemp("clips")
    urls = []
    for i, (tag, n) in enumerate(FRAMES.items()):
        clip = write_video(folder / f"{tag}.avi", frames=n, size_wh=(160, 120), seed=i)
        _client().upload_file(str(clip), BUCKET, f"in/{tag}.avi")
        urls.append(f"s3://{BUCKET}/in/{tag}.avi")
    return urls


def test_s3_sources_give_complete_outputs_in_s3_and_a_rerun_skips_them(ray_head: str, sources: list[str],
                                                                      tmp_path: Path) -> None:
    from tests.streams_support import StreamServer

    out = f"s3://{BUCKET}/out"
    loop = write_video(tmp_path / "loop.avi", frames=30, size_wh=(160, 120), fps=15)
    with StreamServer(loop, "tcp") as server:  # 30 frames of a live stream, in parts of 1 s
        args = [*sources, server.url, "--out-dir", out, *FAST, "--segment", "1s", "--max-frames", "30"]
        result = run_cli("run", "--ray", ray_head, *args, timeout=240)
    assert result.returncode == 0, result.stderr
    assert f"wrote {out}/cluster_summary.json" in result.stderr
    keys = _keys("out/")
    parts = sorted(k for k in keys if k.startswith("stream_"))
    # the outputs, their markers and the summary; no probe, attempt folder or temporary object left behind
    assert sorted(set(keys) - set(parts)) == sorted([*(f"{t}.{ext}" for t in FRAMES for ext in ("mp4", "jsonl")),
                                                     *(f".rtseg-ray/{t}.done.json" for t in [*FRAMES, "stream"]),
                                                     "cluster_summary.json"])
    assert len(parts) >= 4 and parts == [f"stream_{i:03d}.{ext}" for i in range(len(parts) // 2)
                                         for ext in ("jsonl", "mp4")]
    streamed = []
    for name in parts[::2]:  # each part whole: its video holds its records' frames
        video = tmp_path / name.replace(".jsonl", ".mp4")
        _client().download_file(BUCKET, f"out/{video.name}", str(video))
        body = _client().get_object(Bucket=BUCKET, Key=f"out/{name}")["Body"].read().decode()
        streamed += [json.loads(line)["frame"] for line in body.splitlines()]
        assert count_frames(video) == (len(body.splitlines()), (120, 160))
    for tag, n in FRAMES.items():
        video = tmp_path / f"{tag}.mp4"
        _client().download_file(BUCKET, f"out/{tag}.mp4", str(video))
        assert count_frames(video) == (n, (120, 160))
        body = _client().get_object(Bucket=BUCKET, Key=f"out/{tag}.jsonl")["Body"].read().decode()
        records = [json.loads(line) for line in body.splitlines()]
        assert [r["frame"] for r in records] == list(range(n))
        assert {r["source"] for r in records} == {f"s3://{BUCKET}/in/{tag}.avi"}  # the URL, not the worker's copy
    summary = json.loads(_client().get_object(Bucket=BUCKET, Key="out/cluster_summary.json")["Body"].read())
    assert [(s["tag"], s["status"], s["frames"]) for s in summary["sources"][:2]] == [
        (t, "ok", n) for t, n in FRAMES.items()]
    assert all(s["fetch_s"] > 0 and s["upload_s"] > 0 for s in summary["sources"][:2])
    live = summary["sources"][2]
    assert (live["tag"], live["status"], sorted(live["segments"])) == ("stream", "ok", parts)
    assert len(streamed) == live["frames"] and streamed == sorted(set(streamed)) and streamed[-1] <= 29

    # the files as a glob, and the stream (over, so not even opened): all complete in the bucket, so nothing runs
    # and nothing is rewritten
    before = {k: (v["ETag"], v["LastModified"]) for k, v in keys.items() if not k.startswith("cluster")}
    again = run_cli("run", "--ray", ray_head, f"s3://{BUCKET}/in/*.avi", server.url, "--out-dir", out + "/",
                    *args[5:], timeout=120)
    assert again.returncode == 0, again.stderr
    assert "3 sources already complete" in again.stderr
    assert {k: (v["ETag"], v["LastModified"]) for k, v in _keys("out/").items() if not k.startswith("cluster")} \
        == before
    summary = json.loads(_client().get_object(Bucket=BUCKET, Key="out/cluster_summary.json")["Body"].read())
    assert [s["status"] for s in summary["sources"]] == ["skipped", "skipped", "skipped"]


def _missing_package_protocol() -> tuple[str, str]:
    """A protocol fsspec knows whose package is not installed here, and that package's name."""
    import importlib.util

    from fsspec.registry import known_implementations

    for protocol in ("gs", "az", "oci", "dropbox", "webdav"):
        package = known_implementations[protocol]["class"].split(".")[0]
        if importlib.util.find_spec(package) is None:
            return protocol, package
    pytest.skip("every candidate protocol's package is installed")


@pytest.mark.parametrize("case", ["missing source", "protocol not installed", "bucket not there", "split"])
def test_bad_urls_are_one_line_before_any_work(s3: dict[str, str], sources: list[str], case: str) -> None:
    """Each fails before Ray is joined: the address given is one nothing listens at, so a check made after
    joining would fail on it instead."""
    out, extra = f"s3://{BUCKET}/bad-{case.replace(' ', '-')}", []
    source = sources[0]
    if case == "missing source":
        source, expected = f"s3://{BUCKET}/in/nope.avi", f"rtseg: error: s3://{BUCKET}/in/nope.avi: no such file"
    elif case == "protocol not installed":
        protocol, package = _missing_package_protocol()
        source = f"{protocol}://bucket/a.mp4"
        expected = f"rtseg: error: {source}: {protocol}:// URLs need {package}: pip install {package}"
    elif case == "bucket not there":
        out, expected = "s3://no-such-bucket-here/out", "rtseg: error: --out-dir s3://no-such-bucket-here/out: " \
                                                        "cannot write there"
    else:
        extra, expected = ["--split", "1s"], "rtseg: error: --split 1s: not with URLs"
    started = time.monotonic()
    result = run_cli("run", "--ray", f"127.0.0.1:{free_port()}", source, "--out-dir", out, *FAST, *extra,
                     timeout=60)
    assert result.returncode == 2, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and result.stderr.startswith(expected), result.stderr
    assert _keys(out.removeprefix(f"s3://{BUCKET}/")) == {} or case == "bucket not there"
    assert time.monotonic() - started < 30
