"""Construction-time checks of hyperparameters, with ``torch.optim``'s error messages.

A check runs on Python numbers and on concrete tensors. Schedules (callables) and traced
tensors (under ``torch.func``/``torch.compile``, or requiring grad) are not read: their
value is not known, or reading it would break the trace.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from torch import Tensor

from functional_optim import ops


def value_of(x: Any) -> float | None:
    """The number behind a hyperparameter, or ``None`` when it cannot be read safely."""
    if callable(x) and not isinstance(x, Tensor):
        return None
    if isinstance(x, Tensor):
        if ops.is_traced(x) or x.numel() != 1:
            return None
        return x.item()
    return x


def require(ok: Callable[[Any], bool], value: Any, message: str) -> None:
    """Raise ``ValueError(message)`` unless ``ok(value)`` (skipped when the value is unreadable)."""
    v = value_of(value)
    if v is not None and not ok(v):
        raise ValueError(message)


def nonnegative(name: str, value: Any, label: str | None = None) -> None:
    """``torch.optim``'s ``ValueError("Invalid <label>: <value>")`` for a negative value."""
    require(lambda v: v >= 0.0, value, f"Invalid {label or name}: {value}")


def beta(name: str, value: Any, index: int | None = None) -> None:
    """``0 <= beta < 1``, with torch's message ``Invalid beta parameter at index i: b``."""
    where = f" at index {index}" if index is not None else ""
    require(lambda v: 0.0 <= v < 1.0, value, f"Invalid beta parameter{where}: {value}")


def learning_rate(lr: Any) -> None:
    """``torch.optim``'s checks of ``lr``: non-negative, and a 1-element tensor."""
    if isinstance(lr, Tensor) and lr.numel() != 1:
        raise ValueError("Tensor lr must be 1-element")
    nonnegative("lr", lr, "learning rate")


def pair(name: str, values: Any) -> tuple[Any, Any]:
    """``values`` as a 2-tuple: any sequence of two (a tuple, a list, an OmegaConf ``ListConfig``...)
    is accepted, as ``torch.optim`` unpacks ``beta1, beta2 = betas``; a string, a set, a tensor or a
    sequence of another length is a ``ValueError``."""
    if not isinstance(values, Sequence) or isinstance(values, str | bytes):
        raise ValueError(f"{name} must be a pair ({name}[0], {name}[1]), got {values!r}")
    items = tuple(values)
    if len(items) != 2:
        raise ValueError(f"{name} must be a pair ({name}[0], {name}[1]), got {values!r}")
    return items


def betas(values: Any) -> tuple[Any, Any]:
    """Two betas in ``[0, 1)``, both floats or both tensors (as ``torch.optim.Adam``).

    Returns the betas as a tuple (any sequence of two is accepted, see `pair`).
    """
    values = pair("betas", values)
    b1, b2 = values
    if isinstance(b1, Tensor) != isinstance(b2, Tensor) and not (callable(b1) or callable(b2)):
        raise ValueError("betas must be either both floats or both Tensors")
    for i, b in enumerate(values):
        if isinstance(b, Tensor) and b.numel() != 1:
            raise ValueError(f"Tensor betas[{i}] must be 1-element")
        beta(f"betas[{i}]", b, i)
    return values


def not_nan(name: str, value: Any) -> None:
    """``ValueError("Invalid <name>: nan")`` for a NaN value (torch refuses a NaN ``lr``: its check
    ``0.0 <= lr`` is false). For hyperparameters whose sign is free, e.g. ``scale_by_learning_rate``
    (``flip_sign=False`` with a negative rate ascends), where `learning_rate` is too strict.
    A schedule's value is checked each time the transform is rebuilt from it (every step under
    [`inject_hyperparams`][]), as ``fo.adam(lr=schedule)`` does."""
    require(lambda v: v == v, value, f"Invalid {name}: {value}")
