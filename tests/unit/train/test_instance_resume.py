"""Resumable instance training: what a call in a work folder does (fresh, resume from last.pt, done)."""

from __future__ import annotations

from pathlib import Path

from rtseg.train.instance import DONE, plan_run


def fake_run(work: Path, *files: str) -> Path:
    weights = work / "run" / "weights"
    weights.mkdir(parents=True)
    for name in files:
        (weights / name).write_bytes(b"ckpt")
    return weights


def test_empty_work_folder_starts_fresh(tmp_path: Path) -> None:
    assert plan_run(tmp_path).action == "fresh"
    assert plan_run(tmp_path / "missing").checkpoint is None


def test_interrupted_run_resumes_from_last_pt(tmp_path: Path) -> None:
    weights = fake_run(tmp_path, "last.pt", "best.pt")
    plan = plan_run(tmp_path)
    assert (plan.action, plan.checkpoint) == ("resume", weights / "last.pt")


def test_finished_run_is_done_with_its_best_pt(tmp_path: Path) -> None:
    weights = fake_run(tmp_path, "last.pt", "best.pt")
    (tmp_path / DONE).write_text("{}")
    plan = plan_run(tmp_path)
    assert (plan.action, plan.checkpoint) == ("done", weights / "best.pt")


def test_fresh_overrides_an_existing_run(tmp_path: Path) -> None:
    fake_run(tmp_path, "last.pt")
    assert plan_run(tmp_path, fresh=True).action == "fresh"
