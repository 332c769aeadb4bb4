"""Max abs difference to each algorithm's reference implementation after 100 steps on a small MLP.

    python benchmarks/reference_parity.py [--steps 100] [--only lion,adan] [--json out.json]

Cases come from ``tests/reference/cases_*.py`` (see ``tests/reference/_framework.py``); a case
whose reference package is not installed is listed as skipped. Nothing is written unless
``--json`` is given.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.reference._framework import all_cases, max_abs_diff


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--only", default="", help="comma-separated case names (prefix match)")
    parser.add_argument("--json", default=None, help="write the rows to this file")
    args = parser.parse_args()
    only = [s for s in args.only.split(",") if s]
    rows = []
    print(f"{'case':28} {'reference':34} {'float32':>10} {'float64':>10}  note")
    for case in all_cases():
        if only and not any(case.name.startswith(o) for o in only):
            continue
        missing = case.missing()
        cells = {}
        for dtype in (torch.float32, torch.float64):
            if missing:
                cells[dtype] = "skipped"
            elif dtype not in case.dtypes:
                cells[dtype] = "n/a"
            else:
                ours, ref = case.run(dtype, args.steps)
                cells[dtype] = f"{max_abs_diff(ours, ref):.2e}"
        note = f"missing {', '.join(missing)}" if missing else case.note
        f32, f64 = cells[torch.float32], cells[torch.float64]
        print(f"{case.name:28} {case.reference:34} {f32:>10} {f64:>10}  {note}")
        rows.append(
            {"case": case.name, "reference": case.reference, "steps": args.steps, "note": note}
            | {str(k).removeprefix("torch."): v for k, v in cells.items()}
        )
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
