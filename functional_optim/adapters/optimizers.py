"""Drop-in replacements for the ``torch.optim`` optimizers.

Each class has ``torch.optim``'s name, its exact constructor signature and ``defaults``, and
keeps per-parameter state under torch's keys with torch's shapes and dtypes, so checkpoints
move freely between ``torch.optim.X`` and ``functional_optim.adapters.X``. The maths is the
pure alias ``fo.<name>`` run by [`FunctionalOptimizer`][].

Implementation flags (``foreach``, ``fused``, ``capturable``, ``differentiable``) are accepted
and kept in ``defaults``/``param_groups``. ``differentiable=True`` runs the step with autograd
enabled, as torch. ``fused=True`` (the constructor's flag where torch has one, else a key of a
param group) runs the step of an elementwise algorithm (`FunctionalOptimizer.elementwise`)
through ``fo.compile_step(tx, elementwise=True)``: torch's fused kernel for Adam, AdamW, SGD and
Adagrad (their numbers bit for bit), Inductor's compiled code for the others.
``foreach``/``capturable`` select nothing: the single eager code path uses ``torch._foreach_*``
kernels for dense tensors by itself (``fused=True`` together with ``foreach=True`` raises
``RuntimeError`` as in torch).

Example::

    # before: opt = torch.optim.AdamW(model.parameters(), lr=3e-4, weight_decay=0.1)
    opt = functional_optim.adapters.AdamW(model.parameters(), lr=3e-4, weight_decay=0.1)
"""

# No ``from __future__ import annotations``: the signatures (annotations included) are torch's.

import functools
from typing import Any

import torch
from torch import Tensor
from torch.optim.optimizer import Optimizer, ParamsT

from functional_optim import tree
from functional_optim._layout import check_leaves
from functional_optim.adapters._base import FunctionalOptimizer
from functional_optim.optimizers.adadelta import adadelta
from functional_optim.optimizers.adafactor import adafactor
from functional_optim.optimizers.adagrad import adagrad
from functional_optim.optimizers.adam import adam
from functional_optim.optimizers.adamax import adamax
from functional_optim.optimizers.asgd import asgd
from functional_optim.optimizers.lbfgs import lbfgs
from functional_optim.optimizers.muon import muon
from functional_optim.optimizers.nadam import nadam
from functional_optim.optimizers.radam import radam
from functional_optim.optimizers.rmsprop import rmsprop
from functional_optim.optimizers.rprop import rprop
from functional_optim.optimizers.sgd import sgd
from functional_optim.optimizers.sparse_adam import sparse_adam
from functional_optim.transforms import _steps
from functional_optim.transforms.lbfgs import ScaleByLBFGSState

__all__ = [
    "ASGD",
    "LBFGS",
    "SGD",
    "Adadelta",
    "Adafactor",
    "Adagrad",
    "Adam",
    "AdamW",
    "Adamax",
    "Muon",
    "NAdam",
    "RAdam",
    "RMSprop",
    "Rprop",
    "SparseAdam",
]


class _DropIn(FunctionalOptimizer):
    """Base of the drop-in classes: ``defaults`` exactly as torch, hyperparameters passed to the
    alias are the group keys the alias accepts (the implementation flags are not)."""

    _tensor_step = True  # torch keeps ``step`` as a tensor (converted on ``__setstate__``)

    def _dropin_init(self, params: ParamsT, factory: Any, defaults: dict[str, Any]) -> None:
        self._setup(factory, defaults, exact_defaults=True)
        Optimizer.__init__(self, params, self._defaults_init)
        del self._defaults_init

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        if not self._tensor_step:
            return
        for group in self.param_groups:
            for p in group["params"]:
                st = self.state.get(p)
                if st and "step" in st and not torch.is_tensor(st["step"]):
                    st["step"] = torch.tensor(float(st["step"]), dtype=_steps.scalar_dtype())


def _check_tensor_lr_foreach(lr: Any, foreach: bool | None, capturable: bool) -> None:
    if isinstance(lr, Tensor) and foreach and not capturable:
        raise ValueError("lr as a Tensor is not supported for capturable=False and foreach=True")


_STARTED = torch.ones((), dtype=torch.float32)
"""``trace``'s ``started`` flag of a parameter that has a momentum buffer (never written: the
transform returns a set flag as it is)."""


