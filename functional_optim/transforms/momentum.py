"""Momentum: ``trace`` (``torch.optim.SGD``'s momentum buffer) and ``ema`` (exponential moving average)."""

from __future__ import annotations

from typing import Any, NamedTuple

import torch
from torch import Tensor

from functional_optim import _validation, ops, tree
from functional_optim._leafwise import update_leaves
from functional_optim.core import GradientTransformation, Hyperparam, Params, Updates
from functional_optim.hyperparams import schedulable
from functional_optim.rules import Rule, RuleStep, Term, TorchKernel, rule_transform, unscaled
from functional_optim.transforms import _steps

__all__ = ["EmaState", "TraceState", "ema", "trace"]


class TraceState(NamedTuple):
    """Per-parameter state of [`trace`][].

    Attributes:
      momentum_buffer: the momentum buffer, as ``torch.optim.SGD``'s ``momentum_buffer``.
      started: 0-dim CPU float tensor, ``0`` until the parameter's first update, then ``1``. **Not
        part of torch's SGD state**: torch knows the first step by its buffer being absent; a pure
        transform keeps a zero-initialised buffer and this flag. Once set it is returned as it is
        (no per-step work, unlike a step counter).
    """

    momentum_buffer: Any
    started: Any


@schedulable("momentum", "dampening")
def trace(
    momentum: Hyperparam, dampening: Hyperparam = 0.0, nesterov: bool = False
) -> GradientTransformation:
    r"""Heavy-ball (or Nesterov) momentum, exactly as ``torch.optim.SGD``.

    With ``\mu`` the momentum and ``\tau`` the dampening:

    $$
    \begin{aligned}
    &b_1 = g_1 \quad\text{(first step: no dampening)},\qquad
    b_t = \mu\, b_{t-1} + (1-\tau)\, g_t \\
    &u_t = g_t + \mu\, b_t \ \text{(nesterov)},\quad\text{else } u_t = b_t
    \end{aligned}
    $$

    A momentum equal to ``0`` (e.g. a tensor hyperparameter set to 0) passes the updates through
    and leaves the state untouched, as torch skips the buffer then. Complex tensors use native
    complex arithmetic and sparse (COO) gradients give sparse buffers and updates, as torch's
    single-tensor SGD.

    Args:
      momentum: the momentum factor ``\mu`` (float, 0-dim tensor or schedule).
      dampening: the dampening ``\tau`` applied to the gradient after the first step.
      nesterov: use Nesterov momentum (Sutskever et al., 2013).

    Example::

        sgd_momentum = chain(trace(0.9), scale_by_learning_rate(0.1))

    References:
      Polyak, "Some methods of speeding up the convergence of iteration methods", 1964.
      Sutskever et al., "On the importance of initialization and momentum in deep learning", ICML 2013.
    """
    _validation.nonnegative("momentum", momentum, "momentum value")

    def init_fn(params: Params) -> TraceState:
        return TraceState(momentum_buffer=tree.zeros_like(params), started=_steps.zeros(params))

    def step(grads: list[Tensor], fields: list[list[Tensor]], _: Any, *, in_place: bool) -> RuleStep:
        mu, tau = ops.scalar(momentum), ops.scalar(dampening)
        bufs, started = fields
        if ops.is_python_number(mu) and mu == 0:  # torch keeps no buffer: pass through
            return RuleStep([bufs, started], [Term(grads, None, unscaled)])
        values = _steps.read(started)  # cached: the flags are not written once set
        if values and isinstance(values[0], float) and all(values):
            # every parameter past its first update: the common case, without list surgery
            new_bufs: list[Any] = ops.add_(ops.mul(bufs, mu, in_place=in_place), grads, alpha=1 - tau)
            new_started = list(started)
        elif values and isinstance(values[0], float):
            later = [i for i, c in enumerate(values) if c != 0]
            new_bufs = [g.clone() if c == 0 else None for g, c in zip(grads, values, strict=True)]
            new_started = [s if c != 0 else torch.ones_like(s) for s, c in zip(started, values, strict=True)]
            if later:
                moved = ops.add_(
                    ops.mul([bufs[i] for i in later], mu, in_place=in_place),
                    [grads[i] for i in later],
                    alpha=1 - tau,
                )
                for i, b in zip(later, moved, strict=True):
                    new_bufs[i] = b
        else:  # traced flags (torch.func / torch.compile): select without reading them
            moved = ops.add(ops.mul(bufs, mu), grads, alpha=1 - tau)
            new_bufs = [torch.where(c == 0, g, b) for c, g, b in zip(values, grads, moved, strict=True)]
            new_started = [torch.ones_like(s) for s in started]
        # torch.optim.SGD: p.add_(buf, alpha=-lr), or p.add_(g + μ·buf, alpha=-lr) (Nesterov)
        direction = ops.add(grads, new_bufs, alpha=mu) if nesterov else new_bufs
        return RuleStep([new_bufs, new_started], [Term(direction, None, unscaled)])

    def kernel() -> TorchKernel | None:
        mu, tau = ops.scalar(momentum), ops.scalar(dampening)
        if not ops.is_python_number(mu, tau):
            return None
        return TorchKernel("sgd", {"momentum": mu, "dampening": tau, "nesterov": nesterov})

    transform = rule_transform(
        init_fn,
        Rule(
            "trace",
            step,
            lambda st: [st.momentum_buffer, st.started],
            lambda new: TraceState(*new),
            state_type=TraceState,
            kernel=kernel,
            temporaries=nesterov,  # b ← μ·b + g in place; Nesterov's g + μ·b is a new tensor
            replayable=True,
        ),
    )

    def update_fn(updates: Updates, state: TraceState, params: Params | None = None, **extra: Any):
        mu = ops.scalar(momentum)
        if ops.is_python_number(mu) and mu == 0:  # torch keeps no buffer: pass through, state untouched
            return updates, state
        return transform.update(updates, state, params, **extra)

    return GradientTransformation(transform.init, update_fn, transform.role)


