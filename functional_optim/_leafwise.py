"""Run a list-level update on the parameters that have a gradient.

Transforms write their maths once, over lists of tensors (see :mod:`functional_optim.ops`).
:func:`update_leaves` does the tree plumbing around it: flatten the gradient tree and the
per-parameter state fields, drop the leaves whose gradient is ``None`` (their update stays
``None`` and their state is returned untouched, as ``torch.optim`` skips them), call the
maths, and rebuild the trees.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from torch import Tensor

from functional_optim import tree

LeafFn = Callable[
    [list[Tensor], list[list[Tensor]], "list[Tensor] | None"],
    tuple[list[Tensor], Sequence[list[Tensor]]],
]


def update_leaves(
    fn: LeafFn,
    updates: Any,
    fields: Sequence[Any],
    params: Any = None,
    *,
    name: str,
    need_params: bool = False,
) -> tuple[Any, tuple[Any, ...]]:
    """Apply ``fn(grads, fields, params) -> (new_updates, new_fields)`` to the present leaves.

    Args:
      fn: the list-level maths. ``grads`` holds the non-``None`` gradients, ``fields[k]`` the
        matching leaves of the k-th state field, ``params`` the matching parameters (or ``None``).
      updates: the incoming gradient/update tree (``None`` leaves allowed).
      fields: per-parameter state trees with the structure of ``updates``.
      params: the parameter tree, or ``None``.
      name: the transform's name, used in error messages.
      need_params: raise a clear error if ``params`` is ``None``.

    Returns:
      The new update tree and a tuple with one new tree per state field.
    """
    grads, spec = tree.flatten(updates)
    field_leaves = [tree.flatten_like(spec, f, f"{name}: state") for f in fields]
    if params is None:
        if need_params:
            raise ValueError(f"{name} needs the parameters: call update(grads, state, params)")
        param_leaves = None
    else:
        param_leaves = tree.flatten_like(spec, params, f"{name}: params")
        _check_shapes(grads, param_leaves, spec, name)

    present = [i for i, g in enumerate(grads) if g is not None]
    if not present:  # nothing to update (an empty tree, or no gradient at all)
        return updates, tuple(fields)
    if len(present) == len(grads):
        new_updates, new_fields = fn(grads, field_leaves, param_leaves)
        out_updates = list(new_updates)
        out_fields = [list(f) for f in new_fields]
    else:
        sel_params = None if param_leaves is None else [param_leaves[i] for i in present]
        new_updates, new_fields = fn(
            [grads[i] for i in present], [[f[i] for i in present] for f in field_leaves], sel_params
        )
        out_updates = [None] * len(grads)
        out_fields = [list(f) for f in field_leaves]
        for j, i in enumerate(present):
            out_updates[i] = new_updates[j]
            for k, f in enumerate(new_fields):
                out_fields[k][i] = f[j]
    return tree.unflatten(spec, out_updates), tuple(tree.unflatten(spec, f) for f in out_fields)


def _check_shapes(grads: list, params: list, spec: tree.TreeSpec, name: str) -> None:
    for i, (g, p) in enumerate(zip(grads, params, strict=True)):
        if g is not None and p is not None and g.shape != p.shape:
            leaf = tree.leaf_names(spec)[i]
            raise ValueError(
                f"{name}: the gradient of parameter '{leaf}' has shape {tuple(g.shape)} "
                f"but the parameter has shape {tuple(p.shape)}"
            )
