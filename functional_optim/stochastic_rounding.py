"""``apply_updates_stochastic``: ``params + updates`` with bfloat16 results rounded stochastically."""

from __future__ import annotations

import torch
from torch import Tensor

from functional_optim import tree
from functional_optim.core import Params, Updates, apply_updates

__all__ = ["apply_updates_stochastic", "stochastic_round_to_bfloat16"]

_LOW16 = 1 << 16
_HIGH16_MASK = -_LOW16  # 0xFFFF0000 as a signed int32


def stochastic_round_to_bfloat16(x: Tensor, generator: torch.Generator | None = None) -> Tensor:
    r"""Round a float32 tensor to bfloat16 stochastically: up with probability equal to the
    distance to the lower neighbour over the gap, so that $\mathbb E[\mathrm{round}(x)] = x$.

    bfloat16 is the upper half of float32's bits: adding a uniform random integer in
    $[0, 2^{16})$ to the lower half and truncating rounds the magnitude up with exactly that
    probability (the sign bit is untouched; inf and NaN stay inf and NaN).

    Example:
      >>> x = torch.full((10000,), 1.0 + 2**-10)  # between the bfloat16 neighbours 1 and 1 + 2^-7
      >>> y = fo.stochastic_round_to_bfloat16(x, torch.Generator().manual_seed(0))
      >>> sorted(set(y.tolist())), abs(y.float().mean().item() - (1 + 2**-10)) < 1e-3
      ([1.0, 1.0078125], True)
    """
    if x.dtype != torch.float32:
        raise TypeError(f"stochastic_round_to_bfloat16: x must be float32, got {x.dtype}")
    bits = x.contiguous().view(torch.int32)
    noise = torch.randint(0, _LOW16, x.shape, generator=generator, dtype=torch.int32, device=x.device)
    rounded = torch.bitwise_and(bits + noise, _HIGH16_MASK)
    return rounded.view(torch.float32).to(torch.bfloat16)


def apply_updates_stochastic(
    params: Params, updates: Updates, generator: torch.Generator | None = None
) -> Params:
    r"""``params + updates`` (as [`apply_updates`][]), with every bfloat16 parameter computed in
    float32 and stochastically rounded back to bfloat16 (unbiased:
    $\mathbb E[p'] = p + u$ up to float32 precision), so that updates smaller than half a
    bfloat16 ulp are not lost on average. Other dtypes are added exactly as
    [`apply_updates`][]. Pure: new tensors are returned; ``None`` updates keep the parameter.

    Args:
      params: the parameter tree.
      updates: the update tree (same structure; ``None`` leaves allowed).
      generator: the random generator (default: torch's global one).

    Example:
      >>> p = {"w": torch.ones(4096, dtype=torch.bfloat16)}
      >>> u = {"w": torch.full((4096,), 1e-3)}  # a quarter of bfloat16's ulp at 1
      >>> fo.apply_updates(p, u)["w"].float().mean().item()  # round to nearest: lost
      1.0
      >>> new = fo.apply_updates_stochastic(p, u, torch.Generator().manual_seed(0))
      >>> abs(new["w"].float().mean().item() - 1.001) < 2e-4
      True

    References:
      Gupta et al., "Deep Learning with Limited Numerical Precision", ICML 2015; Zamirai et al.,
      "Revisiting BFloat16 Training", arXiv:2010.06192, 2020.
    """
    p_leaves, spec = tree.flatten(params)
    u_leaves = tree.flatten_like(spec, updates, "apply_updates_stochastic: updates")
    plain_u = [
        None if (p is not None and p.dtype == torch.bfloat16 and u is not None) else u
        for p, u in zip(p_leaves, u_leaves, strict=True)
    ]
    out = tree.flatten(apply_updates(params, tree.unflatten(spec, plain_u)))[0]
    for i, (p, u) in enumerate(zip(p_leaves, u_leaves, strict=True)):
        if p is not None and u is not None and p.dtype == torch.bfloat16:
            out[i] = stochastic_round_to_bfloat16(p.float() + u.float(), generator)
    return tree.unflatten(spec, out)
