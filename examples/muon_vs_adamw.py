"""Muon (+ AdamW for the non-matrix parameters) vs AdamW on a small char-level transformer.

The text is ``examples/data/tzdata.txt``: the IANA time zone database in compact ``zic`` input form
(``/usr/share/zoneinfo/tzdata.zi``, tzdata 2025b), which states "This zic input file is in the
public domain." (https://www.iana.org/time-zones).

Both runs train the same model from the same initialisation on the same batches:

* ``adamw``: ``fo.adamw`` on every parameter;
* ``muon``: ``fo.muon_with_adamw``: Muon for the hidden matrices (attention / MLP weights),
  AdamW (the same settings as the ``adamw`` run) for embeddings, the output head, norms and biases.

Run ``python examples/muon_vs_adamw.py [--steps N]``: prints the validation loss at equal steps and
at equal wall-clock. From a notebook: ``from examples.muon_vs_adamw import run_comparison``;
``run_comparison()`` returns the loss curves and wall-clock times.
"""

from __future__ import annotations

import argparse
import itertools
import math
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F  # noqa: N812

import functional_optim as fo

DATA = Path(__file__).parent / "data" / "tzdata.txt"


class Block(nn.Module):
    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.ln_1 = nn.LayerNorm(width)
        self.qkv = nn.Linear(width, 3 * width, bias=False)
        self.attn_proj = nn.Linear(width, width, bias=False)
        self.ln_2 = nn.LayerNorm(width)
        self.fc = nn.Linear(width, 4 * width, bias=False)
        self.mlp_proj = nn.Linear(4 * width, width, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, c = x.shape
        q, k, v = self.qkv(self.ln_1(x)).split(c, dim=-1)
        q, k, v = (z.view(b, t, self.heads, c // self.heads).transpose(1, 2) for z in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True).transpose(1, 2).reshape(b, t, c)
        x = x + self.attn_proj(y)
        return x + self.mlp_proj(F.gelu(self.fc(self.ln_2(x))))


class CharTransformer(nn.Module):
    """A GPT-style character model: token + position embeddings, pre-norm blocks, a linear head."""

    def __init__(
        self, vocab: int, width: int = 64, layers: int = 2, heads: int = 4, context: int = 64
    ) -> None:
        super().__init__()
        self.tok_emb = nn.Embedding(vocab, width)
        self.pos_emb = nn.Embedding(context, width)
        self.blocks = nn.ModuleList(Block(width, heads) for _ in range(layers))
        self.ln_f = nn.LayerNorm(width)
        self.lm_head = nn.Linear(width, vocab, bias=False)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        x = self.tok_emb(idx) + self.pos_emb(torch.arange(idx.shape[1]))
        for block in self.blocks:
            x = block(x)
        return self.lm_head(self.ln_f(x))


def load_text(path: Path = DATA) -> tuple[torch.Tensor, list[str]]:
    text = path.read_text(encoding="utf-8")
    chars = sorted(set(text))
    index = {ch: i for i, ch in enumerate(chars)}
    return torch.tensor([index[ch] for ch in text], dtype=torch.long), chars


def _batch(
    data: torch.Tensor, batch: int, context: int, gen: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    start = torch.randint(0, len(data) - context - 1, (batch,), generator=gen)
    x = torch.stack([data[s : s + context] for s in start.tolist()])
    y = torch.stack([data[s + 1 : s + context + 1] for s in start.tolist()])
    return x, y


def train(
    optimizer: str,
    *,
    steps: int = 200,
    batch: int = 32,
    context: int = 64,
    width: int = 64,
    layers: int = 2,
    eval_every: int = 25,
    seed: int = 0,
    adamw_lr: float = 3e-3,
    muon_lr: float = 0.02,
) -> dict[str, Any]:
    """Train one model; return its curves: ``step``, ``time`` (s, excluding evaluation), ``val_loss``,
    and the per-step ``train_loss``."""
    data, chars = load_text()
    split = int(0.9 * len(data))
    train_data, val_data = data[:split], data[split:]
    torch.manual_seed(seed)
    model = CharTransformer(len(chars), width, layers, context=context)
    params = {k: v.detach() for k, v in model.named_parameters()}
    adamw_kwargs = {"lr": adamw_lr, "betas": (0.9, 0.95), "weight_decay": 0.01}
    if optimizer == "adamw":
        opt = fo.adamw(**adamw_kwargs)
    elif optimizer == "muon":
        opt = fo.muon_with_adamw({"lr": muon_lr, "weight_decay": 0.01}, adamw_kwargs)
    else:
        raise ValueError(f"optimizer must be 'adamw' or 'muon', got {optimizer!r}")
    state = opt.init(params)
    gen = torch.Generator().manual_seed(seed + 1)
    val_gen = torch.Generator().manual_seed(1234)
    val_batches = [_batch(val_data, batch, context, val_gen) for _ in range(4)]

    def val_loss() -> float:
        with torch.no_grad():
            losses = [F.cross_entropy(model(x).flatten(0, 1), y.flatten()).item() for x, y in val_batches]
        return sum(losses) / len(losses)

    curves: dict[str, Any] = {"step": [0], "time": [0.0], "val_loss": [val_loss()], "train_loss": []}
    elapsed = 0.0
    for step in range(1, steps + 1):
        t0 = time.perf_counter()
        x, y = _batch(train_data, batch, context, gen)
        model.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(x).flatten(0, 1), y.flatten())
        loss.backward()
        grads = {k: p.grad for k, p in model.named_parameters()}
        updates, state = opt.update(grads, state, params)
        params = fo.apply_updates(params, updates)
        with torch.no_grad():
            for k, p in model.named_parameters():
                p.copy_(params[k])
        params = {k: v.detach() for k, v in model.named_parameters()}
        elapsed += time.perf_counter() - t0
        curves["train_loss"].append(loss.item())
        if step % eval_every == 0 or step == steps:
            curves["step"].append(step)
            curves["time"].append(elapsed)
            curves["val_loss"].append(val_loss())
    return curves


def _interp(times: list[float], losses: list[float], t: float) -> float:
    """Validation loss at wall-clock ``t`` (linear interpolation between evaluations)."""
    pts = list(zip(times, losses, strict=True))
    for (t0, l0), (t1, l1) in itertools.pairwise(pts):
        if t0 <= t <= t1:
            return l0 + (l1 - l0) * (t - t0) / max(t1 - t0, 1e-12)
    return losses[-1] if t >= times[-1] else losses[0]


def run_comparison(steps: int = 200, seed: int = 0, threads: int | None = 1, **kwargs: Any) -> dict[str, Any]:
    """Train with AdamW and with Muon+AdamW; return ``{"adamw": curves, "muon": curves}`` (see
    :func:`train`) plus ``"equal_time"``: both validation losses at shared wall-clock points.

    ``threads``: torch intra-op threads during the runs (restored afterwards; ``None`` keeps the
    current setting). The default 1 is the fastest for this tiny model and keeps the timings sane on
    a shared machine: with 2 threads on 2 busy cores, OpenMP spin-waiting made steps ~20x slower.
    """
    previous = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        results = {name: train(name, steps=steps, seed=seed, **kwargs) for name in ("adamw", "muon")}
    finally:
        torch.set_num_threads(previous)
    horizon = min(results["adamw"]["time"][-1], results["muon"]["time"][-1])
    points = [horizon * f for f in (0.25, 0.5, 0.75, 1.0)]
    results["equal_time"] = {
        "time": points,
        **{
            name: [_interp(results[name]["time"], results[name]["val_loss"], t) for t in points]
            for name in ("adamw", "muon")
        },
    }
    return results


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--threads", type=int, default=1, help="torch threads (default 1, see run_comparison)"
    )
    args = parser.parse_args()
    res = run_comparison(steps=args.steps, seed=args.seed, threads=args.threads)
    a, m = res["adamw"], res["muon"]
    print(f"validation loss (nats/char; uniform = {math.log(len(load_text()[1])):.2f}) at equal steps")
    print(f"{'step':>6} {'AdamW':>8} {'Muon':>8}")
    for i, step in enumerate(a["step"]):
        if i % 2 == 0 or step == a["step"][-1]:
            print(f"{step:>6} {a['val_loss'][i]:>8.3f} {m['val_loss'][i]:>8.3f}")
    print(
        f"\nwall-clock for {args.steps} steps (training only): "
        f"AdamW {a['time'][-1]:.1f} s, Muon {m['time'][-1]:.1f} s"
    )
    print("\nvalidation loss at equal wall-clock")
    print(f"{'time (s)':>9} {'AdamW':>8} {'Muon':>8}")
    eq = res["equal_time"]
    for t, la, lm in zip(eq["time"], eq["adamw"], eq["muon"], strict=True):
        print(f"{t:>9.1f} {la:>8.3f} {lm:>8.3f}")


if __name__ == "__main__":
    main()
