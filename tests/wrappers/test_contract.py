"""The library's contract for every new transform: pure, ``None`` gradients skipped (update
``None``, that leaf's state untouched), ``torch.func.grad`` through an update, ``torch.func.vmap``
over an ensemble equal to the members one by one, schedules accepted for hyperparameters."""

from __future__ import annotations

import optree
import pytest
import torch
from torch.func import grad, vmap

import functional_optim as fo
from tests.wrappers._cases import TRANSFORMS

NAMES = sorted(TRANSFORMS)


def _tree(seed: int, scale: float = 1.0) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return {
        "w": torch.randn(4, 3, generator=gen, dtype=torch.float64) * scale,
        "b": torch.randn(3, generator=gen, dtype=torch.float64) * scale,
    }


def _two_steps(opt: fo.GradientTransformation, params: dict, grads: list[dict]):
    state = opt.init(params)
    for g in grads:
        updates, state = opt.update(g, state, params)
        params = fo.apply_updates(params, updates)
    return params, state


def _leaves_with_paths(tree):
    paths, leaves, _ = optree.tree_flatten_with_path(tree, none_is_leaf=True)
    return [(p, x) for p, x in zip(paths, leaves, strict=True) if isinstance(x, torch.Tensor)]


@pytest.mark.parametrize("name", NAMES)
def test_update_is_pure(name: str) -> None:
    opt = TRANSFORMS[name]()
    params = _tree(0)
    _, state = _two_steps(opt, params, [_tree(1)])
    grads = _tree(2)
    before = [(p, x.clone()) for p, x in _leaves_with_paths((params, grads, state))]
    opt.update(grads, state, params)
    after = _leaves_with_paths((params, grads, state))
    for (path, x), (_, y) in zip(before, after, strict=True):
        assert torch.equal(x, y), f"{name} changed its input at {path}"


@pytest.mark.parametrize("name", NAMES)
def test_none_gradient_gives_none_update_and_keeps_that_leafs_state(name: str) -> None:
    opt = TRANSFORMS[name]()
    params = _tree(0)
    _, state = _two_steps(opt, params, [_tree(1)])
    grads = _tree(2) | {"b": None}
    updates, new_state = opt.update(grads, state, params)
    assert updates["b"] is None and updates["w"] is not None
    old = dict(_leaves_with_paths(state))
    for path, x in _leaves_with_paths(new_state):
        if "b" in path:
            assert torch.equal(x, old[path]), f"{name}: state of the skipped leaf changed at {path}"


@pytest.mark.parametrize("name", NAMES)
def test_func_grad_through_an_update_is_finite_and_matches_finite_differences(name: str) -> None:
    opt = TRANSFORMS[name]()
    # three steps first: DoG's distance is then past its initial r_eps (no max() kink within h)
    params, state = _two_steps(opt, _tree(0), [_tree(1), _tree(4), _tree(5)])
    g0 = _tree(2)
    direction = _tree(3)

    def loss(p: dict) -> torch.Tensor:
        grads = {k: g0[k] + 0.5 * p[k] for k in p}
        updates, _ = opt.update(grads, state, p)
        new = fo.apply_updates(p, updates)
        return sum((new[k] ** 2).sum() for k in new)

    g = grad(loss)(params)
    assert all(torch.isfinite(v).all() for v in g.values())
    h = 1e-9  # DoG moves ~1e-5 from x0: its distance term curves on that scale
    plus = loss({k: params[k] + h * direction[k] for k in params})
    minus = loss({k: params[k] - h * direction[k] for k in params})
    fd = (plus - minus) / (2 * h)
    analytic = sum((g[k] * direction[k]).sum() for k in g)
    # sign masks (cautious) and max/min (parameter-free) are piecewise: no kink within h here
    assert torch.allclose(analytic, fd, rtol=1e-4, atol=1e-5), (float(analytic), float(fd))


@pytest.mark.parametrize("name", NAMES)
def test_vmap_over_an_ensemble_equals_each_member(name: str) -> None:
    opt = TRANSFORMS[name]()
    members = [_tree(0), _tree(10, 2.0)]
    grads = [[_tree(1), _tree(2)], [_tree(11, 0.5), _tree(12)]]
    stack = lambda trees: {k: torch.stack([t[k] for t in trees]) for k in trees[0]}  # noqa: E731
    params_b = stack(members)
    state_b = vmap(opt.init)(params_b)
    for step in range(2):
        updates_b, state_b = vmap(opt.update)(stack([g[step] for g in grads]), state_b, params_b)
        params_b = fo.apply_updates(params_b, updates_b)
    for i, p in enumerate(members):
        expected, _ = _two_steps(opt, p, grads[i])
        for k in p:
            torch.testing.assert_close(params_b[k][i], expected[k], rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize(
    ("make", "kwargs", "hyper"),
    [
        (fo.schedule_free_adamw, {"warmup_steps": 2}, "lr"),
        (fo.schedule_free_sgd, {}, "lr"),
        (fo.prodigy, {}, "lr"),
        (fo.dadapt_adamw, {}, "lr"),
        (fo.dog, {}, "lr"),
        (fo.mars_adamw, {}, "lr"),
        (fo.cautious_adamw, {}, "weight_decay"),
    ],
)
def test_a_constant_schedule_gives_the_same_numbers_as_the_value(make, kwargs, hyper) -> None:
    value = 0.05
    plain, _ = _two_steps(make(**kwargs, **{hyper: value}), _tree(0), [_tree(1), _tree(2)])
    scheduled, state = _two_steps(
        make(**kwargs, **{hyper: lambda count: value}), _tree(0), [_tree(1), _tree(2)]
    )
    assert isinstance(state, fo.InjectHyperparamsState)
    for k in plain:
        torch.testing.assert_close(scheduled[k], plain[k], rtol=0, atol=0)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["schedule_free_adamw", "prodigy", "dog"])
def test_torch_compile_fullgraph_gives_the_eager_update(name: str) -> None:
    opt = TRANSFORMS[name]()
    params, state = _two_steps(opt, _tree(0), [_tree(1)])
    compiled = torch.compile(opt.update, fullgraph=True)
    got, got_state = compiled(_tree(2), state, params)
    expected, expected_state = opt.update(_tree(2), state, params)
    for k in expected:
        torch.testing.assert_close(got[k], expected[k], rtol=1e-12, atol=1e-15)
    for a, b in zip(optree.tree_leaves(got_state), optree.tree_leaves(expected_state), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-15)
