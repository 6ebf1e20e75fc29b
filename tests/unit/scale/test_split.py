"""rtseg.scale.split: cutting a video into parts and joining their JSONL with track ids that continue across
cuts (plain Python, no Ray); rtseg.scale.bench's worker counts."""

from __future__ import annotations

import doctest
import json
from pathlib import Path

import pytest

import rtseg.scale.bench
import rtseg.scale.live
import rtseg.scale.split
import rtseg.scale.storage
from rtseg.errors import ConfigError
from rtseg.scale.plan import SourceResult, SourceTask, format_tables
from rtseg.scale.split import join_jsonl, match_tracks, parse_split, plan_parts


@pytest.mark.parametrize("module", [rtseg.scale.split, rtseg.scale.bench, rtseg.scale.storage, rtseg.scale.live])
def test_module_examples_run(module: object) -> None:
    finder, runner = doctest.DocTestFinder(), doctest.DocTestRunner()
    for test in finder.find(module, globs=dict(vars(module))):
        runner.run(test)
    result = runner.summarize(verbose=False)
    assert result.failed == 0 and result.attempted > 0


@pytest.mark.parametrize(("text", "seconds"), [("60s", 60.0), ("2m", 120.0), ("90", 90.0), ("1.5m", 90.0)])
def test_split_reads_durations(text: str, seconds: float) -> None:
    assert parse_split(text) == seconds


@pytest.mark.parametrize(("text", "message"), [("abc", "split=abc: expected a duration"),
                                               ("0.5", "split=0.5: expected at least 1 second"),
                                               ("-3s", "split=-3s: expected a duration")])
def test_a_bad_split_names_the_parameter(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_split(text)


TASK = SourceTask(tag="v", source="/d/v.mp4", outputs={}, key="k")


def test_parts_cover_every_frame_once_and_a_short_tail_joins_the_last_part(tmp_path: Path) -> None:
    parts = plan_parts(TASK, tmp_path, frames=305, fps=25.0, split_s=4, track=False)
    assert [(p.start, p.stop, p.lead, p.frames) for p in parts] == [(0, 100, 0, 100), (100, 200, 0, 100),
                                                                    (200, None, 0, 105)]
    assert len({p.key for p in parts}) == 3 and all(p.part_of == "v" and "lead" not in p.outputs for p in parts)
    assert plan_parts(TASK, tmp_path, frames=100, fps=25.0, split_s=4, track=False) == []  # one part: runs whole


def test_tracked_parts_start_a_second_early_and_max_frames_ends_the_last(tmp_path: Path) -> None:
    parts = plan_parts(TASK, tmp_path, frames=1000, fps=10.0, split_s=3, track=True, max_frames=75)
    assert [(p.start, p.stop, p.lead) for p in parts] == [(0, 30, 0), (30, 60, 10), (60, 75, 10)]
    assert [sorted(p.outputs) for p in parts] == [["jsonl", "video"], ["jsonl", "lead", "video"]] + [
        ["jsonl", "lead", "video"]]


def test_tracks_match_by_class_and_overlap_one_to_one() -> None:
    lead = [{"frame": f, "tracks": [[1, 0, 0, 0, 10, 10], [2, 1, 0, 0, 10, 10], [3, 0, 100, 100, 110, 110]]}
            for f in (5, 6)]
    previous = {5: [(7, 0, [1, 0, 11, 10]), (8, 0, [0, 0, 10, 10])], 6: [(7, 0, [1, 0, 11, 10])]}
    # 8 overlaps 1 exactly but only in one of the two frames: 7 is seen in both
    assert match_tracks(lead, previous) == {1: 7}  # 2 is another class, 3 overlaps nothing


def _record(frame: int, *dets: tuple[int, int, list[float]]) -> str:
    return json.dumps({"frame": frame, "detections": [{"class_id": c, "box_xyxy": b, "track_id": t}
                                                      for t, c, b in dets]}, separators=(",", ":")) + "\n"


def test_joined_ids_continue_across_a_cut_and_new_tracks_never_reuse_an_id(tmp_path: Path) -> None:
    box_a, box_b = [0, 0, 10, 10], [50, 50, 60, 60]
    first = tmp_path / "p0.jsonl"
    first.write_text(_record(0, (4, 0, box_a)) + _record(1, (4, 0, box_a), (9, 0, box_b)))
    second, lead = tmp_path / "p1.jsonl", tmp_path / "p1.lead.jsonl"
    lead.write_text(json.dumps({"frame": 1, "tracks": [[1, 0, *box_a], [2, 0, *box_b]]}) + "\n")
    # its own 1 is the first part's 4, its 2 the first part's 9; its 3 is new, its 4 too (not the first part's 4)
    second.write_text(_record(2, (1, 0, box_a), (2, 0, box_b), (3, 0, [80, 80, 90, 90])) + _record(3, (4, 1, box_a)))
    assert join_jsonl([(first, None), (second, lead)], tmp_path / "joined.jsonl") == 4
    joined = [json.loads(line) for line in (tmp_path / "joined.jsonl").read_text().splitlines()]
    assert [[d["track_id"] for d in r["detections"]] for r in joined] == [[4], [4, 9], [4, 9, 10], [11]]


def test_records_without_tracks_are_copied_as_they_are(tmp_path: Path) -> None:
    lines = ['{"frame":0,"detections":[]}\n', '{"frame":1,"detections":[{"class_id":0,"score":0.5}]}\n']
    (tmp_path / "a.jsonl").write_text(lines[0])
    (tmp_path / "b.jsonl").write_text(lines[1])
    join_jsonl([(tmp_path / "a.jsonl", None), (tmp_path / "b.jsonl", None)], tmp_path / "j.jsonl")
    assert (tmp_path / "j.jsonl").read_text() == "".join(lines)


def test_a_split_sources_parts_are_listed_under_it() -> None:
    part = SourceResult(tag="v.part001", source="v", status="ok", frames=30, node="n2", attempts=1)
    row = SourceResult(tag="v", source="v", status="ok", frames=60, node="2 nodes", attempts=1,
                       parts=[{**SourceResult(tag="v.part000", source="v", status="skipped").__dict__},
                              part.__dict__])
    lines = format_tables([row], []).splitlines()
    assert [line.split()[0] for line in lines[1:]] == ["v", "part000", "part001"]
    assert lines[3].startswith("  part001  ok") and lines[3].endswith("n2")
