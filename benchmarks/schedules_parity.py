"""Parity of ``functional_optim.schedules`` with ``torch.optim.lr_scheduler``.

For every torch scheduler and several argument combinations, torch's scheduler drives a
``torch.optim.SGD`` optimizer for 1000+ steps (``optimizer.step(); scheduler.step()``) and the
learning rate (and momentum for CyclicLR/OneCycleLR) is read from ``param_groups[0]`` before each
step; our schedule is evaluated once on ``torch.arange(steps)``. Prints the maximum relative
difference per scheduler and writes ``benchmarks/results/schedules_parity.json``.

Run: ``python benchmarks/schedules_parity.py``
"""

from __future__ import annotations

import itertools
import json
import sys
import time
from pathlib import Path

import torch
from torch.optim import lr_scheduler as lrs

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from functional_optim import schedules as sch  # noqa: E402
from tests.schedules._cases import cases, max_rel_diff, our_values, torch_values  # noqa: E402


def plateau_rows(steps: int = 1000) -> list[dict]:
    """ReduceLROnPlateau: our transform's ``state.lr`` vs torch's lr over a noisy metric curve."""
    g = torch.Generator().manual_seed(0)
    t = torch.arange(steps, dtype=torch.float64)
    curve = (1.0 / (1 + 0.02 * t) + 0.01 * torch.randn(steps, generator=g, dtype=torch.float64)).tolist()
    rows = []
    for mode, tmode, (patience, cooldown, min_lr) in itertools.product(
        ["min", "max"], ["rel", "abs"], [(10, 0, 0.0), (3, 5, 1e-4)]
    ):
        kw = dict(
            mode=mode, threshold_mode=tmode, patience=patience, cooldown=cooldown, min_lr=min_lr, factor=0.5
        )
        opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
        ref = lrs.ReduceLROnPlateau(opt, **kw)
        tx = sch.reduce_lr_on_plateau(lr=0.1, **kw)
        state = tx.init([torch.zeros(1)])
        ours, theirs = [], []
        for m in curve:
            m = m if mode == "min" else -m
            opt.step()
            ref.step(m)
            _, state = tx.update([torch.zeros(1)], state, value=m)
            ours.append(float(state.lr))
            theirs.append(float(opt.param_groups[0]["lr"]))
        label = ", ".join(f"{k}={v}" for k, v in kw.items())
        rows.append(
            {
                "scheduler": "ReduceLROnPlateau",
                "label": label,
                "steps": steps,
                "max_rel_diff_lr": max_rel_diff(torch.tensor(ours, dtype=torch.float64), theirs),
                "max_rel_diff_momentum": None,
                "reductions": len(set(theirs)) - 1,
            }
        )
    return rows


def main() -> None:
    start = time.perf_counter()
    rows = []
    for case in cases():
        lrs, moms = torch_values(case, step_optimizer=True)
        row = {
            "scheduler": case.scheduler,
            "label": case.label,
            "steps": case.steps,
            "max_rel_diff_lr": max_rel_diff(our_values(case.ours, case.steps), lrs),
            "max_rel_diff_momentum": (
                max_rel_diff(our_values(case.ours_momentum, case.steps), moms) if case.ours_momentum else None
            ),
        }
        rows.append(row)
    rows += plateau_rows()

    summary: dict[str, dict] = {}
    for r in rows:
        s = summary.setdefault(
            r["scheduler"], {"cases": 0, "steps": 0, "max_rel_diff_lr": 0.0, "max_rel_diff_momentum": None}
        )
        s["cases"] += 1
        s["steps"] += r["steps"]
        s["max_rel_diff_lr"] = max(s["max_rel_diff_lr"], r["max_rel_diff_lr"])
        if r["max_rel_diff_momentum"] is not None:
            s["max_rel_diff_momentum"] = max(s["max_rel_diff_momentum"] or 0.0, r["max_rel_diff_momentum"])

    print("| torch scheduler | cases | steps (total) | max rel. diff lr | max rel. diff momentum |")
    print("|---|---:|---:|---:|---:|")
    for name, s in summary.items():
        mom = "-" if s["max_rel_diff_momentum"] is None else f"{s['max_rel_diff_momentum']:.2e}"
        print(f"| {name} | {s['cases']} | {s['steps']} | {s['max_rel_diff_lr']:.2e} | {mom} |")

    out = ROOT / "benchmarks" / "results" / "schedules_parity.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    payload = {"torch": torch.__version__, "summary": summary, "cases": rows}
    out.write_text(json.dumps(payload, indent=1) + "\n")
    print(f"\nwrote {out.relative_to(ROOT)} ({len(rows)} cases, {time.perf_counter() - start:.1f} s)")


if __name__ == "__main__":
    main()
