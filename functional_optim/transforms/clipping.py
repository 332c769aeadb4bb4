"""Clipping: ``clip`` (elementwise) and ``clip_by_global_norm`` (whole-tree rescaling)."""

from __future__ import annotations

from typing import Any, cast

import torch
from torch import Tensor

from functional_optim import _validation, ops, tree
from functional_optim._leafwise import update_leaves
from functional_optim.core import EmptyState, GradientTransformation, Hyperparam, Params, Updates
from functional_optim.hyperparams import schedulable

__all__ = ["clip", "clip_by_global_norm"]


def _sparse_map_values(x: Tensor, fn: Any) -> Tensor:
    """Apply a zero-preserving elementwise ``fn`` to a sparse COO tensor's (coalesced) values."""
    x = x.coalesce()
    return torch.sparse_coo_tensor(
        x._indices(), fn(x._values()), x.shape, is_coalesced=True, check_invariants=False
    )


@schedulable("max_delta")
def clip(max_delta: Hyperparam) -> GradientTransformation:
    r"""Clip every update elementwise to ``[-max_delta, max_delta]``.

    $$
    u_i = \min(\max(g_i, -\delta), \delta)
    $$

    Sparse COO updates are coalesced (duplicate indices summed) and their values clipped;
    zeros stay zeros, so the result stays sparse. Complex updates are clipped on their real
    view (real and imaginary parts separately), as ``torch.optim`` treats complex tensors.

    Args:
      max_delta: the largest absolute value an update entry may have (``>= 0``); a float, a
        0-dim tensor or a schedule.

    Example::

        opt = fo.chain(fo.clip(1.0), fo.scale_by_learning_rate(0.1))

    References:
      optax.clip (DeepMind).
    """
    _validation.nonnegative("max_delta", max_delta)

    def init_fn(params: Params) -> EmptyState:
        del params
        return EmptyState()

    def update_fn(updates: Updates, state: EmptyState, params: Params | None = None, **extra: Any):
        del params, extra
        delta = ops.scalar(max_delta)

        def clip_leaves(grads: list[Tensor], fields: list, _: Any):
            del fields
            out: list[Tensor] = [None] * len(grads)  # type: ignore[list-item]
            dense = [i for i, g in enumerate(grads) if not g.is_sparse]
            for i, g in enumerate(grads):
                if g.is_sparse:
                    # torch's stub wants both bounds tensors or both numbers; either works here
                    out[i] = _sparse_map_values(
                        g, lambda v: torch.clamp(v, cast(Any, -delta), cast(Any, delta))
                    )
            if dense:
                xs = [grads[i] for i in dense]
                real = ops.view_as_real(xs)
                clipped = ops.view_as_complex_like(ops.clamp(real, -delta, delta), xs)
                for i, c in zip(dense, clipped, strict=True):
                    out[i] = c
            return out, []

        new_updates, _ = update_leaves(clip_leaves, updates, [], name="clip")
        return new_updates, state

    return GradientTransformation(init_fn, update_fn)


def _global_norm(xs: list[Tensor]) -> Tensor:
    """``sqrt(sum_i ||x_i||²)`` over dense and sparse tensors (sparse ones are coalesced first,
    so duplicate indices are summed before squaring). Computed in the widest floating dtype present.
    DTensor leaves count with their global norm (one collective per mesh and placement)."""
    dense = [x for x in xs if not x.is_sparse]
    norms = ops.norm(dense) if dense else []
    norms += [torch.linalg.vector_norm(x.coalesce()._values()) for x in xs if x.is_sparse]
    return tree.norm_of_norms(norms)


@schedulable("max_norm")
def clip_by_global_norm(max_norm: Hyperparam) -> GradientTransformation:
    r"""Rescale all updates together so that their global L2 norm is at most ``max_norm``.

    $$
    \|g\| = \sqrt{\textstyle\sum_i \|g_i\|_2^2},\qquad
    u_i = \begin{cases} g_i & \|g\| < \text{max\_norm} \\
                        (g_i / \|g\|) \cdot \text{max\_norm} & \text{otherwise} \end{cases}
    $$

    i.e. ``u = g · max_norm / max(||g||, max_norm)``, computed as optax does (divide by the
    norm, then multiply by ``max_norm``). ``None`` leaves are skipped (they neither count
    towards the norm nor get an update). Sparse COO updates are supported: their norm is that
    of the coalesced tensor, and they are scaled without densifying. Complex leaves count
    ``|z|²`` per entry. Concrete norms take a Python branch; traced ones (``torch.func``,
    ``torch.compile``, hyper-gradients) use ``torch.where`` so the computation stays traceable.

    Unlike ``torch.nn.utils.clip_grad_norm_`` there is no ``1e-6`` added to the norm and no
    in-place write.

    Args:
      max_norm: the largest allowed global norm (``> 0``); a float, 0-dim tensor or schedule.

    Example::

        opt = fo.chain(fo.clip_by_global_norm(1.0), fo.scale_by_adam(), fo.scale_by_learning_rate(3e-4))

    References:
      optax.clip_by_global_norm (DeepMind); Pascanu et al., "On the difficulty of training
      recurrent neural networks", ICML 2013.
    """
    _validation.require(lambda v: v > 0.0, max_norm, f"Invalid max_norm: {max_norm} (must be > 0)")

    def init_fn(params: Params) -> EmptyState:
        del params
        return EmptyState()

    def update_fn(updates: Updates, state: EmptyState, params: Params | None = None, **extra: Any):
        del params, extra
        limit = ops.scalar(max_norm)

        def clip_leaves(grads: list[Tensor], fields: list, _: Any):
            del fields
            g_norm = _global_norm(grads)
            if not (ops.is_traced(g_norm) or ops.is_traced(limit)):
                if g_norm.item() < limit:
                    return list(grads), []
                return [(g / g_norm.to(_real_dtype(g))) * limit for g in grads], []
            trigger = g_norm < limit
            out = []
            for g in grads:
                n = g_norm.to(_real_dtype(g))
                if g.is_sparse:
                    out.append(g * torch.where(trigger, torch.ones_like(n), limit / n))
                else:
                    out.append(torch.where(trigger, g, (g / n) * limit))
            return out, []

        new_updates, _ = update_leaves(clip_leaves, updates, [], name="clip_by_global_norm")
        return new_updates, state

    return GradientTransformation(init_fn, update_fn)


def _real_dtype(x: Tensor) -> torch.dtype:
    """The real dtype matching ``x`` (``complex64 -> float32``), for dividing by a real norm."""
    return x.dtype.to_real()
