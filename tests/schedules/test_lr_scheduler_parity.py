"""Every torch scheduler driving ``torch.optim.SGD`` vs our pure schedule, over 1000+ steps.

Tolerance: our schedules are closed forms, torch's mostly recursions (``lr ← lr · factor``); the
two agree to rounding. Measured (benchmarks/results/schedules_parity.json) the largest relative
difference is ~7e-13, for ``CosineAnnealingLR`` whose recursion divides two tiny numbers near the
troughs of the cosine; everything else is below 2e-14. We assert ``rtol = 1e-12`` (``1e-10`` for
``CosineAnnealingLR``).
"""

from __future__ import annotations

import pytest
import torch

from functional_optim import schedules as sch
from tests.schedules._cases import cases, max_rel_diff, our_values, torch_values

CASES = cases()
RTOL = {"CosineAnnealingLR": 1e-10}


@pytest.mark.parametrize("case", CASES, ids=[f"{c.scheduler}[{c.label}]" for c in CASES])
def test_schedule_matches_torch_scheduler_driving_sgd(case):
    assert case.steps >= 1000
    lrs, moms = torch_values(case, step_optimizer=False)
    ours = our_values(case.ours, case.steps)
    assert max_rel_diff(ours, lrs) <= RTOL.get(case.scheduler, 1e-12)
    if case.ours_momentum is not None:
        assert max_rel_diff(our_values(case.ours_momentum, case.steps), moms) <= 1e-12


@pytest.mark.parametrize("case", CASES[::3], ids=[f"{c.scheduler}[{c.label}]" for c in CASES[::3]])
def test_int_count_gives_python_float_equal_to_tensor_count(case):
    counts = [0, 1, 2, 5, 99, 100, 101, 333, case.steps - 1]
    vec = our_values(case.ours, case.steps)
    for c in counts:
        v = case.ours(c)
        assert type(v) is float
        assert v == pytest.approx(float(vec[c]), rel=1e-13, abs=0.0)


def test_scalar_and_vector_counts_agree_for_sgdr_with_growing_periods():
    # the tensor path finds the period with a logarithm and corrects it; the int path walks periods
    sched = sch.cosine_annealing_warm_restarts(1.0, T_0=3, T_mult=3, eta_min=0.1)
    vec = sched(torch.arange(5000))
    ints = torch.tensor([sched(i) for i in range(5000)], dtype=torch.float64)
    torch.testing.assert_close(vec, ints, rtol=1e-14, atol=0.0)


def test_one_cycle_holds_its_last_value_past_total_steps():
    sched = sch.one_cycle_lr(0.1, total_steps=100)
    assert sched(150) == sched(100)
    assert float(sched(torch.tensor(150))) == pytest.approx(sched(100), rel=1e-15)


def test_cosine_annealing_oscillates_with_period_two_t_max():
    sched = sch.cosine_annealing_lr(1.0, T_max=10, eta_min=0.2)
    assert sched(10) == pytest.approx(0.2)
    assert sched(20) == pytest.approx(1.0)
    assert sched(15) == pytest.approx(sched(5))


def test_tensor_arguments_give_tensors_and_python_arguments_give_floats():
    lr = torch.tensor(0.1)
    assert isinstance(sch.exponential_lr(lr, 0.9)(3), torch.Tensor)
    assert isinstance(sch.exponential_lr(0.1, 0.9)(torch.tensor(3)), torch.Tensor)
    assert isinstance(sch.exponential_lr(0.1, 0.9)(3), float)
    assert float(sch.exponential_lr(lr, 0.9)(3)) == pytest.approx(0.1 * 0.9**3, rel=1e-7)
