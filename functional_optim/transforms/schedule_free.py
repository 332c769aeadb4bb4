"""``schedule_free``: Schedule-Free iterate averaging around any base rule (Defazio et al., 2024)."""

from __future__ import annotations

from typing import Any, NamedTuple

import torch
from torch import Tensor

from functional_optim import _validation, fused, ops, tree
from functional_optim._leafwise import update_leaves
from functional_optim.core import (
    GradientTransformation,
    Hyperparam,
    Identity,
    L2Regularization,
    Params,
    Updates,
)
from functional_optim.hyperparams import schedulable
from functional_optim.rules import After, Begun, Lerp, Rule, RuleStep, Term, materialize, rule_transform, run
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

    def begin(state: ScheduleFreeState, grads: Any = None, fields: Any = None, params: Any = None) -> Begun:
        """The step's scalars (``schedulefree``'s group values, in double: Python numbers unless
        a value is traced): the interpolation weight ``c``, the coefficient of ``d`` in ``y`` and
        the step size of ``z``."""
        del grads, fields, params
        values = (state.count, state.lr_max, state.weight_sum, learning_rate, b1, r, weight_lr_power)
        host = _scalars.on_host(*values)
        if host is None:
            count, lr_max, weight_sum, lr, beta1, r_, p_ = (_scalars.f64(v) for v in values)
            lr, lr_max, weight_sum, ckp1, y_coef = _averaging_weights(
                count + 1, lr_max, weight_sum, lr, beta1, r_, p_, warmup_steps
            )
            context = (ops.scalar(ckp1), ops.scalar(y_coef), ops.scalar(lr))
            group = (state.count + 1, lr_max, weight_sum, _scalars.f64(b1))
        else:
            count, lr_max, weight_sum, lr, beta1, r_, p_ = host
            lr, lr_max, weight_sum, ckp1, y_coef = _averaging_weights(
                count + 1, lr_max, weight_sum, lr, beta1, r_, p_, warmup_steps
            )
            context = (ckp1, y_coef, lr)
            f64 = torch.float64
            group = (
                torch.scalar_tensor(count + 1, dtype=torch.int64),
                torch.scalar_tensor(lr_max, dtype=f64),
                torch.scalar_tensor(weight_sum, dtype=f64),
                torch.scalar_tensor(beta1, dtype=f64),
            )
        return Begun(context, (state.base_state, *group))

    inner = _fusable_base(base)
    if inner is None:  # an opaque base: its pure update, then the same averaging step

        def update_fn(updates: Updates, state: ScheduleFreeState, params: Params | None = None, **extra: Any):
            if params is None:
                raise ValueError("schedule_free needs the parameters: call update(grads, state, params)")
            begun = begin(state)
            directions, base_state = base.update(updates, state.base_state, params, **extra)

            def averaged(d: list[Tensor], fields: list[list[Tensor]], ys: list[Tensor]):
                terms, new_z = _averaging_terms(d, fields[0], begun.context, in_place=False)
                update = materialize(terms, ys, includes_learning_rate=True)
                return ops.view_as_complex_like(update, d), [new_z]

            new_updates, (z,) = update_leaves(averaged, directions, [state.z], params, name="schedule_free")
            _, count, lr_max, weight_sum, beta1 = begun.group
            return new_updates, ScheduleFreeState(z, base_state, count, lr_max, weight_sum, beta1)

        return GradientTransformation(init_fn, update_fn)

    base_rule, rule_path, weight_decay = inner

    def step(
        grads: list[Tensor], fields: list[list[Any]], ys: list[Tensor] | None, *, in_place: bool, context: Any
    ) -> RuleStep:
        directions, base_fields = grads, []
        if base_rule is not None:
            moved = run(
                base_rule, grads, fields[1:], ys if base_rule.needs_params else None, in_place=in_place
            )
            base_fields = moved.fields
            if moved.terms is None:
                assert moved.update is not None
                directions = moved.update
            else:
                directions = ops.view_as_complex_like(materialize(moved.terms, ys), grads)
        if weight_decay is not None:  # the base's L2 term, at y: d + wd·y
            assert ys is not None  # the rule needs the parameters
            directions = _scalars.axpy(directions, ys, ops.scalar(weight_decay))
        terms, new_z = _averaging_terms(directions, fields[0], context, in_place=in_place)
        return RuleStep([new_z, *base_fields], terms)

    def state_fields(state: ScheduleFreeState) -> list[Any]:
        inner_fields = (
            [] if base_rule is None else base_rule.fields(fused.get_path(state.base_state, rule_path))
        )
        return [state.z, *inner_fields]

    def as_state(new: list[Any], group: Any) -> ScheduleFreeState:
        base_state, count, lr_max, weight_sum, beta1 = group
        if base_rule is not None:
            base_state = fused.set_path(base_state, rule_path, base_rule.state(new[1:]))
        return ScheduleFreeState(new[0], base_state, count, lr_max, weight_sum, beta1)

    rule = Rule(
        "schedule_free",
        step,
        state_fields,
        as_state,
        needs_params=True,
        state_type=ScheduleFreeState,
        sparse=base_rule.sparse if base_rule is not None else True,
        includes_learning_rate=True,
        begin=begin,
        # without a base rule or decay every op is in place (y.lerp_, y.add_(g), z.sub_(g))
        temporaries=base_rule is not None or weight_decay is not None,
    )
    return rule_transform(init_fn, rule)


