"""Helpers for differentiating *through* optimization: unrolled inner loops (MAML,
hyper-gradients), truncated backpropagation, and measuring what an unrolled graph keeps.

Every transform of this package is pure, so ``K`` steps of training are an ordinary
differentiable function of the initial parameters and of hyperparameters passed as 0-dim
tensors::

    def meta_loss(params, lr):
        opt = fo.adam(lr=lr)
        out = fo.unroll(opt, inner_loss, params, batches=train_batches)
        return val_loss(out.params)

    meta_grads = torch.func.grad(meta_loss, argnums=(0, 1))(params, torch.tensor(0.01))

Backpropagating through ``K`` steps keeps every step's intermediate tensors alive, so memory
grows linearly in ``K``. [`unroll`][]'s ``truncate=T`` stops gradients through the
parameters *and* the optimizer state before the last ``T`` steps (truncated backpropagation
through time): memory is ``O(T)``, the meta-gradient is the biased, short-horizon estimate
``d L / d θ_{K-T}`` chained only through the last ``T`` updates.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import torch

from functional_optim import tree
from functional_optim.core import GradientTransformation, Params, State, apply_updates

__all__ = ["SavedTensorsMeter", "UnrollResult", "stop_gradient", "unroll"]


def stop_gradient(values: Any) -> Any:
    """``values`` with every tensor leaf detached (``x.detach()``; other leaves, ``None`` and ``()``
    unchanged). Works on any pytree: parameters, gradients, or an optimizer state.

    Under ``torch.func.grad`` this cuts the dependency of the result on the transformed inputs
    exactly like ``jax.lax.stop_gradient``; with plain autograd it cuts the graph.

    Example:
        >>> w = torch.ones(2, requires_grad=True)
        >>> opt = fo.scale_by_adam()
        >>> _, state = opt.update({"w": 2 * w}, opt.init({"w": w}))
        >>> state.exp_avg["w"].requires_grad
        True
        >>> state = fo.stop_gradient(state)  # no meta-gradient through the moments any more
        >>> state.exp_avg["w"].requires_grad
        False
    """
    return tree.map(lambda x: x.detach() if isinstance(x, torch.Tensor) else x, values)


class UnrollResult(NamedTuple):
    """What [`unroll`][] returns: the trained parameters and optimizer state (both still
    differentiable w.r.t. the inputs unless truncated) and the per-step training losses
    (detached 0-dim tensors, for logging)."""

    params: Params
    state: State
    losses: list[torch.Tensor]


def unroll(
    opt: GradientTransformation,
    loss_fn: Callable[..., torch.Tensor],
    params: Params,
    state: State | None = None,
    *,
    batches: Sequence[Any] | None = None,
    steps: int | None = None,
    truncate: int | None = None,
    first_order: bool = False,
    inner_grad: str = "func",
) -> UnrollResult:
    """Run ``K`` differentiable optimization steps ``θ_{k+1} = θ_k + u_k``,
    ``(u_k, s_{k+1}) = opt.update(∇L(θ_k; b_k), s_k, θ_k)``.

    Inner gradients are taken with ``torch.func.grad``, which nests: the result can be
    differentiated with ``torch.func.grad``/``vjp`` or plain ``.backward()`` w.r.t. the initial
    ``params`` and w.r.t. any hyperparameter tensor captured by ``opt`` (second-order terms
    included unless ``first_order``).

    Args:
      opt: the optimizer (any [`GradientTransformation`][] whose update needs only
        ``(grads, state, params)``).
      loss_fn: ``loss_fn(params, batch) -> 0-dim tensor`` when ``batches`` is given, else
        ``loss_fn(params)``.
      params: initial parameters (a pytree of tensors).
      state: initial optimizer state; default ``opt.init(params)``.
      batches: one batch per step (``K = len(batches)``); a batch that is a tuple is passed
        unpacked: ``loss_fn(params, *batch)``.
      steps: ``K`` when ``batches`` is ``None`` (full-batch inner loop).
      truncate: if given (``0 <= T``), gradients flow only through the last ``T`` steps: the
        parameters and the state are passed through [`stop_gradient`][] before step
        ``K - T`` (nothing is cut if ``T >= K``). ``T = 0`` detaches the result entirely.
      first_order: detach the inner gradients (first-order MAML / FOMAML): the meta-gradient
        ignores the Hessian terms, and the graph is much smaller.
      inner_grad: ``"func"`` (default): inner gradients by ``torch.func.grad_and_value``; the
        result can be differentiated by ``torch.func`` transforms and by plain autograd.
        ``"autograd"``: ``torch.autograd.grad(..., create_graph=True)``; for plain
        ``.backward()`` only (not under ``torch.func``), and needed when saved-tensor hooks are
        active ([`SavedTensorsMeter`][]; ``torch.func.grad`` refuses them). Same numbers.

    Returns:
      [`UnrollResult`][] ``(params, state, losses)``.

    Example:
        >>> def mse(theta, x, y):
        ...     return ((x @ theta["w"] - y) ** 2).mean()
        >>> x_s, y_s, x_q, y_q = torch.randn(8, 3), torch.randn(8), torch.randn(8, 3), torch.randn(8)
        >>> theta = {"w": torch.zeros(3)}
        >>> def adapted_loss(theta, x_s, y_s, x_q, y_q):
        ...     out = fo.unroll(fo.adam(lr=0.01), mse, theta, batches=[(x_s, y_s)] * 5)
        ...     return mse(out.params, x_q, y_q)
        >>> meta_grads = torch.func.grad(adapted_loss)(theta, x_s, y_s, x_q, y_q)
        >>> meta_grads["w"].shape
        torch.Size([3])

    References:
      Finn, Abbeel & Levine, "Model-Agnostic Meta-Learning for Fast Adaptation of Deep
      Networks", ICML 2017; Maclaurin, Duvenaud & Adams, "Gradient-based Hyperparameter
      Optimization through Reversible Learning", ICML 2015; Shaban et al., "Truncated
      Back-propagation for Bilevel Optimization", AISTATS 2019.
    """
    if batches is None:
        if steps is None:
            raise ValueError("unroll: give either `batches` or `steps`")
        if not isinstance(steps, int) or isinstance(steps, bool) or steps < 0:
            raise ValueError(f"unroll: `steps` must be a non-negative int, got {steps!r}")
        batch_list: list[Any] = [()] * steps
    else:
        if steps is not None and steps != len(batches):
            raise ValueError(f"unroll: `steps`={steps} but {len(batches)} batches were given")
        batch_list = [b if isinstance(b, tuple) else (b,) for b in batches]
    if inner_grad not in ("func", "autograd"):
        raise ValueError(f"unroll: `inner_grad` must be 'func' or 'autograd', got {inner_grad!r}")
    if truncate is not None and (not isinstance(truncate, int) or isinstance(truncate, bool) or truncate < 0):
        raise ValueError(f"unroll: `truncate` must be None or a non-negative int, got {truncate!r}")
    num_steps = len(batch_list)
    cut_before = None if truncate is None or truncate >= num_steps else num_steps - truncate
    if state is None:
        state = opt.init(params)
    value_and_grad = (
        torch.func.grad_and_value(loss_fn)
        if inner_grad == "func"
        else _autograd_value_and_grad(loss_fn, first_order)
    )
    losses = []
    for k, batch in enumerate(batch_list):
        if k == cut_before:
            params, state = stop_gradient(params), stop_gradient(state)
        grads, value = value_and_grad(params, *batch)
        if first_order:
            grads = stop_gradient(grads)
        updates, state = opt.update(grads, state, params)
        params = apply_updates(params, updates)
        losses.append(value.detach())
    if cut_before == num_steps:  # truncate == 0
        params, state = stop_gradient(params), stop_gradient(state)
    return UnrollResult(params, state, losses)


def _autograd_value_and_grad(loss_fn: Callable[..., torch.Tensor], first_order: bool) -> Callable[..., Any]:
    def value_and_grad(params: Params, *batch: Any) -> tuple[Any, torch.Tensor]:
        leaves, spec = tree.flatten(params)
        leaves = [p if p is None or p.requires_grad else p.detach().requires_grad_(True) for p in leaves]
        params = tree.unflatten(spec, leaves)
        with_grad = [p for p in leaves if p is not None]
        with torch.enable_grad():  # the inner gradient is needed even under torch.no_grad()
            value = loss_fn(params, *batch)
            grads = iter(
                torch.autograd.grad(
                    value,
                    with_grad,
                    create_graph=not first_order and torch.is_grad_enabled(),
                    allow_unused=True,
                )
            )
        out = [None if p is None else next(grads) for p in leaves]
        out = [
            torch.zeros_like(p) if g is None and p is not None else g
            for g, p in zip(out, leaves, strict=True)
        ]
        return tree.unflatten(spec, out), value

    return value_and_grad


class SavedTensorsMeter:
    """Counts the bytes autograd saves for the backward pass while it is active: the memory a
    backward through the recorded computation keeps alive (the activations of every unrolled
    step), independent of the allocator, of the OS and of garbage collection timing.

    Each saved tensor's storage is counted once while at least one saved reference to it is
    alive (a parameter saved by several ops counts once); storages are un-counted when the
    graph that saved them is freed (e.g. after a ``backward``, or for the temporary graph of an
    inner ``torch.autograd.grad``). ``bytes`` is the live total when read, ``peak_bytes`` its
    maximum, ``count`` the number of saves. Tensors created outside the context but saved
    inside it (the initial parameters) count too. Only saves made inside the ``with`` block are
    seen; the meter's own bookkeeping is a small Python object per save.

    Plain autograd only: ``torch.func.grad``/``vjp`` refuse saved-tensor hooks, so measure an
    unrolled run with [`unroll`][]'s ``inner_grad="autograd"`` (the same numbers).

    Example:
        >>> w = torch.ones(100, requires_grad=True)
        >>> with fo.SavedTensorsMeter() as meter:
        ...     loss = (w.exp() * w).sum()  # exp saves its result (400 bytes)
        >>> meter.bytes >= 400
        True
    """

    def __init__(self) -> None:
        self.bytes = 0
        self.peak_bytes = 0
        self.count = 0
        self._refs: dict[tuple[Any, int], list[int]] = {}

    def _release(self, key: tuple[Any, int]) -> None:
        entry = self._refs[key]
        entry[1] -= 1
        if entry[1] == 0:
            self.bytes -= entry[0]
            del self._refs[key]

    def _pack(self, t: torch.Tensor) -> _Saved:
        base = t
        while torch._C._functorch.is_functorch_wrapped_tensor(base):
            base = torch._C._functorch.get_unwrapped(base)
        try:
            storage = base.untyped_storage()
            key = (str(base.device), storage.data_ptr())
            nbytes = storage.nbytes()
        except (RuntimeError, NotImplementedError):  # sparse / exotic tensors: count their elements
            key = (str(base.device), id(base))
            nbytes = base.numel() * base.element_size()
        self.count += 1
        entry = self._refs.get(key)
        if entry is None:
            entry = self._refs[key] = [nbytes, 0]
            self.bytes += nbytes
            self.peak_bytes = max(self.peak_bytes, self.bytes)
        entry[1] += 1
        # Keep the data only (``detach``): autograd re-attaches the saved tensor's history on
        # unpack, and holding ``t`` itself would make a reference cycle through its grad_fn for
        # tensors saved by the op that produced them (a leak Python's gc cannot see).
        holder = _Saved(t.detach())
        weakref.finalize(holder, self._release, key)
        return holder

    @staticmethod
    def _unpack(holder: _Saved) -> torch.Tensor:
        return holder.tensor

    def __enter__(self) -> SavedTensorsMeter:
        self._cm = torch.autograd.graph.saved_tensors_hooks(self._pack, self._unpack)
        self._cm.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._cm.__exit__(*exc)


class _Saved:
    """The packed form of a saved tensor: a weak-referenceable holder whose death (when autograd
    frees the graph node that saved it) un-counts the tensor."""

    __slots__ = ("__weakref__", "tensor")

    def __init__(self, tensor: torch.Tensor) -> None:
        self.tensor = tensor
