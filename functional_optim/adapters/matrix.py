"""Drop-in ``torch.optim.Optimizer`` classes of the matrix optimizers (SOAP, Shampoo, PSGD Kron,
NorMuon, AdaMuon, Scion).

Each class has its authors' name, constructor arguments and defaults; the maths is the pure alias
(``fo.soap``, ``fo.shampoo``, ``fo.kron``, ``fo.normuon``, ``fo.adamuon``, ``fo.scion``) run by
[`FunctionalOptimizer`][functional_optim.adapters.FunctionalOptimizer].
"""

# No ``from __future__ import annotations``: the signatures are the reference classes'.

import functools
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor
from torch.optim.optimizer import ParamsT

from functional_optim.adapters.optimizers import _DropIn
from functional_optim.optimizers.adamuon import adamuon
from functional_optim.optimizers.kron import kron
from functional_optim.optimizers.normuon import normuon
from functional_optim.optimizers.scion import scion
from functional_optim.optimizers.shampoo import shampoo
from functional_optim.optimizers.soap import soap
from functional_optim.transforms import _steps
from functional_optim.transforms.soap import soap_view_shape

__all__ = ["SOAP", "AdaMuon", "Kron", "NorMuon", "Scion", "Shampoo"]


class SOAP(_DropIn):
    r"""SOAP (Vyas et al. 2024) over [`fo.soap`][functional_optim.optimizers.soap], with the official class's
    arguments and defaults (github.com/nikhilvyas/SOAP).

    Adam in the eigenbasis of Shampoo's preconditioner; the first step of each parameter only
    builds its preconditioner. Weight decay is applied after the step, as the official code.
    State per parameter as the official code: ``step``, ``exp_avg``, ``exp_avg_sq`` (in the
    eigenbasis), ``GG`` and ``Q`` (lists with one matrix, or ``[]``, per dimension of the view),
    ``precondition_frequency`` and ``shampoo_beta``, so checkpoints move between the official
    ``SOAP`` and this class (``step`` is kept as a 0-dim tensor, as ``torch.optim``).
    Only ``data_format="channels_first"`` is supported.

    Example:
      >>> import torch
      >>> import functional_optim as fo
      >>> model = torch.nn.Linear(4, 3)
      >>> opt = fo.adapters.SOAP(model.parameters(), lr=3e-3)
      >>> model(torch.randn(2, 4)).sum().backward()
      >>> opt.step()
    """

    def __init__(
        self,
        params: ParamsT,
        lr: float | Tensor = 3e-3,
        betas: tuple[float, float] = (0.95, 0.95),
        shampoo_beta: float = -1,
        eps: float = 1e-8,
        weight_decay: float = 0.01,
        precondition_frequency: int = 10,
        max_precond_dim: int = 10000,
        merge_dims: bool = False,
        precondition_1d: bool = False,
        normalize_grads: bool = False,
        data_format: str = "channels_first",
        correct_bias: bool = True,
    ) -> None:
        if data_format != "channels_first":
            raise ValueError(
                f"SOAP: data_format must be 'channels_first' (channels_last unsupported), got {data_format!r}"
            )
        self._data_format = data_format
        self._dropin_init(
            params,
            soap,
            dict(
                lr=lr,
                betas=betas,
                shampoo_beta=shampoo_beta,
                eps=eps,
                weight_decay=weight_decay,
                precondition_frequency=precondition_frequency,
                max_precond_dim=max_precond_dim,
                merge_dims=merge_dims,
                precondition_1d=precondition_1d,
                normalize_grads=normalize_grads,
                correct_bias=correct_bias,
            ),
        )

    _has_codec = True

    def _view_len(self, group: dict, p: Tensor) -> int:
        return len(soap_view_shape(p.shape, group["max_precond_dim"], group["merge_dims"]))

    def _decode_param_state(self, group: dict, p: Tensor, st: dict) -> dict:
        def pick(mats: list, i: int) -> object:
            m = mats[i] if i < len(mats) else ()
            return m if isinstance(m, Tensor) and m.numel() > 0 else ()

        step = st["step"]
        if not isinstance(step, Tensor):
            step = torch.tensor(float(step), dtype=_steps.scalar_dtype())
        gg, q = st.get("GG", []), st.get("Q", [])
        return {
            "count": st.get("count", (step + 1).to(torch.int64)),  # decay_after_update's calls
            "step": step,
            "initialized": torch.ones((), dtype=torch.bool),
            "exp_avg": st["exp_avg"],
            "exp_avg_sq": st["exp_avg_sq"],
            "GG_L": pick(gg, 0),
            "GG_R": pick(gg, 1),
            "Q_L": pick(q, 0),
            "Q_R": pick(q, 1),
        }

    def _encode_param_state(self, group: dict, p: Tensor, fields: dict) -> dict:
        n = self._view_len(group, p)

        def listed(*keys: str) -> list:
            vals = [fields.get(k, ()) for k in keys][:n]
            return [v if isinstance(v, Tensor) else [] for v in vals]

        beta = group["shampoo_beta"]
        return {
            "step": fields["step"],
            "count": fields["count"],
            "exp_avg": fields["exp_avg"],
            "exp_avg_sq": fields["exp_avg_sq"],
            "GG": listed("GG_L", "GG_R"),
            "Q": listed("Q_L", "Q_R"),
            "precondition_frequency": group["precondition_frequency"],
            "shampoo_beta": beta if beta >= 0 else group["betas"][1],
        }

    def _is_initialized(self, group: dict, p: Tensor, st: dict) -> bool:
        return "Q" in st