class SGD(_DropIn):
    r"""``torch.optim.SGD`` over [`fo.sgd`][functional_optim.optimizers.sgd] (momentum, dampening, Nesterov,
    L2 decay, maximize; sparse gradients supported).

    State as torch: nothing without momentum, else only ``momentum_buffer`` (the functional
    first-step flag ``started`` is derived from the buffer's presence).
    """

    elementwise = True

    _has_codec = True

    def __init__(
        self,
        params: ParamsT,
        lr: float | Tensor = 1e-3,
        momentum: float = 0,
        dampening: float = 0,
        weight_decay: float | Tensor = 0,
        nesterov: bool = False,
        *,
        maximize: bool = False,
        foreach: bool | None = None,
        differentiable: bool = False,
        fused: bool | None = None,
    ) -> None:
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("Nesterov momentum requires a momentum and zero dampening")
        self._dropin_init(
            params,
            sgd,
            dict(
                lr=lr,
                momentum=momentum,
                dampening=dampening,
                weight_decay=weight_decay,
                nesterov=nesterov,
                maximize=maximize,
                foreach=foreach,
                differentiable=differentiable,
                fused=fused,
            ),
        )

    def _decode_param_state(self, group: dict, p: Tensor, st: dict) -> dict:
        buf = st.get("momentum_buffer")
        if buf is None:
            return {}
        return {"momentum_buffer": buf, "started": _STARTED}

    def _encode_param_state(self, group: dict, p: Tensor, fields: dict) -> dict:
        buf = fields.get("momentum_buffer")
        return {} if buf is None else {"momentum_buffer": buf}

    def _is_initialized(self, group: dict, p: Tensor, st: dict) -> bool:
        return "momentum_buffer" in st


class Adam(_DropIn):
    r"""``torch.optim.Adam`` over [`fo.adam`][functional_optim.optimizers.adam].

    $$
    m_t = \beta_1 m + (1-\beta_1) g,\ v_t = \beta_2 v + (1-\beta_2) g^2,\quad
    p \leftarrow p - \mathrm{lr}\,\frac{m_t/(1-\beta_1^t)}{\sqrt{v_t}/\sqrt{1-\beta_2^t} + \epsilon}
    $$

    State as torch: ``step``, ``exp_avg``, ``exp_avg_sq`` (and ``max_exp_avg_sq`` with amsgrad).
    ``state_dtype=torch.bfloat16`` (not in torch) keeps the moments of float32 parameters in
    bfloat16 with stochastic rounding: half the state memory (see
    [`fo.scale_by_adam`][functional_optim.scale_by_adam]).
    """

    elementwise = True

    def __init__(
        self,
        params: ParamsT,
        lr: float | Tensor = 1e-3,
        betas: tuple[float | Tensor, float | Tensor] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0,
        amsgrad: bool = False,
        *,
        foreach: bool | None = None,
        maximize: bool = False,
        capturable: bool = False,
        differentiable: bool = False,
        fused: bool | None = None,
        decoupled_weight_decay: bool = False,
        state_dtype: torch.dtype | None = None,
    ) -> None:
        _check_tensor_lr_foreach(lr, foreach, capturable)
        self._dropin_init(
            params,
            adam,
            dict(
                lr=lr,
                betas=betas,
                eps=eps,
                weight_decay=weight_decay,
                amsgrad=amsgrad,
                maximize=maximize,
                foreach=foreach,
                capturable=capturable,
                differentiable=differentiable,
                fused=fused,
                decoupled_weight_decay=decoupled_weight_decay,
                **({} if state_dtype is None else {"state_dtype": state_dtype}),
            ),
        )


