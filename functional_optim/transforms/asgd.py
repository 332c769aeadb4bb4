"""``scale_by_asgd``: averaged SGD's decaying step size, decay term and parameter average."""

from __future__ import annotations

from typing import Any, NamedTuple, overload

import torch
from torch import Tensor

from functional_optim import _validation, ops, tree
from functional_optim.core import GradientTransformation, Hyperparam, Params
from functional_optim.hyperparams import schedulable
from functional_optim.rules import After, Rule, RuleStep, Term, rule_transform
from functional_optim.transforms import _steps

__all__ = ["ScaleByAsgdState", "scale_by_asgd"]


class ScaleByAsgdState(NamedTuple):
    """Per-parameter state of [`scale_by_asgd`][] (names, dtypes and devices as ``torch.optim.ASGD``).

    ``step``, ``eta`` and ``mu`` are 0-dim tensors on the parameter's device (``step``'s dtype
    is torch's scalar dtype); ``ax`` is the running average of the parameter. When a
    hyperparameter is a tensor that gradients flow through (``torch.func``, ``requires_grad``),
    ``eta`` and ``mu`` take its precision if higher (e.g. float64), so hyper-gradients are exact.
    """

    step: Any
    eta: Any
    mu: Any
    ax: Any


@overload
def _scalar_like(p: Tensor, value: Any, dtype: torch.dtype | None = None) -> Tensor: ...
@overload
def _scalar_like(p: None, value: Any, dtype: torch.dtype | None = None) -> None: ...
def _scalar_like(p: Tensor | None, value: Any, dtype: torch.dtype | None = None) -> Tensor | None:
    if p is None:
        return None
    dtype = _steps.scalar_dtype() if dtype is None else dtype
    if isinstance(value, Tensor):
        value = value.to(device=p.device, dtype=dtype)
        return value if ops.is_traced(value) else value.detach().clone()
    return torch.tensor(value, dtype=dtype, device=p.device)


def _state_dtype(*hyperparams: Any) -> torch.dtype:
    """The dtype of ``eta``/``mu``: torch's scalar dtype (float32 by default), as ``torch.optim.ASGD``;
    promoted to the dtype of the hyperparameters that gradients flow through (traced tensors), so
    that hyper-gradients are those of the step size in the hyperparameter's precision, not of a
    float32-rounded one (whose float64 finite differences would be noise)."""
    dtype = _steps.scalar_dtype()
    for h in hyperparams:
        if isinstance(h, Tensor) and ops.is_traced(h):
            dtype = torch.promote_types(dtype, h.dtype)
    return dtype


def _average(
    ax: list[Tensor], new_p: list[Tensor], mu_values: list[Any], mus: list[Tensor], *, in_place: bool
) -> list[Tensor]:
    """``ax ← p'`` while ``μ = 1``, else ``ax + μ·(p' - ax)`` (torch's ``ax.add_(p.sub(ax).mul_(mu))``);
    written into ``ax`` with ``in_place``."""
    if all(isinstance(m, float) and m == 1 for m in mu_values):
        return ops.assign(ax, new_p, in_place=in_place)
    weights = [m if isinstance(m, float) else mt for m, mt in zip(mu_values, mus, strict=True)]
    if in_place and ops.writable(ax, new_p, mus):
        # torch.optim.ASGD's ops, one tensor at a time: one temporary, freed before the next
        for a, q, w in zip(ax, new_p, weights, strict=True):
            a.add_(q.sub(a).mul_(w))
        return list(ax)
    out = [a + (q - a) * w for q, a, w in zip(new_p, ax, weights, strict=True)]
    return ops.assign(ax, out, in_place=in_place)


def _store(olds: list[Tensor], values: list[Any], dtype: torch.dtype, *, in_place: bool) -> list[Tensor]:
    """0-dim tensors holding ``values`` (like ``olds``): written into ``olds`` with ``in_place``
    when the values are Python numbers, else new tensors."""
    if (
        in_place
        and values
        and all(isinstance(v, float) for v in values)
        and all(o.dtype is dtype for o in olds)
        and ops.writable(olds)
    ):
        for old, value in zip(olds, values, strict=True):
            old.fill_(value)  # the double rounded to ``dtype``: exactly torch.tensor(v, dtype)
        return list(olds)
    return [_scalar_like(o, v, dtype) for o, v in zip(olds, values, strict=True)]


