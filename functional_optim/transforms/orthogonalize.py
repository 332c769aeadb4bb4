"""``orthogonalize``: batched Newton–Schulz orthogonalisation of matrix updates (Muon's core).

Every matrix update ``G = U S Vᵀ`` is replaced by an approximation of its polar factor ``U Vᵀ``
computed with a few steps of an odd quintic Newton–Schulz (NS) iteration. Same-shape matrices are
stacked and run as *one* chain of batched matmuls (``torch.bmm`` / ``torch.baddbmm``) per group,
instead of one chain per parameter.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple, TypeGuard

import torch
from torch import Tensor

from functional_optim import tree
from functional_optim._leafwise import update_leaves
from functional_optim.core import EmptyState, GradientTransformation, Params, Updates

if TYPE_CHECKING:
    from torch.distributed.tensor import DTensor

__all__ = [
    "NS_METHODS",
    "NS_NORMS",
    "NS_PRESETS",
    "default_ns_dtype",
    "matrix_view_shape",
    "newton_schulz",
    "orthogonalize",
]

Triple = tuple[float, float, float]
ReshapeRule = None | str | Callable[[torch.Size], Sequence[int]]

KELLER: Triple = (3.4445, -4.7750, 2.0315)

# "fast": polar_express_coefficients(0.004, (5, 5, 5, 5)) (functional_optim.transforms.ns_design),
# rounded to 6 digits; tests/transforms/test_ns_design.py checks that they are reproduced.
FAST: list[Triple] = [
    (8.258397, -23.873963, 17.338583),
    (3.941783, -2.881391, 0.537524),
    (3.309763, -2.436137, 0.488666),
    (2.308504, -1.652715, 0.405062),
]

NS_PRESETS: dict[str, dict[str, Any]] = {
    # Keller Jordan's fixed quintic (torch.optim.Muon's default): X / max(||X||_F, eps).
    "keller": {"coefficients": [KELLER], "safety_factor": 1.0, "additive_eps": False},
    # Cesista / You: one triple per step, output singular values ~0.98-1.03 for sigma in [0.01, 1].
    "cesista_you": {
        "coefficients": [
            (4.0848, -6.8946, 2.9270),
            (3.9505, -6.3029, 2.6377),
            (3.7418, -5.5913, 2.3037),
            (2.8769, -3.1427, 1.2046),
            (2.8366, -3.0525, 1.2012),
        ],
        "safety_factor": 1.0,
        "additive_eps": False,
    },
    # Polar Express (Amsel et al. 2025), as in the modded-nanogpt speedrun: X / (||X||_F * 1.02 + 1e-6).
    "polar_express": {
        "coefficients": [
            (8.1566, -22.4833, 15.8788),
            (4.0429, -2.8089, 0.5000),
            (3.8917, -2.7725, 0.5061),
            (3.2858, -2.3681, 0.4645),
            (2.3465, -1.7098, 0.4232),
        ],
        "safety_factor": 1.02,
        "additive_eps": True,
        "eps": 1e-6,
    },
    # Fewer matrix products at an error no larger than "keller"'s: X / max(||X||_S8, eps) (the
    # Schatten-8 norm (sum sigma^8)^(1/8) = ||(X X^T)^2||_F^(1/4), a spectral-norm bound read off
    # the first step's products), then 4 Polar Express steps designed for sigma in [0.004, 1]
    # (12 products on a square matrix instead of 15), the Gram iteration for rectangular matrices
    # (ns_method="auto"). 11 products (3 quintic + 1 cubic step) lose to "keller" on log-spread
    # spectra of matrices with few rows for every interval tried (benchmarks/muon.py --design).
    "fast": {
        "coefficients": FAST,
        "safety_factor": 1.0,
        "additive_eps": False,
        "norm": "schatten8",
        "method": "auto",
    },
}


NS_METHODS = ("direct", "gram", "auto")
NS_NORMS = ("frobenius", "schatten8")
_GRAM_MIN_ASPECT = 2
"""``method="auto"`` runs the Gram iteration for ``n >= 2·m`` (flop break-even: ``n = 1.5·m``)."""
_GRAM_RESTART: int | None = 2
"""In bf16/fp16, the Gram iteration restarts from ``X = Q X₀`` every this many steps (None: never)."""
_LOW_PRECISION = (torch.bfloat16, torch.float16)


def _probe_cpu_fast_bf16() -> bool:
    """Whether this CPU has native bf16 matmul (AVX512-BF16 / AMX): oneDNN's bf16 check."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):  # pragma: no cover - builds without oneDNN
        return torch.backends.cpu.get_cpu_capability() in ("AVX512_BF16", "AMX")


