"""AdamW / Muon with bfloat16 state (``state_dtype=torch.bfloat16``) against float32 state.

    python benchmarks/bf16_state.py [--steps 600] [--lr 3e-3] [--threads 1] [--out docs/bf16_state.png]
    python benchmarks/bf16_state.py --optimizer muon [--muon-lr 0.02] [--out docs/bf16_state_muon.png]

The char-level transformer of ``benchmarks/zoo.py`` (width 64, 2 layers, 4 heads, context 64,
batch 16, same initialisation and batches for every run) is trained with
``fo.adapters.AdamW(lr, weight_decay=0.01)`` three ways:

* ``float32 state``: the default (torch's numbers);
* ``bfloat16 state, stochastic rounding``: ``AdamW(..., state_dtype=torch.bfloat16)`` (half the
  state memory; the moments are computed in float32 and stored with stochastic rounding);
* ``bfloat16 state, round to nearest``: the float32 optimizer whose moments are rounded to
  bfloat16 (to nearest) after every step, what a plain ``.to(torch.bfloat16)`` storage gives:
  the contrast that shows what the stochastic rounding buys.

With ``--optimizer muon`` the hidden matrices (attention and MLP weights) are trained with
``fo.adapters.Muon(muon_lr)`` and the rest (embeddings, head, norms) with float32
``fo.adapters.AdamW(lr, weight_decay=0.01)`` in every run; the three ways above then apply to
Muon's momentum buffers (``Muon(..., state_dtype=torch.bfloat16)``), and the state bytes counted
are those of Muon's buffers.

It prints the final loss of each (mean training loss of the last 10 % of steps), its ratio to
the float32 run and the optimizer state's bytes, and with ``--out`` plots the loss curves.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from zoo import TransformerTask, _smooth, final_loss

import functional_optim as fo

_LOW_KEYS = ("exp_avg", "exp_avg_sq", "momentum_buffer")


def _nearest_bf16_after_step(opt: torch.optim.Optimizer) -> None:
    for st in opt.state.values():
        for key in _LOW_KEYS:
            if key in st:
                st[key].copy_(st[key].to(torch.bfloat16))


def state_bytes(opt: torch.optim.Optimizer) -> int:
    return sum(
        v.numel() * v.element_size()
        for st in opt.state.values()
        for k, v in st.items()
        if isinstance(v, torch.Tensor) and k != "step"
    )


def _is_hidden_matrix(name: str, p: torch.nn.Parameter) -> bool:
    return p.ndim == 2 and name.startswith("blocks.")


def make_optimizers(
    model: torch.nn.Module, kind: str, optimizer: str, lr: float, muon_lr: float
) -> tuple[torch.optim.Optimizer, list[torch.optim.Optimizer]]:
    """The optimizer whose state is measured (bfloat16 or float32 per ``kind``) and all optimizers."""
    extra = {"state_dtype": torch.bfloat16} if kind == "bf16_stochastic" else {}
    if optimizer == "adamw":
        opt = fo.adapters.AdamW(model.parameters(), lr=lr, weight_decay=0.01, **extra)
        return opt, [opt]
    named = list(model.named_parameters())
    hidden = [p for n, p in named if _is_hidden_matrix(n, p)]
    rest = [p for n, p in named if not _is_hidden_matrix(n, p)]
    muon = fo.adapters.Muon(hidden, lr=muon_lr, **extra)
    return muon, [muon, fo.adapters.AdamW(rest, lr=lr, weight_decay=0.01)]


def train(
    task: TransformerTask, kind: str, lr: float, steps: int, optimizer: str = "adamw", muon_lr: float = 0.02
) -> dict[str, Any]:
    model = task.model()
    measured, opts = make_optimizers(model, kind, optimizer, lr, muon_lr)
    losses = []
    start = time.perf_counter()
    for step in range(steps):
        for opt in opts:
            opt.zero_grad(set_to_none=True)
        loss = task.loss(model, step)
        loss.backward()
        for opt in opts:
            opt.step()
        if kind == "bf16_nearest":
            _nearest_bf16_after_step(measured)
        losses.append(float(loss.detach()))
    return {"loss": losses, "seconds": time.perf_counter() - start, "state_bytes": state_bytes(measured)}


LABELS = {
    "fp32": "float32 state",
    "bf16_stochastic": "bfloat16 state, stochastic rounding (state_dtype=torch.bfloat16)",
    "bf16_nearest": "bfloat16 state, round to nearest",
}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=600)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default=None, help="write the loss curves to this PNG")
    ap.add_argument("--optimizer", choices=("adamw", "muon"), default="adamw")
    ap.add_argument("--muon-lr", type=float, default=0.02, help="Muon's lr (--optimizer muon)")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    task = TransformerTask()
    runs = {kind: train(task, kind, args.lr, args.steps, args.optimizer, args.muon_lr) for kind in LABELS}
    base = final_loss(runs["fp32"]["loss"])
    what = (
        f"AdamW lr={args.lr}, wd=0.01"
        if args.optimizer == "adamw"
        else f"Muon lr={args.muon_lr} on the hidden matrices (its momentum), AdamW lr={args.lr} elsewhere"
    )
    print(f"char transformer, {what}, {args.steps} steps, torch {torch.__version__}")
    print(f"{'state':68s} {'final loss':>10s} {'vs fp32':>8s} {'state MiB':>9s} {'s':>6s}")
    for kind, r in runs.items():
        f = final_loss(r["loss"])
        r["final_loss"], r["ratio"] = f, f / base
        mib = r["state_bytes"] / 2**20
        print(f"{LABELS[kind]:68s} {f:10.4f} {f / base:8.4f} {mib:9.3f} {r['seconds']:6.1f}")
    if args.out:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(8, 5))
        for kind, r in runs.items():
            ax.plot(
                range(1, args.steps + 1),
                _smooth(r["loss"], 20),
                label=f"{LABELS[kind]}: final {r['final_loss']:.4f} ({r['ratio']:.3f}x)",
                lw=1.2,
            )
        ax.set_xlabel("step")
        ax.set_ylabel("training loss (moving average of 20 steps)")
        ax.set_yscale("log")
        ax.legend(fontsize=8)
        ax.set_title(
            "AdamW on a char-level transformer: bfloat16 vs float32 moments"
            if args.optimizer == "adamw"
            else "Muon on a char-level transformer: bfloat16 vs float32 momentum"
        )
        fig.tight_layout()
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(out, dpi=110)
        print(f"wrote {out}")
    return runs


if __name__ == "__main__":
    main()
