r"""Optimizer state kept in bfloat16, computed in float32 (``state_dtype=torch.bfloat16``).

A rule that offers a low-precision state stores its moments in bfloat16 (half the memory of
float32) and, at every step, `widen` s them into float32 working copies, runs its usual
maths on those (in place: they are temporaries), uses the float32 results for this step's update,
and `narrow` s them back into bfloat16 with **stochastic rounding**
(`fo.stochastic_round_to_bfloat16`): rounded up with probability equal to
the distance to the lower neighbour, so that the stored moment is unbiased
($\mathbb E[\mathrm{round}(m)] = m$) and the small increments ``(1-β)·g`` of an EMA with
``β`` close to 1 are not lost as round-to-nearest loses them.

The random bits come from a generator seeded by the step count (and the field), not from torch's
global generator: the state's numbers are a deterministic function of the inputs, a checkpoint
resumes them exactly, and the user's random stream (dropout, data order) is untouched. Under
autograd recording the moments are rounded to nearest (``Tensor.to``), which is differentiable.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from functional_optim import ops
from functional_optim.stochastic_rounding import stochastic_round_to_bfloat16

__all__ = ["LOW_PRECISION_DTYPES", "check_state_dtype", "is_low", "narrow", "widen", "zeros_like"]

LOW_PRECISION_DTYPES = (torch.bfloat16,)
_GOLDEN = 0x9E3779B1  # spreads consecutive step counts over the seed space


def check_state_dtype(state_dtype: Any) -> torch.dtype | None:
    """``state_dtype`` validated: ``None`` (the parameter's dtype) or ``torch.bfloat16``."""
    if state_dtype is None or state_dtype == torch.float32:
        return None
    if state_dtype not in LOW_PRECISION_DTYPES:
        raise ValueError(f"state_dtype must be None, torch.float32 or torch.bfloat16, got {state_dtype!r}")
    return state_dtype


def zeros_like(p: Tensor | None, state_dtype: torch.dtype | None) -> Tensor | None:
    """A zero state entry for ``p``: in ``state_dtype`` for float32 parameters, else ``p``'s dtype."""
    if p is None:
        return None
    if state_dtype is not None and p.dtype == torch.float32:
        return torch.zeros_like(p, dtype=state_dtype)
    return torch.zeros_like(p)


def is_low(xs: Sequence[Tensor], grads: Sequence[Tensor]) -> bool:
    """Whether some entry of a state field is stored in bfloat16 for a float32 gradient."""
    return any(
        x.dtype in LOW_PRECISION_DTYPES and g.dtype == torch.float32 for x, g in zip(xs, grads, strict=True)
    )


def widen(xs: Sequence[Tensor], grads: Sequence[Tensor]) -> list[Tensor]:
    """Working copies of a state field (new tensors, writable in place): float32 for the
    bfloat16 entries of float32 gradients, the others in their own dtype."""
    return [
        x.to(torch.float32, copy=True)
        if x.dtype in LOW_PRECISION_DTYPES and g.dtype == torch.float32
        else x.clone()
        for x, g in zip(xs, grads, strict=True)
    ]


def narrow(
    works: Sequence[Tensor], olds: Sequence[Tensor], steps: Sequence[Any], salt: int, *, in_place: bool
) -> list[Tensor]:
    """The float32 results ``works`` stored in the dtype of ``olds``: stochastically rounded to
    bfloat16 (written into ``olds`` with ``in_place``, else new tensors).

    ``steps`` are the step values of the parameters (Python floats for concrete counters) and
    ``salt`` tells the fields apart: they seed the generator of the rounding bits."""
    if not works:
        return []
    recording = torch.is_grad_enabled() and any(w.requires_grad for w in works)
    generator = None
    if not recording and steps and isinstance(steps[0], float) and not torch.compiler.is_compiling():
        generator = torch.Generator(device=works[0].device)
        generator.manual_seed((int(steps[0]) * _GOLDEN + salt) % (2**63))
    out = []
    for w, o in zip(works, olds, strict=True):
        if o.dtype == torch.bfloat16 and w.dtype == torch.float32 and not recording:
            new = stochastic_round_to_bfloat16(w, generator)
        else:
            new = w if w.dtype == o.dtype else w.to(o.dtype)
        if in_place and ops.writable([o], [new]):
            out.append(o.copy_(new))
        else:
            out.append(new)
    return out
