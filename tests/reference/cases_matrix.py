"""Reference cases of the matrix optimizers: SOAP, NorMuon, AdaMuon.

* SOAP against the official single-file code (github.com/nikhilvyas/SOAP, module ``soap``: it is not
  on PyPI; put its ``soap.py`` on ``PYTHONPATH`` to run these cases). float32 only: the official
  code keeps its preconditioner in the *default* dtype and computes the eigenbases in float32 (a
  float64 run fails unless the default dtype is float64, and then mixes a float64 ``eigh`` with a
  float32 ``qr``).
* NorMuon and AdaMuon against pytorch-optimizer (``pytorch_optimizer``), hidden matrices with the
  Muon rule and the biases with its AdamW groups (ours: ``fo.partition`` with ``fo.adamw``).
  Newton–Schulz runs in the run's dtype on both sides (the reference's bf16 default is replaced
  by the same function with ``dtype=`` the run dtype), so the comparison is of the maths around it.
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

import functional_optim as fo
from tests.reference._framework import ReferenceCase, mlp_problem, run_pure, run_torch

_F32 = (torch.float32,)


def _with_default_dtype(dtype: torch.dtype, fn: Callable[[], Any]) -> Any:
    old = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        return fn()
    finally:
        torch.set_default_dtype(old)


def _soap_case(name: str, lr: float = 3e-3, **kw: Any) -> ReferenceCase:
    def run(dtype: torch.dtype, steps: int) -> tuple[list[Tensor], list[Tensor]]:
        soap = importlib.import_module("soap")
        problem = mlp_problem(dtype)
        ours = run_pure(fo.soap(lr=lr, **kw), problem, steps)
        ref = _with_default_dtype(
            dtype, lambda: run_torch(lambda ps: soap.SOAP(ps, lr=lr, **kw), problem, steps)
        )
        return ours, ref

    return ReferenceCase(
        name,
        "official SOAP (soap.py)",
        ("soap",),
        run,
        dtypes=_F32,
        atol={torch.float32: 2e-5},
        note="float32 only (the official code computes eigenbases in float32)",
    )


def _is_matrix(params: dict[str, Tensor]) -> dict[str, str]:
    return {k: "muon" if p.ndim >= 2 else "adamw" for k, p in params.items()}


def _po_run(
    dtype: torch.dtype, steps: int, module: str, cls: str, ours: fo.GradientTransformation, **kw: Any
) -> tuple[list[Tensor], list[Tensor]]:
    mod = importlib.import_module(f"pytorch_optimizer.optimizer.muon.{module}")
    original = mod.zero_power_via_newton_schulz_5
    problem = mlp_problem(dtype)
    names = list(problem.params)

    def make(ps: list[Tensor]) -> Any:
        muon = [p for n, p in zip(names, ps, strict=True) if p.ndim >= 2]
        rest = [p for n, p in zip(names, ps, strict=True) if p.ndim < 2]
        groups = [dict(params=muon, use_muon=True), dict(params=rest, use_muon=False)]
        return getattr(mod, cls)(groups, **kw)

    mod.zero_power_via_newton_schulz_5 = functools.partial(original, dtype=dtype)
    try:
        ref = run_torch(make, problem, steps)
    finally:
        mod.zero_power_via_newton_schulz_5 = original
    return run_pure(ours, problem, steps), ref


def _normuon(dtype: torch.dtype, steps: int) -> tuple[list[Tensor], list[Tensor]]:
    ours = fo.partition(
        {
            "muon": fo.normuon(lr=0.02, weight_decay=0.01, ns_dtype=dtype),
            "adamw": fo.adamw(lr=3e-4, betas=(0.9, 0.95), eps=1e-10, weight_decay=0.0),
        },
        _is_matrix,
    )
    return _po_run(dtype, steps, "normuon", "NorMuon", ours, lr=0.02, weight_decay=0.01, foreach=False)


def _adamuon(dtype: torch.dtype, steps: int) -> tuple[list[Tensor], list[Tensor]]:
    muon = fo.adamuon(
        lr=0.02,
        weight_decay=0.01,
        momentum=0.9,
        nesterov=False,
        eps=1e-10,
        beta2=0.95,
        sign=False,
        bias_correction=True,
        ns_dtype=dtype,
    )
    ours = fo.partition(
        {"muon": muon, "adamw": fo.adamw(lr=3e-4, betas=(0.9, 0.999), eps=1e-10, weight_decay=0.0)},
        _is_matrix,
    )
    return _po_run(dtype, steps, "adamuon", "AdaMuon", ours, lr=0.02, weight_decay=0.01, foreach=False)


CASES: list[ReferenceCase] = [
    _soap_case("soap"),
    _soap_case("soap-normalize_grads-freq3", normalize_grads=True, precondition_frequency=3),
    _soap_case("soap-precond_1d-freq20", precondition_1d=True, precondition_frequency=20),
    _soap_case("soap-maxdim10-no_bias_corr", max_precond_dim=10, shampoo_beta=0.9, correct_bias=False),
    ReferenceCase(
        "normuon",
        "pytorch_optimizer.NorMuon (NS in run dtype)",
        ("pytorch_optimizer",),
        _normuon,
        atol={torch.float32: 1e-5, torch.float64: 1e-10},
    ),
    ReferenceCase(
        "adamuon-pytorch_optimizer_config",
        "pytorch_optimizer.AdaMuon (NS in run dtype)",
        ("pytorch_optimizer",),
        _adamuon,
        atol={torch.float32: 1e-5, torch.float64: 1e-10},
        note="pytorch-optimizer's variant: no sign, no Nesterov, beta2 with bias correction",
    ),
]
