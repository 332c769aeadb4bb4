"""``torch.func.grad`` and plain autograd through K unrolled steps of every algorithm, with
respect to the initial parameters (MAML) and to hyperparameters given as 0-dim tensors,
checked against central finite differences in float64."""

from __future__ import annotations

import pytest
import torch

import functional_optim as fo
from tests.differentiable._problems import DT, central_difference, init_params, unrolled


def _t(v: float) -> torch.Tensor:
    return torch.tensor(v, dtype=DT)


# name -> (hyperparameters as 0-dim tensors, factory from those tensors)
HYPER = {
    "sgd": ({"lr": 0.1, "momentum": 0.8, "weight_decay": 0.05},
            lambda h: fo.sgd(lr=h["lr"], momentum=h["momentum"], weight_decay=h["weight_decay"], nesterov=True)),
    "adam": ({"lr": 0.05, "b1": 0.8, "b2": 0.9, "weight_decay": 0.05},
             lambda h: fo.adam(lr=h["lr"], betas=(h["b1"], h["b2"]), weight_decay=h["weight_decay"], amsgrad=True)),
    "adamw": ({"lr": 0.05, "b1": 0.8, "b2": 0.9, "weight_decay": 0.1},
              lambda h: fo.adamw(lr=h["lr"], betas=(h["b1"], h["b2"]), weight_decay=h["weight_decay"])),
    "adamax": ({"lr": 0.05, "b1": 0.8, "b2": 0.9, "weight_decay": 0.05},
               lambda h: fo.adamax(lr=h["lr"], betas=(h["b1"], h["b2"]), weight_decay=h["weight_decay"])),
    "nadam": ({"lr": 0.05, "b1": 0.8, "b2": 0.9, "weight_decay": 0.05},
              lambda h: fo.nadam(lr=h["lr"], betas=(h["b1"], h["b2"]), weight_decay=h["weight_decay"])),
    "radam": ({"lr": 0.05, "b1": 0.8, "b2": 0.9, "weight_decay": 0.05},
              lambda h: fo.radam(lr=h["lr"], betas=(h["b1"], h["b2"]), weight_decay=h["weight_decay"])),
    "adagrad": ({"lr": 0.1, "lr_decay": 0.01, "weight_decay": 0.05},
                lambda h: fo.adagrad(lr=h["lr"], lr_decay=h["lr_decay"], weight_decay=h["weight_decay"])),
    "adadelta": ({"lr": 1.0, "rho": 0.8, "weight_decay": 0.05},
                 lambda h: fo.adadelta(lr=h["lr"], rho=h["rho"], weight_decay=h["weight_decay"])),
    "rmsprop": ({"lr": 0.01, "alpha": 0.9, "momentum": 0.5, "weight_decay": 0.05},
                lambda h: fo.rmsprop(lr=h["lr"], alpha=h["alpha"], momentum=h["momentum"],
                                     weight_decay=h["weight_decay"], centered=True)),
    "rprop": ({"lr": 0.01}, lambda h: fo.rprop(lr=h["lr"])),
    "asgd": ({"lr": 0.05, "lambd": 0.01, "weight_decay": 0.05},
             lambda h: fo.asgd(lr=h["lr"], lambd=h["lambd"], weight_decay=h["weight_decay"], t0=1)),
    "adafactor": ({"lr": 0.05, "weight_decay": 0.05},
                  lambda h: fo.adafactor(lr=h["lr"], weight_decay=h["weight_decay"])),
}
AVAILABLE = {k: v for k, v in HYPER.items() if hasattr(fo, k)}


def _meta(name: str):
    values, make = AVAILABLE[name]
    hyper = {k: _t(v) for k, v in values.items()}
    return unrolled(make, steps=3), hyper


@pytest.mark.parametrize("name", sorted(AVAILABLE))
def test_func_grad_wrt_initial_params_matches_finite_differences(name):
    meta, hyper = _meta(name)
    params = init_params()
    grads = torch.func.grad(meta)(params, hyper)
    for key in params:
        def f(x, key=key):
            return meta({**params, key: x}, hyper)

        torch.testing.assert_close(grads[key], central_difference(f, params[key]), rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("name", sorted(AVAILABLE))
def test_func_grad_wrt_hyperparameters_matches_finite_differences(name):
    meta, hyper = _meta(name)
    params = init_params()
    grads = torch.func.grad(meta, argnums=1)(params, hyper)
    for key in hyper:
        def f(x, key=key):
            return meta(params, {**hyper, key: x})

        expected = central_difference(f, hyper[key])
        assert torch.isfinite(grads[key]), f"{name}: d/d{key} is not finite"
        torch.testing.assert_close(grads[key], expected, rtol=1e-5, atol=1e-8, msg=f"{name}: d/d{key}")


@pytest.mark.parametrize("name", sorted(AVAILABLE))
def test_plain_autograd_agrees_with_func_grad(name):
    meta, hyper = _meta(name)
    params = init_params()
    expected = torch.func.grad(meta, argnums=(0, 1))(params, hyper)
    leaf_params = {k: v.clone().requires_grad_(True) for k, v in params.items()}
    leaf_hyper = {k: v.clone().requires_grad_(True) for k, v in hyper.items()}
    meta(leaf_params, leaf_hyper).backward()
    for k in params:
        torch.testing.assert_close(leaf_params[k].grad, expected[0][k])
    for k in hyper:
        torch.testing.assert_close(leaf_hyper[k].grad, expected[1][k])
