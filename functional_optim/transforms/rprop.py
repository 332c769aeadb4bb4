"""``scale_by_rprop``: resilient backpropagation's sign-based, per-element step sizes."""

from __future__ import annotations

from typing import Any, NamedTuple

import torch
from torch import Tensor

from functional_optim import _validation, ops, tree
from functional_optim.core import GradientTransformation, Hyperparam, Params
from functional_optim.hyperparams import schedulable
from functional_optim.rules import Rule, RuleStep, Term, rule_transform, unscaled
from functional_optim.transforms import _steps

__all__ = ["ScaleByRpropState", "scale_by_rprop"]


class ScaleByRpropState(NamedTuple):
    """Per-parameter state of [`scale_by_rprop`][] (names and meaning as ``torch.optim.Rprop``)."""

    step: Any  # incremented but unused by the maths, as in torch
    prev: Any
    step_size: Any


def _initial_step_size(p: Tensor | None, lr: Any) -> Tensor | None:
    if p is None:
        return None
    if isinstance(lr, Tensor):
        if ops.is_traced(lr):  # keep the graph: broadcast the (real) tensor
            return (torch.zeros_like(p) + lr.to(p.real.dtype)) * (1 + 1j if p.is_complex() else 1)
        lr = lr.item()
    return torch.full_like(p, complex(lr, lr) if p.is_complex() else lr)


def _one_like(x: Tensor) -> Tensor:
    key = (x.dtype, x.device)
    one = _ONES.get(key)
    if one is None:
        one = _ONES[key] = torch.ones((), dtype=x.dtype, device=x.device)
    return one


_ONES: dict[tuple, Tensor] = {}


def _factors_and_kept(
    signs: list[Tensor],
    grads: list[Tensor],
    prev: list[Tensor],
    etaminus: Any,
    etaplus: Any,
    *,
    in_place: bool,
) -> tuple[list[Tensor], list[Tensor]]:
    """Per tensor, from ``s = sign(g · prev)``: the factors ``η+ / η- / 1`` (``s > 0`` / ``s < 0`` /
    otherwise) and the kept gradient ``where(s < 0, 0, g)``.

    The masks live for one tensor at a time. The factors overwrite ``signs`` (a temporary of the
    caller) when it is writable, and the kept gradient overwrites ``prev`` with ``in_place`` (it is
    not read any more), as ``torch.optim.Rprop`` overwrites its sign and gradient tensors: the
    step then holds one update-sized temporary, like ``torch.optim``'s foreach path."""
    write_signs = ops.writable(signs)
    write_prev = in_place and not torch.compiler.is_compiling() and ops.writable(prev, grads)
    factors, kept = [], []
    for s, g, o in zip(signs, grads, prev, strict=True):
        negative, positive = s < 0, s > 0
        kept.append(o.copy_(g).masked_fill_(negative, 0) if write_prev else g.masked_fill(negative, 0))
        if write_signs:  # every value of ``s`` is in the masks: overwrite it
            factors.append(s.fill_(1).masked_fill_(positive, etaplus).masked_fill_(negative, etaminus))
        else:
            # a 0-dim ``1`` of the tensor's dtype keeps the factors in that dtype (Python
            # scalars alone would give the default dtype)
            factors.append(torch.where(positive, etaplus, torch.where(negative, etaminus, _one_like(s))))
    return factors, kept


