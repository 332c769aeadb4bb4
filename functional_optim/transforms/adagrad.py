"""``scale_by_adagrad``: Adagrad's accumulated squared gradients (with sparse gradients)."""

from __future__ import annotations

from typing import Any, NamedTuple

import torch
from torch import Tensor

from functional_optim import _validation, fusion, ops, tree
from functional_optim._leafwise import update_leaves
from functional_optim.core import GradientTransformation, Hyperparam, Params, Updates
from functional_optim.hyperparams import schedulable
from functional_optim.transforms import _steps

__all__ = ["ScaleByAdagradState", "scale_by_adagrad"]


class ScaleByAdagradState(NamedTuple):
    """Per-parameter state of :func:`scale_by_adagrad` (names and meaning as ``torch.optim.Adagrad``)."""

    step: Any
    sum: Any


def _initial_sum(p: Tensor | None, value: float) -> Tensor | None:
    if p is None:
        return None
    return torch.full_like(p, complex(value, value) if p.is_complex() else value)


def _sparse_update(g: Tensor, acc: Tensor, eps: Any, decay: Any) -> tuple[Tensor, Tensor]:
    """torch's sparse path: coalesce, accumulate ``values²`` at the grad's indices, and emit a
    sparse update that touches only those entries."""
    g = g.coalesce()  # the update is non-linear, so indices must be unique
    indices, values = g._indices(), g._values()
    acc = acc + torch.sparse_coo_tensor(indices, values.pow(2), g.size(), check_invariants=False)
    std_values = acc.sparse_mask(g)._values().sqrt() + eps
    u_values = values / std_values
    if not (isinstance(decay, float | int) and decay == 1):
        u_values = u_values / (decay if isinstance(decay, float | int) else decay.to(u_values.dtype))
    return torch.sparse_coo_tensor(indices, u_values, g.size(), check_invariants=False), acc


@schedulable("lr_decay", "eps")
def scale_by_adagrad(
    lr_decay: Hyperparam = 0, initial_accumulator_value: float = 0, eps: Hyperparam = 1e-10
) -> GradientTransformation:
    r"""Scale updates by the root of the accumulated squared gradients (Adagrad).

    With ``t`` the parameter's step count after increment:

    .. math::
        s_t = s_{t-1} + g_t^2,\qquad
        u_t = \frac{1}{1 + (t-1)\,\mathrm{lr\_decay}} \cdot \frac{g_t}{\sqrt{s_t} + \epsilon}

    ``torch.optim.Adagrad``'s step is ``-clr · g/(√s+ε)`` with ``clr = lr/(1+(t-1)·lr_decay)``;
    here the decay factor is applied and ``lr`` is left to :func:`scale_by_learning_rate`, so
    ``chain(scale_by_adagrad(...), scale_by_learning_rate(lr))`` is Adagrad (equal up to float
    rounding of the product order). ``eps`` is added outside the square root. ``sum`` starts at
    ``initial_accumulator_value`` (``complex(iav, iav)`` for complex parameters, as torch); complex
    tensors are otherwise treated as real tensors of shape ``(..., 2)``.

    Sparse gradients follow torch's sparse path: the gradient is coalesced, ``values²`` are added
    to ``sum`` at its indices, and the update is a sparse tensor touching only those entries
    (``fo.apply_updates`` adds it to the dense parameter).

    Args:
      lr_decay: learning-rate decay per step (the ``1/(1+(t-1)·lr_decay)`` factor).
      initial_accumulator_value: starting value of ``sum``.
      eps: added to the denominator for numerical stability.

    Example::

        opt = fo.chain(fo.scale_by_adagrad(), fo.scale_by_learning_rate(1e-2))

    References:
      Duchi, Hazan & Singer, "Adaptive Subgradient Methods for Online Learning and Stochastic
      Optimization", JMLR 2011.
    """
    _validation.nonnegative("lr_decay", lr_decay, "lr_decay value")
    _validation.nonnegative(
        "initial_accumulator_value", initial_accumulator_value, "initial_accumulator_value value"
    )
    _validation.nonnegative("eps", eps, "epsilon value")
    iav = float(_validation.value_of(initial_accumulator_value) or 0.0)

    def init_fn(params: Params) -> ScaleByAdagradState:
        return ScaleByAdagradState(
            step=_steps.zeros(params), sum=tree.map(lambda p: _initial_sum(p, iav), params)
        )

    def accumulate(g_d: list[Tensor], s_d: list[Tensor]):
        """Dense gradients: the new sums and the denominator ``sqrt(sum) + eps`` (real views)."""
        g_r, s_r = ops.view_as_real(g_d), ops.view_as_real(s_d)
        s_r = ops.addcmul(s_r, g_r, g_r, donate=True)
        return g_r, s_r, ops.add_(ops.sqrt(s_r), ops.scalar(eps))

    def decays(steps: list[Tensor]) -> list[Any]:
        decay_rate = ops.scalar(lr_decay)
        return _steps.coefficients(steps, lambda t: 1 + (t - 1) * decay_rate)

    def adagrad(grads: list[Tensor], fields: list[list[Tensor]], _: Any):
        steps, sums = _steps.increment(fields[0], donate=True), fields[1]
        decay = decays(steps)
        out: list[Tensor | None] = [None] * len(grads)
        new_sums: list[Tensor | None] = [None] * len(grads)
        dense = [i for i, g in enumerate(grads) if not g.is_sparse]
        for i, g in enumerate(grads):
            if g.is_sparse:
                out[i], new_sums[i] = _sparse_update(g, sums[i], ops.scalar(eps), decay[i])
        if dense:
            g_d = [grads[i] for i in dense]
            s_d = [sums[i] for i in dense]
            g_r, s_r, std = accumulate(g_d, s_d)
            u = ops.rdiv_(std, g_r)
            d_d = [decay[i] for i in dense]
            if not all(isinstance(c, float | int) and c == 1 for c in d_d):
                # traced counters give float64 0-dim tensors: cast to the update's dtype
                u = ops.div_(
                    u,
                    [c if isinstance(c, float | int) else c.to(x.dtype) for c, x in zip(d_d, u, strict=True)],
                )
            for j, (ui, si) in enumerate(
                zip(ops.view_as_complex_like(u, g_d), ops.view_as_complex_like(s_r, s_d), strict=True)
            ):
                out[dense[j]], new_sums[dense[j]] = ui, si
            ops.release(u)
        return out, [steps, new_sums]

    def update_fn(updates: Updates, state: ScaleByAdagradState, params: Params | None = None, **extra: Any):
        del params, extra
        new_updates, new = update_leaves(adagrad, updates, [state.step, state.sum], name="scale_by_adagrad")
        return new_updates, ScaleByAdagradState(*new)

    def terms_fn(grads: list[Tensor], state: ScaleByAdagradState, params: list[Tensor]):
        # the adapters' fused step (dense gradients): p.addcdiv_(g, std, value=-lr/decay), as torch
        steps = _steps.increment(state.step, donate=True)
        decay = decays(steps)
        g_r, s_r, std = accumulate(grads, state.sum)
        term = fusion.Term(g_r, std, fusion.divided(decay))
        return [term], ScaleByAdagradState(steps, ops.view_as_complex_like(s_r, state.sum))

    fusion.provide_terms(update_fn, terms_fn)
    return GradientTransformation(init_fn, update_fn)
