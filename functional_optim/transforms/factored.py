"""``scale_by_factored_rms``: Adafactor's factored second moments and relative step size."""

from __future__ import annotations

from typing import Any, NamedTuple

import torch
from torch import Tensor

from functional_optim import _layout, _validation, ops, tree
from functional_optim._leafwise import update_leaves
from functional_optim.core import GradientTransformation, Hyperparam, Params, Updates
from functional_optim.hyperparams import schedulable
from functional_optim.transforms import _steps

__all__ = ["ScaleByFactoredRmsState", "scale_by_factored_rms"]


class ScaleByFactoredRmsState(NamedTuple):
    """Per-parameter state of [`scale_by_factored_rms`][] (names and shapes as ``torch.optim.Adafactor``).

    For a parameter with ``dim > 1``: ``row_var`` of shape ``shape[:-1] + (1,)`` and ``col_var`` of
    shape ``shape[:-2] + (1, shape[-1])`` (its ``variance`` leaf is ``()``); otherwise (vectors and
    0-dim tensors) ``variance`` like the parameter (its ``row_var``/``col_var`` leaves are ``()``).
    """

    step: Any
    row_var: Any
    col_var: Any
    variance: Any


def _row_shape(p: Tensor) -> list[int]:
    shape = list(p.shape)
    shape[-1] = 1
    return shape


def _col_shape(p: Tensor) -> list[int]:
    shape = list(p.shape)
    shape[-2] = 1
    return shape


def _host(x: Tensor) -> Any:
    """A 0-dim reduction as a Python float when it is safe to read, else the tensor.

    A norm of a DTensor shard is completed over its mesh first (``tree.to_global``): its ``.item()``
    alone would read the rank's own partial norm."""
    x = tree.to_global(x)
    return x if ops.is_traced(x) else x.item()


def _max(a: Any, b: Any) -> Any:
    if isinstance(a, float | int) and isinstance(b, float | int):
        return max(a, b)
    return torch.maximum(torch.as_tensor(a), torch.as_tensor(b))


def _min(a: Any, b: Any) -> Any:
    if isinstance(a, float | int) and isinstance(b, float | int):
        return min(a, b)
    return torch.minimum(torch.as_tensor(a), torch.as_tensor(b))