@schedulable("learning_rate", "etas", "step_sizes")
def scale_by_rprop(
    learning_rate: Hyperparam,
    etas: tuple[Hyperparam, Hyperparam] = (0.5, 1.2),
    step_sizes: tuple[Hyperparam, Hyperparam] = (1e-6, 50),
) -> GradientTransformation:
    r"""Rprop's full step: the sign of the gradient times a per-element adaptive step size.

    With ``s = sign(g_t · prev)``:

    $$
    \begin{aligned}
    &\eta = \eta_+ \text{ if } s > 0,\ \eta_- \text{ if } s < 0,\ 1 \text{ otherwise} \\
    &\mathrm{step\_size}_t = \mathrm{clamp}(\mathrm{step\_size}_{t-1} \cdot \eta,\ \min,\ \max) \\
    &g'_t = 0 \text{ where } s < 0 \text{ else } g_t,\qquad
    u_t = \mathrm{sign}(g'_t) \cdot \mathrm{step\_size}_t,\qquad \mathrm{prev} = g'_t
    \end{aligned}
    $$

    ``u`` is the whole step (the learning rate is already inside ``step_size``), so the
    descent sign comes from ``scale_by_learning_rate(1.0)``:
    ``chain(scale_by_rprop(lr), scale_by_learning_rate(1.0))`` is ``torch.optim.Rprop``,
    bit for bit. ``step_size`` is seeded with ``learning_rate`` at ``init`` (``complex(lr, lr)``
    for complex parameters) and ``learning_rate`` is never read again: as in torch, later changes
    of the learning rate (or a schedule) do not affect Rprop. Complex tensors are treated as
    real tensors of shape ``(..., 2)``.

    Args:
      learning_rate: the initial step size.
      etas: ``(η-, η+)``, the multiplicative decrease and increase factors, ``0 < η- < 1 < η+``.
      step_sizes: ``(min, max)`` allowed step sizes.

    Example::

        opt = fo.chain(fo.scale_by_rprop(1e-2), fo.scale_by_learning_rate(1.0))

    References:
      Riedmiller & Braun, "A Direct Adaptive Method for Faster Backpropagation Learning: The RPROP
      Algorithm", ICNN 1993.
    """
    _validation.learning_rate(learning_rate)
    if not isinstance(etas, tuple | list) or len(etas) != 2:
        raise ValueError(f"etas must be a pair (etaminus, etaplus), got {etas!r}")
    if not isinstance(step_sizes, tuple | list) or len(step_sizes) != 2:
        raise ValueError(f"step_sizes must be a pair (min, max), got {step_sizes!r}")
    em, ep = (_validation.value_of(e) for e in etas)
    if em is not None and ep is not None and not 0.0 < em < 1.0 < ep:
        raise ValueError(f"Invalid eta values: {etas[0]}, {etas[1]}")

    def init_fn(params: Params) -> ScaleByRpropState:
        return ScaleByRpropState(
            step=_steps.zeros(params),
            prev=tree.zeros_like(params),
            step_size=tree.map(lambda p: _initial_step_size(p, learning_rate), params),
        )

    def step(grads: list[Tensor], fields: list[list[Tensor]], _: Any, *, in_place: bool) -> RuleStep:
        etaminus, etaplus = ops.scalar(etas[0]), ops.scalar(etas[1])
        smin, smax = ops.scalar(step_sizes[0]), ops.scalar(step_sizes[1])
        for g in grads:
            if g.is_sparse:
                raise RuntimeError("Rprop does not support sparse gradients")
        steps, prev, size = _steps.increment(fields[0], in_place=in_place), fields[1], fields[2]
        g_r, prev_r, size_r = ops.view_as_real(grads), ops.view_as_real(prev), ops.view_as_real(size)
        signs = ops.sign_(ops.mul(g_r, prev_r))
        # torch: ``g[sign == etaminus] = 0``, kept as the next step's previous gradient
        factors, kept = _factors_and_kept(signs, g_r, prev_r, etaminus, etaplus, in_place=in_place)
        del signs  # the factors are the same tensors when written in place
        size_r = ops.clamp_(ops.mul(size_r, factors, in_place=in_place), smin, smax)
        del factors  # freed before the update's temporary is allocated
        u = ops.mul_(ops.sign(kept), size_r)
        new_fields = [
            steps,
            ops.view_as_complex_like(kept, prev),
            ops.view_as_complex_like(size_r, size),
        ]
        # torch.optim.Rprop: p.addcmul_(g.sign(), step_size, value=-1): here u = sign(g)·size
        return RuleStep(new_fields, [Term(u, None, unscaled)])

    return rule_transform(
        init_fn,
        Rule(
            "scale_by_rprop",
            step,
            lambda st: [st.step, st.prev, st.step_size],
            lambda new: ScaleByRpropState(*new),
            state_type=ScaleByRpropState,
            sparse="Rprop",
        ),
    )
