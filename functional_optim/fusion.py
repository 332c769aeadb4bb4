"""Fused application of a chain's last steps: the ``torch.optim`` adapters' fast path.

A chain that ends in ::

    chain(..., core, add_decayed_weights(wd), scale_by_learning_rate(lr))   # wd optional

with a concrete ``lr`` (and ``wd``) produces ``u = -lr · (core_update + wd · p)``, so that
``apply_updates`` computes ::

    p ← (1 - lr·wd) · p - lr · core_update

``torch.optim`` applies exactly this in place: ``p.mul_(1 - lr * wd)`` (decoupled weight decay)
and one ``p.add_(u, alpha=-lr)`` or, for the adaptive methods, one
``p.addcdiv_(num, den, value=-lr·c)`` that never materialises the update. The adapters
(:class:`functional_optim.adapters.FunctionalOptimizer`) do the same when :func:`fused_plan`
recognises the chain: the pure ``update`` is untouched (it still returns ``u``), the adapter runs
the chain up to ``core`` and applies the rest itself, which saves one to three passes over
memory and one update-sized allocation per step.

A core transform can take part in the fusion by describing its update as a sum of :class:`Term`
(``provide_terms``): ``scale_by_adam``'s update is ``m / denom`` divided by its bias correction,
i.e. one term ``Term(m, denom, lambda s: [s / bc1 for bc1 in ...])``, applied as
``p.addcdiv_(m, denom, value=-lr / bc1)`` -- ``torch.optim.Adam``'s own kernel and rounding.
Without terms, the core's update ``u`` is applied with ``p.add_(u, alpha=-lr)``.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import torch
from torch import Tensor

from functional_optim import ops
from functional_optim.core import GradientTransformation, chain, identity

__all__ = [
    "After",
    "FusedPlan",
    "Term",
    "apply_terms_",
    "divided",
    "fused_plan",
    "mark_weight_decay",
    "provide_terms",
    "unscaled",
]


class Term(NamedTuple):
    """One term of an update, ``u += coefficient(s) · num / den`` (``den`` may be ``None``).

    With ``num`` and ``den`` both ``None`` the term scales the parameters instead:
    ``p ← coefficient(s) · p`` (a decay term, e.g. ASGD's ``1 - λη``, applied before the terms
    that follow it).

    ``coefficient(s)`` receives the scale ``s`` of the term in the parameter update (``-lr`` for
    descent) and returns the multiplier applied to ``num / den`` (a float, or one float per
    tensor), computed the way ``torch.optim`` computes its step sizes (e.g. ``s / bc1``).
    ``num`` and ``den`` are lists of real tensors matching the parameters (complex parameters are
    seen as real views, as in ``torch.optim``).
    """

    num: list[Tensor]
    den: list[Tensor] | None
    coefficient: Callable[[float], float | list[float]]


def unscaled(step_scale: float) -> float:
    """The coefficient of a term applied with the step scale itself (``p.add_(u, alpha=-lr)``)."""
    return step_scale


def divided(divisors: Sequence[float]) -> Callable[[float], list[float]]:
    """The coefficient ``step_scale / c`` per tensor (torch's ``-lr / bias_correction``)."""
    return lambda step_scale: [step_scale / c for c in divisors]


class After(NamedTuple):
    """A callback run with the updated parameters once the terms before it are applied (e.g.
    ASGD's average of the new parameters); it writes its results into the state it returned."""

    fn: Callable[[list[Tensor]], None]


TermsFn = Callable[..., tuple[list[Term | After], Any]]
"""``terms_fn(grads, state, params) -> (terms, new_state)``: a core transform's update as terms.

Called only by the adapters, with flat lists (every gradient present, dense, no autograd), inside
the adapter's donation block (state written in place). ``new_state`` is exactly the state the
transform's ``update`` would return."""


def provide_terms(update_fn: Callable, terms_fn: TermsFn) -> None:
    """Declare that ``update_fn``'s update can be described as :class:`Term` s by ``terms_fn``."""
    update_fn._fo_terms = terms_fn  # type: ignore[attr-defined]


def mark_weight_decay(update_fn: Callable, weight_decay: Any) -> None:
    """Declare ``update_fn`` as ``u = g + weight_decay · p`` (``add_decayed_weights``)."""
    update_fn._fo_weight_decay = weight_decay  # type: ignore[attr-defined]


class FusedPlan(NamedTuple):
    """How to run a chain ``(*pre, core, [decay], lr)`` with the tail applied in place.

    Attributes:
      pre: ``chain(*pre)`` (``identity()`` when empty); its state is ``state[:n_pre]``.
      n_pre: number of transforms before ``core``.
      core: the core transform (state ``state[n_pre]``); ``None`` when the chain is only the tail.
      terms: ``core``'s :data:`TermsFn`, or ``None`` (then its update is applied with ``add_``).
      learning_rate: the learning-rate hyperparameter of the last transform (read at each step).
      weight_decay: the decoupled weight decay just before it, or ``None``.
      n_tail: 1 or 2: the stateless tail transforms whose work the adapter does itself.
    """

    pre: GradientTransformation
    n_pre: int
    core: GradientTransformation | None
    terms: TermsFn | None
    learning_rate: Any
    weight_decay: Any
    n_tail: int


_PLANS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def fused_plan(transform: GradientTransformation) -> FusedPlan | None:
    """The :class:`FusedPlan` of a chain ending in ``scale_by_learning_rate`` (descent), else ``None``.

    Cached per transform. Whether the learning rate and weight decay are concrete is decided at
    each step by :func:`concrete` (a schedule or a tensor requiring grad is not).
    """
    update = transform.update
    if update in _PLANS:
        return _PLANS[update]
    plan = _make_plan(transform)
    _PLANS[update] = plan
    return plan


def _make_plan(transform: GradientTransformation) -> FusedPlan | None:
    parts = getattr(transform.update, "_fo_chain", None)
    if not parts:
        return None
    marker = getattr(parts[-1].update, "_fo_learning_rate", None)
    if marker is None or not marker[1]:  # flip_sign=False: not a descent step
        return None
    n_tail = 1
    weight_decay = None
    if len(parts) >= 2 and hasattr(parts[-2].update, "_fo_weight_decay"):
        weight_decay = parts[-2].update._fo_weight_decay
        n_tail = 2
    n_core = len(parts) - n_tail
    if n_core == 0:
        return FusedPlan(identity(), 0, None, None, marker[0], weight_decay, n_tail)
    core = parts[n_core - 1]
    pre = chain(*parts[: n_core - 1]) if n_core > 1 else identity()
    return FusedPlan(
        pre, n_core - 1, core, getattr(core.update, "_fo_terms", None), marker[0], weight_decay, n_tail
    )


def concrete(value: Any) -> float | None:
    """A hyperparameter as a Python float if it is one (or a concrete 1-element tensor), else ``None``."""
    if isinstance(value, bool):
        return None
    if isinstance(value, float | int):
        return float(value)
    if isinstance(value, Tensor) and value.numel() == 1 and not ops.is_traced(value):
        return value.item()
    return None


def apply_terms_(
    params: Sequence[Tensor], terms: Sequence[Term | After], step_scale: float, param_scale: float
) -> None:
    """``p ← param_scale · p + Σ coefficient(step_scale) · num / den`` in place, with
    ``torch.optim``'s kernels: ``mul_``, then ``add_(num, alpha=c)`` or ``addcdiv_(num, den, c)``;
    :class:`After` callbacks run where they appear.

    ``params`` must be dense tensors that autograd does not record (the adapters' step).
    """
    params = list(params)
    p_r = ops.view_as_real(params)
    if not ops.writable(p_r):
        raise RuntimeError("apply_terms_: the parameters must be dense and autograd must not record")
    if param_scale != 1:
        ops.mul_(p_r, param_scale)  # in place (a CPU scalar goes in as one 0-dim tensor)
    for term in terms:
        if isinstance(term, After):
            term.fn(params)
            continue
        value = term.coefficient(step_scale)
        if term.num is None:
            ops.mul_(p_r, value)
        elif term.den is None:
            # a complex update goes to the complex parameter (torch's complex ``add_``, e.g.
            # SGD's), a real view of one to the parameter's real view (e.g. RMSprop's buffer)
            targets = _targets_like(params, p_r, term.num)
            if not isinstance(value, list):
                torch._foreach_add_(targets, term.num, alpha=value)
            elif len(set(value)) == 1:
                torch._foreach_add_(targets, term.num, alpha=value[0])
            else:  # ``add_(x, alpha)`` per tensor: the same fused multiply-add as torch's
                for t, x, v in zip(targets, term.num, value, strict=True):
                    t.add_(x, alpha=v)
        else:
            torch._foreach_addcdiv_(p_r, term.num, term.den, value)


def _targets_like(params: Sequence[Tensor], params_r: list[Tensor], nums: Sequence[Tensor]) -> list[Tensor]:
    """Per parameter, the tensor to add ``num`` to: the parameter itself, or its real view when
    ``num`` is the real view of a complex update."""
    if not any(map(Tensor.is_complex, params)):
        return list(params)
    return [p if n.is_complex() else r for p, r, n in zip(params, params_r, nums, strict=True)]
