"""Analytics in the real pipeline: two sources through one model, each with its own Analytics, tracker and
outputs; the JSONL records carry the zone counts, events and line totals, and the written video is blurred
exactly where the blurred class is (and only in the stream that asked for it)."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from rtseg.analytics import Analytics, write_report
from rtseg.models.yolo_seg import YoloSegModel
from rtseg.overlay.annotator import Annotator
from rtseg.pipeline.core import Pipeline, Stream
from rtseg.sinks import JsonlSink, VideoFileSink
from rtseg.sources.base import open_source
from rtseg.tracking import Tracker
from tests.fakes import BlobBackend, RecordingSink

FRAMES, FPS, SIZE_WH = 36, 10.0, (320, 240)


def square_video(path: Path) -> Path:
    """A textured background and a bright, noisy 40x40 square falling 5 px a frame (centre y = 30 + 5 i): it
    leaves the 'top' zone (y < 72) at frame 8 and crosses the 'gate' line (y = 120) at frame 18. (Not
    tests.support.write_video: its shapes are not bright enough for BlobBackend to find.)"""
    rng = np.random.default_rng(1)
    w, h = SIZE_WH
    background = rng.integers(60, 120, (h, w, 3), dtype=np.uint8)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), FPS, SIZE_WH)
    for i in range(FRAMES):
        image = background.copy()
        y = 10 + 5 * i
        image[y : y + 40, 140:180] = rng.integers(236, 256, (40, 40, 1), dtype=np.uint8)
        writer.write(image)
    writer.release()
    return path


def decode(path: Path) -> list[np.ndarray]:
    capture = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, image = capture.read()
        if not ok:
            break
        frames.append(image)
    capture.release()
    return frames


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> dict:
    tmp = tmp_path_factory.mktemp("analytics")
    clips = [square_video(tmp / "a.avi"), square_video(tmp / "b.avi")]
    names = ("blob",)
    shapes = {"zone": ["top:0,0,1,0,1,0.3,0,0.3"], "line": ["gate:0,0.5,1,0.5"]}
    # stream a: privacy, blur only (no boxes, masks, labels); stream b: the same zones, drawn normally
    analytics = [Analytics.from_options(names=names, fps=FPS, blur="blob", blur_only=True, tag="a",
                                        heatmap=tmp / "heat_a.png", source=str(clips[0]), **shapes),
                 Analytics.from_options(names=names, fps=FPS, tag="b", source=str(clips[1]), **shapes)]
    streams, recorders = [], []
    for clip, a, tag in zip(clips, analytics, "ab"):
        assert a is not None and a.needs_tracking
        recorder = RecordingSink()
        recorders.append(recorder)
        sinks = [JsonlSink(tmp / f"{tag}.jsonl", names), VideoFileSink(tmp / f"{tag}_out.avi", FPS), recorder]
        streams.append(Stream(open_source(str(clip)), sinks, Annotator(names), Tracker("bytetrack", frame_rate=FPS), a))
    summary = Pipeline.multi(streams, YoloSegModel(BlobBackend())).run()
    for a in analytics:
        a.close()
    write_report(tmp / "report.json", [a.report() for a in analytics])
    return {"tmp": tmp, "summary": summary, "clips": clips, "analytics": analytics, "recorders": recorders,
            "records": {t: [json.loads(line) for line in (tmp / f"{t}.jsonl").read_text().splitlines()] for t in "ab"}}


def test_records_carry_the_analytics(run: dict) -> None:
    assert run["summary"].frames == 2 * FRAMES
    for tag in "ab":
        records = run["records"][tag]
        assert len(records) == FRAMES and all("analytics" in r for r in records)
        assert all(len(r["detections"]) == 1 for r in records)
        events = [(e["type"], e.get("direction"), e["track_id"]) for r in records for e in r["analytics"]["events"]]
        assert events == [("enter", None, 1), ("leave", None, 1), ("cross", "in", 1)]
        crossed = next(r["frame"] for r in records if r["analytics"]["events"]
                       and r["analytics"]["events"][0]["type"] == "cross")
        assert 18 <= crossed <= 20  # confirmed a frame or two after the centre passed y=120
        assert records[-1]["analytics"]["lines"] == {"gate": {"in": {"blob": 1}, "out": {}}}
        assert records[0]["analytics"]["zones"] == {"top": {"blob": 1}} and records[0]["analytics"]["in_zones"] == [
            ["top"]]
        leave = next(e for r in records for e in r["analytics"]["events"] if e["type"] == "leave")
        # the centre is above y=72 up to frame 8 (centre 70): at least half of the mask in the zone
        assert leave["dwell_s"] == pytest.approx(0.9, abs=1 / FPS)
    report = json.loads((run["tmp"] / "report.json").read_text())
    assert [s["source"] for s in report["sources"]] == ["a", "b"]
    assert report["sources"][0]["lines"]["gate"]["total"]["in"] == {"blob": 1}


def texture(pixels: np.ndarray) -> float:
    """Mean absolute difference between neighbouring pixels: high on noise, low once blurred (a blur's smooth
    ramp from the bright square into the dark background around it has a high spread but little texture)."""
    p = pixels.astype(np.float64)
    return float(np.abs(np.diff(p, axis=0)).mean() + np.abs(np.diff(p, axis=1)).mean())


def detail_match(a: np.ndarray, b: np.ndarray) -> float:
    """Correlation of the fine detail (each grey pixel minus its 3x3 mean) of two crops: near 1 when one is
    the other drawn over with a translucent colour, near 0 when one has been blurred."""
    def detail(x: np.ndarray) -> np.ndarray:
        grey = cv2.cvtColor(x, cv2.COLOR_BGR2GRAY).astype(np.float64)
        return (grey - cv2.blur(grey, (3, 3))).ravel()
    return float(np.corrcoef(detail(a), detail(b))[0, 1])


def tint(pixels: np.ndarray) -> float:
    """Mean |blue - red|: about 0 on grey pixels, large under a translucent colour."""
    return float(np.abs(pixels[..., 0].astype(np.int64) - pixels[..., 2]).mean())


def box_interior(record: dict, inset: int = 4) -> tuple[slice, slice]:
    x1, y1, x2, y2 = (int(round(v)) for v in record["detections"][0]["box_xyxy"])
    return slice(y1 + inset, y2 - inset), slice(x1 + inset, x2 - inset)


def test_video_is_blurred_where_the_class_is_and_only_there(run: dict) -> None:
    source = decode(run["clips"][0])
    blurred, drawn = decode(run["tmp"] / "a_out.avi"), decode(run["tmp"] / "b_out.avi")
    assert len(blurred) == len(drawn) == FRAMES
    for i in (12, 28):  # the square's lower half clear of the zone's outline (y = 72) and the line (y = 120)
        rec = run["records"]["a"][i]
        inside = box_interior(rec)
        noise_in, noise_blurred = texture(source[i][inside]), texture(blurred[i][inside])
        assert noise_blurred < 0.5 * noise_in, (i, noise_in, noise_blurred)  # JPEG adds some back
        lower = (slice((inside[0].start + inside[0].stop) // 2, inside[0].stop), inside[1])  # below the label
        assert detail_match(blurred[i][lower], source[i][lower]) < 0.2
        # stream b did not ask for blur: its frames keep the detail under the translucent mask (compared before
        # encoding: JPEG flattens the tinted noise, 0.55 of the original's, as it would a blur)
        b_frame = run["recorders"][1].images[i]
        assert detail_match(b_frame[lower], source[i][lower]) > 0.6
        a_frame = run["recorders"][0].images[i]
        assert detail_match(a_frame[lower], source[i][lower]) < 0.2
        # blur only: no translucent mask colour over the (grey) square, as stream b has
        assert tint(a_frame[lower]) < 5 < 20 < tint(b_frame[lower])
        # blur only: away from the square, the zone's outline and the line, the frame is the input's
        x1, y1, x2, y2 = (int(round(v)) for v in rec["detections"][0]["box_xyxy"])
        keep = np.ones(source[i].shape[:2], bool)
        keep[max(0, y1 - 12) : y2 + 12, max(0, x1 - 12) : x2 + 12] = False
        keep[:90] = False  # the zone's label and outline (y = 72)
        keep[100:135] = False  # the line, its label and arrow (y = 120)
        diff = np.abs(blurred[i].astype(int) - source[i].astype(int))[keep]
        assert diff.mean() < 3, diff.mean()  # JPEG's re-encoding only: no box, mask or label drawn
    assert (np.abs(drawn[5].astype(int) - source[5].astype(int)).max(2) > 60).any()  # b: masks and boxes drawn


def test_frames_and_heatmap(run: dict) -> None:
    recorder = run["recorders"][0]
    assert len(recorder.images) == FRAMES and all(im is not None for im in recorder.images)
    heat = cv2.imread(str(run["tmp"] / "heat_a.png"))
    assert heat is not None and heat.shape == (SIZE_WH[1], SIZE_WH[0], 3)
    assert run["analytics"][0].outputs == [run["tmp"] / "heat_a.png"]


def test_blur_without_any_drawing_sink_still_edits_the_frames(tmp_path: Path) -> None:
    """No annotator and no image sink: the frames a loop over the pipeline gets are still blurred."""
    clip = square_video(tmp_path / "c.avi")
    a = Analytics.from_options(names=("blob",), fps=FPS, blur="blob")
    pipeline = Pipeline(None, YoloSegModel(BlobBackend()), streams=[Stream(open_source(str(clip)), [], None, None, a)],
                        max_frames=4)
    source = decode(clip)
    for frame, result in pipeline:
        inside = box_interior(result.to_dict(frame))
        assert texture(frame.image[inside]) < 0.35 * texture(source[frame.index][inside])
    assert "analytics" not in result.to_dict(frame)  # blur only: nothing to record


def test_device_frame_path_draws_over_the_blurred_frame(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With the frame uploaded for the model (the GPU path, run here on the CPU), masks are normally blended
    into that upload and downloaded; with a blur they must be drawn on the blurred frame instead. (On the CPU
    the upload shares the frame's memory, so the pixels alone cannot tell: the device overlay must not run.)"""
    import rtseg.pipeline.core as core

    clip = square_video(tmp_path / "d.avi")
    calls: list[int] = []

    def overlay(prepared, result, annotator):  # noqa: ANN001, ANN202
        calls.append(result.frame_index)
        return real(prepared, result, annotator)

    real = core.overlay_on_device
    monkeypatch.setattr(core, "overlay_on_device", overlay)
    images = {}
    for blur in (None, "blob"):
        sink = RecordingSink()
        a = Analytics.from_options(names=("blob",), fps=FPS, blur=blur, heatmap_overlay=True)
        model = YoloSegModel(BlobBackend(), frames_on_device=True)
        Pipeline(None, model, streams=[Stream(open_source(str(clip)), [sink], Annotator(("blob",)), None, a)],
                 max_frames=6).run()
        images[blur], calls[:] = (sink.images, list(calls)), []
    assert images[None][1] == list(range(6))  # the device overlay runs without blur
    assert images["blob"][1] == [] and len(images["blob"][0]) == 6  # and never with it
    source = decode(clip)
    inside = (slice(40, 58), slice(148, 172))  # frame 3: the square spans y 25..65, x 140..180
    assert texture(images["blob"][0][3][inside]) < 0.5 * texture(source[3][inside])


