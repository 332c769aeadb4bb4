"""``scale_by_sparse_adam``: lazy Adam moments for sparse gradients (``torch.optim.SparseAdam``)."""

from __future__ import annotations

from typing import Any, NamedTuple

import torch
from torch import Tensor

from functional_optim import _validation, ops, tree
from functional_optim._leafwise import update_leaves
from functional_optim.core import GradientTransformation, Hyperparam, Params, Updates
from functional_optim.hyperparams import schedulable
from functional_optim.transforms import _steps

__all__ = ["ScaleBySparseAdamState", "scale_by_sparse_adam"]


class ScaleBySparseAdamState(NamedTuple):
    """Per-parameter state of [`scale_by_sparse_adam`][] (names and order as ``torch.optim.SparseAdam``).

    ``step`` is a 0-dim float tensor (like the other transforms' counters) where torch keeps a
    Python ``int``; the values are the same and adapters convert between the two.
    """

    step: Any
    exp_avg: Any
    exp_avg_sq: Any


def _sparse_like(grad: Tensor, values: Tensor) -> Tensor:
    """A coalesced sparse tensor with ``grad``'s indices and shape and the given values."""
    return torch.sparse_coo_tensor(
        grad._indices(), values, grad.shape, is_coalesced=True, check_invariants=False
    )


def _check_params(params: Params) -> None:
    leaves, spec = tree.flatten(params)
    names = tree.leaf_names(spec)
    for name, p in zip(names, leaves, strict=True):
        if p is None:
            continue
        if p.is_sparse:
            raise ValueError(
                f"scale_by_sparse_adam: parameter '{name}' is sparse: "
                "SparseAdam requires dense parameter tensors"
            )
        if p.is_complex():
            raise ValueError(
                f"scale_by_sparse_adam: parameter '{name}' is complex: "
                "SparseAdam does not support complex parameters"
            )


@schedulable("b1", "b2", "eps")
def scale_by_sparse_adam(
    b1: Hyperparam = 0.9, b2: Hyperparam = 0.999, eps: Hyperparam = 1e-8
) -> GradientTransformation:
    r"""Adam's moments for sparse COO gradients, updated only where the gradient has entries.

    The gradient is coalesced (duplicate indices summed); with ``I`` its indices and ``t`` the
    parameter's step count after increment, at the entries ``I`` only:

    $$
    \begin{aligned}
    &m_I \leftarrow m_I + (1-\beta_1)(g_I - m_I),\qquad
    v_I \leftarrow v_I + (1-\beta_2)(g_I^2 - v_I) \\
    &u_I = \frac{\sqrt{1-\beta_2^t}}{1-\beta_1^t}\cdot\frac{m_I}{\sqrt{v_I} + \epsilon}
    \end{aligned}
    $$

    and ``u = 0`` elsewhere. This is ``torch.optim.SparseAdam``'s "efficient" form: ``eps`` is
    added to the *uncorrected* ``sqrt(v)`` and the bias corrections are folded into the step
    size (torch's ``lr·sqrt(bc2)/bc1``; here the ``lr`` factor is left to
    [`scale_by_learning_rate`][]). Entries the gradient does not touch are never decayed
    (lazy moments). ``step`` is incremented for every parameter with a (sparse) gradient, even
    one with no stored entries, in which case nothing else changes.

    The emitted update is a **sparse** COO tensor (coalesced, the gradient's indices) so
    ``scale_by_learning_rate`` and ``apply_updates`` (``p + u``, dense + sparse) touch only the
    gradient's rows and no dense update is materialized. A dense gradient raises
    ``RuntimeError`` as in torch; complex or sparse parameters raise ``ValueError`` at ``init``.

    Args:
      b1: decay of the first moment (``betas[0]``).
      b2: decay of the second moment (``betas[1]``).
      eps: added to ``sqrt(v)`` (not bias-corrected).

    Example:
        >>> emb = torch.nn.Embedding(1000, 16, sparse=True)
        >>> params = {"weight": emb.weight.detach()}
        >>> opt = fo.chain(fo.scale_by_sparse_adam(), fo.scale_by_learning_rate(1e-3))
        >>> emb(torch.tensor([3])).sum().backward()
        >>> updates, _ = opt.update({"weight": emb.weight.grad}, opt.init(params), params)
        >>> updates["weight"].is_sparse
        True

    References:
      Kingma & Ba, "Adam: A Method for Stochastic Optimization", ICLR 2015 (section 2, the
      efficient form); ``torch.optim.SparseAdam``.
    """
    _validation.require(lambda v: v > 0.0, eps, f"Invalid epsilon value: {eps}")
    _validation.beta("b1", b1, 0)
    _validation.beta("b2", b2, 1)

    def init_fn(params: Params) -> ScaleBySparseAdamState:
        _check_params(params)
        return ScaleBySparseAdamState(
            step=_steps.zeros(params), exp_avg=tree.zeros_like(params), exp_avg_sq=tree.zeros_like(params)
        )

    def update_fn(
        updates: Updates, state: ScaleBySparseAdamState, params: Params | None = None, **extra: Any
    ):
        del extra
        beta1, beta2, eps_ = ops.scalar(b1), ops.scalar(b2), ops.scalar(eps)  # type: ignore[arg-type]

        def sparse_adam(grads: list[Tensor], fields: list[list[Tensor]], _: Any):
            for g in grads:
                if not g.is_sparse:
                    raise RuntimeError(
                        "SparseAdam does not support dense gradients, please consider Adam instead"
                    )
            steps = _steps.increment(fields[0])
            step_sizes = _steps.coefficients(steps, lambda t: (1 - beta2**t) ** 0.5 / (1 - beta1**t))
            out_u, out_m, out_v = [], [], []
            for g, m, v, step_size in zip(grads, fields[1], fields[2], step_sizes, strict=True):
                g = g.coalesce()  # the update is non-linear, so indices must be unique
                values = g.values()  # (coalesced) ``values()`` is differentiable, ``_values()`` is not
                if values.numel() == 0:
                    out_u.append(g)
                    out_m.append(m)
                    out_v.append(v)
                    continue
                old_m = m.sparse_mask(g).values()
                m_delta = (values - old_m) * (1 - beta1)
                old_v = v.sparse_mask(g).values()
                v_delta = (values.pow(2) - old_v) * (1 - beta2)
                out_m.append(m + _sparse_like(g, m_delta))
                out_v.append(v + _sparse_like(g, v_delta))
                denom = ops.sqrt([v_delta + old_v])[0] + eps_  # safe at 0 when differentiated
                out_u.append(_sparse_like(g, (m_delta + old_m) / denom * step_size))
            return out_u, [steps, out_m, out_v]

        fields = [state.step, state.exp_avg, state.exp_avg_sq]
        new_updates, new = update_leaves(
            sparse_adam,
            updates,
            fields,
            params,
            name="scale_by_sparse_adam",
            state=state,
            dense="SparseAdam does not support dense gradients, please consider Adam instead",
        )
        return new_updates, ScaleBySparseAdamState(*new)

    return GradientTransformation(init_fn, update_fn)
