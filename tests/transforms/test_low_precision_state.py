"""``state_dtype=torch.bfloat16``: Adam's moments stored in bfloat16 with stochastic rounding."""

from __future__ import annotations

import pytest
import torch

import functional_optim as fo


def _run(tx, params, grads_seq):
    state = tx.init(params)
    for grads in grads_seq:
        updates, state = tx.update(grads, state, params)
        params = fo.apply_updates(params, updates)
    return params, state


def test_moments_of_float32_parameters_are_bfloat16_others_keep_their_dtype():
    params = {
        "w": torch.zeros(3),
        "z": torch.zeros(2, dtype=torch.complex64),
        "h": torch.zeros(2, dtype=torch.bfloat16),
    }
    state = fo.adamw(1e-3, state_dtype=torch.bfloat16, amsgrad=True).init(params)[0]
    for field in (state.exp_avg, state.exp_avg_sq, state.max_exp_avg_sq):
        assert field["w"].dtype == torch.bfloat16
        assert field["z"].dtype == torch.complex64 and field["h"].dtype == torch.bfloat16
    assert state.step["w"].dtype == torch.float32


def test_the_stored_moments_are_unbiased_where_round_to_nearest_stalls():
    # v ← 0.999·v + 0.001·g² with g² = 1 from v = 0.97: each increment (≈3e-5) is far below half
    # a bfloat16 ulp at 0.97 (2^-9 ≈ 2e-3), so round to nearest never moves; stochastic rounding
    # moves it by the right amount on average over the elements
    n, steps = 4096, 40
    tx = fo.scale_by_adam(state_dtype=torch.bfloat16)
    params = [torch.zeros(n)]
    state = tx.init(params)
    start = torch.full((n,), 0.97).to(torch.bfloat16)  # 0.96875
    state = state._replace(exp_avg_sq=[start])
    exact = start.double()
    for _ in range(steps):
        _, state = tx.update([torch.ones(n)], state, params)
        exact = 0.999 * exact + 0.001
    stored = state.exp_avg_sq[0].double()
    nearest = start.double()  # where round to nearest stays
    assert abs(stored.mean().item() - exact.mean().item()) < 2e-4
    assert abs(nearest.mean().item() - exact.mean().item()) > 1e-3


def test_low_precision_steps_are_deterministic_and_leave_the_global_generator_alone():
    gen = torch.Generator().manual_seed(0)
    params = [torch.randn(300, generator=gen), torch.randn(7, 5, generator=gen)]
    grads_seq = [[torch.randn_like(p) for p in params] for _ in range(5)]
    rng = torch.get_rng_state()
    a = _run(fo.adam(1e-2, state_dtype=torch.bfloat16), params, grads_seq)
    assert torch.equal(torch.get_rng_state(), rng)
    b = _run(fo.adam(1e-2, state_dtype=torch.bfloat16), params, grads_seq)
    for x, y in zip(fo.tree.leaves(a), fo.tree.leaves(b), strict=True):
        assert not isinstance(x, torch.Tensor) or torch.equal(x, y)
    full, _ = _run(fo.adam(1e-2), params, grads_seq)
    for x, y in zip(a[0], full, strict=True):
        torch.testing.assert_close(x, y, rtol=0, atol=2e-3)  # bfloat16 moments: close to float32


def test_the_adapter_keeps_bfloat16_moments_and_tracks_the_float32_optimizer():
    gen = torch.Generator().manual_seed(1)
    init = [torch.randn(64, generator=gen), torch.randn(8, 8, generator=gen)]
    p_low = [t.clone().requires_grad_() for t in init]
    p_ref = [t.clone().requires_grad_() for t in init]
    low = fo.adapters.AdamW(p_low, lr=1e-2, weight_decay=0.1, state_dtype=torch.bfloat16)
    ref = torch.optim.AdamW(p_ref, lr=1e-2, weight_decay=0.1)
    for _ in range(20):
        for a, b in zip(p_low, p_ref, strict=True):
            g = torch.randn(a.shape, generator=gen)
            a.grad, b.grad = g.clone(), g.clone()
        low.step()
        ref.step()
    for p in p_low:
        assert low.state[p]["exp_avg"].dtype == torch.bfloat16
        assert low.state[p]["exp_avg_sq"].dtype == torch.bfloat16
    for a, b in zip(p_low, p_ref, strict=True):
        torch.testing.assert_close(a.detach(), b.detach(), rtol=0, atol=5e-3)


def test_a_bfloat16_state_is_refused_by_the_float32_transform_and_bad_dtypes_raise():
    params = [torch.zeros(4)]
    low_state = fo.scale_by_adam(state_dtype=torch.bfloat16).init(params)
    with pytest.raises(TypeError, match=r"exp_avg of parameter '0' has dtype torch\.bfloat16"):
        fo.scale_by_adam().update([torch.ones(4)], low_state, params)
    with pytest.raises(ValueError, match=r"state_dtype must be None, torch\.float32 or torch\.bfloat16"):
        fo.scale_by_adam(state_dtype=torch.float16)


