"""Muon matches torch.optim.Muon (with ``ns_dtype=torch.bfloat16``) over every option torch has."""

from __future__ import annotations

import math

import pytest
import torch

import functional_optim as fo
from tests._parity import check_parity, option_grid, option_id

DTYPES = [torch.float32, torch.float64]
LR = 0.02
# 2-D only (Muon); two same-shape matrices and a transposed pair share one batched NS stack.
SHAPES = {
    "a_matrix": (5, 4),
    "b_wide": (4, 7),
    "c_same_as_a": (5, 4),
    "e_transposed_a": (4, 5),
    "d_sometimes_none": (3, 2),
}
# bf16 tolerance. Both sides run the *same* bf16 Newton–Schulz op sequence (bit-identical per
# matrix, see test_orthogonalize), but the final float update is composed differently: torch does
# p·(1 - lr·wd) - (lr·f)·O, we do p + (-lr)·(f·O + wd·p), a float32/float64 ulp apart. A ulp
# difference in the parameters can flip one bf16 rounding inside a later NS (in X, A = XXᵀ or the
# bf16 norm), and the NS polynomial (slope up to a ≈ 3.4 per step) spreads it to a few bf16 ulps
# (2⁻⁸ relative, |O| <= ~1.2) of the output, times the adjusted lr: atol = 4 bf16 ulps · max adjusted
# lr = 2⁻⁶ · max adjusted lr (≈ 3.5e-4, 1.6% of one step). Measured max abs differences: ~2e-6
# (float32) and ~2e-15 (float64) unless such a flip happens (then 4e-5 .. 2.2e-4).
MAX_ADJUSTED_LR = LR * max(math.sqrt(5 / 4), 0.2 * math.sqrt(7))
BF16_TOL = {"rtol": 0.0, "atol": 2**-6 * MAX_ADJUSTED_LR}

MUON_GRID = option_grid(
    nesterov=[True, False],
    adjust_lr_fn=[None, "original", "match_rms_adamw"],
    weight_decay=[0.0, 0.1],
    ns_steps=[5, 3],
    ns_coefficients=[(3.4445, -4.7750, 2.0315), (3.0, -3.2, 1.2)],
)


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
        **BF16_TOL,
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
        **BF16_TOL,
    )
    check_parity(
        lambda ps: torch.optim.Muon(ps, lr=torch.tensor(LR)),
        fo.muon(lr=torch.tensor(LR), ns_dtype=torch.bfloat16),
        name="muon",
        options={"tensor_lr": True},
        dtype=dtype,
        shapes=SHAPES,
        **BF16_TOL,
    )


def test_muon_with_a_scheduled_lr_matches_torch_with_the_same_schedule_set_by_hand():
    schedule = lambda count: LR * 0.9**count  # noqa: E731
    params = {"w": torch.randn(6, 4, generator=torch.Generator().manual_seed(0))}
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
        torch.testing.assert_close(params["w"], tp.detach(), **BF16_TOL)


def test_float32_newton_schulz_stays_close_to_torchs_bf16_trajectory():
    """The fast default on CPUs without bf16 (float32 NS) is a different rounding of the same maths."""
    check_parity(
        lambda ps: torch.optim.Muon(ps, lr=LR),
        fo.muon(lr=LR, ns_dtype=torch.float32),
        name="muon",
        options={"ns_dtype": "float32"},
        shapes=SHAPES,
        rtol=0.0,
        atol=20 * LR * 2**-8,
        compare_state=False,
    )


def test_a_callable_adjust_lr_fn_moves_the_parameter_by_the_adjusted_lr():
    fn = lambda lr, shape: lr**2 * shape[0] + lr  # noqa: E731  (non-linear in lr on purpose)
    params = {"w": torch.randn(6, 4, dtype=torch.float64)}
    g = {"w": torch.randn(6, 4, dtype=torch.float64)}
    opt = fo.muon(lr=LR, weight_decay=0.0, momentum=0.0, nesterov=False, adjust_lr_fn=fn, ns_dtype=torch.float64)
    updates, _ = opt.update(g, opt.init(params), params)
    ortho = fo.orthogonalize(ns_dtype=torch.float64).update(g, fo.EmptyState())[0]["w"]
    torch.testing.assert_close(updates["w"], -fn(LR, (6, 4)) * ortho)


def test_state_is_a_momentum_buffer_per_parameter_and_no_step():
    params = {"w": torch.zeros(3, 2)}
    state = fo.muon().init(params)
    names = [f for s in state for f in getattr(s, "_fields", ())]
    assert "momentum_buffer" in names and "step" not in names


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
