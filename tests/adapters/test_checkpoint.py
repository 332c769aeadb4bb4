"""Checkpoints move between torch.optim.X and functional_optim.adapters.X in both directions and
training continues with the same numbers; save -> new process -> load -> continue is bit-identical
to uninterrupted training."""

from __future__ import annotations

import copy
import io
import os
import subprocess
import sys

import pytest
import torch

import functional_optim as fo
from tests.adapters._cases import CASES, assert_same_state, build, make_groups, set_grads, tolerance

ALL = sorted(CASES)


def _saved(opt: torch.optim.Optimizer) -> dict:
    """What ``torch.save``/``torch.load`` (weights_only, the default) gives back."""
    buf = io.BytesIO()
    torch.save(opt.state_dict(), buf)
    buf.seek(0)
    return torch.load(buf)


@pytest.mark.parametrize("direction", ["torch_to_fo", "fo_to_torch"])
@pytest.mark.parametrize("name", ALL)
def test_checkpoint_loads_across_and_training_continues_identically(name, direction):
    opts = CASES[name][-1]
    src_cls = getattr(torch.optim if direction == "torch_to_fo" else fo.adapters, name)
    dst_cls = getattr(fo.adapters if direction == "torch_to_fo" else torch.optim, name)
    gs = make_groups(name)
    src = build(src_cls, name, gs, opts, src_cls.__module__.startswith("torch"))
    for step in range(4):
        set_grads(gs, step)
        src.step()
    sd = _saved(src)
    gd = make_groups(name)
    with torch.no_grad():
        for a, b in zip(gd, gs, strict=True):
            for n in a:
                a[n].copy_(b[n])
    dst = build(dst_cls, name, gd, CASES[name][0], dst_cls.__module__.startswith("torch"))  # other options
    dst.load_state_dict(sd)
    assert dst.param_groups[1]["lr"] == src.param_groups[1]["lr"]
    assert_same_state(src, dst)
    for step in range(4, 9):
        set_grads(gs, step)
        set_grads(gd, step)
        src.step()
        dst.step()
        for a, b in zip(gd, gs, strict=True):
            for n in a:
                torch.testing.assert_close(a[n], b[n], **tolerance(name), msg=lambda m, n=n: f"{n}: {m}")
    assert_same_state(src, dst, **tolerance(name))


def test_sparse_adam_checkpoint_interop_both_directions():
    from tests.adapters.test_sparse_adam import embeddings, sparse_step

    for src_cls, dst_cls in [
        (torch.optim.SparseAdam, fo.adapters.SparseAdam),
        (fo.adapters.SparseAdam, torch.optim.SparseAdam),
    ]:
        es, ed = embeddings(), embeddings()
        src = src_cls([{"params": es[0].parameters()}, {"params": es[1].parameters(), "lr": 0.02}], lr=0.01)
        for step in range(3):
            sparse_step(es, step)
            src.step()
        sd = _saved(src)
        with torch.no_grad():
            for a, b in zip(ed, es, strict=True):
                a.weight.copy_(b.weight)
        dst = dst_cls([{"params": ed[0].parameters()}, {"params": ed[1].parameters()}])
        dst.load_state_dict(sd)
        assert_same_state(src, dst)
        for step in range(3, 6):
            sparse_step(es, step)
            sparse_step(ed, step)
            src.step()
            dst.step()
        for a, b in zip(ed, es, strict=True):
            torch.testing.assert_close(a.weight, b.weight)
        assert_same_state(src, dst)


_CHILD = r"""
import sys, torch
import functional_optim as fo
from tests.adapters.test_checkpoint import RESUME_CASES, make_resume, resume_grads
ckpt = torch.load(sys.argv[1])
out = {}
for key in RESUME_CASES:
    params, opt = make_resume(key)
    with torch.no_grad():
        for p, v in zip(params, ckpt[key]["params"]):
            p.copy_(v)
    opt.load_state_dict(ckpt[key]["opt"])
    for step in range(3, 7):
        resume_grads(params, step)
        opt.step()
    out[key] = [p.detach().clone() for p in params]
torch.save(out, sys.argv[2])
"""

RESUME_CASES = ["AdamW", "SGD", "NAdam", "Adagrad", "generic_inject_hyperparams"]


def make_resume(key: str):
    gen = torch.Generator().manual_seed(3)
    params = [
        torch.nn.Parameter(torch.randn(4, 3, generator=gen)),
        torch.nn.Parameter(torch.randn(5, generator=gen)),
    ]
    if key == "generic_inject_hyperparams":
        # non-per-parameter state (inject_hyperparams' count and hyperparameters, float64) must persist
        transform = fo.chain(
            fo.clip_by_global_norm(1.0),
            fo.inject_hyperparams(fo.adamw)(lr=lambda count: 0.01 * 0.9**count, weight_decay=0.05),
        )
        return params, fo.adapters.FunctionalOptimizer(params, transform)
    opts = {"SGD": {"lr": 0.05, "momentum": 0.9}}.get(key, {"lr": 0.01})
    return params, getattr(fo.adapters, key)(params, **opts)


def resume_grads(params, step):
    gen = torch.Generator().manual_seed(100 + step)
    for p in params:
        p.grad = torch.randn(p.shape, generator=gen)


def test_save_new_process_load_continue_is_bit_identical(tmp_path):
    ckpt, final = {}, {}
    for key in RESUME_CASES:
        params, opt = make_resume(key)
        for step in range(7):
            if step == 3:
                ckpt[key] = {
                    "params": [p.detach().clone() for p in params],
                    "opt": copy.deepcopy(opt.state_dict()),
                }
            resume_grads(params, step)
            opt.step()
        final[key] = [p.detach().clone() for p in params]
    torch.save(ckpt, tmp_path / "ckpt.pt")
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    subprocess.run(
        [sys.executable, "-c", _CHILD, str(tmp_path / "ckpt.pt"), str(tmp_path / "out.pt")],
        check=True,
        cwd=root,
        env={**os.environ, "PYTHONPATH": root},
        timeout=120,
    )
    resumed = torch.load(tmp_path / "out.pt")
    for key in RESUME_CASES:
        for a, b in zip(resumed[key], final[key], strict=True):
            assert torch.equal(a, b), key


def test_generic_state_dict_keeps_non_per_parameter_state_in_first_param():
    params, opt = make_resume("generic_inject_hyperparams")
    resume_grads(params, 0)
    opt.step()
    glob = opt.state[params[0]][fo.adapters.FUNCTIONAL_STATE_KEY]
    assert any(k.endswith("count") for k in glob)
    assert fo.adapters.FUNCTIONAL_STATE_KEY not in opt.state[params[1]]
    sd = opt.state_dict()
    saved = sd["state"][0][fo.adapters.FUNCTIONAL_STATE_KEY]
    assert all(isinstance(v, int | float) for v in saved.values())  # 0-dim tensors saved as numbers
    assert isinstance(next(iter(glob.values())), torch.Tensor)  # the live state is untouched