_CPU_FAST_BF16 = _probe_cpu_fast_bf16()  # read once at import: a constant for torch.compile too


def _cpu_has_fast_bf16() -> bool:
    return _CPU_FAST_BF16


def default_ns_dtype(device: torch.device | str) -> torch.dtype:
    """The dtype NS runs in when ``ns_dtype=None``: ``bfloat16`` where bf16 matmul is fast (CUDA,
    CPUs with AVX512-BF16/AMX as reported by oneDNN), ``float32`` elsewhere (e.g. AVX2-only x86,
    where a bf16 matmul is 10-60× slower than fp32 and NS in bf16 would dominate the step)."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.bfloat16
    if device.type == "cpu" and _cpu_has_fast_bf16():
        return torch.bfloat16
    return torch.float32


class _Recipe(NamedTuple):
    """What ``ns_coefficients`` (and ``ns_steps``) resolve to."""

    steps: list[Triple]
    safety_factor: float
    additive_eps: bool
    eps: float | None
    norm: str
    method: str


def _coefficient_list(ns_coefficients: Any, ns_steps: int | None) -> _Recipe:
    """The per-step triples, normalisation and default method of the given coefficients.

    ``ns_steps=None``: the preset's own number of steps (the length of its list; 5 for a single
    triple, torch's default)."""
    if isinstance(ns_coefficients, str):
        if ns_coefficients not in NS_PRESETS:
            raise ValueError(
                f"orthogonalize: unknown ns_coefficients preset {ns_coefficients!r}; "
                f"choose one of {sorted(NS_PRESETS)} or pass (a, b, c) / a list of triples"
            )
        preset = NS_PRESETS[ns_coefficients]
        triples = list(preset["coefficients"])
        safety, additive, eps = preset["safety_factor"], preset["additive_eps"], preset.get("eps")
        norm, method = preset.get("norm", "frobenius"), preset.get("method", "direct")
    else:
        seq = list(ns_coefficients)
        if seq and all(isinstance(v, int | float) for v in seq):
            if len(seq) != 3:
                raise ValueError("Coefficients must be a tuple of exactly 3 values")
            triples = [tuple(float(v) for v in seq)]
        else:
            triples = []
            for i, t in enumerate(seq):
                t = tuple(t)
                if len(t) != 3:
                    raise ValueError(f"ns_coefficients[{i}] must be a triple (a, b, c), got {t!r}")
                triples.append(tuple(float(v) for v in t))
            if not triples:
                raise ValueError("ns_coefficients must not be empty")
        safety, additive, eps, norm, method = 1.0, False, None, "frobenius", "direct"
    if ns_steps is None:
        ns_steps = 5 if len(triples) == 1 else len(triples)
    # A single triple is used at every step; a list gives one triple per step, its last one
    # repeated if ns_steps is longer than the list (and truncated if shorter).
    steps = [triples[min(i, len(triples) - 1)] for i in range(ns_steps)]
    return _Recipe(steps, safety, additive, eps, norm, method)


