"""The learning rate of a ready-made transform, as a hyperparameter of an optimizer's groups.

``FunctionalOptimizer(params, fo.chain(..., fo.scale_by_learning_rate(1e-3)))`` is given a
transform, not a factory, yet torch's LR schedulers, the transformers ``Trainer`` and DCP's
``lr=0`` initialisation step all read and write ``param_groups[i]["lr"]``. When the transform's
learning rate is declared by the `LearningRate` role of exactly one
transform reachable through (nested) chains, and is a constant (a number or a 0-dim tensor, not a
schedule), the optimizer exposes it as ``lr`` and builds each group's transform with that
transform replaced by ``scale_by_learning_rate(group["lr"])`` — the same state layout, the same
numbers at the original value.
"""

from __future__ import annotations

from typing import Any

from torch import Tensor

from functional_optim.core import Chain, GradientTransformation, LearningRate, chain
from functional_optim.transforms.scaling import scale_by_learning_rate

__all__ = ["exposed_learning_rate", "with_learning_rate"]


def _learning_rate_paths(transform: GradientTransformation, path: tuple[int, ...]) -> list[tuple[int, ...]]:
    role = transform.role
    if isinstance(role, LearningRate):
        return [path]
    if isinstance(role, Chain):
        return [p for i, child in enumerate(role.children) for p in _learning_rate_paths(child, (*path, i))]
    return []


def _the_learning_rate(transform: GradientTransformation) -> tuple[tuple[int, ...], LearningRate] | None:
    paths = _learning_rate_paths(transform, ())
    if len(paths) != 1:
        return None
    node = transform
    for i in paths[0]:
        assert isinstance(node.role, Chain)
        node = node.role.children[i]
    assert isinstance(node.role, LearningRate)
    return paths[0], node.role


def exposed_learning_rate(transform: GradientTransformation) -> float | Tensor | None:
    """The constant learning rate of ``transform`` (see the module docstring), or ``None`` when
    it has none, several, one inside a combinator, or a schedule."""
    found = _the_learning_rate(transform)
    if found is None:
        return None
    value = found[1].learning_rate
    if isinstance(value, bool) or not (
        isinstance(value, int | float) or (isinstance(value, Tensor) and value.ndim == 0)
    ):
        return None
    return value


def with_learning_rate(transform: GradientTransformation, lr: Any) -> GradientTransformation:
    """``transform`` with its (one, exposed) learning-rate transform replaced by
    ``scale_by_learning_rate(lr)`` with the same sign convention; chains are rebuilt around it."""
    found = _the_learning_rate(transform)
    if found is None:
        raise ValueError("the transform has no single learning rate that can be replaced")
    path, role = found
    if lr is role.learning_rate:
        return transform

    def rebuild(node: GradientTransformation, rest: tuple[int, ...]) -> GradientTransformation:
        if not rest:
            return scale_by_learning_rate(lr, flip_sign=role.flip_sign)
        assert isinstance(node.role, Chain)
        children = list(node.role.children)
        children[rest[0]] = rebuild(children[rest[0]], rest[1:])
        return chain(*children)

    return rebuild(transform, path)
