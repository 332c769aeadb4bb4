"""Every ``torch.optim.lr_scheduler`` (and ``swa_utils.SWALR``) as a pure ``count -> value`` function.

``count`` is the number of completed optimizer steps (a Python ``int`` or a tensor of any shape).
``schedule(count)`` equals ``optimizer.param_groups[0]["lr"]`` after ``count`` calls of the torch
scheduler's ``step()``, i.e. the learning rate torch uses for step ``count + 1``. The functions
use closed forms; where torch updates the value recursively (``lr ← lr · factor``) the two agree to
floating-point rounding (see ``benchmarks/results/schedules_parity.json`` for the measured
differences over 1000+ steps).

With Python-number arguments and an ``int`` count the result is a Python float computed in double,
as torch does. With a tensor count or tensor arguments the result is a float64 tensor (same shape
as the count) and hyper-gradients flow to the tensor arguments.

Example:
    >>> lr = fo.schedules.cosine_annealing_lr(0.1, T_max=100)
    >>> opt = fo.adam(lr=lr)  # a schedule for any hyperparameter injects it
    >>> lr(0), lr(100)
    (0.1, 0.0)
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Callable, Sequence
from typing import Any, Literal

import torch
from torch import Tensor

from functional_optim.core import Schedule
from functional_optim.schedules import _common as _c
from functional_optim.schedules._base import ScheduleObject

__all__ = [
    "chained_scheduler",
    "constant_lr",
    "cosine_annealing_lr",
    "cosine_annealing_warm_restarts",
    "cyclic_lr",
    "cyclic_momentum",
    "exponential_lr",
    "lambda_lr",
    "linear_lr",
    "multi_step_lr",
    "multiplicative_lr",
    "one_cycle_lr",
    "one_cycle_momentum",
    "polynomial_lr",
    "sequential_lr",
    "step_lr",
    "swa_lr",
]

Number = float | Tensor


def _positive(name: str, value: Any) -> None:
    """Torch would divide by zero (or never step) on these; we say so at construction."""
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise ValueError(f"Expected positive {name}, but got {value}")


def lambda_lr(base: Number, lr_lambda: Callable[[Any], Any]) -> Schedule:
    r"""``torch.optim.lr_scheduler.LambdaLR``: $\eta_t = \eta_0 \cdot \lambda(t)$.

    Args:
      base: the initial learning rate $\eta_0$ (float or 0-dim tensor).
      lr_lambda: a function of the count (it receives what the schedule receives: an ``int`` or a
        tensor).

    Example:
        >>> lr = fo.schedules.lambda_lr(0.1, lambda t: 0.95**t)
        >>> round(lr(2), 6)  # 0.1 · 0.95²
        0.09025
    """
    if not callable(lr_lambda):
        raise TypeError(f"lr_lambda should be a function, but got {type(lr_lambda).__name__}")

    return LambdaLRSchedule(base, lr_lambda)


class LambdaLRSchedule(ScheduleObject):
    """[`lambda_lr`][] (picklable when ``lr_lambda`` is a module-level function)."""

    def __init__(self, base: Number, lr_lambda: Callable[[Any], Any]) -> None:
        self.base, self.lr_lambda = base, lr_lambda

    def __call__(self, count: Any) -> Number:
        return _c.out(self.base * self.lr_lambda(_c.as_count(count, isinstance(count, Tensor))))


def multiplicative_lr(base: Number, lr_lambda: Callable[[int], Any]) -> Schedule:
    r"""``torch.optim.lr_scheduler.MultiplicativeLR``: $\eta_t = \eta_{t-1}\,\lambda(t)$, i.e.
    $\eta_t = \eta_0 \prod_{k=1}^{t} \lambda(k)$.

    ``lr_lambda`` is called with Python ints ``1..t`` (as torch does); a tensor count is read on the
    host (the factors are the user's Python function), the cumulative product is a tensor.

    Args:
      base: the initial learning rate $\eta_0$.
      lr_lambda: the factor applied at each step ``k >= 1``.
    """
    if not callable(lr_lambda):
        raise TypeError(f"lr_lambda should be a function, but got {type(lr_lambda).__name__}")

    return MultiplicativeLRSchedule(base, lr_lambda)


class MultiplicativeLRSchedule(ScheduleObject):
    """[`multiplicative_lr`][] (picklable when ``lr_lambda`` is a module-level function)."""

    def __init__(self, base: Number, lr_lambda: Callable[[int], Any]) -> None:
        self.base, self.lr_lambda = base, lr_lambda

    def __call__(self, count: Any) -> Number:
        base, lr_lambda = self.base, self.lr_lambda
        if isinstance(count, Tensor) or isinstance(base, Tensor):
            c = torch.as_tensor(count).detach().to(torch.int64)
            n = int(c.max().item()) if c.numel() else 0
            factors = [torch.as_tensor(lr_lambda(k), dtype=torch.float64) for k in range(1, n + 1)]
            cum = torch.cumprod(torch.stack([torch.ones((), dtype=torch.float64), *factors]), 0)
            return base * cum[c.clamp_min(0)]
        value = base
        for k in range(1, count + 1):
            value = value * lr_lambda(k)
        return _c.out(value)


def step_lr(base: Number, step_size: int, gamma: Number = 0.1) -> Schedule:
    r"""``torch.optim.lr_scheduler.StepLR``: $\eta_t = \eta_0\,\gamma^{\lfloor t / s \rfloor}$.

    Args:
      base: the initial learning rate.
      step_size: period $s$ of the decay (positive int).
      gamma: multiplicative factor of the decay.
    """
    _positive("step_size", step_size)

    return StepLRSchedule(base, step_size, gamma)


class StepLRSchedule(ScheduleObject):
    """[`step_lr`][]."""

    def __init__(self, base: Number, step_size: int, gamma: Number) -> None:
        self.base, self.step_size, self.gamma = base, step_size, gamma

    def __call__(self, count: Any) -> Number:
        c = _c.as_count(count, _c.any_tensor(self.base, self.gamma))
        return _c.out(self.base * self.gamma ** _c.floordiv(c, self.step_size))


def multi_step_lr(base: Number, milestones: Sequence[int], gamma: Number = 0.1) -> Schedule:
    r"""``torch.optim.lr_scheduler.MultiStepLR``: $\eta_t = \eta_0\,\gamma^{\#\{m_i \le t\}}$.

    A milestone listed twice decays twice, as in torch (a ``Counter`` of milestones).

    Args:
      base: the initial learning rate.
      milestones: steps at which the rate is multiplied by ``gamma``.
      gamma: multiplicative factor of the decay.
    """
    ms = sorted(int(m) for m in milestones)

    return MultiStepLRSchedule(base, ms, gamma)


class MultiStepLRSchedule(ScheduleObject):
    """[`multi_step_lr`][] (``milestones`` sorted)."""

    def __init__(self, base: Number, milestones: list[int], gamma: Number) -> None:
        self.base, self.milestones, self.gamma = base, milestones, gamma

    def __call__(self, count: Any) -> Number:
        c = _c.as_count(count, _c.any_tensor(self.base, self.gamma))
        if isinstance(c, Tensor):
            return self.base * self.gamma ** _c.count_at_least(c, self.milestones)
        return _c.out(self.base * self.gamma ** bisect_right(self.milestones, c))


def constant_lr(base: Number, factor: float = 1.0 / 3, total_iters: int = 5) -> Schedule:
    r"""``torch.optim.lr_scheduler.ConstantLR``: $\eta_t = \eta_0\,f$ for $t < T$, then
    $\eta_0$.

    Args:
      base: the initial learning rate.
      factor: the constant factor $f \in [0, 1]$ used until ``total_iters``.
      total_iters: number of steps $T$ at the reduced rate (``<= 0``: torch's recursion
        never restores the rate, so neither does this function).
    """
    if factor > 1.0 or factor < 0:
        raise ValueError("Constant multiplicative factor expected to be between 0 and 1.")

    return ConstantLRSchedule(base, factor, total_iters)


class ConstantLRSchedule(ScheduleObject):
    """[`constant_lr`][]."""

    def __init__(self, base: Number, factor: float, total_iters: int) -> None:
        self.base, self.factor, self.total_iters = base, factor, total_iters

    def __call__(self, count: Any) -> Number:
        base, factor = self.base, self.factor
        c = _c.as_count(count, _c.any_tensor(base, factor))
        if self.total_iters <= 0:  # torch's recursion never undoes the factor then
            return _c.out(base * factor + 0 * c)
        return _c.out(base * _c.where(c >= self.total_iters, 1.0, factor))


def linear_lr(
    base: Number, start_factor: float = 1.0 / 3, end_factor: float = 1.0, total_iters: int = 5
) -> Schedule:
    r"""``torch.optim.lr_scheduler.LinearLR``:
    $\eta_t = \eta_0\,\big(f_s + (f_e - f_s)\,\min(t, T)/T\big)$.

    Args:
      base: the initial learning rate.
      start_factor: $f_s \in (0, 1]$, the factor at step 0.
      end_factor: $f_e \in [0, 1]$, the factor from step ``total_iters`` on.
      total_iters: number of steps $T$ of the linear ramp (with ``T = 0`` torch keeps the
        start factor forever, and so does this function).
    """
    if start_factor > 1.0 or start_factor <= 0:
        raise ValueError(
            "Starting multiplicative factor expected to be greater than 0 and less or equal to 1."
        )
    if end_factor > 1.0 or end_factor < 0:
        raise ValueError("Ending multiplicative factor expected to be between 0 and 1.")

    return LinearLRSchedule(base, start_factor, end_factor, total_iters)


class LinearLRSchedule(ScheduleObject):
    """[`linear_lr`][]."""

    def __init__(self, base: Number, start_factor: float, end_factor: float, total_iters: int) -> None:
        self.base, self.start_factor, self.end_factor = base, start_factor, end_factor
        self.total_iters = total_iters

    def __call__(self, count: Any) -> Number:
        base, start_factor, end_factor, total_iters = (
            self.base,
            self.start_factor,
            self.end_factor,
            self.total_iters,
        )
        c = _c.as_count(count, _c.any_tensor(base, start_factor, end_factor))
        if total_iters == 0:
            return _c.out(base * start_factor + 0 * c)
        frac = _c.minimum(c, total_iters) / total_iters
        return _c.out(base * (start_factor + (end_factor - start_factor) * frac))


def exponential_lr(base: Number, gamma: Number) -> Schedule:
    r"""``torch.optim.lr_scheduler.ExponentialLR``: $\eta_t = \eta_0\,\gamma^t$.

    Args:
      base: the initial learning rate.
      gamma: multiplicative factor per step.
    """

    return ExponentialLRSchedule(base, gamma)


class ExponentialLRSchedule(ScheduleObject):
    """[`exponential_lr`][]."""

    def __init__(self, base: Number, gamma: Number) -> None:
        self.base, self.gamma = base, gamma

    def __call__(self, count: Any) -> Number:
        c = _c.as_count(count, _c.any_tensor(self.base, self.gamma))
        return _c.out(self.base * self.gamma**c)


def polynomial_lr(base: Number, total_iters: int = 5, power: Number = 1.0) -> Schedule:
    r"""``torch.optim.lr_scheduler.PolynomialLR``: $\eta_t = \eta_0\,(1 - \min(t, T)/T)^p$.

    Args:
      base: the initial learning rate.
      total_iters: number of steps $T$ until the rate reaches 0 (positive int).
      power: the power $p$ of the polynomial.
    """
    _positive("total_iters", total_iters)

    return PolynomialLRSchedule(base, total_iters, power)


class PolynomialLRSchedule(ScheduleObject):
    """[`polynomial_lr`][]."""

    def __init__(self, base: Number, total_iters: int, power: Number) -> None:
        self.base, self.total_iters, self.power = base, total_iters, power

    def __call__(self, count: Any) -> Number:
        c = _c.as_count(count, _c.any_tensor(self.base, self.power))
        return _c.out(self.base * (1.0 - _c.minimum(c, self.total_iters) / self.total_iters) ** self.power)


def cosine_annealing_lr(base: Number, T_max: int, eta_min: Number = 0.0) -> Schedule:
    r"""``torch.optim.lr_scheduler.CosineAnnealingLR``:
    $\eta_t = \eta_{min} + \tfrac12(\eta_0 - \eta_{min})(1 + \cos(\pi t / T_{max}))$.

    Torch computes the rate recursively,
    $\eta_t = \eta_{min} + (\eta_{t-1} - \eta_{min})\,\frac{1 + \cos(\pi t/T)}{1 + \cos(\pi(t-1)/T)}$
    (with an additive branch at $t - 1 - T \equiv 0 \pmod{2T}$); that recursion is exactly
    the closed form above (also past $T_{max}$, where the rate oscillates back up with period
    $2T_{max}$), up to rounding: over 3000 steps (``T_max`` from 7 to 1000, ``eta_min`` 0 or
    not) the largest relative difference measured is 7e-13, where the recursion divides two tiny
    numbers near a trough (``tests/schedules`` asserts ``rtol=1e-10`` for it, ``1e-12`` elsewhere).

    Args:
      base: the initial (maximum) learning rate $\eta_0$.
      T_max: half period $T_{max}$ (positive int).
      eta_min: the minimum learning rate.
    """
    if isinstance(T_max, bool) or not isinstance(T_max, int | float) or T_max <= 0:
        raise ValueError(f"Expected positive T_max, but got {T_max}")

    return CosineAnnealingLRSchedule(base, T_max, eta_min)


class CosineAnnealingLRSchedule(ScheduleObject):
    """[`cosine_annealing_lr`][]."""

    def __init__(self, base: Number, T_max: int, eta_min: Number) -> None:
        self.base, self.T_max, self.eta_min = base, T_max, eta_min

    def __call__(self, count: Any) -> Number:
        base, eta_min = self.base, self.eta_min
        c = _c.as_count(count, _c.any_tensor(base, eta_min))
        return _c.out(eta_min + (base - eta_min) * (1 + _c.cos(math.pi * c / self.T_max)) / 2)


def _restart_position(c: Any, T_0: int, T_mult: int) -> tuple[Any, Any]:
    """``(T_cur, T_i)`` of SGDR at count ``c``: the position in the current period and its length."""
    if not isinstance(c, Tensor):
        if T_mult == 1:
            return c % T_0, T_0
        start, period = 0, T_0
        while c >= start + period:
            start, period = start + period, period * T_mult
        return c - start, period
    if T_mult == 1:
        return torch.remainder(c, T_0), torch.full_like(c, float(T_0))
    n = torch.floor(torch.log(c / T_0 * (T_mult - 1) + 1) / math.log(T_mult))

    def start_of(k: Tensor) -> Tensor:
        return T_0 * (T_mult**k - 1) / (T_mult - 1)

    n = torch.where(c < start_of(n), n - 1, n)  # correct the rounding of the logarithm
    n = torch.where(c >= start_of(n + 1), n + 1, n)
    return c - start_of(n), T_0 * T_mult**n


def cosine_annealing_warm_restarts(
    base: Number, T_0: int, T_mult: int = 1, eta_min: Number = 0.0
) -> Schedule:
    r"""``torch.optim.lr_scheduler.CosineAnnealingWarmRestarts`` (SGDR):
    $\eta_t = \eta_{min} + \tfrac12(\eta_0 - \eta_{min})(1 + \cos(\pi T_{cur} / T_i))$, where the
    period $T_i$ starts at $T_0$, is multiplied by $T_{mult}$ at every restart and
    $T_{cur}$ counts the steps since the last restart.

    Args:
      base: the initial (maximum) learning rate.
      T_0: number of steps until the first restart (positive int).
      T_mult: factor by which the period grows after a restart (int >= 1).
      eta_min: the minimum learning rate.

    References:
      Loshchilov & Hutter, "SGDR: Stochastic Gradient Descent with Warm Restarts", ICLR 2017.
    """
    if not isinstance(T_0, int) or T_0 <= 0:
        raise ValueError(f"Expected positive integer T_0, but got {T_0}")
    if not isinstance(T_mult, int) or T_mult < 1:
        raise ValueError(f"Expected integer T_mult >= 1, but got {T_mult}")
    if not isinstance(eta_min, float | int | Tensor):
        raise ValueError(f"Expected float or int eta_min, but got {eta_min} of type {type(eta_min)}")

    return CosineAnnealingWarmRestartsSchedule(base, T_0, T_mult, eta_min)


class CosineAnnealingWarmRestartsSchedule(ScheduleObject):
    """[`cosine_annealing_warm_restarts`][]."""

    def __init__(self, base: Number, T_0: int, T_mult: int, eta_min: Number) -> None:
        self.base, self.T_0, self.T_mult, self.eta_min = base, T_0, T_mult, eta_min

    def __call__(self, count: Any) -> Number:
        base, eta_min = self.base, self.eta_min
        c = _c.as_count(count, _c.any_tensor(base, eta_min))
        t_cur, t_i = _restart_position(c, self.T_0, self.T_mult)
        return _c.out(eta_min + (base - eta_min) * (1 + _c.cos(math.pi * t_cur / t_i)) / 2)


def _cyclic(
    low: Number,
    high: Number,
    inverse: bool,
    step_size_up: int,
    step_size_down: int | None,
    mode: str,
    gamma: float,
    scale_fn: Callable[[Any], Any] | None,
    scale_mode: str,
) -> Schedule:
    if mode not in ["triangular", "triangular2", "exp_range"] and scale_fn is None:
        raise ValueError("mode is invalid and scale_fn is None")
    up = float(step_size_up)
    down = float(step_size_down) if step_size_down is not None else up
    if scale_fn is None:
        scale_mode = "iterations" if mode == "exp_range" else "cycle"
    return CyclicSchedule(low, high, inverse, up, down, mode, gamma, scale_fn, scale_mode)


class CyclicSchedule(ScheduleObject):
    """[`cyclic_lr`][] (``inverse=False``) and [`cyclic_momentum`][] (``inverse=True``)."""

    def __init__(
        self,
        low: Number,
        high: Number,
        inverse: bool,
        up: float,
        down: float,
        mode: str,
        gamma: float,
        scale_fn: Callable[[Any], Any] | None,
        scale_mode: str,
    ) -> None:
        self.low, self.high, self.inverse, self.up, self.down = low, high, inverse, up, down
        self.mode, self.gamma, self.scale_fn, self.scale_mode = mode, gamma, scale_fn, scale_mode

    def _scale(self, x: Any) -> Any:
        if self.scale_fn is not None:
            return self.scale_fn(x)
        if self.mode == "triangular":
            return 1.0
        if self.mode == "triangular2":
            return 1 / 2.0 ** (x - 1)
        return self.gamma**x

    def __call__(self, count: Any) -> Number:
        low, high = self.low, self.high
        total = self.up + self.down
        ratio = self.up / total
        c = _c.as_count(count, _c.any_tensor(low, high))
        cycle = _c.floor(1 + c / total)
        x = 1.0 + c / total - cycle
        factor = _c.where(x <= ratio, x / ratio, (x - 1) / (ratio - 1))
        height = (high - low) * factor
        scale = self._scale(cycle) if self.scale_mode == "cycle" else self._scale(c)
        return _c.out(high - height * scale if self.inverse else low + height * scale)


def cyclic_lr(
    base_lr: Number,
    max_lr: Number,
    step_size_up: int = 2000,
    step_size_down: int | None = None,
    mode: Literal["triangular", "triangular2", "exp_range"] = "triangular",
    gamma: float = 1.0,
    scale_fn: Callable[[Any], Any] | None = None,
    scale_mode: Literal["cycle", "iterations"] = "cycle",
) -> Schedule:
    r"""``torch.optim.lr_scheduler.CyclicLR``: a triangular wave between ``base_lr`` and ``max_lr``.

    With $S = s_{up} + s_{down}$, $r = s_{up}/S$, cycle $k = \lfloor 1 + t/S\rfloor$
    and $x = 1 + t/S - k$:

    $$
    h = x / r \ (x \le r), \quad h = (x - 1)/(r - 1) \ (x > r), \qquad
    \eta_t = \eta_{base} + (\eta_{max} - \eta_{base})\,h\,\sigma
    $$

    where $\sigma$ is the scale: 1 (``triangular``), $2^{-(k-1)}$ (``triangular2``),
    $\gamma^t$ (``exp_range``) or ``scale_fn`` of $k$ (``scale_mode="cycle"``) or of
    $t$ (``"iterations"``). [`cyclic_momentum`][] gives the momentum torch cycles with it.

    Args:
      base_lr: the lower boundary (the value at step 0).
      max_lr: the upper boundary.
      step_size_up: steps of the increasing half of a cycle.
      step_size_down: steps of the decreasing half (default: ``step_size_up``).
      mode: ``"triangular"``, ``"triangular2"`` or ``"exp_range"`` (ignored if ``scale_fn``).
      gamma: the base of ``exp_range``'s scale.
      scale_fn: a custom scale $\sigma(\cdot)$ with values in [0, 1].
      scale_mode: what ``scale_fn`` receives: the cycle number or the step count.

    References:
      Smith, "Cyclical Learning Rates for Training Neural Networks", WACV 2017.
    """
    return _cyclic(base_lr, max_lr, False, step_size_up, step_size_down, mode, gamma, scale_fn, scale_mode)


def cyclic_momentum(
    base_momentum: Number = 0.8,
    max_momentum: Number = 0.9,
    step_size_up: int = 2000,
    step_size_down: int | None = None,
    mode: Literal["triangular", "triangular2", "exp_range"] = "triangular",
    gamma: float = 1.0,
    scale_fn: Callable[[Any], Any] | None = None,
    scale_mode: Literal["cycle", "iterations"] = "cycle",
) -> Schedule:
    r"""The momentum (or Adam's ``beta1``) that ``CyclicLR(cycle_momentum=True)`` cycles inversely to
    the learning rate: $\mu_t = \mu_{max} - (\mu_{max} - \mu_{base})\,h\,\sigma$ (see
    [`cyclic_lr`][] for $h, \sigma$; pass it the same cycle arguments).

    Example:
        >>> kw = dict(step_size_up=100, mode="triangular2")
        >>> opt = fo.chain(
        ...     fo.trace(fo.schedules.cyclic_momentum(0.8, 0.9, **kw)),
        ...     fo.scale_by_learning_rate(fo.schedules.cyclic_lr(1e-3, 1e-2, **kw)),
        ... )
        >>> lr = fo.schedules.cyclic_lr(1e-3, 1e-2, **kw)
        >>> round(lr(0), 6), round(lr(100), 6)  # base, then peak after step_size_up
        (0.001, 0.01)
    """
    return _cyclic(
        base_momentum, max_momentum, True, step_size_up, step_size_down, mode, gamma, scale_fn, scale_mode
    )


def _one_cycle_phases(
    total_steps: int | None,
    epochs: int | None,
    steps_per_epoch: int | None,
    pct_start: float,
    anneal_strategy: str,
    three_phase: bool,
) -> tuple[int, list[float]]:
    if total_steps is not None:
        if total_steps <= 0 or not isinstance(total_steps, int):
            raise ValueError(f"Expected positive integer total_steps, but got {total_steps}")
    elif epochs is not None and steps_per_epoch is not None:
        if not isinstance(epochs, int) or epochs <= 0:
            raise ValueError(f"Expected positive integer epochs, but got {epochs}")
        if not isinstance(steps_per_epoch, int) or steps_per_epoch <= 0:
            raise ValueError(f"Expected positive integer steps_per_epoch, but got {steps_per_epoch}")
        total_steps = epochs * steps_per_epoch
    else:
        raise ValueError("You must define either total_steps OR (epochs AND steps_per_epoch)")
    if three_phase:
        ends = [float(pct_start * total_steps) - 1, float(2 * pct_start * total_steps) - 2, total_steps - 1]
    else:
        ends = [float(pct_start * total_steps) - 1, total_steps - 1]
    if pct_start < 0 or pct_start > 1 or not isinstance(pct_start, float):
        raise ValueError(f"Expected float between 0 and 1 pct_start, but got {pct_start}")
    if anneal_strategy not in ["cos", "linear"]:
        raise ValueError(f"anneal_strategy must be one of 'cos' or 'linear', instead got {anneal_strategy}")
    return total_steps, ends


def _anneal(strategy: str, start: Any, end: Any, pct: Any) -> Any:
    if strategy == "cos":
        return end + (start - end) / 2.0 * (_c.cos(math.pi * pct) + 1)
    return (end - start) * pct + start


def _phased(total_steps: int, ends: list[float], values: list[Any], strategy: str) -> Schedule:
    """Piecewise annealing between ``values[i]`` and ``values[i+1]`` over phases ending at ``ends``."""
    return PhasedSchedule(total_steps, ends, values, strategy)


class PhasedSchedule(ScheduleObject):
    """[`one_cycle_lr`][] and [`one_cycle_momentum`][]: annealing phases ending at ``ends``."""

    def __init__(self, total_steps: int, ends: list[float], values: list[Any], strategy: str) -> None:
        self.total_steps, self.ends, self.values, self.strategy = total_steps, ends, values, strategy

    def __call__(self, count: Any) -> Number:
        ends, values, strategy = self.ends, self.values, self.strategy
        c = _c.as_count(count, _c.any_tensor(*values))
        c = _c.minimum(c, self.total_steps)  # torch raises past total_steps; we hold the last value
        if not isinstance(c, Tensor):
            i = next(i for i, e in enumerate(ends) if c <= e or i == len(ends) - 1)
            start = 0.0 if i == 0 else ends[i - 1]
            return _c.out(_anneal(strategy, values[i], values[i + 1], (c - start) / (ends[i] - start)))
        result: Any = None
        for i in reversed(range(len(ends))):
            start = 0.0 if i == 0 else ends[i - 1]
            pct = (c - start) / (ends[i] - start)
            v = _anneal(strategy, values[i], values[i + 1], pct)
            result = v if result is None else _c.where(c <= ends[i], v, result)
        return _c.out(result)


def one_cycle_lr(
    max_lr: Number,
    total_steps: int | None = None,
    epochs: int | None = None,
    steps_per_epoch: int | None = None,
    pct_start: float = 0.3,
    anneal_strategy: Literal["cos", "linear"] = "cos",
    div_factor: Number = 25.0,
    final_div_factor: Number = 1e4,
    three_phase: bool = False,
) -> Schedule:
    r"""``torch.optim.lr_scheduler.OneCycleLR``: warm up from ``max_lr/div_factor`` to ``max_lr`` over
    ``pct_start`` of the steps, then anneal to ``max_lr/div_factor/final_div_factor``.

    Phases end at $e_1 = p\,N - 1$ and $e_2 = N - 1$ (``three_phase``:
    $e_1 = pN-1, e_2 = 2pN-2, e_3 = N-1$, going back down to the initial rate before the final
    annihilation). Within a phase from $a$ to $b$ with progress
    $\rho = (t - e_{i-1}) / (e_i - e_{i-1})$: ``cos``:
    $b + \tfrac12(a - b)(1 + \cos\pi\rho)$; ``linear``: $a + (b - a)\rho$.

    Torch raises when stepped past ``total_steps``; this function holds the value at
    ``total_steps`` instead. [`one_cycle_momentum`][] gives the momentum/``beta1`` torch cycles.

    Args:
      max_lr: the peak learning rate (float or tensor; hyper-gradients flow to it).
      total_steps: number of steps of the cycle (or ``epochs * steps_per_epoch``).
      epochs, steps_per_epoch: used when ``total_steps`` is ``None``.
      pct_start: fraction of the cycle spent increasing the rate.
      anneal_strategy: ``"cos"`` or ``"linear"``.
      div_factor: initial rate ``= max_lr / div_factor``.
      final_div_factor: final rate ``= initial rate / final_div_factor``.
      three_phase: use the paper's symmetric three-phase schedule.

    References:
      Smith & Topin, "Super-Convergence: Very Fast Training of Neural Networks Using Large Learning
      Rates", 2017.
    """
    n, ends = _one_cycle_phases(total_steps, epochs, steps_per_epoch, pct_start, anneal_strategy, three_phase)
    initial = max_lr / div_factor
    final = initial / final_div_factor
    values = [initial, max_lr, initial, final] if three_phase else [initial, max_lr, final]
    return _phased(n, ends, values, anneal_strategy)


def one_cycle_momentum(
    total_steps: int | None = None,
    epochs: int | None = None,
    steps_per_epoch: int | None = None,
    pct_start: float = 0.3,
    anneal_strategy: Literal["cos", "linear"] = "cos",
    base_momentum: Number = 0.85,
    max_momentum: Number = 0.95,
    three_phase: bool = False,
) -> Schedule:
    r"""The momentum (or Adam's ``beta1``) that ``OneCycleLR(cycle_momentum=True)`` cycles: from
    ``max_momentum`` down to ``base_momentum`` while the rate rises, then back up (three-phase:
    back up, then constant), with the same phases as [`one_cycle_lr`][].

    Example:
        >>> kw = dict(total_steps=1000, pct_start=0.25)
        >>> lr = fo.schedules.one_cycle_lr(1e-2, **kw)
        >>> opt = fo.adam(lr=lr, betas=(fo.schedules.one_cycle_momentum(**kw), 0.999))
        >>> round(lr(249), 6)  # the peak at pct_start
        0.01
    """
    n, ends = _one_cycle_phases(total_steps, epochs, steps_per_epoch, pct_start, anneal_strategy, three_phase)
    if three_phase:
        values = [max_momentum, base_momentum, max_momentum, max_momentum]
    else:
        values = [max_momentum, base_momentum, max_momentum]
    return _phased(n, ends, values, anneal_strategy)


def sequential_lr(schedules: Sequence[Schedule], milestones: Sequence[int]) -> Schedule:
    r"""``torch.optim.lr_scheduler.SequentialLR``: schedule $i$ runs from milestone
    $m_{i-1}$ on, restarted: $\eta_t = s_i(t - m_{i-1})$ for $m_{i-1} \le t < m_i$.

    Torch restarts each scheduler at its milestone through its closed form at epoch 0; for
    ``MultiplicativeLR`` (no closed form) torch instead continues from the previous scheduler's
    rate, which this function does not reproduce.

    Args:
      schedules: the schedules, in order.
      milestones: the counts at which the next schedule takes over (``len(schedules) - 1`` of them).
    """
    if len(schedules) < 1:
        raise ValueError("SequentialLR expects at least one scheduler, but got no scheduler.")
    if len(milestones) != len(schedules) - 1:
        raise ValueError(
            "Sequential Schedulers expects number of schedulers provided to be one more "
            f"than the number of milestone points, but got number of schedulers {len(schedules)} and the "
            f"number of milestones to be equal to {len(milestones)}"
        )
    return _join(list(schedules), [int(m) for m in milestones])


def _join(schedules: list[Schedule], boundaries: list[int]) -> Schedule:
    return JoinedSchedule(schedules, boundaries)


class JoinedSchedule(ScheduleObject):
    """[`sequential_lr`][] and [`join_schedules`][]."""

    def __init__(self, schedules: list[Schedule], boundaries: list[int]) -> None:
        self.schedules, self.boundaries = schedules, boundaries

    def __call__(self, count: Any) -> Number:
        schedules, boundaries = self.schedules, self.boundaries
        if isinstance(count, Tensor):
            c = count
            result = schedules[0](c)
            for b, s in zip(boundaries, schedules[1:], strict=True):
                result = _c.where(c >= b, s(c - b), result)
            return result
        idx = bisect_right(boundaries, count)
        offset = boundaries[idx - 1] if idx > 0 else 0
        return schedules[idx](count - offset)


def chained_scheduler(schedules: Sequence[Schedule], base: Number) -> Schedule:
    r"""``torch.optim.lr_scheduler.ChainedScheduler``: the product of chained schedules,
    $\eta_t = \eta_0 \prod_i s_i(t)/\eta_0$.

    Torch's chainable schedulers each multiply the shared learning rate by their own factor at every
    step, so the chained rate is the base times the product of each one's factor
    $s_i(t)/\eta_0$. Build every schedule with the same ``base`` $\eta_0$ (the optimizer's
    initial lr, as the torch schedulers share it). This is exact for the multiplicative schedulers
    (step, multi-step, constant, linear, exponential, polynomial, multiplicative, lambda, and cosine
    annealing with ``eta_min=0`` up to ``T_max``); torch's additive branches (cosine with
    ``eta_min > 0``, or past ``T_max``) and the closed-form schedulers (cyclic, one-cycle, warm
    restarts) do not chain multiplicatively in torch either.

    Args:
      schedules: the schedules to chain (at least one).
      base: the initial learning rate $\eta_0$ all of them start from.

    Example:
        >>> lr = fo.schedules.chained_scheduler(
        ...     [
        ...         fo.schedules.constant_lr(0.05, factor=0.1, total_iters=20),
        ...         fo.schedules.exponential_lr(0.05, gamma=0.9),
        ...     ],
        ...     base=0.05,
        ... )
        >>> round(lr(0), 6)  # 0.05 · 0.1
        0.005
    """
    if len(schedules) < 1:
        raise ValueError(
            "ChainedScheduler expects at least one scheduler to be chained, but got no scheduler."
        )
    return ChainedSchedule(list(schedules), base)


class ChainedSchedule(ScheduleObject):
    """[`chained_scheduler`][]."""

    def __init__(self, schedules: list[Schedule], base: Number) -> None:
        self.schedules, self.base = schedules, base

    def __call__(self, count: Any) -> Number:
        value = self.base
        for s in self.schedules:
            value = value * (s(count) / self.base)
        return _c.out(value)


def swa_lr(
    base: Number,
    swa_lr: Number,
    anneal_epochs: int = 10,
    anneal_strategy: Literal["cos", "linear"] = "cos",
) -> Schedule:
    r"""``torch.optim.swa_utils.SWALR``: anneal from the previous learning rate ``base`` to ``swa_lr``
    over ``anneal_epochs`` steps, then hold ``swa_lr``:

    $$
    \tau = \min(1, t / \max(1, E)), \quad \alpha = \tfrac12(1 - \cos\pi\tau)\ (\text{cos})
    \text{ or } \tau\ (\text{linear}), \qquad \eta_t = \alpha\,\eta_{swa} + (1 - \alpha)\,\eta_0
    $$

    (``anneal_epochs=0``: ``swa_lr`` from step 0.) Torch recovers $\eta_0$ at each step by
    inverting the previous interpolation, which is this closed form up to rounding.

    Args:
      base: the learning rate when SWA starts (the optimizer's lr when ``SWALR`` is created).
      swa_lr: the SWA learning rate.
      anneal_epochs: number of annealing steps (int >= 0).
      anneal_strategy: ``"cos"`` or ``"linear"``.

    References:
      Izmailov et al., "Averaging Weights Leads to Wider Optima and Better Generalization", UAI 2018.
    """
    if anneal_strategy not in ["cos", "linear"]:
        raise ValueError(f"anneal_strategy must be one of 'cos' or 'linear', instead got {anneal_strategy}")
    if not isinstance(anneal_epochs, int) or anneal_epochs < 0:
        raise ValueError(f"anneal_epochs must be equal or greater than 0, got {anneal_epochs}")
    return SWALRSchedule(base, swa_lr, anneal_epochs, anneal_strategy)


class SWALRSchedule(ScheduleObject):
    """[`swa_lr`][]."""

    def __init__(self, base: Number, swa_lr: Number, anneal_epochs: int, anneal_strategy: str) -> None:
        self.base, self.swa_lr = base, swa_lr
        self.anneal_epochs, self.anneal_strategy = anneal_epochs, anneal_strategy

    def __call__(self, count: Any) -> Number:
        base, target, anneal_epochs = self.base, self.swa_lr, self.anneal_epochs
        c = _c.as_count(count, _c.any_tensor(base, target))
        if anneal_epochs == 0:
            t: Any = 1.0 + 0 * c
        else:
            t = _c.maximum(0, _c.minimum(1, c / anneal_epochs))
        alpha = (1 - _c.cos(math.pi * t)) / 2 if self.anneal_strategy == "cos" else t
        return _c.out(target * alpha + base * (1 - alpha))
