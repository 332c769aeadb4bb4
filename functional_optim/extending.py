"""Helpers for writing your own transform with the library's ``None``-gradient semantics.

A transform's maths is easiest written once over flat lists of tensors.
[`update_leaves`][] does the tree plumbing around it: it flattens the gradient tree and the
per-parameter state fields, drops the leaves whose gradient is ``None`` (their update stays
``None`` and their state is returned untouched, as ``torch.optim`` skips them), calls the maths
on the remaining leaves, and rebuilds the trees.

Example:
    >>> from typing import NamedTuple
    >>> class SignMomentumState(NamedTuple):
    ...     momentum: dict
    >>> def sign_momentum(beta: float = 0.9) -> fo.GradientTransformation:
    ...     def init_fn(params):
    ...         return SignMomentumState(fo.tree.zeros_like(params))
    ...     def update_fn(updates, state, params=None):
    ...         def maths(grads, fields, _params):
    ...             (m,) = fields
    ...             new_m = [beta * mi + (1 - beta) * g for mi, g in zip(m, grads)]
    ...             return [torch.sign(x) for x in new_m], (new_m,)
    ...         new_updates, (new_m,) = fo.update_leaves(maths, updates, [state.momentum], name="sign")
    ...         return new_updates, SignMomentumState(new_m)
    ...     return fo.GradientTransformation(init_fn, update_fn)
    >>> tx = sign_momentum()
    >>> params = {"w": torch.ones(2), "b": torch.zeros(1)}
    >>> state = tx.init(params)
    >>> updates, state = tx.update({"w": torch.tensor([1.0, -2.0]), "b": None}, state)
    >>> updates["w"], updates["b"]
    (tensor([ 1., -1.]), None)
    >>> state.momentum["b"]  # no gradient: state untouched
    tensor([0.])
"""

from __future__ import annotations

from functional_optim._leafwise import LeafFn, update_leaves

__all__ = ["LeafFn", "update_leaves"]
