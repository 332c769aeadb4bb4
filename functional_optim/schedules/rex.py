"""``rex``: the REX decay ("reflected exponential"), a profile between linear and step decay."""

from __future__ import annotations

from typing import Any

from torch import Tensor

from functional_optim.core import Schedule
from functional_optim.schedules import _common as _c
from functional_optim.schedules._base import ScheduleObject

__all__ = ["rex"]

Number = float | Tensor


def rex(init_value: Number, total_steps: int, end_value: Number = 0.0) -> Schedule:
    r"""REX (Chen, Wolfe & Kyrillidis, 2022): with $z = \min(t, T)/T$,

    $$
    v_t = v_e + (v_0 - v_e)\,\frac{1 - z}{\tfrac12 + \tfrac12 (1 - z)}
    $$

    It stays near $v_0$ longer than linear decay and reaches $v_e$ at $T$
    (held afterwards). ``count`` is the number of completed steps; tensors in give a float64
    tensor out (hyper-gradients flow to tensor values).

    Args:
      init_value: $v_0$.
      total_steps: $T$ (int >= 1).
      end_value: $v_e$.

    Examples:
        >>> lr = fo.schedules.rex(1.0, total_steps=4)
        >>> [round(lr(t), 4) for t in range(6)]
        [1.0, 0.8571, 0.6667, 0.4, 0.0, 0.0]

    References:
      Chen, Wolfe & Kyrillidis, "REX: Revisiting Budgeted Training with an Improved Schedule",
      MLSys 2022.
    """
    if isinstance(total_steps, bool) or not isinstance(total_steps, int) or total_steps < 1:
        raise ValueError(f"rex: total_steps must be a positive integer, got {total_steps!r}")

    return RexSchedule(init_value, total_steps, end_value)


class RexSchedule(ScheduleObject):
    """[`rex`][] as a picklable object."""

    def __init__(self, init_value: Number, total_steps: int, end_value: Number) -> None:
        self.init_value, self.total_steps, self.end_value = init_value, total_steps, end_value

    def __call__(self, count: Any) -> Number:
        init_value, end_value, total_steps = self.init_value, self.end_value, self.total_steps
        c = _c.as_count(count, _c.any_tensor(init_value, end_value))
        z = _c.minimum(_c.maximum(c, 0), total_steps) / total_steps
        return _c.out(end_value + (init_value - end_value) * (1 - z) / (0.5 + 0.5 * (1 - z)))
