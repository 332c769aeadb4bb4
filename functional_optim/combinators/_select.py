"""Branch-free selection between two results, for combinators that skip or delay a step.

``cond(pred, if_true, if_false)`` returns ``if_true()`` or ``if_false()``. When ``pred`` is a
concrete tensor (not traced by ``torch.func``/``torch.compile``) and ``select`` is false, it is
read on the host and only one branch runs (cheapest in eager mode; used with counters that
live on the CPU, so no device synchronisation). Otherwise both branches are computed and the
results are merged leaf by leaf with ``torch.where`` (`select_tree`), which keeps the
update pure and traceable: no Python branch depends on a tensor value, so ``vmap`` (one
decision per batch element), ``grad`` and ``torch.compile(fullgraph=True)`` work.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from functional_optim import ops, tree


def select_tree(pred: Tensor, on_true: Any, on_false: Any) -> Any:
    """Leafwise ``torch.where(pred, a, b)`` over two trees of the same structure.

    ``None`` leaves must be ``None`` on both sides; identical objects are returned as they are;
    other non-tensor leaves must be equal (they cannot depend on ``pred``).
    """
    cache: dict[torch.device, Tensor] = {}

    def on(device: torch.device) -> Tensor:
        if device not in cache:
            cache[device] = pred if pred.device == device else pred.to(device, non_blocking=True)
        return cache[device]

    def pick(a: Any, b: Any) -> Any:
        if a is b:
            return a
        if isinstance(a, Tensor) and isinstance(b, Tensor):
            if a.dtype != b.dtype:
                b = b.to(a.dtype)
            return torch.where(on(a.device), a, b)
        if a is None or b is None:
            raise ValueError("cannot select between a tensor and None: the two branches differ in structure")
        if a != b:
            raise ValueError(f"cannot select between the non-tensor values {a!r} and {b!r} without a branch")
        return a

    return tree.map(pick, on_true, on_false)


def cond(
    pred: Tensor, if_true: Callable[[], Any], if_false: Callable[[], Any], *, select: bool = False
) -> Any:
    """``if_true()`` if ``pred`` else ``if_false()``; branch-free (both computed) when ``pred`` is traced
    or ``select`` is true."""
    if not select and not ops.is_traced(pred) and not torch.compiler.is_compiling():
        return if_true() if bool(pred) else if_false()
    return select_tree(pred, if_true(), if_false())


def zeros_like_updates(updates: Any) -> Any:
    """Zero tensors like ``updates`` (``None`` leaves stay ``None``)."""
    return tree.zeros_like(updates)