def matrix_view_shape(shape: torch.Size | Sequence[int], reshape: ReshapeRule = None) -> tuple[int, int, int]:
    """``(batch, rows, cols)``: how a parameter of ``shape`` is seen as a stack of matrices.

    * ``None`` (default): only 2-D parameters (``batch = 1``); anything else raises torch's error.
    * ``"flatten"``: ``(out, d1, d2, ...) -> (out, d1·d2·...)`` (conv kernels ``(out, in, kh, kw)``).
    * ``"batch"``: ``(b1, ..., m, n) -> b1·...`` independent ``m × n`` matrices (experts, heads).
    * a callable ``shape -> (m, n)`` or ``(batch, m, n)``.
    """
    shape = torch.Size(shape)
    if reshape is None:
        if len(shape) != 2:
            raise ValueError(
                f"Muon only supports 2D parameters whereas we found a parameter with size: {shape} "
                "(pass reshape='flatten' for conv kernels or reshape='batch' for stacked matrices, or "
                "optimize it with AdamW via fo.muon_with_adamw)"
            )
        return 1, shape[0], shape[1]
    if reshape == "flatten":
        if len(shape) < 2:
            raise ValueError(
                f"orthogonalize: reshape='flatten' needs >= 2 dims, got a parameter of size {shape}"
            )
        return 1, shape[0], shape[1:].numel()
    if reshape == "batch":
        if len(shape) < 2:
            raise ValueError(
                f"orthogonalize: reshape='batch' needs >= 2 dims, got a parameter of size {shape}"
            )
        return shape[:-2].numel(), shape[-2], shape[-1]
    if callable(reshape):
        out = tuple(int(v) for v in reshape(shape))
        if len(out) == 2:
            out = (1, *out)
        if len(out) != 3 or out[0] * out[1] * out[2] != shape.numel():
            raise ValueError(
                f"orthogonalize: reshape({tuple(shape)}) returned {out}, not a (m, n) or (batch, m, n) "
                "with the same number of elements"
            )
        return out  # type: ignore[return-value]
    raise ValueError(
        f"orthogonalize: reshape must be None, 'flatten', 'batch' or a callable, got {reshape!r}"
    )


def _plain(x: Tensor) -> bool:
    """Whether ``x`` is an ordinary tensor: in-place arithmetic on fresh matmul results is only used
    there (on a DTensor, ``bmm(...).add_`` would need a Partial-to-Shard redistribution)."""
    return type(x) is Tensor


def _normalise(
    x: Tensor, eps: float, safety_factor: float, additive_eps: bool, in_place: bool = False
) -> Tensor:
    """``X / max(s·‖X‖_F, eps)`` (or ``X / (s·‖X‖_F + eps)``) per matrix of the stack (in place
    if allowed: torch.optim.Muon's ``div_``, one matrix-sized copy fewer)."""
    norm = torch.linalg.vector_norm(x, dim=(-2, -1), keepdim=True)
    if safety_factor != 1.0:
        norm = norm * safety_factor
    norm = norm + eps if additive_eps else norm.clamp(min=eps)
    return x.div_(norm) if in_place else x / norm


def _direct_steps(x: Tensor, steps: Sequence[Triple]) -> Tensor:
    """``A = X Xᵀ;  X ← a·X + (b·A + c·A²)·X`` per step (3 matmuls: 2·m²n + m³ multiply-adds;
    2 matmuls for a cubic step, ``c = 0``)."""
    if _plain(x) and x.device.type == "cpu" and x.dtype in (torch.float32, torch.float64):
        # On CPU, baddbmm with beta != 1 is ~1.5x slower than bmm + an in-place axpy on the fresh
        # result (same maths, float rounding of the sum differs by an ulp). Reduced precision keeps
        # baddbmm: its single rounding of beta·C + alpha·A·B is what torch's addmm does.
        for a, b, c in steps:
            gram = torch.bmm(x, x.mT)
            gram_update = torch.bmm(gram, gram).mul_(c).add_(gram, alpha=b) if c else gram.mul_(b)
            x = torch.bmm(gram_update, x).add_(x, alpha=a)
        return x
    for a, b, c in steps:
        gram = torch.bmm(x, x.mT)
        if c:
            x = torch.baddbmm(x, torch.baddbmm(gram, gram, gram, beta=b, alpha=c), x, beta=a)
        else:
            x = torch.baddbmm(x, gram, x, beta=a, alpha=b)
    return x


