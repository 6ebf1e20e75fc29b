"""Outputs never destroy inputs and never leave half a file: the output-path check (rtseg.sinks.base), files
written under a temporary name (rtseg.sinks.atomic), and a failed write as one SinkError."""

from __future__ import annotations

import doctest
import errno
import json
import os
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

import rtseg.sinks.atomic
from rtseg.errors import SinkError
from rtseg.sinks import ImageFolderSink, JsonlSink, VideoFileSink
from rtseg.sinks.atomic import PartialFile, partial_path, write_bytes, written
from rtseg.sinks.base import OutputPath, check_output_paths
from rtseg.sinks.labels import LabelMapSink
from rtseg.types import Frame
from tests.fakes import make_result
from tests.support import count_frames


def _frame(i: int, hw: tuple[int, int] = (48, 64)) -> Frame:
    return Frame(i, np.full((*hw, 3), 40 + i, np.uint8), i / 10, "src")


def _result(i: int, n: int = 0, semantic: bool = False):  # noqa: ANN202 - a FrameResult of frame i
    result = replace(make_result(hw=(48, 64), n=n), frame_index=i)
    return replace(result, semantic=np.ones((48, 64), np.uint8)) if semantic else result


def _partials(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob("*") if ".partial" in p.name)


def test_atomic_module_examples_run(tmp_path: Path) -> None:
    finder, runner = doctest.DocTestFinder(), doctest.DocTestRunner()
    for test in finder.find(rtseg.sinks.atomic, globs={**vars(rtseg.sinks.atomic), "tmp": tmp_path}):
        runner.run(test)
    result = runner.summarize(verbose=False)
    assert result.failed == 0 and result.attempted > 0


def test_written_renames_on_success_and_removes_on_error(tmp_path: Path) -> None:
    target = tmp_path / "report.json"
    target.write_text("old")
    with written(target) as temp:
        assert temp == tmp_path / ".report.partial.json"
        temp.write_text("new")
        assert target.read_text() == "old"  # the old file stays whole until the new one is complete
    assert target.read_text() == "new" and _partials(tmp_path) == []

    with pytest.raises(ValueError), written(target) as temp:
        temp.write_text("half")
        raise ValueError("the writer failed")
    assert target.read_text() == "new" and _partials(tmp_path) == []


def test_a_full_device_is_one_sink_error_and_devices_are_written_in_place() -> None:
    assert PartialFile(Path("/dev/null")).temp == Path("/dev/null")  # never renamed over
    write_bytes(Path("/dev/null"), "fine")
    with pytest.raises(SinkError, match=r"^cannot write JSON /dev/full: No space left on device$"):
        write_bytes(Path("/dev/full"), "x" * 100_000, what="JSON")


def test_video_is_written_under_a_temporary_name_and_renamed_when_finalized(tmp_path: Path) -> None:
    out = tmp_path / "clip.mp4"
    sink = VideoFileSink(out, fps=10)
    for i in range(5):
        sink.write(_frame(i), None, _result(i))
    assert not out.exists() and partial_path(out).is_file()  # nobody sees half a video under its name
    sink.close()
    assert count_frames(out) == (5, (48, 64)) and _partials(tmp_path) == []


def test_video_that_cannot_be_finalized_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "clip.mp4"
    sink = VideoFileSink(out, fps=10)
    sink.write(_frame(0), None, _result(0))

    def full(*_: object) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(type(sink._writer), "close", full)
    with pytest.raises(SinkError, match=r"^cannot write video .*clip\.mp4: No space left on device$"):
        sink.close()
    assert not out.exists() and _partials(tmp_path) == []  # a container without its index is not a video


def test_video_write_failure_is_one_sink_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sink = VideoFileSink(tmp_path / "clip.mp4", fps=10)
    sink.write(_frame(0), None, _result(0))

    def too_large(*_: object) -> None:
        raise OSError(errno.EFBIG, os.strerror(errno.EFBIG))

    monkeypatch.setattr(type(sink._writer), "write", too_large)
    with pytest.raises(SinkError, match="^cannot write video .*clip.mp4: File too large$"):
        sink.write(_frame(1), None, _result(0))


def test_jsonl_on_a_full_device_is_one_sink_error() -> None:
    sink = JsonlSink(Path("/dev/full"), ("a", "b", "c"))
    with pytest.raises(SinkError, match=r"^cannot write JSONL /dev/full: No space left on device$"):
        sink.write(_frame(0), None, make_result())
    sink.close()


