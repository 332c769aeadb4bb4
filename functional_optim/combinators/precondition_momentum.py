"""``precondition_momentum``: a preconditioner fitted on the gradients, applied to their EMA."""

from __future__ import annotations

from typing import Any, NamedTuple, cast

import torch
from torch import Tensor

from functional_optim import _validation, ops, tree
from functional_optim._leafwise import update_leaves
from functional_optim.core import Combinator, GradientTransformation, Hyperparam, Params, Updates
from functional_optim.hyperparams import schedulable
from functional_optim.transforms import _steps

__all__ = ["PreconditionMomentumState", "precondition_momentum"]


class PreconditionMomentumState(NamedTuple):
    """State of [`precondition_momentum`][].

    Attributes:
      step: per parameter, the number of updates (0-dim).
      momentum_buffer: per parameter, the EMA of the gradients ``m`` (``()`` when ``b1 = 0``).
      inner_state: the preconditioner's state.
    """

    step: Any
    momentum_buffer: Any
    inner_state: Any


@schedulable("b1", "b3")
def precondition_momentum(
    preconditioner: GradientTransformation,
    b1: Hyperparam = 0.9,
    b3: Hyperparam = -1.0,
    bias_correction: bool = True,
    momentum_into_preconditioner: bool = False,
) -> GradientTransformation:
    r"""Fit ``preconditioner`` on the gradients and apply it to their exponential moving average.

    Distributed Shampoo's "filtered gradient" (Shi et al. 2023) and PSGD Kron's debiased momentum:

    $$
    \bar g_t = \frac{\beta_3 m_{t-1} + (1-\beta_3) g_t}{1 - \beta_3\beta_1^{t-1}},\qquad
    m_t = \beta_1 m_{t-1} + (1-\beta_1) g_t,\qquad
    u_t = P_t(\bar g_t)
    $$

    where ``P_t`` is the preconditioner after it has seen ``g_t`` (``\bar g_t`` with
    ``momentum_into_preconditioner``). ``β₃ = β₁`` (the default ``b3 < 0``) gives
    ``\bar g_t = m_t / (1 - β₁ᵗ)``; no bias correction divides by 1; ``b1 = 0`` keeps no buffer
    (``\bar g = g``).

    The preconditioner is called as ``preconditioner.update(fit, state, params, apply_to=ḡ)``:
    it updates its statistics with ``fit`` and returns its preconditioner applied to ``apply_to``.
    [`scale_by_shampoo`][functional_optim.scale_by_shampoo],
    [`scale_by_diagonal_preconditioner`][functional_optim.scale_by_diagonal_preconditioner],
    [`scale_by_kron`][functional_optim.scale_by_kron] and [`graft`][functional_optim.graft] (which forwards it
    to both rules) honour ``apply_to``; a transform that ignores it would precondition ``fit``.

    Args:
      preconditioner: the transform that honours ``apply_to``.
      b1: the EMA factor ``β₁`` of the momentum buffer.
      b3: the factor ``β₃`` of the current step's average (``< 0``: ``β₁``; Shampoo's ``beta3``).
      bias_correction: divide by ``1 - β₃β₁^{t-1}``.
      momentum_into_preconditioner: fit the preconditioner on ``\bar g`` instead of ``g`` (Kron's
        ``momentum_into_precond_update``).

    Example:
      >>> opt = fo.precondition_momentum(fo.scale_by_diagonal_preconditioner(), b1=0.9)
      >>> params = {"w": torch.ones(3)}
      >>> updates, state = opt.update({"w": torch.tensor([1.0, -2.0, 0.5])}, opt.init(params))
      >>> updates["w"]  # m / (1 - 0.9) = g, divided by sqrt(g²) + 1e-10
      tensor([ 1., -1.,  1.])

    References:
      Shi et al., "A Distributed Data-Parallel PyTorch Implementation of the Distributed Shampoo
      Optimizer", arXiv:2309.06497, 2023; Li, "Preconditioned Stochastic Gradient Descent", 2015
      (Kron: github.com/evanatyourservice/kron_torch).
    """
    if not isinstance(preconditioner, GradientTransformation):
        raise ValueError(
            f"precondition_momentum: preconditioner must be a GradientTransformation, got "
            f"{type(preconditioner).__name__}"
        )
    _validation.require(
        lambda v: 0.0 <= v < 1.0, b1, f"precondition_momentum: b1 must be in [0, 1), got {b1}"
    )
    _validation.require(
        lambda v: v == -1.0 or 0.0 <= v < 1.0,
        b3,
        f"precondition_momentum: b3 must be -1 or in [0, 1), got {b3}",
    )
    b1_value = _validation.value_of(b1)
    keep_buffer = b1_value is None or b1_value != 0.0

    def init_fn(params: Params) -> PreconditionMomentumState:
        buf = tree.zeros_like(params) if keep_buffer else ()
        return PreconditionMomentumState(_steps.zeros(params), buf, preconditioner.init(params))

    def update_fn(
        updates: Updates, state: PreconditionMomentumState, params: Params | None = None, **extra: Any
    ):
        beta1, beta3 = float(ops.scalar(cast(Any, b1))), float(ops.scalar(cast(Any, b3)))
        beta3 = beta1 if beta3 < 0 else beta3
        fields = [state.step, state.momentum_buffer] if keep_buffer else [state.step]

        def fn(
            grads: list[Tensor], cols: list[list[Tensor]], _: Any
        ) -> tuple[list[Tensor], list[list[Tensor]]]:
            steps = _steps.increment(cols[0])
            if not keep_buffer:
                return list(grads), [steps]
            bufs = cols[1]
            new_bufs = [torch.lerp(m, g, 1 - beta1) for m, g in zip(bufs, grads, strict=True)]
            if beta3 == beta1:
                filtered = list(new_bufs)
            else:
                filtered = [torch.lerp(m, g, 1 - beta3) for m, g in zip(bufs, grads, strict=True)]
            if bias_correction:
                filtered = [
                    f / (1.0 - beta3 * beta1 ** (float(t) - 1.0))
                    for f, t in zip(filtered, steps, strict=True)
                ]
            return filtered, [steps, new_bufs]

        filtered, new_fields = update_leaves(
            fn, updates, fields, name="precondition_momentum", elementwise_state=False
        )
        fit = filtered if momentum_into_preconditioner else updates
        out, new_inner = preconditioner.update(fit, state.inner_state, params, **extra, apply_to=filtered)
        buf = new_fields[1] if keep_buffer else ()
        return out, PreconditionMomentumState(new_fields[0], buf, new_inner)

    return GradientTransformation(init_fn, update_fn, Combinator((preconditioner,), keeps_old_state=False))
