"""optax-style schedules: ``constant``, ``linear``, ``cosine_decay``, ``piecewise_constant``,
``join_schedules``, ``linear_warmup`` (``warmup``) and ``warmup_cosine_decay``.

Same conventions as `functional_optim.schedules.lr_scheduler`: ``count`` is the number of
completed steps; Python numbers in give a Python float, a tensor count or tensor arguments give a
float64 tensor through which hyper-gradients flow.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from typing import Any

from torch import Tensor

from functional_optim.core import Schedule
from functional_optim.schedules import _common as _c
from functional_optim.schedules._base import ScheduleObject
from functional_optim.schedules.lr_scheduler import _join

__all__ = [
    "constant",
    "cosine_decay",
    "join_schedules",
    "linear",
    "linear_warmup",
    "piecewise_constant",
    "warmup",
    "warmup_cosine_decay",
]

Number = float | Tensor


def _nonnegative_int(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{name} must be a non-negative integer, got {value!r}")


def constant(value: Number) -> Schedule:
    """The constant schedule ``count -> value``."""
    return ConstantSchedule(value)


class ConstantSchedule(ScheduleObject):
    """[`constant`][]."""

    def __init__(self, value: Number) -> None:
        self.value = value

    def __call__(self, count: Any) -> Number:
        if isinstance(count, Tensor) or isinstance(self.value, Tensor):
            return _c.as_count(count, True) * 0 + self.value
        return _c.out(self.value)


def linear(
    init_value: Number, end_value: Number, transition_steps: int, transition_begin: int = 0
) -> Schedule:
    r"""Linear interpolation from ``init_value`` to ``end_value`` (``optax.linear_schedule``):

    $$
    \tau = \mathrm{clip}(t - t_0, 0, T) / T, \qquad v_t = v_0 + (v_1 - v_0)\,\tau
    $$

    Args:
      init_value: value before and at ``transition_begin``.
      end_value: value from ``transition_begin + transition_steps`` on.
      transition_steps: length $T$ of the ramp (``0``: the constant ``init_value``, as optax).
      transition_begin: step $t_0$ at which the ramp starts.
    """
    _nonnegative_int("transition_steps", transition_steps)
    _nonnegative_int("transition_begin", transition_begin)

    return LinearSchedule(init_value, end_value, transition_steps, transition_begin)


class LinearSchedule(ScheduleObject):
    """[`linear`][]."""

    def __init__(
        self, init_value: Number, end_value: Number, transition_steps: int, transition_begin: int
    ) -> None:
        self.init_value, self.end_value = init_value, end_value
        self.transition_steps, self.transition_begin = transition_steps, transition_begin

    def __call__(self, count: Any) -> Number:
        init_value, end_value, steps = self.init_value, self.end_value, self.transition_steps
        c = _c.as_count(count, _c.any_tensor(init_value, end_value))
        if steps == 0:
            return _c.out(init_value + 0 * c)
        frac = _c.minimum(_c.maximum(c - self.transition_begin, 0), steps) / steps
        return _c.out(init_value + (end_value - init_value) * frac)


def cosine_decay(
    init_value: Number, decay_steps: int, alpha: Number = 0.0, exponent: Number = 1.0
) -> Schedule:
    r"""Cosine decay from ``init_value`` to ``alpha * init_value`` (``optax.cosine_decay_schedule``):

    $$
    v_t = v_0\,\big((1-\alpha)\,\big(\tfrac12(1 + \cos(\pi \min(t, T)/T))\big)^p + \alpha\big)
    $$

    Args:
      init_value: the initial value $v_0$.
      decay_steps: number of decay steps $T$ (positive int).
      alpha: the final value as a fraction of ``init_value``.
      exponent: the power $p$ of the cosine.

    References:
      Loshchilov & Hutter, "SGDR: Stochastic Gradient Descent with Warm Restarts", ICLR 2017.
    """
    if isinstance(decay_steps, bool) or not isinstance(decay_steps, int) or decay_steps <= 0:
        raise ValueError(f"decay_steps must be a positive integer, got {decay_steps!r}")

    return CosineDecaySchedule(init_value, decay_steps, alpha, exponent)


class CosineDecaySchedule(ScheduleObject):
    """[`cosine_decay`][]."""

    def __init__(self, init_value: Number, decay_steps: int, alpha: Number, exponent: Number) -> None:
        self.init_value, self.decay_steps = init_value, decay_steps
        self.alpha, self.exponent = alpha, exponent

    def __call__(self, count: Any) -> Number:
        init_value, steps, alpha, exponent = self.init_value, self.decay_steps, self.alpha, self.exponent
        c = _c.as_count(count, _c.any_tensor(init_value, alpha, exponent))
        cosine = 0.5 * (1 + _c.cos(math.pi * _c.minimum(c, steps) / steps))
        return _c.out(init_value * ((1 - alpha) * cosine**exponent + alpha))


def piecewise_constant(
    init_value: Number | None = None,
    boundaries_and_scales: Mapping[int, Number] | None = None,
    *,
    boundaries: Sequence[int] | None = None,
    values: Sequence[Number] | None = None,
) -> Schedule:
    r"""A piecewise-constant schedule, given either way:

    * ``piecewise_constant(init_value, {b_1: s_1, b_2: s_2})`` (``optax.piecewise_constant_schedule``):
      $v_t = v_0 \prod_{b_i \le t} s_i$;
    * ``piecewise_constant(boundaries=[b_1, b_2], values=[v_0, v_1, v_2])`` (TF's
      ``PiecewiseConstantDecay``): $v_t = v_i$ for $b_i \le t < b_{i+1}$.

    Args:
      init_value: the value before the first boundary (first form).
      boundaries_and_scales: ``{boundary: scale}``; scales are non-negative (first form).
      boundaries: increasing boundaries (second form).
      values: one more value than boundaries (second form).
    """
    if values is not None or boundaries is not None:
        if init_value is not None or boundaries_and_scales is not None:
            raise ValueError(
                "piecewise_constant: give either (init_value, boundaries_and_scales) or "
                "(boundaries, values), not both"
            )
        if values is None or boundaries is None or len(values) != len(boundaries) + 1:
            raise ValueError(
                "piecewise_constant: values must have one more entry than boundaries, got "
                f"{None if values is None else len(values)} values and "
                f"{None if boundaries is None else len(boundaries)} boundaries"
            )
        bs = [int(b) for b in boundaries]
        if any(b1 > b2 for b1, b2 in itertools.pairwise(bs)):
            raise ValueError(f"piecewise_constant: boundaries must be increasing, got {bs}")
        return _join([constant(v) for v in values], bs)
    if init_value is None:
        raise ValueError("piecewise_constant: init_value is required")
    items = sorted((int(b), s) for b, s in (boundaries_and_scales or {}).items())
    for b, s in items:
        if not isinstance(s, Tensor) and s < 0:
            raise ValueError(f"piecewise_constant: scales must be non-negative, got {s} at boundary {b}")

    return PiecewiseConstantSchedule(init_value, items)


class PiecewiseConstantSchedule(ScheduleObject):
    """[`piecewise_constant`][] given ``(init_value, boundaries_and_scales)``."""

    def __init__(self, init_value: Number, items: list[tuple[int, Number]]) -> None:
        self.init_value, self.items = init_value, items

    def __call__(self, count: Any) -> Number:
        c = _c.as_count(count, _c.any_tensor(self.init_value, *(s for _, s in self.items)))
        v: Any = self.init_value
        for b, s in self.items:
            v = v * _c.where(c >= b, s, 1.0)
        return _c.out(v + 0 * c) if isinstance(c, Tensor) else _c.out(v)


def join_schedules(schedules: Sequence[Any], boundaries: Sequence[int]) -> Schedule:
    r"""Run ``schedules[i]`` from ``boundaries[i-1]`` on, restarted at 0 (``optax.join_schedules``):
    $v_t = s_i(t - b_{i-1})$ for $b_{i-1} \le t < b_i$.

    Args:
      schedules: ``len(boundaries) + 1`` schedules.
      boundaries: increasing counts at which the next schedule takes over.
    """
    if len(schedules) != len(boundaries) + 1:
        raise ValueError(
            f"join_schedules: expected len(boundaries) + 1 = {len(boundaries) + 1} schedules, "
            f"got {len(schedules)}"
        )
    return _join(list(schedules), [int(b) for b in boundaries])


def linear_warmup(
    schedule: Any, warmup_steps: int, init_value: Number = 0.0, peak_value: Number | None = None
) -> Schedule:
    r"""Put a linear warmup in front of any schedule: from ``init_value`` to the schedule's first
    value over ``warmup_steps`` steps, then the schedule (started at 0):

    $$
    v_t = v_{init} + (s(0) - v_{init})\,t / W \ (t < W), \qquad v_t = s(t - W) \ (t \ge W)
    $$

    Args:
      schedule: the schedule after the warmup (or a constant value).
      warmup_steps: number of warmup steps $W$ (int >= 0).
      init_value: the value at step 0.
      peak_value: the value reached at the end of the warmup (default ``schedule(0)``).

    Example:
        >>> cosine = fo.schedules.cosine_annealing_lr(1e-3, T_max=1000)
        >>> lr = fo.schedules.linear_warmup(cosine, warmup_steps=100)
        >>> round(lr(50), 8), round(lr(100), 8)  # half-way up the ramp, then the cosine's start
        (0.0005, 0.001)
    """
    _nonnegative_int("warmup_steps", warmup_steps)
    after = schedule if callable(schedule) else constant(schedule)
    peak = after(0) if peak_value is None else peak_value
    if warmup_steps == 0:
        return after
    return _join([linear(init_value, peak, warmup_steps), after], [warmup_steps])


warmup = linear_warmup


def warmup_cosine_decay(
    init_value: Number,
    peak_value: Number,
    warmup_steps: int,
    decay_steps: int,
    end_value: Number = 0.0,
    exponent: Number = 1.0,
) -> Schedule:
    r"""Linear warmup then cosine decay (``optax.warmup_cosine_decay_schedule``):

    $$
    v_t = v_0 + (v_p - v_0)\,t/W \ (t < W), \qquad
    v_t = v_e + (v_p - v_e)\big(\tfrac12(1 + \cos(\pi \min(t - W, D - W)/(D - W)))\big)^p
    $$

    Args:
      init_value: value at step 0.
      peak_value: value at the end of the warmup (tensor: hyper-gradients flow to it).
      warmup_steps: warmup length $W$.
      decay_steps: total length $D$ **including** the warmup (as optax).
      end_value: final value.
      exponent: power $p$ of the cosine.
    """
    _nonnegative_int("warmup_steps", warmup_steps)
    if isinstance(decay_steps, bool) or not isinstance(decay_steps, int) or decay_steps <= warmup_steps:
        raise ValueError(
            f"warmup_cosine_decay: decay_steps ({decay_steps!r}) must be an integer greater than "
            f"warmup_steps ({warmup_steps})"
        )
    decay = CosineDecayToSchedule(peak_value, end_value, decay_steps - warmup_steps, exponent)
    if warmup_steps == 0:
        return decay
    return _join([linear(init_value, peak_value, warmup_steps), decay], [warmup_steps])


class CosineDecayToSchedule(ScheduleObject):
    """The decay of [`warmup_cosine_decay`][]: cosine from ``peak_value`` to ``end_value``."""

    def __init__(self, peak_value: Number, end_value: Number, steps: int, exponent: Number) -> None:
        self.peak_value, self.end_value, self.steps, self.exponent = peak_value, end_value, steps, exponent

    def __call__(self, count: Any) -> Number:
        peak, end, steps, exponent = self.peak_value, self.end_value, self.steps, self.exponent
        c = _c.as_count(count, _c.any_tensor(peak, end, exponent))
        cosine = 0.5 * (1 + _c.cos(math.pi * _c.minimum(c, steps) / steps))
        return _c.out(end + (peak - end) * cosine**exponent)
