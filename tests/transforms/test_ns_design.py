"""``polar_express_coefficients`` and the ``"fast"`` Newton–Schulz preset built from it."""

from __future__ import annotations

import itertools

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

import functional_optim as fo
from functional_optim.transforms.ns_design import polar_express_coefficients
from functional_optim.transforms.orthogonalize import FAST, NS_PRESETS


def _compose(steps, x: torch.Tensor) -> torch.Tensor:
    for a, b, c in steps:
        x = a * x + b * x**3 + c * x**5
    return x


def test_the_fast_preset_is_reproduced_by_the_design_function():
    assert NS_PRESETS["fast"]["coefficients"] == FAST
    designed = polar_express_coefficients(0.004, (5, 5, 5, 5))
    assert len(designed) == len(FAST) == 4
    for got, want in zip(designed, FAST, strict=True):
        for g, w in zip(got, want, strict=True):
            assert g == pytest.approx(w, abs=1e-6)


@pytest.mark.parametrize(
    ("lower", "degrees"), [(0.006, (5, 5, 5, 3)), (1e-3, (5, 5, 5, 5, 5)), (0.05, (3, 3, 3))]
)
def test_each_step_maps_its_interval_into_a_band_centred_on_one(lower, degrees):
    steps = polar_express_coefficients(lower, degrees, safety=0.0)
    x = torch.linspace(lower, 1.0, 20001, dtype=torch.float64)
    widths = []
    for k in range(len(steps)):
        y = _compose(steps[: k + 1], x)
        assert y.min().item() > 0  # singular values never change sign
        assert y.min().item() + y.max().item() == pytest.approx(2.0, abs=1e-6)  # centred on 1
        widths.append(y.max().item() - 1)
    assert all(b < a for a, b in itertools.pairwise(widths)), widths  # the band shrinks


def test_each_step_is_the_minimax_polynomial_of_its_degree():
    """No small change of a step's coefficients lowers its maximal error on its interval."""
    lower = 0.01
    (a, b, c) = polar_express_coefficients(lower, (5,), safety=0.0)[0]
    x = torch.linspace(lower, 1.0, 20001, dtype=torch.float64)

    def err(t):
        return (1 - _compose([t], x)).abs().max().item()

    best = err((a, b, c)) * (1 - 1e-9)  # centred: the minimax error scaled by 2 / (min + max)
    gen = torch.Generator().manual_seed(0)
    for _ in range(200):
        d = (torch.randn(3, generator=gen, dtype=torch.float64) * 1e-3).tolist()
        scale = 1 + d[0]
        trial = (a * scale + d[1], b * scale + d[2], c * scale)
        assert err(trial) >= best * (1 - 1e-3)


def test_design_arguments_are_checked():
    with pytest.raises(ValueError, match="lower must be in"):
        polar_express_coefficients(0.0)
    with pytest.raises(ValueError, match="degrees must be 3 or 5"):
        polar_express_coefficients(0.01, (7,))
    with pytest.raises(ValueError, match="safety must be"):
        polar_express_coefficients(0.01, safety=-1.0)


class _CountMatmuls(TorchDispatchMode):
    def __init__(self) -> None:
        super().__init__()
        self.flops = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in (torch.ops.aten.bmm.default, torch.ops.aten.baddbmm.default):
            x, y = (args[0], args[1]) if func is torch.ops.aten.bmm.default else (args[1], args[2])
            self.flops += x.shape[0] * x.shape[1] * x.shape[2] * y.shape[2]
        return func(*args, **kwargs)


@pytest.mark.parametrize(
    ("shape", "keller_products", "fast_products"), [((64, 64), 15, 12), ((32, 128), 45, 26)]
)
def test_fast_runs_fewer_multiply_adds_than_keller(shape, keller_products, fast_products):
    """Square: 4 direct steps (12 m³) against torch's 15 m³. 4× wide: the Gram iteration with one
    restart in bf16 (4·m²n + 10·m³ = 26 m³) against 5·(2·m²n + m³) = 45 m³."""
    g = torch.randn(shape)
    m = min(shape)
    counts = {}
    for preset in ("keller", "fast"):
        tx = fo.orthogonalize(preset, ns_dtype=torch.bfloat16)
        with _CountMatmuls() as counter:
            tx.update([g], fo.EmptyState())
        counts[preset] = counter.flops / m**3
    assert counts == {"keller": keller_products, "fast": fast_products}


