"""``torch.func.grad`` and plain autograd through K unrolled steps of every algorithm, with
respect to the initial parameters (MAML) and to hyperparameters given as 0-dim tensors,
checked against central finite differences in float64; meta-gradients stay finite (and
FD-correct) where a second moment is exactly zero.

Support statement (the cases below that are not elementwise):

* Muon: ``torch.func.grad`` w.r.t. the initial matrix and ``lr``/``momentum``/``weight_decay``
  (Newton-Schulz in float64 via ``ns_dtype``).
* SparseAdam: sparse COO gradients are outside ``torch.func`` (no ``grad``/``vmap``); plain
  autograd through the updates works (``test_sparse_adam_*``: w.r.t. ``lr``, FD-checked).
* L-BFGS: not differentiable through its updates. It evaluates the objective itself
  (``value_fn``) with ``torch.autograd.grad`` (no ``create_graph``: the curvature pairs are
  constants), and it stops on data-dependent tests (tolerances, line search) that are Python
  branches on values, which ``torch.func`` cannot trace. Use it for the inner problem's
  forward only, or use a first-order algorithm inside a meta-gradient.
"""

from __future__ import annotations

import pytest
import torch

import functional_optim as fo
from tests.differentiable._problems import (
    DT,
    central_difference,
    gated_unrolled,
    init_params,
    matrix_loss,
    max_relative_error,
    unrolled,
)


def _t(v: float) -> torch.Tensor:
    return torch.tensor(v, dtype=DT)


def _traced(hyper: dict) -> dict:
    """The hyperparameters as tensors that require grad, for the finite-difference evaluations.

    A hyperparameter that gradients may flow through selects the *differentiable* code path
    (``ops.is_traced``): the same one ``torch.func.grad`` runs. The two paths differ only where an
    algorithm keeps a scalar state in float32 for ``torch.optim`` parity (NAdam's ``mu_product``,
    ASGD's ``eta``/``mu``): the concrete path rounds it to float32 like torch, the differentiable
    path keeps the hyperparameter's precision, so that the meta-gradient is the derivative of a
    smooth function instead of a float32-quantised one (whose central differences would be noise
    at the 1e-3 level). So the FD reference is taken on the path that is differentiated."""
    return {k: v.detach().clone().requires_grad_(True) for k, v in hyper.items()}


def _fd(fn, x: torch.Tensor) -> torch.Tensor:
    # not under torch.no_grad(): values derived from the hyperparameters must keep requiring grad
    # for the transforms to stay on the differentiable path
    return central_difference(lambda v: fn(v).detach(), x)


