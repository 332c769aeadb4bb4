"""Muon matches torch.optim.Muon (with ``ns_dtype=torch.bfloat16``) over every option torch has."""

from __future__ import annotations

import math

import pytest
import torch

import functional_optim as fo
from tests._parity import check_parity, option_grid, option_id

DTYPES = [torch.float32, torch.float64]
LR = 0.02
# 2-D only (Muon): tall and wide matrices, two same-shape matrices and a transposed one that share a
# batched NS stack. Every matrix has m²n >= 400 (m <= n) so that CPU bf16 bmm uses the same gemm kernel
# (and summation order) as torch's mm/addmm: below that, bmm switches to a naive kernel whose float
# summation order differs, i.e. 1-ulp bf16 differences that NS then amplifies.
SHAPES = {
    "a_matrix": (10, 8),
    "b_wide": (8, 14),
    "c_same_as_a": (10, 8),
    "e_transposed_a": (8, 10),
    "d_sometimes_none": (12, 8),
}
MAX_ADJUSTED_LR = LR * max(math.sqrt(12 / 8), 0.2 * math.sqrt(14))


def _tol(dtype: torch.dtype) -> dict:
    """float64: assert_close's default (measured max abs difference ~3e-15).

    float32: both sides run the same bf16 Newton–Schulz ops, but the float update is composed
    differently (torch: p·(1 - lr·wd) - (lr·f)·O; here: p + (-lr)·(f·O + wd·p)), a float32 ulp
    apart. When a parameter sits within that ulp of a bf16 rounding boundary, the bf16 cast of the
    next NS input rounds the other way (a 2⁻⁸ relative change of one entry), and the NS polynomial
    (slope up to a ≈ 3.4 per step for small singular values) amplifies it over the following steps.
    Measured worst case over the grid: 4.7e-4 (2% of one step); tolerance 2⁻⁴ · max adjusted lr
    (≈ 1.5e-3, 6% of one step). One-step parity is tight (see test_one_muon_step_matches_torch_closely).
    """
    if dtype == torch.float64:
        return {}
    return {"rtol": 0.0, "atol": 2**-4 * MAX_ADJUSTED_LR}


# The full product of the options that change the update's arithmetic; ns_steps and the coefficients
# are varied on top of the default combination (they only change the NS polynomial).
MUON_GRID = [
    *option_grid(
        nesterov=[True, False], adjust_lr_fn=[None, "original", "match_rms_adamw"], weight_decay=[0.0, 0.1]
    ),
    {"ns_steps": 3},
    {"ns_steps": 7, "nesterov": False},
    {"ns_coefficients": (3.0, -3.2, 1.2)},
]


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("opts", MUON_GRID, ids=option_id)
def test_muon_matches_torch_for_every_option(opts, dtype):
    check_parity(
        lambda ps: torch.optim.Muon(ps, lr=LR, momentum=0.9, **opts),
        fo.muon(lr=LR, momentum=0.9, ns_dtype=torch.bfloat16, **opts),
        name="muon",
        options=opts,
        dtype=dtype,
        shapes=SHAPES,
        **_tol(dtype),
    )


@pytest.mark.parametrize("opts", MUON_GRID, ids=option_id)
def test_one_muon_step_matches_torch_closely(opts):
    """One step: identical bf16 NS (bit-for-bit), so only the float composition of the update differs."""
    check_parity(
        lambda ps: torch.optim.Muon(ps, lr=LR, momentum=0.9, **opts),
        fo.muon(lr=LR, momentum=0.9, ns_dtype=torch.bfloat16, **opts),
        name="muon",
        options={**opts, "steps": 1},
        shapes=SHAPES,
        steps=1,
    )


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_muon_defaults_and_tensor_lr_match_torch(dtype):
    check_parity(
        lambda ps: torch.optim.Muon(ps),
        fo.muon(ns_dtype=torch.bfloat16),
        name="muon",
        options={"defaults": True},
        dtype=dtype,
        shapes=SHAPES,
        **_tol(dtype),
    )
    check_parity(
        lambda ps: torch.optim.Muon(ps, lr=torch.tensor(LR)),
        fo.muon(lr=torch.tensor(LR), ns_dtype=torch.bfloat16),
        name="muon",
        options={"tensor_lr": True},
        dtype=dtype,
        shapes=SHAPES,
        # torch keeps a tensor lr a float32 0-dim tensor (_to_scalar), so ``1 - lr·wd`` and
        # ``lr·f`` are float32 tensor maths; we read the value and work in double: in float64 that
        # is one float32 ulp of the coefficients (as the Adam tensor-lr parity test documents).
        **(_tol(dtype) if dtype == torch.float32 else {"rtol": 1e-6, "atol": 1e-6}),
    )