def _averaging_weights(
    k1: Any, lr_max: Any, weight_sum: Any, lr: Any, b1: Any, r: Any, weight_lr_power: Any, warmup_steps: int
) -> tuple[Any, Any, Any, Any, Any]:
    """Step ``k1``'s warmed-up learning rate, new ``lr_max`` and weight sum, the interpolation
    weight ``c = weight / weight_sum`` and the coefficient ``lr·(β1·(1 - c) - 1)`` of ``d`` in
    ``y``, as ``schedulefree`` computes them (Python numbers or 0-dim float64 tensors)."""
    if warmup_steps > 0:
        lr = lr * _scalars.minimum(k1 / warmup_steps, 1.0)
    lr_max = _scalars.maximum(lr_max, lr)
    weight = k1**r * lr_max**weight_lr_power
    weight_sum = weight_sum + weight
    ckp1 = _scalars.ratio_or_zero(weight, weight_sum)
    return lr, lr_max, weight_sum, ckp1, lr * (b1 * (1 - ckp1) - 1)


def _averaging_terms(
    directions: list[Tensor], z: list[Tensor], context: Any, *, in_place: bool
) -> tuple[list[Term | Lerp | After], list[Tensor]]:
    """Schedule-Free's move of ``y`` and ``z`` given the base's directions ``d``, as the
    ``schedulefree`` package writes it: ``y.lerp_(z, c)``, ``y.add_(d, alpha=a)``, then
    ``z.sub_(d, alpha=lr)``. Returns the terms and the list the new ``z`` is stored into (its
    step runs after the terms, which read the old ``z``)."""
    c, a, lr = context
    d_r, z_r = ops.view_as_real(directions), ops.view_as_real(z)
    new_z = list(z)

    def z_step(_: list[Tensor]) -> None:
        new_z[:] = ops.view_as_complex_like(ops.add(z_r, d_r, -lr, in_place=in_place), z)

    return [Lerp(z_r, c), Term(d_r, None, lambda s: s * a), After(z_step)], new_z


def _fusable_base(base: GradientTransformation) -> tuple[Rule | None, tuple[int, ...], Any] | None:
    """``(rule, path of its state, L2 weight decay)`` when ``base`` is, up to `identity`,
    ``[rule] [add_decayed_weights(wd)]`` with a per-parameter rule: then Schedule-Free is one
    rule whose step runs the base's rule (in place in the adapters' fused step). Else ``None``."""
    flat = [(t, path) for t, path in fused.flatten(base) if not isinstance(t.role, Identity)]
    weight_decay = None
    if flat and isinstance(flat[-1][0].role, L2Regularization):
        weight_decay = flat[-1][0].role.weight_decay
        flat = flat[:-1]
    if not flat:
        return None, (), weight_decay
    if len(flat) == 1:
        role = flat[0][0].role
        if isinstance(role, Rule) and role.begin is None and not role.includes_learning_rate:
            return role, flat[0][1], weight_decay
    return None


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