# name -> (hyperparameters as 0-dim tensors, factory from those tensors)
HYPER = {
    "sgd": (
        {"lr": 0.1, "momentum": 0.8, "dampening": 0.1, "weight_decay": 0.05},
        lambda h: fo.sgd(
            lr=h["lr"], momentum=h["momentum"], dampening=h["dampening"], weight_decay=h["weight_decay"]
        ),
    ),
    "sgd_nesterov": (
        {"lr": 0.1, "momentum": 0.8, "weight_decay": 0.05},
        lambda h: fo.sgd(lr=h["lr"], momentum=h["momentum"], weight_decay=h["weight_decay"], nesterov=True),
    ),
    "adam": (
        {"lr": 0.05, "b1": 0.8, "b2": 0.9, "weight_decay": 0.05},
        lambda h: fo.adam(lr=h["lr"], betas=(h["b1"], h["b2"]), weight_decay=h["weight_decay"]),
    ),
    "adam_amsgrad": (
        {"lr": 0.05, "b1": 0.8, "b2": 0.9, "weight_decay": 0.05},
        lambda h: fo.adam(lr=h["lr"], betas=(h["b1"], h["b2"]), weight_decay=h["weight_decay"], amsgrad=True),
    ),
    "adamw": (
        {"lr": 0.05, "b1": 0.8, "b2": 0.9, "weight_decay": 0.1},
        lambda h: fo.adamw(lr=h["lr"], betas=(h["b1"], h["b2"]), weight_decay=h["weight_decay"]),
    ),
    "adamax": (
        {"lr": 0.05, "b1": 0.8, "b2": 0.9, "weight_decay": 0.05},
        lambda h: fo.adamax(lr=h["lr"], betas=(h["b1"], h["b2"]), weight_decay=h["weight_decay"]),
    ),
    "nadam": (
        {"lr": 0.05, "b1": 0.8, "b2": 0.9, "weight_decay": 0.05},
        lambda h: fo.nadam(lr=h["lr"], betas=(h["b1"], h["b2"]), weight_decay=h["weight_decay"]),
    ),
    "nadam_decoupled": (
        {"lr": 0.05, "b1": 0.8, "b2": 0.9, "weight_decay": 0.05},
        lambda h: fo.nadam(
            lr=h["lr"], betas=(h["b1"], h["b2"]), weight_decay=h["weight_decay"], decoupled_weight_decay=True
        ),
    ),
    "radam": (
        {"lr": 0.05, "b1": 0.8, "b2": 0.9, "weight_decay": 0.05},
        # 8 steps: the rectified branch (rho_t > 5) starts at step 6 for b2 = 0.9
        lambda h: fo.radam(lr=h["lr"], betas=(h["b1"], h["b2"]), weight_decay=h["weight_decay"]),
    ),
    "adagrad": (
        {"lr": 0.1, "lr_decay": 0.01, "weight_decay": 0.05},
        lambda h: fo.adagrad(lr=h["lr"], lr_decay=h["lr_decay"], weight_decay=h["weight_decay"]),
    ),
    "adadelta": (
        {"lr": 1.0, "rho": 0.8, "weight_decay": 0.05},
        lambda h: fo.adadelta(lr=h["lr"], rho=h["rho"], weight_decay=h["weight_decay"]),
    ),
    "rmsprop": (
        {"lr": 0.01, "alpha": 0.9, "momentum": 0.5, "weight_decay": 0.05},
        lambda h: fo.rmsprop(
            lr=h["lr"],
            alpha=h["alpha"],
            momentum=h["momentum"],
            weight_decay=h["weight_decay"],
            centered=True,
        ),
    ),
    "rprop": ({"lr": 0.01}, lambda h: fo.rprop(lr=h["lr"])),
    "asgd": (
        {"lr": 0.05, "lambd": 0.01, "weight_decay": 0.05},
        lambda h: fo.asgd(lr=h["lr"], lambd=h["lambd"], weight_decay=h["weight_decay"], t0=1),
    ),
    "adafactor": (
        {"lr": 0.05, "weight_decay": 0.05},
        lambda h: fo.adafactor(lr=h["lr"], weight_decay=h["weight_decay"]),
    ),
    "muon": (
        {"lr": 0.05, "momentum": 0.9, "weight_decay": 0.1},
        lambda h: fo.muon(lr=h["lr"], momentum=h["momentum"], weight_decay=h["weight_decay"], ns_dtype=DT),
    ),
}
STEPS = {"radam": 8}
LOSS = {"muon": matrix_loss}
AVAILABLE = {k: v for k, v in HYPER.items() if hasattr(fo, k.split("_")[0])}


def _meta(name: str):
    values, make = AVAILABLE[name]
    hyper = {k: _t(v) for k, v in values.items()}
    kwargs = {"loss_fn": LOSS[name]} if name in LOSS else {}
    params = init_params()
    if name in LOSS:
        params = {"w": params["w"]}
    return unrolled(make, steps=STEPS.get(name, 3), **kwargs), hyper, params


@pytest.mark.parametrize("name", sorted(AVAILABLE))
def test_func_grad_wrt_initial_params_matches_finite_differences(name, record_property):
    meta, hyper, params = _meta(name)
    grads = torch.func.grad(meta)(params, hyper)
    worst = 0.0
    for key in params:

        def f(x, key=key):
            return meta({**params, key: x}, _traced(hyper))

        expected = _fd(f, params[key])
        worst = max(worst, max_relative_error(grads[key], expected))
        torch.testing.assert_close(grads[key], expected, rtol=1e-5, atol=1e-8, msg=f"{name}: d/d{key}")
    record_property("fd_max_rel_error_params", worst)


@pytest.mark.parametrize("name", sorted(AVAILABLE))
def test_func_grad_wrt_hyperparameters_matches_finite_differences(name, record_property):
    meta, hyper, params = _meta(name)
    grads = torch.func.grad(meta, argnums=1)(params, hyper)
    for key in hyper:

        def f(x, key=key):
            return meta(params, _traced({**hyper, key: x}))

        expected = _fd(f, hyper[key])
        assert torch.isfinite(grads[key]), f"{name}: d/d{key} is not finite"
        assert expected.abs() > 1e-6, f"{name}: d/d{key} is ~0, the check would be vacuous"
        record_property(f"fd_max_rel_error_{key}", max_relative_error(grads[key], expected))
        torch.testing.assert_close(grads[key], expected, rtol=1e-5, atol=1e-8, msg=f"{name}: d/d{key}")