_normuon_bf16 = functools.partial(normuon, ns_dtype=torch.bfloat16)
_adamuon_bf16 = functools.partial(adamuon, ns_dtype=torch.bfloat16)
"""The official NorMuon / AdaMuon run Newton–Schulz in bfloat16; the drop-ins do the same."""


def _check_matrices(name: str, param_groups: list) -> None:
    for group in param_groups:
        for p in group["params"]:
            if p.ndim < 2:
                raise ValueError(
                    f"{name} only supports parameters with >= 2 dims, got one of size {tuple(p.size())} "
                    "(optimize vectors with AdamW, e.g. fo.partition)"
                )


class NorMuon(_DropIn):
    r"""NorMuon over [`fo.normuon`][functional_optim.optimizers.normuon] with the official
    ``SingleDeviceNorMuon``'s arguments and defaults (github.com/zichongli5/NorMuon): Muon's EMA-Nesterov
    momentum, Newton–Schulz in bfloat16, per-neuron second-moment normalisation keeping the Frobenius norm,
    ``√max(1, rows/cols)``, decoupled decay.

    State as the official code: ``momentum_buffer`` and ``second_momentum_buffer`` (``rows × 1``).
    For parameters with >= 2 dimensions (conv kernels as ``out × in·kh·kw``).

    Example:
      >>> import torch
      >>> import functional_optim as fo
      >>> layer = torch.nn.Linear(4, 3, bias=False)
      >>> opt = fo.adapters.NorMuon(layer.parameters(), lr=0.02)
      >>> layer(torch.randn(2, 4)).sum().backward()
      >>> opt.step()
    """

    _tensor_step = False

    def __init__(
        self,
        params: ParamsT,
        lr: float | Tensor = 0.02,
        weight_decay: float = 0,
        momentum: float = 0.95,
        beta2: float = 0.95,
    ) -> None:
        self._dropin_init(
            params,
            _normuon_bf16,
            dict(lr=lr, weight_decay=weight_decay, momentum=momentum, beta2=beta2),
        )
        _check_matrices("NorMuon", self.param_groups)


class AdaMuon(_DropIn):
    r"""AdaMuon over [`fo.adamuon`][functional_optim.optimizers.adamuon] with the official class's arguments
    and defaults (github.com/Chongjie-Si/AdaMuon; its ``rank``/``world_size`` are not needed here):
    Nesterov EMA momentum, sign, Newton–Schulz in bfloat16, element-wise second moment of the
    orthogonalised update (``β₂ = momentum``), RMS matched to 0.2, decoupled decay.

    State: ``momentum_buffer``, ``v_buffer`` (the official keys; ``v_buffer`` has the parameter's
    shape) and ``step``. For parameters with >= 2 dimensions.

    Example:
      >>> import torch
      >>> import functional_optim as fo
      >>> layer = torch.nn.Linear(4, 3, bias=False)
      >>> opt = fo.adapters.AdaMuon(layer.parameters(), lr=0.02)
      >>> layer(torch.randn(2, 4)).sum().backward()
      >>> opt.step()
    """

    def __init__(
        self,
        params: ParamsT,
        lr: float | Tensor = 0.02,
        weight_decay: float = 0.01,
        momentum: float = 0.95,
        nesterov: bool = True,
        ns_steps: int = 5,
        eps: float = 1e-8,
    ) -> None:
        self._dropin_init(
            params,
            _adamuon_bf16,
            dict(
                lr=lr,
                weight_decay=weight_decay,
                momentum=momentum,
                nesterov=nesterov,
                ns_steps=ns_steps,
                eps=eps,
            ),
        )
        _check_matrices("AdaMuon", self.param_groups)