def test_a_stop_counts_in_the_report_only_the_frames_the_outputs_hold(tmp_path: Path) -> None:
    """Ctrl-C while a slow output writes: the post-processing stage is frames ahead of the outputs; the report
    counts the frames that were written, as many as the JSONL has, not the ones analysed and never written."""
    import threading

    clip = square_video(tmp_path / "a.avi")
    analytics = Analytics.from_options(names=("blob",), fps=FPS, zone=["top:0,0,1,0,1,0.3,0,0.3"], tag="a")
    assert analytics is not None
    stop = threading.Event()

    class StopAfter(RecordingSink):
        def write(self, frame, annotated, result) -> None:  # noqa: ANN001
            super().write(frame, annotated, result)
            if len(self.indices) == 5:
                stop.set()

    sink = StopAfter(delay_s=0.05)
    stream = Stream(open_source(str(clip)), [JsonlSink(tmp_path / "a.jsonl", ("blob",)), sink], None,
                    Tracker("bytetrack", frame_rate=FPS), analytics)
    summary = Pipeline.multi([stream], YoloSegModel(BlobBackend()), stop=stop).run()
    analytics.close()
    written = len((tmp_path / "a.jsonl").read_text().splitlines())
    assert summary.interrupted and written == summary.frames == len(sink.indices) < FRAMES
    assert analytics.report()["frames"] == written
