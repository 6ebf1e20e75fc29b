"""rtseg.scale.plan: what a cluster run decides without Ray (order, resume, resources, addresses, tables)."""

from __future__ import annotations

import doctest
import json
from pathlib import Path

import pytest

import rtseg.scale.plan
from rtseg.errors import ConfigError, SinkError
from rtseg.scale.plan import (
    STATE_DIR,
    ClusterError,
    SourceResult,
    check_out_dir,
    format_tables,
    is_complete,
    looks_like_address,
    node_table,
    options_key,
    parse_address,
    plan_tasks,
    plan_workers,
    write_marker,
)


def test_plan_module_examples_run(tmp_path: Path) -> None:
    finder, runner = doctest.DocTestFinder(), doctest.DocTestRunner()
    for test in finder.find(rtseg.scale.plan, globs={**vars(rtseg.scale.plan), "tmp": tmp_path}):
        runner.run(test)
    result = runner.summarize(verbose=False)
    assert result.failed == 0 and result.attempted > 0


def test_long_sources_go_first_and_ties_keep_the_command_lines_order(tmp_path: Path) -> None:
    tasks = plan_tasks(["a", "b", "c", "d"], ["a", "b", "c", "d"], tmp_path, frames=[10, 300, 0, 10])
    assert [t.tag for t in tasks] == ["b", "a", "d", "c"]
    assert tasks[0].outputs == {"video": str(tmp_path / "b.mp4"), "jsonl": str(tmp_path / "b.jsonl")}


def _finished(tmp_path: Path, key: str = "k1"):  # noqa: ANN202
    check_out_dir(tmp_path)
    task = plan_tasks(["/v/a.mp4"], ["a"], tmp_path, key=key)[0]
    for path in task.outputs.values():
        Path(path).write_bytes(b"x" * 10)
    write_marker(task, tmp_path)
    return task


def test_a_source_is_complete_only_with_its_marker_same_options_and_untouched_outputs(tmp_path: Path) -> None:
    task = _finished(tmp_path)
    assert is_complete(task, tmp_path)
    assert not is_complete(plan_tasks(["/v/a.mp4"], ["a"], tmp_path, key="other options")[0], tmp_path)
    assert not is_complete(plan_tasks(["/w/a.mp4"], ["a"], tmp_path, key="k1")[0], tmp_path)  # another source
    Path(task.outputs["video"]).write_bytes(b"shorter")  # replaced since
    assert not is_complete(task, tmp_path)
    Path(task.outputs["video"]).unlink()
    assert not is_complete(task, tmp_path)


def test_outputs_without_a_marker_are_not_complete(tmp_path: Path) -> None:
    task = _finished(tmp_path)
    (tmp_path / STATE_DIR / "a.done.json").unlink()  # a worker died between the renames and the marker
    assert not is_complete(task, tmp_path)
    (tmp_path / STATE_DIR / "a.done.json").write_text("{not json")
    assert not is_complete(task, tmp_path)


def test_options_key_changes_with_any_option() -> None:
    assert options_key("m.pt", {"conf": 0.25}) == options_key("m.pt", {"conf": 0.25})
    assert len({options_key("m.pt", {"conf": 0.25}), options_key("m.pt", {"conf": 0.3}),
                options_key("n.pt", {"conf": 0.25})}) == 3


def test_an_out_dir_that_cannot_be_written_is_one_sink_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(SinkError, match=r"^out_dir=.*file/out: cannot write there"):
        check_out_dir(blocker / "out")


@pytest.mark.parametrize(("text", "env", "expected"), [
    (None, {}, None), ("", {"RAY_ADDRESS": "10.1.2.3:6379"}, "10.1.2.3:6379"), ("local", {"RAY_ADDRESS": "h:1"}, None),
    ("auto", {}, "auto"), ("ray://head:10001", {}, "ray://head:10001"), ("head.example:6379", {}, "head.example:6379"),
])
def test_addresses(text: str | None, env: dict[str, str], expected: str | None) -> None:
    assert parse_address(text, env) == expected


@pytest.mark.parametrize("text", ["head", "http://head:6379", "a b:1", "head:port"])
def test_a_malformed_address_is_a_config_error(text: str) -> None:
    with pytest.raises(ConfigError, match=r"^ray="):
        parse_address(text, {})


def test_a_word_after_ray_is_an_address_only_when_it_looks_like_one_and_is_no_file(tmp_path: Path) -> None:
    assert looks_like_address("10.0.0.1:6379") and looks_like_address("auto")
    assert not looks_like_address("clip.mp4") and not looks_like_address(str(tmp_path))
    odd = tmp_path / "cam:1"
    odd.write_text("")
    assert not looks_like_address(str(odd))


def test_workers_fit_the_resources_and_the_sources() -> None:
    nodes = [{"CPU": 16, "GPU": 2}, {"CPU": 16, "GPU": 2}]
    assert plan_workers(nodes, sources=10, workers=None, cpus_per_worker=1, gpus_per_worker=1) == 4
    assert plan_workers(nodes, sources=10, workers=None, cpus_per_worker=1, gpus_per_worker=0.5) == 8
    assert plan_workers(nodes, sources=3, workers=None, cpus_per_worker=1, gpus_per_worker=1) == 3
    assert plan_workers(nodes, sources=10, workers=None, cpus_per_worker=4, gpus_per_worker=0) == 8
    assert plan_workers(nodes, sources=1, workers=2, cpus_per_worker=1, gpus_per_worker=1) == 2


@pytest.mark.parametrize(("kwargs", "message"), [
    (dict(workers=None, cpus_per_worker=1, gpus_per_worker=4), r"^gpus_per_worker=4: the cluster has 2 GPUs"),
    (dict(workers=3, cpus_per_worker=1, gpus_per_worker=1), r"^workers=3: .* at most 2"),
    (dict(workers=None, cpus_per_worker=64, gpus_per_worker=0), r"^no node has room for one worker"),
])
def test_requests_the_cluster_cannot_hold_are_refused(kwargs: dict, message: str) -> None:
    with pytest.raises(ClusterError, match=message):
        plan_workers([{"CPU": 8, "GPU": 1}, {"CPU": 8, "GPU": 1}], sources=5, **kwargs)


def test_node_table_and_tables() -> None:
    stages = {"infer": {"p50": 10.0, "p95": 20.0}, "decode": {"p50": 1.0, "p95": 2.0}}
    results = [SourceResult("a", "a.mp4", "ok", frames=100, elapsed_s=2.0, fps=50, stages_ms=stages, node="n1"),
               SourceResult("b", "b.mp4", "ok", frames=50, elapsed_s=2.0, fps=25, node="n1",
                            stages_ms={"infer": {"p50": 30.0, "p95": 40.0}}),
               SourceResult("c", "c.mp4", "failed", node="n2", error="cannot decode c.mp4"),
               SourceResult("d", "d.mp4", "skipped")]
    rows = node_table(results)
    assert [(r["node"], r["sources"], r["failed"], r["frames"], r["fps"]) for r in rows] == [
        ("n1", 2, 0, 150, 37.5), ("n2", 0, 1, 0, 0.0)]
    assert rows[0]["stages_ms"]["infer"] == {"p50": 20.0, "p95": 40.0}
    text = format_tables(results, rows)
    assert "cannot decode c.mp4" in text and "skipped" in text and "infer 20.0/40.0" in text
    json.dumps(rows)  # goes into cluster_summary.json as it is
