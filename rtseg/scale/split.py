"""``--split 60s``: one long video cut into parts that run on several workers at once, then joined.

The driver counts the file's frames, cuts it by frame index into parts of about ``split`` seconds
(:func:`plan_parts`), and sends each part out as a task of its own (:class:`~rtseg.scale.plan.SourceTask` with
``start``/``stop``): a worker runs it (:mod:`rtseg.scale.ranged`) and writes a video part and a JSONL part with
the frame numbers and timestamps of the whole file. Once every part is done, :func:`join_parts` concatenates the
JSONL parts in order and remuxes the video parts into one file without re-encoding (FFmpeg's concat demuxer,
through PyAV), written beside its final name and renamed into place like every other output.

With ``--track`` each part after the first starts :data:`LEAD_S` earlier: those frames run through the model
and the tracker but are not written, so its tracks are established at its first written frame, and their boxes
let :func:`match_tracks` give each of its tracks the id the previous part gave the same object (same class,
boxes overlapping in the shared frames). A track that matches none gets a new id, above every id used before.
The JSONL carries the joined ids; the video's drawn labels are each part's own (re-drawing them would mean
re-encoding).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import statistics
from collections import Counter, deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from rtseg.scale.plan import STATE_DIR, SourceResult, SourceTask, is_complete, marker_path, write_marker

LOGGER = logging.getLogger(__name__)
LEAD_S = 1.0  # with --track, each part after the first starts this much earlier (not written) to match tracks
MIN_MATCH_IOU = 0.5  # mean box overlap, over the shared frames, for a track to keep the previous part's id
PARTS_DIR = "parts"  # under the state folder: each split source's finished parts until they are joined


def parse_split(text: str | float | None) -> float | None:
    """``"60s"``, ``"2m"``, ``"90"`` (seconds) -> seconds; None stays None.

    Raises:
        ConfigError: ``split=abc: expected a duration such as 90s, 10m or 1h`` (at least 1 second).

    Example:
        >>> parse_split("2m"), parse_split("90"), parse_split(None)
        (120.0, 90.0, None)
    """
    from rtseg.sinks.segments import parse_duration

    return None if text is None else parse_duration(text, param="split")


def probe_video(spec: str) -> tuple[int, float, list[float] | None] | None:
    """A video file's exact frame count, frame rate and each frame's timestamp in ms as OpenCV reports it
    (``CAP_PROP_POS_MSEC``), from its packets read without decoding; None when this machine cannot read it as a
    file (a stream, a path only the workers see). The timestamps are None when a packet has none (the count
    is then the container's)."""
    if "://" in spec or not Path(spec).is_file():
        return None
    import av

    try:
        with av.open(spec) as container:
            stream = container.streams.video[0]
            pts = [packet.pts for packet in container.demux(stream) if packet.size]
            start, unit = stream.start_time or 0, float(stream.time_base or 0) * 1000
            frames = len(pts)
            if None in pts or not unit:
                frames, times = int(stream.frames or 0) or frames, None
            else:  # presentation order: frames come out of the decoder sorted by timestamp
                times = [(p - start) * unit for p in sorted(pts)]  # type: ignore[type-var]
    except (av.error.FFmpegError, IndexError, OSError) as exc:
        LOGGER.warning("%s: cannot count its frames (%s); it runs whole", spec, exc)
        return None
    import cv2

    capture = cv2.VideoCapture(spec, cv2.CAP_FFMPEG)
    fps = float(capture.get(cv2.CAP_PROP_FPS) or 0.0)
    capture.release()
    return frames, (fps if 0.5 < fps < 1000 else 30.0), times  # rtseg.sources.video's rule


def plan_parts(task: SourceTask, out_dir: Path, *, frames: int, fps: float, split_s: float, track: bool,
               max_frames: int | None = None, frame_ms: Sequence[float] | None = None) -> list[SourceTask]:
    """Cut ``task`` into parts of ``split_s`` seconds (the last one to the end of the file); [] when the source
    is not longer than one part. With ``track``, every part but the first has a lead of :data:`LEAD_S`.

    Example:
        >>> task = SourceTask(tag="a", source="a.mp4", outputs={})
        >>> [(p.tag, p.start, p.stop, p.lead) for p in plan_parts(task, Path("out"), frames=70, fps=10,
        ...                                                             split_s=3, track=True)]
        [('a.part000', 0, 30, 0), ('a.part001', 30, 60, 10), ('a.part002', 60, None, 10)]
    """
    per = max(1, round(split_s * fps))
    total = min(frames, max_frames) if max_frames else frames
    if total <= per:
        return []
    starts = list(range(0, total, per))
    if len(starts) > 1 and total - starts[-1] < per / 4:  # no tail part of a few frames: the last one takes it
        starts.pop()
    folder = Path(out_dir) / STATE_DIR / PARTS_DIR / task.tag
    lead = min(max(1, round(LEAD_S * fps)), per) if track else 0
    parts = []
    for i, start in enumerate(starts):
        last = i + 1 == len(starts)
        stop = (total if total < frames else None) if last else starts[i + 1]
        outputs = {"video": str(folder / f"part{i:03d}.mp4"), "jsonl": str(folder / f"part{i:03d}.jsonl")}
        if lead and i:
            outputs["lead"] = str(folder / f"part{i:03d}.lead.jsonl")
        key = hashlib.sha256(f"{task.key}:{start}:{stop}:{lead if i else 0}".encode()).hexdigest()[:16]
        first = start - (lead if i else 0)
        parts.append(SourceTask(tag=f"{task.tag}.part{i:03d}", source=task.source, outputs=outputs,
                                frames=(stop if stop is not None else total) - start, key=key, start=start,
                                stop=stop, lead=lead if i else 0, part_of=task.tag,
                                first_ms=frame_ms[first] if frame_ms is not None and first < len(frame_ms) else -1.0))
    return parts


def expand_splits(tasks: Sequence[SourceTask], out_dir: Path, *, split_s: float,
                  run_options: Mapping[str, Any]) -> dict[str, list[SourceTask]]:
    """The parts of each source that ``--split`` cuts (by tag): video files this machine can read, longer than
    one part, and not finished by an earlier run. The others run whole."""
    splits = {}
    for task in tasks:
        if is_complete(task, out_dir):
            continue
        probe = probe_video(task.source)
        if probe is None:
            LOGGER.warning("%s: not a video file this machine can read; it runs whole on one worker", task.source)
            continue
        parts = plan_parts(task, out_dir, frames=probe[0], fps=probe[1], split_s=split_s,
                           track=bool(run_options.get("track")), max_frames=run_options.get("max_frames"),
                           frame_ms=probe[2])
        if parts:
            splits[task.tag] = parts
    return splits


def finish_split(task: SourceTask, parts: Sequence[SourceTask], results: Mapping[str, SourceResult],
                 out_dir: Path) -> SourceResult:
    """Join a split source once each of its parts is done (now, or by an earlier run: ``skipped``), and sum its
    parts up in one row: frames, the wall time from its first part's start to its last part's end, the nodes.
    A part that failed fails the source, and the parts done are kept for the next run."""
    rows = [results.get(p.tag) or SourceResult(tag=p.tag, source=p.source, status="skipped") for p in parts]
    ran = [r for r in rows if r.status == "ok"]
    nodes = sorted({r.node for r in ran})
    row = SourceResult(tag=task.tag, source=task.source, status="ok", attempts=max((r.attempts for r in rows),
                                                                                   default=0),
                       node=nodes[0] if len(nodes) == 1 else f"{len(nodes)} nodes" if nodes else "",
                       parts=[asdict(r) for r in rows])
    if ran:
        row.started_at = min(r.started_at for r in ran)
        row.finished_at = max(r.finished_at or r.started_at + r.elapsed_s for r in ran)
        row.elapsed_s = row.finished_at - row.started_at
        for name in dict.fromkeys(name for r in ran for name in r.stages_ms):  # the parts' order of stages
            mine = [r.stages_ms[name] for r in ran if name in r.stages_ms]
            row.stages_ms[name] = {"p50": statistics.median(s["p50"] for s in mine), "p95": max(s["p95"] for s in mine)}
    failed = [r for r in rows if r.status == "failed"]
    if failed:
        row.status, row.error = "failed", f"{failed[0].tag.rsplit('.', 1)[-1]}: {failed[0].error}"
        row.frames = sum(r.frames for r in ran)
        return row
    try:
        row.frames = join_parts(task, parts, out_dir)
    except Exception as exc:  # noqa: BLE001 - a part unreadable or a full disk: this source fails, the others stand
        LOGGER.warning("joining %s failed", task.tag, exc_info=True)
        row.status, row.error = "failed", f"joining its parts failed: {type(exc).__name__}: {exc}"
        return row
    row.fps = row.frames / row.elapsed_s if row.elapsed_s > 0 else 0.0
    return row


def join_parts(task: SourceTask, parts: Sequence[SourceTask], out_dir: Path) -> int:
    """Join finished parts into ``task.outputs`` (renamed into place, then marked done), then remove the parts.
    Returns the frames joined."""
    out = Path(out_dir)
    work = out / STATE_DIR / f"{task.tag}.{os.getpid()}.join"
    work.mkdir(parents=True, exist_ok=True)
    try:
        temps = {kind: work / Path(path).name for kind, path in task.outputs.items()}
        frames = join_jsonl([(Path(p.outputs["jsonl"]), Path(p.outputs["lead"]) if "lead" in p.outputs else None)
                             for p in parts], temps["jsonl"])
        join_video([Path(p.outputs["video"]) for p in parts], temps["video"])
        for kind, temp in temps.items():
            os.replace(temp, task.outputs[kind])
        write_marker(task, out)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    shutil.rmtree(out / STATE_DIR / PARTS_DIR / task.tag, ignore_errors=True)
    try:
        (out / STATE_DIR / PARTS_DIR).rmdir()  # the last split source joined
    except OSError:
        pass
    for part in parts:
        marker_path(out, part.tag).unlink(missing_ok=True)
    return frames


def join_video(parts: Sequence[Path], dest: Path) -> None:
    """Remux ``parts`` (same codec and settings) one after the other into ``dest``, packets copied, timestamps
    continued (FFmpeg's concat demuxer). Empty part files (a part that had no frame) are left out."""
    import av

    files = [p for p in parts if p.stat().st_size > 0]
    if not files:
        dest.write_bytes(b"")
        return
    listing = dest.with_name(dest.name + ".concat.txt")
    listing.write_text("ffconcat version 1.0\n" + "".join(
        "file '" + str(p.resolve()).replace("'", "'\\''") + "'\n" for p in files))
    try:
        with av.open(str(listing), format="concat", options={"safe": "0"}) as src, \
                av.open(str(dest), "w", format=_muxer(dest)) as dst:
            inp = src.streams.video[0]
            outp = dst.add_stream_from_template(inp)
            for packet in src.demux(inp):
                if packet.dts is None:  # the demuxer's end-of-stream marker
                    continue
                packet.stream = outp
                dst.mux(packet)
    finally:
        listing.unlink(missing_ok=True)


def _muxer(path: Path) -> str | None:
    return {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska", ".avi": "avi"}.get(path.suffix.lower())


def join_jsonl(parts: Sequence[tuple[Path, Path | None]], dest: Path) -> int:
    """Concatenate JSONL parts (their records already numbered as in the whole file) into ``dest``; with track
    ids, each part's ids become the joined ones (:func:`match_tracks` over its lead, else new ids). Returns the
    records written."""
    recent: deque[tuple[int, list[tuple[int, int, list[float]]]]] = deque(maxlen=4096)
    next_id, written = 1, 0
    with open(dest, "w", encoding="utf-8") as out:
        for k, (jsonl, lead) in enumerate(parts):
            ids: dict[int, int] | None = None if k == 0 else {}  # None: the first part keeps its ids
            if lead is not None and lead.exists():
                ids = match_tracks(_read_lines(lead), dict(recent))
            with open(jsonl, encoding="utf-8") as lines:
                for line in lines:
                    written += 1
                    if '"track_id":' not in line:
                        out.write(line)
                        continue
                    record = json.loads(line)
                    tracks = []
                    for det in record["detections"]:
                        if "track_id" not in det:
                            continue
                        if ids is not None:
                            if det["track_id"] not in ids:
                                ids[det["track_id"]], next_id = next_id, next_id + 1
                            det["track_id"] = ids[det["track_id"]]
                        next_id = max(next_id, det["track_id"] + 1)
                        tracks.append((det["track_id"], det["class_id"], det["box_xyxy"]))
                    recent.append((record["frame"], tracks))
                    out.write(json.dumps(record, separators=(",", ":")) + "\n")
    return written


def _read_lines(path: Path) -> list[dict[str, Any]]:
    with open(path, encoding="utf-8") as lines:
        return [json.loads(line) for line in lines if line.strip()]


def match_tracks(lead: Iterable[Mapping[str, Any]],
                 previous: Mapping[int, Sequence[tuple[int, int, Sequence[float]]]]) -> dict[int, int]:
    """Which of a part's tracks are the previous part's: ``{its id: the previous part's id}``.

    Args:
        lead: the part's lead frames, ``{"frame": i, "tracks": [[id, class_id, x1, y1, x2, y2], ...]}``.
        previous: the previous part's tracks in the same frames, ``{frame: [(id, class_id, box_xyxy), ...]}``.

    Two tracks match when they have the same class and their boxes overlap by :data:`MIN_MATCH_IOU` on average
    over the frames where either is seen (both parts ran those frames); the best pairs first, one to one.

    Example:
        >>> lead = [{"frame": 9, "tracks": [[1, 0, 0, 0, 10, 10], [2, 0, 50, 50, 60, 60]]}]
        >>> match_tracks(lead, {9: [(7, 0, [0, 0, 10, 10]), (8, 0, [50, 50, 61, 60])]})
        {1: 7, 2: 8}
    """
    overlap: Counter[tuple[int, int]] = Counter()
    seen_here: Counter[int] = Counter()
    seen_before: Counter[int] = Counter()
    for record in lead:
        before = previous.get(record["frame"])
        if before is None:
            continue
        seen_before.update(gid for gid, _, _ in before)
        for tid, cls, *box in record["tracks"]:
            seen_here[tid] += 1
            for gid, gcls, gbox in before:
                if gcls == cls:
                    overlap[tid, gid] += _iou(box, gbox)
    scores = sorted(((total / max(seen_here[tid], seen_before[gid]), tid, gid)
                     for (tid, gid), total in overlap.items()), reverse=True)
    matched: dict[int, int] = {}
    taken: set[int] = set()
    for score, tid, gid in scores:
        if score >= MIN_MATCH_IOU and tid not in matched and gid not in taken:
            matched[tid] = gid
            taken.add(gid)
    return matched


def _iou(a: Sequence[float], b: Sequence[float]) -> float:
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    if w <= 0 or h <= 0:
        return 0.0
    inter = w * h
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0
