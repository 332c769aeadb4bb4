"""``masked``: apply a transform to some parameters and pass the others through."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

from functional_optim import tree
from functional_optim._masking import keep_only, mask_flags
from functional_optim.core import Combinator, GradientTransformation, Params, Updates

__all__ = ["MaskedState", "masked"]


class MaskedState(NamedTuple):
    """State of [`masked`][].

    Attributes:
      inner_state: the wrapped transform's state, built for the parameter tree with ``()`` (an
        empty sub-tree) in the masked-out leaves (so ``exp_avg`` etc. have the parameters' structure).
    """

    inner_state: Any


def masked(inner: GradientTransformation, mask: Any | Callable[[Params], Any]) -> GradientTransformation:
    r"""Apply ``inner`` only where ``mask`` is true; the other updates pass through untouched.

    $$
    u_i = \begin{cases} T(g_{\text{mask}})_i & \text{mask}_i \\ g_i & \text{otherwise} \end{cases}
    $$

    The inner transform sees the tree with the masked-out leaves replaced by ``()`` (an empty
    sub-tree: no gradient, no parameter): its state has the parameters' structure with ``()``
    there, so any
    transform (``fo.adamw(...)`` included) can be masked and its state stays a plain tree of
    tensors.

    Args:
      inner: the transform to apply to the selected leaves.
      mask: a tree of bools with the parameters' structure (or a prefix of it), or a callable
        ``params -> such a tree`` (called with ``params`` at ``init`` and at ``update``; with the
        update tree when ``params`` is not passed).

    Example (weight decay on matrices only)::

        decay = fo.masked(fo.add_decayed_weights(0.1), lambda ps: fo.tree.map(lambda p: p.ndim > 1, ps))

    References:
      optax.masked (DeepMind).
    """
    if not isinstance(inner, GradientTransformation):
        raise ValueError(f"masked: inner must be a GradientTransformation, got {type(inner).__name__}")

    def init_fn(params: Params) -> MaskedState:
        keep = mask_flags(mask, params, "masked")
        return MaskedState(inner.init(keep_only(params, keep)))

    def update_fn(updates: Updates, state: MaskedState, params: Params | None = None, **extra: Any):
        keep = mask_flags(mask, params if params is not None else updates, "masked")
        leaves, spec = tree.flatten(updates)
        if len(keep) != len(leaves):
            raise ValueError("masked: the updates do not have the structure of the parameters")
        if not any(keep):  # nothing selected: the inner transform is not called, its state is unchanged
            return updates, state
        new_u, new_inner = inner.update(
            keep_only(updates, keep), state.inner_state, keep_only(params, keep), **extra
        )
        inner_leaves = spec.flatten_up_to(new_u)
        out = [i if k else g for i, g, k in zip(inner_leaves, leaves, keep, strict=True)]
        return tree.unflatten(spec, out), MaskedState(new_inner)

    return GradientTransformation(init_fn, update_fn, Combinator((inner,), keeps_old_state=False))
