"""Run a list-level update on the parameters that have a gradient.

Transforms write their maths once, over lists of tensors (see `fo.ops`).
[`update_leaves`][] does the tree plumbing around it: flatten the gradient tree and the
per-parameter state fields, drop the leaves whose gradient is ``None`` (their update stays
``None`` and their state is returned untouched, as ``torch.optim`` skips them), call the
maths, and rebuild the trees.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from torch import Tensor

from functional_optim import _layout, tree

# The third argument is ``list[Tensor] | None``; ``Any`` lets a function that needs the parameters
# declare ``list[Tensor]`` (``update_leaves(..., need_params=True)`` guarantees them).
LeafFn = Callable[
    [list[Tensor], list[list[Tensor]], Any],
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
    sparse: bool | str = True,
    state: Any = None,
    dense: bool | str = True,
    elementwise_state: bool = True,
    low_precision: bool = False,
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
      sparse: ``True`` (default) if ``fn`` handles sparse gradients; ``False``, or the algorithm's
        name as torch spells it (``"RMSprop"``), to refuse them before any maths with torch's
        ``RuntimeError("RMSprop does not support sparse gradients")``.
      state: the transform's NamedTuple state, if ``fields`` come from it: its fields that are
        not among ``fields`` must then be empty (``()``, ``None``), so that a state made by
        another configuration (Adam's ``max_exp_avg_sq`` given to Adam without AMSGrad) is
        refused instead of silently dropped; the messages also name the fields.
      elementwise_state: the state fields hold one value per element of the parameter (or a
        reduction of it): checked against the parameter. ``False`` for states of other shapes
        (e.g. SOAP's eigenbases), which are then not checked.
      dense: as ``sparse`` for dense gradients (``"SparseAdam does not support dense gradients,
        please consider Adam instead"``).
      low_precision: the state fields of float32 parameters may be bfloat16 (a transform built
        with ``state_dtype=torch.bfloat16``).

    Every call checks, once per layout (see `functional_optim._layout`), that the gradients
    are floating-point tensors that fit their parameters (shape, dtype, device, layout) and that
    the state fields were made for them; a mismatch raises before any maths, naming the leaf.

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
    field_names = None if state is None else state_field_names(state, fields, name)
    checked_fields = field_leaves if elementwise_state else []
    _layout.check_leaves(
        name,
        spec,
        grads,
        param_leaves,
        checked_fields,
        sparse,
        field_names,
        dense,
        low_precision=low_precision,
    )

    present = [i for i, g in enumerate(grads) if g is not None]
    if not present:  # nothing to update (an empty tree, or no gradient at all)
        return updates, tuple(fields)
    if len(present) == len(grads):
        new_updates, new_fields = fn(grads, field_leaves, param_leaves)
        out_updates: list[Tensor | None] = list(new_updates)
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


def state_field_names(state: Any, fields: Sequence[Any], name: str) -> list[str]:
    """The names of ``fields`` in the NamedTuple ``state``; its other fields must be empty."""
    names = getattr(state, "_fields", None)
    if names is None:
        raise TypeError(
            f"{name}: expected the transform's NamedTuple state, got a {type(state).__qualname__} "
            "(its init must return a NamedTuple: its field names name the state)"
        )
    used = {id(f) for f in fields}
    out: dict[int, str] = {}
    for field, value in zip(names, state, strict=True):
        if id(value) in used:
            out.setdefault(id(value), field)
        elif not (value is None or (isinstance(value, tuple | list | dict) and not value)):
            raise ValueError(
                f"{name}: the state has a field '{field}' that this transform does not use "
                f"(got {type(value).__qualname__}); it was made by another transform or configuration "
                "(e.g. amsgrad=True given to Adam without AMSGrad): call init with this transform"
            )
    return [out.get(id(f), f"state field #{k}") for k, f in enumerate(fields)]
