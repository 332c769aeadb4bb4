"""Step time of the modern drop-ins against their reference packages (1M parameters: 100 × 10k).

    python benchmarks/modern_step_time.py [--only lion,adan] [--repeats 7] [--steps 10] [--threads 1]
                                          [--device cpu] [--json out.json]

For each entry of ``REGISTRY`` both optimizers are built on their own copy of the same 100
parameters of 10,000 elements, given the same fixed gradients, warmed up, then timed
``--steps`` steps at a time, **interleaved** (ours, reference, ours, ...) ``--repeats`` times;
the table gives the median time per step of each, the ratio of the medians ours / reference
(< 1: ours is faster) and the spread of the per-repeat ratios (their 25th-75th percentiles; each
repeat times both one after the other, so load from other jobs shifts both alike). The load
average is printed before the table. The reference is run on its fastest path (foreach where it
has one). A reference that is not installed is listed as skipped.

The ``<name>-fused`` rows time our drop-in with ``fused=True`` (its step compiled by
``fo.compile_step(tx, elementwise=True)``, during the untimed warm-up) against the same reference.

To add an algorithm, add one line to ``REGISTRY``:
``name: (ours(params), reference(params), "reference label", ("importable", "modules"))``.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import functional_optim as fo

A = fo.adapters
Make = Callable[[list[torch.Tensor]], torch.optim.Optimizer]


def _po(name: str, **kw: Any) -> Make:
    return lambda ps: getattr(importlib.import_module("pytorch_optimizer"), name)(ps, foreach=True, **kw)


def _lars_matrices_only(ps: list[Any], **kw: Any) -> torch.optim.Optimizer:
    """Our LARS adapting only tensors of two or more dimensions, as pytorch-optimizer's (``ps``:
    tensors, or one param group dict whose other keys, e.g. ``fused``, every group gets)."""
    extra: dict[str, Any] = {}
    if ps and isinstance(ps[0], dict):
        extra = {k: v for k, v in ps[0].items() if k != "params"}
        ps = list(ps[0]["params"])
    matrices, others = [p for p in ps if p.ndim > 1], [p for p in ps if p.ndim <= 1]
    groups: list[dict[str, Any]] = [{"params": matrices, **extra}] if matrices else []
    if others:
        groups.append({"params": others, "trust_ratio": False, "weight_decay": 0.0, **extra})
    return A.LARS(groups, **kw)


# name -> (ours, reference, reference label, modules the reference needs). Others: add yours here.
REGISTRY: dict[str, tuple[Make, Make, str, tuple[str, ...]]] = {
    # context: a torch.optim algorithm, whose drop-in has the adapters' fused in-place step
    "adamw": (
        lambda ps: A.AdamW(ps, lr=1e-3),
        lambda ps: torch.optim.AdamW(ps, lr=1e-3, foreach=True),
        "torch.optim.AdamW (foreach)",
        (),
    ),
    "lion": (
        lambda ps: A.Lion(ps, lr=1e-4, weight_decay=0.1),
        lambda ps: importlib.import_module("lion_pytorch").Lion(ps, lr=1e-4, weight_decay=0.1),
        "lion_pytorch.Lion",
        ("lion_pytorch",),
    ),
    "signum": (
        lambda ps: A.Signum(ps, lr=1e-3),
        _po("SignSGD", lr=1e-3, momentum=0.9),
        "pytorch_optimizer.SignSGD",
        ("pytorch_optimizer",),
    ),
    # pytorch-optimizer's LARS adapts only tensors of ndim > 1 (no trust ratio and no weight decay on
    # the others: on this 1-D set it is momentum SGD); ours, configured to do the same, puts those
    # in a group with trust_ratio=False, weight_decay=0 (`_lars_matrices_only`)
    "lars": (
        lambda ps: _lars_matrices_only(ps, lr=1.0, weight_decay=1e-4),
        _po("LARS", lr=1.0, weight_decay=1e-4),
        "pytorch_optimizer.LARS",
        ("pytorch_optimizer",),
    ),
    # the same on 100 x 100 matrices, which both adapt
    "lars-2d": (
        lambda ps: A.LARS(ps, lr=1.0, weight_decay=1e-4),
        _po("LARS", lr=1.0, weight_decay=1e-4),
        "pytorch_optimizer.LARS (2-D)",
        ("pytorch_optimizer",),
    ),
    "lamb": (
        lambda ps: A.Lamb(ps, lr=1e-3, weight_decay=0.01),
        _po("Lamb", lr=1e-3, weight_decay=0.01, max_grad_norm=0.0),
        "pytorch_optimizer.Lamb",
        ("pytorch_optimizer",),
    ),
    "novograd": (
        lambda ps: A.Novograd(ps, lr=1e-3),
        _po("NovoGrad", lr=1e-3),
        "pytorch_optimizer.NovoGrad",
        ("pytorch_optimizer",),
    ),
    "adabelief": (
        lambda ps: A.AdaBelief(ps, lr=1e-3, weight_decay=0.01, rectify=False),
        lambda ps: importlib.import_module("adabelief_pytorch").AdaBelief(
            ps, lr=1e-3, weight_decay=0.01, rectify=False, print_change_log=False
        ),
        "adabelief_pytorch.AdaBelief",
        ("adabelief_pytorch",),
    ),
    "yogi": (
        lambda ps: A.Yogi(ps, lr=1e-2),
        _po("Yogi", lr=1e-2),
        "pytorch_optimizer.Yogi",
        ("pytorch_optimizer",),
    ),
    "adopt": (
        lambda ps: A.ADOPT(ps, lr=1e-3),
        _po("ADOPT", lr=1e-3),
        "pytorch_optimizer.ADOPT",
        ("pytorch_optimizer",),
    ),
    "ademamix": (
        lambda ps: A.AdEMAMix(ps, lr=1e-3, weight_decay=0.01),
        _po("AdEMAMix", lr=1e-3, weight_decay=0.01),
        "pytorch_optimizer.AdEMAMix",
        ("pytorch_optimizer",),
    ),
    "adan": (
        lambda ps: A.Adan(ps, lr=1e-3, weight_decay=0.02),
        _po("Adan", lr=1e-3, weight_decay=0.02),
        "pytorch_optimizer.Adan",
        ("pytorch_optimizer",),
    ),
    "laprop": (
        lambda ps: A.LaProp(ps, lr=1e-3),
        _po("LaProp", lr=1e-3),
        "pytorch_optimizer.LaProp",
        ("pytorch_optimizer",),
    ),
    # schedule-free and parameter-free drop-ins (the pure update: see docs/modern_optimizers.md)
    "sf-adamw": (
        lambda ps: A.AdamWScheduleFree(ps, lr=2.5e-3, weight_decay=0.01),
        lambda ps: _train_mode(
            importlib.import_module("schedulefree").AdamWScheduleFree(
                ps, lr=2.5e-3, weight_decay=0.01, foreach=True
            )
        ),
        "schedulefree.AdamWScheduleFree",
        ("schedulefree",),
    ),
    "sf-sgd": (
        lambda ps: A.SGDScheduleFree(ps, lr=1.0, weight_decay=0.01),
        lambda ps: _train_mode(
            importlib.import_module("schedulefree").SGDScheduleFree(
                ps, lr=1.0, weight_decay=0.01, foreach=True
            )
        ),
        "schedulefree.SGDScheduleFree",
        ("schedulefree",),
    ),
    "sf-sgd-wd0": (  # the package's default (no decay): d is the gradient itself, no temporary
        lambda ps: A.SGDScheduleFree(ps, lr=1.0),
        lambda ps: _train_mode(
            importlib.import_module("schedulefree").SGDScheduleFree(ps, lr=1.0, foreach=True)
        ),
        "schedulefree.SGDScheduleFree",
        ("schedulefree",),
    ),
    "prodigy": (
        lambda ps: A.Prodigy(ps, lr=1.0, weight_decay=0.01),
        lambda ps: importlib.import_module("prodigyopt").Prodigy(ps, lr=1.0, weight_decay=0.01),
        "prodigyopt.Prodigy",
        ("prodigyopt",),
    ),
    "dadapt-adam": (
        lambda ps: A.DAdaptAdam(ps, lr=1.0, weight_decay=0.01),
        lambda ps: importlib.import_module("dadaptation").DAdaptAdam(ps, lr=1.0, weight_decay=0.01),
        "dadaptation.DAdaptAdam",
        ("dadaptation",),
    ),
    "dog": (
        lambda ps: A.DoG(ps),
        lambda ps: importlib.import_module("dog").DoG(ps),
        "dog.DoG (dog-optimizer)",
        ("dog",),
    ),
}


def _fused(make: Make) -> Make:
    """Our drop-in with ``fused=True`` in its param group: its step compiled by
    ``fo.compile_step(tx, elementwise=True)`` (compiled during the untimed warm-up steps)."""
    return lambda ps: make([{"params": ps, "fused": True}])  # type: ignore[list-item]


# ``<name>-fused``: the same comparison with our drop-in's fused=True (compiled) step, for the drop-ins
# that declare ``elementwise``; AdamW's against torch's fused kernel (what ours then calls)
FUSED_ROWS = ("lion", "signum", "yogi", "adopt", "ademamix", "adan", "laprop")
FUSED_ROWS += ("sf-adamw", "sf-sgd", "sf-sgd-wd0", "lars", "lars-2d", "lamb", "novograd", "adabelief")
FUSED_ROWS += ("prodigy", "dadapt-adam")  # rules in two passes: compiled pass by pass
REGISTRY["adamw-fused"] = (
    _fused(lambda ps: A.AdamW(ps, lr=1e-3)),
    lambda ps: torch.optim.AdamW(ps, lr=1e-3, fused=True),
    "torch.optim.AdamW (fused)",
    (),
)
for _name in FUSED_ROWS:
    _ours, _ref, _label, _needs = REGISTRY[_name]
    REGISTRY[f"{_name}-fused"] = (_fused(_ours), _ref, _label, _needs)


def _train_mode(opt: torch.optim.Optimizer) -> torch.optim.Optimizer:
    """schedulefree's optimizers step only in train mode (``opt.train()``; ours start in it)."""
    opt.train()  # type: ignore[attr-defined]
    return opt