_scion_bf16 = functools.partial(scion, ns_dtype=torch.bfloat16)


class Scion(_DropIn):
    r"""Scion / uScion over [`fo.scion`][functional_optim.optimizers.scion] with the official class's
    arguments and defaults (github.com/LIONS-EPFL/scion): ``d = (1-α) d + α g``, ``p ← (1 - lr)·p -
    lr·ρ·lmo(d)`` (``unconstrained=True``: no ``(1 - lr)``), Newton–Schulz in bfloat16 as the official code.

    Give each layer type its own parameter group with its ``norm``/``norm_kwargs``/``scale``.
    State: ``momentum_buffer`` (kept also when ``momentum = 1``, where it equals the gradient).
    The official ``init()`` (re-initialising the weights for their norms) is not provided.

    Example:
      >>> import torch
      >>> import functional_optim as fo
      >>> layer = torch.nn.Linear(4, 3)
      >>> opt = fo.adapters.Scion(
      ...     [{"params": [layer.weight], "norm": "Spectral", "scale": 50.0},
      ...      {"params": [layer.bias], "norm": "BiasRMS"}], lr=2**-12, momentum=0.1)
      >>> layer(torch.randn(2, 4)).sum().backward()
      >>> opt.step()
    """

    def __init__(
        self,
        params: ParamsT,
        lr: float | Tensor = 1e-3,
        momentum: float = 1.0,
        norm: str = "Auto",
        norm_kwargs: dict | None = None,
        scale: float = 1.0,
        unconstrained: bool = False,
    ) -> None:
        self._dropin_init(
            params,
            _scion_bf16,
            dict(
                lr=lr,
                momentum=momentum,
                norm=norm,
                norm_kwargs=norm_kwargs,
                scale=scale,
                unconstrained=unconstrained,
            ),
        )


# ----------------------------------------------------------------------------- Shampoo

_GRAFTING_CLASSES = {
    "SGDPreconditionerConfig": "sgd",
    "AdaGradPreconditionerConfig": "adagrad",
    "RMSpropPreconditionerConfig": "rmsprop",
    "AdamPreconditionerConfig": "adam",
}


def _grafting_from_config(config: Any) -> tuple[str | None, float | None, float]:
    """``(grafting, grafting_beta2, grafting_epsilon)`` from a name or a Distributed Shampoo
    grafting config object (read by its class name and fields; the package is not imported)."""
    if config is None:
        return None, None, 1e-10
    if isinstance(config, str):
        return config, None, 1e-10
    kind = _GRAFTING_CLASSES.get(type(config).__name__)
    if kind is None:
        raise ValueError(
            f"Shampoo: grafting_config must be None, one of {sorted(_GRAFTING_CLASSES.values())} or one of "
            f"{sorted(_GRAFTING_CLASSES)}, got {config!r}"
        )
    if getattr(config, "drop_weighting_factor_on_gsquare", False):
        raise ValueError("Shampoo: drop_weighting_factor_on_gsquare=True grafting is not supported")
    beta2 = getattr(config, "beta2", None) if kind in ("rmsprop", "adam") else None
    return kind, beta2, float(getattr(config, "epsilon", 1e-10))


