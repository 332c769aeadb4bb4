"""``compile_step``: a whole optimizer step as one ``torch.compile`` d function, updated in place.

``torch.compile(tx.update)`` gives Inductor kernels that fuse each parameter's update into one
loop (one read and one write of every buffer, like ``torch.optim``'s ``fused=True``), but every
call then pays Dynamo's guard checks on every input tensor (~1 µs each: ~0.5-1 ms for an optimizer
step over a few hundred tensors on CPU, a third of the step). :func:`compile_step` keeps the
kernels and replaces those guards by checks made once per call at C speed:

* the parameters and the state must be the *same tensor objects* as when the step was compiled
  (they are updated in place, so they are; a tensor replaced in between triggers a new
  compilation for the new objects);
* the gradients (new tensors at every backward) must have the shapes, strides, dtypes and
  devices they had (else: a new compilation for the new layout), and the same leaves must be
  ``None``.

Each compiled variant gets its own code object, so Dynamo's per-code cache never hands one
variant's kernels to another. The transform's hyperparameters are constants of the compiled
code: build a new ``compile_step`` for a new transform (or use ``inject_hyperparams``, whose
hyperparameters live in the state as tensors and can change without recompiling).
"""

from __future__ import annotations

import operator
import types
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from functional_optim import tree
from functional_optim.core import GradientTransformation, Params, State, Updates, apply_updates

__all__ = ["CompiledStep", "compile_step"]

_SHAPE = operator.attrgetter("shape")
_DTYPE = operator.attrgetter("dtype")
_DEVICE = operator.attrgetter("device")


def _write_back(olds: list[Any], news: list[Any]) -> None:
    pairs = [(o, n) for o, n in zip(olds, news, strict=True) if isinstance(o, Tensor) and o is not n]
    if pairs:
        # one foreach copy: Inductor fuses it into few kernels (a copy per tensor would be a
        # kernel launch each, e.g. for every 0-dim step counter)
        torch._foreach_copy_([o for o, _ in pairs], [n for _, n in pairs])


def _step_fn(transform: GradientTransformation) -> Callable[..., None]:
    def step(params: Params, grads: Updates, state: State) -> None:
        updates, new_state = transform.update(grads, state, params)
        new_params = apply_updates(params, updates)
        _write_back(tree.leaves(state), tree.leaves(new_state))
        _write_back(tree.leaves(params), tree.leaves(new_params))

    return step


class CompiledStep:
    """``step(params, grads, state)``: ``transform.update`` + ``apply_updates`` compiled as one
    function that writes the new parameters and state into the given tensors. See
    :func:`compile_step`."""

    def __init__(self, transform: GradientTransformation, **compile_options: Any) -> None:
        if not isinstance(transform, GradientTransformation):
            raise TypeError(f"compile_step needs a GradientTransformation, got {type(transform).__name__}")
        self.transform = transform
        self.compile_options = compile_options
        self._variants: dict[Any, Callable[..., None]] = {}
        self._last: tuple | None = None  # (owned leaves, grads signature, variant)

    @property
    def compilations(self) -> int:
        """How many variants were compiled (1 while parameters, state and gradients keep their layout)."""
        return len(self._variants)

    def __call__(self, params: Params, grads: Updates, state: State) -> None:
        owned = tree.leaves(params) + tree.leaves(state)
        grad_leaves = tree.leaves(grads)
        signature = _grads_signature(grad_leaves)
        last = self._last
        if (
            last is not None
            and len(last[0]) == len(owned)
            and all(map(operator.is_, owned, last[0]))
            and signature == last[1]
        ):
            variant = last[2]
        else:
            key = (tuple(map(_leaf_key, owned)), signature, tree.structure((params, grads, state)))
            variant = self._variants.get(key)
            if variant is None:
                variant = self._variants[key] = self._compile(len(self._variants))
            self._last = (owned, signature, variant)
        with torch.no_grad():
            variant(params, grads, state)

    def _compile(self, index: int) -> Callable[..., None]:
        step = _step_fn(self.transform)
        # a code object of its own: Dynamo caches compiled graphs per code object, and this
        # variant's graph runs without Dynamo's guards (checked above instead)
        code = step.__code__.replace(co_name=f"compiled_step_{id(self):x}_{index}")
        fn = types.FunctionType(code, step.__globals__, code.co_name, step.__defaults__, step.__closure__)
        # Dynamo's guards and Inductor's size/stride asserts check every input at every call
        # (~1 µs each); ``__call__`` checks the same facts once, at C speed
        options = {
            "guard_filter_fn": torch.compiler.skip_all_guards_unsafe,
            "size_asserts": False,
            **self.compile_options,
        }
        return torch.compile(fn, fullgraph=True, options=options)


def _grads_signature(leaves: list[Any]) -> tuple:
    """Shapes, strides, dtypes and devices of the gradients, and which are ``None``."""
    try:
        return (
            tuple(map(_SHAPE, leaves)),
            tuple(map(Tensor.stride, leaves)),
            tuple(map(_DTYPE, leaves)),
            tuple(map(_DEVICE, leaves)),
        )
    except (AttributeError, TypeError):  # None leaves (no gradient)
        return tuple(_leaf_key(g) for g in leaves)


def _leaf_key(x: Any) -> Any:
    if isinstance(x, Tensor):
        return (id(x), tuple(x.shape), x.stride(), x.dtype, x.device, x.layout)
    return ("value", type(x).__name__, x if isinstance(x, int | float | bool | str | None) else id(x))


def compile_step(transform: GradientTransformation, **compile_options: Any) -> CompiledStep:
    """Compile ``transform``'s step (``update`` + ``apply_updates``) into an in-place function.

    ``step = fo.compile_step(tx)`` then ``step(params, grads, state)`` updates ``params`` and
    ``state`` (trees of tensors, as ``tx.init(params)`` made it) in place, with the numbers of
    ``tx.update`` run under ``torch.compile`` (Inductor's fused kernels: one pass over memory per
    parameter, like ``torch.optim``'s ``fused=True``). Dynamo's per-call guards are replaced by
    cheaper checks of the same facts (see the module docstring); a new layout compiles a new variant.

    Args:
      transform: any ``GradientTransformation`` that ``torch.compile`` can trace with
        ``fullgraph=True`` (every built-in algorithm; ``lbfgs`` is not).
      **compile_options: Inductor options (``torch.compile(options=...)``), e.g.
        ``cpp_wrapper=True`` (a C++ wrapper around the kernels: less Python per call).

    Example::

        tx = fo.adamw(1e-3, weight_decay=0.1)
        state = tx.init(params)
        step = fo.compile_step(tx)
        for batch in data:
            grads = torch.autograd.grad(loss_fn(params, batch), params)
            step(params, list(grads), state)      # params and state updated in place
    """
    return CompiledStep(transform, **compile_options)
