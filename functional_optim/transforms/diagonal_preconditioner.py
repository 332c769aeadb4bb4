"""``scale_by_diagonal_preconditioner``: AdaGrad / RMSprop / Adam's diagonal scaling, as the
grafting rules of Distributed Shampoo."""

from __future__ import annotations

from typing import Any, NamedTuple, cast

import torch
from torch import Tensor

from functional_optim import _validation, ops, tree
from functional_optim._leafwise import update_leaves
from functional_optim.core import EmptyState, GradientTransformation, Hyperparam, Params, Updates
from functional_optim.hyperparams import schedulable
from functional_optim.transforms import _steps

__all__ = [
    "ScaleByDiagonalPreconditionerState",
    "scale_by_diagonal_preconditioner",
    "scale_by_identity_preconditioner",
]


class ScaleByDiagonalPreconditionerState(NamedTuple):
    """Per-parameter state of [`scale_by_diagonal_preconditioner`][].

    Attributes:
      step: updates seen (0-dim).
      exp_avg_sq: the (weighted) running sum or average of the squared gradients.
    """

    step: Any
    exp_avg_sq: Any


@schedulable("b2", "eps")
def scale_by_diagonal_preconditioner(
    b2: Hyperparam = 1.0,
    eps: Hyperparam = 1e-10,
    bias_correction: bool = False,
    weighting_factor: Hyperparam | None = None,
) -> GradientTransformation:
    r"""Divide by the root of a running sum (AdaGrad) or average (RMSprop, Adam) of squared
    gradients, as Distributed Shampoo's ``AdagradPreconditionerList`` (its grafting rules):

    $$
    v_t = \beta_2 v_{t-1} + w\,g_t^2,\qquad
    u_t = \frac{x_t}{\sqrt{v_t / (1-\beta_2^t)} + \epsilon}
    $$

    with ``w = 1`` if ``β₂ = 1`` else ``1 - β₂`` (or ``weighting_factor``), the bias correction only
    with ``bias_correction`` and ``β₂ < 1``, and ``x = g`` or the ``apply_to`` extra (see
    [`precondition_momentum`][functional_optim.combinators.precondition_momentum]). The reference's grafting
    configs:
    AdaGrad ``(β₂=1)``, RMSprop ``(β₂=0.99)``, Adam ``(β₂=0.999, bias_correction=True)``, each with
    ``eps`` (default ``1e-10``) outside the root.

    Args:
      b2: the decay of the running average (``1``: a sum).
      eps: added to the root.
      bias_correction: divide ``v`` by ``1 - β₂ᵗ`` (Adam).
      weighting_factor: the weight ``w`` of ``g²`` (default as above; ``1`` with ``β₂ < 1`` is the
        reference's ``drop_weighting_factor_on_gsquare``).

    Example:
      >>> tx = fo.scale_by_diagonal_preconditioner()  # AdaGrad
      >>> params = {"w": torch.zeros(2)}
      >>> fo.scale_by_diagonal_preconditioner().update({"w": torch.tensor([3.0, -4.0])}, tx.init(params))[0]
      {'w': tensor([ 1., -1.])}

    References:
      Duchi, Hazan & Singer, "Adaptive Subgradient Methods", JMLR 2011; Shi et al. 2023
      (github.com/facebookresearch/optimizers, ``AdagradPreconditionerList``).
    """
    _validation.require(
        lambda v: 0.0 < v <= 1.0, b2, f"scale_by_diagonal_preconditioner: b2 must be in (0, 1], got {b2}"
    )
    _validation.require(
        lambda v: v > 0.0, eps, f"scale_by_diagonal_preconditioner: eps must be > 0, got {eps}"
    )

    def init_fn(params: Params) -> ScaleByDiagonalPreconditionerState:
        return ScaleByDiagonalPreconditionerState(_steps.zeros(params), tree.zeros_like(params))

    def update_fn(
        updates: Updates,
        state: ScaleByDiagonalPreconditionerState,
        params: Params | None = None,
        **extra: Any,
    ):
        del params
        beta2, eps_ = float(ops.scalar(cast(Any, b2))), ops.scalar(cast(Any, eps))
        w = (
            (1.0 if beta2 == 1.0 else 1.0 - beta2)
            if weighting_factor is None
            else float(ops.scalar(cast(Any, weighting_factor)))
        )
        apply_to = extra.get("apply_to")
        spec = tree.structure(updates)
        targets = (
            None
            if apply_to is None
            else tree.flatten_like(spec, apply_to, "scale_by_diagonal_preconditioner: apply_to")
        )
        present = [i for i, g in enumerate(tree.leaves(updates)) if g is not None]

        def fn(
            grads: list[Tensor], cols: list[list[Tensor]], _: Any
        ) -> tuple[list[Tensor], list[list[Tensor]]]:
            steps = _steps.increment(cols[0])
            vs = cols[1] if beta2 == 1.0 else [v * beta2 for v in cols[1]]
            vs = [torch.addcmul(v, g, g, value=w) for v, g in zip(vs, grads, strict=True)]
            xs = grads if targets is None else [targets[i] for i in present]
            out = []
            for x, v, t in zip(xs, vs, steps, strict=True):
                bc2 = 1.0 - beta2 ** float(t) if bias_correction and beta2 < 1.0 else 1.0
                out.append(x / ((v / bc2).sqrt() + eps_))
            return out, [steps, vs]

        new_updates, new_fields = update_leaves(
            fn, updates, list(state), name="scale_by_diagonal_preconditioner"
        )
        return new_updates, ScaleByDiagonalPreconditionerState(*new_fields)

    return GradientTransformation(init_fn, update_fn)


def scale_by_identity_preconditioner() -> GradientTransformation:
    r"""The identity preconditioner (Distributed Shampoo's SGD grafting rule): ``u = x``, where
    ``x`` is the ``apply_to`` extra if given (see
    [`precondition_momentum`][functional_optim.combinators.precondition_momentum]),
    else the input. Unlike [`identity`][functional_optim.identity], it honours ``apply_to``.

    Example:
      >>> tx = fo.scale_by_identity_preconditioner()
      >>> tx.update({"w": torch.ones(2)}, tx.init({"w": torch.ones(2)}), apply_to={"w": torch.zeros(2)})[0]
      {'w': tensor([0., 0.])}
    """

    def init_fn(params: Params) -> EmptyState:
        del params
        return EmptyState()

    def update_fn(updates: Updates, state: EmptyState, params: Params | None = None, **extra: Any):
        del params
        apply_to = extra.get("apply_to")
        if apply_to is None:
            return updates, state
        spec = tree.structure(updates)
        targets = tree.flatten_like(spec, apply_to, "scale_by_identity_preconditioner: apply_to")
        out = [None if g is None else x for g, x in zip(tree.leaves(updates), targets, strict=True)]
        return tree.unflatten(spec, out), state

    return GradientTransformation(init_fn, update_fn)
