"""``scale_by_kron``: PSGD's Kronecker-factored whitening preconditioner (Li 2015/2018), as the
``Kron`` optimizer (Evan Walters' ``kron_torch``)."""

from __future__ import annotations

import functools
import math
import string
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import torch
from torch import Tensor

from functional_optim import _validation, tree
from functional_optim._leafwise import update_leaves
from functional_optim.core import GradientTransformation, Params, Updates

__all__ = ["ScaleByKronState", "kron_merged_shape", "precond_update_prob_schedule", "scale_by_kron"]

_LETTERS = string.ascii_lowercase + string.ascii_uppercase
_MEMORY_SAVE_MODES = (None, "smart_one_diag", "one_diag", "all_diag")
_DAMPING = math.sqrt(torch.finfo(torch.float32).eps)  # the reference's sqrt(eps_float32) noise scale


class ScaleByKronState(NamedTuple):
    """State of [`scale_by_kron`][].

    Attributes:
      count: calls so far (0-dim int32; the reference's ``_prob_step``, the schedule's argument).
      update_counter: calls since the last preconditioner update (0-dim int32).
      num_updates: preconditioner updates so far (0-dim int64; balancing every 100th).
      rng: the state of the ``torch.Generator`` that draws the probe vectors (``get_state()``):
        the update is a deterministic function of its inputs and this state.
      Q: per parameter, a tuple with one factor per dimension of its (merged) shape: an
        upper-triangular matrix, or a vector for a diagonal factor.
    """

    count: Any
    update_counter: Any
    num_updates: Any
    rng: Any
    Q: Any


def precond_update_prob_schedule(
    max_prob: float = 1.0, min_prob: float = 0.03, decay: float = 0.001, flat_start: float = 500
) -> Callable[[Tensor], Tensor]:
    """The reference's schedule of the preconditioner update probability: ``max_prob`` for
    ``flat_start`` steps, then ``max_prob·exp(-decay·(n - flat_start))`` down to ``min_prob``
    (computed in float32 as the reference).

    Example:
      >>> schedule = fo.precond_update_prob_schedule()
      >>> probs = [round(float(schedule(torch.tensor(n))), 4) for n in (0, 500, 1500, 5000)]
      >>> probs
      [1.0, 1.0, 0.3679, 0.03]
    """
    hi, lo = torch.tensor(max_prob), torch.tensor(min_prob)
    rate, start = torch.tensor(decay), torch.tensor(float(flat_start))

    def schedule(n: Tensor) -> Tensor:
        prob = hi * torch.exp(-rate * (n.to(torch.float32) - start))
        return prob.clamp(min=lo, max=hi)

    return schedule


def kron_merged_shape(shape: Sequence[int], merge_dims: bool = True) -> tuple[int, ...]:
    """The shape the reference preconditions a tensor of ``shape`` as: with ``merge_dims``, a tensor
    of more than 2 dimensions becomes ``(∏ shape[:-1], shape[-1])`` or ``(shape[0], ∏ shape[1:])``,
    the one with the smaller *signed* difference ``columns - rows`` (the reference's
    ``np.diff(shape1) <= np.diff(shape2)``: the taller one, not necessarily the squarer one).

    Example:
      >>> fo.kron_merged_shape((64, 3, 3, 3)), fo.kron_merged_shape((2, 3, 4, 100))
      ((576, 3), (24, 100))
    """
    shape = tuple(int(s) for s in shape)
    if len(shape) <= 2 or not merge_dims:
        return shape
    shape1 = (math.prod(shape[:-1]), shape[-1])
    shape2 = (shape[0], math.prod(shape[1:]))
    return shape1 if shape1[1] - shape1[0] <= shape2[1] - shape2[0] else shape2