def _spread(m: int, n: int, sigma_min: float, seed: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    u, _ = torch.linalg.qr(torch.randn(m, m, generator=gen, dtype=torch.float64))
    v, _ = torch.linalg.qr(torch.randn(n, n, generator=gen, dtype=torch.float64))
    k = min(m, n)
    s = torch.logspace(0, torch.log10(torch.tensor(sigma_min)).item(), k, dtype=torch.float64)
    return (u[:, :k] * s) @ v[:, :k].T


def _error(preset: str, g: torch.Tensor) -> float:
    u, _, vh = torch.linalg.svd(g.double(), full_matrices=False)
    polar = u @ vh
    out = fo.orthogonalize(preset, ns_dtype=torch.bfloat16).update([g.float()], fo.EmptyState())[0][0]
    return ((out.double() - polar).norm() / polar.norm()).item()


@pytest.mark.parametrize(
    "case",
    [
        "gauss 96x96",
        "gauss 64x256",
        "gauss 256x64",
        "spread 32x128 1e-3",
        "spread 64x192 1e-3",
        "spread 96x96 1e-2",
    ],
)
def test_fast_is_closer_to_the_polar_factor_than_torchs_iteration_in_bf16(case):
    """Gaussian and log-spread spectra (the benchmark's measures); not low-rank-plus-tiny-noise
    inputs, where torch's larger slope at 0 lifts the noise directions further (documented)."""
    kind, shape, *rest = case.split()
    m, n = (int(v) for v in shape.split("x"))
    gen = torch.Generator().manual_seed(m + n)
    g = (
        torch.randn(m, n, generator=gen, dtype=torch.float64)
        if kind == "gauss"
        else _spread(m, n, float(rest[0]), 5)
    )
    assert _error("fast", g) < _error("keller", g)


def test_fast_keeps_zero_tiny_and_rank_one_inputs_sane():
    tx = fo.orthogonalize("fast", ns_dtype=torch.float32)
    zero, tiny = torch.zeros(8, 24), torch.randn(8, 24) * 1e-12
    rank1 = torch.randn(16, 1) @ torch.randn(1, 48)
    out = tx.update([zero, tiny, rank1], fo.EmptyState())[0]
    assert torch.equal(out[0], zero)
    # below eps the normalisation floors, as torch's: the output stays small, as keller's
    keller = fo.orthogonalize("keller", ns_dtype=torch.float32).update([tiny], fo.EmptyState())[0][0]
    assert out[1].abs().max().item() < min(0.1, 2 * keller.abs().max().item())
    # a rank-1 input sits exactly at the Schatten-8 bound: its singular value lands in the band
    sv = torch.linalg.svdvals(out[2].double())
    assert 0.8 < sv[0].item() < 1.2 and sv[1].item() < 1e-5


def test_presets_bring_their_own_number_of_steps_and_method():
    g = [torch.randn(12, 40)]
    default = fo.orthogonalize("fast", ns_dtype=torch.float64).update(g, fo.EmptyState())[0][0]
    explicit = fo.orthogonalize("fast", 4, ns_dtype=torch.float64, ns_method="auto").update(
        g, fo.EmptyState()
    )[0][0]
    five = fo.orthogonalize("fast", 5, ns_dtype=torch.float64).update(g, fo.EmptyState())[0][0]
    assert torch.equal(default, explicit) and not torch.equal(default, five)
    ps = [torch.nn.Parameter(torch.randn(12, 40, dtype=torch.float64))]
    ps[0].grad = g[0].double()
    opt = fo.adapters.Muon(ps, lr=0.1, ns_coefficients="fast", ns_dtype=torch.float64)
    tx = fo.muon(lr=0.1, ns_coefficients="fast", ns_dtype=torch.float64)
    params = [ps[0].detach().clone()]
    updates, _ = tx.update([g[0].double()], tx.init(params), params)
    opt.step()
    torch.testing.assert_close(ps[0].detach(), params[0] + updates[0], rtol=0, atol=1e-12)


def test_cubic_steps_skip_the_square_of_a_and_agree_between_methods_in_float64():
    """A step with ``c = 0`` costs 2 products (``X Xᵀ`` and ``H X``) directly and no ``A²`` on the
    Gram matrix; both methods give the same polynomial."""
    steps = polar_express_coefficients(0.01, (5, 3, 3))
    g = torch.randn(16, 64, dtype=torch.float64)
    outs = {}
    for method in ("direct", "gram"):
        tx = fo.orthogonalize(steps, ns_dtype=torch.float64, ns_method=method)
        with _CountMatmuls() as counter:
            outs[method] = tx.update([g], fo.EmptyState())[0][0]
        outs[method + " flops"] = counter.flops / 16**3
    torch.testing.assert_close(outs["gram"], outs["direct"], rtol=1e-10, atol=1e-10)
    # direct: (2·4 + 1) + 2·(2·4) = 25; gram (float64, no restart): R and Q·X (2·4), A² and the
    # A update of the quintic step (3), Q and A updates of the first cubic (3), Q of the last (1)
    assert (outs["direct flops"], outs["gram flops"]) == (25, 15)
