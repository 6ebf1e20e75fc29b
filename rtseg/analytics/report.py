"""The end-of-run summary: counts per zone and line, per class, per minute of the source; JSON or CSV.

JSON (one entry per source)::

    {"sources": [{"source": "clip", "frames": 900, "duration_s": 60.0,
                  "zones": {"door": {"total": {"person": {"entries": 4, "visits": 4, "mean_dwell_s": 3.2,
                                                          "max_occupancy": 2, "mean_occupancy": 0.4}},
                                     "per_minute": [{"minute": 0, "person": {...the same keys...}}]}},
                  "lines": {"gate": {"total": {"in": {"person": 3}, "out": {"person": 1}},
                                     "per_minute": [{"minute": 0, "in": {"person": 3}, "out": {"person": 1}}]}}}]}

CSV, one row per number (``source,minute,kind,name,class,metric,value``; ``minute`` empty on the totals),
ready for a spreadsheet's pivot table. ``minute`` counts from the start of the source (its timestamps).
"""

from __future__ import annotations

import csv
import io
import json
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

from rtseg.errors import ConfigError
from rtseg.sinks.atomic import write_bytes

__all__ = ["REPORT_SUFFIXES", "ReportBuilder", "check_report_path", "write_report"]

REPORT_SUFFIXES = (".json", ".csv")
ZONE_METRICS = ("entries", "visits", "mean_dwell_s", "max_occupancy", "mean_occupancy")


def check_report_path(path: str | Path | None) -> None:
    """Refuse a report path that is neither ``.json`` nor ``.csv``."""
    if path is not None and str(path) and Path(path).suffix.lower() not in REPORT_SUFFIXES:
        raise ConfigError(f"report={path}: expected a .json or .csv file")


def _zero_zone() -> dict[str, float]:
    return {"entries": 0, "visits": 0, "dwell_total_s": 0.0, "max_occupancy": 0, "occupancy_sum": 0}


