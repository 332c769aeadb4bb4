"""Schedules are small objects, not closures: they pickle, load with ``weights_only=True``, print
their arguments, compare by value, and stay differentiable and compilable without graph breaks."""

from __future__ import annotations

import io
import math
import pickle

import pytest
import torch

import functional_optim as fo
from functional_optim import schedules as sch

# one instance of every schedule constructor (module-level callables only: picklable)
BUILDERS = {
    "rex": lambda: sch.rex(0.1, total_steps=6, end_value=0.01),
    "warmup_stable_decay": lambda: sch.warmup_stable_decay(0.1, 2, 3, 4, decay_type="cosine"),
    "step_lr": lambda: sch.step_lr(0.1, step_size=3, gamma=0.5),
    "multi_step_lr": lambda: sch.multi_step_lr(0.1, [2, 5, 5], gamma=0.5),
    "constant_lr": lambda: sch.constant_lr(0.1, factor=0.5, total_iters=3),
    "linear_lr": lambda: sch.linear_lr(0.1, start_factor=0.25, total_iters=4),
    "exponential_lr": lambda: sch.exponential_lr(0.1, gamma=0.9),
    "polynomial_lr": lambda: sch.polynomial_lr(0.1, total_iters=6, power=2.0),
    "cosine_annealing_lr": lambda: sch.cosine_annealing_lr(0.1, T_max=7, eta_min=0.01),
    "cosine_annealing_warm_restarts": lambda: sch.cosine_annealing_warm_restarts(0.1, T_0=3, T_mult=2),
    "cyclic_lr": lambda: sch.cyclic_lr(0.01, 0.1, step_size_up=3, mode="triangular2"),
    "cyclic_momentum": lambda: sch.cyclic_momentum(0.8, 0.9, step_size_up=3, mode="exp_range", gamma=0.9),
    "one_cycle_lr": lambda: sch.one_cycle_lr(0.1, total_steps=12, three_phase=True),
    "one_cycle_momentum": lambda: sch.one_cycle_momentum(total_steps=12, anneal_strategy="linear"),
    "sequential_lr": lambda: sch.sequential_lr(
        [sch.linear_lr(0.1, total_iters=2), sch.exponential_lr(0.1, 0.9)], [2]
    ),
    "chained_scheduler": lambda: sch.chained_scheduler(
        [sch.step_lr(0.1, 2), sch.exponential_lr(0.1, 0.9)], base=0.1
    ),
    "swa_lr": lambda: sch.swa_lr(0.1, 0.02, anneal_epochs=4),
    "lambda_lr": lambda: sch.lambda_lr(0.1, abs),
    "multiplicative_lr": lambda: sch.multiplicative_lr(0.1, math.cos),
    "constant": lambda: sch.constant(0.1),
    "linear": lambda: sch.linear(0.0, 0.1, transition_steps=5, transition_begin=1),
    "cosine_decay": lambda: sch.cosine_decay(0.1, decay_steps=6, alpha=0.1),
    "piecewise_constant": lambda: sch.piecewise_constant(0.1, {2: 0.5, 4: 0.1}),
    "piecewise_constant_values": lambda: sch.piecewise_constant(boundaries=[2, 4], values=[0.1, 0.05, 0.01]),
    "join_schedules": lambda: sch.join_schedules([sch.constant(0.1), sch.cosine_decay(0.1, 4)], [3]),
    "linear_warmup": lambda: sch.linear_warmup(sch.cosine_annealing_lr(0.1, T_max=5), warmup_steps=2),
    "warmup_cosine_decay": lambda: sch.warmup_cosine_decay(0.0, 0.1, warmup_steps=2, decay_steps=8),
}
COUNTS = [0, 1, 2, 3, 5, 8, 13]


def test_every_public_schedule_constructor_is_covered():
    public = {n for n in sch.__all__ if not n[0].isupper() and n not in ("reduce_lr_on_plateau", "warmup")}
    covered = {n.removesuffix("_values") for n in BUILDERS}
    assert public <= covered, public - covered


