"""Run the torch.optim parity tests and print the parity table (algorithm x dtype: option
combinations tested, 20-step max abs difference to torch.optim with foreach=False).

Run: ``python benchmarks/parity_table.py`` (about a minute on 2 cores). Writes
``benchmarks/results/parity.json``.
"""

from __future__ import annotations

import collections
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def collect(log: Path) -> list[dict]:
    env = {**os.environ, "FO_PARITY_LOG": str(log)}
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:warnings", "-n", "2", "tests/optimizers"]
    subprocess.run(cmd, cwd=ROOT, env=env, check=True, stdout=subprocess.DEVNULL)
    return [json.loads(line) for line in log.read_text().splitlines() if line.strip()]


def table(records: list[dict]) -> dict:
    groups: dict = collections.defaultdict(lambda: {"runs": 0, "option_sets": set(), "max_abs_diff": 0.0})
    for r in records:
        g = groups[(r["algorithm"], r["dtype"])]
        g["runs"] += 1
        g["option_sets"].add(json.dumps(r["options"], sort_keys=True))
        g["max_abs_diff"] = max(g["max_abs_diff"], r["max_abs_diff"])
    return {
        f"{alg}/{dtype}": {
            "runs": g["runs"],
            "option_combinations": len(g["option_sets"]),
            "max_abs_diff": g["max_abs_diff"],
        }
        for (alg, dtype), g in sorted(groups.items())
    }


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        result = table(collect(Path(tmp) / "parity.jsonl"))
    out = ROOT / "benchmarks" / "results" / "parity.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print("| algorithm | dtype | option combinations | runs | max abs diff (20 steps) |")
    print("|---|---|---:|---:|---:|")
    for key, row in result.items():
        alg, dtype = key.split("/")
        print(
            f"| {alg} | {dtype} | {row['option_combinations']} | {row['runs']} | {row['max_abs_diff']:.2e} |"
        )
    print(f"\n{sum(r['runs'] for r in result.values())} parity runs; wrote {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