def test_bfloat16_and_float32_parameters_together_step_like_their_own_kind():
    gen = torch.Generator().manual_seed(2)
    params = [torch.randn(50, generator=gen), torch.randn(50, generator=gen).to(torch.bfloat16)]
    grads_seq = [[torch.randn(50, generator=gen).to(p.dtype) for p in params] for _ in range(3)]
    mixed, state = _run(fo.adam(1e-2, state_dtype=torch.bfloat16), params, grads_seq)
    plain, _ = _run(fo.adam(1e-2), params, grads_seq)
    assert state[1].exp_avg[0].dtype == torch.bfloat16 and state[1].exp_avg[1].dtype == torch.bfloat16
    assert torch.equal(mixed[1], plain[1])  # a bfloat16 parameter: the plain bfloat16 maths
    torch.testing.assert_close(mixed[0], plain[0], rtol=0, atol=2e-3)


def _steps(opt, params, grads_seq):
    for grads in grads_seq:
        for p, g in zip(params, grads, strict=True):
            p.grad = g.clone()
        opt.step()


@pytest.mark.parametrize(("cls", "amsgrad"), [("AdamW", False), ("Adam", True)])
def test_a_bfloat16_checkpoint_reloads_as_bfloat16_and_resumes_bit_identically(cls, amsgrad):
    import io

    gen = torch.Generator().manual_seed(2)
    init = [torch.randn(64, generator=gen), torch.randn(8, 8, generator=gen)]
    grads_seq = [[torch.randn(t.shape, generator=gen) for t in init] for _ in range(6)]
    make = getattr(fo.adapters, cls)
    hp = {"lr": 1e-2, "weight_decay": 0.1, "amsgrad": amsgrad, "state_dtype": torch.bfloat16}
    p_run = [t.clone().requires_grad_() for t in init]
    run = make(p_run, **hp)
    _steps(run, p_run, grads_seq[:3])
    buffer = io.BytesIO()
    torch.save(run.state_dict(), buffer)
    p_new = [t.detach().clone().requires_grad_() for t in p_run]
    resumed = make(p_new, **hp)
    buffer.seek(0)
    resumed.load_state_dict(torch.load(buffer))
    keys = ("exp_avg", "exp_avg_sq", *(("max_exp_avg_sq",) if amsgrad else ()))
    for p in p_new:
        assert {resumed.state[p][k].dtype for k in keys} == {torch.bfloat16}
    _steps(run, p_run, grads_seq[3:])
    _steps(resumed, p_new, grads_seq[3:])
    for a, b in zip(p_run, p_new, strict=True):
        assert torch.equal(a, b)
        for k in keys:
            assert torch.equal(run.state[a][k], resumed.state[b][k])
            assert resumed.state[b][k].dtype == torch.bfloat16


def test_a_float32_checkpoint_loaded_into_a_bfloat16_optimizer_is_stored_in_bfloat16():
    gen = torch.Generator().manual_seed(3)
    init = [torch.randn(16, generator=gen)]
    grads_seq = [[torch.randn(16, generator=gen)] for _ in range(2)]
    p_ref = [t.clone().requires_grad_() for t in init]
    ref = torch.optim.AdamW(p_ref, lr=1e-2)
    _steps(ref, p_ref, grads_seq)
    p_low = [t.clone().requires_grad_() for t in init]
    low = fo.adapters.AdamW(p_low, lr=1e-2, state_dtype=torch.bfloat16)
    low.load_state_dict(ref.state_dict())
    st, ref_st = low.state[p_low[0]], ref.state[p_ref[0]]
    assert st["exp_avg"].dtype == torch.bfloat16 and st["exp_avg_sq"].dtype == torch.bfloat16
    assert torch.equal(st["exp_avg"], ref_st["exp_avg"].to(torch.bfloat16))  # rounded to nearest
    assert ref_st["exp_avg"].dtype == torch.float32  # the checkpoint itself is untouched
    # a float32 optimizer keeps float32 state, as torch
    p_f32 = [t.clone().requires_grad_() for t in init]
    f32 = fo.adapters.AdamW(p_f32, lr=1e-2)
    f32.load_state_dict(low.state_dict())
    assert f32.state[p_f32[0]]["exp_avg"].dtype == torch.float32


def test_a_transform_that_cannot_initialise_meta_tensors_still_loads_its_checkpoint():
    # Kron's seeded init needs a real device: the dtype restoration falls back to the parameters
    gen = torch.Generator().manual_seed(4)
    init = [torch.randn(8, 6, generator=gen), torch.randn(6, generator=gen)]
    grads_seq = [[torch.randn(t.shape, generator=gen) for t in init] for _ in range(4)]
    p_run = [t.clone().requires_grad_() for t in init]
    run = fo.adapters.Kron(p_run)
    _steps(run, p_run, grads_seq[:2])
    p_new = [t.detach().clone().requires_grad_() for t in p_run]
    resumed = fo.adapters.Kron(p_new)
    resumed.load_state_dict(run.state_dict())
    _steps(run, p_run, grads_seq[2:])
    _steps(resumed, p_new, grads_seq[2:])
    for a, b in zip(p_run, p_new, strict=True):
        assert torch.equal(a, b)
