"""The LBFGS drop-in follows torch.optim.LBFGS (params, returned loss, state in torch's format) and
its checkpoints load in both directions."""

from __future__ import annotations

import pytest
import torch

import functional_optim as fo
from tests.adapters._cases import assert_same_state


def _problem(seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    X = torch.randn(16, 3, generator=gen)
    Y = torch.randn(16, 2, generator=gen)
    W = torch.nn.Parameter(torch.randn(2, 3, generator=gen))
    b = torch.nn.Parameter(torch.randn(2, generator=gen))
    unused = torch.nn.Parameter(torch.randn(4, generator=gen))
    return X, Y, [W, b, unused]


def _closure(opt, X, Y, params):
    W, b, _ = params

    def closure():
        opt.zero_grad()
        loss = ((X @ W.T + b - Y) ** 2).mean() + 0.01 * (W**2).sum()
        loss.backward()
        return loss

    return closure


@pytest.mark.parametrize(
    "kw",
    [{}, {"line_search_fn": "strong_wolfe"}, {"history_size": 2, "max_iter": 4, "lr": 0.5}],
    ids=["fixed_step", "strong_wolfe", "short_history"],
)
def test_lbfgs_dropin_equals_torch(kw):
    X, Y, tp = _problem()
    _, _, fp = _problem()
    topt, fopt = torch.optim.LBFGS(tp, **kw), fo.adapters.LBFGS(fp, **kw)
    assert fopt.defaults == topt.defaults
    tc, fc = _closure(topt, X, Y, tp), _closure(fopt, X, Y, fp)
    for step in range(4):
        tl, fl = topt.step(tc), fopt.step(fc)
        torch.testing.assert_close(fl, tl, msg=lambda m, s=step: f"loss step {s}: {m}")
        for a, b in zip(fp, tp, strict=True):
            torch.testing.assert_close(a, b, msg=lambda m, s=step: f"param step {s}: {m}")
    st, sf = topt.state[tp[0]], fopt.state[fp[0]]
    assert list(st) == list(sf)
    for k in st:
        assert type(st[k]) is type(sf[k]), k
    assert_same_state(topt, fopt)


@pytest.mark.parametrize("direction", ["torch_to_fo", "fo_to_torch"])
def test_lbfgs_checkpoint_interop(direction):
    X, Y, p_src = _problem()
    src_cls, dst_cls = (torch.optim.LBFGS, fo.adapters.LBFGS)[:: 1 if direction == "torch_to_fo" else -1]
    src = src_cls(p_src, history_size=5, max_iter=3)
    src.step(_closure(src, X, Y, p_src))
    sd = src.state_dict()
    _, _, p_dst = _problem()
    with torch.no_grad():
        for a, b in zip(p_dst, p_src, strict=True):
            a.copy_(b)
    dst = dst_cls(p_dst, history_size=5, max_iter=3)
    dst.load_state_dict(sd)
    for _ in range(2):
        src.step(_closure(src, X, Y, p_src))
        dst.step(_closure(dst, X, Y, p_dst))
    for a, b in zip(p_dst, p_src, strict=True):
        torch.testing.assert_close(a, b)


def test_lbfgs_rejects_several_groups_and_needs_closure():
    a, b = torch.nn.Parameter(torch.ones(2)), torch.nn.Parameter(torch.ones(2))
    with pytest.raises(ValueError, match="parameter groups"):
        fo.adapters.LBFGS([{"params": [a]}, {"params": [b]}])
    with pytest.raises(RuntimeError, match="closure"):
        fo.adapters.LBFGS([a]).step(None)
