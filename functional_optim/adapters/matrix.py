"""Drop-in ``torch.optim.Optimizer`` classes of the matrix optimizers (SOAP, NorMuon, AdaMuon, Scion).

Each class has its authors' name, constructor arguments and defaults; the maths is the pure alias
(``fo.soap``, ``fo.normuon``, ``fo.adamuon``, ``fo.scion``) run by
[`FunctionalOptimizer`][].
"""

# No ``from __future__ import annotations``: the signatures are the reference classes'.

import functools

import torch
from torch import Tensor
from torch.optim.optimizer import ParamsT

from functional_optim.adapters.optimizers import _DropIn
from functional_optim.optimizers.adamuon import adamuon
from functional_optim.optimizers.normuon import normuon
from functional_optim.optimizers.scion import scion
from functional_optim.optimizers.soap import soap
from functional_optim.transforms import _steps
from functional_optim.transforms.soap import soap_view_shape

__all__ = ["SOAP", "AdaMuon", "NorMuon", "Scion"]


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
