r"""Pure running averages of parameters (SWA, EMA) and the ``with_average`` wrapper transform.

An [`Averager`][] is a pair of pure functions, usable beside any optimizer
(a functional transform, a ``torch.optim`` optimizer, or a hand-written loop)::

    avg = fo.averaging.ema(0.999)
    avg_state = avg.init(params)                  # the average starts as a copy of params
    for batch in loader:
        ...                                       # any optimizer step producing new params
        avg_state = avg.update(params, avg_state) # fold the new params into the average
    averaged = fo.averaging.averaged_params(avg_state)

Every averager folds the parameters in as ``avg <- avg + w_n (p - avg)`` where ``n`` is the
number of parameter sets already averaged (``state.n_averaged``, torch's name). The first
averaged update copies (``w_0 = 1``), exactly as ``torch.optim.swa_utils.AveragedModel``. With
``decay=d``:

=====================================  =============================================
averager                               ``w_n`` for ``n >= 1``
=====================================  =============================================
``swa()``                              ``1/(n+1)`` (equal weights)
``ema(d)``                             ``1-d``
``ema(d, warmup=True)``                ``1-d_n`` with ``d_n = min(d, (1+n)/(10+n))``
``ema(d, debias=True)``                ``(1-d_n)/(1-\prod_{k=0}^{n} d_k)``
=====================================  =============================================

``debias=True`` gives the Adam-style bias-corrected average: it equals the zero-initialised
EMA ``e_t = d e_{t-1} + (1-d) p_t`` divided by ``1 - d^t`` (``t = n+1`` parameter sets), i.e. a
normalised exponentially weighted average in which the first parameters do not keep the
excess weight ``d^{t-1}``. ``warmup=True`` is TensorFlow's ``ExponentialMovingAverage``
``num_updates`` rule: a small effective decay early (``2/11`` at the second average) that
grows to ``d``; the two options combine.

The average is not differentiated through (the parameters are detached, as in torch's
``AveragedModel``); ``update`` never mutates its inputs.

To evaluate with the averaged parameters, pass them to ``torch.func.functional_call`` (names
not given, e.g. BatchNorm buffers, are taken from the module)::

    logits = torch.func.functional_call(model, fo.averaging.averaged_params(avg_state), (x,))

or load them into a copy of the model (``copy.deepcopy(model).load_state_dict(averaged,
strict=False)``) and refresh its BatchNorm statistics with [`update_bn`][].

References:
  Izmailov et al., "Averaging Weights Leads to Wider Optima and Better Generalization", UAI 2018.
  Polyak & Juditsky, "Acceleration of Stochastic Approximation by Averaging", SIAM J. Control 1992.
  Kingma & Ba, "Adam", ICLR 2015 (bias correction); TensorFlow ``tf.train.ExponentialMovingAverage``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple, cast

import torch
from torch import Tensor

from functional_optim import ops, tree
from functional_optim.averaging import _maths
from functional_optim.core import GradientTransformation, Params, Updates, apply_updates

__all__ = [
    "AverageState",
    "Averager",
    "WithAverageState",
    "averaged_params",
    "ema",
    "swa",
    "with_average",
]


class AverageState(NamedTuple):
    """State of an [`Averager`][].

    Attributes:
      count: number of ``update`` calls so far (0-dim int64 tensor).
      n_averaged: number of parameter sets folded into the average (0-dim int64 tensor; the name
        of ``AveragedModel``'s buffer). ``0`` means ``average`` still holds the initial copy.
      decay_product: ``ema(debias=True)`` only, the product of the decays used so far
        (0-dim float64 tensor); ``()`` otherwise (an empty node, so ``vmap`` accepts the state).
      average: the running average, a tree with the structure of the parameters.
    """

    count: Tensor  # type: ignore[assignment]  # a field named like tuple.count
    n_averaged: Tensor
    decay_product: Tensor | tuple[()]
    average: Params


class Averager(NamedTuple):
    """A running average of parameters as two pure functions.

    ``init(params) -> AverageState`` and ``update(params, state) -> AverageState``; read the
    average with [`averaged_params`][].
    """

    init: Callable[[Params], AverageState]
    update: Callable[[Params, AverageState], AverageState]


# ----------------------------------------------------------------------------- plumbing


def _init(params: Params, dtype: torch.dtype | None, debias: bool) -> AverageState:
    def start(p: Tensor | None) -> Tensor | None:
        if p is None:
            return None
        p = p.detach()
        to = dtype if dtype is not None and _maths.is_float(p) else p.dtype
        return p.to(to, copy=True)

    zero = torch.zeros((), dtype=torch.int64)
    product = torch.ones((), dtype=torch.float64) if debias else ()
    return AverageState(zero, zero.clone(), product, tree.map(start, params))


def _fold(
    name: str,
    params: Params,
    state: AverageState,
    combine: Callable[[list[Tensor], list[Tensor]], list[Tensor]],
) -> Params:
    """Apply ``combine(avg_leaves, current_leaves) -> new_avg_leaves`` over the tree."""
    avg_leaves, spec = tree.flatten(state.average)
    cur_leaves = tree.flatten_like(spec, params, f"{name}: params")
    present = [i for i, a in enumerate(avg_leaves) if a is not None]
    avg, cur = [], []
    names = None
    for i in present:
        a, p = avg_leaves[i], cur_leaves[i]
        if p is None or p.shape != a.shape:
            names = names or tree.leaf_names(spec)
            got = None if p is None else tuple(p.shape)
            raise ValueError(
                f"{name}: params leaf '{names[i]}' has shape {got} but its average has shape {tuple(a.shape)}"
            )
        p = p.detach()
        if p.device != a.device or (p.dtype != a.dtype and _maths.is_float(a)):
            p = p.to(a.device, a.dtype if _maths.is_float(a) else p.dtype)
        avg.append(a)
        cur.append(p)
    new = combine(avg, cur) if avg else []
    out = list(avg_leaves)
    for i, v in zip(present, new, strict=True):
        out[i] = v
    return tree.unflatten(spec, out)


def _copy(avg: list[Tensor], cur: list[Tensor]) -> list[Tensor]:
    return _maths.copy(cur, avg)


def _check_int(name: str, value: Any, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")


def _check_decay(decay: Any) -> None:
    if callable(decay) and not isinstance(decay, Tensor):
        raise ValueError("decay must be a float or a 0-dim tensor in [0, 1], not a callable")
    if isinstance(decay, Tensor) and decay.numel() != 1:
        raise ValueError("decay must be a float or a 0-dim tensor in [0, 1]")
    value = ops.scalar(decay) if isinstance(decay, Tensor) else decay
    if isinstance(value, float | int) and not 0.0 <= value <= 1.0:
        raise ValueError(f"Invalid decay value {decay} provided. Please provide a value in [0,1] range.")


def _traced(*xs: Any) -> bool:
    return any(ops.is_traced(x) for x in xs) or torch.compiler.is_compiling()


# ----------------------------------------------------------------------------- averagers


def swa(start_step: int = 0, period: int = 1, *, dtype: torch.dtype | None = None) -> Averager:
    r"""Stochastic weight averaging: the equal-weight running mean of the parameters.

    The ``k``-th call of ``update`` (``k = state.count``, starting at 0) is averaged when
    ``k >= start_step`` and ``(k - start_step) % period == 0``; other calls only count. With
    ``n`` parameter sets already averaged:

    $$
    \bar w \leftarrow p \ (n = 0), \qquad \bar w \leftarrow \bar w + \frac{p - \bar w}{n+1}\ (n \ge 1)
    $$

    so after ``N`` averaged calls ``\bar w = \frac1N\sum_i p_i``. The arithmetic is exactly
    ``AveragedModel``'s default: ``avg + (p - avg)/(n+1)`` on the CPU, ``lerp(avg, p, 1/(n+1))``
    on devices with foreach kernels. Pair it with a constant or cyclic learning rate such as
    ``fo.schedules.swa_lr`` (``torch.optim.swa_utils.SWALR``) and refresh BatchNorm statistics
    with [`update_bn`][] before evaluating.

    Args:
      start_step: index of the first ``update`` call that is averaged.
      period: average every ``period``-th call from ``start_step`` on (e.g. once per epoch).
      dtype: dtype of the stored average for floating-point leaves (e.g. ``torch.float32`` for
        bf16 parameters); default: each parameter's dtype.

    Example:
        >>> params = {"w": torch.zeros(2)}
        >>> avg = fo.averaging.swa(start_step=0, period=1)  # average after every step
        >>> avg_state = avg.init(params)
        >>> for value in (1.0, 2.0, 3.0):  # the parameters after three optimizer steps
        ...     avg_state = avg.update({"w": torch.full((2,), value)}, avg_state)
        >>> fo.averaging.averaged_params(avg_state)["w"]  # (1 + 2 + 3) / 3
        tensor([2., 2.])

    References:
      Izmailov et al., "Averaging Weights Leads to Wider Optima and Better Generalization", UAI 2018.
    """
    _check_int("start_step", start_step, 0)
    _check_int("period", period, 1)

    def init_fn(params: Params) -> AverageState:
        return _init(params, dtype, debias=False)

    def update_fn(params: Params, state: AverageState) -> AverageState:
        count, n = state.count, state.n_averaged
        if not _traced(count, n):
            k, n_int = int(count.item()), int(n.item())
            if k < start_step or (k - start_step) % period != 0:
                return state._replace(count=count + 1)
            if n_int == 0:
                average = _fold("swa", params, state, _copy)
            else:
                average = _fold("swa", params, state, lambda a, c: _maths.swa_default(a, c, n))
            return AverageState(count + 1, n + 1, (), average)
        take = (count >= start_step) & ((count - start_step) % period == 0)
        weight = take.to(torch.float64) / (n + 1).to(torch.float64)
        average = _fold("swa", params, state, lambda a, c: _maths.weighted(a, c, weight))
        return AverageState(count + 1, n + take.to(n.dtype), (), average)

    return Averager(init_fn, update_fn)


def ema(
    decay: float | Tensor = 0.999,
    *,
    debias: bool = False,
    warmup: bool = False,
    dtype: torch.dtype | None = None,
) -> Averager:
    r"""Exponential moving average of the parameters (Polyak averaging with exponential weights).

    With ``n`` parameter sets already averaged and ``d_n`` the decay of this update:

    $$
    \begin{aligned}
    &\bar w \leftarrow p\ (n = 0), \qquad \bar w \leftarrow \bar w + w_n (p - \bar w)\ (n \ge 1), \\
    &d_n = \min\!\big(d, \tfrac{1+n}{10+n}\big)\ \text{if warmup else}\ d, \qquad
    w_n = \frac{1-d_n}{1-\prod_{k=0}^{n} d_k}\ \text{if debias else}\ 1-d_n.
    \end{aligned}
    $$

    Without ``warmup``/``debias`` this is ``AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(d))``
    to the last bit (``lerp(avg, p, 1-d)``). ``debias`` gives Adam's bias correction: the result
    equals the zero-initialised EMA divided by ``1-d^t`` with ``t = n+1``.

    Args:
      decay: the decay ``d`` in ``[0, 1]`` (float or 0-dim tensor).
      debias: normalise the weights (Adam-style ``1-d^t`` bias correction).
      warmup: use ``d_n = min(d, (1+n)/(10+n))`` (TensorFlow's ``num_updates`` warmup).
      dtype: dtype of the stored average for floating-point leaves (default: the parameter's).

    Example:
        >>> params = {"w": torch.zeros(2)}
        >>> avg = fo.averaging.ema(0.5)
        >>> avg_state = avg.init(params)
        >>> avg_state = avg.update({"w": torch.ones(2)}, avg_state)  # after each optimizer step
        >>> avg_state = avg.update({"w": torch.ones(2)}, avg_state)
        >>> fo.averaging.averaged_params(avg_state)["w"]
        tensor([1., 1.])

    References:
      Polyak & Juditsky (1992); Kingma & Ba, "Adam", ICLR 2015 (bias correction);
      TensorFlow ``tf.train.ExponentialMovingAverage`` (``num_updates``).
    """
    _check_decay(decay)

    def init_fn(params: Params) -> AverageState:
        return _init(params, dtype, debias)

    def update_fn(params: Params, state: AverageState) -> AverageState:
        count, n = state.count, state.n_averaged
        d = ops.scalar(decay)
        if not _traced(count, n, d, state.decay_product):
            n_int = int(n.item())
            d_n = min(d, (1 + n_int) / (10 + n_int)) if warmup else d
            product: Any = ()
            if debias:
                prod = cast(Tensor, state.decay_product).item() * d_n
                product = torch.tensor(prod, dtype=torch.float64)
            if n_int == 0:
                average = _fold("ema", params, state, _copy)
            elif debias:
                weight = (1 - d_n) / (1 - prod)
                average = _fold("ema", params, state, lambda a, c: _maths.weighted(a, c, weight))
            else:
                average = _fold("ema", params, state, lambda a, c: _maths.ema_lerp(a, c, d_n))
            return AverageState(count + 1, n + 1, product, average)
        nf = n.to(torch.float64)
        d_t = torch.as_tensor(d, dtype=torch.float64)
        d_n = torch.minimum(d_t, (1 + nf) / (10 + nf)) if warmup else d_t
        product = ()
        if debias:
            product = state.decay_product * d_n
            weight = (1 - d_n) / (1 - product)
        else:
            weight = 1 - d_n
        weight = torch.where(n == 0, torch.ones_like(weight), weight)
        average = _fold("ema", params, state, lambda a, c: _maths.weighted(a, c, weight))
        return AverageState(count + 1, n + 1, product, average)

    return Averager(init_fn, update_fn)


# ----------------------------------------------------------------------------- inside an optimizer


class WithAverageState(NamedTuple):
    """State of [`with_average`][]: the wrapped transform's state and the averager's state."""

    inner_state: Any
    average_state: AverageState


def with_average(transform: GradientTransformation, averager: Averager) -> GradientTransformation:
    r"""Keep a running average of the parameters inside the optimizer state.

    ``update(grads, state, params)`` runs ``transform`` unchanged and then folds the *new*
    parameters ``params + updates`` into the average: the averaged parameters track exactly
    what ``apply_updates`` produces, without a second call in the training loop. The updates are
    returned untouched, so the wrapped optimizer's trajectory is unchanged.

    $$
    u_t, s_t = \text{transform}(g_t, s_{t-1}, p_{t-1}), \qquad
    \bar s_t = \text{averager.update}(p_{t-1} + u_t, \bar s_{t-1})
    $$

    Args:
      transform: any gradient transformation (an optimizer alias, a chain...).
      averager: [`swa`][], [`ema`][] or any [`Averager`][].

    Example:
        >>> params = {"w": torch.ones(3)}
        >>> opt = fo.averaging.with_average(fo.adam(1e-3), fo.averaging.ema(0.999))
        >>> state = opt.init(params)
        >>> updates, state = opt.update({"w": torch.ones(3)}, state, params)
        >>> params = fo.apply_updates(params, updates)
        >>> eval_params = fo.averaging.averaged_params(state)
        >>> sorted(eval_params)
        ['w']

    Through the drop-in adapter the average of each parameter is a per-parameter state entry::

        opt = fo.adapters.FunctionalOptimizer(model.parameters(), with_average(fo.sgd(0.1), ema(0.999)))
        ...
        opt.state[p]["average"]
    """
    if not isinstance(transform, GradientTransformation):
        raise ValueError(f"transform must be a GradientTransformation, got {type(transform).__name__}")
    if not isinstance(averager, Averager):
        raise ValueError(
            f"averager must be an Averager (fo.averaging.swa(), fo.averaging.ema(...)), "
            f"got {type(averager).__name__}"
        )

    def init_fn(params: Params) -> WithAverageState:
        return WithAverageState(transform.init(params), averager.init(params))

    def update_fn(updates: Updates, state: WithAverageState, params: Params | None = None, **extra: Any):
        if params is None:
            raise ValueError("with_average needs the parameters: call update(grads, state, params)")
        updates, inner = transform.update(updates, state.inner_state, params, **extra)
        average_state = averager.update(apply_updates(params, updates), state.average_state)
        return updates, WithAverageState(inner, average_state)

    return GradientTransformation(init_fn, update_fn)


def _find_average_states(node: Any, found: list[AverageState]) -> None:
    if isinstance(node, AverageState):
        found.append(node)
    elif isinstance(node, tuple | list):
        for child in node:
            _find_average_states(child, found)
    elif isinstance(node, dict):
        for child in node.values():
            _find_average_states(child, found)


def averaged_params(state: Any) -> Params:
    """The averaged parameters held by ``state``.

    ``state`` may be an [`AverageState`][] or any optimizer state containing exactly one
    (the state of [`with_average`][], possibly inside a chain or ``inject_hyperparams``).
    Before any parameter set was averaged this is the copy taken by ``init``.

    Evaluate a module with them through ``torch.func.functional_call(model, averaged, (x,))``.
    """
    found: list[AverageState] = []
    _find_average_states(state, found)
    if not found:
        raise ValueError("averaged_params: state holds no AverageState (use fo.averaging.with_average)")
    if len(found) > 1:
        raise ValueError(
            f"averaged_params: state holds {len(found)} AverageStates; pass the one you want "
            "(e.g. state[i].average_state)"
        )
    return found[0].average
