"""Combinators stay pure: they work under ``torch.func.vmap``, ``torch.func.grad`` and
``torch.compile``; None gradients stay None; states are plain trees of tensors (state_dict-able)."""

from __future__ import annotations

import pytest
import torch

import functional_optim as fo
from functional_optim import tree

NAN = float("nan")


def _stack(trees: list):
    return tree.map(lambda *xs: None if xs[0] is None else torch.stack(xs), *trees)


def _index(t, i: int):
    return tree.map(lambda x: None if x is None else x[i], t)


def test_apply_if_finite_under_vmap_decides_per_batch_element():
    params = {"w": torch.ones(3)}
    opt = fo.apply_if_finite(fo.sgd(lr=0.1, momentum=0.9), max_consecutive_errors=1)
    state = opt.init(params)
    _, state = opt.update({"w": torch.ones(3)}, state, params)
    grads = [
        {"w": torch.full((3,), 2.0)},
        {"w": torch.tensor([1.0, NAN, 1.0])},
        {"w": torch.full((3,), -1.0)},
    ]
    states = _stack([state] * 3)
    u_b, s_b = torch.func.vmap(lambda g, s: opt.update(g, s, params))(_stack(grads), states)
    for i, g in enumerate(grads):
        u_i, s_i = opt.update(g, state, params)
        torch.testing.assert_close(u_b["w"][i], u_i["w"])
        for got, want in zip(tree.leaves(_index(s_b, i)), tree.leaves(s_i), strict=True):
            torch.testing.assert_close(got, want)
    assert s_b.last_finite.tolist() == [True, False, True]


def test_multi_steps_under_vmap_with_batched_state_takes_the_branch_free_path():
    params = {"w": torch.ones(2)}
    opt = fo.multi_steps(fo.sgd(lr=0.5, momentum=0.5), every_k=2)
    s0 = opt.init(params)
    _, s1 = opt.update({"w": torch.ones(2)}, s0, params)
    states = _stack([s0, s1])  # element 0 accumulates, element 1 emits
    g = {"w": torch.full((2,), 3.0)}
    u_b, s_b = torch.func.vmap(lambda s: opt.update(g, s, params))(states)
    for i, s in enumerate([s0, s1]):
        u_i, s_i = opt.update(g, s, params)
        torch.testing.assert_close(u_b["w"][i], u_i["w"])
        for got, want in zip(tree.leaves(_index(s_b, i)), tree.leaves(s_i), strict=True):
            torch.testing.assert_close(got, want)
    assert s_b.mini_step.tolist() == [1, 0]


@pytest.mark.parametrize(
    "make",
    [
        lambda lr: fo.apply_if_finite(fo.sgd(lr=lr), max_consecutive_errors=3),
        lambda lr: fo.multi_steps(fo.sgd(lr=lr), every_k=1),
        lambda lr: fo.masked(fo.sgd(lr=lr), {"w": True, "b": True}),
        lambda lr: fo.partition({"x": fo.sgd(lr=lr)}, {"w": "x", "b": "x"}),
        lambda lr: fo.chain(fo.snapshot(), fo.clip_by_block_rms(100.0), fo.sgd(lr=lr)),
        lambda lr: fo.skip_large_updates(fo.sgd(lr=lr), max_squared_norm=1e6),
    ],
)
def test_hypergradient_of_the_learning_rate_flows_through(make):
    params = {"w": torch.tensor([1.0, -2.0]), "b": torch.tensor([0.5])}
    grads = {"w": torch.tensor([0.3, 0.4]), "b": torch.tensor([-1.0])}

    def loss(lr):
        opt = make(lr)
        u, _ = opt.update(grads, opt.init(params), params)
        new = fo.apply_updates(params, u)
        return sum((x**2).sum() for x in new.values())

    lr = torch.tensor(0.1)
    got = torch.func.grad(loss)(lr)
    # d/dlr sum (p - lr g)^2 = -2 sum (p - lr g) g
    want = -2 * sum(((params[k] - lr * grads[k]) * grads[k]).sum() for k in params)
    torch.testing.assert_close(got, want)


