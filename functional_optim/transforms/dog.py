"""``scale_by_dog``: DoG's step size, distance over gradients (learning rate and sign included)."""

from __future__ import annotations

from typing import Any, NamedTuple, cast

import torch
from torch import Tensor

from functional_optim import _validation, ops, tree
from functional_optim.core import GradientTransformation, Hyperparam, Params
from functional_optim.hyperparams import schedulable
from functional_optim.rules import Begun, Rule, RuleStep, Term, rule_transform
from functional_optim.transforms import _scalars

__all__ = ["ScaleByDoGState", "scale_by_dog"]


class ScaleByDoGState(NamedTuple):
    """State of [`scale_by_dog`][].

    Attributes:
      init_buffer: per parameter, the initial point $x_0$ (the ``dog`` package's name).
      rbar: $\\bar r$, the largest distance from $x_0$ so far (parameters' dtype).
      G: the running sum of squared gradient norms plus ``eps`` (parameters' dtype).
      count: number of updates done.
    """

    init_buffer: Any
    rbar: Tensor
    G: Tensor
    count: Tensor  # type: ignore[assignment]  # a field named like tuple.count


def _norm_of_norms(xs: list[Tensor]) -> Tensor:
    return torch.linalg.vector_norm(torch.stack(ops.norm(xs)))


@schedulable("lr", "weight_decay")
def scale_by_dog(
    lr: Hyperparam = 1.0,
    reps_rel: float = 1e-6,
    eps: float = 1e-8,
    init_eta: float | None = None,
    weight_decay: Hyperparam = 0.0,
) -> GradientTransformation:
    r"""DoG, "Distance over Gradients" (Ivgi, Hinder & Carmon, 2023): SGD with the step size

    $$
    \bar r_t = \max\big(\bar r_{t-1}, \lVert x_t - x_0\rVert\big),\quad
    \bar r_{-1} = r_\epsilon (1 + \lVert x_0\rVert),\quad
    G_t = \epsilon + \sum_{i \le t} \lVert g_i\rVert^2,\quad
    u_t = -\,\mathrm{lr}\,\frac{\bar r_t}{\sqrt{G_t}}\, g_t
    $$

    with norms over all tensors (one step size, the ``dog`` package's ``DoG``) and the L2 decay
    $g \leftarrow g + \lambda x$ applied first. ``init_eta`` replaces the first step size
    (and $r_\epsilon$ is then 0). $\bar r$ and $G$ are kept in the parameters'
    dtype, as the package. The returned update is the whole step. Iterate averaging
    (``fo.averaging``) is recommended by the authors.

    Args:
      lr: the multiplier $c$ (1.0; the authors advise against changing it).
      reps_rel: $r_\epsilon$, the relative initial distance.
      eps: $\epsilon$ added to the sum of squared gradient norms.
      init_eta: the first step size (overrides ``reps_rel``).
      weight_decay: L2 penalty $\lambda$.

    Examples:
        >>> opt = fo.scale_by_dog()
        >>> params = {"w": torch.ones(4)}
        >>> updates, _ = opt.update({"w": torch.ones(4)}, opt.init(params), params)
        >>> round(-updates["w"][0].item() * 2 / 3e-6, 4)  # r_eps (1 + ||x0||) / ||g|| = 3e-6 / 2
        1.0

    References:
      Ivgi, Hinder & Carmon, "DoG is SGD's Best Friend: A Parameter-Free Dynamic Step Size
      Schedule", ICML 2023 (code: github.com/formll/dog).
    """
    _validation.require(lambda v: v > 0, lr, f"Invalid learning rate ({lr}). Suggested value is 1.")
    _validation.nonnegative("weight_decay", weight_decay, "weight_decay value")
    if init_eta is not None and not init_eta > 0:
        raise ValueError(f"Invalid value for init_eta ({init_eta})")
    if init_eta is None and not reps_rel > 0:
        raise ValueError(f"Invalid reps_rel value ({reps_rel}), expected > 0")
    r_eps = 0.0 if init_eta is not None else reps_rel

    def init_fn(params: Params) -> ScaleByDoGState:
        leaves = [p for p in tree.leaves(params) if p is not None]
        dtype = leaves[0].dtype if leaves else torch.get_default_dtype()
        x0 = [p.detach() for p in leaves]
        rbar = r_eps * (1 + _norm_of_norms(x0)) if x0 else torch.zeros((), dtype=dtype)
        return ScaleByDoGState(
            init_buffer=tree.map(lambda p: None if p is None else p.detach().clone(), params),
            rbar=rbar,
            G=torch.full((), eps, dtype=dtype),
            count=torch.zeros((), dtype=torch.int64),
        )

    def directions(grads: list[Tensor], ps: list[Tensor]) -> list[Tensor]:
        """``g + λx`` (the L2 decay, as the package adds it to the gradients), or ``g``."""
        wd = ops.scalar(weight_decay)
        return _scalars.axpy(grads, ps, wd) if wd != 0 else grads

    def begin(state: ScaleByDoGState, grads: list[Tensor], fields: list[list[Tensor]], ps: Any) -> Begun:
        """``r̄``, ``G`` and the step size ``η = lr·r̄/√G`` over every tensor (nothing written)."""
        if not grads:  # no gradient at all: nothing moves, nothing is counted
            return Begun(None, (state.rbar, state.G, state.count))
        d = directions(grads, ps)
        rbar = torch.maximum(state.rbar, _norm_of_norms(ops.sub(ps, fields[0])))
        G = state.G + torch.stack([(g * g).sum() for g in d]).sum()
        # inside a @schedulable factory a hyperparameter is a value, never a schedule
        eta = cast("float | Tensor", lr) * rbar / torch.sqrt(G)
        if init_eta is not None:
            eta = torch.where(state.count == 0, torch.full_like(eta, init_eta), eta)
        return Begun(ops.scalar(-eta), (rbar, G, state.count + 1))

    def step(grads: list[Tensor], fields: list[list[Tensor]], ps: Any, *, in_place: bool, context: Any):
        del in_place  # nothing is kept per parameter but x0, which never changes
        step_size = context
        return RuleStep([fields[0]], [Term(directions(grads, ps), None, lambda s: s * step_size)])

    rule = Rule(
        "scale_by_dog",
        step,
        lambda state: [state.init_buffer],
        lambda fields, group: ScaleByDoGState(fields[0], *group),
        needs_params=True,
        state_type=ScaleByDoGState,
        includes_learning_rate=True,
        begin=begin,
    )
    return rule_transform(init_fn, rule)