def _polynomial(gram: Tensor, a: float, b: float, c: float) -> Tensor:
    """``H = a·I + b·A + c·A²`` (one ``baddbmm``; ``b·A`` alone when ``c = 0``)."""
    h = torch.baddbmm(gram, gram, gram, beta=b, alpha=c) if c else gram * b
    if _plain(h):
        h.diagonal(dim1=-2, dim2=-1).add_(a)  # h is a fresh result: nothing saved it
        return h
    return h + a * torch.eye(h.shape[-1], dtype=h.dtype, device=h.device)


def _schatten8_scale(gram_sq: Tensor, frobenius: Tensor, eps: float, safety: float) -> Tensor:
    """``λ`` (float32; float64 for float64 ``X``) with ``λ·X`` normalised by the Schatten-8 norm:
    for ``X = G / f`` (``f = max(‖G‖_F, eps)``), ``‖G‖_S8 = f·‖A²‖_F^{1/4}`` with ``A = X Xᵀ``, and
    ``λ = f / max(s·‖G‖_S8, eps)`` (so a zero ``G`` stays zero, and ``λ = 1/(s·‖X‖_S8)``
    otherwise). The norm of a bf16
    ``A²`` is accumulated in float32 and rounded to bf16 (≤ 0.1% on ``λ``, within the 1% margin the
    coefficients are designed with)."""
    dtype = torch.promote_types(gram_sq.dtype, torch.float32)
    s8 = torch.linalg.vector_norm(gram_sq, dim=(-2, -1), keepdim=True).to(dtype).pow(0.25)
    f = frobenius.to(dtype)
    return f / (safety * f * s8).clamp(min=eps)


def _scaled_polynomial(
    gram: Tensor, gram_sq: Tensor, a: float, b: float, c: float, scale: Tensor, out_scale: Tensor | None
) -> Tensor:
    """``μ·(a·I + b·λ²A + c·λ⁴A²)``: the first step's polynomial of ``λ·X`` from the products of
    ``X`` (``μ = out_scale`` or 1), with the scalings folded into the coefficients (2 passes over
    ``m × m`` instead of 5)."""
    dtype = gram.dtype
    mu = scale.new_ones(()) if out_scale is None else out_scale
    s2 = scale * scale
    if c:
        h = gram_sq * (c * s2 * s2 * mu).to(dtype)
        if _plain(h):
            h.addcmul_(gram, (b * s2 * mu).to(dtype))  # h is a fresh result: nothing saved it
        else:
            h = h + gram * (b * s2 * mu).to(dtype)
    else:
        h = gram * (b * s2 * mu).to(dtype)
    diag = (a * mu).to(dtype).expand((*h.shape[:-2], 1, 1))
    if _plain(h):
        h.diagonal(dim1=-2, dim2=-1).add_(diag[..., 0])
        return h
    return h + diag * torch.eye(h.shape[-1], dtype=dtype, device=h.device)


def _gram_steps(
    x: Tensor,
    steps: Sequence[Triple],
    restart: int | None = None,
    schatten8: tuple[Tensor, float, float] | None = None,
) -> Tensor:
    """The same iteration run on the ``m × m`` Gram matrix (for ``m < n``).

    Every iterate is ``X_k = Q_k X₀`` with ``Q_k`` a polynomial in ``R = X₀X₀ᵀ``, so with
    ``A_k = X_k X_kᵀ`` and ``H_k = a_k I + b_k A_k + c_k A_k²``:  ``Q_{k+1} = H_k Q_k`` and
    ``A_{k+1} = H_k A_k H_k``. Cost: ``2·m²n`` (``R`` and ``Q X₀``) plus ``(4k - 3)·m³`` for k
    quintic steps, against ``k·(2·m²n + m³)`` directly: fewer multiply-adds once ``n > 1.5·m``.
    ``restart``: after that many steps, ``X₀ ← Q X₀`` and ``A`` is recomputed from it (bounds the
    rounding error that the ``A`` recursion accumulates in low precision).
    ``schatten8 = (‖G‖_F floor, eps, safety)``: ``X₀ = λ·x`` with ``λ`` from the first step's
    ``A²`` (`_schatten8_scale`), folded into ``A``, ``H`` and ``Q``.
    """
    q: Tensor | None = None
    scale: Tensor | None = None
    gram = torch.bmm(x, x.mT)
    for k, (a, b, c) in enumerate(steps):
        if restart and k and k % restart == 0 and q is not None:
            x = torch.bmm(q if scale is None else q * scale.to(q.dtype), x)
            q = scale = None
            gram = torch.bmm(x, x.mT)
        if k == 0 and schatten8 is not None:
            gram_sq = torch.bmm(gram, gram)
            scale = _schatten8_scale(gram_sq, *schatten8)
            h = _scaled_polynomial(gram, gram_sq, a, b, c, scale, None)
            del gram_sq
            gram = gram * (scale * scale).to(gram.dtype)
        else:
            h = _polynomial(gram, a, b, c)
        q = h if q is None else torch.bmm(h, q)
        last = k + 1 == len(steps) or (restart and (k + 1) % restart == 0)
        if not last:
            gram = torch.bmm(h, torch.bmm(gram, h))
    if q is None:
        return x
    return torch.bmm(q if scale is None else q * scale.to(q.dtype), x)


