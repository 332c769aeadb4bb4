"""Drop-in against the authors' package, step by step, bit for bit."""

from __future__ import annotations

from collections.abc import Callable

import torch

SHAPES = [(7, 5), (5,), (3, 3, 3)]


def assert_steps_equal(
    make_ours: Callable[[list[torch.Tensor]], torch.optim.Optimizer],
    make_theirs: Callable[[list[torch.Tensor]], torch.optim.Optimizer],
    dtype: torch.dtype,
    steps: int = 12,
    state_keys: tuple[str, ...] = (),
) -> None:
    """Both optimizers from the same parameters, given the same random gradients: after every
    step the parameters (and the named state entries) are equal bit for bit."""
    gen = torch.Generator().manual_seed(0)
    init = [torch.randn(s, generator=gen, dtype=dtype) for s in SHAPES]
    ours = [p.clone().requires_grad_() for p in init]
    theirs = [p.clone().requires_grad_() for p in init]
    opt, ref = make_ours(ours), make_theirs(theirs)
    for step in range(steps):
        grads = [torch.randn(p.shape, generator=gen, dtype=dtype) for p in init]
        for p, q, g in zip(ours, theirs, grads, strict=True):
            p.grad, q.grad = g.clone(), g.clone()
        opt.step()
        ref.step()
        for p, q in zip(ours, theirs, strict=True):
            assert torch.equal(p, q), f"step {step}"
            for key in state_keys:
                assert torch.equal(opt.state[p][key], ref.state[q][key]), f"step {step}: {key}"
