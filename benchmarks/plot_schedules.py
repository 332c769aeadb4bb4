"""Draw every schedule of ``functional_optim.schedules`` into ``docs/schedules.png``.

Run: ``python benchmarks/plot_schedules.py`` (needs matplotlib).
"""

from __future__ import annotations

import sys
from pathlib import Path

import matplotlib.pyplot as plt
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from functional_optim import schedules as sch  # noqa: E402

N = 300
B = 0.1


def plateau_curve() -> tuple[list[float], list[float]]:
    """``reduce_lr_on_plateau``'s rate for a noisy loss that flattens out."""
    g = torch.Generator().manual_seed(0)
    t = torch.arange(N, dtype=torch.float64)
    loss = (1 / (1 + 0.05 * t) + 0.01 * torch.randn(N, generator=g, dtype=torch.float64)).tolist()
    tx = sch.reduce_lr_on_plateau(lr=B, patience=10, factor=0.5)
    state = tx.init([torch.zeros(1)])
    lrs = []
    for m in loss:
        _, state = tx.update([torch.zeros(1)], state, value=m)
        lrs.append(float(state.lr))
    return lrs, loss


PANELS = {
    "lambda_lr(0.1, 1/(1+0.02t))": sch.lambda_lr(B, lambda t: 1 / (1 + 0.02 * t)),
    "multiplicative_lr(0.1, 0.99)": sch.multiplicative_lr(B, lambda k: 0.99),
    "step_lr(0.1, 60, 0.5)": sch.step_lr(B, 60, 0.5),
    "multi_step_lr(0.1, [50, 150, 250])": sch.multi_step_lr(B, [50, 150, 250], 0.3),
    "constant_lr(0.1, 1/3, 80)": sch.constant_lr(B, 1 / 3, 80),
    "linear_lr(0.1, 0.2, 1.0, 100)": sch.linear_lr(B, 0.2, 1.0, 100),
    "exponential_lr(0.1, 0.99)": sch.exponential_lr(B, 0.99),
    "polynomial_lr(0.1, 250, 2)": sch.polynomial_lr(B, 250, 2.0),
    "cosine_annealing_lr(0.1, 100, 0.01)\n(past T_max: period 2 T_max)": sch.cosine_annealing_lr(
        B, 100, 0.01
    ),
    "cosine_annealing_warm_restarts(0.1, 20, 2)": sch.cosine_annealing_warm_restarts(B, 20, 2),
    "cyclic_lr triangular / triangular2 / exp_range": [
        sch.cyclic_lr(0.01, B, 40),
        sch.cyclic_lr(0.01, B, 40, mode="triangular2"),
        sch.cyclic_lr(0.01, B, 40, mode="exp_range", gamma=0.995),
    ],
    "cyclic_momentum(0.8, 0.9, 40)": sch.cyclic_momentum(0.8, 0.9, 40),
    "one_cycle_lr cos / linear / three_phase": [
        sch.one_cycle_lr(B, total_steps=N),
        sch.one_cycle_lr(B, total_steps=N, anneal_strategy="linear"),
        sch.one_cycle_lr(B, total_steps=N, three_phase=True),
    ],
    "one_cycle_momentum cos / three_phase": [
        sch.one_cycle_momentum(total_steps=N),
        sch.one_cycle_momentum(total_steps=N, three_phase=True),
    ],
    "sequential_lr(linear_lr -> cosine)": sch.sequential_lr(
        [sch.linear_lr(B, 0.1, 1.0, 30), sch.cosine_annealing_lr(B, 270)], [30]
    ),
    "chained_scheduler(constant_lr x exponential_lr)": sch.chained_scheduler(
        [sch.constant_lr(B, 0.1, 40), sch.exponential_lr(B, 0.99)], B
    ),
    "swa_lr(0.1->0.02, 100) cos / linear": [
        sch.swa_lr(B, 0.02, 100, "cos"),
        sch.swa_lr(B, 0.02, 100, "linear"),
    ],
    "constant(0.1)": sch.constant(B),
    "linear(0.1 -> 0.01, 200, begin 50)": sch.linear(B, 0.01, 200, 50),
    "cosine_decay(0.1, 250, alpha=0.1)": sch.cosine_decay(B, 250, 0.1),
    "piecewise_constant(0.1, {100: 0.5, 200: 0.2})": sch.piecewise_constant(B, {100: 0.5, 200: 0.2}),
    "join_schedules([constant, exponential], [100])": sch.join_schedules(
        [sch.constant(0.05), sch.exponential_lr(B, 0.98)], [100]
    ),
    "linear_warmup(step_lr, 50)": sch.linear_warmup(sch.step_lr(B, 80, 0.5), 50),
    "warmup_cosine_decay(0, 0.1, 30, 300)": sch.warmup_cosine_decay(0.0, B, 30, N, end_value=1e-3),
}


def main() -> None:
    plt.switch_backend("Agg")  # a script writing a file; importing this module keeps the backend
    names = [*PANELS, "reduce_lr_on_plateau(lr=0.1, patience=10, factor=0.5)"]
    cols = 5
    rows = -(-len(names) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 2.8 * rows), constrained_layout=True)
    steps = torch.arange(N)
    for ax, name in zip(axes.flat, names, strict=False):
        if name in PANELS:
            scheds = PANELS[name] if isinstance(PANELS[name], list) else [PANELS[name]]
            # multi-curve panels are titled "<function> <variant> / <variant> / ..."
            labels = name.split(" ", 1)[1].split(" / ") if len(scheds) > 1 else [None]
            for s, label in zip(scheds, labels, strict=True):
                ax.plot(steps, torch.as_tensor(s(steps)).expand(N).numpy(), lw=1.4, label=label)
            if len(scheds) > 1:
                ax.legend(fontsize=7)
        else:
            lrs, loss = plateau_curve()
            ax.plot(steps, lrs, lw=1.4, label="lr")
            ax2 = ax.twinx()
            ax2.plot(steps, loss, lw=0.6, color="gray", alpha=0.6)
            ax2.set_yticks([])
        ax.set_title(name, fontsize=8.5)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(names) :]:
        ax.axis("off")
    fig.suptitle("functional_optim.schedules: value vs. count (completed steps)", fontsize=13)
    out = ROOT / "docs" / "schedules.png"
    fig.savefig(out, dpi=90)
    print(f"wrote {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