def _direct_schatten8_steps(
    x: Tensor, steps: Sequence[Triple], frobenius: Tensor, eps: float, safety: float
) -> Tensor:
    """The direct iteration from ``X₀ = λ·x`` (Schatten-8 normalisation, ``λ`` from the first
    step's ``A²``): per step ``X ← H X`` with ``H = a·I + b·A + c·A²`` (3 matmuls, 2 if ``c = 0``)."""
    for k, (a, b, c) in enumerate(steps):
        gram = torch.bmm(x, x.mT)
        if k == 0:
            gram_sq = torch.bmm(gram, gram)
            scale = _schatten8_scale(gram_sq, frobenius, eps, safety)
            h = _scaled_polynomial(gram, gram_sq, a, b, c, scale, scale)  # X₁ = H(λx) = (λH)x
            del gram_sq
        else:
            h = _polynomial(gram, a, b, c)
        x = torch.bmm(h, x)
    return x


def newton_schulz(
    x: Tensor,
    steps: Sequence[Triple],
    *,
    eps: float = 1e-7,
    safety_factor: float = 1.0,
    additive_eps: bool = False,
    method: str = "direct",
    norm: str = "frobenius",
    overwrite_input: bool = False,
) -> Tensor:
    """Newton–Schulz on a stack ``x`` of shape ``(batch, m, n)`` with ``m <= n``, in ``x``'s dtype.

    ``X ← X / max(s·||X||_F, eps)`` (or ``X / (s·||X||_F + eps)`` if ``additive_eps``), then per step
    ``A = X Xᵀ;  B = b·A + c·A·A;  X = a·X + B·X``.

    * ``norm="schatten8"``: ``X ← X / max(s·‖X‖_S8, eps)`` instead, with the Schatten-8 norm
      ``‖X‖_S8 = (Σ σᵢ⁸)^{1/8} = ‖(X Xᵀ)²‖_F^{1/4}`` (read off the first step's ``A²``: no extra
      matmul). It bounds the spectral norm as the Frobenius norm does, much more tightly
      (Gaussian 512×512: σ_max = 0.65·‖X‖_S8 against 0.09·‖X‖_F), so fewer steps reach the same
      accuracy. Per step ``X ← H X`` with ``H = a·I + b·A + c·A²`` (other rounding than ``"frobenius"``).
    * ``method="direct"``: as ``bmm``/``baddbmm`` (torch's ``addmm`` sequence, batched, so bf16
      results follow torch.optim.Muon's rounding steps; float32/float64 on CPU use ``bmm`` + in-place
      ``add_``, which is faster there).
    * ``method="gram"``: the same polynomial iteration on the ``m × m`` Gram matrix (see
      `_gram_steps`): fewer flops for ``n > 1.5·m``, different rounding.
    * ``method="auto"``: ``"gram"`` when ``n ≥ 2·m``, ``"direct"`` otherwise.

    A step with ``c = 0`` (cubic) skips ``A²``: 2 matmuls instead of 3. ``overwrite_input=True``
    lets the normalisation divide ``x`` in place (``x`` must be a fresh tensor nothing else reads,
    outside autograd): one matrix-sized temporary fewer.

    Safe on DTensors and tensor subclasses (no in-place arithmetic on matmul results there).
    """
    if method not in NS_METHODS:
        raise ValueError(f"newton_schulz: method must be one of {NS_METHODS}, got {method!r}")
    if norm not in NS_NORMS:
        raise ValueError(f"newton_schulz: norm must be one of {NS_NORMS}, got {norm!r}")
    m, n = x.shape[-2], x.shape[-1]
    gram = method == "gram" or (method == "auto" and n >= _GRAM_MIN_ASPECT * m)
    restart = _GRAM_RESTART if x.dtype in _LOW_PRECISION else None
    if norm == "schatten8":
        if not steps:
            return _normalise(x, eps, safety_factor, additive_eps)
        frobenius = torch.linalg.vector_norm(x, dim=(-2, -1), keepdim=True).clamp(min=eps)
        # ‖x‖_F <= 1: the 4th powers of A² stay in range
        x = x.div_(frobenius) if overwrite_input else x / frobenius
        if gram:
            return _gram_steps(x, steps, restart, (frobenius, eps, safety_factor))
        return _direct_schatten8_steps(x, steps, frobenius, eps, safety_factor)
    x = _normalise(x, eps, safety_factor, additive_eps, overwrite_input)
    if gram:
        return _gram_steps(x, steps, restart)
    return _direct_steps(x, steps)