@functools.lru_cache(maxsize=512)
def _exprs(diag: tuple[bool, ...]) -> tuple[str, tuple[str, ...], str]:
    """The reference's einsum expressions (``exprA``, ``exprGs``, ``exprP``) for factors ``diag``."""
    n = len(diag)
    if n == 0:
        return ",->", (",->",), ",,->"
    if n > 13:
        raise ValueError(f"scale_by_kron: a tensor of {n} dimensions: einsum runs out of letters")
    a1, a2, a3 = [], "", ""
    gs = []
    p1, p2, p3, p4 = [], [], "", ""
    for i, d in enumerate(diag):
        piece1 = "".join(_LETTERS[i + 13] if j == i else _LETTERS[j] for j in range(n))
        if d:
            a1.append(_LETTERS[i])
            a2 += _LETTERS[i]
            a3 += _LETTERS[i]
            gs.append(f"{piece1},{piece1}->{_LETTERS[i + 13]}")
            p1.append(_LETTERS[i + 13])
            p2.append(_LETTERS[i + 13])
            p3 += _LETTERS[i + 13]
            p4 += _LETTERS[i + 13]
        else:
            a, b, c = _LETTERS[i], _LETTERS[i + 13], _LETTERS[i + 26]
            a1.append(a + b)
            a2 += b
            a3 += a
            piece2 = "".join(_LETTERS[i + 26] if j == i else _LETTERS[j] for j in range(n))
            gs.append(f"{piece1},{piece2}->{b}{c}")
            p1.append(a + b)
            p2.append(a + c)
            p3 += c
            p4 += b
    return (
        ",".join(a1) + "," + a2 + "->" + a3,
        tuple(gs),
        ",".join(p1) + "," + ",".join(p2) + "," + p3 + "->" + p4,
    )


def _diag_flags(
    shape: tuple[int, ...], max_size: int, min_ndim: int, memory_save_mode: str | None
) -> tuple[bool, ...]:
    n = len(shape)
    flags = [False] * n
    if n and memory_save_mode == "smart_one_diag":
        ordered = sorted(shape)
        if n > 1 and ordered[-1] > ordered[-2]:
            flags[max(range(n), key=lambda i: (shape[i], i))] = True
    elif n and memory_save_mode == "one_diag":
        flags[max(range(n), key=lambda i: (shape[i], i))] = True
    elif memory_save_mode == "all_diag":
        flags = [True] * n
    return tuple(f or s == 1 or s > max_size or n < min_ndim for s, f in zip(shape, flags, strict=True))


def _norm_lower_bound(a: Tensor, max_abs: Tensor) -> Tensor:
    """The reference's cheap lower bound of the spectral norm of ``a`` (``_lb``)."""
    a = a / max_abs
    col = torch.argmax(torch.einsum("ij,ij->j", a, a))
    x = torch.index_select(a, 1, col.reshape(1)).flatten().contiguous()
    x = torch.einsum("i,ij->j", x, a)
    x = x / x.norm()
    x = torch.einsum("j,kj->k", x, a)
    return x.norm() * max_abs


def _mode_product(x: Tensor, q: Tensor, dim: int, transpose: bool = False) -> Tensor:
    """``x`` with ``q`` applied on dimension ``dim``: ``y[.., a, ..] = Σ_n q[a, n] x[.., n, ..]``
    (``qᵀ`` with ``transpose``); a vector ``q`` is a diagonal factor."""
    if q.dim() < 2:
        return x * q.reshape([-1 if d == dim else 1 for d in range(x.dim())])
    return torch.movedim(torch.tensordot(q, x, dims=([0 if transpose else 1], [dim])), 0, dim)


def _apply_q(x: Tensor, qs: Sequence[Tensor]) -> Tensor:
    """``Q x`` (the reference's ``exprA`` einsum, one dimension at a time: no path search)."""
    if x.dim() == 0:
        return qs[0] * x
    for i, q in enumerate(qs):
        x = _mode_product(x, q, i)
    return x


def _apply_qtq(x: Tensor, qs: Sequence[Tensor]) -> Tensor:
    """``QᵀQ x`` (the reference's ``exprP`` einsum, one dimension at a time)."""
    if x.dim() == 0:
        return qs[0] * qs[0] * x
    for i, q in enumerate(qs):
        x = _mode_product(_mode_product(x, q, i), q, i, transpose=True)
    return x


def _solve_triangular_right(x: Tensor, a: Tensor) -> Tensor:
    """``x @ inv(a)`` over the last dimension, ``a`` upper triangular (in ``a``'s dtype)."""
    return torch.linalg.solve_triangular(a, x.reshape(-1, x.size(-1)), upper=True, left=False).reshape_as(x)


