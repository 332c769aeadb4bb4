"""Drop-in Schedule-Free optimizers: ``schedulefree.AdamWScheduleFree`` and ``SGDScheduleFree``.

The parameters hold the training point $y$ in train mode and the evaluation point
$x$ in eval mode; ``train()`` / ``eval()`` swap them, as the ``schedulefree`` package.
Two differences, both so that a checkpoint is right whichever mode it is saved in:

* ``eval()`` keeps the training point (``state[p]["y"]``, one copy of the parameters while in
  eval mode) and ``train()`` restores it exactly. The package recomputes $y$ from
  $x$ and $z$ (``lerp(x, z, 1-β1)``), which moves it by rounding at every
  ``eval()``/``train()`` round trip, so training that evaluates (or checkpoints in eval mode,
  as its documentation asks) does not continue with the same numbers as training that does not.
  Here save in eval mode → load → ``train()`` → continue gives bit-identical results to never
  saving (tested).
* The optimizer starts in train mode (``step()`` works without a first ``train()``; the package
  raises). ``train_mode`` is kept in ``param_groups``, as the package, so ``load_state_dict``
  restores the mode of the checkpoint.

``step()`` in eval mode raises, as the package.
"""

# No ``from __future__ import annotations``: the signatures (annotations included) are torch's.

from typing import Any

import torch
from torch import Tensor
from torch.optim.optimizer import ParamsT

from functional_optim.adapters.optimizers import _DropIn
from functional_optim.optimizers.schedule_free import schedule_free_adamw, schedule_free_sgd

__all__ = ["AdamWScheduleFree", "SGDScheduleFree"]


class _ScheduleFree(_DropIn):
    """``train()`` / ``eval()`` and the train-mode flag of the Schedule-Free drop-ins."""

    elementwise = True  # the group's averaging weights depend on the step and rates only
    _optional_state_keys = ("y",)  # the training point, kept while in eval mode

    _tensor_step = False

    def _finish_init(self) -> None:
        for group in self.param_groups:
            group.setdefault("train_mode", True)

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        super().add_param_group(param_group)
        self.param_groups[-1].setdefault("train_mode", True)

    def _b1(self, group: dict[str, Any]) -> float:
        raise NotImplementedError

    @torch.no_grad()
    def eval(self) -> None:
        """Put the evaluation point $x = y + (1 - 1/β_1)(z - y)$ into the parameters
        (keeping $y$ to restore it exactly)."""
        for group in self.param_groups:
            if not group["train_mode"]:
                continue
            weight = 1 - 1 / float(self._b1(group))
            for p in group["params"]:
                state = self.state[p]
                if "z" in state:
                    state["y"] = p.detach().clone()
                    p.lerp_(state["z"].to(p.device), weight)
            group["train_mode"] = False

    @torch.no_grad()
    def train(self) -> None:
        """Put the training point $y$ back into the parameters (the kept copy; else, for a
        state saved without one, $y = (1-β_1) z + β_1 x$ as the package)."""
        for group in self.param_groups:
            if group["train_mode"]:
                continue
            weight = 1 - float(self._b1(group))
            for p in group["params"]:
                state = self.state[p]
                y = state.pop("y", None)
                if y is not None:
                    p.copy_(y)
                elif "z" in state:
                    p.lerp_(state["z"].to(p.device), weight)
            group["train_mode"] = True

    def step(self, closure: Any = None) -> Any:
        if not all(group["train_mode"] for group in self.param_groups):
            raise RuntimeError(
                "Optimizer was not in train mode when step is called. Please insert .train() and "
                ".eval() calls on the optimizer. See documentation for details."
            )
        return super().step(closure)


class AdamWScheduleFree(_ScheduleFree):
    r"""``schedulefree.AdamWScheduleFree`` over
    [`fo.schedule_free_adamw`][functional_optim.schedule_free_adamw] (same constructor and defaults; state
    ``z``, ``exp_avg_sq``, ``step`` per parameter and the group counters ``k``/``lr_max``/``weight_sum`` in
    the first parameter's ``functional_state``).

    Example:
      >>> model = torch.nn.Linear(3, 1)
      >>> opt = fo.adapters.AdamWScheduleFree(model.parameters(), lr=1e-2, warmup_steps=5)
      >>> model(torch.ones(2, 3)).sum().backward()
      >>> opt.step()
      >>> opt.eval()   # evaluate / checkpoint at x
      >>> opt.train()  # back to y, exactly
    """

    def __init__(
        self,
        params: ParamsT,
        lr: float | Tensor = 0.0025,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0,
        warmup_steps: int = 0,
        r: float = 0.0,
        weight_lr_power: float = 2.0,
        foreach: bool | None = None,
    ) -> None:
        self._dropin_init(
            params,
            schedule_free_adamw,
            dict(
                lr=lr,
                betas=betas,
                eps=eps,
                weight_decay=weight_decay,
                warmup_steps=warmup_steps,
                r=r,
                weight_lr_power=weight_lr_power,
                foreach=foreach,
            ),
        )
        self._finish_init()

    def _b1(self, group: dict[str, Any]) -> float:
        return group["betas"][0]


class SGDScheduleFree(_ScheduleFree):
    r"""``schedulefree.SGDScheduleFree`` over [`fo.schedule_free_sgd`][functional_optim.schedule_free_sgd]
    (same constructor and defaults; state ``z`` per parameter).

    Example:
      >>> model = torch.nn.Linear(3, 1)
      >>> opt = fo.adapters.SGDScheduleFree(model.parameters(), lr=0.1)
      >>> model(torch.ones(2, 3)).sum().backward()
      >>> opt.step()
    """

    def __init__(
        self,
        params: ParamsT,
        lr: float | Tensor = 1.0,
        momentum: float = 0.9,
        weight_decay: float = 0,
        warmup_steps: int = 0,
        r: float = 0.0,
        weight_lr_power: float = 2,
        foreach: bool | None = None,
    ) -> None:
        if not 0 < momentum < 1:
            raise ValueError(f"Momentum must be between 0 and 1 exclusive: {momentum}")
        self._dropin_init(
            params,
            schedule_free_sgd,
            dict(
                lr=lr,
                momentum=momentum,
                weight_decay=weight_decay,
                warmup_steps=warmup_steps,
                r=r,
                weight_lr_power=weight_lr_power,
                foreach=foreach,
            ),
        )
        self._finish_init()

    def _b1(self, group: dict[str, Any]) -> float:
        return group["momentum"]
