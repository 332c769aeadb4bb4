"""Train a small classifier with an optimizer composed from transforms.

The optimizer is built from small pure pieces -- gradient clipping, Adam's moments, decoupled
weight decay, a warmup + cosine learning-rate schedule -- and the training loop is pure too:
``params -> grads -> (updates, state) -> new params``. Run: ``python examples/demo.py``.
"""

from __future__ import annotations

import argparse
import math
import time

import torch
from torch import nn
from torch.func import functional_call, grad_and_value
from tqdm import tqdm

import functional_optim as fo


def two_spirals(n: int, noise: float = 0.2, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """A classic non-linearly-separable 2-class problem."""
    gen = torch.Generator().manual_seed(seed)
    t = torch.rand(n, generator=gen) * 3 * math.pi + 0.5
    label = torch.randint(0, 2, (n,), generator=gen)
    sign = 1 - 2 * label.float()
    x = torch.stack([sign * t * torch.cos(t), sign * t * torch.sin(t)], dim=1) / 5
    return x + noise * torch.randn(n, 2, generator=gen) / 5, label


def make_optimizer(steps: int, peak_lr: float = 1e-2) -> fo.GradientTransformation:
    """clip -> Adam moments -> decoupled weight decay -> warmup+cosine learning rate."""
    schedule = fo.schedules.warmup_cosine_decay(
        init_value=0.0,
        peak_value=peak_lr,
        warmup_steps=steps // 20,
        decay_steps=steps,
        end_value=peak_lr / 100,
    )
    return fo.chain(
        fo.clip_by_global_norm(1.0),
        fo.scale_by_adam(b1=0.9, b2=0.999),
        fo.add_decayed_weights(1e-4),
        fo.scale_by_learning_rate(schedule),
    )


def main(steps: int = 1000, batch_size: int = 256, seed: int = 0) -> float:
    torch.manual_seed(seed)
    x, y = two_spirals(4096, seed=seed)
    model = nn.Sequential(nn.Linear(2, 64), nn.Tanh(), nn.Linear(64, 64), nn.Tanh(), nn.Linear(64, 2))
    params = {name: p.detach() for name, p in model.named_parameters()}

    def loss_fn(params: dict, xb: torch.Tensor, yb: torch.Tensor) -> torch.Tensor:
        return nn.functional.cross_entropy(functional_call(model, params, (xb,)), yb)

    grad_fn = grad_and_value(loss_fn)
    opt = make_optimizer(steps)
    state = opt.init(params)
    gen = torch.Generator().manual_seed(seed + 1)
    start = time.perf_counter()
    bar = tqdm(range(steps), desc="training", unit="step")
    for step in bar:
        idx = torch.randint(0, x.shape[0], (batch_size,), generator=gen)
        grads, loss = grad_fn(params, x[idx], y[idx])
        updates, state = opt.update(grads, state, params)
        params = fo.apply_updates(params, updates)
        if step % 50 == 0:
            bar.set_postfix(loss=f"{loss.item():.4f}")
    with torch.no_grad():
        final_loss = loss_fn(params, x, y).item()
        accuracy = (functional_call(model, params, (x,)).argmax(1) == y).float().mean().item()
    print(f"final loss {final_loss:.4f}  accuracy {accuracy:.1%}  ({time.perf_counter() - start:.1f}s)")
    return final_loss


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=1000)
    args = parser.parse_args()
    main(steps=args.steps)