@schedulable("lr", "beta2_decay", "d")  # eps may hold None: static
def scale_by_factored_rms(
    lr: Hyperparam = 1e-2,
    beta2_decay: Hyperparam = -0.8,
    eps: tuple[Hyperparam | None, Hyperparam] = (None, 1e-3),
    d: Hyperparam = 1.0,
) -> GradientTransformation:
    r"""Adafactor's update, divided by the learning rate that [`scale_by_learning_rate`][] applies.

    With ``t`` the step count after increment, ``β̂_t = t^{beta2_decay}`` (``= 1 - β2_t``) and
    ``RMS(x) = ‖x‖₂/√numel``:

    $$
    \begin{aligned}
    &R_t = R_{t-1} + \hat\beta_t(\mathrm{mean}_{-1}(g^2) - R_{t-1}),\quad
    C_t = C_{t-1} + \hat\beta_t(\mathrm{mean}_{-2}(g^2) - C_{t-1}) \\
    &\hat V_t = \frac{R_t C_t}{\max(\epsilon_1, \mathrm{mean}_{-2}(R_t))}\ (\dim > 1),\qquad
    \hat V_t = V_{t-1} + \hat\beta_t(g^2 - V_{t-1})\ (\dim \le 1) \\
    &U_t = g / \sqrt{\max(\hat V_t, \epsilon_1^2)},\qquad
    u_t = \max(\epsilon_2, \mathrm{RMS}(p))\cdot\min\!\Big(1, \frac{1}{\mathrm{lr}\sqrt t}\Big)
          \cdot \frac{U_t}{\max(1, \mathrm{RMS}(U_t)/d)}
    \end{aligned}
    $$

    ``torch.optim.Adafactor`` steps by ``-α/max(1, RMS(U)/d) · U`` with the relative step size
    ``ρ_t = min(lr, 1/√t)`` and ``α = max(ε2, RMS(p))·ρ_t``. Here ``ρ_t/lr = min(1, 1/(lr√t))`` is
    applied and ``lr`` is left to ``scale_by_learning_rate(lr)``, so decoupled weight decay
    (``add_decayed_weights(wd)`` just before it) gives torch's ``p *= 1 - lr·wd``:
    ``chain(scale_by_factored_rms(lr, ...), add_decayed_weights(wd), scale_by_learning_rate(lr))``
    is Adafactor. ``RMS(p)`` uses the parameter before weight decay, as torch. The means of ``g²``
    are computed as ``‖g‖²/n`` along the dimension, as torch. ``eps1 = None`` means the machine
    epsilon of the dtype of the first parameter that has a gradient (torch's quirk: one value for
    the whole group). Needs ``params``. Complex parameters are not supported (as torch).

    Args:
      lr: the learning rate that will scale the update (it caps the relative step size).
      beta2_decay: exponent of the second-moment decay ``1-β2_t = t^{beta2_decay}``, ``<= 0``.
      eps: ``(eps1, eps2)``: ``eps1`` bounds the variance from below (``None``: dtype epsilon),
        ``eps2`` bounds ``RMS(p)`` from below in the step size.
      d: clipping threshold of the update's RMS, ``>= 1``.

    Example::

        lr = 1e-2
        opt = fo.chain(fo.scale_by_factored_rms(lr), fo.scale_by_learning_rate(lr))

    References:
      Shazeer & Stern, "Adafactor: Adaptive Learning Rates with Sublinear Memory Cost", ICML 2018.
    """
    if not isinstance(eps, tuple | list) or len(eps) != 2:
        raise ValueError(f"eps must be a pair (eps1, eps2), got {eps!r}")
    _validation.require(lambda v: v >= 0.0, lr, f"Learning rate should be >= 0 but is: {lr}")
    _validation.require(lambda v: v <= 0.0, beta2_decay, f"beta2_decay should be <= 0 but is: {beta2_decay}")
    if eps[0] is not None:
        _validation.require(lambda v: v >= 0.0, eps[0], f"epsilon1 should be >= 0 but is: {eps[0]}")
    _validation.require(lambda v: v >= 0.0, eps[1], f"epsilon2 should be >= 0 but is: {eps[1]}")
    _validation.require(lambda v: v >= 1.0, d, f"Clipping threshold d should be >= 1 but is: {d}")

    def init_fn(params: Params) -> ScaleByFactoredRmsState:
        def zeros(p: Tensor | None, shape_fn: Any, factored: bool) -> Tensor | tuple | None:
            if p is None:
                return None
            if (p.dim() > 1) != factored:
                return ()  # absent for this parameter (an empty node, see CONTRIBUTING)
            return p.new_zeros(shape_fn(p)) if shape_fn is not None else torch.zeros_like(p)

        return ScaleByFactoredRmsState(
            step=_steps.zeros(params),
            row_var=tree.map(lambda p: zeros(p, _row_shape, True), params),
            col_var=tree.map(lambda p: zeros(p, _col_shape, True), params),
            variance=tree.map(lambda p: zeros(p, None, False), params),
        )

    def update_fn(
        updates: Updates, state: ScaleByFactoredRmsState, params: Params | None = None, **extra: Any
    ):
        del extra
        _layout.expect_state(state, ScaleByFactoredRmsState, "scale_by_factored_rms")
        lr_, decay, eps2, d_ = ops.scalar(lr), ops.scalar(beta2_decay), ops.scalar(eps[1]), ops.scalar(d)
        eps1_given = None if eps[0] is None else ops.scalar(eps[0])

        def factored(grads: list[Tensor], fields: list[list[Tensor]], ps: list[Tensor]):
            steps = _steps.increment(fields[0])
            rows, cols, variances = fields[1], fields[2], fields[3]
            for p in ps:
                if p.is_complex():
                    raise RuntimeError("Adafactor does not support complex parameters")
            eps1 = torch.finfo(ps[0].dtype).eps if eps1_given is None else eps1_given
            beta_hat = _steps.coefficients(steps, lambda t: t**decay)

            def relative(t: Any) -> Any:  # rho_t / lr = min(1, 1 / (lr * sqrt(t)))
                if isinstance(t, float) and isinstance(lr_, float | int):
                    return 1.0 if lr_ == 0 else min(1.0, 1 / (lr_ * t**0.5))
                return torch.clamp(1 / (lr_ * t**0.5), max=1.0)

            rel = _steps.coefficients(steps, relative)
            out, new_rows, new_cols, new_vars = [], [], [], []
            for i, (g, p) in enumerate(zip(grads, ps, strict=True)):
                w = beta_hat[i] if isinstance(beta_hat[i], float) else beta_hat[i].to(g.dtype)
                if g.dim() > 1:
                    row_mean = torch.norm(g, dim=-1, keepdim=True).square().div(g.size(-1))
                    col_mean = torch.norm(g, dim=-2, keepdim=True).square().div(g.size(-2))
                    row = torch.lerp(rows[i], row_mean, w)
                    col = torch.lerp(cols[i], col_mean, w)
                    var = (row @ col).div(row.mean(dim=-2, keepdim=True).clamp(min=eps1))
                    new_rows.append(row)
                    new_cols.append(col)
                    new_vars.append(variances[i])
                else:
                    var = torch.lerp(variances[i], g * g, w)
                    new_rows.append(rows[i])
                    new_cols.append(cols[i])
                    new_vars.append(var)
                u = var.clamp(min=eps1 * eps1).rsqrt().mul(g)
                if u.numel() == 0:  # nothing to scale (RMS of an empty tensor is undefined)
                    out.append(tree.match_placement(u, g))
                    continue
                sqrt_n = u.numel() ** 0.5
                denom = _max(1.0, _host(u.norm(2)) / (sqrt_n * d_))
                scale = _max(eps2, _host(p.norm(2)) / sqrt_n) * rel[i] / denom
                u = u.mul(scale if isinstance(scale, float | int) else scale.to(u.dtype))
                out.append(tree.match_placement(u, g))
            return out, [steps, new_rows, new_cols, new_vars]

        new_updates, new = update_leaves(
            factored,
            updates,
            [state.step, state.row_var, state.col_var, state.variance],
            params,
            name="scale_by_factored_rms",
            need_params=True,
            sparse="Adafactor",
            state=state,
        )
        return new_updates, ScaleByFactoredRmsState(*new)

    return GradientTransformation(init_fn, update_fn)
