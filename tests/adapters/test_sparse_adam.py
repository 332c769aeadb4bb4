"""SparseAdam drop-in: same trajectories and state (Python-int ``step``) as torch.optim.SparseAdam."""

from __future__ import annotations

import pytest
import torch

import functional_optim as fo
from tests.adapters._cases import assert_same_state


def embeddings(seed: int = 0) -> list[torch.nn.Embedding]:
    torch.manual_seed(seed)
    return [torch.nn.Embedding(10, 3, sparse=True), torch.nn.Embedding(6, 2, sparse=True)]


def sparse_step(embs, step: int) -> None:
    gen = torch.Generator().manual_seed(step)
    for e in embs:
        e.zero_grad()
    for i, e in enumerate(embs):
        if i == 1 and step % 3 == 0:
            continue  # no grad for the second table on some steps
        idx = torch.randint(0, e.num_embeddings, (5,), generator=gen)
        out = e(idx)
        (out.sin().sum() + (out**2).sum()).backward()


@pytest.mark.parametrize("maximize", [False, True])
def test_sparse_adam_dropin_equals_torch(maximize):
    et, ef = embeddings(), embeddings()

    def groups(es):
        return [
            {"params": es[0].parameters()},
            {"params": es[1].parameters(), "lr": 0.05, "betas": (0.8, 0.9)},
        ]

    topt = torch.optim.SparseAdam(groups(et), lr=0.01, maximize=maximize)
    fopt = fo.adapters.SparseAdam(groups(ef), lr=0.01, maximize=maximize)
    for step in range(8):
        sparse_step(et, step)
        sparse_step(ef, step)
        topt.step()
        fopt.step()
        for a, b in zip(ef, et, strict=True):
            torch.testing.assert_close(a.weight, b.weight)
    assert_same_state(topt, fopt)
    assert isinstance(next(iter(fopt.state.values()))["step"], int)


def test_sparse_adam_rejects_sparse_and_complex_params_like_torch():
    with pytest.raises(ValueError, match="requires dense parameter tensors"):
        fo.adapters.SparseAdam([torch.zeros(3, 3).to_sparse()])
    with pytest.raises(ValueError, match="does not support complex parameters"):
        fo.adapters.SparseAdam([torch.zeros(3, dtype=torch.complex64)])
