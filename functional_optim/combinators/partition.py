"""``partition``: a different transform for each group of parameters."""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping
from typing import Any, NamedTuple

from functional_optim import tree
from functional_optim._masking import broadcast_labels, keep_only, merge
from functional_optim.core import Combinator, GradientTransformation, Params, Updates

__all__ = ["PartitionState", "partition"]


class PartitionState(NamedTuple):
    """State of [`partition`][].

    Attributes:
      inner_states: ``{label: state}``; each inner state has the structure of the full parameter
        tree with ``()`` (an empty sub-tree) in the leaves of the other labels.
    """

    inner_states: dict[Hashable, Any]


def partition(
    transforms: Mapping[Hashable, GradientTransformation],
    labels: Any | Callable[[Params], Any],
) -> GradientTransformation:
    r"""Route each parameter to the transform of its label.

    $$
    u_i = T_{\ell(i)}\big(\{g_j : \ell(j) = \ell(i)\}\big)_i
    $$

    Each inner transform sees the whole tree with the leaves of the other labels replaced by
    ``()`` (an empty sub-tree: no gradient, no parameter, no state), so its state covers only
    its own parameters and a
    tree-wide quantity (a global norm, a Newton-Schulz stack) is computed over its own leaves
    only. The outputs are merged back into one update tree.

    Args:
      transforms: ``{label: transform}``.
      labels: a tree with the structure of the parameters (or a prefix of it) holding one label
        per leaf, or a callable ``params -> such a tree``. The callable is called with ``params``
        at ``init`` and at ``update`` (with the update tree when ``params`` is not passed, so it
        may see ``None`` leaves then).

    Example (Muon for the hidden matrices, AdamW for the rest)::

        labels = lambda ps: {k: "muon" if p.ndim == 2 and "embed" not in k else "adamw"
                             for k, p in ps.items()}
        opt = fo.partition({"muon": fo.muon(lr=0.02), "adamw": fo.adamw(lr=3e-4)}, labels)

    References:
      optax.partition (DeepMind).
    """
    if not isinstance(transforms, Mapping) or not transforms:
        raise ValueError("partition: transforms must be a non-empty dict {label: GradientTransformation}")
    for label, t in transforms.items():
        if not isinstance(t, GradientTransformation):
            raise ValueError(
                f"partition: transforms[{label!r}] is a {type(t).__name__}, not a GradientTransformation"
            )
    names = list(transforms)
    index = {label: k for k, label in enumerate(names)}

    def owners(like: Any) -> list[int | None]:
        leaf_labels = broadcast_labels(labels, like, "partition: labels")
        out: list[int | None] = []
        for leaf, label in zip(tree.leaves(like), leaf_labels, strict=True):
            if label not in index:
                if leaf is None and label is None:
                    out.append(None)
                    continue
                raise ValueError(
                    f"partition: labels contains {label!r}, which is not a key of transforms {names!r}"
                )
            out.append(index[label])
        return out

    def init_fn(params: Params) -> PartitionState:
        own = owners(params)
        return PartitionState(
            {
                label: transforms[label].init(keep_only(params, [o == k for o in own]))
                for k, label in enumerate(names)
            }
        )

    def update_fn(updates: Updates, state: PartitionState, params: Params | None = None, **extra: Any):
        own = owners(params if params is not None else updates)
        leaves, spec = tree.flatten(updates)
        if len(own) != len(leaves):
            raise ValueError("partition: the updates do not have the structure of the parameters")
        outs: list[list] = []
        new_states = {}
        for k, label in enumerate(names):
            keep = [o == k for o in own]
            if not any(keep):  # the group owns no parameter: nothing to update, state unchanged
                outs.append(leaves)
                new_states[label] = state.inner_states[label]
                continue
            u, s = transforms[label].update(
                keep_only(updates, keep), state.inner_states[label], keep_only(params, keep), **extra
            )
            outs.append(spec.flatten_up_to(u))
            new_states[label] = s
        return merge(spec, outs, own, leaves), PartitionState(new_states)

    return GradientTransformation(
        init_fn, update_fn, Combinator(tuple(transforms.values()), keeps_old_state=False)
    )
