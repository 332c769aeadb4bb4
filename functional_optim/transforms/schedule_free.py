"""``schedule_free``: Schedule-Free iterate averaging around any base rule (Defazio et al., 2024)."""

from __future__ import annotations

from typing import Any, NamedTuple

import torch
from torch import Tensor

from functional_optim import _validation, ops, tree
from functional_optim._leafwise import update_leaves
from functional_optim.core import GradientTransformation, Hyperparam, Params, Updates
from functional_optim.hyperparams import schedulable
from functional_optim.transforms import _scalars

__all__ = [
    "ScheduleFreeState",
    "schedule_free",
    "schedule_free_eval_params",
    "schedule_free_train_params",
]


class ScheduleFreeState(NamedTuple):
    """State of [`schedule_free`][].

    Attributes:
      z: per parameter, the base rule's iterate $z_t$ (``schedulefree``'s ``state['z']``).
      base_state: the base rule's state.
      count: number of updates done (``k``), 0-dim int64.
      lr_max: the largest (warmed-up) learning rate seen, 0-dim float64 (``-1`` before any step).
      weight_sum: $\\sum_i c_i$, 0-dim float64.
      b1: the interpolation $\\beta_1$ of the last update (for the evaluation parameters).
    """

    z: Any
    base_state: Any
    count: Tensor  # type: ignore[assignment]  # a field named like tuple.count
    lr_max: Tensor
    weight_sum: Tensor
    b1: Tensor


@schedulable("learning_rate", "b1", "r", "weight_lr_power")
def schedule_free(
    base: GradientTransformation,
    learning_rate: Hyperparam,
    b1: Hyperparam = 0.9,
    warmup_steps: int = 0,
    r: Hyperparam = 0.0,
    weight_lr_power: Hyperparam = 2.0,
) -> GradientTransformation:
    r"""Schedule-Free training around a base rule $D$ (e.g. Adam's normalisation).

    The parameters the transform sees are the *training* point $y_t$; it keeps the base
    iterate $z_t$ and returns the update $y_{t+1} - y_t$. With $k$ the number
    of previous steps, $\gamma_k = \mathrm{lr}\cdot\min(1, (k+1)/W)$ (linear warmup over
    $W$ steps):

    $$
    \begin{aligned}
    \gamma_{\max} &= \max(\gamma_{\max}, \gamma_k),\quad
    c_k = \frac{(k+1)^r \gamma_{\max}^{p}}{\sum_{i \le k} (i+1)^r \gamma_{\max,i}^{p}},\quad
    d_k = D(g_k) \text{ (at } y_k) \\
    y_{k+1} &= y_k + c_k (z_k - y_k) + \gamma_k\big(\beta_1 (1 - c_k) - 1\big) d_k,\qquad
    z_{k+1} = z_k - \gamma_k d_k
    \end{aligned}
    $$

    and the evaluation point $x_k = y_k + (1 - 1/\beta_1)(z_k - y_k)$ is
    [`schedule_free_eval_params`][]. Numerics as the ``schedulefree`` package (scalars in double;
    $c_k = 0$ while the weight sum is 0). ``None`` gradients leave their parameter and its
    $z$ unchanged (the counters still advance, as the package's group counter ``k``).

    Args:
      base: the rule $D$ (``scale_by_bias_corrected_rms`` for AdamW, ``identity`` for SGD,
        followed by ``add_decayed_weights`` for weight decay evaluated at $y$).
      learning_rate: $\mathrm{lr}$ (float, 0-dim tensor or schedule).
      b1: interpolation/momentum $\beta_1$ (``betas[0]`` / ``momentum``).
      warmup_steps: $W$, linear warmup steps (0: none).
      r: polynomial weighting power $r$ of the average.
      weight_lr_power: $p$, the power of the learning rate in the weights.

    Example:
      >>> opt = fo.schedule_free(fo.scale_by_bias_corrected_rms(), learning_rate=0.01)
      >>> params = {"w": torch.ones(2)}
      >>> state = opt.init(params)
      >>> updates, state = opt.update({"w": torch.ones(2)}, state, params)
      >>> params = fo.apply_updates(params, updates)
      >>> fo.schedule_free_eval_params(state, params)["w"].shape
      torch.Size([2])

    References:
      Defazio, Yang, Mehta, Mishchenko, Khaled & Cutkosky, "The Road Less Scheduled", NeurIPS
      2024 (code: github.com/facebookresearch/schedule_free).
    """
    _validation.learning_rate(learning_rate)
    _validation.require(
        lambda v: 0.0 < v < 1.0, b1, f"Invalid b1 (momentum) value: {b1}, expected 0 < b1 < 1"
    )
    if isinstance(warmup_steps, bool) or not isinstance(warmup_steps, int) or warmup_steps < 0:
        raise ValueError(f"schedule_free: warmup_steps must be a non-negative integer, got {warmup_steps!r}")

    def init_fn(params: Params) -> ScheduleFreeState:
        z = tree.map(lambda p: None if p is None else p.detach().clone(), params)
        return ScheduleFreeState(
            z=z,
            base_state=base.init(params),
            count=torch.zeros((), dtype=torch.int64),
            lr_max=torch.tensor(-1.0, dtype=torch.float64),
            weight_sum=torch.zeros((), dtype=torch.float64),
            b1=_scalars.f64(b1),
        )

    def update_fn(updates: Updates, state: ScheduleFreeState, params: Params | None = None, **extra: Any):
        if params is None:
            raise ValueError("schedule_free needs the parameters: call update(grads, state, params)")
        k1 = state.count.to(torch.float64) + 1
        lr = _scalars.f64(learning_rate)
        if warmup_steps > 0:
            lr = lr * torch.clamp(k1 / warmup_steps, max=1.0)
        lr_max = torch.maximum(state.lr_max, lr)
        weight = k1 ** _scalars.f64(r) * lr_max ** _scalars.f64(weight_lr_power)
        weight_sum = state.weight_sum + weight
        ckp1 = torch.where(weight_sum > 0, weight / torch.where(weight_sum > 0, weight_sum, 1.0), 0.0)
        beta1 = _scalars.f64(b1)
        y_coef = lr * (beta1 * (1 - ckp1) - 1)
        directions, base_state = base.update(updates, state.base_state, params, **extra)
        c, a, step = ops.scalar(ckp1), ops.scalar(y_coef), ops.scalar(lr)

        def averaged(d: list[Tensor], fields: list[list[Tensor]], ys: list[Tensor]):
            z = fields[0]
            return _scalars.axpy_(ops.mul_(ops.sub(z, ys), c), d, a), [_scalars.axpy(z, d, -step)]

        new_updates, (z,) = update_leaves(averaged, directions, [state.z], params, name="schedule_free")
        new_state = ScheduleFreeState(z, base_state, state.count + 1, lr_max, weight_sum, beta1)
        return new_updates, new_state

    return GradientTransformation(init_fn, update_fn)