@pytest.mark.parametrize("name", sorted(AVAILABLE))
def test_plain_autograd_agrees_with_func_grad(name):
    meta, hyper, params = _meta(name)
    expected = torch.func.grad(meta, argnums=(0, 1))(params, hyper)
    leaf_params = {k: v.clone().requires_grad_(True) for k, v in params.items()}
    leaf_hyper = {k: v.clone().requires_grad_(True) for k, v in hyper.items()}
    meta(leaf_params, leaf_hyper).backward()
    for k in params:
        torch.testing.assert_close(leaf_params[k].grad, expected[0][k])
    for k in hyper:
        torch.testing.assert_close(leaf_hyper[k].grad, expected[1][k])


# ----------------------------------------------------------------------------- safe at zero

ZERO_MOMENT = sorted(k for k in AVAILABLE if k not in ("sgd", "sgd_nesterov", "asgd", "muon"))


@pytest.mark.parametrize("name", ZERO_MOMENT)
def test_meta_gradient_is_finite_and_correct_where_a_second_moment_is_exactly_zero(name):
    """``z`` gets an exactly-zero gradient at the first two steps, so its second moment (Adam's
    ``exp_avg_sq``, Adagrad's ``sum``, RMSprop's ``square_avg``, ...) is exactly 0 there and
    ``sqrt`` is evaluated at 0, whose derivative is infinite: a naive implementation gives NaN
    meta-gradients (0 * inf). The safe path must give finite, FD-correct meta-gradients and the
    same forward numbers as the concrete (non-differentiable) path."""
    values, make = AVAILABLE[name]
    # weight_decay = 0: with L2 decay z's gradient would be wd·z, zero only *at* z = 0, where the
    # loss is then genuinely non-smooth (|g|/(|g| + eps)-like) and no FD step can check it.
    hyper = {k: _t(0.0 if k == "weight_decay" else v) for k, v in values.items()}
    params = {**init_params(), "z": torch.tensor([0.0, 1.0], dtype=DT)}
    meta = gated_unrolled(make)
    (g_params, g_hyper), value = torch.func.grad_and_value(meta, argnums=(0, 1))(params, hyper)
    # forward numbers unchanged: the traced (safe-sqrt) run equals the concrete run (up to the
    # float32 rounding of NAdam's mu_product on the concrete path, see ``_traced``)
    rtol = 1e-7 if name.startswith("nadam") else 1e-13
    torch.testing.assert_close(value, meta(params, hyper), rtol=rtol, atol=0)
    for key, g in {**g_params, **g_hyper}.items():
        assert torch.isfinite(g).all(), f"{name}: d/d{key} = {g}"
    for key in ("z", "w"):

        def f(x, key=key):
            return meta({**params, key: x}, _traced(hyper))

        torch.testing.assert_close(g_params[key], _fd(f, params[key]), rtol=1e-5, atol=1e-8)

    def f_lr(x):
        return meta(params, _traced({**hyper, "lr": x}))

    torch.testing.assert_close(g_hyper["lr"], _fd(f_lr, hyper["lr"]), rtol=1e-5, atol=1e-8)


def test_a_naive_sqrt_would_give_nan_at_zero():
    """The failure the safe path prevents (so the test above can fail): d sqrt(v)/dv at v = 0 is
    inf, and chained with dv/dg = 2g = 0 it is NaN."""
    g = torch.zeros(2, dtype=DT, requires_grad=True)
    (torch.sqrt(g * g) + 1e-8).sum().backward()
    assert torch.isnan(g.grad).all()


# ----------------------------------------------------------------------------- SparseAdam


@pytest.mark.skipif(not hasattr(fo, "sparse_adam"), reason="sparse_adam not in this build")
def test_sparse_adam_plain_autograd_wrt_lr_matches_finite_differences():
    gen = torch.Generator().manual_seed(0)
    table0 = torch.randn(6, 3, generator=gen, dtype=DT)
    rows = [torch.tensor([0, 2]), torch.tensor([2, 5]), torch.tensor([1, 2])]
    target = torch.randn(6, 3, generator=gen, dtype=DT)

    def meta(lr: torch.Tensor) -> torch.Tensor:
        opt = fo.sparse_adam(lr=lr, betas=(0.8, 0.9))
        params = {"table": table0}
        state = opt.init(params)
        for idx in rows:
            dense = 2 * (params["table"] - target)  # differentiable: the grads depend on lr too
            grad = torch.sparse_coo_tensor(idx[None], dense[idx], table0.shape).coalesce()
            updates, state = opt.update({"table": grad}, state, params)
            params = fo.apply_updates(params, updates)
        return ((params["table"] - target) ** 2).sum()

    lr = _t(0.1)
    leaf = lr.clone().requires_grad_(True)
    meta(leaf).backward()
    torch.testing.assert_close(leaf.grad, central_difference(meta, lr), rtol=1e-5, atol=1e-8)
