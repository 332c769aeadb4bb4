"""optax-style schedules against direct transcriptions of optax's definitions."""

from __future__ import annotations

import math

import pytest
import torch

from functional_optim import schedules as sch

COUNTS = list(range(0, 130))


def _check(schedule, reference, counts=COUNTS):
    vec = schedule(torch.tensor(counts))
    for c in counts:
        v = schedule(c)
        assert isinstance(v, float)
        assert v == pytest.approx(reference(c), rel=1e-12, abs=1e-15), c
        assert float(vec[counts.index(c)]) == pytest.approx(v, rel=1e-12, abs=1e-15)


def test_constant():
    _check(sch.constant(0.3), lambda c: 0.3)


@pytest.mark.parametrize(("steps", "begin"), [(50, 0), (30, 20), (0, 5), (1, 0)])
def test_linear_matches_optax_linear_schedule(steps, begin):
    def ref(c):
        if steps == 0:
            return 1.0
        t = min(max(c - begin, 0), steps)
        return (1.0 - 0.1) * (1 - t / steps) + 0.1

    _check(sch.linear(1.0, 0.1, steps, begin), ref)


@pytest.mark.parametrize(("alpha", "exponent"), [(0.0, 1.0), (0.1, 2.0), (0.5, 0.5)])
def test_cosine_decay_matches_optax_cosine_decay_schedule(alpha, exponent):
    def ref(c):
        cosine = 0.5 * (1 + math.cos(math.pi * min(c, 100) / 100))
        return 2.0 * ((1 - alpha) * cosine**exponent + alpha)

    _check(sch.cosine_decay(2.0, 100, alpha, exponent), ref)


def test_piecewise_constant_with_boundaries_and_scales():
    def ref(c):
        v = 1.0
        for b, s in [(10, 0.5), (40, 0.1), (40, 2.0), (90, 0.0)]:
            v *= s if c >= b else 1.0
        return v

    _check(sch.piecewise_constant(1.0, {40: 0.2, 10: 0.5, 90: 0.0}), ref)


def test_piecewise_constant_with_boundaries_and_values():
    def ref(c):
        return 3.0 if c < 10 else (2.0 if c < 40 else 1.0)

    _check(sch.piecewise_constant(boundaries=[10, 40], values=[3.0, 2.0, 1.0]), ref)


def test_join_schedules_restarts_each_schedule_at_its_boundary():
    a, b, c_ = sch.constant(1.0), sch.linear(2.0, 0.0, 20), sch.exponential_lr(0.5, 0.9)

    def ref(c):
        if c < 30:
            return 1.0
        if c < 70:
            return 2.0 - 2.0 * min(c - 30, 20) / 20
        return 0.5 * 0.9 ** (c - 70)

    _check(sch.join_schedules([a, b, c_], [30, 70]), ref)


@pytest.mark.parametrize("init", [0.0, 0.01])
def test_linear_warmup_in_front_of_any_schedule(init):
    after = sch.cosine_annealing_lr(0.1, T_max=50)

    def ref(c):
        if c < 10:
            return init + (0.1 - init) * c / 10
        return 0.05 * (1 + math.cos(math.pi * (c - 10) / 50))

    _check(sch.linear_warmup(after, warmup_steps=10, init_value=init), ref)
    assert sch.warmup is sch.linear_warmup
    assert sch.linear_warmup(after, 0) is after


@pytest.mark.parametrize(("warmup", "exponent"), [(10, 1.0), (0, 1.0), (25, 2.0)])
def test_warmup_cosine_decay_matches_optax(warmup, exponent):
    def ref(c):
        if c < warmup:
            return 0.0 + (1.0 - 0.0) * c / warmup
        t = min(c - warmup, 100 - warmup)
        cosine = 0.5 * (1 + math.cos(math.pi * t / (100 - warmup)))
        return 1.0 * ((1 - 0.05) * cosine**exponent + 0.05)

    _check(sch.warmup_cosine_decay(0.0, 1.0, warmup, 100, end_value=0.05, exponent=exponent), ref)
