"""Pytree helpers over optree.

Every helper treats ``None`` as a leaf (``none_is_leaf=True``), so a gradient tree with
``None`` for parameters that received no gradient has the same structure as the
parameter tree.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, TypeGuard

import optree
import torch

if TYPE_CHECKING:
    from torch.distributed.tensor import DTensor

PyTree = Any
TreeSpec = optree.PyTreeSpec

__all__ = [
    "flatten",
    "flatten_like",
    "full_like",
    "global_norm",
    "is_dtensor",
    "leaf_names",
    "leaves",
    "map",
    "match_placement",
    "structure",
    "to_global",
    "unflatten",
    "zeros_like",
]


def _reject_iterator(tree: PyTree) -> None:
    """A one-shot iterator (``model.parameters()``) is not a tree: say what to pass instead."""
    if isinstance(tree, Iterator):
        raise TypeError(
            f"expected a tree of tensors (a list, tuple or dict), got a {type(tree).__name__}: an "
            "iterator such as model.parameters() can be read only once; pass list(model.parameters()) "
            "or {name: p.detach() for name, p in model.named_parameters()}"
        )


def flatten(tree: PyTree) -> tuple[list, TreeSpec]:
    """Leaves (``None`` included) and the tree spec."""
    _reject_iterator(tree)
    return optree.tree_flatten(tree, none_is_leaf=True)


def leaves(tree: PyTree) -> list:
    """The leaves of ``tree``, ``None`` included."""
    return optree.tree_leaves(tree, none_is_leaf=True)


def structure(tree: PyTree) -> TreeSpec:
    return optree.tree_structure(tree, none_is_leaf=True)


def unflatten(spec: TreeSpec, leaves_: Sequence) -> PyTree:
    return optree.tree_unflatten(spec, leaves_)


def map(fn: Callable[..., Any], tree: PyTree, *rest: PyTree) -> PyTree:
    """``optree.tree_map`` with ``None`` leaves passed to ``fn``."""
    _reject_iterator(tree)
    return optree.tree_map(fn, tree, *rest, none_is_leaf=True)


def leaf_names(spec: TreeSpec) -> list[str]:
    """Readable names of the leaves of ``spec``: ``"layer.weight"``, ``"[0]"``, ``"<root>"``."""
    names = []
    for path in optree.treespec_paths(spec):
        if not path:
            names.append("<root>")
            continue
        names.append(".".join(str(k) for k in path))
    return names


def flatten_like(spec: TreeSpec, tree: PyTree, what: str = "tree") -> list:
    """Flatten ``tree`` up to the structure ``spec``; raise a ``ValueError`` naming ``what`` on mismatch."""
    try:
        return spec.flatten_up_to(tree)
    except (ValueError, TypeError) as err:
        raise ValueError(
            f"{what} does not have the structure of the parameters it was built for: {err}"
        ) from None


def zeros_like(tree: PyTree, dtype: torch.dtype | None = None) -> PyTree:
    """A tree of zero tensors like ``tree`` (``None`` leaves stay ``None``).

    This is how transforms build per-parameter state, so without ``dtype`` it refuses leaves
    that cannot be optimised (integer or bool tensors, non-tensors) with a ``TypeError`` naming
    the leaf.
    """
    if dtype is None:
        _require_optimizable(tree)
    return map(lambda t: None if t is None else torch.zeros_like(t, dtype=dtype), tree)


def full_like(tree: PyTree, value: float | complex, dtype: torch.dtype | None = None) -> PyTree:
    """A tree of tensors like ``tree`` filled with ``value`` (refuses what [`zeros_like`][] refuses)."""
    if dtype is None:
        _require_optimizable(tree)
    return map(lambda t: None if t is None else torch.full_like(t, value, dtype=dtype), tree)


def _require_optimizable(tree: PyTree) -> None:
    leaves_, spec = flatten(tree)
    for i, t in enumerate(leaves_):
        if t is None:
            continue
        if not isinstance(t, torch.Tensor):
            raise TypeError(
                f"parameter '{leaf_names(spec)[i]}' is a {type(t).__qualname__}, not a torch.Tensor"
            )
        if not (t.is_floating_point() or t.is_complex()):
            raise TypeError(
                f"parameter '{leaf_names(spec)[i]}' has dtype {t.dtype}; only floating-point and "
                "complex tensors can be optimised"
            )


def global_norm(tree: PyTree) -> torch.Tensor:
    """The L2 norm of all leaves taken together: ``sqrt(sum_i ||x_i||²)`` (``None`` leaves skipped).

    DTensor leaves (FSDP2 / tensor-parallel shards) count with their *global* norm: the result is a
    plain tensor, the same on every rank (see [`norm_of_norms`][])."""
    ts = [t for t in leaves(tree) if t is not None]
    if not ts:
        return torch.tensor(0.0)
    norms = [torch.linalg.vector_norm(t.to_dense() if t.is_sparse else t) for t in ts]
    if any(is_dtensor(n) for n in norms):
        return norm_of_norms(norms)
    return torch.linalg.vector_norm(torch.stack([n.to(norms[0].dtype) for n in norms]))


def is_dtensor(x: Any) -> TypeGuard[DTensor]:
    """Whether ``x`` is a ``torch.distributed.tensor.DTensor`` (False where torch.distributed is absent)."""
    dtensor = _dtensor_type()
    return dtensor is not None and isinstance(x, dtensor)


def to_global(x: torch.Tensor) -> torch.Tensor:
    """A reduction's result as a plain tensor holding the *global* value.

    A norm or sum of a sharded DTensor is a DTensor with a ``Partial`` placement: its local value
    (what ``.item()`` reads) is the rank's own share. ``to_global`` completes the reduction
    (``full_tensor()``: one collective over the mesh) so every rank holds the global value; a plain
    tensor is returned as it is. Call it on every rank (it is a collective for DTensors)."""
    return x.full_tensor() if is_dtensor(x) else x


def match_placement(x: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """``x`` laid out as ``like`` when both are DTensors whose placements differ, else ``x``.

    DTensor's sharding propagation may return a ``Replicate`` result for a sharded input (e.g. a
    dimension smaller than the mesh); an update must keep its parameter's layout, or the in-place
    ``p.add_(u)`` of an optimizer step fails."""
    if is_dtensor(x) and is_dtensor(like) and tuple(x.placements) != tuple(like.placements):
        return x.redistribute(like.device_mesh, like.placements)
    return x


def norm_of_norms(norms: Sequence[torch.Tensor]) -> torch.Tensor:
    """``sqrt(sum_i n_i²)`` of 0-dim norms, in the widest dtype present, as a plain tensor.

    DTensor norms (each a ``Partial`` reduction of a shard) are grouped by mesh and placements and
    each group is completed with one collective (stacking keeps the partial-norm placement), so a
    tree of FSDP2 parameters costs one all-reduce, not one per leaf."""
    dtype = norms[0].dtype
    for n in norms[1:]:
        dtype = torch.promote_types(dtype, n.dtype)
    plain = [n.to(dtype) for n in norms if not is_dtensor(n)]
    groups: dict[Any, list[torch.Tensor]] = {}
    for n in norms:
        if is_dtensor(n):
            groups.setdefault((n.device_mesh, tuple(n.placements)), []).append(n.to(dtype))
    for group in groups.values():
        plain.append(torch.linalg.vector_norm(torch.stack(group)).full_tensor())
    return torch.linalg.vector_norm(torch.stack(plain))


def _dtensor_type() -> type | None:
    global _DTENSOR
    if _DTENSOR is False:
        try:
            from torch.distributed.tensor import DTensor

            _DTENSOR = DTensor
        except ImportError:  # pragma: no cover - builds without torch.distributed
            _DTENSOR = None
    return _DTENSOR  # type: ignore[return-value]


_DTENSOR: Any = False
