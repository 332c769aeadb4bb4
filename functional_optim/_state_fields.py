"""Find the per-parameter fields of a (possibly nested) optimizer state by name.

A state is a NamedTuple, or a tuple of them for a chain, possibly nested inside combinator
states. A *per-parameter field* is a NamedTuple field whose value has the structure of the
parameter tree with tensor (or ``None``) leaves: ``exp_avg``, ``momentum_buffer``, ``step``...
"""

from __future__ import annotations

from typing import Any

from torch import Tensor

from functional_optim import tree


def _leaves_like(spec: tree.TreeSpec, value: Any) -> list | None:
    if value is None:
        return None
    try:
        leaves = spec.flatten_up_to(value)
    except (ValueError, TypeError):
        return None
    if all(leaf is None or leaf == () if not isinstance(leaf, Tensor) else True for leaf in leaves) and any(
        isinstance(leaf, Tensor) for leaf in leaves
    ):
        return leaves
    return None


def per_parameter_fields(state: Any, spec: tree.TreeSpec) -> dict[str, list]:
    """``{field name: leaves}`` for every per-parameter field of ``state``, in state order.

    When two transforms of a chain use the same field name, the first one wins.
    """
    found: dict[str, list] = {}

    def visit(node: Any) -> None:
        if isinstance(node, tuple) and hasattr(node, "_fields"):
            for name, value in zip(node._fields, node, strict=True):
                leaves = _leaves_like(spec, value)
                if leaves is not None:
                    found.setdefault(name, leaves)
                else:
                    visit(value)
        elif isinstance(node, tuple | list):
            for child in node:
                visit(child)
        elif isinstance(node, dict):
            for child in node.values():
                visit(child)

    visit(state)
    return found
