"""MAML on sinusoid regression (Finn, Abbeel & Levine 2017, section 5.1) with an Adam inner loop.

Tasks are ``y = A sin(x - φ)`` with amplitude ``A ~ U[0.1, 5]``, phase ``φ ~ U[0, π]`` and
``x ~ U[-5, 5]``; each task gives ``K = 10`` support points to adapt on and 10 query points
to evaluate the adapted model. The model is Finn's MLP 1-40-40-1 (ReLU). The inner loop is
``inner_steps`` steps of ``fo.adam`` run by :func:`functional_optim.unroll`; the outer
(meta) loop differentiates the query loss through those steps with ``torch.func.grad``
(second-order MAML), batched over tasks with ``torch.func.vmap``, and updates the
initialization with ``fo.adam`` as well.

Evaluation on held-out tasks (10 support points, 100 query points) compares:

* the MAML initialization *before* adaptation (it predicts roughly the average task: ~0),
* the MAML initialization *after* adaptation (the point of MAML),
* baselines adapted with the same inner loop: a random initialization, and a network
  pretrained on all tasks jointly (Finn et al.'s baseline).

Run: ``python examples/maml_sinusoid.py`` (about a minute on 2 CPU cores).
"""

from __future__ import annotations

import argparse
import math
import time

import torch
from torch.func import grad_and_value, vmap

import functional_optim as fo

Params = dict[str, torch.Tensor]
SHOTS = 10


