"""``inject_hyperparams``: hyperparameters in the state, readable/writable, scheduled, and exact."""

from __future__ import annotations

import pytest
import torch

import functional_optim as fo
from tests.combinators._helpers import assert_trees_equal, make_grads, make_params

ALIASES = [
    ("adam", lambda: {"lr": 0.01, "betas": (0.8, 0.99), "weight_decay": 0.1}),
    ("adam", lambda: {"lr": 0.01, "amsgrad": True}),
    ("adamw", lambda: {"lr": 0.003, "weight_decay": 0.05}),
    ("sgd", lambda: {"lr": 0.1, "momentum": 0.9, "nesterov": True, "weight_decay": 1e-3}),
    ("sgd", lambda: {"lr": 0.1, "momentum": 0.5, "dampening": 0.1}),
]


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize(("alias", "kwargs"), ALIASES)
def test_wrapping_changes_no_numbers(alias, kwargs, dtype):
    factory = getattr(fo, alias)
    plain, wrapped = factory(**kwargs()), fo.inject_hyperparams(factory)(**kwargs())
    params = make_params(dtype=dtype)
    p1, p2 = params, params
    s1, s2 = plain.init(params), wrapped.init(params)
    for step in range(6):
        grads = make_grads(params, step)
        u1, s1 = plain.update(grads, s1, p1)
        u2, s2 = wrapped.update(grads, s2, p2)
        assert_trees_equal(u1, u2)  # bitwise
        p1, p2 = fo.apply_updates(p1, u1), fo.apply_updates(p2, u2)
    assert_trees_equal(s1, s2.inner_state)
    assert int(s2.count) == 6


def test_hyperparams_are_readable_and_writable_between_steps():
    params = make_params()
    opt = fo.inject_hyperparams(fo.adamw)(lr=0.1, weight_decay=0.01)
    state = opt.init(params)
    assert set(state.hyperparams) == {"lr", "betas", "eps", "weight_decay"}
    assert float(state.hyperparams["lr"]) == 0.1 and isinstance(state.hyperparams["betas"], tuple)
    grads = make_grads(params, 0)
    _, state = opt.update(grads, state, params)
    # write a new learning rate: the next step uses it, exactly as an adamw built with it
    hp = dict(state.hyperparams, lr=torch.tensor(0.02, dtype=torch.float64))
    state = state._replace(hyperparams=hp)
    ref = fo.adamw(lr=0.02, weight_decay=0.01)
    grads = make_grads(params, 1)
    u, new_state = opt.update(grads, state, params)
    ru, _ = ref.update(grads, state.inner_state, params)
    assert_trees_equal(u, ru)
    assert float(new_state.hyperparams["lr"]) == 0.02
    # lr = 0 freezes the parameters
    state = new_state._replace(hyperparams=dict(new_state.hyperparams, lr=torch.tensor(0.0)))
    u, _ = opt.update(grads, state, params)
    assert all(torch.count_nonzero(x) == 0 for x in u.values())


def test_schedules_are_evaluated_at_the_step_count():
    params = {"w": torch.ones(3)}
    seen = []

    def schedule(count):
        seen.append(int(count))
        return 0.1 * (int(count) + 1)

    opt = fo.inject_hyperparams(fo.sgd)(lr=schedule)
    state = opt.init(params)
    for step in range(4):
        g = {"w": torch.full((3,), 2.0)}
        u, state = opt.update(g, state, params)
        torch.testing.assert_close(u["w"], torch.full((3,), -2.0 * 0.1 * (step + 1)))
        assert float(state.hyperparams["lr"]) == pytest.approx(0.1 * (step + 1))
    assert seen[-4:] == [0, 1, 2, 3]
    # passing a schedule to a schedulable factory injects automatically
    auto = fo.sgd(lr=lambda c: 0.5)
    assert isinstance(auto.init(params), fo.InjectHyperparamsState)


@pytest.mark.parametrize("param_dtype", [torch.bfloat16, torch.float16])
def test_hyperparameter_dtype_does_not_follow_low_precision_params(param_dtype):
    params = {"w": torch.ones(4, dtype=param_dtype)}
    state = fo.inject_hyperparams(fo.adam)(lr=1e-3).init(params)
    assert state.hyperparams["lr"].dtype == torch.float64
    assert state.hyperparams["betas"][1].dtype == torch.float64
    assert float(state.hyperparams["betas"][1]) == 0.999  # exact, not rounded to bf16
    u, state = fo.inject_hyperparams(fo.adam)(lr=1e-3).update({"w": torch.ones(4, dtype=param_dtype)}, state)
    assert u["w"].dtype == param_dtype and state.hyperparams["lr"].dtype == torch.float64
    # configurable
    st32 = fo.inject_hyperparams(fo.adam, hyperparam_dtype=torch.float32)(lr=1e-3).init(params)
    assert st32.hyperparams["lr"].dtype == torch.float32
    sched = fo.inject_hyperparams(fo.adam, hyperparam_dtype=torch.float32)(lr=lambda c: 1e-3)
    _, s = sched.update({"w": torch.ones(4, dtype=param_dtype)}, sched.init(params))
    assert s.hyperparams["lr"].dtype == torch.float32


def test_static_args_are_not_injected_and_validation_runs_at_construction():
    opt = fo.inject_hyperparams(fo.sgd, static_args="weight_decay")(lr=0.1, weight_decay=0.1)
    assert "weight_decay" not in opt.init({"w": torch.ones(2)}).hyperparams
    with pytest.raises(ValueError, match="learning rate"):
        fo.inject_hyperparams(fo.adam)(lr=-1.0)
