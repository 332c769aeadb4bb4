"""Adafactor matches torch.optim.Adafactor (foreach=False) over every option combination and every
parameter rank (0-dim, vector, matrix, 3-D)."""

from __future__ import annotations

import pytest
import torch

import functional_optim as fo
from tests._parity import SHAPES, check_parity, option_grid, option_id

DTYPES = [torch.float32, torch.float64]
# torch's shapes plus a 3-D parameter (factored over its last two dimensions).
SHAPES_3D = {**SHAPES, "e_tensor3": (2, 4, 3)}
# lr=0.5 makes the relative step size min(lr, 1/sqrt(t)) switch to 1/sqrt(t) from step 5 on;
# d=1.5 clips less often than d=1.
GRID = option_grid(
    lr=[0.01, 0.5],
    beta2_decay=[-0.8, -0.5],
    d=[1.0, 1.5],
    weight_decay=[0.0, 0.1],
    maximize=[False, True],
)


def _tol(opts: dict, dtype: torch.dtype) -> dict:
    """Two documented loosenings, everything else runs at assert_close's defaults.

    * float32, lr=0.5 and maximize: torch applies the step as ``p.add_(U, alpha=-α/denom)``, one fused
      multiply-add on CPU; the composition rounds ``U·α/(lr·denom)`` first and ``p + u`` after
      (half an ulp of the update). Adafactor's step is proportional to ``RMS(p)`` and with lr=0.5
      it moves p by up to ``1/√t`` of its RMS, so the difference feeds back into every later step;
      in the diverging ``maximize`` runs (|p| up to ~1700 by step 20; weight decay adds the
      rounding of ``p + u`` vs torch's ``p·(1 - lr·wd)``) it reaches 2.6e-6 relative, over
      float32's default rtol 1.3e-6: rtol 3e-6. The same runs minimizing pass the defaults.
    * float64 with a tensor lr: torch keeps a 0-dim float32 tensor lr and computes ``1 - lr·wd``
      and ``α = max(eps2, RMS(p))·min(lr, 1/√t)`` in float32 tensor arithmetic; functional_optim
      reads the value and computes in double (as for a float lr). One float32 ulp of the
      coefficient, compounded: rtol/atol 1e-6 (as the Adam tests).
    """
    if dtype == torch.float32 and opts.get("lr") == 0.5 and opts.get("maximize"):
        return {"rtol": 3e-6, "atol": 1e-5}
    if dtype == torch.float64 and isinstance(opts.get("lr"), torch.Tensor):
        return {"rtol": 1e-6, "atol": 1e-6}
    return {}


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("opts", GRID, ids=option_id)
def test_adafactor_matches_torch_for_every_option(opts, dtype):
    check_parity(
        lambda ps: torch.optim.Adafactor(ps, foreach=False, **opts),
        fo.adafactor(**opts),
        name="adafactor",
        options=opts,
        dtype=dtype,
        shapes=SHAPES_3D,
        **_tol(opts, dtype),
    )


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize(
    "opts",
    [
        {"eps": (1e-4, 1e-3)},
        {"eps": (None, 0.5)},  # eps2 larger than RMS(p): the step-size floor is active
        {"lr": torch.tensor(0.02), "weight_decay": 0.1},
        {},
    ],
    ids=option_id,
)
def test_adafactor_eps_tensor_lr_and_defaults_match_torch(opts, dtype):
    check_parity(
        lambda ps: torch.optim.Adafactor(ps, foreach=False, **opts),
        fo.adafactor(**opts),
        name="adafactor",
        options=opts,
        dtype=dtype,
        shapes=SHAPES_3D,
        **_tol(opts, dtype),
    )


def test_adafactor_state_has_torch_shapes():
    params = {"m": torch.zeros(2, 4, 3), "v": torch.zeros(7), "s": torch.zeros(())}
    state = fo.adafactor().init(params)[0]
    assert state.row_var["m"].shape == (2, 4, 1) and state.col_var["m"].shape == (2, 1, 3)
    assert state.variance["m"] == ()
    assert state.variance["v"].shape == (7,) and state.variance["s"].shape == ()
    assert state.row_var["v"] == () and state.col_var["s"] == ()


def test_adafactor_rejects_complex_parameters_like_torch():
    p = torch.nn.Parameter(torch.randn(3, dtype=torch.complex64))
    p.grad = torch.randn(3, dtype=torch.complex64)
    with pytest.raises(RuntimeError, match="complex"):
        torch.optim.Adafactor([p], foreach=False).step()
    opt, params = fo.adafactor(), {"w": p.detach()}
    with pytest.raises(RuntimeError, match="complex"):
        opt.update({"w": p.grad}, opt.init(params), params)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"lr": -1.0}, "Learning rate should be >= 0"),
        ({"beta2_decay": 0.1}, "beta2_decay should be <= 0"),
        ({"eps": (-1e-3, 1e-3)}, "epsilon1 should be >= 0"),
        ({"eps": (None, -1e-3)}, "epsilon2 should be >= 0"),
        ({"d": 0.5}, "Clipping threshold d should be >= 1"),
        ({"weight_decay": -0.1}, "weight_decay should be >= 0"),
        ({"lr": torch.tensor([0.1, 0.2])}, "Tensor lr must be 1-element"),
    ],
)
def test_adafactor_rejects_invalid_hyperparameters_like_torch(kwargs, message):
    with pytest.raises(ValueError, match=message) as torch_err:
        torch.optim.Adafactor([torch.nn.Parameter(torch.zeros(1))], **kwargs)
    with pytest.raises(ValueError, match=message) as ours:
        fo.adafactor(**kwargs)
    assert str(ours.value) == str(torch_err.value)
