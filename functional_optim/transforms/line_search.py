"""Strong-Wolfe line search with cubic interpolation (``torch.optim.LBFGS``'s ``_strong_wolfe``).

The objective is seen along a ray through a function ``obj_func(x, t, d) -> (f, g)`` that
returns the loss (a Python float) and the flat gradient at ``x + t·d``; ``x`` is opaque to the
search (it is only passed back to ``obj_func``). Nothing here mutates its inputs.

Ported from torch/optim/lbfgs.py (itself ported from Torch7's ``lswolfe.lua`` and
``polyinterp.lua``), keeping its arithmetic (Python floats mixed with 0-dim tensors) so that
the search visits the same step lengths as ``torch.optim.LBFGS``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

__all__ = ["cubic_interpolate", "strong_wolfe"]

Number = float | Tensor
ObjFunc = Callable[[Any, Number, Tensor], tuple[float, Tensor]]


def cubic_interpolate(
    x1: Number,
    f1: Number,
    g1: Number,
    x2: Number,
    f2: Number,
    g2: Number,
    bounds: tuple[Number, Number] | None = None,
) -> Number:
    r"""The minimiser of the cubic through ``(x1, f1, f'=g1)`` and ``(x2, f2, f'=g2)``, clamped to ``bounds``.

    $$
    \begin{aligned}
    &d_1 = g_1 + g_2 - 3\frac{f_1 - f_2}{x_1 - x_2},\quad d_2 = \sqrt{d_1^2 - g_1 g_2} \\
    &x^* = x_2 - (x_2 - x_1)\frac{g_2 + d_2 - d_1}{g_2 - g_1 + 2 d_2}\quad (x_1 \le x_2)
    \end{aligned}
    $$

    If ``d_1² < g_1 g_2`` (no real minimiser) the midpoint of the bounds is returned.

    Args:
      x1: first point.
      f1: the value at ``x1``.
      g1: the directional derivative at ``x1``.
      x2: second point.
      f2: the value at ``x2``.
      g2: the directional derivative at ``x2``.
      bounds: ``(lo, hi)`` to clamp the result to (default: the interval between the points).
    """
    if bounds is not None:
        xmin_bound, xmax_bound = bounds
    else:
        xmin_bound, xmax_bound = (x1, x2) if x1 <= x2 else (x2, x1)
    d1 = g1 + g2 - 3 * (f1 - f2) / (x1 - x2)
    d2_square = d1**2 - g1 * g2
    if d2_square >= 0:
        d2 = d2_square.sqrt()  # type: ignore[union-attr]  # a tensor in practice, as in torch
        if x1 <= x2:
            min_pos = x2 - (x2 - x1) * ((g2 + d2 - d1) / (g2 - g1 + 2 * d2))
        else:
            min_pos = x1 - (x1 - x2) * ((g1 + d2 - d1) / (g1 - g2 + 2 * d2))
        return min(max(min_pos, xmin_bound), xmax_bound)
    return (xmin_bound + xmax_bound) / 2.0


def strong_wolfe(
    obj_func: ObjFunc,
    x: Any,
    t: Number,
    d: Tensor,
    f: float,
    g: Tensor,
    gtd: Tensor,
    c1: float = 1e-4,
    c2: float = 0.9,
    tolerance_change: float = 1e-9,
    max_ls: int = 25,
) -> tuple[float, Tensor, Number, int]:
    r"""Find a step length ``t`` along ``d`` satisfying the strong Wolfe conditions.

    $$
    f(x + t d) \le f(x) + c_1 t\, g^\top d \quad\text{(sufficient decrease)},\qquad
    |g(x + t d)^\top d| \le -c_2\, g^\top d \quad\text{(curvature)}
    $$

    A bracketing phase extrapolates with cubic interpolation (bounded to
    ``[t + 0.01 (t - t_prev), 10 t]``) until an interval containing such a point is found, then a
    zoom phase shrinks it by safeguarded cubic interpolation. At most ``max_ls`` further
    evaluations are made; the search also stops when ``|bracket| · max|d| < tolerance_change``.

    Args:
      obj_func: ``obj_func(x, t, d) -> (loss: float, flat_grad: Tensor)`` at ``x + t·d``.
      x: the starting point, passed through to ``obj_func``.
      t: initial step length.
      d: search direction (flat tensor).
      f: loss at ``x``.
      g: flat gradient at ``x``.
      gtd: directional derivative ``g·d`` at ``x`` (negative for a descent direction).
      c1: sufficient-decrease constant.
      c2: curvature constant.
      tolerance_change: minimal bracket width (scaled by ``max|d|``).
      max_ls: maximal number of line-search iterations.

    Returns:
      ``(f_new, g_new, t, ls_func_evals)``: the loss and flat gradient at the accepted step, the
      step length, and the number of ``obj_func`` calls made.

    References:
      Nocedal & Wright, "Numerical Optimization", 2nd ed., Algorithms 3.5 and 3.6.
      ``torch.optim.LBFGS`` (``_strong_wolfe``); Mark Schmidt's minFunc.
    """
    d_norm = d.abs().max()
    g = g.clone(memory_format=torch.contiguous_format)
    f_new, g_new = obj_func(x, t, d)
    ls_func_evals = 1
    gtd_new = g_new.dot(d)

    # bracket an interval containing a point satisfying the Wolfe criteria
    t_prev, f_prev, g_prev, gtd_prev = 0, f, g, gtd
    done = False
    ls_iter = 0
    bracket: list[Any] = []
    bracket_f: list[Any] = []
    bracket_g: list[Tensor] = []
    bracket_gtd: list[Any] = []
    while ls_iter < max_ls:
        if f_new > (f + c1 * t * gtd) or (ls_iter > 1 and f_new >= f_prev):
            bracket, bracket_f = [t_prev, t], [f_prev, f_new]
            bracket_g = [g_prev, g_new.clone(memory_format=torch.contiguous_format)]
            bracket_gtd = [gtd_prev, gtd_new]
            break
        if abs(gtd_new) <= -c2 * gtd:
            bracket, bracket_f, bracket_g = [t], [f_new], [g_new]
            done = True
            break
        if gtd_new >= 0:
            bracket, bracket_f = [t_prev, t], [f_prev, f_new]
            bracket_g = [g_prev, g_new.clone(memory_format=torch.contiguous_format)]
            bracket_gtd = [gtd_prev, gtd_new]
            break
        # interpolate (extrapolate) within [t + 0.01 (t - t_prev), 10 t]
        min_step = t + 0.01 * (t - t_prev)
        max_step = t * 10
        tmp = t
        t = cubic_interpolate(t_prev, f_prev, gtd_prev, t, f_new, gtd_new, bounds=(min_step, max_step))
        t_prev, f_prev = tmp, f_new  # type: ignore[assignment]
        g_prev = g_new.clone(memory_format=torch.contiguous_format)
        gtd_prev = gtd_new
        f_new, g_new = obj_func(x, t, d)
        ls_func_evals += 1
        gtd_new = g_new.dot(d)
        ls_iter += 1

    if ls_iter == max_ls:  # reached the maximal number of iterations
        bracket, bracket_f, bracket_g = [0, t], [f, f_new], [g, g_new]

    # zoom phase: refine the bracket until a point satisfying the criteria is found
    insuf_progress = False
    low_pos, high_pos = (0, 1) if bracket_f[0] <= bracket_f[-1] else (1, 0)
    while not done and ls_iter < max_ls:
        if abs(bracket[1] - bracket[0]) * d_norm < tolerance_change:  # bracket too small
            break
        t = cubic_interpolate(
            bracket[0], bracket_f[0], bracket_gtd[0], bracket[1], bracket_f[1], bracket_gtd[1]
        )

        # Safeguard: if t is within 10% of the bracket's length of a boundary and we made
        # insufficient progress last time (or t is at/outside a boundary), move it to 10% inside.
        eps = 0.1 * (max(bracket) - min(bracket))
        if min(max(bracket) - t, t - min(bracket)) < eps:
            if insuf_progress or t >= max(bracket) or t <= min(bracket):
                if abs(t - max(bracket)) < abs(t - min(bracket)):
                    t = max(bracket) - eps
                else:
                    t = min(bracket) + eps
                insuf_progress = False
            else:
                insuf_progress = True
        else:
            insuf_progress = False

        f_new, g_new = obj_func(x, t, d)
        ls_func_evals += 1
        gtd_new = g_new.dot(d)
        ls_iter += 1

        if f_new > (f + c1 * t * gtd) or f_new >= bracket_f[low_pos]:
            # Armijo condition not satisfied or not lower than the lowest point: new high
            bracket[high_pos] = t
            bracket_f[high_pos] = f_new
            bracket_g[high_pos] = g_new.clone(memory_format=torch.contiguous_format)
            bracket_gtd[high_pos] = gtd_new
            low_pos, high_pos = (0, 1) if bracket_f[0] <= bracket_f[1] else (1, 0)
        else:
            if abs(gtd_new) <= -c2 * gtd:
                done = True  # Wolfe conditions satisfied
            elif gtd_new * (bracket[high_pos] - bracket[low_pos]) >= 0:
                # old high becomes new low
                bracket[high_pos] = bracket[low_pos]
                bracket_f[high_pos] = bracket_f[low_pos]
                bracket_g[high_pos] = bracket_g[low_pos]
                bracket_gtd[high_pos] = bracket_gtd[low_pos]
            # new point becomes new low
            bracket[low_pos] = t
            bracket_f[low_pos] = f_new
            bracket_g[low_pos] = g_new.clone(memory_format=torch.contiguous_format)
            bracket_gtd[low_pos] = gtd_new

    return bracket_f[low_pos], bracket_g[low_pos], bracket[low_pos], ls_func_evals