_CHUNK_ELEMENTS = 1 << 18
"""Same-shape matrices are stacked into one ``bmm`` chain in chunks of at most this many elements,
or of one matrix if the largest matrix of the update is larger: the working memory of a step stays
that of the largest matrix (as torch.optim.Muon, which runs one matrix at a time)."""


def _chunks(indices: list[int], sizes: list[int], budget: int) -> list[list[int]]:
    """Consecutive runs of ``indices`` whose ``sizes`` add up to at most ``budget`` (>= 1 each)."""
    out: list[list[int]] = []
    current: list[int] = []
    total = 0
    for i, size in zip(indices, sizes, strict=True):
        if current and total + size > budget:
            out.append(current)
            current, total = [], 0
        current.append(i)
        total += size
    if current:
        out.append(current)
    return out


def _is_dtensor(x: Tensor) -> TypeGuard[DTensor]:
    if type(x) is Tensor:
        return False
    try:
        from torch.distributed.tensor import DTensor
    except ImportError:  # pragma: no cover - builds without torch.distributed
        return False
    return isinstance(x, DTensor)


def _redistribute_like(full: Tensor, mesh: Any, placements: Any) -> Tensor:
    """The replicated result ``full`` as a DTensor with the gradient's mesh and placements (a
    replicated-to-sharded redistribution is a local slice: no communication)."""
    from torch.distributed.tensor import DTensor, Replicate

    replicated = DTensor.from_local(full, mesh, [Replicate()] * mesh.ndim, run_check=False)
    return replicated.redistribute(mesh, placements)


