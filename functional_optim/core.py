"""The functional core: ``GradientTransformation``, ``chain``, ``identity``, ``apply_updates``.

A gradient transformation is a pair of pure functions::

    state = init(params)
    updates, new_state = update(grads, state, params=None, **extra)

``params``, ``grads`` and ``updates`` are any pytree of tensors (dict, list, tuple,
NamedTuple, nested). A ``None`` gradient leaf means "this parameter has no gradient this
step": its update is ``None`` and its state is returned untouched (``torch.optim`` skips
such parameters too). ``update`` never mutates its inputs, so it composes with
``torch.func.grad``, ``torch.func.vmap`` and ``torch.compile``.

Updates are *added* to the parameters (``apply_updates``); the sign flip of gradient
descent lives in [`fo.scale_by_learning_rate`][functional_optim.scale_by_learning_rate] only.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol

import torch

from functional_optim import _layout, _warnings, ops, tree

Params = Any
"""A pytree of tensors."""
Updates = Any
"""A pytree of tensors (or ``None`` leaves for parameters without a gradient)."""
State = Any
"""A NamedTuple, or a tuple of them for a chain."""
Schedule = Callable[[Any], Any]
"""A function ``count -> value`` (count = number of completed updates)."""
Hyperparam = float | torch.Tensor | Schedule
"""A hyperparameter: a Python number, a 0-dim tensor (hyper-gradients flow), or a schedule."""


class InitFn(Protocol):
    def __call__(self, params: Params) -> State: ...


class UpdateFn(Protocol):
    def __call__(
        self, updates: Updates, state: State, params: Params | None = None, **extra: Any
    ) -> tuple[Updates, State]: ...


class Role:
    """What a transform *is*, declared by the transform itself (typed metadata).

    The pure ``update`` never looks at it. The adapters' fused step
    (`fo.fused`) reads only roles to decide how to apply a chain in place:
    never a position in the chain, a function attribute or a name. A transform without a role
    is an opaque pure function (always correct, run as it is).
    """

    __slots__ = ()


@dataclass(frozen=True)
class LearningRate(Role):
    """``u = -lr · g`` (``flip_sign``) or ``u = lr · g``:
    [`fo.scale_by_learning_rate`][functional_optim.scale_by_learning_rate]."""

    learning_rate: Any
    flip_sign: bool


@dataclass(frozen=True)
class DecoupledWeightDecay(Role):
    """``u = g + wd · p`` meant as decoupled weight decay (AdamW, Loshchilov & Hutter): placed
    right before a `LearningRate` it is applied as ``p ← (1 - lr·wd) · p``, as
    ``torch.optim`` does."""

    weight_decay: Any


@dataclass(frozen=True)
class L2Regularization(Role):
    """``u = g + wd · p`` meant as an L2 penalty added to the gradient (``torch.optim``'s
    ``weight_decay`` of SGD, Adam, RMSprop...): always computed as that sum."""

    weight_decay: Any


@dataclass(frozen=True)
class ProximalDecay(Role):
    """``u = g / (1 + lr·wd)``: [`fo.scale_by_proximal_decay`][functional_optim.scale_by_proximal_decay].
    Between an
    `L2Regularization` and a `LearningRate` of the same ``wd`` and ``lr`` the three
    are the proximal step ``p ← (p - lr·u) / (1 + lr·wd)`` (Adan), applied as such in place."""

    learning_rate: Any
    weight_decay: Any


@dataclass(frozen=True)
class Identity(Role):
    """``u = g``: [`identity`][] (skipped where a fused step reads a chain's roles)."""


@dataclass(frozen=True)
class Chain(Role):
    """[`chain`][] of ``children``; the state is the tuple of their states, in order."""

    children: tuple[GradientTransformation, ...]


@dataclass(frozen=True)
class Combinator(Role):
    """A transform that runs ``children`` and decides what to keep (``apply_if_finite``,
    ``skip_large_updates``, ``multi_steps``, ...). ``keeps_old_state``: it may return its
    children's *old* state instead of the new one (a skipped step), so their state must never
    be written in place."""

    children: tuple[GradientTransformation, ...]
    keeps_old_state: bool


class GradientTransformation(NamedTuple):
    """A pure optimizer building block: ``init(params) -> state`` and
    ``update(grads, state, params=None, **extra) -> (updates, new_state)``.

    Extra keyword arguments (``value``, ``value_fn``, ``metric``...) are passed to every
    transform of a chain; a transform ignores the extras it does not use.

    ``role`` optionally declares what the transform is (`Role`): the learning rate, a
    weight decay, a chain, a combinator, or an algorithm's explicit update rule
    (`functional_optim.rules.Rule`). Only the adapters' fused step reads it.
    """

    init: InitFn
    update: UpdateFn
    role: Role | None = None


class EmptyState(NamedTuple):
    """State of a stateless transform."""


def identity() -> GradientTransformation:
    """The transform that returns its input unchanged: ``u = g``. It is the unit of [`chain`][]."""

    def init_fn(params: Params) -> EmptyState:
        del params
        return EmptyState()

    def update_fn(updates: Updates, state: EmptyState, params: Params | None = None, **extra: Any):
        del params, extra
        return updates, state

    return GradientTransformation(init_fn, update_fn, Identity())


def chain(*transforms: GradientTransformation) -> GradientTransformation:
    """Apply transforms one after the other: ``u = t_n(...t_2(t_1(g)))``.

    The state is the tuple of the inner states, in order. ``chain`` is associative up to the
    nesting of that tuple, and [`identity`][] is its unit.

    Example::

        opt = chain(clip_by_global_norm(1.0), scale_by_adam(), scale_by_learning_rate(1e-3))
    """
    for i, t in enumerate(transforms):
        if not isinstance(t, GradientTransformation):
            raise TypeError(
                f"chain: argument {i} is a {type(t).__name__}, not a GradientTransformation "
                "(did you forget to call the factory, e.g. scale_by_adam() ?)"
            )
    inits = tuple(t.init for t in transforms)
    updates_fns = tuple(t.update for t in transforms)

    def init_fn(params: Params) -> tuple:
        _layout.check_optimizable(params, "chain")
        return tuple(init(params) for init in inits)

    def update_fn(updates: Updates, state: tuple, params: Params | None = None, **extra: Any):
        if not isinstance(state, tuple) or len(state) != len(updates_fns):
            if isinstance(updates, tuple) and len(updates) == len(updates_fns):
                raise TypeError(
                    "chain.update(grads, state, params): the arguments look swapped (the first one "
                    "looks like the chain's state)"
                )
            size = len(state) if isinstance(state, tuple) else type(state).__name__
            raise ValueError(
                f"chain: the state has {size} entries but the chain has {len(updates_fns)} transforms"
            )
        opened = _layout.open_signature_table()  # the inner transforms reuse these checks' work
        try:
            _layout.check_gradients(updates, params, "chain")  # once per layout (cached)
            new_state = []
            for fn, s in zip(updates_fns, state, strict=True):
                updates, s = fn(updates, s, params, **extra)
                new_state.append(s)
        finally:
            if opened:
                _layout.close_signature_table()
        return updates, tuple(new_state)

    return GradientTransformation(init_fn, update_fn, Chain(tuple(transforms)))


def apply_updates(params: Params, updates: Updates) -> Params:
    """Return ``params + updates`` as a new tree (pure; the inputs are not modified).

    A ``None`` update leaves the parameter as it is (the same tensor is returned). The result
    keeps each parameter's dtype: updates are cast to it before the addition. Plain dense
    tensors are added by one ``torch._foreach_add`` (the same kernel as ``p + u``, without a
    Python call per parameter).
    """
    _warnings.warn_if_growing_graph(params, updates)
    p_leaves, spec = tree.flatten(params)
    try:
        u_leaves: list[Any] = spec.flatten_up_to(updates)
    except (ValueError, TypeError):
        return tree.map(_add_update, params, updates)  # optree's own error message
    out = list(p_leaves)
    fast_p: list[torch.Tensor] = []
    fast_u: list[torch.Tensor] = []
    fast_i: list[int] = []
    grad_mode = torch.is_grad_enabled()
    for i, (p, u) in enumerate(zip(p_leaves, u_leaves, strict=True)):
        if u is None or p is None:
            continue
        if not isinstance(u, torch.Tensor) or not isinstance(p, torch.Tensor):
            return tree.map(_add_update, params, updates)  # not tensors: the general path
        if u.dtype != p.dtype:
            u = u.to(p.dtype)
        if (
            type(p) in _PLAIN
            and type(u) in _PLAIN
            and p.layout is torch.strided
            and u.layout is torch.strided
            and p.device == u.device
            and p.shape == u.shape
            and not (grad_mode and (p.requires_grad or u.requires_grad))
        ):
            fast_p.append(p)
            fast_u.append(u)
            fast_i.append(i)
        else:
            out[i] = p + u
    if fast_p:
        if ops.use_foreach(fast_p, fast_u):
            for i, r in zip(fast_i, torch._foreach_add(fast_p, fast_u), strict=True):
                out[i] = r
        else:
            for i, p, u in zip(fast_i, fast_p, fast_u, strict=True):
                out[i] = p + u
    return tree.unflatten(spec, out)


_PLAIN = (torch.Tensor, torch.nn.Parameter)


def _add_update(p: torch.Tensor | None, u: torch.Tensor | None):
    if u is None or p is None:
        return p
    if u.dtype != p.dtype:
        u = u.to(p.dtype)
    return p + u
