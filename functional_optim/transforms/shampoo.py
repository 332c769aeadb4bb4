"""``scale_by_shampoo``: Shampoo's Kronecker-factored preconditioner (Gupta et al. 2018), in the
form of Distributed Shampoo (Shi et al. 2023)."""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from fractions import Fraction
from typing import Any, NamedTuple, cast

import torch
from torch import Tensor

from functional_optim import _validation, ops, tree
from functional_optim._leafwise import update_leaves
from functional_optim.core import GradientTransformation, Hyperparam, Params, Updates
from functional_optim.hyperparams import schedulable
from functional_optim.transforms import _steps

__all__ = ["ScaleByShampooState", "matrix_inverse_root", "scale_by_shampoo", "shampoo_inverse_exponents"]


class ScaleByShampooState(NamedTuple):
    """Per-parameter state of [`scale_by_shampoo`][].

    Attributes:
      step: updates seen (0-dim).
      factor_matrices: a tuple with one ``d × d`` matrix per preconditioned dimension (Distributed
        Shampoo's ``factor_matrices``: ``L``, ``R``... in ``factor_matrix_dtype``).
      inv_factor_matrices: their inverse roots, last recomputed at an amortised step (identity
        before the first one).
    """

    step: Any
    factor_matrices: Any
    inv_factor_matrices: Any


def shampoo_inverse_exponents(
    order: int, override: Mapping[int, Mapping[int, float] | float] | None = None
) -> tuple[float, ...]:
    """The inverse exponent of each dimension of an ``order``-dimensional tensor: ``1/(2·order)``
    (``-1/4`` per side of a matrix, ``-1/2`` for a vector) unless ``override`` gives one for the
    order (a float for every dimension, or a ``{dim: exponent}`` dict), as Distributed Shampoo's
    ``inverse_exponent_override``. ``0`` means: not preconditioned.

    Example:
      >>> fo.shampoo_inverse_exponents(2), fo.shampoo_inverse_exponents(3, {3: {0: 0.0, 1: 0.25}})
      ((0.25, 0.25), (0.0, 0.25, 0.16666666666666666))
    """
    default = 1 / (2 * max(order, 1))
    rule = (override or {}).get(order, {})
    if isinstance(rule, Mapping):
        return tuple(float(rule.get(d, default)) for d in range(max(order, 1)))
    return (float(rule),) * max(order, 1)


def matrix_inverse_root(a: Tensor, root: float | Fraction, epsilon: float) -> Tensor:
    r"""``(A + εI)^{-1/root}`` of a symmetric matrix by ``eigh``, as Distributed Shampoo's default
    (``EigenConfig`` with ``perturb_before_computation``): if the smallest eigenvalue ``λ_min`` of
    ``A + εI`` is below ``ε`` the eigenvalues are shifted by ``ε - λ_min``.

    $$
    A + \epsilon I = Q\,\mathrm{diag}(\lambda)\,Q^\top,\quad
    X = Q\,\mathrm{diag}(\lambda^{-1/r})\,Q^\top
    $$

    Example:
      >>> fo.matrix_inverse_root(torch.diag(torch.tensor([4.0, 16.0])), 2, 0.0)
      tensor([[0.5000, 0.0000],
              [0.0000, 0.2500]])
    """
    eye = torch.eye(a.shape[0], dtype=a.dtype, device=a.device)
    lam, q = torch.linalg.eigh(a.add(eye, alpha=epsilon) if epsilon != 0 else a)
    lam_min = float(lam.min())
    if lam_min < epsilon:
        lam = lam + (-lam_min)
        lam = lam + epsilon
    return q * lam.pow(-1.0 / float(root)).unsqueeze(0) @ q.T


def _precondition(x: Tensor, flags: Sequence[bool], invs: Sequence[Tensor]) -> Tensor:
    """Contract every preconditioned dimension of ``x`` with its inverse root (in their dtype), one
    dimension at a time (a dimension without a preconditioner is only cycled to the end)."""
    if not invs:
        return x
    dtype = invs[0].dtype
    it = iter(invs)
    y = x
    for flag in flags:
        y = (
            torch.tensordot(y.to(dtype), next(it), dims=([0], [0]))
            if flag
            else y.permute(*range(1, y.dim()), 0)
        )
    return y.to(x.dtype)