FRESH = {"prodigy", "dadapt-adam", "dog", "prodigy-fused", "dadapt-adam-fused"}
"""The rows timed from fresh optimizers at every repeat (steps 4 to 13): with gradients that never
change, the parameter-free methods' step sizes grow without bound (Prodigy's ``d`` overflows after
about 35 steps here, in the reference package as in ours), and timing them later would time
arithmetic on infinities. The other rows time steps 4 to ``3 + repeats·steps`` of one run."""

SHAPES: dict[str, tuple[int, ...]] = {"lars-2d": (100, 100), "lars-2d-fused": (100, 100)}
"""The rows whose 100 tensors of 10,000 elements are not 1-D (default ``(10_000,)``)."""


def _setup(
    make: Make, device: str, shape: tuple[int, ...] = (10_000,)
) -> tuple[torch.optim.Optimizer, list[torch.Tensor]]:
    gen = torch.Generator().manual_seed(0)
    params = [torch.randn(shape, generator=gen).to(device).requires_grad_(True) for _ in range(100)]
    for p in params:
        p.grad = torch.randn(shape, generator=gen).to(device) * 1e-2
    return make(params), params


def _time(opt: torch.optim.Optimizer, steps: int, device: str) -> float:
    if device != "cpu":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(steps):
        opt.step()
    if device != "cpu":
        torch.cuda.synchronize()
    return (time.perf_counter() - start) / steps


