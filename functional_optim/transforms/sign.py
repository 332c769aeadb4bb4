"""Sign-based directions: ``scale_by_sign`` keeps only the sign of each update entry (signSGD),
``scale_by_signum`` the sign of a moving average of the updates (Signum)."""

from __future__ import annotations

import operator
from typing import Any, NamedTuple

import torch
from torch import Tensor

from functional_optim import _validation, ops, tree
from functional_optim.core import EmptyState, GradientTransformation, Hyperparam, Params
from functional_optim.hyperparams import schedulable
from functional_optim.rules import Rule, RuleStep, Term, rule_transform, unscaled

__all__ = ["ScaleBySignumState", "scale_by_sign", "scale_by_signum"]


def _sign(x: Tensor) -> Tensor:
    if x.is_sparse:
        x = x.coalesce()  # sign(a + b) != sign(a) + sign(b): sum duplicate indices first
        return torch.sparse_coo_tensor(
            x._indices(), _sign(x._values()), x.shape, is_coalesced=True, check_invariants=False
        )
    return torch.sgn(x) if x.is_complex() else torch.sign(x)


_IS_SPARSE = operator.attrgetter("is_sparse")


def _signs(xs: list[Tensor]) -> list[Tensor]:
    """The signs of ``xs`` as new tensors (``xs`` is not written)."""
    if torch.compiler.is_compiling():
        plain = all(not x.is_sparse and not x.is_complex() for x in xs)
    else:  # C-level loops: this runs every step (per chunk of the adapters' commit)
        plain = not any(map(_IS_SPARSE, xs)) and not any(map(Tensor.is_complex, xs))
    if plain:
        return ops.sign(xs)
    return [_sign(x) for x in xs]


def scale_by_sign() -> GradientTransformation:
    r"""Replace every update entry by its sign.

    $$
    u_i = \operatorname{sign}(g_i) \in \{-1, 0, 1\}
    $$

    Complex entries map to ``z / |z|`` (``torch.sgn``; ``0`` stays ``0``). Sparse COO updates
    are coalesced first (duplicate indices summed) and stay sparse. ``None`` leaves stay
    ``None``.

    Example:
        >>> signsgd = fo.chain(fo.scale_by_sign(), fo.scale_by_learning_rate(1e-3))
        >>> g = {"w": torch.tensor([2.0, -0.5, 0.0])}
        >>> updates, _ = signsgd.update(g, signsgd.init(g))
        >>> updates["w"]
        tensor([-0.0010,  0.0010, -0.0000])

    References:
      Bernstein et al., "signSGD: Compressed Optimisation for Non-Convex Problems", ICML 2018.
      optax.scale_by_sign (DeepMind).
    """

    def init_fn(params: Params) -> EmptyState:
        del params
        return EmptyState()

    def step(grads: list[Tensor], fields: list[list[Any]], params: Any, *, in_place: bool) -> RuleStep:
        del fields, params, in_place  # stateless
        return RuleStep([], [Term(_signs(grads), None, unscaled)])  # p.add_(sign(g), alpha=-lr)

    return rule_transform(
        init_fn,
        Rule("scale_by_sign", step, lambda state: [], lambda new: EmptyState(), state_type=EmptyState),
    )


class ScaleBySignumState(NamedTuple):
    """Per-parameter state of [`scale_by_signum`][] (``momentum_buffer`` as pytorch-optimizer's
    ``SignSGD``)."""

    momentum_buffer: Any


@schedulable("momentum")
def scale_by_signum(momentum: Hyperparam = 0.9) -> GradientTransformation:
    r"""Signum's direction: the sign of an exponential moving average of the updates.

    $$
    m_t = \beta\, m_{t-1} + (1-\beta)\, g_t \quad (m_0 = 0),\qquad
    u_t = \operatorname{sign}(m_t)
    $$

    ``m_t`` is computed as ``lerp(m, g, 1 - β)`` and is not debiased (that does not change its
    sign): ``chain(ema(β), scale_by_sign())`` in one rule, so that the adapters update the
    buffer in place. Complex entries map to ``z / |z|``; sparse gradients are refused.

    Args:
      momentum: ``β`` in ``[0, 1]``.

    Example:
        >>> tx = fo.scale_by_signum(0.9)
        >>> u, state = tx.update([torch.tensor([2.0, -0.5, 0.0])], tx.init([torch.zeros(3)]))
        >>> u[0], state.momentum_buffer[0]
        (tensor([ 1., -1.,  0.]), tensor([ 0.2000, -0.0500,  0.0000]))

    References:
      Bernstein et al., "signSGD: Compressed Optimisation for Non-Convex Problems", ICML 2018.
    """
    _validation.require(lambda v: 0.0 <= v <= 1.0, momentum, f"Invalid momentum value: {momentum}")

    def init_fn(params: Params) -> ScaleBySignumState:
        return ScaleBySignumState(momentum_buffer=tree.zeros_like(params))

    def step(grads: list[Tensor], fields: list[list[Any]], params: Any, *, in_place: bool) -> RuleStep:
        del params
        (m,) = fields
        beta = ops.scalar(momentum)  # type: ignore[arg-type]  # a schedule is resolved by @schedulable
        m = ops.lerp(m, grads, 1 - beta, in_place=in_place)
        # pytorch-optimizer's SignSGD: p.add_(sign(m), alpha=-lr)
        return RuleStep([m], [Term(_signs(m), None, unscaled)])

    return rule_transform(
        init_fn,
        Rule(
            "scale_by_signum",
            step,
            lambda state: [state.momentum_buffer],
            lambda new: ScaleBySignumState(*new),
            state_type=ScaleBySignumState,
            sparse="Signum",
        ),
    )