def _preconditioner_from_config(config: Any) -> tuple[Any, torch.dtype]:
    """``(inverse_exponent_override, factor_matrix_dtype)`` of a ``RootInvShampooPreconditionerConfig``."""
    if config is None:
        return None, torch.float32
    name = type(config).__name__
    amortized = type(getattr(config, "amortized_computation_config", None)).__name__
    if name != "RootInvShampooPreconditionerConfig" or amortized != "EigenConfig":
        raise ValueError(
            f"Shampoo: only the root-inverse preconditioner with eigh (RootInvShampooPreconditionerConfig "
            f"with EigenConfig, the reference's default) is supported, got {name} with {amortized}"
        )
    if getattr(config, "use_trace_scaling", False) or getattr(
        config, "drop_weighting_factor_on_gsquare", False
    ):
        raise ValueError("Shampoo: use_trace_scaling / drop_weighting_factor_on_gsquare are not supported")
    dtype = config.factor_matrix_dtype
    if getattr(config, "inv_factor_matrix_dtype", dtype) != dtype:
        raise ValueError(
            f"Shampoo: factor_matrix_dtype ({dtype}) and inv_factor_matrix_dtype "
            f"({config.inv_factor_matrix_dtype}) must be equal"
        )
    return dict(config.inverse_exponent_override) or None, dtype


class Shampoo(_DropIn):
    r"""Shampoo with grafting over [`fo.shampoo`][functional_optim.optimizers.shampoo], with the arguments
    and defaults
    of Distributed Shampoo's ``DistributedShampoo`` (github.com/facebookresearch/optimizers; single
    device, root-inverse preconditioner computed by ``eigh``).

    Kronecker factors of each block's gradient (blocks of at most ``max_preconditioner_dim`` after
    merging small dimensions), their inverse roots recomputed every ``precondition_frequency``
    steps from ``start_preconditioning_step``, applied to the filtered gradient, grafted per block
    to the norm of the grafting rule's update. The config arguments accept the reference's config
    objects (read by class name and fields, so the package is not needed) or plain values:
    ``grafting_config`` a name (``"sgd"``, ``"adagrad"``, ``"rmsprop"``, ``"adam"``),
    ``weight_decay_type`` ``"decoupled"`` / ``"l2"`` (or the enum), ``preconditioner_config`` a
    ``RootInvShampooPreconditionerConfig`` (its ``inverse_exponent_override`` and
    ``factor_matrix_dtype``), ``iterate_averaging_config`` a ``ClassicMomentumConfig`` with
    ``dampening=0``. The state is this library's (per block, in the group's functional state), not
    the reference's checkpoint format.

    Example:
      >>> import torch
      >>> import functional_optim as fo
      >>> model = torch.nn.Linear(4, 3)
      >>> opt = fo.adapters.Shampoo(model.parameters(), lr=1e-2, grafting_config="adagrad")
      >>> model(torch.randn(2, 4)).sum().backward()
      >>> opt.step()
    """

    def __init__(
        self,
        params: ParamsT,
        lr: float | Tensor = 1e-2,
        betas: tuple[float, float] = (0.9, 1.0),
        beta3: float = -1.0,
        epsilon: float = 1e-12,
        weight_decay: float = 0.0,
        weight_decay_type: Any = "decoupled",
        max_preconditioner_dim: int | float = 1024,
        precondition_frequency: int = 1,
        start_preconditioning_step: int = -1,
        use_bias_correction: bool = True,
        iterate_averaging_config: Any = None,
        grafting_config: Any = None,
        preconditioner_config: Any = None,
    ) -> None:
        config = dict(
            weight_decay_type=weight_decay_type,
            iterate_averaging_config=iterate_averaging_config,
            grafting_config=grafting_config,
            preconditioner_config=preconditioner_config,
        )
        self._dropin_init(
            params,
            shampoo,
            dict(
                lr=lr,
                betas=betas,
                beta3=beta3,
                epsilon=epsilon,
                weight_decay=weight_decay,
                max_preconditioner_dim=max_preconditioner_dim,
                precondition_frequency=precondition_frequency,
                start_preconditioning_step=start_preconditioning_step,
                use_bias_correction=use_bias_correction,
                **_shampoo_configs(config),
            ),
        )

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """A group may give the reference's config arguments too; they are stored as the alias's
        hyperparameters (``grafting``, ``momentum``, ``factor_matrix_dtype``...)."""
        config = {k: param_group.pop(k) for k in _SHAMPOO_CONFIG_KEYS if k in param_group}
        if "weight_decay_type" in param_group:
            config["weight_decay_type"] = param_group.pop("weight_decay_type")
        if config:
            param_group.update(_shampoo_configs(config, only_given=True))
        super().add_param_group(param_group)


_SHAMPOO_CONFIG_KEYS = ("iterate_averaging_config", "grafting_config", "preconditioner_config")