def measure(
    ours: Make,
    ref: Make,
    repeats: int,
    steps: int,
    device: str,
    shape: tuple[int, ...] = (10_000,),
    fresh: bool = False,
) -> tuple[list[float], list[float]]:
    """Seconds per step of ours and of the reference at each repeat, timed interleaved, after 3
    untimed steps (state allocation, caches). With ``fresh`` every repeat starts again from the
    same fresh parameters and optimizers (see `FRESH`)."""
    a, b = [], []
    opt_a = opt_b = None
    for _ in range(repeats):
        if fresh or opt_a is None:
            opt_a = opt_b = None  # free the last repeat's before allocating
            opt_a, _ = _setup(ours, device, shape)
            opt_b, _ = _setup(ref, device, shape)
            for opt in (opt_a, opt_b):
                _time(opt, 3, device)
        assert opt_a is not None and opt_b is not None
        a.append(_time(opt_a, steps, device))
        b.append(_time(opt_b, steps, device))
    return a, b


def _quartiles(xs: list[float]) -> tuple[float, float]:
    if len(xs) < 2:
        return xs[0], xs[0]
    q = statistics.quantiles(xs, n=4)
    return q[0], q[2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default="")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    only = [s for s in args.only.split(",") if s]
    print(
        f"torch {torch.__version__}, device {args.device}, {torch.get_num_threads()} thread(s), "
        "100 x 10k params"
    )
    load = os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3
    print(f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}, {os.cpu_count()} cpus")
    print(f"{'algorithm':14} {'reference':30} {'ours ms':>8} {'ref ms':>8} {'ratio':>6} {'spread':>11}")
    rows = []
    for name, (ours, ref, label, needs) in REGISTRY.items():
        if only and name not in only:
            continue
        missing = [m for m in needs if importlib.util.find_spec(m) is None]
        if missing:
            print(f"{name:14} {label:30} skipped (missing {', '.join(missing)})")
            continue
        shape = SHAPES.get(name, (10_000,))
        a, b = measure(ours, ref, args.repeats, args.steps, args.device, shape, fresh=name in FRESH)
        t_ours, t_ref = statistics.median(a), statistics.median(b)
        ratio = t_ours / t_ref
        lo, hi = _quartiles([x / y for x, y in zip(a, b, strict=True)])
        print(
            f"{name:14} {label:30} {1e3 * t_ours:8.2f} {1e3 * t_ref:8.2f} {ratio:6.2f} {lo:5.2f}-{hi:5.2f}",
            flush=True,
        )
        rows.append(
            {
                "algorithm": name,
                "reference": label,
                "ours_ms": 1e3 * t_ours,
                "ref_ms": 1e3 * t_ref,
                "ratio": ratio,
                "ratio_q1": lo,
                "ratio_q3": hi,
            }
        )
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
