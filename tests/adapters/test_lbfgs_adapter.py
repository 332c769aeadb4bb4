"""The LBFGS drop-in follows torch.optim.LBFGS (params, returned loss, state in torch's format) and
its checkpoints load in both directions."""

from __future__ import annotations

import copy

import pytest
import torch

import functional_optim as fo
from tests.adapters._cases import assert_same_state


def _problem(seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    kw = {"generator": gen, "dtype": torch.float64}
    X = torch.randn(16, 3, **kw)
    Y = torch.randn(16, 2, **kw)
    W = torch.nn.Parameter(torch.randn(2, 3, **kw))
    b = torch.nn.Parameter(torch.randn(2, **kw))
    unused = torch.nn.Parameter(torch.randn(4, **kw))
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
    # few iterations: the state is compared before convergence (near the optimum ``ro = 1/(y·s)``
    # is dominated by rounding noise for torch as for us)
    [
        {"max_iter": 4},
        {"line_search_fn": "strong_wolfe", "max_iter": 3},
        {"history_size": 2, "max_iter": 4, "lr": 0.5},
    ],
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
    # ``al`` is the two-loop scratch buffer torch leaves in the state: its last values are
    # cancellation-dominated near convergence (0.2% apart), and the next step overwrites them.
    assert_same_state(topt, fopt, skip_values=("al",))


@pytest.mark.parametrize("direction", ["torch_to_fo", "fo_to_torch"])
def test_lbfgs_checkpoint_interop(direction):
    X, Y, p_src = _problem()
    src_cls, dst_cls = (torch.optim.LBFGS, fo.adapters.LBFGS)[:: 1 if direction == "torch_to_fo" else -1]
    src = src_cls(p_src, history_size=5, max_iter=3)
    src.step(_closure(src, X, Y, p_src))
    sd = copy.deepcopy(src.state_dict())  # torch's state_dict holds live tensors (as a file would not)
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