def test_jsonl_keeps_only_whole_records_when_a_write_fails(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    sink = JsonlSink(path, ("a", "b", "c"))
    for i in range(3):
        sink.write(_frame(i), None, _result(i, n=3))
    real = sink._file

    class FillsUp:  # the disk fills up halfway through the fourth record
        def write(self, data: memoryview) -> int:
            real.write(data[: len(data) // 2])
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

        def __getattr__(self, name: str) -> object:
            return getattr(real, name)

    sink._file = FillsUp()  # type: ignore[assignment]
    with pytest.raises(SinkError, match="No space left on device"):
        sink.write(_frame(3), None, _result(3, n=3))
    sink._file = real
    sink.close()
    assert [json.loads(line)["frame"] for line in path.read_text().splitlines()] == [0, 1, 2]


def test_frames_and_label_maps_leave_no_partial_files(tmp_path: Path) -> None:
    frames = ImageFolderSink(tmp_path / "frames")
    labels = LabelMapSink(tmp_path / "labels", ("bg", "thing"), ((0, 0, 0), (0, 255, 0)))
    for i in range(2):
        frames.write(_frame(i), None, _result(i, semantic=True))
        labels.write(_frame(i), None, _result(i, semantic=True))
    assert sorted(p.name for p in (tmp_path / "frames").iterdir()) == ["frame_000000.jpg", "frame_000001.jpg"]
    assert sorted(p.name for p in (tmp_path / "labels").iterdir()) == ["classes.json", "frame_000000.png",
                                                                      "frame_000001.png"]
    assert _partials(tmp_path) == []


def test_frames_folder_removed_mid_run_is_one_sink_error(tmp_path: Path) -> None:
    sink = ImageFolderSink(tmp_path / "frames")
    (tmp_path / "frames").rmdir()
    with pytest.raises(SinkError, match="^cannot write frame .*frame_000000.jpg: No such file or directory$"):
        sink.write(_frame(0), None, _result(0))


# --- the output-path check -------------------------------------------------------------------------------------

def _layout(tmp: Path) -> None:
    (tmp / "dog.mp4").write_bytes(b"video")
    (tmp / "link.mp4").symlink_to(tmp / "dog.mp4")
    os.link(tmp / "dog.mp4", tmp / "hard.mp4")
    (tmp / "frames").mkdir()
    for i in range(2):
        (tmp / "frames" / f"frame_{i:06d}.jpg").write_bytes(b"jpg")
    (tmp / "data").mkdir()
    (tmp / "data" / "images").mkdir()
    (tmp / "o").mkdir()


def _file(param: str, path: Path) -> OutputPath:
    return OutputPath(param, path)


FRAMES, LABELS = ImageFolderSink.FILES, LabelMapSink.FILES
REFUSED = {
    "output is the input": (lambda t: ([_file("out", t / "dog.mp4")], ["dog.mp4"]), "out=.*: it is the input"),
    "through a symbolic link": (lambda t: ([_file("out", t / "link.mp4")], ["dog.mp4"]), "through a link"),
    "through a hard link": (lambda t: ([_file("jsonl", t / "hard.mp4")], ["dog.mp4"]), "through a link"),
    "the input through a link": (lambda t: ([_file("out", t / "dog.mp4")], ["link.mp4"]), "it is the input"),
    "weights": (lambda t: ([_file("jsonl", t / "dog.mp4")], ["clip.avi", t / "dog.mp4"]), "it is the input"),
    "two outputs": (lambda t: ([_file("out", t / "x.mp4"), _file("jsonl", t / "./x.mp4")], []),
                    r"out=.* and jsonl=.*: both write"),
    "a file and a folder": (lambda t: ([_file("out", t / "p"), OutputPath("save_frames", t / "p", FRAMES)], []),
                            "both write"),
    "a file in an output folder": (lambda t: ([_file("jsonl", t / "o" / "frame_000003.jpg"),
                                               OutputPath("save_frames", t / "o", FRAMES)], []), "both write"),
    "two label folders": (lambda t: ([OutputPath("save_labels", t / "o", LABELS),
                                      OutputPath("save_labels", t / "o", LABELS)], []), "both write"),
    "folder is the source folder": (lambda t: ([OutputPath("save_frames", t / "frames", FRAMES)], ["frames"]),
                                    "it is the source folder"),
    "image in the source folder": (lambda t: ([_file("jsonl", t / "frames" / "r.png")], ["frames/"]),
                                   "it is an image in the source folder"),
    "folder matched by the glob": (lambda t: ([OutputPath("save_frames", t / "frames", FRAMES)],
                                              ["frames/*.jpg"]), "the source 'frames/\\*.jpg' matches"),
    "file matched by the glob": (lambda t: ([_file("jsonl", t / "frames" / "new.jpg")], ["frames/*.jpg"]),
                                 "matches it"),
    "folder holding an image source": (lambda t: ([OutputPath("save_frames", t / "frames", FRAMES)],
                                                  ["frames/frame_000001.jpg"]), "holds the input"),
}


@pytest.mark.parametrize("case", list(REFUSED))
def test_outputs_that_would_destroy_an_input_or_each_other_are_refused(case: str, tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    _layout(tmp_path)
    monkeypatch.chdir(tmp_path)
    make, message = REFUSED[case]
    outputs, inputs = make(tmp_path)
    with pytest.raises(SinkError, match=message):
        check_output_paths(outputs, inputs=inputs)


ALLOWED = {
    "new files": lambda t: ([_file("out", t / "o.mp4"), _file("jsonl", t / "o.jsonl")], ["dog.mp4"]),
    "frames and labels in one folder": lambda t: ([OutputPath("save_frames", t / "o", FRAMES),
                                                   OutputPath("save_labels", t / "o", LABELS)], ["dog.mp4"]),
    "a subfolder of the source folder": lambda t: ([OutputPath("save_frames", t / "frames" / "ann", FRAMES)],
                                                   ["frames/*.jpg", "frames"]),
    "a video beside the images of a glob": lambda t: ([_file("out", t / "frames" / "o.mp4")], ["frames/*.jpg"]),
    "a JSONL in the source folder": lambda t: ([_file("jsonl", t / "frames" / "r.jsonl")], ["frames"]),
    "cameras and streams": lambda t: ([_file("out", t / "0")], ["0", "rtsp://cam/0"]),
    "the null device twice": lambda t: ([_file("jsonl", Path("/dev/null")), _file("json_out", Path("/dev/null"))],
                                        []),
    "a new file in a data set folder": lambda t: ([_file("json_out", t / "data" / "m.json")], []),
}


@pytest.mark.parametrize("case", list(ALLOWED))
def test_outputs_that_destroy_nothing_are_allowed(case: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _layout(tmp_path)
    monkeypatch.chdir(tmp_path)
    outputs, inputs = ALLOWED[case](tmp_path)
    check_output_paths(outputs, inputs=inputs, trees=[tmp_path / "data"])


def test_data_set_folders_are_never_written_over(tmp_path: Path) -> None:
    _layout(tmp_path)
    (tmp_path / "data" / "images" / "0.png").write_bytes(b"png")
    with pytest.raises(SinkError, match="replace a file of the data set"):
        check_output_paths([_file("plot_out", tmp_path / "data" / "images" / "0.png")], trees=[tmp_path / "data"])
    for folder in (tmp_path / "data", tmp_path):
        with pytest.raises(SinkError, match="is inside it"):
            check_output_paths([OutputPath("out", folder, ("images",))], trees=[tmp_path / "data"])


@pytest.mark.parametrize(("output", "message"), [
    (OutputPath("out", Path("missing/o.mp4"), what="video"), "cannot write video missing/o.mp4: folder missing does "
                                                              "not exist"),
    (OutputPath("save_frames", Path("dog.mp4"), FRAMES, what="frames"), "cannot write frames into dog.mp4: it is a "
                                                                        "file"),
    (OutputPath("save_frames", Path("dog.mp4/sub"), FRAMES), "cannot create folder dog.mp4/sub: dog.mp4 is a file"),
])
def test_unwritable_outputs_are_refused_before_anything_is_created(output: OutputPath, message: str, tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    _layout(tmp_path)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SinkError, match=f"^{message}$"):
        check_output_paths([output])
    check_output_paths([OutputPath("save_frames", Path("new/deeper"), FRAMES)])
    assert not (tmp_path / "new").exists()  # checked, not created
