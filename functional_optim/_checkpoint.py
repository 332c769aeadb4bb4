"""Make every state the library builds loadable by ``torch.load(path)`` (``weights_only=True``).

Since PyTorch 2.6 ``torch.load`` only rebuilds classes listed as *safe globals*. The library's
states are NamedTuples (``ScaleByAdamState``, ``InjectHyperparamsState``, ``EmptyState``...)
and its schedules small [`ScheduleObject`][functional_optim.schedules.ScheduleObject] instances; all
of them hold only tensors, numbers, strings, tuples, lists, dicts and each other. When
``functional_optim`` is imported, `register_all` adds to ``torch.serialization``'s safe
globals every NamedTuple class and every schedule class defined in a ``functional_optim``
module, so new state classes are covered without registering them by hand::

    torch.save(state, "opt.pt")
    state = torch.load("opt.pt")          # weights_only=True, the default

A user-defined schedule (``lambda_lr`` with a lambda, a custom ``scale_fn``) is not a safe
global: such a checkpoint needs ``weights_only=False`` (or the user registers it), as with any
pickled Python function.
"""

from __future__ import annotations

import sys
from typing import Any, cast

import torch

__all__ = ["register_all", "registered_classes"]

_REGISTERED: set[type] = set()


def _is_namedtuple_class(obj: Any) -> bool:
    return isinstance(obj, type) and issubclass(obj, tuple) and hasattr(obj, "_fields")


def _library_classes() -> list[type]:
    from functional_optim.schedules._base import ScheduleObject, schedule_classes

    found: dict[type, None] = {}
    for mod_name, module in list(sys.modules.items()):
        if module is None or not (mod_name == "functional_optim" or mod_name.startswith("functional_optim.")):
            continue
        for obj in list(vars(module).values()):
            if _is_namedtuple_class(obj) and getattr(obj, "__module__", "").startswith("functional_optim"):
                found[obj] = None
    for cls in [ScheduleObject, *schedule_classes()]:
        found[cls] = None
    return list(found)


def register_all() -> list[type]:
    """Register every library state and schedule class as a ``torch.load`` safe global.

    Idempotent; returns the classes registered by this call.
    """
    new = [cls for cls in _library_classes() if cls not in _REGISTERED]
    if new:
        torch.serialization.add_safe_globals(cast("list[Any]", new))  # classes are callables
        _REGISTERED.update(new)
    return new


def registered_classes() -> set[type]:
    """The classes registered so far."""
    return set(_REGISTERED)
