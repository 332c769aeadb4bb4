"""``adapters.Muon``: the ``ns_dtype`` keyword, torch's numbers in bf16, and its chunked step."""

from __future__ import annotations

import importlib
import inspect

import pytest
import torch

import functional_optim as fo
from functional_optim.transforms.orthogonalize import default_ns_dtype

optimizers_module = importlib.import_module("functional_optim.adapters.optimizers")


def _pairs(shapes, seed=0):
    gen = torch.Generator().manual_seed(seed)
    ps = [torch.nn.Parameter(torch.randn(s, generator=gen)) for s in shapes]
    grads = [[torch.randn(s, generator=gen) for s in shapes] for _ in range(3)]
    return ps, grads


def _run(opt, ps, grads):
    for gs in grads:
        for p, g in zip(ps, gs, strict=True):
            p.grad = g.clone()
        opt.step()
    return [p.detach().clone() for p in ps]


SHAPES = [(24, 16), (16, 24), (24, 16), (16, 16), (40, 8)]


def test_signature_is_torchs_plus_keyword_only_ns_dtype():
    ours = inspect.signature(fo.adapters.Muon).parameters
    theirs = inspect.signature(torch.optim.Muon).parameters
    assert [n for n in ours if n not in ("ns_dtype", "distributed")] == list(theirs)
    for name, p in theirs.items():
        assert ours[name].default == p.default, name
    assert ours["ns_dtype"].kind is inspect.Parameter.KEYWORD_ONLY and ours["ns_dtype"].default is None


@pytest.mark.parametrize("ns_dtype", [None, torch.bfloat16, torch.float32, torch.float64], ids=str)
def test_ns_dtype_equals_the_pure_muon_with_that_dtype(ns_dtype):
    ps, grads = _pairs(SHAPES)
    got = _run(fo.adapters.Muon(ps, lr=0.02, ns_dtype=ns_dtype), ps, grads)
    params = [p.detach().clone() for p in _pairs(SHAPES)[0]]
    tx = fo.muon(lr=0.02, ns_dtype=ns_dtype or default_ns_dtype("cpu"))
    state = tx.init(params)
    for gs in grads:
        updates, state = tx.update(gs, state, params)
        params = fo.apply_updates(params, updates)
    for a, b in zip(got, params, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7)


def test_default_is_the_device_policy_and_bf16_gives_torchs_numbers():
    ps, grads = _pairs(SHAPES, seed=1)
    ours = _run(fo.adapters.Muon(ps, lr=0.02, ns_dtype=torch.bfloat16), ps, grads)
    ref_ps = _pairs(SHAPES, seed=1)[0]
    ref = _run(torch.optim.Muon(ref_ps, lr=0.02), ref_ps, grads)
    for a, b in zip(ours, ref, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=2e-3)  # bf16 NS; see test_muon_parity._tol
    if default_ns_dtype("cpu") == torch.bfloat16:
        ps2 = _pairs(SHAPES, seed=1)[0]
        default = _run(fo.adapters.Muon(ps2, lr=0.02), ps2, grads)
        for a, b in zip(default, ours, strict=True):
            assert torch.equal(a, b)


def test_chunked_step_equals_one_chunk_and_keeps_the_state_tensors(monkeypatch):
    ps, grads = _pairs(SHAPES, seed=2)
    whole = _run(fo.adapters.Muon(ps, lr=0.02, ns_dtype=torch.float64), ps, grads)
    monkeypatch.setattr(optimizers_module, "_MUON_CHUNK_ELEMENTS", 1)  # one matrix per chunk
    ps2 = _pairs(SHAPES, seed=2)[0]
    opt = fo.adapters.Muon(ps2, lr=0.02, ns_dtype=torch.float64)
    assert len(optimizers_module._muon_chunks(ps2)) == len(SHAPES)
    chunked = _run(opt, ps2, grads[:1])
    chunked = _run(opt, ps2, grads[1:])
    for a, b in zip(chunked, whole, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
    sd = opt.state_dict()
    assert sorted(sd["state"][0]) == ["momentum_buffer"]
