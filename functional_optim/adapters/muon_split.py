"""``MuonWithAdamW``: Muon for a model's hidden matrices, AdamW for the rest, as one optimizer."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import Tensor, nn

from functional_optim.adapters._base import FunctionalOptimizer
from functional_optim.core import GradientTransformation
from functional_optim.optimizers.adam import adamw
from functional_optim.optimizers.muon import muon
from functional_optim.optimizers.muon_split import MUON_WITH_ADAMW_DEFAULTS as _D
from functional_optim.optimizers.muon_split import muon_labels

__all__ = ["MuonWithAdamW", "muon_or_adamw"]


def muon_or_adamw(
    use_muon: bool = False,
    lr: float | Tensor = 1e-3,
    weight_decay: float = 0.0,
    momentum: float = _D["momentum"],
    nesterov: bool = _D["nesterov"],
    ns_steps: int | None = _D["ns_steps"],
    adjust_lr_fn: str | None = _D["adjust_lr_fn"],
    betas: tuple[float, float] = _D["betas"],
    eps: float = _D["eps"],
    ns_dtype: torch.dtype | None = None,
) -> GradientTransformation:
    """The transform of one parameter group of [`MuonWithAdamW`][]: [`muon`][]
    (conv kernels as ``(out, in·kh·kw)``) when ``use_muon`` else [`adamw`][]
    (each reads only its own arguments)."""
    if use_muon:
        return muon(
            lr=lr,
            weight_decay=weight_decay,
            momentum=momentum,
            nesterov=nesterov,
            ns_steps=ns_steps,
            adjust_lr_fn=adjust_lr_fn,
            ns_dtype=ns_dtype,
            reshape="flatten",
        )
    return adamw(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)


_GROUP_KEYS = {"muon_lr", "muon_weight_decay", "adamw_lr", "adamw_weight_decay"}


def _named_groups(params: Any, model: nn.Module | None) -> list[dict[str, Any]]:
    """The input as groups of ``(name, tensor)`` pairs: ``model.named_parameters()``, plain
    tensors (names from ``model`` if given), or param-group dicts of either."""
    if isinstance(params, nn.Module):
        model = params if model is None else model
        params = params.named_parameters()
    if isinstance(params, Tensor):
        raise TypeError(
            "MuonWithAdamW: params should be model.named_parameters(), an iterable of tensors or of "
            f"param-group dicts, got a {type(params).__name__}"
        )
    items = list(params)
    if not items:
        raise ValueError("MuonWithAdamW got an empty parameter list")
    groups = items if isinstance(items[0], dict) else [{"params": items}]
    names = {id(p): n for n, p in model.named_parameters()} if model is not None else {}
    out = []
    for gi, group in enumerate(groups):
        if not isinstance(group, dict) or "params" not in group:
            raise TypeError(f"MuonWithAdamW: group {gi} must be a dict with 'params', got {group!r}")
        ps = group["params"]
        ps = [ps] if isinstance(ps, Tensor) else list(ps)
        named = []
        for j, item in enumerate(ps):
            if isinstance(item, tuple) and len(item) == 2 and isinstance(item[1], Tensor):
                named.append((str(item[0]), item[1]))
            elif isinstance(item, Tensor):
                named.append((names.get(id(item), f"group{gi}.{j}"), item))
            else:
                raise TypeError(
                    f"MuonWithAdamW: group {gi}, item {j} is a {type(item).__name__}; expected a tensor "
                    "or a (name, tensor) pair"
                )
        out.append({**{k: v for k, v in group.items() if k != "params"}, "params": named})
    return out


class MuonWithAdamW(FunctionalOptimizer):
    """One ``torch.optim.Optimizer`` that trains a whole model with Muon and AdamW.

    The parameters are split by [`fo.muon_labels`][functional_optim.muon_labels] -- by module type when the
    model is known (``params`` is the model, or ``model=`` is given): hidden ``Linear``/``Conv``
    weights → Muon; embeddings, the output head (tied or not), norms, biases, 0/1-D parameters →
    AdamW; by name otherwise; ``rule`` overrides either -- into groups with ``use_muon=True`` and
    ``use_muon=False``, each with its own ``lr`` and ``weight_decay``, so LR schedulers,
    ``state_dict`` and checkpoints work as for any optimizer. The numbers equal
    [`fo.muon_with_adamw`][functional_optim.muon_with_adamw] with the same arguments (same defaults:
    [`MUON_WITH_ADAMW_DEFAULTS`][]).

    ``params`` may be ``model.named_parameters()``, the model itself, an iterable of tensors, or
    param groups (dicts, as the transformers Trainer passes): each group is split in two; its
    ``lr``/``weight_decay`` apply to both halves, ``muon_lr``/``adamw_lr``/``muon_weight_decay``/
    ``adamw_weight_decay`` to one. Without names (plain tensors) pass ``model=`` for the split by
    module type; otherwise 2-D tensors go to Muon.

    Examples:
        >>> nn = torch.nn
        >>> model = nn.Sequential(nn.Embedding(10, 4), nn.Linear(4, 4), nn.Linear(4, 10))
        >>> opt = fo.adapters.MuonWithAdamW(model.named_parameters(), model=model, muon_lr=0.02)
        >>> [len(g["params"]) for g in opt.param_groups]
        [1, 4]

    References:
      K. Jordan et al., "Muon: An optimizer for hidden layers in neural networks" (2024).
    """

    def __init__(
        self,
        params: Iterable[Any] | nn.Module,
        *,
        model: nn.Module | None = None,
        muon_lr: float = _D["muon_lr"],
        muon_weight_decay: float = _D["muon_weight_decay"],
        momentum: float = _D["momentum"],
        nesterov: bool = _D["nesterov"],
        ns_steps: int | None = _D["ns_steps"],
        adjust_lr_fn: str | None = _D["adjust_lr_fn"],
        adamw_lr: float = _D["adamw_lr"],
        adamw_weight_decay: float = _D["adamw_weight_decay"],
        betas: tuple[float, float] = _D["betas"],
        eps: float = _D["eps"],
        ns_dtype: torch.dtype | None = None,
        rule: Callable[[str, Tensor], str | None] | None = None,
    ) -> None:
        if isinstance(params, nn.Module) and model is None:
            model = params
        groups = []
        for group in _named_groups(params, model):
            named = group.pop("params")
            labels = muon_labels(dict(named), rule, model=model)
            for use_muon, part in ((True, "muon"), (False, "adamw")):
                chosen = [p for n, p in named if labels[n] == part]
                if not chosen:
                    continue
                extra = {k: v for k, v in group.items() if k not in _GROUP_KEYS}
                groups.append(
                    {
                        **extra,
                        "params": chosen,
                        "use_muon": use_muon,
                        "lr": group.get(f"{part}_lr", group.get("lr", muon_lr if use_muon else adamw_lr)),
                        "weight_decay": group.get(
                            f"{part}_weight_decay",
                            group.get("weight_decay", muon_weight_decay if use_muon else adamw_weight_decay),
                        ),
                    }
                )
        super().__init__(
            groups,
            muon_or_adamw,
            momentum=momentum,
            nesterov=nesterov,
            ns_steps=ns_steps,
            adjust_lr_fn=adjust_lr_fn,
            betas=betas,
            eps=eps,
            ns_dtype=ns_dtype,
        )
