"""Event sinks: which frames become events (every frame, every N, on change, both), the record sent (the JSONL
record with the source's tag, with or without masks), and starting the outputs (a failure closes the others)."""

from __future__ import annotations

import doctest
import json
import threading
from dataclasses import replace

import numpy as np
import pytest
from pycocotools import mask as mask_utils

import rtseg.sinks.events
from rtseg.errors import ConfigError, SinkError
from rtseg.sinks.events import EventFilter, EventSink, open_event_outputs
from tests.events_support import WebhookServer, detections, frame_of
from tests.support import free_port


class RecordingOutput:
    """Keeps the payloads offered to it (the real outputs are tested with real peers in test_webhook/test_mqtt)."""

    name = "recording"

    def __init__(self) -> None:
        self.payloads: list[bytes] = []
        self.closed = False

    def offer(self, payload: bytes) -> bool:
        self.payloads.append(payload)
        return True

    def close(self, timeout: float = 2.0) -> None:
        self.closed = True

    @property
    def records(self) -> list[dict]:
        return [json.loads(p) for p in self.payloads]


def sent_frames(flt: EventFilter, results: list) -> dict[int, dict]:
    """Frame index -> the fields its record gets, for the frames the filter admits."""
    return {r.frame_index: fields for r in results if (fields := flt.admit(r)) is not None}


# --- which frames ----------------------------------------------------------------------------------------------


def test_every_frame_by_default() -> None:
    results = [detections(i, [0] if i % 2 else []) for i in range(5)]
    assert sent_frames(EventFilter(), results) == {i: {} for i in range(5)}


def test_every_n_frames_starts_with_the_first() -> None:
    results = [detections(i, [0]) for i in range(8)]
    assert list(sent_frames(EventFilter(every=3), results)) == [0, 3, 6]
    assert list(sent_frames(EventFilter(every=1), results)) == list(range(8))


@pytest.mark.parametrize("every", [0, -2, 1.5, True, "3"])
def test_every_refuses_what_is_not_a_whole_number_from_1(every) -> None:
    with pytest.raises(ConfigError, match=r"^every=.*: expected a whole number, 1 or more$"):
        EventFilter(every=every)


def test_on_change_sends_only_when_a_class_appears_or_leaves() -> None:
    classes = [[], [], [0], [0], [0, 0], [0, 1], [1], [1], [], []]  # person; a second person; a cat; ...
    sent = sent_frames(EventFilter(on_change=True), [detections(i, c) for i, c in enumerate(classes)])
    assert list(sent) == [2, 5, 6, 8]  # a second person of a class already there is no change
    assert sent[2] == {"change": {"appeared": {"classes": ["person"]}, "left": {"classes": []}}}
    assert sent[5]["change"] == {"appeared": {"classes": ["cat"]}, "left": {"classes": []}}
    assert sent[6]["change"] == {"appeared": {"classes": []}, "left": {"classes": ["person"]}}
    assert sent[8]["change"] == {"appeared": {"classes": []}, "left": {"classes": ["cat"]}}


def test_on_change_with_tracking_follows_track_ids() -> None:
    steps = [([0], [1]), ([0], [1]), ([0, 0], [1, 2]), ([0], [2]), ([0], [2]), ([], [])]
    results = [detections(i, c, tracks=t) for i, (c, t) in enumerate(steps)]
    sent = sent_frames(EventFilter(on_change=True), results)
    assert list(sent) == [0, 2, 3, 5]
    assert sent[0]["change"]["appeared"] == {"classes": ["person"], "track_ids": [1]}
    assert sent[2]["change"] == {"appeared": {"classes": [], "track_ids": [2]},
                                 "left": {"classes": [], "track_ids": []}}
    assert sent[3]["change"]["left"] == {"classes": [], "track_ids": [1]}  # person 1 left, person 2 stays
    assert sent[5]["change"]["left"] == {"classes": ["person"], "track_ids": [2]}


def test_on_change_names_classes_by_the_names_given_else_the_results_else_their_ids() -> None:
    # results from the pipeline carry no names: the sink's names (the model's) name them
    assert EventFilter(on_change=True, names=("a", "b")).admit(detections(0, [1], names=()))["change"]["appeared"] \
        == {"classes": ["b"]}
    assert EventFilter(on_change=True).admit(detections(0, [1]))["change"]["appeared"] == {"classes": ["cat"]}
    assert EventFilter(on_change=True).admit(detections(0, [7], names=()))["change"]["appeared"] == {"classes": ["7"]}
    out = RecordingOutput()
    result = detections(0, [1], names=())
    EventSink([out], names=("a", "b"), on_change=True).write(frame_of(result), None, result)
    assert out.records[0]["change"]["appeared"] == {"classes": ["b"]}