@pytest.mark.parametrize("name", list(BUILDERS))
def test_schedule_pickles_loads_weights_only_and_keeps_its_values(name):
    sched = BUILDERS[name]()
    assert isinstance(sched, sch.ScheduleObject)
    buf = io.BytesIO()
    torch.save({"lr": sched}, buf)
    buf.seek(0)
    if name in ("lambda_lr", "multiplicative_lr"):  # a user function inside: not a safe global
        with pytest.raises(pickle.UnpicklingError):
            torch.load(buf)
        buf.seek(0)
        loaded = torch.load(buf, weights_only=False)["lr"]
    else:
        loaded = torch.load(buf)["lr"]
    assert loaded == sched and loaded is not sched
    assert [loaded(c) for c in COUNTS] == [sched(c) for c in COUNTS]
    assert torch.equal(loaded(torch.arange(10)), sched(torch.arange(10)))
    assert pickle.loads(pickle.dumps(sched)) == sched


@pytest.mark.parametrize("name", list(BUILDERS))
def test_schedule_repr_names_its_class_and_arguments(name):
    text = repr(BUILDERS[name]())
    assert text.startswith(type(BUILDERS[name]()).__name__ + "(")
    assert "=" in text and "<function" not in text.replace("<built-in function abs>", "").replace(
        "<built-in", ""
    )


def test_equality_and_hash_follow_the_arguments():
    a, b = sch.cosine_annealing_lr(0.1, T_max=10), sch.cosine_annealing_lr(0.1, T_max=10)
    assert a == b and hash(a) == hash(b) and len({a, b}) == 1
    assert a != sch.cosine_annealing_lr(0.1, T_max=11)
    assert a != sch.cosine_decay(0.1, 10)
    t = torch.tensor(0.1)
    assert sch.exponential_lr(t, 0.9) == sch.exponential_lr(torch.tensor(0.1), 0.9)
    assert sch.exponential_lr(t, 0.9) != sch.exponential_lr(torch.tensor(0.2), 0.9)


def test_hyper_gradient_flows_through_a_schedule_object():
    def lr_at(base: torch.Tensor) -> torch.Tensor:
        return sch.cosine_annealing_lr(base, T_max=8)(torch.tensor(3))

    grad = torch.func.grad(lr_at)(torch.tensor(0.1, dtype=torch.float64))
    assert torch.allclose(grad, torch.tensor((1 + math.cos(math.pi * 3 / 8)) / 2, dtype=torch.float64))

    peak = torch.tensor(0.1, dtype=torch.float64, requires_grad=True)
    value = sch.warmup_cosine_decay(0.0, peak, warmup_steps=2, decay_steps=10)(torch.tensor(1))
    value.backward()
    assert torch.allclose(peak.grad, torch.tensor(0.5, dtype=torch.float64))  # halfway up the warmup


@pytest.mark.parametrize(
    "name",
    [
        "step_lr",
        "multi_step_lr",
        "linear_lr",
        "exponential_lr",
        "cosine_annealing_lr",
        "one_cycle_lr",
        "constant",
        "linear",
        "cosine_decay",
        "piecewise_constant",
        "join_schedules",
        "warmup_cosine_decay",
    ],
)
def test_common_schedules_compile_without_graph_breaks(name):
    sched = BUILDERS[name]()
    compiled = torch.compile(sched.__call__, fullgraph=True, backend="eager")
    counts = torch.arange(12)
    torch.testing.assert_close(compiled(counts), sched(counts))


def test_a_schedule_is_still_a_schedule_for_every_hyperparameter():
    lr = sch.step_lr(0.1, step_size=1, gamma=0.5)
    opt = fo.sgd(lr)
    params = {"w": torch.ones(2)}
    state = opt.init(params)
    values = []
    for _ in range(3):
        updates, state = opt.update({"w": torch.ones(2)}, state, params)
        values.append(-updates["w"][0].item())
    assert values == pytest.approx([0.1, 0.05, 0.025], rel=1e-6)


def test_adapter_state_dict_with_a_schedule_saves_and_loads_weights_only():
    model = torch.nn.Linear(2, 1)
    opt = fo.adapters.FunctionalOptimizer(
        model.parameters(), fo.adamw, lr=sch.one_cycle_lr(0.01, total_steps=20)
    )
    buf = io.BytesIO()
    torch.save(opt.state_dict(), buf)
    buf.seek(0)
    loaded = torch.load(buf)
    assert loaded["param_groups"][0]["lr"] == sch.one_cycle_lr(0.01, total_steps=20)