def _update_q(
    qs: tuple[Tensor, ...],
    exprs: tuple[str, tuple[str, ...], str],
    g: Tensor,
    v: Tensor,
    lr: float,
    tiny: float,
) -> tuple[Tensor, ...]:
    """One preconditioner fitting step on the pair ``(v, g + damping·mean|g|·v)`` (new factors)."""
    order = g.dim()
    g = g + _DAMPING * g.abs().mean() * v
    conj_b = v.permute(*range(1, order), 0) if order else v
    for i, q in enumerate(qs):
        conj_b = conj_b / q if q.dim() < 2 else _solve_triangular_right(conj_b, q)
        if i < order - 1:
            conj_b = torch.transpose(conj_b, i, order - 1)
    a = _apply_q(g, qs)
    out = []
    for q, expr in zip(qs, exprs[1], strict=True):
        term1 = torch.einsum(expr, a, a)
        term2 = torch.einsum(expr, conj_b, conj_b)
        diff, total = (term1 - term2) * lr, term1 + term2
        norm = total.norm(float("inf"))
        if q.dim() < 2:
            out.append(q - diff * (q / norm.clamp(min=tiny)))
        else:
            bound = torch.where(norm > 0, _norm_lower_bound(total, norm), norm).clamp(min=tiny)
            out.append(q - torch.mm(torch.triu(diff) / bound, q))
    return tuple(out)


def _generator_state(device: torch.device, seed: int | None) -> Tensor:
    """A generator state for ``device``: seeded with ``seed``, or a copy of torch's default
    generator of the device when ``seed`` is ``None`` (which is not advanced)."""
    if seed is not None:
        return torch.Generator(device=device).manual_seed(seed).get_state()
    if device.type == "cpu":
        return torch.random.get_rng_state()
    if device.type == "cuda":
        return torch.cuda.get_rng_state(device)
    raise ValueError(f"scale_by_kron: seed=None needs a CPU or CUDA device, got {device}")


def _balance(qs: tuple[Tensor, ...]) -> tuple[Tensor, ...]:
    """Rescale the factors to equal infinity norms (their product unchanged)."""
    norms = torch.stack([q.norm(float("inf")) for q in qs])
    scale = norms.log().mean().exp() / norms
    return tuple(q * s for q, s in zip(qs, scale, strict=True))