@schedulable("lr", "lambd", "alpha", "t0")
def scale_by_asgd(
    lr: Hyperparam = 1e-2, lambd: Hyperparam = 1e-4, alpha: Hyperparam = 0.75, t0: Hyperparam = 1e6
) -> GradientTransformation:
    r"""Averaged SGD's full descent step, with its per-parameter step size and average.

    With ``η`` the step size stored at the previous step (initially ``lr``), ``μ`` the
    averaging weight (initially 1) and ``t`` the step count after increment:

    $$
    \begin{aligned}
    &p' = p\,(1 - \lambda\eta) - \eta\, g,\qquad u = p - p' \\
    &ax \leftarrow p' \text{ if } \mu = 1 \text{, else } ax + \mu\,(p' - ax) \\
    &\eta \leftarrow \frac{\mathrm{lr}}{(1 + \lambda\,\mathrm{lr}\,t)^{\alpha}},\qquad
    \mu \leftarrow \frac{1}{\max(1,\ t - t_0)}
    \end{aligned}
    $$

    ``u`` is the whole descent step (the learning rate is inside ``η``), so
    ``chain(scale_by_asgd(lr, ...), scale_by_learning_rate(1.0))`` is ``torch.optim.ASGD``: the
    new parameter ``p'`` is computed with torch's for-loop op order (``p·(1-λη)`` then
    ``- η·g``, with ``η`` read from the 0-dim float tensor as torch does), the average ``ax`` is
    updated from that new parameter, and ``η``/``μ`` are computed in Python double and stored in
    0-dim tensors of torch's scalar dtype on the parameter's device. ``p + u`` equals ``p'``
    up to the rounding of ``p' - p`` (exact whenever ``p'`` is within a factor 2 of ``p``).
    Needs ``params``. Complex tensors are treated as real tensors of shape ``(..., 2)``.

    Args:
      lr: the initial step size (also the numerator of the step-size decay).
      lambd: decay term.
      alpha: power of the step-size decay.
      t0: step at which averaging starts.

    Example::

        opt = fo.chain(fo.scale_by_asgd(1e-2, t0=100), fo.scale_by_learning_rate(1.0))

    References:
      Polyak & Juditsky, "Acceleration of Stochastic Approximation by Averaging", SIAM J. Control
      Optim. 30(4), 1992.
    """
    _validation.learning_rate(lr)

    def init_fn(params: Params) -> ScaleByAsgdState:
        lr0 = ops.scalar(lr)
        dtype = _state_dtype(lr0)
        return ScaleByAsgdState(
            step=tree.map(lambda p: _scalar_like(p, 0.0), params),
            eta=tree.map(lambda p: _scalar_like(p, lr0, dtype), params),
            mu=tree.map(lambda p: _scalar_like(p, 1.0, dtype), params),
            ax=tree.zeros_like(params),
        )

    def hyperparams() -> tuple[Any, Any, Any, Any, torch.dtype]:
        lr_, lambd_, alpha_, t0_ = ops.scalar(lr), ops.scalar(lambd), ops.scalar(alpha), ops.scalar(t0)
        return lr_, lambd_, alpha_, t0_, _state_dtype(lr_, lambd_, alpha_, t0_)

    def next_schedule(
        steps: list[Tensor], etas: list[Tensor], mus: list[Tensor], values: tuple, *, in_place: bool
    ) -> tuple[list, list]:
        """The new ``eta`` and ``mu`` tensors (``values``: `hyperparams`)."""
        lr_, lambd_, alpha_, t0_, dtype = values

        def eta_fn(t: Any) -> Any:
            return lr_ / ((1 + lambd_ * lr_ * t) ** alpha_)

        def mu_fn(t: Any) -> Any:
            return 1 / max(1, t - t0_) if isinstance(t, float) else 1 / torch.clamp(t - t0_, min=1)

        return (
            _store(etas, _steps.coefficients(steps, eta_fn), dtype, in_place=in_place),
            _store(mus, _steps.coefficients(steps, mu_fn), dtype, in_place=in_place),
        )

    def step(grads: list[Tensor], fields: list[list[Tensor]], ps: Any, *, in_place: bool) -> RuleStep:
        # torch.optim.ASGD: p.mul_(1 - λη); p.add_(g, alpha=-η); then the average of the new
        # parameters, and the next η, μ (``1 + s·λη`` and ``s·η`` with s = -lr = -1)
        values = hyperparams()
        lambd_ = values[1]
        steps, etas, mus, ax = fields
        eta_v, mu_v = ops.step_values(etas), ops.step_values(mus)
        p_r = ops.view_as_real(ps)
        # traced: float64 0-dim tensors, cast to each parameter's dtype (foreach needs it)
        eta_v = [e if isinstance(e, float) else e.to(q.dtype) for e, q in zip(eta_v, p_r, strict=True)]
        steps = _steps.increment(steps, in_place=in_place)
        new_ax = list(ax)  # filled with the new averages once the parameters are updated

        def average(new_params: list[Tensor]) -> None:
            avg = _average(ops.view_as_real(ax), new_params, mu_v, mus, in_place=in_place)
            new_ax[:] = ops.view_as_complex_like(avg, ax)

        new_eta, new_mu = next_schedule(steps, etas, mus, values, in_place=in_place)
        terms: list[Term | After] = [
            Term(None, None, lambda s: [1 + s * (lambd_ * e) for e in eta_v]),
            Term(ops.view_as_real(grads), None, lambda s: [s * e for e in eta_v]),
            After(average),
        ]
        return RuleStep([steps, new_eta, new_mu, new_ax], terms)

    return rule_transform(
        init_fn,
        Rule(
            "scale_by_asgd",
            step,
            lambda st: [st.step, st.eta, st.mu, st.ax],
            lambda new: ScaleByAsgdState(*new),
            needs_params=True,
            state_type=ScaleByAsgdState,
            sparse="ASGD",
            # p.mul_, p.add_, ax.copy_ (or ax.add_(p.sub(ax).mul_(μ)), one tensor at a time): no
            # chunk-wide temporaries, so 4 MB chunks (32 × 512²: 1.00-1.02x torch's for-loop
            # against 1.13-1.22x in 1 MB chunks, interleaved)
            temporaries=False,
            replayable=True,
        ),
    )
