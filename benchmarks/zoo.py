"""The optimizer zoo: every algorithm on the same two small problems, at a small learning-rate sweep.

    python benchmarks/zoo.py [--quick] [--only adam,lion] [--tasks transformer,mlp] [--steps N]
                             [--factors 0.33,1,3] [--threads 1] [--out docs]

Task 1 (``transformer``): a char-level GPT (width 64, 2 layers, 4 heads, context 64) on
``examples/data/tzdata.txt``, batch 16. Task 2 (``mlp``): a 2-hidden-layer tanh MLP regressing a
fixed random teacher network on generated inputs, batch 64. Every run starts from the same
initialisation and sees the same batches. Each algorithm runs at ``base_lr × (1/3, 1, 3)``; the
table gives the best lr's final loss (mean training loss of the last 10 % of steps) and the
median time per step (forward + backward + optimizer step, one thread by default).
``--quick`` is a smoke run (all algorithms, one lr, 15 steps). Plots (loss vs step and vs
wall-clock, best lr per algorithm) are written only with ``--out DIR``
(``DIR/zoo_transformer.png``, ``DIR/zoo_mlp.png``).

To add an algorithm, add one line to ``REGISTRY``: ``name: (factory(params, lr), base_lr)``, or
to ``MODEL_REGISTRY`` (``factory(model, lr)``) for optimizers that split the model's parameters.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F  # noqa: N812

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import functional_optim as fo
from examples.muon_vs_adamw import CharTransformer, load_text

A = fo.adapters
Factory = Callable[[Any, float], torch.optim.Optimizer]

# name -> (factory(params, lr) -> optimizer, base learning rate). The 15 torch.optim algorithms
# that make sense on mini-batches of dense parameters (LBFGS needs a closure and full batches,
# SparseAdam sparse gradients, Muon matrices only: not listed), then the modern ones.
# Others: add your algorithms below (one line each), e.g. "soap": (lambda p, lr: A.SOAP(p, lr=lr), 3e-3).
REGISTRY: dict[str, tuple[Factory, float]] = {
    # torch.optim
    "sgd": (lambda p, lr: A.SGD(p, lr=lr, momentum=0.9), 0.1),
    "adam": (lambda p, lr: A.Adam(p, lr=lr), 3e-3),
    "adamw": (lambda p, lr: A.AdamW(p, lr=lr, weight_decay=0.01), 3e-3),
    "adamax": (lambda p, lr: A.Adamax(p, lr=lr), 3e-3),
    "nadam": (lambda p, lr: A.NAdam(p, lr=lr), 3e-3),
    "radam": (lambda p, lr: A.RAdam(p, lr=lr), 3e-3),
    "adagrad": (lambda p, lr: A.Adagrad(p, lr=lr), 3e-2),
    "adadelta": (lambda p, lr: A.Adadelta(p, lr=lr), 1.0),
    "adafactor": (lambda p, lr: A.Adafactor(p, lr=lr), 1e-2),
    "rmsprop": (lambda p, lr: A.RMSprop(p, lr=lr), 1e-3),
    "rprop": (lambda p, lr: A.Rprop(p, lr=lr), 1e-3),
    "asgd": (lambda p, lr: A.ASGD(p, lr=lr), 0.1),
    # sign / momentum family
    "lion": (lambda p, lr: A.Lion(p, lr=lr), 3e-4),
    "signum": (lambda p, lr: A.Signum(p, lr=lr), 3e-4),
    "lars": (lambda p, lr: A.LARS(p, lr=lr, trust_coefficient=0.01), 1.0),
    "lamb": (lambda p, lr: A.Lamb(p, lr=lr), 1e-2),
    "novograd": (lambda p, lr: A.Novograd(p, lr=lr), 1e-2),
    # Adam family
    "adabelief": (lambda p, lr: A.AdaBelief(p, lr=lr), 3e-3),
    "yogi": (lambda p, lr: A.Yogi(p, lr=lr), 3e-3),
    "adopt": (lambda p, lr: A.ADOPT(p, lr=lr), 3e-3),
    "ademamix": (lambda p, lr: A.AdEMAMix(p, lr=lr, alpha_warmup=100, beta3_warmup=100), 3e-3),
    "adan": (lambda p, lr: A.Adan(p, lr=lr), 3e-3),
    "laprop": (lambda p, lr: A.LaProp(p, lr=lr), 3e-3),
    # composable variants (transforms through FunctionalOptimizer)
    "mars_adamw": (lambda p, lr: A.FunctionalOptimizer(p, fo.mars_adamw, lr=lr), 3e-3),
    "cautious_adamw": (lambda p, lr: A.FunctionalOptimizer(p, fo.cautious_adamw, lr=lr), 3e-3),
    # schedule-free and parameter-free
    "sf_adamw": (lambda p, lr: A.AdamWScheduleFree(p, lr=lr, warmup_steps=20), 3e-3),
    "sf_sgd": (lambda p, lr: A.SGDScheduleFree(p, lr=lr, warmup_steps=20), 0.3),
    "prodigy": (lambda p, lr: A.Prodigy(p, lr=lr), 1.0),
    "dadapt_adam": (lambda p, lr: A.DAdaptAdam(p, lr=lr), 1.0),
    "dog": (lambda p, lr: A.DoG(p, lr=lr), 1.0),
    # second-order / matrix (on every parameter; SOAP treats vectors diagonally)
    "soap": (lambda p, lr: A.SOAP(p, lr=lr), 3e-3),
    "shampoo": (
        lambda p, lr: A.FunctionalOptimizer(
            p, fo.shampoo, lr=lr, betas=(0.9, 0.999), epsilon=1e-8, precondition_frequency=10, grafting="adam"
        ),
        3e-3,
    ),
    "kron": (lambda p, lr: A.Kron(p, lr=lr), 1e-3),
}

# name -> (factory(model, lr), base learning rate): optimizers that split the model's parameters
# by module (Muon and its variants on the hidden matrices, AdamW on embeddings, head, norms and
# biases; ``fo.muon_labels(model)`` shows the split). ``lr`` is the Muon learning rate.
MODEL_REGISTRY: dict[str, tuple[Callable[[nn.Module, float], torch.optim.Optimizer], float]] = {
    "muon": (lambda m, lr: A.MuonWithAdamW(m, muon_lr=lr), 0.02),
}

LR_FACTORS = (1 / 3, 1.0, 3.0)


# ----------------------------------------------------------------------------- the tasks


class Task:
    """A model factory and a ``loss(model, step)`` on deterministic batches."""

    name: str
    steps: int

    def model(self) -> nn.Module:
        raise NotImplementedError

    def loss(self, model: nn.Module, step: int) -> torch.Tensor:
        raise NotImplementedError


class TransformerTask(Task):
    name, steps = "transformer", 200

    def __init__(self) -> None:
        self.data, chars = load_text()
        self.vocab = len(chars)

    def model(self) -> nn.Module:
        torch.manual_seed(0)
        return CharTransformer(self.vocab, width=64, layers=2, heads=4, context=64)

    def loss(self, model: nn.Module, step: int) -> torch.Tensor:
        gen = torch.Generator().manual_seed(step)
        starts = torch.randint(0, len(self.data) - 65, (16,), generator=gen)
        x = torch.stack([self.data[s : s + 64] for s in starts.tolist()])
        y = torch.stack([self.data[s + 1 : s + 65] for s in starts.tolist()])
        return F.cross_entropy(model(x).flatten(0, 1), y.flatten())


class MLPTask(Task):
    name, steps = "mlp", 300

    def __init__(self) -> None:
        gen = torch.Generator().manual_seed(1)
        self.teacher = [torch.randn(16, 32, generator=gen) / 4, torch.randn(32, 4, generator=gen) / 32**0.5]

    def model(self) -> nn.Module:
        torch.manual_seed(0)
        return nn.Sequential(nn.Linear(16, 64), nn.Tanh(), nn.Linear(64, 64), nn.Tanh(), nn.Linear(64, 4))

    def loss(self, model: nn.Module, step: int) -> torch.Tensor:
        gen = torch.Generator().manual_seed(10_000 + step)
        x = torch.randn(64, 16, generator=gen)
        y = torch.tanh(x @ self.teacher[0]) @ self.teacher[1]
        return F.mse_loss(model(x), y)


# ----------------------------------------------------------------------------- running


def train(task: Task, name: str, lr: float, steps: int) -> dict[str, list[float]]:
    """Loss and cumulative wall-clock (s) after every step; step times exclude nothing but logging."""
    model = task.model()
    if name in MODEL_REGISTRY:
        opt = MODEL_REGISTRY[name][0](model, lr)
    else:
        opt = REGISTRY[name][0](model.parameters(), lr)
    if hasattr(opt, "train"):  # schedule-free: training mode (the loss is of the training point)
        opt.train()
    losses, clock, per_step = [], [], []
    elapsed = 0.0
    for step in range(steps):
        start = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss = task.loss(model, step)
        loss.backward()
        opt.step()
        dt = time.perf_counter() - start
        elapsed += dt
        per_step.append(dt)
        value = float(loss.detach())
        losses.append(value if value == value else float("inf"))
        clock.append(elapsed)
    return {"loss": losses, "time": clock, "step_time": per_step}


def final_loss(losses: list[float]) -> float:
    tail = losses[-max(1, len(losses) // 10) :]
    return sum(tail) / len(tail)


def run(tasks: list[Task], names: list[str], factors: tuple[float, ...], steps: int | None) -> dict:
    results: dict[str, dict[str, Any]] = {}
    for task in tasks:
        results[task.name] = {}
        for name in names:
            base = (MODEL_REGISTRY.get(name) or REGISTRY[name])[1]
            runs = {}
            for f in factors:
                lr = base * f
                runs[lr] = train(task, name, lr, steps or task.steps)
            best = min(runs, key=lambda lr: final_loss(runs[lr]["loss"]))
            results[task.name][name] = {"best_lr": best, "runs": runs}
            r = runs[best]
            print(
                f"  {task.name:12} {name:10} best lr {best:8.2e}  final loss {final_loss(r['loss']):8.4f}"
                f"  {1e3 * statistics.median(r['step_time']):6.2f} ms/step",
                flush=True,
            )
    return results


def print_table(results: dict) -> None:
    tasks = list(results)
    print(f"\n{'algorithm':10}" + "".join(f" | {t + ' loss':>17} {'lr':>8} {'ms/step':>8}" for t in tasks))
    for name in next(iter(results.values())):
        cells = []
        for t in tasks:
            entry = results[t][name]
            r = entry["runs"][entry["best_lr"]]
            ms = 1e3 * statistics.median(r["step_time"])
            cells.append(f" | {final_loss(r['loss']):17.4f} {entry['best_lr']:8.1e} {ms:8.2f}")
        print(f"{name:10}" + "".join(cells))


def figure(task: str, entries: dict[str, Any]) -> Any:
    """Loss against step and against wall-clock of the best learning rate of every algorithm."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(13, 5), sharey=True)
    cmap = plt.get_cmap("tab20")
    styles = ["-", "--", ":"]
    for i, (name, entry) in enumerate(entries.items()):
        r = entry["runs"][entry["best_lr"]]
        style = styles[(i // 20) % len(styles)] if i >= 20 else ("-" if i < 10 else "--")
        label = f"{name} ({entry['best_lr']:.0e})"
        smooth = _smooth(r["loss"])
        axes[0].plot(range(1, len(smooth) + 1), smooth, style, color=cmap(i % 20), label=label, lw=1.2)
        axes[1].plot(r["time"], smooth, style, color=cmap(i % 20), lw=1.2)
    axes[0].set_xlabel("step")
    axes[1].set_xlabel("wall-clock (s, 1 thread)")
    axes[0].set_ylabel("training loss (moving average of 10 steps)")
    axes[0].set_yscale("log")
    axes[0].legend(fontsize=6, ncol=3)
    n_lrs = len(next(iter(entries.values()))["runs"])
    sweep = f"best of {n_lrs} learning rates each" if n_lrs > 1 else "one learning rate each"
    fig.suptitle(f"optimizer zoo: {task} ({sweep})")
    fig.tight_layout()
    return fig


def plot(results: dict, out: Path) -> None:
    """Write ``out/zoo_<task>.png`` for every task (non-interactive backend)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    for task, entries in results.items():
        fig = figure(task, entries)
        fig.savefig(out / f"zoo_{task}.png", dpi=110)
        plt.close(fig)
        print(f"wrote {out / f'zoo_{task}.png'}")


def _smooth(xs: list[float], k: int = 10) -> list[float]:
    out, acc = [], []
    for x in xs:
        acc.append(x)
        if len(acc) > k:
            acc.pop(0)
        out.append(sum(acc) / len(acc))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: one lr, 15 steps")
    parser.add_argument("--only", default="", help="comma-separated algorithm names")
    parser.add_argument("--tasks", default="transformer,mlp")
    parser.add_argument("--steps", type=int, default=None, help="override every task's step count")
    parser.add_argument("--factors", default=None, help="lr multipliers of the sweep (default 1/3,1,3)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default=None, help="write the PNGs into this directory (e.g. docs)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    known = {**REGISTRY, **MODEL_REGISTRY}
    names = [n for n in args.only.split(",") if n] or list(known)
    unknown = [n for n in names if n not in known]
    if unknown:
        raise SystemExit(f"unknown algorithm(s) {unknown}; known: {sorted(known)}")
    makers = {"transformer": TransformerTask, "mlp": MLPTask}
    tasks = [makers[t]() for t in args.tasks.split(",")]
    factors, steps = ((1.0,), 15) if args.quick else (LR_FACTORS, args.steps)
    if args.factors:
        factors = tuple(float(f) for f in args.factors.split(","))
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s)")
    results = run(tasks, names, factors, steps)
    print_table(results)
    if args.out:
        plot(results, Path(args.out))


if __name__ == "__main__":
    main()