def scale_by_kron(
    preconditioner_update_probability: float | Callable[[Tensor], Any] | None = None,
    max_size_triangular: int = 8192,
    min_ndim_triangular: int = 2,
    memory_save_mode: str | None = None,
    precond_lr: float = 0.1,
    precond_init_scale: float = 1.0,
    merge_dims: bool = True,
    precond_dtype: torch.dtype | None = None,
    *,
    seed: int | None = 0,
    balance_every: int = 100,
) -> GradientTransformation:
    r"""PSGD's Kronecker-factored preconditioner ``P = QᵀQ`` (Li 2018), fitted on random probes,
    as the ``Kron`` optimizer (kron_torch).

    For a gradient (or momentum) ``G`` viewed as [`kron_merged_shape`][functional_optim.kron_merged_shape],
    each
    dimension ``i`` has a factor ``Q_i``: upper triangular (``scale^{1/k}·I`` at first), or
    diagonal for dimensions of size 1, larger than ``max_size_triangular``, tensors of fewer than
    ``min_ndim_triangular`` dimensions, or as ``memory_save_mode`` says. When the preconditioner
    is updated (see below):

    ```text
    V ~ N(0, I) (the generator in the state);   G' = G + √ε₃₂·mean|G|·V
    A = Q G'  (every Q_i on its dimension);      B = Q⁻ᵀ V  (triangular solves)
    for each i:  T₁ = A_(i) A_(i)ᵀ,  T₂ = B_(i) B_(i)ᵀ
        Q_i ← Q_i − precond_lr · triu(T₁ − T₂) Q_i / lb‖T₁ + T₂‖₂      (triangular)
        Q_i ← Q_i − precond_lr · (T₁ − T₂) ⊙ Q_i / ‖T₁ + T₂‖_∞           (diagonal)
    u = QᵀQ x,  then  u ← u · min(1, 1.1 / (rms(u) + 1e-12))
    ```

    (``lb``: the reference's cheap lower bound of the spectral norm.) The update happens when
    ``calls since the last one >= 1 / p``, with ``p = preconditioner_update_probability`` (a float,
    a callable of the call count as a float32 tensor, or ``None`` for
    [`precond_update_prob_schedule`][functional_optim.precond_update_prob_schedule]), deterministically as
    the reference.
    Every ``balance_every``-th update first rescales the factors to equal infinity norms (the
    reference does it with probability 1%; the product ``QᵀQ`` is unchanged either way). ``x`` is
    the input, or the ``apply_to`` extra under
    [`precondition_momentum`][functional_optim.combinators.precondition_momentum].

    **Randomness.** The probes come from a ``torch.Generator`` whose state (``get_state()``) is
    part of the transform's state: ``update`` is a pure function of its arguments, and the same
    state gives the same step. It is seeded with ``seed`` at ``init``, on the device of the first
    parameter, and draws one probe per leaf with a gradient at update steps, in the tree's leaf
    order (optree's: a dict's keys sorted; a list in order, as the drop-in). The reference draws
    the same probes with ``torch.randn_like`` from torch's global generator after
    ``torch.manual_seed(seed)``, in parameter order.

    Not for ``torch.func.vmap`` / ``torch.compile(fullgraph=True)``: the update decision and the
    generator state are read as Python values.

    Args:
      preconditioner_update_probability: float in ``(0, 1]``, schedule, or ``None`` (default schedule).
      max_size_triangular: dimensions larger than this get a diagonal factor.
      min_ndim_triangular: tensors with fewer dimensions get diagonal factors only.
      memory_save_mode: ``None``, ``"smart_one_diag"``, ``"one_diag"`` or ``"all_diag"``.
      precond_lr: the preconditioner's step size.
      precond_init_scale: the initial ``Q = scale·I`` (``scale^{1/k}`` per factor).
      merge_dims: view tensors of more than 2 dimensions as matrices.
      precond_dtype: dtype of the factors and of the preconditioning (``None``: float32, as the reference).
      seed: seed of the probe generator; ``None``: a copy of torch's default generator of the
        parameters' device at ``init`` (as the reference, which draws from it after
        ``torch.manual_seed``).
      balance_every: balance the factors at every this-many-th update (0: never).

    Example:
      >>> opt = fo.chain(fo.scale_by_kron(seed=1), fo.scale_by_learning_rate(3e-4))
      >>> params = {"w": torch.ones(4, 3)}
      >>> updates, state = opt.update({"w": torch.randn(4, 3)}, opt.init(params), params)
      >>> shapes = [tuple(q.shape) for q in state[0].Q["w"]]
      >>> shapes
      [(4, 4), (3, 3)]

    References:
      Li, "Preconditioned Stochastic Gradient Descent", IEEE TNNLS 2018 (arXiv:1512.04202);
      Li, "Black Box Lie Group Preconditioners for SGD", arXiv:2211.04422, 2022;
      github.com/evanatyourservice/kron_torch (``Kron``), github.com/lixilinx/psgd_torch.
    """
    prob = preconditioner_update_probability
    if prob is None:
        prob = precond_update_prob_schedule()
    elif not callable(prob) and not (isinstance(prob, int | float) and 0.0 < prob <= 1.0):
        raise ValueError(
            "scale_by_kron: preconditioner_update_probability must be in (0, 1], a callable or None, "
            f"got {prob!r}"
        )
    if memory_save_mode not in _MEMORY_SAVE_MODES:
        raise ValueError(
            f"scale_by_kron: memory_save_mode must be one of {list(_MEMORY_SAVE_MODES)}, "
            f"got {memory_save_mode!r}"
        )
    for name, value in (
        ("max_size_triangular", max_size_triangular),
        ("min_ndim_triangular", min_ndim_triangular),
    ):
        if not isinstance(value, int) or value < 0:
            raise ValueError(f"scale_by_kron: {name} must be an int >= 0, got {value!r}")
    _validation.require(
        lambda v: v > 0.0, precond_lr, f"scale_by_kron: precond_lr must be > 0, got {precond_lr}"
    )
    _validation.require(
        lambda v: v > 0.0,
        precond_init_scale,
        f"scale_by_kron: precond_init_scale must be > 0, got {precond_init_scale}",
    )
    if precond_dtype is not None and not (
        isinstance(precond_dtype, torch.dtype) and precond_dtype.is_floating_point
    ):
        raise ValueError(
            f"scale_by_kron: precond_dtype must be None or a floating dtype, got {precond_dtype!r}"
        )
    if not isinstance(balance_every, int) or balance_every < 0:
        raise ValueError(f"scale_by_kron: balance_every must be an int >= 0, got {balance_every!r}")
    dtype = precond_dtype or torch.float32
    tiny = torch.finfo(dtype).tiny

    def layout(shape: Sequence[int]) -> tuple[tuple[int, ...], tuple[bool, ...]]:
        view = kron_merged_shape(shape, merge_dims)
        return view, _diag_flags(view, max_size_triangular, min_ndim_triangular, memory_save_mode)

    def init_leaf(p: Tensor) -> tuple[Tensor, ...]:
        view, diag = layout(p.shape)
        if not view:
            return (torch.full((), precond_init_scale, dtype=dtype, device=p.device),)
        s = precond_init_scale ** (1 / len(view))
        return tuple(
            s
            * (
                torch.ones(n, dtype=dtype, device=p.device)
                if d
                else torch.eye(n, dtype=dtype, device=p.device)
            )
            for n, d in zip(view, diag, strict=True)
        )

    def init_fn(params: Params) -> ScaleByKronState:
        leaves = [p for p in tree.leaves(params) if p is not None]
        device = leaves[0].device if leaves else torch.device("cpu")
        rng = _generator_state(device, seed)
        zero = torch.zeros((), dtype=torch.int32)
        qs = tree.map(lambda p: None if p is None else init_leaf(p), params)
        return ScaleByKronState(zero, zero, torch.zeros((), dtype=torch.int64), rng, qs)

    def update_fn(updates: Updates, state: ScaleByKronState, params: Params | None = None, **extra: Any):
        del params
        p = prob(state.count.to(torch.float32)) if callable(prob) else prob
        counter = state.update_counter + 1
        do_update = bool(counter >= 1 / p)
        num_updates = state.num_updates + 1 if do_update else state.num_updates
        balance = do_update and balance_every > 0 and int(num_updates) % balance_every == 0
        apply_to = extra.get("apply_to")
        spec = tree.structure(updates)
        targets = None if apply_to is None else tree.flatten_like(spec, apply_to, "scale_by_kron: apply_to")
        present = [i for i, g in enumerate(tree.leaves(updates)) if g is not None]
        rng = state.rng

        def fn(grads: list[Tensor], cols: list[list[Any]], _: Any) -> tuple[list[Tensor], list[list[Any]]]:
            nonlocal rng
            gen = None
            if do_update:
                gen = torch.Generator(device=grads[0].device)
                gen.set_state(rng)
            xs = grads if targets is None else [targets[i] for i in present]
            outs, new_qs = [], []
            for g, x, qs in zip(grads, xs, cols[0], strict=True):
                if g.numel() == 0:  # nothing to fit or precondition (no probe drawn)
                    outs.append(x)
                    new_qs.append(qs)
                    continue
                view, diag = layout(g.shape)
                exprs = _exprs(diag)
                if balance and len(view) > 1:
                    qs = _balance(qs)
                if gen is not None:
                    gv = g.reshape(view).to(dtype)
                    v = torch.randn(gv.shape, dtype=dtype, device=gen.device, generator=gen).to(gv.device)
                    qs = _update_q(qs, exprs, gv, v, precond_lr, tiny)
                u = _apply_qtq(x.reshape(view).to(dtype), qs)
                u = u * torch.clamp(1.1 / (u.square().mean().sqrt() + 1e-12), max=1.0)
                outs.append(u.reshape(x.shape).to(x.dtype))
                new_qs.append(qs)
            if gen is not None:
                rng = gen.get_state()
            return outs, [new_qs]

        new_updates, (new_q,) = update_leaves(
            fn, updates, [state.Q], name="scale_by_kron", elementwise_state=False
        )
        counter = torch.zeros((), dtype=torch.int32) if do_update else counter
        return new_updates, ScaleByKronState(state.count + 1, counter, num_updates, rng, new_q)

    return GradientTransformation(init_fn, update_fn)
