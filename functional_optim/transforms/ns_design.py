"""``polar_express_coefficients``: per-step Newton–Schulz coefficients by greedy minimax design.

The Polar Express construction (Amsel et al. 2025): the singular values of the normalised input
lie in ``[lower, 1]``; each step takes the odd polynomial of the given degree (3 or 5) that best
approximates 1 on the current interval in the uniform norm (Remez exchange), recentres it so that
its range on the interval is symmetric about 1, and maps the interval through it. For the minimax
error of the composition the greedy choice is optimal (their Theorem 4.1). The presets of
[`NS_PRESETS`][functional_optim.NS_PRESETS] that are not published triples are
computed here (the tests check that they are reproduced).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

__all__ = ["polar_express_coefficients"]

Triple = tuple[float, float, float]


def _odd_poly(coefficients: Sequence[float], x: torch.Tensor) -> torch.Tensor:
    a, b, c = coefficients
    x2 = x * x
    return x * (a + x2 * (b + c * x2))


def _critical_points(a: float, b: float, c: float, lo: float, hi: float) -> list[float]:
    """Interior extrema of ``a x + b x³ + c x⁵`` in ``(lo, hi)`` (roots of ``a + 3b x² + 5c x⁴``)."""
    if c == 0.0:
        roots2 = [-a / (3.0 * b)] if b != 0.0 else []
    else:
        disc = 9.0 * b * b - 20.0 * a * c
        if disc < 0:
            return []
        s = disc**0.5
        roots2 = [(-3.0 * b + s) / (10.0 * c), (-3.0 * b - s) / (10.0 * c)]
    return sorted(r**0.5 for r in roots2 if r > 0 and lo < r**0.5 < hi)


def _range_on(coefficients: Triple, lo: float, hi: float) -> tuple[float, float]:
    """``(min, max)`` of the odd polynomial on ``[lo, hi]`` (endpoints and interior extrema)."""
    xs = torch.tensor([lo, hi, *_critical_points(*coefficients, lo, hi)], dtype=torch.float64)
    values = _odd_poly(coefficients, xs)
    return values.min().item(), values.max().item()


def _minimax(lo: float, hi: float, degree: int, iterations: int = 100) -> Triple:
    """The odd polynomial of ``degree`` (3 or 5) minimising ``max |1 - p(x)|`` on ``[lo, hi]``:
    Remez exchange on the alternation points (``lo``, the interior extrema, ``hi``)."""
    k = (degree + 1) // 2  # number of coefficients
    points = [lo + (hi - lo) * i / k for i in range(k + 1)]
    coefficients: Triple = (0.0, 0.0, 0.0)
    error = float("inf")
    for _ in range(iterations):
        x = torch.tensor(points, dtype=torch.float64)
        signs = torch.tensor([(-1.0) ** i for i in range(k + 1)], dtype=torch.float64)
        system = torch.stack([x ** (2 * j + 1) for j in range(k)] + [signs], dim=1)
        solution = torch.linalg.solve(system, torch.ones(k + 1, dtype=torch.float64)).tolist()
        coefficients = (solution[0], solution[1], solution[2] if k == 3 else 0.0)
        interior = _critical_points(*coefficients, lo, hi)
        if len(interior) != k - 1:
            break
        points = [lo, *interior, hi]
        if abs(abs(solution[-1]) - error) < 1e-15:
            break
        error = abs(solution[-1])
    return coefficients


def polar_express_coefficients(
    lower: float, degrees: Sequence[int] = (5, 5, 5, 3), safety: float = 0.01
) -> list[Triple]:
    r"""Per-step ``(a, b, c)`` of ``X ← a X + b (X Xᵀ) X + c (X Xᵀ)² X`` for singular values in
    ``[lower, 1]``, one odd polynomial of each given degree (5: quintic, 3: cubic with ``c = 0``).

    Step ``k`` maps the interval ``[ℓ_k, u_k]`` (``ℓ_0 = lower``, ``u_0 = 1``):

    ```text
    p_k  = argmin over odd p of degree d_k of  max_{x ∈ [ℓ_k, u_k]} |1 - p(x)|     (Remez)
    p_k ← p_k · 2 / (min p_k + max p_k)            (range centred on 1)
    p_k ← p_k(x / (1 + safety))                     (inputs up to (1 + safety)·u_k stay in range)
    [ℓ_{k+1}, u_{k+1}] = range of p_k on [ℓ_k, u_k]
    ```

    A cubic step costs two matrix products instead of three (no ``(XXᵀ)²``).

    Args:
      lower: smallest singular value (relative to the normalisation) the iteration should lift to
        about 1; smaller ones are multiplied by the product of the ``a`` coefficients.
      degrees: degree of each step, 3 or 5.
      safety: relative margin for rounding in the iteration (Amsel et al. use 1%).

    Example:
      >>> from functional_optim.transforms.ns_design import polar_express_coefficients
      >>> steps = polar_express_coefficients(0.004, (5, 5, 5, 5))  # the "fast" preset
      >>> print(", ".join(f"{a:.3f}" for a, _, _ in steps))
      8.258, 3.942, 3.310, 2.309

    References:
      Amsel, Persson, Musco and Gower, "The Polar Express: Optimal Matrix Sign Methods and
      their Application to the Muon Algorithm", arXiv:2505.16932, 2025.
    """
    if not 0.0 < lower < 1.0:
        raise ValueError(f"polar_express_coefficients: lower must be in (0, 1), got {lower}")
    if safety < 0:
        raise ValueError(f"polar_express_coefficients: safety must be >= 0, got {safety}")
    lo, hi = float(lower), 1.0
    out: list[Triple] = []
    for degree in degrees:
        if degree not in (3, 5):
            raise ValueError(f"polar_express_coefficients: degrees must be 3 or 5, got {degree}")
        a, b, c = _minimax(lo, hi, degree)
        pmin, pmax = _range_on((a, b, c), lo, hi)
        centre = 2.0 / (pmin + pmax)
        s = 1.0 + safety
        triple = (a * centre / s, b * centre / s**3, c * centre / s**5)
        out.append(triple)
        lo, hi = _range_on(triple, lo, hi)
    return out
