"""Shared cases for the adapter tests: every drop-in class with option sets, and a runner that
drives ``torch.optim.X`` and ``functional_optim.adapters.X`` side by side on two parameter groups
(different hyperparameters per group, one parameter whose grad is ``None`` on some steps)."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch

import functional_optim as fo
from tests._parity import default_grad, make_params, none_grad_at

# name -> (options used for both groups, per-group overrides for group 1, list of option sets)
SHAPES_G0 = {"a_matrix": (5, 4), "b_vector": (7,), "c_scalar": ()}
SHAPES_G1 = {"d_sometimes_none": (3, 2), "e_matrix": (2, 3)}
MUON_SHAPES_G0 = {"a_matrix": (5, 4), "b_wide": (4, 7)}
MUON_SHAPES_G1 = {"d_sometimes_none": (3, 2)}
NONE_NAME = "d_sometimes_none"

FOREACH = {
    "SGD",
    "Adam",
    "AdamW",
    "Adamax",
    "NAdam",
    "RAdam",
    "Adagrad",
    "Adadelta",
    "RMSprop",
    "Rprop",
    "ASGD",
}

CASES: dict[str, list[dict[str, Any]]] = {
    "SGD": [
        {"lr": 0.05},
        {"lr": 0.05, "momentum": 0.9, "dampening": 0.3, "weight_decay": 0.1},
        {"lr": 0.05, "momentum": 0.9, "nesterov": True, "maximize": True},
    ],
    "Adam": [
        {"lr": 0.01},
        {"lr": 0.01, "weight_decay": 0.1, "amsgrad": True, "maximize": True},
        {"lr": 0.01, "weight_decay": 0.1, "decoupled_weight_decay": True, "betas": (0.8, 0.99)},
    ],
    "AdamW": [{"lr": 0.01}, {"lr": 0.01, "amsgrad": True, "maximize": True, "weight_decay": 0.05}],
    "Adamax": [{"lr": 0.01}, {"lr": 0.01, "weight_decay": 0.1, "maximize": True}],
    "NAdam": [
        {"lr": 0.01},
        {"lr": 0.01, "weight_decay": 0.1, "decoupled_weight_decay": True, "maximize": True},
        {"lr": 0.01, "weight_decay": 0.1, "momentum_decay": 0.01},
    ],
    "RAdam": [
        {"lr": 0.01},
        {"lr": 0.01, "weight_decay": 0.1, "decoupled_weight_decay": True, "maximize": True},
        {"lr": 0.01, "weight_decay": 0.1, "betas": (0.8, 0.9)},
    ],
    "Adagrad": [
        {"lr": 0.05},
        {
            "lr": 0.05,
            "lr_decay": 0.01,
            "weight_decay": 0.1,
            "initial_accumulator_value": 0.1,
            "maximize": True,
        },
    ],
    "Adadelta": [{"lr": 0.5}, {"lr": 0.5, "rho": 0.8, "weight_decay": 0.1, "maximize": True}],
    "Adafactor": [{"lr": 0.01}, {"lr": 0.01, "weight_decay": 0.1, "maximize": True, "d": 2.0}],
    "RMSprop": [
        {"lr": 0.01},
        {"lr": 0.01, "momentum": 0.9, "centered": True, "weight_decay": 0.1},
        {"lr": 0.01, "momentum": 0.5, "maximize": True, "alpha": 0.9},
    ],
    "Rprop": [{"lr": 0.01}, {"lr": 0.01, "etas": (0.3, 1.5), "step_sizes": (1e-4, 1.0), "maximize": True}],
    "ASGD": [
        {"lr": 0.01},
        {"lr": 0.01, "lambd": 1e-3, "alpha": 0.5, "t0": 3, "weight_decay": 0.1, "maximize": True},
    ],
    "Muon": [
        {"lr": 0.02},
        {
            "lr": 0.02,
            "nesterov": False,
            "adjust_lr_fn": "match_rms_adamw",
            "weight_decay": 0.0,
            "ns_steps": 3,
        },
    ],
}

# Group 1 gets its own value of one hyperparameter (so per-group options are exercised).
GROUP1_OVERRIDE: dict[str, dict[str, Any]] = {
    "SGD": {"lr": 0.02},
    "Adam": {"lr": 0.003, "eps": 1e-6},
    "AdamW": {"weight_decay": 0.2},
    "Adamax": {"lr": 0.02},
    "NAdam": {"lr": 0.005},
    "RAdam": {"lr": 0.005},
    "Adagrad": {"lr": 0.02},
    "Adadelta": {"rho": 0.95},
    "Adafactor": {"lr": 0.02},
    "RMSprop": {"alpha": 0.95},
    "Rprop": {"lr": 0.05},
    "ASGD": {"lr": 0.02},
    "Muon": {"lr": 0.01, "momentum": 0.8},
}

# Muon: bf16 Newton–Schulz; one ulp of a parameter may flip one bf16 rounding in a later NS
# (see tests/optimizers/test_muon_parity.py): atol = 2^-7 * max adjusted lr.
MUON_TOL = {"rtol": 0.0, "atol": 2**-7 * 0.02 * max(math.sqrt(7 / 4), 0.2 * math.sqrt(7))}


def tolerance(name: str) -> dict:
    return MUON_TOL if name == "Muon" else {}


def make_groups(name: str, dtype: torch.dtype = torch.float32, seed: int = 0):
    """Two groups of fresh ``nn.Parameter``s (same values for each call with the same seed)."""
    g0, g1 = (MUON_SHAPES_G0, MUON_SHAPES_G1) if name == "Muon" else (SHAPES_G0, SHAPES_G1)
    if name == "Adafactor":
        g0 = {**g0, "f_3d": (2, 4, 3)}
    p0 = {k: torch.nn.Parameter(v) for k, v in make_params(dtype, g0, seed).items()}
    p1 = {k: torch.nn.Parameter(v) for k, v in make_params(dtype, g1, seed + 1).items()}
    return p0, p1


def build(cls: type, name: str, groups, opts: dict, torch_side: bool) -> torch.optim.Optimizer:
    p0, p1 = groups
    kw = dict(opts)
    if torch_side and name in FOREACH:
        kw["foreach"] = False
    if not torch_side and name == "Muon":
        kw.setdefault("ns_dtype", torch.bfloat16)  # torch's NS dtype on every CPU (default: by device)
    return cls(
        [{"params": list(p0.values())}, {"params": list(p1.values()), **GROUP1_OVERRIDE[name]}],
        **kw,
    )


def set_grads(groups, step: int) -> None:
    for params in groups:
        for n, p in params.items():
            skip = n == NONE_NAME and none_grad_at(step)
            p.grad = None if skip else default_grad(n, p.detach(), step)


def run_side_by_side(
    name: str,
    opts: dict,
    *,
    steps: int = 10,
    dtype: torch.dtype = torch.float32,
    setup: Callable[[torch.optim.Optimizer], Any] | None = None,
    after_step: Callable[[Any, int], None] | None = None,
) -> float:
    """Step ``torch.optim.<name>`` and ``fo.adapters.<name>`` together; assert equal parameters and
    hyperparameters after every step and equal state (keys, dtypes, shapes, values) at the end.

    ``setup(opt)`` (e.g. building a scheduler) runs on each side before the first step and
    ``after_step(obj, step)`` after every optimizer step, with what ``setup`` returned.
    Returns the max abs difference of the parameters."""
    tg, fg = make_groups(name, dtype), make_groups(name, dtype)
    topt = build(getattr(torch.optim, name), name, tg, opts, True)
    fopt = build(getattr(fo.adapters, name), name, fg, opts, False)
    t_obj = setup(topt) if setup is not None else None
    f_obj = setup(fopt) if setup is not None else None
    tol = tolerance(name)
    max_diff = 0.0
    for step in range(steps):
        set_grads(tg, step)
        set_grads(fg, step)
        topt.step()
        fopt.step()
        for gt, gf in zip(tg, fg, strict=True):
            for n in gt:
                torch.testing.assert_close(
                    gf[n].detach(),
                    gt[n].detach(),
                    **tol,
                    msg=lambda m, n=n, s=step: f"{name} {n} step {s}: {m}",
                )
                max_diff = max(max_diff, (gf[n] - gt[n]).abs().max().item())
        if after_step is not None:
            after_step(t_obj, step)
            after_step(f_obj, step)
        for gt, gf in zip(topt.param_groups, fopt.param_groups, strict=True):
            for k, v in gt.items():
                if k not in ("params", "foreach"):  # torch's side is built with foreach=False
                    assert _same_hyper(gf[k], v), f"group key {k}: {gf[k]!r} vs torch {v!r} after step {step}"
    assert_same_state(topt, fopt, **tol)
    return max_diff


def assert_same_state(
    topt: torch.optim.Optimizer, fopt: torch.optim.Optimizer, skip_values: tuple = (), **tol: Any
) -> None:
    """Same per-parameter keys in the same order, same types, dtypes, devices, shapes and values
    (values not compared for the keys in ``skip_values``)."""
    for gt, gf in zip(topt.param_groups, fopt.param_groups, strict=True):
        for pt, pf in zip(gt["params"], gf["params"], strict=True):
            st, sf = topt.state.get(pt, {}), fopt.state.get(pf, {})
            assert list(st) == list(sf), f"state keys differ: torch {list(st)} vs ours {list(sf)}"
            for k in st:
                if k in skip_values:
                    assert type(st[k]) is type(sf[k]) and len(st[k]) == len(sf[k]), k
                else:
                    _assert_same_value(st[k], sf[k], k, tol)


def _assert_same_value(a: Any, b: Any, k: str, tol: dict) -> None:
    assert type(a) is type(b), f"{k}: {type(a)} vs {type(b)}"
    if isinstance(a, torch.Tensor):
        assert (a.dtype, a.device, a.shape) == (b.dtype, b.device, b.shape), k
        torch.testing.assert_close(b, a, **tol, msg=lambda m: f"state {k}: {m}")
    elif isinstance(a, list | tuple):
        assert len(a) == len(b), k
        for x, y in zip(a, b, strict=True):
            _assert_same_value(x, y, k, tol)
    elif isinstance(a, float):
        torch.testing.assert_close(b, a, **tol, msg=lambda m: f"state {k}: {m}")
    else:
        assert a == b, k


def _same_hyper(a: Any, b: Any) -> bool:
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        return isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor) and torch.equal(a, b)
    if isinstance(a, list | tuple):
        return type(a) is type(b) and len(a) == len(b) and all(map(_same_hyper, a, b))
    return type(a) is type(b) and a == b
