"""The drop-ins' ``fused=True`` step: a param group's step run by `fo.compile_step`.

``torch.optim`` has fused kernels for four algorithms (Adam, AdamW, SGD, Adagrad); with
``fused=True`` a drop-in whose algorithm is elementwise (`FunctionalOptimizer.elementwise`) runs
its group's step through [`fo.compile_step(tx, elementwise=True)`][functional_optim.compile_step]
instead of the eager in-place step: ``torch.optim``'s own fused kernel where the algorithm has
one (nothing is compiled), otherwise Inductor's code, one pass over memory per tensor (saved on
disk: a new process loads it in milliseconds). The numbers are within an ulp or two of the eager
step (Inductor orders some operations differently), and ``torch.optim(fused=True)``'s exactly
where torch's kernel runs.

The learning rate is a 0-dim float64 tensor, an input of the compiled step written at every step
(`CompiledGroup`): an LR scheduler changes it without a new compilation. The other
hyperparameters are constants of the compiled code: a new value builds (and, without a saved
copy, compiles) a new step.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from functional_optim import _torch_kernels, _two_pass
from functional_optim.compiled import CompiledStep, compile_step
from functional_optim.core import GradientTransformation
from functional_optim.hyperparams import InjectHyperparamsState, inject_hyperparams


class CompiledGroup:
    """A group's compiled step and its learning rate ``learning_rate``, a 0-dim float64 tensor
    written at every step; ``key``: the other hyperparameters (exact values) it was built for.

    Where ``torch.optim`` has a fused kernel for the algorithm, ``step`` compiles
    ``factory(lr=learning_rate, ...)`` (torch's kernel reads the tensor at every call; nothing is
    compiled). So it does for a rule in two passes (Prodigy, D-Adaptation,
    `functional_optim._two_pass`), whose step reads the rate in its eager ``begin``: its
    compiled passes take their numbers as inputs and do not hold the tensor. Otherwise it
    compiles ``fo.inject_hyperparams(factory)`` with ``lr`` alone injected, and a step is given
    ``InjectHyperparamsState(count, {"lr": learning_rate}, the group's state)``: the rate is an
    input of the compiled code, the transform has no tensor inside, so the compiled step is
    saved on disk and a new process loads it (`fo.compile_step`)."""

    __slots__ = ("count", "key", "learning_rate", "step")

    def __init__(self, key: tuple, learning_rate: Tensor, step: CompiledStep, count: Tensor | None) -> None:
        self.key, self.learning_rate, self.step, self.count = key, learning_rate, step, count

    def state(self, state: Any) -> Any:
        """The compiled step's state around the group's functional ``state``."""
        if self.count is None:
            return state
        return InjectHyperparamsState(self.count, {"lr": self.learning_rate}, state)


def compiled_group(
    factory: Callable[..., GradientTransformation], hyperparams: dict[str, Any], key: tuple
) -> CompiledGroup:
    """The compiled step for a group with these hyperparameters; ``key``: its hyperparameters but
    ``lr``, frozen (`CompiledGroup.key`)."""
    learning_rate = torch.tensor(float(hyperparams["lr"]), dtype=torch.float64)
    with_tensor = factory(**{**hyperparams, "lr": learning_rate})
    if _torch_kernels.recipe(with_tensor) is not None or _two_pass.applies(with_tensor):
        return CompiledGroup(key, learning_rate, compile_step(with_tensor, elementwise=True), None)
    others = [name for name in hyperparams if name != "lr"]
    injected = inject_hyperparams(factory, static_args=others)(**hyperparams)
    count = torch.zeros((), dtype=torch.int64)
    return CompiledGroup(key, learning_rate, compile_step(injected, elementwise=True), count)


def prepare(
    group: CompiledGroup, lr: float, params: list[Tensor], grads: list[Tensor], state: Any
) -> Callable[[], None]:
    """The group's step at learning rate ``lr`` in two phases: what may fail or compile runs now
    (`CompiledStep.prepare`: a new layout is compiled on copies, nothing given is written); the
    returned call writes the learning rate, then runs compiled code only, updating ``params``
    and the tensors of ``state`` in place. It cannot fail half way (e.g. a second dtype compiled
    after the first was written)."""
    run = group.step.prepare(params, grads, group.state(state))

    def commit() -> None:
        group.learning_rate.fill_(lr)
        run()

    return commit