class AdamW(Adam):
    r"""``torch.optim.AdamW``: [`Adam`][] with ``decoupled_weight_decay=True``
    (``p ← p·(1 - lr·wd)`` beside the Adam step). State as torch's Adam."""

    def __init__(
        self,
        params: ParamsT,
        lr: float | Tensor = 1e-3,
        betas: tuple[float | Tensor, float | Tensor] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 1e-2,
        amsgrad: bool = False,
        *,
        maximize: bool = False,
        foreach: bool | None = None,
        capturable: bool = False,
        differentiable: bool = False,
        fused: bool | None = None,
        state_dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__(
            params,
            lr,
            betas,
            eps,
            weight_decay,
            amsgrad,
            foreach=foreach,
            maximize=maximize,
            capturable=capturable,
            differentiable=differentiable,
            fused=fused,
            decoupled_weight_decay=True,
            state_dtype=state_dtype,
        )

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        for group in self.param_groups:
            group["decoupled_weight_decay"] = True


class Adamax(_DropIn):
    r"""``torch.optim.Adamax`` over [`fo.adamax`][functional_optim.optimizers.adamax]:
    ``u = max(β2·u, |g| + eps)``, ``p ← p - lr/(1-β1^t) · m/u``. State: ``step``, ``exp_avg``, ``exp_inf``."""

    elementwise = True

    def __init__(
        self,
        params: ParamsT,
        lr: float | Tensor = 2e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0,
        foreach: bool | None = None,
        *,
        maximize: bool = False,
        differentiable: bool = False,
        capturable: bool = False,
    ) -> None:
        self._dropin_init(
            params,
            adamax,
            dict(
                lr=lr,
                betas=betas,
                eps=eps,
                weight_decay=weight_decay,
                foreach=foreach,
                maximize=maximize,
                differentiable=differentiable,
                capturable=capturable,
            ),
        )


class NAdam(_DropIn):
    r"""``torch.optim.NAdam`` over [`fo.nadam`][functional_optim.optimizers.nadam] (momentum schedule
    ``μ_t = β1(1 - ½·0.96^{tψ})``). State: ``step``, ``mu_product``, ``exp_avg``, ``exp_avg_sq``."""

    elementwise = True

    def __init__(
        self,
        params: ParamsT,
        lr: float | Tensor = 2e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0,
        momentum_decay: float = 4e-3,
        decoupled_weight_decay: bool = False,
        *,
        foreach: bool | None = None,
        maximize: bool = False,
        capturable: bool = False,
        differentiable: bool = False,
    ) -> None:
        self._dropin_init(
            params,
            nadam,
            dict(
                lr=lr,
                betas=betas,
                eps=eps,
                weight_decay=weight_decay,
                momentum_decay=momentum_decay,
                decoupled_weight_decay=decoupled_weight_decay,
                maximize=maximize,
                foreach=foreach,
                capturable=capturable,
                differentiable=differentiable,
            ),
        )


class RAdam(_DropIn):
    r"""``torch.optim.RAdam`` over [`fo.radam`][functional_optim.optimizers.radam] (rectified Adam: plain
    momentum steps until ``ρ_t > 5``). State: ``step``, ``exp_avg``, ``exp_avg_sq``."""

    elementwise = True

    def __init__(
        self,
        params: ParamsT,
        lr: float | Tensor = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0,
        decoupled_weight_decay: bool = False,
        *,
        foreach: bool | None = None,
        maximize: bool = False,
        capturable: bool = False,
        differentiable: bool = False,
    ) -> None:
        self._dropin_init(
            params,
            radam,
            dict(
                lr=lr,
                betas=betas,
                eps=eps,
                weight_decay=weight_decay,
                maximize=maximize,
                foreach=foreach,
                capturable=capturable,
                decoupled_weight_decay=decoupled_weight_decay,
                differentiable=differentiable,
            ),
        )


class Adagrad(_DropIn):
    r"""``torch.optim.Adagrad`` over [`fo.adagrad`][functional_optim.optimizers.adagrad]:
    ``sum += g²``, ``p ← p - lr/(1+(t-1)·lr_decay) · g/(√sum + eps)``.

    As torch, the state (``step``, ``sum``) of the constructor's parameters is created eagerly
    in ``__init__`` with the constructor's ``initial_accumulator_value``.
    """

    elementwise = True

    def __init__(
        self,
        params: ParamsT,
        lr: float | Tensor = 1e-2,
        lr_decay: float = 0,
        weight_decay: float = 0,
        initial_accumulator_value: float = 0,
        eps: float = 1e-10,
        foreach: bool | None = None,
        *,
        maximize: bool = False,
        differentiable: bool = False,
        fused: bool | None = None,
    ) -> None:
        self._dropin_init(
            params,
            adagrad,
            dict(
                lr=lr,
                lr_decay=lr_decay,
                eps=eps,
                weight_decay=weight_decay,
                initial_accumulator_value=initial_accumulator_value,
                foreach=foreach,
                maximize=maximize,
                differentiable=differentiable,
                fused=fused,
            ),
        )
        for group in self.param_groups:
            hp = {n: group[n] for n in self._hp_names}
            hp["initial_accumulator_value"] = initial_accumulator_value
            self._init_group_state(group, list(group["params"]), adagrad(**hp))


class Adadelta(_DropIn):
    r"""``torch.optim.Adadelta`` over [`fo.adadelta`][functional_optim.optimizers.adadelta]:
    ``δ = √(acc+eps)/√(v+eps)·g``, ``p ← p - lr·δ``. State: ``step``, ``square_avg``, ``acc_delta``."""

    elementwise = True

    def __init__(
        self,
        params: ParamsT,
        lr: float | Tensor = 1.0,
        rho: float = 0.9,
        eps: float = 1e-6,
        weight_decay: float = 0,
        foreach: bool | None = None,
        *,
        capturable: bool = False,
        maximize: bool = False,
        differentiable: bool = False,
    ) -> None:
        self._dropin_init(
            params,
            adadelta,
            dict(
                lr=lr,
                rho=rho,
                eps=eps,
                weight_decay=weight_decay,
                maximize=maximize,
                capturable=capturable,
                foreach=foreach,
                differentiable=differentiable,
            ),
        )


class Adafactor(_DropIn):
    r"""``torch.optim.Adafactor`` over [`fo.adafactor`][functional_optim.optimizers.adafactor] (factored
    second moments, relative step size). State as torch: ``step`` and ``row_var``/``col_var`` for
    parameters with more than one dimension, ``variance`` otherwise."""

    def __init__(
        self,
        params: ParamsT,
        lr: float | Tensor = 1e-2,
        beta2_decay: float = -0.8,
        eps: tuple[float | None, float] = (None, 1e-3),
        d: float = 1.0,
        weight_decay: float = 0.0,
        *,
        foreach: bool | None = None,
        maximize: bool = False,
    ) -> None:
        self._dropin_init(
            params,
            adafactor,
            dict(
                lr=lr,
                beta2_decay=beta2_decay,
                eps=eps,
                d=d,
                weight_decay=weight_decay,
                foreach=foreach,
                maximize=maximize,
            ),
        )


class RMSprop(_DropIn):
    r"""``torch.optim.RMSprop`` over [`fo.rmsprop`][functional_optim.optimizers.rmsprop]:
    ``v = αv + (1-α)g²``, ``p ← p - lr·g/(√v + eps)`` (centered, momentum variants). State as
    torch: ``step``, ``square_avg``, ``momentum_buffer`` (momentum > 0), ``grad_avg`` (centered)."""

    elementwise = True

    def __init__(
        self,
        params: ParamsT,
        lr: float | Tensor = 1e-2,
        alpha: float = 0.99,
        eps: float = 1e-8,
        weight_decay: float = 0,
        momentum: float = 0,
        centered: bool = False,
        capturable: bool = False,
        foreach: bool | None = None,
        maximize: bool = False,
        differentiable: bool = False,
    ) -> None:
        self._dropin_init(
            params,
            rmsprop,
            dict(
                lr=lr,
                momentum=momentum,
                alpha=alpha,
                eps=eps,
                centered=centered,
                weight_decay=weight_decay,
                capturable=capturable,
                foreach=foreach,
                maximize=maximize,
                differentiable=differentiable,
            ),
        )


class Rprop(_DropIn):
    r"""``torch.optim.Rprop`` over [`fo.rprop`][functional_optim.optimizers.rprop] (sign-based steps with
    per-element step sizes). State: ``step``, ``prev``, ``step_size`` (seeded with the ``lr``
    of the first step, so later lr changes do not affect it, as torch)."""

    elementwise = True

    def __init__(
        self,
        params: ParamsT,
        lr: float | Tensor = 1e-2,
        etas: tuple[float, float] = (0.5, 1.2),
        step_sizes: tuple[float, float] = (1e-6, 50),
        *,
        capturable: bool = False,
        foreach: bool | None = None,
        maximize: bool = False,
        differentiable: bool = False,
    ) -> None:
        self._dropin_init(
            params,
            rprop,
            dict(
                lr=lr,
                etas=etas,
                step_sizes=step_sizes,
                foreach=foreach,
                maximize=maximize,
                differentiable=differentiable,
                capturable=capturable,
            ),
        )


class ASGD(_DropIn):
    r"""``torch.optim.ASGD`` over [`fo.asgd`][functional_optim.optimizers.asgd] (averaged SGD). State as
    torch: ``step``, ``eta``, ``mu`` (0-dim tensors on the parameter's device) and ``ax``."""

    elementwise = True

    def __init__(
        self,
        params: ParamsT,
        lr: float | Tensor = 1e-2,
        lambd: float = 1e-4,
        alpha: float = 0.75,
        t0: float = 1e6,
        weight_decay: float = 0,
        foreach: bool | None = None,
        maximize: bool = False,
        differentiable: bool = False,
        capturable: bool = False,
    ) -> None:
        self._dropin_init(
            params,
            asgd,
            dict(
                lr=lr,
                lambd=lambd,
                alpha=alpha,
                t0=t0,
                weight_decay=weight_decay,
                foreach=foreach,
                maximize=maximize,
                differentiable=differentiable,
                capturable=capturable,
            ),
        )


class SparseAdam(_DropIn):
    r"""``torch.optim.SparseAdam`` over [`fo.sparse_adam`][functional_optim.optimizers.sparse_adam] (lazy Adam
    for sparse gradients: only the rows present in the gradient are updated). State as torch: ``step``
    is a Python ``int``; ``exp_avg`` and ``exp_avg_sq`` are dense."""

    _has_codec = True
    _tensor_step = False

    def __init__(
        self,
        params: ParamsT,
        lr: float | Tensor = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        maximize: bool = False,
    ) -> None:
        self._dropin_init(params, sparse_adam, dict(lr=lr, betas=betas, eps=eps, maximize=maximize))
        sparse_params, complex_params = [], []
        for index, group in enumerate(self.param_groups):
            for d_index, p in enumerate(group["params"]):
                if p.is_sparse:
                    sparse_params.append([index, d_index])
                if p.is_complex():
                    complex_params.append([index, d_index])
        if sparse_params:
            raise ValueError(
                f"Sparse params at indices {sparse_params}: SparseAdam requires dense parameter tensors"
            )
        if complex_params:
            raise ValueError(
                f"Complex params at indices {complex_params}: SparseAdam does not support complex parameters"
            )

    def _decode_param_state(self, group: dict, p: Tensor, st: dict) -> dict:
        out = dict(st)
        step = out.get("step")
        if step is not None and not isinstance(step, Tensor):
            out["step"] = torch.tensor(float(step), dtype=_steps.scalar_dtype())
        return out

    def _encode_param_state(self, group: dict, p: Tensor, fields: dict) -> dict:
        out = dict(fields)
        step = out.get("step")
        if isinstance(step, Tensor):
            out["step"] = int(step.item())
        return out


_MUON_CHUNK_ELEMENTS = 1 << 18
"""The drop-in steps its matrices in chunks of at most this many elements (or of one matrix, if the
largest matrix of the group is larger), so that a step's working memory is that of the largest
matrix, as torch.optim.Muon's."""


def _muon_chunks(params: list[Tensor]) -> list[list[Tensor]]:
    """Consecutive runs of ``params`` whose sizes add up to at most the chunk budget."""
    budget = max(_MUON_CHUNK_ELEMENTS, max(p.numel() for p in params))
    out: list[list[Tensor]] = []
    current: list[Tensor] = []
    total = 0
    for p in params:
        if current and total + p.numel() > budget:
            out.append(current)
            current, total = [], 0
        current.append(p)
        total += p.numel()
    if current:
        out.append(current)
    return out


def _muon_group(
    lr: float = 1e-3,
    weight_decay: float = 0.1,
    momentum: float = 0.95,
    nesterov: bool = True,
    ns_coefficients: Any = (3.4445, -4.7750, 2.0315),
    eps: float = 1e-7,
    ns_steps: int = 5,
    adjust_lr_fn: Any = None,
    *,
    ns_dtype: torch.dtype | None = None,
    distributed: Any = False,
    state_dtype: torch.dtype | None = None,
) -> Any:
    """The transform of one group of [`Muon`][]: [`fo.muon`][functional_optim.optimizers.muon], where torch's
    default ``ns_steps=5`` with a preset name means the preset's own number of steps."""
    if isinstance(ns_coefficients, str) and ns_steps == 5:
        ns_steps = None  # type: ignore[assignment]
    return muon(
        lr,
        weight_decay,
        momentum,
        nesterov,
        ns_coefficients,
        eps,
        ns_steps,
        adjust_lr_fn,
        ns_dtype=ns_dtype,
        distributed=distributed,
        state_dtype=state_dtype,
    )


class Muon(_DropIn):
    r"""``torch.optim.Muon`` over [`fo.muon`][functional_optim.optimizers.muon]: EMA momentum, Newton–Schulz
    orthogonalisation, shape-adjusted learning rate and decoupled decay.

    Only 2-D parameters are accepted (``ValueError`` at construction, as torch). State as torch:
    ``momentum_buffer`` only (no ``step``); with ``state_dtype=torch.bfloat16`` (not in torch) the
    buffers of float32 parameters are bfloat16 (half the state memory, stochastic rounding seeded
    by a ``step`` count that the state then also keeps; see
    [`fo.scale_by_ema_momentum`][functional_optim.scale_by_ema_momentum]).

    Memory and atomicity: the matrices are stepped a chunk at a time (chunks of at most
    ``max(2**18 elements, the largest matrix)``; each matrix's update is independent of the others),
    so the extra memory of a step is that of one chunk (a few matrix-sized temporaries, as torch's
    one-matrix-at-a-time loop) instead of a copy of every matrix and buffer. The step stays
    all-or-nothing for every error its inputs can cause: before the first write, every chunk's
    gradients and state are checked (sparse, complex, shape, dtype and device mismatches, missing
    ``momentum_buffer``: the errors preparing that chunk would raise) and the largest chunk is
    computed in full (so an error of the computation itself, or running out of memory, shows
    there); the other chunks are computed and written one after another with ``KeyboardInterrupt``
    held back. What remains after the first write is the same arithmetic on checked inputs of
    the same kinds, needing no more memory than the chunk already computed: only an allocation
    failure there (memory taken by another thread meanwhile) could stop a step half-way.
    Keeping every chunk's result until the end instead would make the extra memory of a step the
    size of all the matrices and buffers (measured 74 MiB against torch's 2.3 MiB on a 12-layer
    width-256 GPT-2 hidden set; ``benchmarks/muon.py``).

    Args:
      params, lr, weight_decay, momentum, nesterov, ns_coefficients, eps, ns_steps, adjust_lr_fn:
        as ``torch.optim.Muon`` (``ns_coefficients`` also takes a preset name of
        [`fo.orthogonalize`][functional_optim.transforms.orthogonalize], e.g. ``"fast"``; with a preset name
        the default
        ``ns_steps=5`` means the preset's own number of steps, 4 for ``"fast"``).
      ns_dtype: keyword-only; the dtype of Newton–Schulz. ``None`` (default) =
        [`functional_optim.transforms.orthogonalize.default_ns_dtype`][functional_optim.default_ns_dtype]:
        bfloat16 on CUDA and on CPUs with native bf16 matmul (then the numbers are torch's), float32 on other
        CPUs (where torch's bf16 Newton–Schulz is 20-30× slower). Pass ``torch.bfloat16`` for torch's numbers
        everywhere.
      state_dtype: keyword-only, not in torch; ``torch.bfloat16`` stores the momentum buffers of float32
        parameters in bfloat16 (a group key, as [`AdamW`][]'s). ``None``: torch's state and numbers.
    """

    def __init__(
        self,
        params: ParamsT,
        lr: float = 1e-3,
        weight_decay: float = 0.1,
        momentum: float = 0.95,
        nesterov: bool = True,
        ns_coefficients: tuple[float, float, float] = (3.4445, -4.7750, 2.0315),
        eps: float = 1e-7,
        ns_steps: int = 5,
        adjust_lr_fn: str | None = None,
        *,
        ns_dtype: torch.dtype | None = None,
        distributed: Any = False,  # True or a ProcessGroup: fo.muon's; not a group key
        state_dtype: torch.dtype | None = None,
    ) -> None:
        self._dropin_init(
            params,
            functools.partial(_muon_group, ns_dtype=ns_dtype, distributed=distributed),
            dict(
                lr=lr,
                weight_decay=weight_decay,
                momentum=momentum,
                nesterov=nesterov,
                ns_coefficients=ns_coefficients,
                eps=eps,
                ns_steps=ns_steps,
                adjust_lr_fn=adjust_lr_fn,
                **({} if state_dtype is None else {"state_dtype": state_dtype}),
            ),
        )
        for group in self.param_groups:
            for p in group["params"]:
                if p.ndim != 2:
                    raise ValueError(
                        f"Muon only supports 2D parameters whereas we found a parameter with size: {p.size()}"
                    )

    def _prepare_group(self, index: int, group: dict[str, Any], extra: dict[str, Any]) -> Any:
        params = group["params"]
        chunks = _muon_chunks(params) if len(params) > 1 and not torch.is_grad_enabled() else [params]
        if len(chunks) == 1:
            return super()._prepare_group(index, group, extra)
        # Bounded memory, all-or-nothing (see the class docstring): every chunk's inputs are
        # checked, and the largest chunk is computed, before anything is written; the other chunks
        # are computed and written one at a time at commit (chunk k's caches live under (index, k)).
        for chunk in chunks:
            self._check_chunk(group, chunk)
        first = max(range(len(chunks)), key=lambda k: sum(p.numel() for p in chunks[k]))
        prepare = super()._prepare_group
        # a list, so that commit can drop each chunk's prepared tensors as soon as they are written
        pending = [prepare((index, first), {**group, "params": chunks[first]}, extra)]  # type: ignore[arg-type]

        def commit() -> None:
            c = pending.pop()
            if c is not None:
                c()
            c = None
            for k, chunk in enumerate(chunks):
                if k != first:
                    c = prepare((index, k), {**group, "params": chunk}, extra)  # type: ignore[arg-type]
                    if c is not None:
                        c()
                    c = None  # free this chunk's results before preparing the next one

        return commit

    def _check_chunk(self, group: dict[str, Any], chunk: list[Tensor]) -> None:
        """Raise, before any write, every error that preparing ``chunk`` would raise from its inputs:
        gradients that are sparse, complex or do not fit their parameter, a state without its
        ``momentum_buffer``, a buffer that does not fit its parameter."""
        gi = self._group_index(group)
        present = [p for p in chunk if p.grad is not None]
        low = group.get("state_dtype") is not None  # bfloat16 buffers, with a ``step`` each
        keys = ["momentum_buffer", "step"] if low else ["momentum_buffer"]
        bufs: list[Tensor] = []
        for p in present:
            st = self.state.get(p)
            buf = None if st is None else st.get("momentum_buffer")
            missing = [k for k in keys if k not in st] if st else []
            if st and missing and self._is_initialized(group, p, st):
                j = next(k for k, q in enumerate(group["params"]) if q is p)
                raise KeyError(
                    f"state of {self._param_label(group, gi, j)} has no {missing} "
                    f"(it has {sorted(st)}): was the state loaded from another optimizer?"
                )
            bufs.append(p if buf is None else buf)  # a fresh buffer is zeros_like(p)
        grads = [p.grad for p in present]
        check_leaves(
            "scale_by_ema_momentum",
            tree.structure(list(range(len(present)))),
            grads,
            present,
            [bufs],
            sparse="Muon",
            field_names=["momentum_buffer"],
            low_precision=low,
        )
        for p, g in zip(present, grads, strict=True):
            if g is not None and g.is_complex():
                j = next(k for k, q in enumerate(group["params"]) if q is p)
                raise RuntimeError(
                    f"Muon does not support complex parameters ({self._param_label(group, gi, j)})"
                )


_LBFGS_KEYS = (
    "func_evals",
    "n_iter",
    "al",
    "d",
    "t",
    "old_dirs",
    "old_stps",
    "ro",
    "H_diag",
    "prev_flat_grad",
    "prev_loss",
)  # torch's insertion order
_LBFGS_LISTS = ("al", "old_dirs", "old_stps", "ro")


class LBFGS(_DropIn):
    r"""``torch.optim.LBFGS`` over [`fo.lbfgs`][functional_optim.optimizers.lbfgs].

    ``step(closure)`` runs one functional ``update`` (up to ``max_iter`` iterations, optional
    strong-Wolfe line search); every objective evaluation the algorithm asks for writes the
    candidate point into the parameters and calls ``closure()`` (under ``torch.enable_grad()``),
    reading the gradients from ``p.grad`` (``None`` counts as zeros). It returns the first loss,
    as torch. One parameter group only; the state lives in ``state[params[0]]`` with torch's keys
    and Python types (``func_evals``, ``n_iter``, ``al``, ``d``, ``t``, ``old_dirs``, ``old_stps``,
    ``ro``, ``H_diag``, ``prev_flat_grad``, ``prev_loss``).
    """

    def __init__(
        self,
        params: ParamsT,
        lr: float | Tensor = 1,
        max_iter: int = 20,
        max_eval: int | None = None,
        tolerance_grad: float = 1e-7,
        tolerance_change: float = 1e-9,
        history_size: int = 100,
        line_search_fn: str | None = None,
    ) -> None:
        if isinstance(lr, Tensor) and lr.numel() != 1:
            raise ValueError("Tensor lr must be 1-element")
        if not lr >= 0.0:
            raise ValueError(f"Invalid learning rate: {lr}")
        if max_eval is None:
            max_eval = max_iter * 5 // 4
        self._dropin_init(
            params,
            lbfgs,
            dict(
                lr=lr,
                max_iter=max_iter,
                max_eval=max_eval,
                tolerance_grad=tolerance_grad,
                tolerance_change=tolerance_change,
                history_size=history_size,
                line_search_fn=line_search_fn,
            ),
        )
        if len(self.param_groups) != 1:
            raise ValueError("LBFGS doesn't support per-parameter options (parameter groups)")

    def _decode(self, st: dict) -> tuple:
        if not st or "n_iter" not in st:
            return self._transform_for(0, self.param_groups[0]).init(list(self.param_groups[0]["params"]))
        values: dict[str, Any] = {k: st.get(k) for k in _LBFGS_KEYS}
        for k in _LBFGS_LISTS:
            if values[k] is not None:
                values[k] = tuple(values[k])
        return (ScaleByLBFGSState(**values, loss=None),)

    @staticmethod
    def _encode(state: tuple) -> dict:
        s = state[0]
        out = {}
        for k in _LBFGS_KEYS:
            v = getattr(s, k)
            out[k] = list(v) if k in _LBFGS_LISTS and v is not None else v
        return out

    @torch.no_grad()
    def step(self, closure: Any) -> Any:  # type: ignore[override]
        """Run one L-BFGS step; ``closure`` re-evaluates the model and returns the loss (required)."""
        if closure is None:
            raise RuntimeError("LBFGS requires a closure")
        group = self.param_groups[0]
        params = list(group["params"])
        transform = self._transform_for(0, group)
        st = self.state[params[0]]
        fstate = self._decode(st)

        def evaluate(xs: Any) -> tuple[Any, list]:
            for p, x in zip(params, xs, strict=True):
                p.copy_(x)
            with torch.enable_grad():
                loss = closure()
            return loss, [None if p.grad is None else p.grad.clone() for p in params]

        with torch.enable_grad():
            orig_loss = closure()
        x0 = [p.detach().clone() for p in params]
        grads = [None if p.grad is None else p.grad.clone() for p in params]
        try:
            updates, new_state = transform.update(
                grads, fstate, x0, value=orig_loss, value_and_grad_fn=evaluate
            )
        except BaseException:
            # the line search wrote trial points into the parameters: put them back, so that a
            # closure (or anything) raising leaves parameters and state as they were
            for p, x in zip(params, x0, strict=True):
                p.copy_(x)
            raise
        for p, x, u in zip(params, x0, updates, strict=True):
            p.copy_(x if u is None else x + u.to(x.dtype))
        st.clear()
        st.update(self._encode(new_state))
        return orig_loss

    def _validate_functional_state(self, *args: Any) -> None:
        """LBFGS keeps all its state in ``state[params[0]]`` with torch's keys: no
        ``"functional_state"`` to check."""

    def _validate_param_state(self, group: dict, gi: int, j: int, p: Tensor, st: dict) -> None:
        numel = sum(q.numel() * (2 if q.is_complex() else 1) for q in group["params"])
        for key in ("d", "prev_flat_grad"):
            v = st.get(key)
            if isinstance(v, Tensor) and v.shape != (numel,):
                raise ValueError(
                    f"loaded state of {self._param_label(group, gi, j)} has '{key}' of shape "
                    f"{tuple(v.shape)}, expected ({numel},)"
                )
