"""``scale_by_adagrad``: Adagrad's accumulated squared gradients (with sparse gradients)."""

from __future__ import annotations

import itertools
import operator
from typing import Any, NamedTuple

import torch
from torch import Tensor

from functional_optim import _validation, ops, tree
from functional_optim.core import GradientTransformation, Hyperparam, Params
from functional_optim.hyperparams import schedulable
from functional_optim.rules import Rule, RuleStep, Term, TorchKernel, divided, rule_transform
from functional_optim.transforms import _steps

_IS_SPARSE = operator.attrgetter("is_sparse")

__all__ = ["ScaleByAdagradState", "scale_by_adagrad"]


class ScaleByAdagradState(NamedTuple):
    """Per-parameter state of [`scale_by_adagrad`][] (names and meaning as ``torch.optim.Adagrad``)."""

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

    $$
    s_t = s_{t-1} + g_t^2,\qquad
    u_t = \frac{1}{1 + (t-1)\,\mathrm{lr\_decay}} \cdot \frac{g_t}{\sqrt{s_t} + \epsilon}
    $$

    ``torch.optim.Adagrad``'s step is ``-clr · g/(√s+ε)`` with ``clr = lr/(1+(t-1)·lr_decay)``;
    here the decay factor is applied and ``lr`` is left to [`scale_by_learning_rate`][], so
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

    def step(grads: list[Tensor], fields: list[list[Tensor]], _: Any, *, in_place: bool) -> RuleStep:
        eps_, decay_rate = ops.scalar(eps), ops.scalar(lr_decay)
        steps, sums = _steps.increment(fields[0], in_place=in_place), fields[1]
        decay = _steps.coefficients(steps, lambda t: 1 + (t - 1) * decay_rate)
        # C-level maps when eager (this runs per chunk of parameters); plain loops for Dynamo
        compiling = torch.compiler.is_compiling()
        if not (any(g.is_sparse for g in grads) if compiling else any(map(_IS_SPARSE, grads))):
            g_r, s_r = ops.view_as_real(grads), ops.view_as_real(sums)
            s_r = ops.addcmul(s_r, g_r, g_r, in_place=in_place)
            std = ops.add_(ops.sqrt(s_r), eps_)
            if compiling or not all(map(isinstance, decay, itertools.repeat(float | int))):
                # traced counters give float64 0-dim tensors: cast to the update's dtype
                decay = [
                    c if isinstance(c, float | int) else c.to(x.dtype)
                    for c, x in zip(decay, g_r, strict=True)
                ]
            # torch.optim.Adagrad: p.addcdiv_(g, std, value=-lr / decay)
            return RuleStep([steps, ops.view_as_complex_like(s_r, sums)], [Term(g_r, std, divided(decay))])
        # sparse gradients (torch's sparse path), one tensor at a time
        out, new_sums = [], []
        for g, s_, c in zip(grads, sums, decay, strict=True):
            if g.is_sparse:
                u, acc = _sparse_update(g, s_, eps_, c)
            else:
                g_r, s_r = ops.view_as_real([g]), ops.view_as_real([s_])
                s_r = ops.addcmul(s_r, g_r, g_r)
                u = ops.view_as_complex_like(ops.div(ops.div(g_r, ops.add_(ops.sqrt(s_r), eps_)), c), [g])[0]
                acc = ops.view_as_complex_like(s_r, [s_])[0]
            out.append(u)
            new_sums.append(acc)
        return RuleStep([steps, new_sums], update=out)

    def kernel() -> TorchKernel | None:
        eps_, decay_rate = ops.scalar(eps), ops.scalar(lr_decay)
        if not ops.is_python_number(eps_, decay_rate):
            return None
        return TorchKernel("adagrad", {"lr_decay": decay_rate, "eps": eps_})

    return rule_transform(
        init_fn,
        Rule(
            "scale_by_adagrad",
            step,
            lambda state: [state.step, state.sum],
            lambda new: ScaleByAdagradState(*new),
            state_type=ScaleByAdagradState,
            kernel=kernel,
            replayable=True,
        ),
    )