@schedulable("b2", "epsilon")
def scale_by_shampoo(
    b2: Hyperparam = 1.0,
    epsilon: Hyperparam = 1e-12,
    precondition_frequency: int = 1,
    start_preconditioning_step: int = -1,
    use_bias_correction: bool = True,
    inverse_exponent_override: Mapping[int, Mapping[int, float] | float] | None = None,
    *,
    factor_matrix_dtype: torch.dtype | None = torch.float32,
) -> GradientTransformation:
    r"""Shampoo's preconditioner: Kronecker factors of the gradient's outer products and their
    inverse roots, as Distributed Shampoo's ``RootInvShampooPreconditionerList``.

    For a gradient ``G`` of order ``k`` (a matrix: ``k = 2``), for every dimension ``i`` with an
    inverse exponent ``e_i`` (default ``1/(2k)``: ``-1/4`` per side of a matrix):

    ```text
    F_i ← β₂ F_i + w · G_(i) G_(i)ᵀ        (w = 1 if β₂ = 1, else 1 - β₂; F_i = 0 at first)
    at an amortised step: F̂_i = (F_i / (1 - β₂ᵗ))^{-e_i}  by eigh with ε (matrix_inverse_root)
    u = G ×₁ F̂_1 ×₂ F̂_2 … ×_k F̂_k           (= F̂_L G F̂_R for a matrix)
    ```

    ``G_(i)`` is ``G`` with every dimension but ``i`` contracted. The inverse roots start as the
    identity and are recomputed at step ``t`` if ``t % precondition_frequency == 0`` and ``t >
    start_preconditioning_step``, or ``t == start_preconditioning_step`` (``-1``: the frequency).
    Under [`precondition_momentum`][functional_optim.combinators.precondition_momentum] the statistics come
    from the gradient and
    the preconditioner is applied to the ``apply_to`` extra (the filtered gradient). Blocking of
    large dimensions is [`blockwise`][functional_optim.combinators.blockwise]; grafting is
    [`graft`][functional_optim.graft].

    Not for ``torch.func.vmap`` / ``torch.compile(fullgraph=True)`` (``eigh`` and the step-dependent
    branch read Python numbers); differentiating through ``eigh`` is not meaningful either.

    Args:
      b2: EMA factor of the factor matrices (``1``: AdaGrad-style sums, the reference's default).
      epsilon: added to the factor matrices' eigenvalues before the root.
      precondition_frequency: steps between recomputations of the inverse roots.
      start_preconditioning_step: the first recomputation (``-1``: ``precondition_frequency``).
      use_bias_correction: divide ``F`` by ``1 - β₂ᵗ`` before the root (when ``β₂ < 1``).
      inverse_exponent_override: per tensor order, a float for every dimension or a
        ``{dim: exponent}`` dict; ``0`` leaves a dimension unpreconditioned
        (see [`shampoo_inverse_exponents`][functional_optim.shampoo_inverse_exponents]).
      factor_matrix_dtype: dtype of the factor matrices and their roots (float32 as the reference;
        ``None``: the parameter's dtype).

    Example:
      >>> opt = fo.chain(fo.scale_by_shampoo(), fo.scale_by_learning_rate(0.1))
      >>> params = {"w": torch.ones(4, 3)}
      >>> updates, state = opt.update({"w": torch.randn(4, 3)}, opt.init(params), params)
      >>> shapes = [tuple(m.shape) for m in state[0].factor_matrices["w"]]
      >>> shapes
      [(4, 4), (3, 3)]

    References:
      Gupta, Koren & Singer, "Shampoo: Preconditioned Stochastic Tensor Optimization", ICML 2018;
      Shi et al., "A Distributed Data-Parallel PyTorch Implementation of the Distributed Shampoo
      Optimizer for Training Neural Networks At-Scale", arXiv:2309.06497, 2023
      (github.com/facebookresearch/optimizers).
    """
    _validation.require(lambda v: 0.0 <= v <= 1.0, b2, f"scale_by_shampoo: b2 must be in [0, 1], got {b2}")
    _validation.require(lambda v: v > 0.0, epsilon, f"scale_by_shampoo: epsilon must be > 0, got {epsilon}")
    if not isinstance(precondition_frequency, int) or precondition_frequency < 1:
        raise ValueError(
            f"scale_by_shampoo: precondition_frequency must be a positive int, got {precondition_frequency!r}"
        )
    if not isinstance(start_preconditioning_step, int) or start_preconditioning_step < -1:
        raise ValueError(
            "scale_by_shampoo: start_preconditioning_step must be an int >= -1, "
            f"got {start_preconditioning_step!r}"
        )
    for order, rule in (inverse_exponent_override or {}).items():
        values = rule.values() if isinstance(rule, Mapping) else [rule]
        if not isinstance(order, int) or order < 0 or any(float(v) < 0 for v in values):
            raise ValueError(
                f"scale_by_shampoo: inverse_exponent_override must map orders >= 0 to exponents >= 0, "
                f"got {order!r}: {rule!r}"
            )
    if factor_matrix_dtype is not None and not (
        isinstance(factor_matrix_dtype, torch.dtype) and factor_matrix_dtype.is_floating_point
    ):
        raise ValueError(
            "scale_by_shampoo: factor_matrix_dtype must be None or a floating dtype, "
            f"got {factor_matrix_dtype!r}"
        )
    start = precondition_frequency if start_preconditioning_step == -1 else start_preconditioning_step
    first_root = start if start >= 1 else precondition_frequency

    def layout(shape: Sequence[int]) -> tuple[tuple[int, ...], list[bool], list[float]]:
        dims = tuple(int(s) for s in shape) or (1,)
        exps = shampoo_inverse_exponents(len(dims), inverse_exponent_override)
        return dims, [e != 0.0 for e in exps], [1.0 / e for e in exps if e != 0.0]

    def init_leaf(p: Tensor) -> tuple[tuple[Tensor, ...], tuple[Tensor, ...]]:
        dims, flags, _ = layout(p.shape)
        dtype = factor_matrix_dtype or p.dtype
        sizes = [d for d, f in zip(dims, flags, strict=True) if f]
        fms = tuple(torch.zeros(d, d, dtype=dtype, device=p.device) for d in sizes)
        invs = tuple(torch.eye(d, dtype=dtype, device=p.device) for d in sizes)
        return fms, invs

    def init_fn(params: Params) -> ScaleByShampooState:
        leaves, spec = tree.flatten(params)
        pairs = [None if p is None else init_leaf(p) for p in leaves]
        fms = tree.unflatten(spec, [None if x is None else x[0] for x in pairs])
        invs = tree.unflatten(spec, [None if x is None else x[1] for x in pairs])
        return ScaleByShampooState(_steps.zeros(params), fms, invs)

    def update_fn(updates: Updates, state: ScaleByShampooState, params: Params | None = None, **extra: Any):
        del params
        beta2, eps = float(ops.scalar(cast(Any, b2))), float(ops.scalar(cast(Any, epsilon)))
        weight = 1.0 if beta2 == 1.0 else 1.0 - beta2
        apply_to = extra.get("apply_to")
        spec = tree.structure(updates)
        targets = (
            None if apply_to is None else tree.flatten_like(spec, apply_to, "scale_by_shampoo: apply_to")
        )
        present = [i for i, g in enumerate(tree.leaves(updates)) if g is not None]

        def leaf(g: Tensor, x: Tensor, step: Tensor, fms: tuple, invs: tuple) -> tuple[Tensor, list[Any]]:
            if g.numel() == 0:  # nothing to precondition (the reference skips empty gradients)
                return x, [step + 1, fms, invs]
            dims, flags, roots = layout(g.shape)
            gv = g.reshape(dims)
            t = float(step) + 1.0
            order = len(dims)
            outers = [
                torch.tensordot(gv, gv, dims=[[*others], [*others]])
                for k in range(order)
                if flags[k]
                for others in [list(itertools.chain(range(k), range(k + 1, order)))]
            ]
            if beta2 != 1.0:
                fms = tuple(f * beta2 for f in fms)
            new_fms = tuple(
                torch.add(f, o.to(f.dtype), alpha=weight) for f, o in zip(fms, outers, strict=True)
            )
            if (t % precondition_frequency == 0 and t > start) or t == start:
                bc2 = 1.0 - beta2**t if use_bias_correction and beta2 < 1.0 else 1.0
                new_invs = []
                for f, inv, root in zip(new_fms, invs, roots, strict=True):
                    try:
                        new_invs.append(matrix_inverse_root(f / bc2, root, eps).to(inv.dtype))
                    except torch.linalg.LinAlgError:  # pragma: no cover - keep the last good root
                        new_invs.append(inv)
                invs = tuple(new_invs)
            if t < first_root and invs:  # the roots are still the identity: x (in their dtype), exactly
                return x.to(invs[0].dtype).to(x.dtype), [step + 1, new_fms, invs]
            u = _precondition(x.reshape(dims), flags, invs).reshape(x.shape)
            return u, [step + 1, new_fms, invs]

        def fn(grads: list[Tensor], cols: list[list[Any]], _: Any) -> tuple[list[Tensor], list[list[Any]]]:
            xs = grads if targets is None else [targets[i] for i in present]
            outs = [leaf(g, x, *(c[j] for c in cols)) for j, (g, x) in enumerate(zip(grads, xs, strict=True))]
            return [o[0] for o in outs], [[o[1][k] for o in outs] for k in range(3)]

        new_updates, new_fields = update_leaves(
            fn, updates, list(state), name="scale_by_shampoo", elementwise_state=False
        )
        return new_updates, ScaleByShampooState(*new_fields)

    return GradientTransformation(init_fn, update_fn)