def orthogonalize(
    ns_coefficients: str | Triple | Sequence[Triple] = "keller",
    ns_steps: int | None = None,
    eps: float | None = None,
    safety_factor: float | None = None,
    ns_dtype: torch.dtype | None = None,
    reshape: ReshapeRule = None,
    *,
    ns_method: str | None = None,
) -> GradientTransformation:
    r"""Replace each matrix update by (an approximation of) its orthogonal polar factor.

    ```text
    G  (m × n; transposed first if m > n, as torch)
    X₀ = G / max(s·‖G‖_F, eps)            (polar_express: G / (1.02·‖G‖_F + 1e-6);
                                           fast: G / max(‖G‖_S8, eps), ‖G‖_S8 = (Σσ⁸)^(1/8))
    for k in 1..ns_steps:  A = X Xᵀ;  X ← a_k X + (b_k A + c_k A²) X
    u  = X   (cast back to G's dtype; ≈ U Vᵀ for G = U S Vᵀ)
    ```

    Leaves are grouped by (matrix shape up to transposition, dtype, device); each group is stacked
    and orthogonalised with one batched ``bmm``/``baddbmm`` chain.

    Args:
      ns_coefficients: ``"keller"`` (default, = torch.optim.Muon's (3.4445, -4.7750, 2.0315)),
        ``"cesista_you"``, ``"polar_express"``, ``"fast"`` (see [`NS_PRESETS`][]), one
        ``(a, b, c)`` used at every step, or a list of per-step triples (its last triple repeats if
        ``ns_steps`` is longer). ``"fast"`` normalises by the Schatten-8 norm (a spectral-norm
        bound read off the first step's products, see [`newton_schulz`][]) and runs 4 Polar Express
        steps (designed for σ in ``[0.004, 1]`` by
        [`polar_express_coefficients`][functional_optim.polar_express_coefficients]): 12 matrix
        products on a square matrix instead of 15, the Gram iteration on rectangular ones, and an
        error against ``U Vᵀ`` below ``"keller"``'s on Gaussian and log-spread spectra
        (``benchmarks/muon.py``). Inputs that are low-rank plus noise far below their scale are
        the exception: neither iteration lifts the noise directions anywhere near 1, and
        ``"keller"``'s larger slope at 0 lifts them further (relative error 0.985 against 0.982 for
        rank 4 plus noise 1e-3).
      ns_steps: number of NS steps (< 100, as torch). ``None`` (default): the preset's (5 for
        ``"keller"`` and a single triple, 4 for ``"fast"``, the length of a list).
      eps: ``None`` = the preset's: 1e-7 as a floor of the norm (``X / max(s·‖X‖_F, eps)``, torch),
        for ``polar_express`` 1e-6 added to it (``X / (s·‖X‖_F + eps)``); a number overrides the value.
      safety_factor: the Frobenius norm is multiplied by it before dividing (default 1.0;
        1.02 for ``polar_express``), so the spectral norm is safely below 1.
      ns_dtype: dtype the iteration runs in. ``None`` = [`default_ns_dtype`][] per device
        (bfloat16 on CUDA and on CPUs with native bf16 matmul, float32 otherwise). Pass
        ``torch.bfloat16`` to reproduce torch.optim.Muon's numbers exactly, ``torch.float32`` or
        ``torch.float64`` for accuracy.
      reshape: how non-2-D parameters are seen as matrices ([`matrix_view_shape`][]): ``None``
        raises torch's ``ValueError``; ``"flatten"`` (conv kernels as ``(out, in·kh·kw)``);
        ``"batch"`` (leading dims = independent matrices); or a callable ``shape -> (batch, m, n)``.
      ns_method: ``None`` (default): the preset's (``"auto"`` for ``"fast"``, ``"direct"``
        otherwise); ``"direct"`` (torch's sequence of matmuls), ``"gram"`` (the same
        polynomial iterated on the small Gram matrix ``X Xᵀ``: ``2·m²n + (4k-3)·m³`` multiply-adds
        instead of ``k·(2·m²n + m³)``; in bf16/fp16 it restarts from ``X`` every 2 steps, which keeps
        its error that of the direct iteration) or ``"auto"`` (Gram for matrices with
        ``max(m, n) >= 2·min(m, n)``, direct otherwise). Same maths, different rounding.

    DTensor updates (FSDP2, tensor parallel) are gathered once per matrix, orthogonalised whole
    (as torch) and returned with their placements. Matrices are stacked in chunks (see
    ``_CHUNK_ELEMENTS``), so the step's working memory is about that of the largest matrix.

    Example::

        opt = fo.chain(fo.orthogonalize("polar_express"), fo.scale_by_learning_rate(0.02))

    References:
      Jordan et al., "Muon: An optimizer for hidden layers in neural networks", 2024.
      Amsel et al., "The Polar Express", arXiv:2505.16932, 2025.
    """
    if ns_steps is not None and (not isinstance(ns_steps, int) or ns_steps < 0):
        raise ValueError(f"orthogonalize: ns_steps must be a non-negative int, got {ns_steps!r}")
    if ns_steps is not None and ns_steps >= 100:
        raise ValueError("Number of steps must be less than 100 for computational efficiency")
    recipe = _coefficient_list(ns_coefficients, ns_steps)
    steps, additive, norm = recipe.steps, recipe.additive_eps, recipe.norm
    ns_method = recipe.method if ns_method is None else ns_method
    eps_ = float(eps if eps is not None else (recipe.eps if recipe.eps is not None else 1e-7))
    safety = float(safety_factor if safety_factor is not None else recipe.safety_factor)
    if eps_ < 0:
        raise ValueError(f"orthogonalize: eps must be >= 0, got {eps_}")
    if safety <= 0:
        raise ValueError(f"orthogonalize: safety_factor must be > 0, got {safety}")
    if ns_dtype is not None and not (isinstance(ns_dtype, torch.dtype) and ns_dtype.is_floating_point):
        raise ValueError(f"orthogonalize: ns_dtype must be None or a floating torch.dtype, got {ns_dtype!r}")
    if reshape is not None and reshape not in ("flatten", "batch") and not callable(reshape):
        raise ValueError(
            f"orthogonalize: reshape must be None, 'flatten', 'batch' or a callable, got {reshape!r}"
        )
    if ns_method not in NS_METHODS:
        raise ValueError(f"orthogonalize: ns_method must be one of {NS_METHODS}, got {ns_method!r}")

    def init_fn(params: Params) -> EmptyState:
        for p in tree.leaves(params):
            if p is not None:
                matrix_view_shape(p.shape, reshape)  # torch raises at construction for non-2-D
        return EmptyState()

    def ortho(grads: list[Tensor], fields: list, ps: Any) -> tuple[list[Tensor], list]:
        del fields, ps
        groups: dict[tuple, list[int]] = {}
        views: list[tuple[int, int, int]] = []
        dist_specs: list[Any] = [None] * len(grads)
        local: list[Tensor] = []
        for i, g in enumerate(grads):
            if g.is_complex():
                raise RuntimeError("Muon does not support complex parameters")
            if g.is_sparse:
                raise RuntimeError("Muon does not support sparse gradients")
            bsz, m, n = matrix_view_shape(g.shape, reshape)
            views.append((bsz, m, n))
            if _is_dtensor(g):  # whole-matrix semantics, as torch: gather once, orthogonalise locally
                dist_specs[i] = (g.device_mesh, g.placements)
                local.append(g.full_tensor())
            else:
                local.append(g)
            groups.setdefault((min(m, n), max(m, n), g.dtype, g.device), []).append(i)
        budget = max(_CHUNK_ELEMENTS, max(b * m * n for b, m, n in views))
        out: list[Tensor | None] = [None] * len(grads)
        for (_, _, dtype, device), idx in groups.items():
            work = ns_dtype or default_ns_dtype(device)
            for chunk in _chunks(idx, [views[i][0] * views[i][1] * views[i][2] for i in idx], budget):
                mats = []
                for i in chunk:
                    bsz, m, n = views[i]
                    x = local[i].reshape(bsz, m, n).to(work)
                    mats.append(x.mT if m > n else x)
                # a fresh copy (cast or concatenation) may be normalised in place, outside autograd
                fresh = len(mats) > 1 or dtype != work
                tracked = torch.is_grad_enabled() and any(local[i].requires_grad for i in chunk)
                x = newton_schulz(
                    mats[0] if len(mats) == 1 else torch.cat(mats),
                    steps,
                    eps=eps_,
                    safety_factor=safety,
                    additive_eps=additive,
                    method=ns_method,
                    norm=norm,
                    overwrite_input=fresh and not tracked and _plain(local[chunk[0]]),
                )
                del mats
                start = 0
                for i in chunk:
                    bsz, m, n = views[i]
                    y = x[start : start + bsz]
                    start += bsz
                    y = (y.mT if m > n else y).to(dtype).reshape(grads[i].shape)
                    if dist_specs[i] is not None:
                        y = _redistribute_like(y, *dist_specs[i])
                    out[i] = y
        return out, []  # type: ignore[return-value]

    def update_fn(updates: Updates, state: EmptyState, params: Params | None = None, **extra: Any):
        del params, extra
        new_updates, _ = update_leaves(ortho, updates, [], None, name="orthogonalize")
        return new_updates, state

    return GradientTransformation(init_fn, update_fn)
