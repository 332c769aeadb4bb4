"""Reference cases of the matrix optimizers: SOAP, NorMuon, AdaMuon, Scion, Shampoo, PSGD Kron.

Official single-file codes are not on PyPI: their cases need the module on ``PYTHONPATH`` and are
skipped otherwise (``soap`` = github.com/nikhilvyas/SOAP ``soap.py``; ``normuon`` =
github.com/zichongli5/NorMuon ``normuon.py``; ``scion`` = github.com/LIONS-EPFL/scion ``scion.py``).
The official AdaMuon (github.com/Chongjie-Si/AdaMuon) needs ``torch.distributed`` and CUDA buffers
and cannot run here; its update is checked against its formula in
``tests/optimizers/test_matrix_optimizers.py``.

* SOAP: float32 only. The official code keeps its preconditioner in the *default* dtype and
  computes the eigenbases in float32 (a float64 run fails unless the default dtype is float64, and
  then mixes a float64 ``eigh`` with a float32 ``qr``).
* NorMuon, AdaMuon, Scion against pytorch-optimizer too (the ``reference`` extra): hidden matrices
  with the Muon rule and the biases with its AdamW groups (ours: ``fo.partition`` with ``fo.adamw``).
* Shampoo: Distributed Shampoo (github.com/facebookresearch/optimizers; the ``distributed_shampoo``
  folder on ``PYTHONPATH``: its package ``torch-shampoo`` is not on PyPI), default root-inverse
  preconditioner with ``factor_matrix_dtype`` = the run dtype; float64 runs make its step counter and
  learning-rate tensors float64 (its bias corrections are float32 numbers otherwise).
* PSGD Kron: kron_torch 0.3.3 (``pip install --no-deps kron-torch==0.3.3``; it lists triton), run eager,
  given a copy of the tensor it adds its probe noise to (it adds it in place: to the momentum it then
  preconditions, or to ``p.grad``; see ``tests/optimizers/test_shampoo_kron.py``) and, in float64, its
  triangular solves in the run dtype (it casts them to float32). Ours is the drop-in (parameter order for
  the probes), both after ``torch.manual_seed(0)``.
* Newton–Schulz runs in the run's dtype on both sides: the references' bf16 iteration is replaced by
  the same iteration in the run dtype (pytorch-optimizer's own function with ``dtype=``; for the
  official codes Keller's quintic via ``fo.newton_schulz``, normalising by ``max(‖X‖, 1e-7)`` where
  they add 1e-7, a relative 1e-7/‖X‖ change), so the comparison is of the maths around it.
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


def _keller_ns_in_run_dtype(g: Tensor, steps: int = 5) -> Tensor:
    """The official codes' Newton–Schulz (Keller's quintic) in ``g``'s dtype instead of bf16."""
    x = g.mT if g.size(-2) > g.size(-1) else g
    y = fo.newton_schulz(x.reshape(-1, *x.shape[-2:]), [(3.4445, -4.7750, 2.0315)] * steps, eps=1e-7)
    y = y.reshape(x.shape)
    return y.mT if g.size(-2) > g.size(-1) else y


def _normuon_official(dtype: torch.dtype, steps: int) -> tuple[list[Tensor], list[Tensor]]:
    normuon = importlib.import_module("normuon")
    problem = mlp_problem(dtype)
    names = list(problem.params)
    ours = fo.partition(
        {
            "muon": fo.normuon(lr=0.02, weight_decay=0.01, ns_dtype=dtype),
            "adamw": fo.scion(lr=0.01, norm="BiasRMS", unconstrained=True),
        },
        _is_matrix,
    )

    class Both:  # the official NorMuon for the matrices, official Scion's BiasRMS step for biases
        def __init__(self, ps: list[Tensor]) -> None:
            mats = [p for n, p in zip(names, ps, strict=True) if p.ndim >= 2]
            self.vecs = [p for n, p in zip(names, ps, strict=True) if p.ndim < 2]
            self.opt = normuon.SingleDeviceNorMuon(mats, lr=0.02, weight_decay=0.01)

        def zero_grad(self) -> None:
            self.opt.zero_grad()
            for p in self.vecs:
                p.grad = None

        def step(self) -> None:
            self.opt.step()
            with torch.no_grad():
                for p in self.vecs:
                    p.sub_(0.01 * p.grad / (p.grad.square().mean().sqrt() + 1e-8))

    original = normuon.zeropower_via_newtonschulz5
    normuon.zeropower_via_newtonschulz5 = _keller_ns_in_run_dtype
    try:
        ref = run_torch(Both, problem, steps)
    finally:
        normuon.zeropower_via_newtonschulz5 = original
    return run_pure(ours, problem, steps), ref


