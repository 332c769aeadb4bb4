"""``ScheduleObject``: the base of every schedule, a small picklable object ``count -> value``.

A schedule is an instance of a module-level class holding its arguments as attributes, not a
closure: it pickles (``torch.save(opt.state_dict())`` of an optimizer whose learning rate is a
schedule), loads with ``torch.load(..., weights_only=True)`` (the classes are registered as safe
globals, see `functional_optim._checkpoint`), prints its arguments and compares equal to a
schedule built with the same arguments. Calling it is the same formula as before, so tensor
arguments keep hyper-gradients flowing and ``torch.compile(fullgraph=True)`` traces it.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

__all__ = ["ScheduleObject"]

_SCHEDULE_CLASSES: list[type] = []


def _same(a: Any, b: Any) -> bool:
    if a is b:
        return True
    if isinstance(a, Tensor) or isinstance(b, Tensor):
        return (
            isinstance(a, Tensor)
            and isinstance(b, Tensor)
            and a.shape == b.shape
            and a.dtype == b.dtype
            and a.device == b.device
            and bool(torch.equal(a.detach(), b.detach()))
        )
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return type(a) is type(b) and len(a) == len(b) and all(map(_same, a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    try:
        return bool(a == b)
    except Exception:  # objects whose equality is not a bool are different
        return False


class ScheduleObject:
    """A schedule ``count -> value`` whose arguments are attributes.

    Subclasses set their attributes in ``__init__`` and implement ``__call__(count)``; the base
    gives ``repr``, equality (same class, equal arguments; tensors by value) and a hash
    consistent with it. Every subclass is collected for checkpoint registration.
    """

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        _SCHEDULE_CLASSES.append(cls)

    def __call__(self, count: Any) -> Any:  # pragma: no cover - every subclass defines it
        raise NotImplementedError

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"{type(self).__name__}({args})"

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other) and _same(vars(self), vars(other))

    def __hash__(self) -> int:
        return hash((type(self), tuple(vars(self))))


def schedule_classes() -> list[type]:
    """Every ``ScheduleObject`` subclass defined so far."""
    return list(_SCHEDULE_CLASSES)
