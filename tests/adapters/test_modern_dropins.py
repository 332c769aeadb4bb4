"""The drop-ins of the sign and Adam families (``fo.adapters.Lion``, ..., ``fo.adapters.LaProp``):
they train, run exactly the pure alias, and their ``state_dict`` resumes bit-identically."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import torch

import functional_optim as fo
from functional_optim import adapters, fused

# (drop-in class, pure alias, constructor arguments) -- the arguments exercise decay where there is one
DROPINS: list[tuple[type, Any, dict[str, Any]]] = [
    (adapters.Lion, fo.lion, dict(lr=1e-3, weight_decay=0.1)),
    (adapters.Signum, fo.signum, dict(lr=1e-3, weight_decay=1e-3)),
    (adapters.LARS, fo.lars, dict(lr=1.0, weight_decay=1e-3, trust_coefficient=0.01)),
    (adapters.Lamb, fo.lamb, dict(lr=1e-2, weight_decay=0.01)),
    (adapters.Novograd, fo.novograd, dict(lr=1e-2, weight_decay=1e-3)),
    (adapters.AdaBelief, fo.adabelief, dict(lr=1e-2, weight_decay=0.01)),
    (adapters.Yogi, fo.yogi, dict(lr=1e-2, weight_decay=1e-3)),
    (adapters.ADOPT, fo.adopt, dict(lr=1e-2, weight_decay=1e-3)),
    (adapters.AdEMAMix, fo.ademamix, dict(lr=1e-2, weight_decay=0.01, beta3_warmup=10, alpha_warmup=10)),
    (adapters.Adan, fo.adan, dict(lr=1e-2, weight_decay=0.02)),
    (adapters.LaProp, fo.laprop, dict(lr=1e-2, weight_decay=0.01)),
]
IDS = [cls.__name__ for cls, _, _ in DROPINS]

STATE_KEYS = {
    "Lion": {"exp_avg"},
    "Signum": {"momentum_buffer"},
    "Lamb": {"step", "exp_avg", "exp_avg_sq"},
    "Novograd": {"step", "exp_avg", "exp_avg_sq"},
    "AdaBelief": {"step", "exp_avg", "exp_avg_var"},
    "Yogi": {"step", "exp_avg", "exp_avg_sq"},
    "ADOPT": {"step", "exp_avg", "exp_avg_sq"},
    "AdEMAMix": {"step", "exp_avg_fast", "exp_avg_slow", "exp_avg_sq"},
    "Adan": {"step", "exp_avg", "exp_avg_diff", "exp_avg_sq", "pre_grad"},
    "LaProp": {"step", "exp_avg", "exp_avg_sq"},
}


# The drop-ins that run the adapters' fused in-place step (their alias's maths is a ``Rule``), with
# arguments that keep it (a warmup schedule inside the rule makes AdEMAMix run its pure update).
FUSED: dict[str, dict[str, Any]] = {
    "Lion": dict(lr=1e-3, weight_decay=0.1),
    "Signum": dict(lr=1e-3, weight_decay=1e-3),
    "AdaBelief": dict(lr=1e-2, weight_decay=0.01),
    "Yogi": dict(lr=1e-2, weight_decay=1e-3),
    "ADOPT": dict(lr=1e-2, weight_decay=1e-3),
    "AdEMAMix": dict(lr=1e-2, weight_decay=0.01),
    "LaProp": dict(lr=1e-2, weight_decay=0.01),
    "Adan": dict(lr=1e-2, weight_decay=0.02),
    "Novograd": dict(lr=1e-2, weight_decay=1e-3, grad_averaging=True),
    "LARS": dict(lr=1.0, weight_decay=1e-3, trust_coefficient=0.01),
    "Lamb": dict(lr=1e-2, weight_decay=0.01),
}


def _model() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(6, 16), torch.nn.Tanh(), torch.nn.Linear(16, 2))


def _batch(step: int) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(1000 + step)
    x = torch.randn(32, 6, generator=gen)
    return x, torch.stack([x[:, 0] * x[:, 1], torch.sin(x[:, 2])], dim=1)


def _loss(model: torch.nn.Module, step: int) -> torch.Tensor:
    x, y = _batch(step)
    return torch.nn.functional.mse_loss(model(x), y)


def _train(model: torch.nn.Module, opt: torch.optim.Optimizer, steps: range) -> list[float]:
    losses = []
    for step in steps:
        opt.zero_grad()
        loss = _loss(model, step)
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    return losses


@pytest.mark.parametrize(("cls", "alias", "kwargs"), DROPINS, ids=IDS)
def test_dropin_trains_the_model(cls: type, alias: Any, kwargs: dict) -> None:
    model = _model()
    losses = _train(model, cls(model.parameters(), **kwargs), range(60))
    assert sum(losses[-10:]) / 10 < 0.8 * sum(losses[:10]) / 10


@pytest.mark.parametrize(("cls", "alias", "kwargs"), DROPINS, ids=IDS)
def test_dropin_equals_pure_alias_at_every_step(cls: type, alias: Any, kwargs: dict) -> None:
    # up to float32 rounding: the adapter applies decoupled decay in place as p·(1 - lr·wd)
    # where the pure chain adds -lr·(u + wd·p)
    model = _model()
    params = {k: v.detach().clone() for k, v in model.named_parameters()}
    opt = cls(model.parameters(), **kwargs)
    tx = alias(**kwargs)
    state = tx.init(params)
    for step in range(12):
        _train(model, opt, range(step, step + 1))
        p = {k: v.detach().requires_grad_(True) for k, v in params.items()}
        grads = dict(zip(p, torch.autograd.grad(_loss_fn(p, step), list(p.values())), strict=True))
        updates, state = tx.update(grads, state, params)
        params = fo.apply_updates(params, updates)
        for name, v in model.named_parameters():
            torch.testing.assert_close(
                v.detach(), params[name], rtol=0, atol=1e-6, msg=f"step {step}, {name}"
            )


def _loss_fn(p: dict[str, torch.Tensor], step: int) -> torch.Tensor:
    x, y = _batch(step)
    h = torch.tanh(x @ p["0.weight"].T + p["0.bias"])
    return torch.nn.functional.mse_loss(h @ p["2.weight"].T + p["2.bias"], y)


@pytest.mark.parametrize(("cls", "alias", "kwargs"), DROPINS, ids=IDS)
def test_state_dict_round_trip_continues_bit_identically(cls: type, alias: Any, kwargs: dict) -> None:
    model = _model()
    opt = cls(model.parameters(), **kwargs)
    _train(model, opt, range(5))
    saved_model, saved_opt = copy.deepcopy(model.state_dict()), copy.deepcopy(opt.state_dict())
    _train(model, opt, range(5, 10))

    fresh = _model()
    fresh.load_state_dict(saved_model)
    fresh_opt = cls(fresh.parameters(), **kwargs)
    fresh_opt.load_state_dict(saved_opt)
    _train(fresh, fresh_opt, range(5, 10))
    for a, b in zip(model.parameters(), fresh.parameters(), strict=True):
        assert torch.equal(a, b)


@pytest.mark.parametrize("name", sorted(STATE_KEYS))
def test_state_keys_are_the_references_names(name: str) -> None:
    cls, _, kwargs = next(d for d in DROPINS if d[0].__name__ == name)
    model = _model()
    opt = cls(model.parameters(), **kwargs)
    _train(model, opt, range(2))
    first = next(iter(opt.state.values()))
    assert STATE_KEYS[name] <= set(first)


def test_parameter_without_gradient_is_left_alone() -> None:
    model = _model()
    frozen = model[2].bias.detach().clone()
    opt = adapters.Adan(model.parameters(), lr=1e-2, weight_decay=0.1)
    for step in range(3):
        opt.zero_grad()
        _loss(model, step).backward()
        model[2].bias.grad = None
        opt.step()
    assert torch.equal(model[2].bias, frozen)
    assert not opt.state.get(model[2].bias)


def test_defaults_are_the_reference_constructors() -> None:
    assert adapters.Lion([torch.zeros(1, requires_grad=True)]).defaults == dict(
        lr=1e-4, betas=(0.9, 0.99), weight_decay=0.0
    )
    adan = adapters.Adan([torch.zeros(1, requires_grad=True)]).defaults
    assert (adan["betas"], adan["eps"], adan["no_prox"]) == ((0.98, 0.92, 0.99), 1e-8, False)
    assert adapters.LaProp([torch.zeros(1, requires_grad=True)]).defaults["eps"] == 1e-15


@pytest.mark.parametrize("name", sorted(FUSED))
def test_dropin_takes_the_fused_in_place_step(name: str) -> None:
    cls, alias, _ = next(d for d in DROPINS if d[0].__name__ == name)
    kwargs = FUSED[name]
    plan = fused.plan(alias(**kwargs))
    assert plan is not None and plan.rule is not None
    model = _model()
    opt = cls(model.parameters(), **kwargs)
    assert opt.fuse
    _train(model, opt, range(2))
    buffers = {
        (id(p), key): value
        for p, st in opt.state.items()
        for key, value in st.items()
        if isinstance(value, torch.Tensor) and value.dim() > 0
    }
    assert buffers
    _train(model, opt, range(2, 4))
    for p, st in opt.state.items():
        for key, value in st.items():
            if (id(p), key) in buffers:  # updated in place by the rule, not replaced by a pure step
                assert value is buffers[id(p), key], key
