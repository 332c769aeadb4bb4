"""Tree plumbing shared by the transforms that route leaves (``partition``, ``masked``, ``freeze``).

A *label tree* has one label per leaf of the parameter tree; it may also be a *prefix* of it
(one label for a whole sub-tree), or a callable ``params -> label tree``. Leaves a transform
does not own are replaced by ``()``, an empty sub-tree: every transform maps over it without
seeing a leaf, so the inner state keeps the parameter tree's structure with ``()`` in the
leaves it does not cover (the project's marker for absent state; unlike ``None`` it is
accepted by ``torch.func.vmap`` and ``torch.utils._pytree``, and it is not confused with a
``None`` gradient).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import optree
import torch
from torch import Tensor

from functional_optim import tree


def broadcast_labels(labels: Any, like: Any, name: str, what: str = "label") -> list:
    """One ``what`` per leaf of ``like``: ``labels`` is a tree like ``like``, a prefix of it, or a
    callable returning one. Raises a ``ValueError`` naming ``name`` on a structure mismatch."""
    if callable(labels) and not isinstance(labels, bool):
        labels = labels(like)
    spec = tree.structure(like)
    if tree.structure(labels) == spec:  # one label per leaf: nothing to broadcast (and compile-friendly)
        return tree.leaves(labels)
    try:
        full = optree.tree_broadcast_prefix(labels, like, none_is_leaf=True)
    except (ValueError, TypeError) as err:
        raise ValueError(
            f"{name}: the {what} tree does not match the structure of the parameters: {err}"
        ) from None
    return spec.flatten_up_to(full)


def keep_only(values: Any, keep: Sequence[bool]) -> Any:
    """``values`` with every leaf whose ``keep`` flag is false replaced by ``()`` (``None`` passes)."""
    if values is None:
        return None
    leaves, spec = tree.flatten(values)
    return tree.unflatten(spec, [v if k else () for v, k in zip(leaves, keep, strict=True)])


def merge(spec: tree.TreeSpec, sources: Sequence[list], owner: Sequence[int | None], default: list) -> Any:
    """A tree whose leaf ``i`` is ``sources[owner[i]][i]`` (or ``default[i]`` if ``owner[i]`` is None)."""
    out = [default[i] if o is None else sources[o][i] for i, o in enumerate(owner)]
    return tree.unflatten(spec, out)


def mask_flags(mask: Any, like: Any, name: str) -> list[bool]:
    """The mask as one Python bool per leaf of ``like`` (tree, prefix tree or callable)."""
    flags = broadcast_labels(mask, like, name, what="mask")
    out = []
    for f in flags:
        if isinstance(f, Tensor) and f.numel() == 1 and f.dtype == torch.bool:
            f = bool(f)
        if not isinstance(f, bool):
            raise ValueError(f"{name}: every mask leaf must be a bool, got {f!r}")
        out.append(f)
    return out
