"""LAMB and LARS as rules (``scale_by_lamb``, ``scale_by_lars``): the same numbers, bit for bit, as
the chains of transforms they replace, and the adapters run them in place, equal to the pure
update at every step (LARS through the plan of a chain that ends in its rule)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import torch

import functional_optim as fo
from functional_optim import fused


def _lars_chain(lr: float, momentum: float = 0.9, weight_decay: float = 0.0, trust_coefficient: float = 0.001,
                eps: float = 0.0, nesterov: bool = False,
                trust_ratio: bool = True) -> fo.GradientTransformation:  # fmt: skip
    return fo.chain(
        fo.add_decayed_weights(weight_decay),
        fo.scale_by_trust_ratio(trust_coefficient, eps) if trust_ratio else fo.identity(),
        fo.scale_by_learning_rate(lr),
        fo.trace(momentum, nesterov=nesterov),
    )


def _lamb_chain(lr: float, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-6,
                weight_decay: float = 0.0) -> fo.GradientTransformation:  # fmt: skip
    return fo.chain(
        fo.scale_by_adam(*betas, eps),
        fo.add_decayed_weights(weight_decay),
        fo.scale_by_trust_ratio(),
        fo.scale_by_learning_rate(lr),
    )


CASES: dict[str, tuple[Callable[..., fo.GradientTransformation], Callable[..., Any], dict[str, Any]]] = {
    "lars": (fo.lars, _lars_chain, dict(lr=0.5, weight_decay=1e-2, trust_coefficient=0.01)),
    "lars_nesterov_eps": (
        fo.lars,
        _lars_chain,
        dict(lr=0.5, trust_coefficient=0.01, eps=1e-3, nesterov=True),
    ),
    "lars_no_momentum": (fo.lars, _lars_chain, dict(lr=0.5, momentum=0.0, weight_decay=1e-2)),
    "lars_no_trust_ratio": (fo.lars, _lars_chain, dict(lr=0.5, weight_decay=1e-2, trust_ratio=False)),
    "lars_no_trust_ratio_no_decay": (fo.lars, _lars_chain, dict(lr=0.5, nesterov=True, trust_ratio=False)),
    "lamb": (fo.lamb, _lamb_chain, dict(lr=1e-2, weight_decay=0.01)),
    "lamb_no_decay": (fo.lamb, _lamb_chain, dict(lr=1e-2)),
}


def _problem(dtype: torch.dtype, seed: int = 0) -> tuple[list[torch.Tensor], list[list[torch.Tensor]]]:
    gen = torch.Generator().manual_seed(seed)
    params = [torch.randn(s, generator=gen).to(dtype) for s in [(4, 3), (5,), (2,)]]
    params[2] = torch.zeros(2, dtype=dtype)  # a zero norm: the ratio is 1
    grads = [[torch.randn(p.shape, generator=gen).to(dtype) for p in params] for _ in range(6)]
    return params, grads


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.complex64])
@pytest.mark.parametrize("case", sorted(CASES))
def test_the_rule_equals_the_chain_it_replaces_bit_for_bit(case: str, dtype: torch.dtype) -> None:
    alias, chain, kwargs = CASES[case]
    params, grads = _problem(dtype)
    new, old = alias(**kwargs), chain(**kwargs)
    s_new, s_old = new.init(params), old.init(params)
    p_new, p_old = list(params), list(params)
    for k, g in enumerate(grads):
        u_new, s_new = new.update(g, s_new, p_new)
        u_old, s_old = old.update(g, s_old, p_old)
        p_new, p_old = fo.apply_updates(p_new, u_new), fo.apply_updates(p_old, u_old)
        for a, b in zip(p_new, p_old, strict=True):
            assert torch.equal(a, b), f"step {k}"


@pytest.mark.parametrize("case", sorted(CASES))
def test_the_adapter_runs_the_rule_in_place_and_equals_the_pure_update(case: str) -> None:
    alias, _, kwargs = CASES[case]
    tx = alias(**kwargs)
    plan = fused.plan(tx)
    assert plan is not None and plan.rule is not None
    if alias is fo.lars:  # the learning rate is inside the rule: the terms are the whole move
        assert plan.learning_rate == fused.UNIT_STEP and not plan.pre
    params, grads = _problem(torch.float32, seed=1)
    pure, state = list(params), tx.init(params)
    live = [torch.nn.Parameter(p.clone()) for p in params]
    opt = fo.adapters.FunctionalOptimizer(live, alias, **kwargs)
    buffers: dict[tuple[int, str], torch.Tensor] = {}
    for k, g in enumerate(grads):
        updates, state = tx.update(g, state, pure)
        pure = fo.apply_updates(pure, updates)
        for p, gk in zip(live, g, strict=True):
            p.grad = gk.clone()
        opt.step()
        for a, b in zip(live, pure, strict=True):
            # LARS: p.add_(b) is the pure p + b; LAMB: p.add_(r·u, alpha=-lr) against p + (-lr)·(r·u)
            tol = 0.0 if alias is fo.lars else 1e-6
            torch.testing.assert_close(a.detach(), b, rtol=0, atol=tol, msg=f"step {k}")
        if k >= 1:  # from the second step on, the state buffers are updated in place
            for p in live:
                for key, value in opt.state[p].items():
                    if isinstance(value, torch.Tensor) and value.dim() > 0:
                        if (id(p), key) in buffers:
                            assert value is buffers[id(p), key], key
                        buffers[id(p), key] = value


def test_a_chain_ending_in_a_rule_that_includes_the_learning_rate_is_fused_with_a_unit_step() -> None:
    # the pure update of such a chain is the rule's terms at step scale 1, added whole
    tx = fo.chain(fo.clip_by_global_norm(1.0), fo.scale_by_lars(0.5, weight_decay=1e-2, nesterov=True))
    plan = fused.plan(tx)
    assert plan is not None and plan.rule is not None and plan.learning_rate == fused.UNIT_STEP
    assert len(plan.pre) == 1
    assert fused.plan(fo.chain(fo.clip_by_global_norm(1.0), fo.scale_by_adam())) is None  # lr not inside
    params, grads = _problem(torch.float64, seed=2)
    pure, state = list(params), tx.init(params)
    live = [torch.nn.Parameter(p.clone()) for p in params]
    opt = fo.adapters.FunctionalOptimizer(live, tx)
    for g in grads:
        updates, state = tx.update(g, state, pure)
        pure = fo.apply_updates(pure, updates)
        for p, gk in zip(live, g, strict=True):
            p.grad = gk.clone()
        opt.step()
        for a, b in zip(live, pure, strict=True):
            assert torch.equal(a.detach(), b)