def test_lookahead_grad_through_a_sync_step_matches_autograd():
    params = {"w": torch.tensor([1.0, 2.0], dtype=torch.float64)}
    opt = fo.lookahead(fo.sgd(lr=0.3), sync_period=1, alpha=0.25)

    def run(p):
        state = opt.init({"w": p["w"].detach()})
        u, _ = opt.update({"w": 2 * p["w"]}, state, p)
        return (fo.apply_updates(p, u)["w"] ** 3).sum()

    g_func = torch.func.grad(run)(params)
    w = params["w"].clone().requires_grad_(True)
    (g_auto,) = torch.autograd.grad(run({"w": w}), w)
    torch.testing.assert_close(g_func["w"], g_auto)
    # p_new = slow + 0.25 (p - 0.6 p - slow) with slow held constant: d p_new / dp = 0.1
    torch.testing.assert_close(g_func["w"], 3 * (params["w"] * 0.85) ** 2 * 0.1)


def test_apply_if_finite_and_multi_steps_compile_with_fullgraph():
    params = {"w": torch.ones(4), "b": torch.zeros(2)}
    opt = fo.chain(
        fo.multi_steps(fo.apply_if_finite(fo.sgd(lr=0.1, momentum=0.9), 2), every_k=2), fo.snapshot()
    )
    step = torch.compile(opt.update, fullgraph=True, backend="eager")
    state_c = state_e = opt.init(params)
    for t in range(4):
        g = {"w": torch.full((4,), float(t + 1)), "b": torch.tensor([NAN, 1.0]) if t == 1 else torch.ones(2)}
        u_c, state_c = step(g, state_c, params)
        u_e, state_e = opt.update(g, state_e, params)
        for a, b in zip(tree.leaves((u_c, state_c)), tree.leaves((u_e, state_e)), strict=True):
            if isinstance(a, torch.Tensor):
                torch.testing.assert_close(a, b, equal_nan=True)


def _all_combinators(params):
    labels = {k: "a" if i % 2 else "b" for i, k in enumerate(params)}
    mask = {k: bool(i % 2) for i, k in enumerate(params)}
    return {
        "partition": fo.partition({"a": fo.adam(0.1), "b": fo.sgd(0.1, momentum=0.9)}, labels),
        "masked": fo.masked(fo.adamw(0.1), mask),
        "inject_hyperparams": fo.inject_hyperparams(fo.adam)(lr=lambda c: 0.1 / (1 + c)),
        "apply_if_finite": fo.apply_if_finite(fo.adam(0.1), 2),
        "multi_steps": fo.multi_steps(fo.adam(0.1), 2),
        "lookahead": fo.lookahead(fo.adam(0.1), 2, 0.5),
        "freeze": fo.freeze(mask),
        "skip_large_updates": fo.skip_large_updates(fo.adam(0.1), 10.0),
        "add_noise": fo.add_noise(0.1, 0.55, 3),
        "centralize": fo.centralize(),
        "zero_nans": fo.zero_nans(),
        "clip_by_block_rms": fo.clip_by_block_rms(0.5),
        "adaptive_grad_clip": fo.adaptive_grad_clip(0.01),
        "snapshot": fo.snapshot("norm"),
    }


@pytest.mark.parametrize("name", list(_all_combinators({"a": 0})))
def test_none_grads_stay_none_and_states_are_plain_tensor_trees(name):
    gen = torch.Generator().manual_seed(0)
    shapes = {"m": (3, 2), "v": (3,), "c": (2, 2, 2), "s": ()}
    params = {k: torch.randn(s, generator=gen) for k, s in shapes.items()}
    opt = _all_combinators(params)[name]
    state = opt.init(params)
    for _ in range(3):
        g = {k: torch.randn(s, generator=gen) for k, s in shapes.items()}
        g["v"] = None
        u, new_state = opt.update(g, state, params)
        assert u["v"] is None
        assert all(x is not None for k, x in u.items() if k != "v")
        assert tree.structure(new_state) == tree.structure(state)  # shape of the state never changes
        state = new_state
    # state_dict-friendly: only tensors, None, and (for injected hyperparameters) numbers
    for leaf in tree.leaves(state):
        assert leaf is None or isinstance(leaf, torch.Tensor | int | float), type(leaf)
