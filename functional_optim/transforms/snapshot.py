"""``snapshot``: record a statistic of the updates (a norm) in the state, for logging."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import torch
from torch import Tensor

from functional_optim import tree
from functional_optim.core import GradientTransformation, Params, Updates

__all__ = ["SnapshotState", "read_snapshots", "snapshot"]


class SnapshotState(NamedTuple):
    """State of [`snapshot`][].

    Attributes:
      values: ``{name: value}``, the statistic of the last update (0-dim tensor).
    """

    values: dict[str, Tensor]


def snapshot(
    name: str = "grad_norm", fn: Callable[[Updates], Tensor] | None = None
) -> GradientTransformation:
    r"""Pass the updates through unchanged and store ``fn(updates)`` in the state under ``name``.

    $$
    u = g,\qquad \text{state.values[name]} = f(g)
    \quad (\text{default } f = \|g\|_2 \text{ over all leaves})
    $$

    Place one at the start of a chain to see the gradient norm, one at the end to see the
    update norm; read them with [`read_snapshots`][]. The value is a tensor (no host sync);
    ``None`` leaves are ignored by the default ``fn``.

    Args:
      name: the key the value is stored under (a non-empty str).
      fn: ``updates -> 0-dim tensor`` (default: the global L2 norm, ``fo.tree.global_norm``).

    Example:
        >>> params = {"w": torch.ones(2)}
        >>> opt = fo.chain(fo.snapshot("grad_norm"), fo.adam(1e-3), fo.snapshot("update_norm"))
        >>> state = opt.init(params)
        >>> updates, state = opt.update({"w": torch.full((2,), 3.0)}, state, params)
        >>> sorted(fo.read_snapshots(state))
        ['grad_norm', 'update_norm']
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"snapshot: name must be a non-empty str, got {name!r}")
    if fn is not None and not callable(fn):
        raise ValueError(f"snapshot: fn must be callable, got {type(fn).__name__}")
    stat = fn if fn is not None else tree.global_norm

    def init_fn(params: Params) -> SnapshotState:
        return SnapshotState({name: torch.zeros_like(torch.as_tensor(stat(params)))})

    def update_fn(updates: Updates, state: SnapshotState, params: Params | None = None, **extra: Any):
        del params, extra
        return updates, SnapshotState({name: torch.as_tensor(stat(updates))})

    return GradientTransformation(init_fn, update_fn)


def read_snapshots(state: Any) -> dict[str, Tensor]:
    """Every value recorded by a [`snapshot`][] anywhere inside ``state`` (nested chains and
    combinators included), as ``{name: tensor}``; the first occurrence of a name wins."""
    found: dict[str, Tensor] = {}

    def visit(node: Any) -> None:
        if isinstance(node, SnapshotState):
            for k, v in node.values.items():
                found.setdefault(k, v)
        elif isinstance(node, tuple | list):
            for child in node:
                visit(child)
        elif isinstance(node, dict):
            for child in node.values():
                visit(child)

    visit(state)
    return found