class EmaState(NamedTuple):
    """Per-parameter state of [`ema`][functional_optim.ema].

    Attributes:
      count: number of updates this parameter has received (0-dim CPU float tensor).
      ema: the (not debiased) exponential moving average of the updates.
    """

    count: Any
    ema: Any


@schedulable("decay")
def ema(decay: Hyperparam, debias: bool = False) -> GradientTransformation:
    r"""Exponential moving average of the updates (optax's ``ema``).

    $$
    e_t = \delta\, e_{t-1} + (1-\delta)\, g_t \quad (e_0 = 0),\qquad
    u_t = e_t / (1 - \delta^t)\ \text{(debias)},\quad\text{else } u_t = e_t
    $$

    ``e_t`` is computed as ``lerp(e, g, 1 - decay)`` (the form ``torch.optim`` uses for its moving
    averages) and ``t`` counts the updates each parameter has received, so a parameter whose
    gradient is ``None`` on a step is neither averaged nor advanced.

    Args:
      decay: the decay rate ``\delta`` in ``[0, 1]``.
      debias: divide by ``1 - decay^t`` (Adam-style bias correction of the zero initialisation).

    Example::

        smoothed_sgd = chain(ema(0.9, debias=True), scale_by_learning_rate(0.1))

    References:
      optax.ema (DeepMind); Kingma & Ba, "Adam", ICLR 2015 (bias correction).
    """
    _validation.require(lambda v: 0.0 <= v <= 1.0, decay, f"Invalid decay value: {decay}")

    def init_fn(params: Params) -> EmaState:
        return EmaState(count=_steps.zeros(params), ema=tree.zeros_like(params))

    def update_fn(updates: Updates, state: EmaState, params: Params | None = None, **extra: Any):
        del params, extra
        d = ops.scalar(decay)

        def ema_fn(grads: list[Tensor], fields: list[list[Tensor]], _: Any):
            counts, avgs = fields
            counts = _steps.increment(counts)
            avgs = ops.lerp(avgs, grads, 1 - d)
            out = avgs
            if debias:
                out = ops.div(avgs, _steps.coefficients(counts, lambda t: 1 - d**t))
            return out, [counts, avgs]

        new_updates, (counts, avgs) = update_leaves(ema_fn, updates, [state.count, state.ema], name="ema")
        return new_updates, EmaState(counts, avgs)

    return GradientTransformation(init_fn, update_fn)