def sample_tasks(n: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` tasks: amplitudes in [0.1, 5] and phases in [0, π]."""
    amplitude = 0.1 + 4.9 * torch.rand(n, generator=gen)
    phase = math.pi * torch.rand(n, generator=gen)
    return amplitude, phase


def sample_points(
    amplitude: torch.Tensor, phase: torch.Tensor, k: int, gen: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """``k`` points per task: ``x ~ U[-5, 5]``, ``y = A sin(x - φ)``; shapes ``(tasks, k, 1)``."""
    x = 10 * torch.rand(amplitude.shape[0], k, 1, generator=gen) - 5
    return x, amplitude[:, None, None] * torch.sin(x - phase[:, None, None])


def init_mlp(gen: torch.Generator, hidden: int = 40) -> Params:
    """Finn's 1-40-40-1 MLP with PyTorch's default (Kaiming-uniform) initialization."""

    def linear(n_in: int, n_out: int) -> tuple[torch.Tensor, torch.Tensor]:
        bound = 1 / math.sqrt(n_in)
        w = (2 * torch.rand(n_in, n_out, generator=gen) - 1) * bound
        b = (2 * torch.rand(n_out, generator=gen) - 1) * bound
        return w, b

    w1, b1 = linear(1, hidden)
    w2, b2 = linear(hidden, hidden)
    w3, b3 = linear(hidden, 1)
    return {"w1": w1, "b1": b1, "w2": w2, "b2": b2, "w3": w3, "b3": b3}


def forward(params: Params, x: torch.Tensor) -> torch.Tensor:
    h = torch.relu(x @ params["w1"] + params["b1"])
    h = torch.relu(h @ params["w2"] + params["b2"])
    return h @ params["w3"] + params["b3"]


def mse(params: Params, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return ((forward(params, x) - y) ** 2).mean()


def adapt(params: Params, x: torch.Tensor, y: torch.Tensor, steps: int, lr: float | torch.Tensor) -> Params:
    """``steps`` full-batch ``fo.adam(lr)`` steps on the support set (differentiable)."""
    return fo.unroll(fo.adam(lr=lr), mse, params, batches=[(x, y)] * steps).params


def meta_train(
    iterations: int = 1000,
    meta_batch: int = 10,
    inner_steps: int = 3,
    inner_lr: float = 0.03,
    outer_lr: float = 1e-2,
    first_order: bool = False,
    seed: int = 0,
    log_every: int = 0,
) -> tuple[Params, list[float]]:
    """Meta-train an initialization; ``inner_steps=0`` gives the joint-training baseline.

    Returns the initialization and the meta-loss (mean post-adaptation query MSE) history.
    """
    gen = torch.Generator().manual_seed(seed)
    params = init_mlp(gen)
    outer = fo.adam(lr=outer_lr)
    outer_state = outer.init(params)

    def task_loss(theta: Params, xs: torch.Tensor, ys: torch.Tensor, xq: torch.Tensor, yq: torch.Tensor):
        out = fo.unroll(
            fo.adam(lr=inner_lr), mse, theta, batches=[(xs, ys)] * inner_steps, first_order=first_order
        )
        return mse(out.params, xq, yq)

    def meta_loss(theta: Params, xs, ys, xq, yq) -> torch.Tensor:
        return vmap(task_loss, in_dims=(None, 0, 0, 0, 0))(theta, xs, ys, xq, yq).mean()

    meta_value_and_grad = grad_and_value(meta_loss)
    history = []
    for it in range(iterations):
        amplitude, phase = sample_tasks(meta_batch, gen)
        x, y = sample_points(amplitude, phase, 2 * SHOTS, gen)
        grads, value = meta_value_and_grad(params, x[:, :SHOTS], y[:, :SHOTS], x[:, SHOTS:], y[:, SHOTS:])
        updates, outer_state = outer.update(grads, outer_state, params)
        params = fo.apply_updates(params, updates)
        history.append(value.item())
        if log_every and (it + 1) % log_every == 0:
            print(f"  iteration {it + 1:5d}  meta-loss {sum(history[-log_every:]) / log_every:.3f}")
    return params, history


def evaluate(
    params: Params,
    inner_steps: int,
    inner_lr: float,
    n_tasks: int = 200,
    queries: int = 100,
    seed: int = 12345,
) -> dict[str, float]:
    """Mean query MSE over ``n_tasks`` held-out tasks before and after adapting on 10 shots."""
    gen = torch.Generator().manual_seed(seed)
    amplitude, phase = sample_tasks(n_tasks, gen)
    xs, ys = sample_points(amplitude, phase, SHOTS, gen)
    xq, yq = sample_points(amplitude, phase, queries, gen)

    def post(xs_, ys_, xq_, yq_):
        return mse(adapt(params, xs_, ys_, inner_steps, inner_lr), xq_, yq_)

    with torch.no_grad():
        pre = vmap(mse, in_dims=(None, 0, 0))(params, xq, yq).mean().item()
    after = vmap(post)(xs, ys, xq, yq).mean().item()
    return {"pre_adaptation_mse": pre, "post_adaptation_mse": after}


def run(
    iterations: int = 1000,
    inner_steps: int = 3,
    eval_inner_steps: int = 10,
    inner_lr: float = 0.03,
    meta_batch: int = 10,
    seed: int = 0,
    log_every: int = 0,
) -> dict:
    """Meta-train MAML and the baselines; return their held-out numbers and the MAML curve."""
    start = time.perf_counter()
    maml, history = meta_train(iterations, meta_batch, inner_steps, inner_lr, seed=seed, log_every=log_every)
    maml_seconds = time.perf_counter() - start
    pretrained, _ = meta_train(iterations, meta_batch, 0, inner_lr, seed=seed)
    random_init = init_mlp(torch.Generator().manual_seed(seed))
    results = {
        "config": {
            "iterations": iterations,
            "meta_batch": meta_batch,
            "inner_steps_train": inner_steps,
            "inner_steps_eval": eval_inner_steps,
            "inner_lr": inner_lr,
            "shots": SHOTS,
        },
        **{
            name: {
                **evaluate(init, inner_steps, inner_lr),
                f"post_adaptation_mse_{eval_inner_steps}_steps": evaluate(init, eval_inner_steps, inner_lr)[
                    "post_adaptation_mse"
                ],
            }
            for name, init in (
                ("maml", maml),
                ("pretrained_baseline", pretrained),
                ("random_init_baseline", random_init),
            )
        },
        "meta_loss_history": history,
        "maml_train_seconds": maml_seconds,
    }
    results["params"] = maml
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--iterations", type=int, default=1000)
    parser.add_argument("--inner-steps", type=int, default=3)
    parser.add_argument("--inner-lr", type=float, default=0.03)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(1)  # tiny models: intra-op threads only add overhead (and spin under load)
    res = run(args.iterations, args.inner_steps, inner_lr=args.inner_lr, seed=args.seed, log_every=250)
    k = res["config"]["inner_steps_train"]
    ke = res["config"]["inner_steps_eval"]
    print(f"\nheld-out tasks: mean query MSE, {SHOTS}-shot, Adam inner loop (lr {args.inner_lr})")
    print(f"{'initialization':<24}{'before adaptation':>19}{f'after {k} steps':>16}{f'after {ke} steps':>16}")
    for name in ("maml", "pretrained_baseline", "random_init_baseline"):
        r = res[name]
        print(
            f"{name:<24}{r['pre_adaptation_mse']:>19.3f}{r['post_adaptation_mse']:>16.3f}"
            f"{r[f'post_adaptation_mse_{ke}_steps']:>16.3f}"
        )
    print(f"MAML meta-training: {res['maml_train_seconds']:.1f} s")


if __name__ == "__main__":
    main()