class ReportBuilder:
    """Folds in each frame's occupancy and events; :meth:`report` gives the summary of one source.

    Args:
        source: the source's tag (its name in the report).
        zone_names, line_names: the source's zones and lines.

    Example:
        >>> b = ReportBuilder("cam", ["door"], ["gate"])
        >>> b.add_frame(61.0, {"door": {"person": 2}}, [{"type": "cross", "line": "gate", "direction": "in",
        ...                                               "track_id": 3, "class_name": "person", "t": 61.0}])
        >>> r = b.report()
        >>> r["zones"]["door"]["per_minute"][0]["person"]["max_occupancy"], r["lines"]["gate"]["total"]["in"]
        (2, {'person': 1})
    """

    def __init__(self, source: str, zone_names: Sequence[str], line_names: Sequence[str]) -> None:
        self.source = source
        self.zone_names, self.line_names = list(zone_names), list(line_names)
        self.frames = 0
        self.first_s: float | None = None
        self.last_s = 0.0
        self._frames_per_minute: dict[int, int] = defaultdict(int)
        # zone -> minute -> class -> metrics
        self._zones: dict[str, dict[int, dict[str, dict]]] = {z: defaultdict(dict) for z in self.zone_names}
        # line -> minute -> direction -> class -> count
        self._lines: dict[str, dict[int, dict[str, dict[str, int]]]] = {
            n: defaultdict(lambda: {"in": {}, "out": {}}) for n in self.line_names}

    @staticmethod
    def minute(timestamp_s: float) -> int:
        return int(max(0.0, timestamp_s) // 60)

    def add_frame(self, timestamp_s: float, occupancy: dict[str, dict[str, int]], events: list[dict]) -> None:
        """One frame: ``occupancy`` is ``{zone: {class: count}}``; ``events`` as the JSONL's."""
        self.frames += 1
        self.first_s = timestamp_s if self.first_s is None else self.first_s
        self.last_s = timestamp_s
        m = self.minute(timestamp_s)
        self._frames_per_minute[m] += 1
        for zone, per_class in occupancy.items():
            for cls, n in per_class.items():
                stats = self._zones[zone][m].setdefault(cls, _zero_zone())
                stats["max_occupancy"] = max(stats["max_occupancy"], n)
                stats["occupancy_sum"] += n
        self.add_events(events)

    def add_events(self, events: list[dict]) -> None:
        """Enter, leave and cross events, each in the minute of its own time ``t``."""
        for e in events:
            m = self.minute(e["t"])
            if e["type"] == "cross":
                per_class = self._lines[e["line"]][m][e["direction"]]
                per_class[e["class_name"]] = per_class.get(e["class_name"], 0) + 1
            elif e["type"] in ("enter", "leave"):
                stats = self._zones[e["zone"]][m].setdefault(e["class_name"], _zero_zone())
                if e["type"] == "enter":
                    stats["entries"] += 1
                else:
                    stats["visits"] += 1
                    stats["dwell_total_s"] += e["dwell_s"]

    @staticmethod
    def _finish(stats: dict, frames: int) -> dict:
        return {"entries": stats["entries"], "visits": stats["visits"],
                "mean_dwell_s": round(stats["dwell_total_s"] / stats["visits"], 3) if stats["visits"] else None,
                "max_occupancy": stats["max_occupancy"],
                "mean_occupancy": round(stats["occupancy_sum"] / frames, 4) if frames else 0.0}

    def report(self) -> dict:
        """The source's summary (the module docstring shows its shape)."""
        out: dict = {"source": self.source, "frames": self.frames,
                     "duration_s": round(self.last_s - (self.first_s or 0.0), 4) if self.frames else 0.0,
                     "zones": {}, "lines": {}}
        for zone, minutes in self._zones.items():
            total: dict[str, dict] = {}
            rows = []
            for m in sorted(minutes):
                row: dict = {"minute": m}
                for cls, stats in sorted(minutes[m].items()):
                    row[cls] = self._finish(stats, self._frames_per_minute.get(m, 0))
                    t = total.setdefault(cls, _zero_zone())
                    for key in ("entries", "visits", "dwell_total_s", "occupancy_sum"):
                        t[key] += stats[key]
                    t["max_occupancy"] = max(t["max_occupancy"], stats["max_occupancy"])
                rows.append(row)
            out["zones"][zone] = {"total": {c: self._finish(s, self.frames) for c, s in sorted(total.items())},
                                  "per_minute": rows}
        for line, minutes in self._lines.items():
            totals: dict[str, dict[str, int]] = {"in": {}, "out": {}}
            rows = []
            for m in sorted(minutes):
                rows.append({"minute": m, **{d: dict(sorted(c.items())) for d, c in minutes[m].items()}})
                for d, per_class in minutes[m].items():
                    for cls, n in per_class.items():
                        totals[d][cls] = totals[d].get(cls, 0) + n
            out["lines"][line] = {"total": {d: dict(sorted(c.items())) for d, c in totals.items()}, "per_minute": rows}
        return out


def report_rows(reports: Sequence[dict]) -> list[list]:
    """The CSV rows (without header) of several sources' reports."""
    rows: list[list] = []
    for rep in reports:
        src = rep["source"]
        for zone, data in rep["zones"].items():
            for cls, stats in data["total"].items():
                rows += [[src, "", "zone", zone, cls, k, stats[k]] for k in ZONE_METRICS]
            for row in data["per_minute"]:
                for cls, stats in row.items():
                    if cls != "minute":
                        rows += [[src, row["minute"], "zone", zone, cls, k, stats[k]] for k in ZONE_METRICS]
        for line, data in rep["lines"].items():
            for d, per_class in data["total"].items():
                rows += [[src, "", "line", line, cls, d, n] for cls, n in per_class.items()]
            for row in data["per_minute"]:
                for d in ("in", "out"):
                    rows += [[src, row["minute"], "line", line, cls, d, n] for cls, n in row.get(d, {}).items()]
    return rows


def write_report(path: str | Path, reports: Sequence[dict]) -> Path:
    """Write the reports of every source (``Analytics.report()`` of each) as JSON or CSV, by suffix, through
    a temporary name (a reader never sees half a file).

    Raises:
        ConfigError: the suffix is neither .json nor .csv. SinkError: the file cannot be written.
    """
    check_report_path(path)
    path = Path(path).expanduser()
    if path.suffix.lower() == ".json":
        text = json.dumps({"sources": list(reports)}, indent=1)
    else:
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(["source", "minute", "kind", "name", "class", "metric", "value"])
        writer.writerows(["" if v is None else v for v in row] for row in report_rows(reports))
        text = buf.getvalue()
    return write_bytes(path, text, what="report")