def test_on_change_with_every_adds_a_heartbeat_after_n_quiet_frames() -> None:
    classes = [[0]] * 5 + [[]] * 6  # a person for 5 frames, then nobody
    sent = sent_frames(EventFilter(on_change=True, every=4), [detections(i, c) for i, c in enumerate(classes)])
    assert list(sent) == [0, 4, 5, 9]
    assert "change" in sent[0] and "change" in sent[5]  # appeared, left
    assert sent[4] == {} and sent[9] == {}  # heartbeats: the state, no change


# --- the record --------------------------------------------------------------------------------------------------


def test_record_is_the_jsonl_record_with_the_tag_as_source_and_no_masks_by_default() -> None:
    out = RecordingOutput()
    sink = EventSink([out], names=("person", "cat", "dog"), tag="clip")
    result = detections(3, [0, 2])
    sink.write(frame_of(result, source="/videos/clip.mp4"), None, result)
    (record,) = out.records
    expected = result.to_dict(frame_of(result, source="/videos/clip.mp4"), names=("person", "cat", "dog"))
    for det in expected["detections"]:
        del det["mask"]
    assert record == {**expected, "source": "clip"}
    assert sink.needs_image is False


def test_record_with_masks_decodes_to_the_instance_masks() -> None:
    out = RecordingOutput()
    result = detections(0, [1])
    EventSink([out], names=("person", "cat"), masks=True).write(frame_of(result, source="cam"), None, result)
    (record,) = out.records
    assert record["source"] == "cam"  # no tag: the source as the JSONL names it
    rle = record["detections"][0]["mask"]
    decoded = mask_utils.decode({"size": rle["size"], "counts": rle["counts"].encode()})
    np.testing.assert_array_equal(decoded.astype(bool), result.masks.to_dense(0, result.image_hw))


def test_semantic_classes_keep_their_area_without_masks() -> None:
    labels = np.zeros((48, 64), np.uint8)
    labels[:12] = 2  # a quarter of the frame
    result = replace(detections(0, []), semantic=labels)
    out = RecordingOutput()
    EventSink([out], names=(), semantic_names=("bg", "road", "water")).write(frame_of(result), None, result)
    assert out.records[0]["semantic"] == [{"class_id": 0, "class_name": "bg", "area_fraction": 0.75},
                                          {"class_id": 2, "class_name": "water", "area_fraction": 0.25}]
    out = RecordingOutput()
    EventSink([out], names=(), semantic_names=("bg", "road", "water"), masks=True).write(frame_of(result), None, result)
    assert [s["class_name"] for s in out.records[0]["semantic"]] == ["bg", "water"]
    assert all("mask" in s for s in out.records[0]["semantic"])


def test_every_output_gets_each_record_and_closing_the_sink_leaves_them_open() -> None:
    outs = [RecordingOutput(), RecordingOutput()]
    sink = EventSink(outs, names=("person",), on_change=True)
    for i, c in enumerate([[], [0], [0], []]):
        result = detections(i, c)
        sink.write(frame_of(result), None, result)
    sink.close()
    assert [r["frame"] for r in outs[0].records] == [1, 3] and outs[0].payloads == outs[1].payloads
    assert sink.sent == 2 and not any(o.closed for o in outs)


def test_a_frame_left_out_costs_no_record(monkeypatch) -> None:
    """write() builds (and serialises) a record only for the frames that are sent."""
    built = []
    sink = EventSink([RecordingOutput()], names=("person",), every=10)
    real = EventSink.record
    monkeypatch.setattr(EventSink, "record", lambda self, f, r: built.append(r.frame_index) or real(self, f, r))
    for i in range(25):
        result = detections(i, [0])
        sink.write(frame_of(result), None, result)
    assert built == [0, 10, 20]


# --- starting the outputs ---------------------------------------------------------------------------------------


def test_no_output_asked_for_starts_none() -> None:
    assert open_event_outputs() == []


def test_a_failing_output_closes_those_already_started() -> None:
    with WebhookServer() as server:
        with pytest.raises(SinkError, match=r"^mqtt=mqtt://127\.0\.0\.1:\d+/t: cannot connect") as info:
            open_event_outputs(webhook=server.url, mqtt=f"mqtt://127.0.0.1:{free_port()}/t")
        assert "\n" not in str(info.value)
        assert not [t for t in threading.enumerate() if t.name == "webhook" and t.is_alive()]


def test_docstring_examples_run() -> None:
    with WebhookServer() as server:
        result = detections(0, [0])
        globs = {**vars(rtseg.sinks.events), "server": server, "frame": frame_of(result), "result": result}
        finder, runner = doctest.DocTestFinder(), doctest.DocTestRunner()
        for test in finder.find(rtseg.sinks.events, globs=globs):
            runner.run(test)
        outcome = runner.summarize(verbose=False)
    assert outcome.failed == 0 and outcome.attempted >= 8
