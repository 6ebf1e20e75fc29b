"""The committed default models reproduce their model cards' held-out metrics through ``rtseg eval``.

Each model's card quotes the numbers in ``rtseg/assets/<model>.metrics.json`` (written by ``rtseg eval
--json`` when the model was trained); here the same evaluation runs again on ``../shared/data`` and must
give the same numbers (tolerance 0.005: another CPU may round a few pixels differently).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rtseg import ASSETS, DEFAULT_MODEL
from rtseg.data.shared_sets import held_out_eval_args
from tests.support import DATA, run_cli

TOLERANCE = 0.005


CASES = {  # held-out set -> (weights, key in the weights' .metrics.json)
    "instance-pets": (DEFAULT_MODEL, "test_pets"),
    "instance-pennfudan": (DEFAULT_MODEL, "test_pennfudan"),
    "pets": (ASSETS / "linknet-pets.pt", "test"),
    "aerial": (ASSETS / "linknet-aerial.pt", "test"),
}


@pytest.mark.data
@pytest.mark.slow
@pytest.mark.parametrize("case", list(CASES))
def test_committed_model_reproduces_its_model_card(case: str, tmp_path: Path) -> None:
    weights, key = CASES[case]
    reference = json.loads(weights.with_suffix(".metrics.json").read_text())[key]
    res = run_cli("eval", "--model", str(weights), *held_out_eval_args(case, tmp_path / "data", DATA), "--json",
                  str(tmp_path / "m.json"), timeout=900)
    assert res.returncode == 0, res.stderr
    got = json.loads((tmp_path / "m.json").read_text())
    assert got["images"] == reference["images"]
    for name, value in reference["metrics"].items():
        assert got["metrics"][name] == pytest.approx(value, abs=TOLERANCE), name
    for ref_row, row in zip(reference["per_class"], got["per_class"]):
        for name, value in ref_row.items():
            if isinstance(value, float):
                assert row[name] == pytest.approx(value, abs=TOLERANCE), (row["class"], name)
