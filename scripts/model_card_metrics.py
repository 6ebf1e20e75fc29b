"""Evaluate a default model on its held-out set(s) with ``rtseg eval`` and write ``<weights>.metrics.json``.

    python scripts/model_card_metrics.py rtseg/assets/yolo11n-seg-person-cat-dog.pt instance-pets instance-pennfudan
    python scripts/model_card_metrics.py rtseg/assets/linknet-pets.pt pets
    python scripts/model_card_metrics.py rtseg/assets/linknet-aerial.pt aerial

The JSON maps each set's split name to ``rtseg eval``'s report; the model cards quote it and
``tests/integration/test_default_models.py`` checks that the committed weights still reproduce it.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

from rtseg.data.shared_sets import HELD_OUT_SETS, held_out_eval_args

KEYS = {"instance-pets": "test_pets", "instance-pennfudan": "test_pennfudan", "pets": "test", "aerial": "test"}


def main() -> None:
    weights, cases = Path(sys.argv[1]), sys.argv[2:]
    if not cases or set(cases) - set(HELD_OUT_SETS):
        sys.exit(f"usage: {sys.argv[0]} WEIGHTS {{{','.join(HELD_OUT_SETS)}}} ...")
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        for case in cases:
            report = Path(tmp) / f"{case}.json"
            cmd = ["rtseg", "eval", "--model", str(weights), *held_out_eval_args(case, Path(tmp) / case),
                   "--json", str(report), "--plot", str(weights.with_name(f"{weights.stem}.{KEYS[case]}.png"))]
            subprocess.run(cmd, check=True)
            out[KEYS[case]] = {**json.loads(report.read_text()), "data": f"held-out set {case!r} (temporary links)"}
    target = weights.with_suffix(".metrics.json")
    target.write_text(json.dumps(out, indent=1) + "\n")
    print(target)


if __name__ == "__main__":
    main()
