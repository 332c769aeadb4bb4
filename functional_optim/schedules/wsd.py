"""``warmup_stable_decay``: linear warmup, a constant phase, then a short decay (WSD)."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from functional_optim.core import Schedule
from functional_optim.schedules import _common as _c
from functional_optim.schedules._base import ScheduleObject

__all__ = ["warmup_stable_decay"]

Number = float | Tensor
DECAY_TYPES = ("linear", "cosine", "1-sqrt")


def _count_arg(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"warmup_stable_decay: {name} must be a non-negative integer, got {value!r}")


def _sqrt(x: Number) -> Number:
    return torch.sqrt(x) if isinstance(x, Tensor) else math.sqrt(x)


def warmup_stable_decay(
    peak_value: Number,
    warmup_steps: int,
    stable_steps: int,
    decay_steps: int,
    init_value: Number = 0.0,
    end_value: Number = 0.0,
    decay_type: str = "linear",
) -> Schedule:
    r"""Warmup–stable–decay (Zhai et al., 2022; Hu et al., 2024; Hägele et al., 2024): a linear
    warmup over $W$ steps, the constant peak for $S$ steps, then a decay over
    $D$ steps to ``end_value`` (held afterwards):

    $$
    v_t = v_0 + (v_p - v_0)\,\tfrac tW\ (t < W),\quad v_p\ (W \le t < W + S),\quad
    v_e + (v_p - v_e)\, f\Big(\tfrac{\min(t - W - S,\ D)}{D}\Big)\ (t \ge W + S)
    $$

    with $f(\tau) = 1 - \tau$ (``"linear"``), $\tfrac12(1 + \cos\pi\tau)$
    (``"cosine"``) or $1 - \sqrt\tau$ (``"1-sqrt"``, the best cooldown of Hägele et al.).
    ``count`` is the number of completed steps; Python numbers give a Python float, a tensor
    count or tensor values a float64 tensor (hyper-gradients flow to tensor values).

    Args:
      peak_value: $v_p$.
      warmup_steps: $W$ (int >= 0).
      stable_steps: $S$ (int >= 0).
      decay_steps: $D$ (int >= 1).
      init_value: $v_0$, the value at step 0.
      end_value: $v_e$, the value after the decay.
      decay_type: ``"linear"``, ``"cosine"`` or ``"1-sqrt"``.

    Examples:
        >>> lr = fo.schedules.warmup_stable_decay(1.0, 2, 3, 4, decay_type="1-sqrt")
        >>> [round(lr(t), 4) for t in range(10)]
        [0.0, 0.5, 1.0, 1.0, 1.0, 1.0, 0.5, 0.2929, 0.134, 0.0]

    References:
      Hägele, Bakouch, Kosson, Ben Allal, Von Werra & Jaggi, "Scaling Laws and Compute-Optimal
      Training Beyond Fixed Training Durations", NeurIPS 2024; Hu et al., "MiniCPM", 2024.
    """
    _count_arg("warmup_steps", warmup_steps)
    _count_arg("stable_steps", stable_steps)
    if isinstance(decay_steps, bool) or not isinstance(decay_steps, int) or decay_steps < 1:
        raise ValueError(f"warmup_stable_decay: decay_steps must be a positive integer, got {decay_steps!r}")
    if decay_type not in DECAY_TYPES:
        raise ValueError(f"warmup_stable_decay: decay_type must be one of {DECAY_TYPES}, got {decay_type!r}")
    return WarmupStableDecaySchedule(
        init_value, peak_value, warmup_steps, stable_steps, decay_steps, end_value, decay_type
    )


class WarmupStableDecaySchedule(ScheduleObject):
    """[`warmup_stable_decay`][] as a picklable object."""

    def __init__(
        self,
        init_value: Number,
        peak_value: Number,
        warmup_steps: int,
        stable_steps: int,
        decay_steps: int,
        end_value: Number,
        decay_type: str,
    ) -> None:
        self.init_value, self.peak_value, self.end_value = init_value, peak_value, end_value
        self.warmup_steps, self.stable_steps, self.decay_steps = warmup_steps, stable_steps, decay_steps
        self.decay_type = decay_type

    def _shape(self, tau: Number) -> Number:
        if self.decay_type == "linear":
            return 1 - tau
        if self.decay_type == "cosine":
            return 0.5 * (1 + _c.cos(math.pi * tau))
        return 1 - _sqrt(tau)

    def __call__(self, count: Any) -> Number:
        init_value, peak_value, end_value = self.init_value, self.peak_value, self.end_value
        warmup_steps, decay_steps = self.warmup_steps, self.decay_steps
        start = warmup_steps + self.stable_steps
        c = _c.as_count(count, _c.any_tensor(peak_value, init_value, end_value))
        warm = init_value + (peak_value - init_value) * (c / warmup_steps if warmup_steps else 1.0)
        tau = _c.minimum(_c.maximum(c - start, 0), decay_steps) / decay_steps
        decayed = end_value + (peak_value - end_value) * self._shape(tau)
        return _c.out(_c.where(c < warmup_steps, warm, _c.where(c < start, peak_value, decayed)))