def _find_state(state: Any) -> ScheduleFreeState:
    if isinstance(state, ScheduleFreeState):
        return state
    if isinstance(state, tuple | list):
        for s in state:
            try:
                return _find_state(s)
            except LookupError:
                pass
    raise LookupError("no ScheduleFreeState in this state: was it built with fo.schedule_free?")


def _interpolate(params: Params, z_tree: Any, weight: Any) -> Params:
    return tree.map(
        lambda p, z: None if p is None or z is None else torch.lerp(p, z.to(p.dtype), weight), params, z_tree
    )


def schedule_free_eval_params(state: Any, params: Params) -> Params:
    r"""The evaluation point $x = y + (1 - 1/\beta_1)(z - y)$ of Schedule-Free training,
    computed from the training parameters $y$ (as ``schedulefree``'s ``optimizer.eval()``:
    ``lerp(y, z, 1 - 1/β1)``). ``state`` is the state of [`schedule_free`][] or of any chain or
    wrapper holding it. Pure: new tensors.

    Example: see [`schedule_free`][].
    """
    sf = _find_state(state)
    return _interpolate(params, sf.z, ops.scalar(1 - 1 / sf.b1))


def schedule_free_train_params(state: Any, eval_params: Params) -> Params:
    r"""The inverse of [`schedule_free_eval_params`][]: $y = (1-\beta_1) z + \beta_1 x$
    (``lerp(x, z, 1 - β1)``, as ``schedulefree``'s ``optimizer.train()``; exact only up to
    rounding, so a round trip through the evaluation point moves $y$ by an ulp or so)."""
    sf = _find_state(state)
    return _interpolate(eval_params, sf.z, ops.scalar(1 - sf.b1))
