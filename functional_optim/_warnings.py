"""A warning for a silent memory leak: updating parameters that require grad with plain updates.

``fo.apply_updates(params, updates)`` computes ``p + u``. When ``p`` requires grad (an
``nn.Parameter``, or ``torch.func.stack_module_state``'s output) and grad mode is on, every step
adds a node to an autograd graph that nothing will ever differentiate, and the graph keeps every
step's tensors alive (``examples/vmap_ensemble.py`` grew by 5.7 MB per step this way). When the
update itself requires grad (gradients taken with ``create_graph=True``, a learning rate that
requires grad) or a ``torch.func`` transform is running, the graph is wanted: no warning.
"""

from __future__ import annotations

import warnings
from typing import Any

import torch

from functional_optim import tree

__all__ = ["GrowingGraphWarning", "warn_if_growing_graph"]

_warned = False


class GrowingGraphWarning(UserWarning):
    """Parameters that require grad were updated outside a differentiation context."""


def _in_functorch_transform() -> bool:
    try:
        return torch._C._functorch.peek_interpreter_stack() is not None
    except AttributeError:  # pragma: no cover - older torch
        return False


def growing_graph(params: Any, updates: Any) -> bool:
    """Whether ``apply_updates(params, updates)`` would extend an autograd graph nobody uses."""
    if not torch.is_grad_enabled() or _in_functorch_transform():
        return False
    grows = False
    for p, u in zip(tree.leaves(params), tree.leaves(updates), strict=False):
        if u is None or not isinstance(p, torch.Tensor) or not isinstance(u, torch.Tensor):
            continue
        if u.requires_grad:  # the update is differentiated through: the graph is wanted
            return False
        if p.requires_grad:
            grows = True
    return grows


def warn_if_growing_graph(params: Any, updates: Any, *, stacklevel: int = 3) -> None:
    """Warn once per process when ``apply_updates(params, updates)`` would grow an unused graph.

    Call it at the start of ``apply_updates``; after the first warning it costs one global read.

    Example:
        >>> from functional_optim import _warnings
        >>> params = {"w": torch.ones(2, requires_grad=True)}
        >>> _warnings.growing_graph(params, {"w": torch.ones(2)})
        True
        >>> with torch.no_grad():
        ...     _warnings.growing_graph(params, {"w": torch.ones(2)})
        False
    """
    global _warned
    if _warned or not growing_graph(params, updates):
        return
    _warned = True
    warnings.warn(
        "apply_updates: parameters that require grad are updated by updates that do not, with grad "
        "mode on: every step extends an autograd graph that keeps all previous steps alive (memory "
        "grows each step). Detach the parameters ({k: v.detach() for k, v in params.items()}), "
        "update under torch.no_grad(), or use the drop-in fo.adapters optimizers. This warning is "
        "shown once.",
        GrowingGraphWarning,
        stacklevel=stacklevel,
    )