def _shampoo_configs(config: dict[str, Any], only_given: bool = False) -> dict[str, Any]:
    """The alias's hyperparameters for the reference's config arguments in ``config``."""
    out: dict[str, Any] = {}
    if "weight_decay_type" in config:
        wd_type = getattr(config["weight_decay_type"], "name", config["weight_decay_type"])
        wd_type = wd_type.lower() if isinstance(wd_type, str) else wd_type
        if wd_type not in ("decoupled", "l2"):
            raise ValueError(
                f"Shampoo: weight_decay_type must be 'decoupled' or 'l2' (CORRECTED / INDEPENDENT are not "
                f"supported), got {config['weight_decay_type']!r}"
            )
        out["weight_decay_type"] = wd_type
    if "grafting_config" in config or not only_given:
        grafting, beta2, eps = _grafting_from_config(config.get("grafting_config"))
        out.update(grafting=grafting, grafting_beta2=beta2, grafting_epsilon=eps)
    if "preconditioner_config" in config or not only_given:
        override, dtype = _preconditioner_from_config(config.get("preconditioner_config"))
        out.update(inverse_exponent_override=override, factor_matrix_dtype=dtype)
    if "iterate_averaging_config" in config or not only_given:
        averaging = config.get("iterate_averaging_config")
        momentum, nesterov = 0.0, False
        if averaging is not None:
            if (
                type(averaging).__name__ != "ClassicMomentumConfig"
                or getattr(averaging, "dampening", 0.0) != 0.0
            ):
                raise ValueError(
                    "Shampoo: iterate_averaging_config must be None or a ClassicMomentumConfig with "
                    f"dampening=0, got {averaging!r}"
                )
            momentum, nesterov = float(averaging.momentum), bool(averaging.use_nesterov)
        out.update(momentum=momentum, use_nesterov=nesterov)
    return out


# ----------------------------------------------------------------------------- Kron


class Kron(_DropIn):
    r"""PSGD Kron over [`fo.kron`][functional_optim.optimizers.kron], with the arguments and defaults of
    kron_torch's ``Kron`` (github.com/evanatyourservice/kron_torch).

    Bias-corrected momentum, a Kronecker-factored preconditioner ``QᵀQ`` fitted on random probes
    with probability ``preconditioner_update_probability`` (default: 1 for 500 steps, then annealed
    to 0.03), the update's RMS clipped to 1.1, decoupled decay on matrices. The probes are drawn
    from a generator kept in the state: with ``seed=None`` (the default) its state is a copy of
    torch's global generator when the group's state is created, so after ``torch.manual_seed(s)``
    this class draws the same probes as the reference (which draws from the global generator; this
    class does not advance it). Each parameter group has its own update schedule and generator.

    Example:
      >>> import torch
      >>> import functional_optim as fo
      >>> model = torch.nn.Linear(4, 3)
      >>> opt = fo.adapters.Kron(model.parameters(), lr=3e-4)
      >>> model(torch.randn(2, 4)).sum().backward()
      >>> opt.step()
    """

    def __init__(
        self,
        params: ParamsT,
        lr: float | Tensor = 0.0003,
        b1: float = 0.9,
        weight_decay: float = 0.0,
        preconditioner_update_probability: float | Callable[[Tensor], Any] | None = None,
        max_size_triangular: int = 8192,
        min_ndim_triangular: int = 2,
        memory_save_mode: str | None = None,
        momentum_into_precond_update: bool = True,
        precond_lr: float = 0.1,
        precond_init_scale: float = 1.0,
        merge_dims: bool = True,
        mu_dtype: torch.dtype | None = None,
        precond_dtype: torch.dtype | None = None,
        *,
        seed: int | None = None,
    ) -> None:
        if mu_dtype is not None:
            raise ValueError(
                f"Kron: mu_dtype={mu_dtype} is not supported (the momentum is kept in the parameter's dtype)"
            )
        self._dropin_init(
            params,
            kron,
            dict(
                lr=lr,
                b1=b1,
                weight_decay=weight_decay,
                preconditioner_update_probability=preconditioner_update_probability,
                max_size_triangular=max_size_triangular,
                min_ndim_triangular=min_ndim_triangular,
                memory_save_mode=memory_save_mode,
                momentum_into_precond_update=momentum_into_precond_update,
                precond_lr=precond_lr,
                precond_init_scale=precond_init_scale,
                merge_dims=merge_dims,
                precond_dtype=precond_dtype,
                seed=seed,
            ),
        )