CASES: list[ReferenceCase] = [
    _soap_case("soap"),
    _soap_case("soap-normalize_grads-freq3", normalize_grads=True, precondition_frequency=3),
    _soap_case("soap-precond_1d-freq20", precondition_1d=True, precondition_frequency=20),
    _soap_case("soap-maxdim10-no_bias_corr", max_precond_dim=10, shampoo_beta=0.9, correct_bias=False),
    ReferenceCase(
        "normuon-official",
        "official NorMuon (normuon.py), NS in run dtype",
        ("normuon",),
        _normuon_official,
        atol={torch.float32: 1e-5, torch.float64: 1e-10},
        note="biases: a plain normalised-gradient step on both sides",
    ),
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


# ----------------------------------------------------------------------------- Scion

_PO_NORM = {"Auto": 1, "Spectral": 2, "Sign": 4, "BiasRMS": 5, "ColNorm": 6, "RowNorm": 7}
_PO_KW = {
    "normalized": {"Spectral": "normalize", "Sign": "normalize"},
    "max": "max_scale",
    "steps": "num_steps",
}


def _po_kwargs(norm: str, kw: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for k, v in kw.items():
        name = _PO_KW.get(k, k)
        out[name.get(norm, k) if isinstance(name, dict) else name] = v
    return out


def _scion_ours(
    norm: str, kw: dict[str, Any], dtype: torch.dtype, **common: Any
) -> fo.GradientTransformation:
    if norm == "Auto":
        return fo.scion(norm="Auto", ns_dtype=dtype, **common)
    return fo.partition(
        {
            "matrix": fo.scion(norm=norm, norm_kwargs=kw, ns_dtype=dtype, **common),
            "vector": fo.scion(norm="BiasRMS", ns_dtype=dtype, **common),
        },
        lambda ps: {k: "matrix" if p.ndim >= 2 else "vector" for k, p in ps.items()},
    )


def _scion_groups(ps: list[Tensor], norm: str, kw: dict[str, Any], translate: Callable) -> list[dict]:
    if norm == "Auto":
        return [dict(params=ps, **translate("Auto", {}))]
    return [
        dict(params=[p for p in ps if p.ndim >= 2], **translate(norm, kw)),
        dict(params=[p for p in ps if p.ndim < 2], **translate("BiasRMS", {})),
    ]


def _scion_case(
    name: str, norm: str, kw: dict[str, Any], lr: float, momentum: float, scale: float, unc: bool
):
    common = dict(lr=lr, momentum=momentum, scale=scale, unconstrained=unc)

    def run_po(dtype: torch.dtype, steps: int) -> tuple[list[Tensor], list[Tensor]]:
        mod = importlib.import_module("pytorch_optimizer.optimizer.scion")
        original = mod.zero_power_via_newton_schulz_5
        problem = mlp_problem(dtype)

        def translate(n: str, k: dict[str, Any]) -> dict[str, Any]:
            return dict(norm_type=_PO_NORM[n], norm_kwargs=_po_kwargs(n, k))

        def make(ps: list[Tensor]) -> Any:
            groups = _scion_groups(ps, norm, kw, translate)
            return mod.SCION(groups, lr=lr, momentum=momentum, scale=scale, constraint=not unc, foreach=False)

        mod.zero_power_via_newton_schulz_5 = functools.partial(original, dtype=dtype)
        try:
            ref = run_torch(make, problem, steps)
        finally:
            mod.zero_power_via_newton_schulz_5 = original
        return run_pure(_scion_ours(norm, kw, dtype, **common), problem, steps), ref

    def run_official(dtype: torch.dtype, steps: int) -> tuple[list[Tensor], list[Tensor]]:
        scion = importlib.import_module("scion")
        original = scion.zeropower_via_newtonschulz5
        problem = mlp_problem(dtype)

        def ns(
            g: Tensor, steps: int = 5
        ) -> Tensor:  # the official iteration in the run's dtype (eps a floor)
            x = g.T if g.size(0) > g.size(1) else g
            y = fo.newton_schulz(x[None], [(3.4445, -4.7750, 2.0315)] * steps, eps=1e-7)[0]
            return y.T if g.size(0) > g.size(1) else y

        def make(ps: list[Tensor]) -> Any:
            groups = _scion_groups(ps, norm, kw, lambda n, k: dict(norm=n, norm_kwargs=k))
            return scion.Scion(groups, lr=lr, momentum=momentum, scale=scale, unconstrained=unc)

        scion.zeropower_via_newtonschulz5 = ns
        try:
            ref = run_torch(make, problem, steps)
        finally:
            scion.zeropower_via_newtonschulz5 = original
        return run_pure(_scion_ours(norm, kw, dtype, **common), problem, steps), ref

    atol = {torch.float32: 2e-5, torch.float64: 1e-10}
    return [
        ReferenceCase(
            f"scion-{name}", "official Scion (scion.py), NS in run dtype", ("scion",), run_official, atol=atol
        ),
        ReferenceCase(
            f"scion-{name}-po",
            "pytorch_optimizer.SCION (NS in run dtype)",
            ("pytorch_optimizer",),
            run_po,
            atol=atol,
        ),
    ]


CASES += [
    *_scion_case("auto", "Auto", {}, lr=0.01, momentum=0.1, scale=1.0, unc=False),
    *_scion_case("spectral_max", "Spectral", {"max": True}, lr=0.01, momentum=0.5, scale=2.0, unc=True),
    *_scion_case("sign", "Sign", {}, lr=0.01, momentum=1.0, scale=10.0, unc=True),
    *_scion_case("colnorm", "ColNorm", {"normalized": True}, lr=0.01, momentum=1.0, scale=1.0, unc=False),
    *_scion_case(
        "rownorm_transpose", "RowNorm", {"transpose": True}, lr=0.01, momentum=0.1, scale=1.0, unc=True
    ),
]


# ----------------------------------------------------------------------------- Shampoo

_DS = "distributed_shampoo"


def _ds_float64_counters(opt: Any) -> None:
    """Distributed Shampoo keeps its step counter (int64) and learning rate as float32-producing
    tensors: its bias corrections ``1 - β^step`` and ``-lr`` are float32 numbers even in a float64
    run. For float64 runs the counter and the learning rate become float64 (the maths unchanged)."""
    for lists in opt._per_group_state_lists:
        lists["step"] = lists["step"].to(torch.float64)
        lists["lr_tensor"] = torch.empty((), dtype=torch.float64)
        lists["lr_cpu_pinned"] = torch.empty((), dtype=torch.float64)


def _shampoo_case(
    name: str,
    *,
    grafting: str | None = None,
    grafting_kw: dict[str, Any] | None = None,
    momentum: tuple[float, bool] | None = None,
    override: dict | None = None,
    weight_decay_type: str = "decoupled",
    dtypes: tuple[torch.dtype, ...] = (torch.float32, torch.float64),
    atol: dict[torch.dtype, float] | None = None,
    note: str = "",
    **kw: Any,
) -> ReferenceCase:
    grafting_kw = grafting_kw or {}

    def run(dtype: torch.dtype, steps: int) -> tuple[list[Tensor], list[Tensor]]:
        import logging

        ds = importlib.import_module(_DS)
        types = importlib.import_module(f"{_DS}.shampoo_types")
        problem = mlp_problem(dtype)
        ours = fo.shampoo(
            grafting=grafting,
            grafting_beta2=grafting_kw.get("beta2"),
            grafting_epsilon=grafting_kw.get("epsilon", 1e-10),
            inverse_exponent_override=override,
            momentum=momentum[0] if momentum else 0.0,
            use_nesterov=momentum[1] if momentum else False,
            weight_decay_type=weight_decay_type,
            factor_matrix_dtype=dtype,
            **kw,
        )
        config_cls = {
            None: None,
            "sgd": ds.SGDPreconditionerConfig,
            "adagrad": ds.AdaGradPreconditionerConfig,
            "rmsprop": ds.RMSpropPreconditionerConfig,
            "adam": ds.AdamPreconditionerConfig,
        }[grafting]
        graft_config = None if config_cls is None else config_cls(**grafting_kw)
        preconditioner = types.RootInvShampooPreconditionerConfig(
            factor_matrix_dtype=dtype, inv_factor_matrix_dtype=dtype, inverse_exponent_override=override or {}
        )
        averaging = (
            None
            if momentum is None
            else types.ClassicMomentumConfig(momentum=momentum[0], use_nesterov=momentum[1])
        )

        def make(ps: list[Tensor]) -> Any:
            opt = ds.DistributedShampoo(
                ps,
                grafting_config=graft_config,
                preconditioner_config=preconditioner,
                iterate_averaging_config=averaging,
                weight_decay_type=getattr(ds.WeightDecayType, weight_decay_type.upper()),
                **kw,
            )
            if dtype == torch.float64:
                _ds_float64_counters(opt)
            return opt

        logging.getLogger(_DS).setLevel(logging.ERROR)
        return run_pure(ours, problem, steps), run_torch(make, problem, steps)

    return ReferenceCase(
        name,
        "Distributed Shampoo (facebookresearch)",
        (_DS,),
        run,
        dtypes=dtypes,
        atol=atol or {torch.float32: 5e-5, torch.float64: 1e-10},
        note=note or "float64: the reference's step counter and lr made float64",
    )


CASES += [
    _shampoo_case("shampoo-default-eps1e-4", lr=1e-2, epsilon=1e-4),
    _shampoo_case(
        "shampoo-adagrad-maxdim8-freq5",
        grafting="adagrad",
        grafting_kw={"epsilon": 1e-8},
        lr=1e-2,
        epsilon=1e-6,
        max_preconditioner_dim=8,
        precondition_frequency=5,
    ),
    _shampoo_case(
        "shampoo-adam-b2_0.99-start10-wd",
        grafting="adam",
        grafting_kw={"epsilon": 1e-8},
        lr=1e-2,
        betas=(0.9, 0.99),
        epsilon=1e-6,
        max_preconditioner_dim=8,
        precondition_frequency=3,
        start_preconditioning_step=10,
        weight_decay=0.01,
    ),
    _shampoo_case(
        "shampoo-rmsprop-l2-nesterov-override",
        grafting="rmsprop",
        grafting_kw={"epsilon": 1e-8, "beta2": 0.95},
        momentum=(0.5, True),
        override={2: {1: 0.0}, 1: 0.25},
        weight_decay_type="l2",
        lr=1e-2,
        epsilon=1e-6,
        max_preconditioner_dim=10,
        weight_decay=0.01,
    ),
    _shampoo_case(
        "shampoo-sgd-beta3-no_bias_corr",
        grafting="sgd",
        lr=1e-2,
        betas=(0.95, 1.0),
        beta3=0.8,
        epsilon=1e-4,
        use_bias_correction=False,
        precondition_frequency=2,
        max_preconditioner_dim=8,
    ),
    _shampoo_case(
        "shampoo-default-eps1e-12",
        lr=1e-2,
        dtypes=(torch.float64,),
        atol={torch.float64: 1e-7},
        note="rank-deficient 128x128 factors with eps=1e-12: the root amplifies rounding ~1e6-fold",
    ),
]


# ----------------------------------------------------------------------------- PSGD Kron


def _kron_case(name: str, **kw: Any) -> ReferenceCase:
    def run(dtype: torch.dtype, steps: int) -> tuple[list[Tensor], list[Tensor]]:
        kron = importlib.import_module("kron_torch.kron")
        dynamo = importlib.import_module("torch._dynamo")
        problem = mlp_problem(dtype)
        torch.manual_seed(0)
        ours = run_torch(lambda ps: fo.adapters.Kron(ps, precond_dtype=dtype, **kw), problem, steps)
        calc, solve = kron._calc_A_and_conjB, kron._solve_triangular_right

        def solve_in_dtype(x: Tensor, a: Tensor) -> Tensor:
            return torch.linalg.solve_triangular(
                a, x.reshape(-1, x.size(-1)), upper=True, left=False
            ).reshape_as(x)

        kron._calc_A_and_conjB = lambda expr, g, q: calc(expr, g.clone(), q)
        kron._solve_triangular_right = solve_in_dtype
        try:
            with dynamo.config.patch(disable=True):
                torch.manual_seed(0)
                ref = run_torch(lambda ps: kron.Kron(ps, precond_dtype=dtype, **kw), problem, steps)
        finally:
            kron._calc_A_and_conjB, kron._solve_triangular_right = calc, solve
        return ours, ref

    return ReferenceCase(
        name,
        "kron_torch 0.3.3 Kron (eager)",
        ("kron_torch",),
        run,
        atol={torch.float32: 1e-5, torch.float64: 1e-12},
        note="reference: probe noise kept out of the preconditioned momentum; solves in the run dtype",
    )


CASES += [
    _kron_case("kron-default", lr=1e-3),
    _kron_case(
        "kron-p0.5-wd-grad_into_precond",
        lr=1e-3,
        preconditioner_update_probability=0.5,
        weight_decay=0.1,
        momentum_into_precond_update=False,
    ),
    _kron_case(
        "kron-one_diag-max12-b1_0", lr=1e-3, b1=0.0, memory_save_mode="one_diag", max_size_triangular=12
    ),
    _kron_case(
        "kron-all_diag-init_scale-precond_lr",
        lr=1e-3,
        memory_save_mode="all_diag",
        precond_init_scale=0.5,
        precond_lr=0.3,
    ),
]