def test_muon_with_a_scheduled_lr_matches_torch_with_the_same_schedule_set_by_hand():
    schedule = lambda count: LR * 0.9**count  # noqa: E731
    params = {"w": torch.randn(10, 8, generator=torch.Generator().manual_seed(0))}
    tp = torch.nn.Parameter(params["w"].clone())
    topt = torch.optim.Muon([tp], lr=LR)
    opt = fo.muon(lr=schedule, ns_dtype=torch.bfloat16)
    state = opt.init(params)
    for step in range(5):
        g = torch.cos(params["w"]) + 0.1 * step
        tp.grad = torch.cos(tp.detach()) + 0.1 * step
        for group in topt.param_groups:
            group["lr"] = schedule(step)
        topt.step()
        updates, state = opt.update({"w": g}, state, params)
        params = fo.apply_updates(params, updates)
        torch.testing.assert_close(params["w"], tp.detach(), **_tol(params["w"].dtype))


def test_float32_newton_schulz_stays_close_to_torchs_bf16_trajectory():
    """The fast default on CPUs without bf16 (float32 NS) is a different rounding of the same maths."""
    check_parity(
        lambda ps: torch.optim.Muon(ps, lr=LR),
        fo.muon(lr=LR, ns_dtype=torch.float32),
        name="muon",
        options={"ns_dtype": "float32"},
        shapes=SHAPES,
        rtol=0.0,
        atol=2**-3 * MAX_ADJUSTED_LR,  # measured 1.7e-3 = 7% of one step; bound 12.5% of one step
        compare_state=False,
    )


def test_a_callable_adjust_lr_fn_moves_the_parameter_by_the_adjusted_lr():
    fn = lambda lr, shape: lr**2 * shape[0] + lr  # noqa: E731  (non-linear in lr on purpose)
    params = {"w": torch.randn(6, 4, dtype=torch.float64)}
    g = {"w": torch.randn(6, 4, dtype=torch.float64)}
    opt = fo.muon(
        lr=LR, weight_decay=0.0, momentum=0.0, nesterov=False, adjust_lr_fn=fn, ns_dtype=torch.float64
    )
    updates, _ = opt.update(g, opt.init(params), params)
    ortho = fo.orthogonalize(ns_dtype=torch.float64).update(g, fo.EmptyState())[0]["w"]
    torch.testing.assert_close(updates["w"], -fn(LR, (6, 4)) * ortho)


def test_state_is_a_momentum_buffer_per_parameter_and_no_step():
    params = {"w": torch.zeros(3, 2)}
    state = fo.muon().init(params)
    names = [f for s in state for f in getattr(s, "_fields", ())]
    assert "momentum_buffer" in names
    # no step counter (torch keeps none); only state_dtype=torch.bfloat16 keeps one
    assert all(s.step == () for s in state if "step" in getattr(s, "_fields", ()))
    low = fo.muon(state_dtype=torch.bfloat16).init(params)
    assert [s.step["w"].item() for s in low if "step" in getattr(s, "_fields", ())] == [0.0]


def test_non_2d_params_raise_torchs_error_at_init():
    with pytest.raises(ValueError, match="Muon only supports 2D parameters"):
        fo.muon().init({"b": torch.zeros(3)})


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"lr": -1.0}, "Learning rate should be >= 0 but is: -1.0"),
        ({"momentum": -0.1}, "momentum should be >= 0 but is: -0.1"),
        ({"weight_decay": -0.1}, "weight decay should be >= 0 but is: -0.1"),
        ({"adjust_lr_fn": "sqrt"}, "Adjust learning rate function sqrt is not supported"),
        ({"lr": torch.tensor([0.1, 0.2])}, "Tensor lr must be 1-element"),
    ],
)
def test_muon_rejects_invalid_hyperparameters_like_torch(kwargs, message):
    with pytest.raises(ValueError, match=message):
        torch.optim.Muon([torch.nn.Parameter(torch.zeros(2, 2))], **kwargs)
    with pytest.raises(ValueError, match=message):
        fo.muon(**kwargs)


def test_ns_steps_and_coefficients_are_validated_with_torchs_messages():
    with pytest.raises(ValueError, match="Number of steps must be less than 100"):
        fo.muon(ns_steps=100)
    with pytest.raises(ValueError, match="Coefficients must be a tuple of exactly 3 values"):
        fo.muon(ns_coefficients=(1.0, 2.0))
