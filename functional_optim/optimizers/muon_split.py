"""A whole model in one call: Muon for the hidden matrices, AdamW for everything else."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import Tensor, nn

from functional_optim import tree
from functional_optim.combinators.partition import partition
from functional_optim.core import GradientTransformation, Params
from functional_optim.optimizers.adam import adamw
from functional_optim.optimizers.muon import muon

__all__ = [
    "MUON_EXCLUDE_PATTERN",
    "MUON_WITH_ADAMW_DEFAULTS",
    "default_muon_rule",
    "muon_labels",
    "muon_with_adamw",
]

MUON_WITH_ADAMW_DEFAULTS: dict[str, Any] = {
    "muon_lr": 0.02,
    "muon_weight_decay": 0.1,
    "momentum": 0.95,
    "nesterov": True,
    "ns_steps": None,  # the preset's: 5 for torch's triple, 4 for "fast"
    "adjust_lr_fn": None,
    "adamw_lr": 3e-4,
    "adamw_weight_decay": 0.01,
    "betas": (0.9, 0.95),
    "eps": 1e-8,
}
"""The one set of defaults of [`muon_with_adamw`][] and ``adapters.MuonWithAdamW`` (both
signatures read them from here)."""

_D = MUON_WITH_ADAMW_DEFAULTS

MUON_EXCLUDE_PATTERN = re.compile(
    r"(^|[._])(embed\w*|embeddings?|emb|wte|wpe|tok_emb\w*|pos_emb\w*|lm_head|head|classifier|"
    r"unembed\w*|norm\w*|\w*_norm|ln\w*|layernorm|rmsnorm|bn\d*|bias)([._]|$)",
    re.IGNORECASE,
)
"""Parameter names that go to AdamW even when 2-D, when no model is given to tell the module
types: embeddings (``embed``, ``wte``, ``wpe``, ``tok_emb``...), output heads (``lm_head``,
``head``, ``classifier``, ``unembed``), norms (``norm``, ``ln_1``, ``layernorm``, ``bn``) and
biases. Matched against the dotted name of the leaf, on whole components."""

Rule = Callable[[str, Tensor], "str | None"]
_LABELS = ("muon", "adamw")
_NORMS: tuple[type, ...] = tuple(
    t
    for t in (
        nn.LayerNorm,
        nn.GroupNorm,
        nn.LocalResponseNorm,
        getattr(nn, "RMSNorm", None),
        nn.modules.batchnorm._NormBase,
    )
    if t is not None
)


def default_muon_rule(name: str, param: Tensor) -> str:
    """The name rule (no model): ``"muon"`` for 2-D matrices whose name matches no component of
    [`MUON_EXCLUDE_PATTERN`][], ``"adamw"`` for everything else."""
    if param.ndim != 2:
        return "adamw"
    return "adamw" if MUON_EXCLUDE_PATTERN.search(name) else "muon"


def _is_matrix_layer(module: nn.Module) -> bool:
    """Linear and convolution layers (and transformers' ``Conv1D``, a transposed Linear)."""
    return isinstance(module, nn.Linear | nn.modules.conv._ConvNd) or type(module).__name__ == "Conv1D"


def _output_heads(model: nn.Module) -> set[int]:
    """``id``s of the output-head weights of ``model``: a layer's weight tied to an embedding
    (same tensor), ``model.get_output_embeddings()`` (transformers), a Linear whose ``out_features``
    is an embedding's vocabulary size, and -- only if none of these exists -- the last Linear."""
    embeddings = [m for m in model.modules() if isinstance(m, nn.Embedding | nn.EmbeddingBag)]
    tied = {id(m.weight) for m in embeddings}
    vocab = {m.num_embeddings for m in embeddings}
    heads: set[int] = set()
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    for m in model.modules():
        w = getattr(m, "weight", None)
        if isinstance(w, Tensor) and id(w) in tied and not isinstance(m, nn.Embedding | nn.EmbeddingBag):
            heads.add(id(w))
    get_out = getattr(model, "get_output_embeddings", None)
    if callable(get_out):
        out = get_out()
        if isinstance(getattr(out, "weight", None), Tensor):
            heads.add(id(out.weight))
    heads.update(id(m.weight) for m in linears if m.out_features in vocab)
    if not heads and linears:
        heads.add(id(linears[-1].weight))
    return heads


def _module_labels(model: nn.Module) -> dict[Any, str]:
    """Label by module type, keyed by ``id(param)`` and by every name of the parameter in
    ``model.named_parameters(remove_duplicate=False)``: weights of 2-D+ of Linear/Conv layers that
    are not an output head → ``"muon"``; embeddings, heads, norms, biases, any 0/1-D parameter and
    the parameters of other modules (e.g. a position table ``nn.Parameter``) → ``"adamw"``."""
    heads = _output_heads(model)
    labels: dict[Any, str] = {}
    for module in model.modules():
        for pname, p in module.named_parameters(recurse=False):
            if id(p) in labels:  # tied: the first owner (the embedding) decides
                continue
            hidden = (
                _is_matrix_layer(module)
                and not isinstance(module, _NORMS)
                and pname == "weight"
                and p.ndim >= 2
                and id(p) not in heads
            )
            labels[id(p)] = "muon" if hidden else "adamw"
    for name, p in model.named_parameters(remove_duplicate=False):
        labels[name] = labels[id(p)]
    return labels


def _check_label(name: str, label: Any) -> str:
    if label not in _LABELS:
        raise ValueError(f"muon_labels: got label {label!r} for {name!r}; expected 'muon' or 'adamw'")
    return label


def muon_labels(
    params: nn.Module | Params, rule: Rule | None = None, *, model: nn.Module | None = None
) -> Any:
    """One label, ``"muon"`` or ``"adamw"``, per parameter: the split of [`muon_with_adamw`][].

    With a model (``params`` is an ``nn.Module``, or ``model=`` is given) the split is by module
    type: the 2-D+ weights of hidden ``Linear``/``Conv`` layers → Muon; embeddings, the output
    head (found by weight tying, ``get_output_embeddings()``, a vocabulary-sized ``out_features``,
    or else as the last ``Linear``), norms, biases, 0/1-D parameters and the parameters of other
    modules (e.g. a position table) → AdamW. Without a model the name rule
    [`default_muon_rule`][] decides. ``rule(name, param)`` overrides either: it returns
    ``"muon"``, ``"adamw"`` or ``None`` (keep the default label).

    Args:
      params: a model (labels keyed by ``named_parameters()`` names), or a parameter tree such
        as ``dict(model.named_parameters())`` (the name of a leaf is its path joined with ``"."``).
      rule: optional per-parameter override.
      model: the model the tree's tensors belong to (for the module types).

    Example:
      >>> nn = torch.nn
      >>> model = nn.Sequential(nn.Embedding(10, 4), nn.Linear(4, 4), nn.Linear(4, 10))
      >>> fo.muon_labels(model)
      {'0.weight': 'adamw', '1.weight': 'muon', '1.bias': 'adamw', '2.weight': 'adamw', '2.bias': 'adamw'}
    """
    if isinstance(params, nn.Module):
        model = params if model is None else model
        params = dict(params.named_parameters())
    by_module = _module_labels(model) if model is not None else None
    leaves, spec = tree.flatten(params)
    names = [str(n) for n in tree.leaf_names(spec)]
    labels: list[str | None] = []
    for name, p in zip(names, leaves, strict=True):
        if p is None:
            labels.append(None)
            continue
        label = None
        if by_module is not None:  # the model's tensor, or a copy under the model's name
            label = by_module.get(id(p), by_module.get(name))
        if label is None:  # no model, or a tensor the model does not know
            label = default_muon_rule(name, p)
        if rule is not None:
            override = rule(name, p)
            if override is not None:
                label = override
        labels.append(_check_label(name, label))
    return tree.unflatten(spec, labels)


def muon_with_adamw(
    muon_kwargs: Mapping[str, Any] | None = None,
    adamw_kwargs: Mapping[str, Any] | None = None,
    labels: Any | Callable[[Params], Any] | None = None,
    *,
    rule: Rule | None = None,
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
) -> GradientTransformation:
    """``partition({"muon": muon(...), "adamw": adamw(...)}, labels)``: Muon for the hidden
    matrices, AdamW for the rest (see [`muon_labels`][] for the split).

    The keyword defaults are [`MUON_WITH_ADAMW_DEFAULTS`][], the same as
    ``adapters.MuonWithAdamW``'s. Muon sees conv kernels as ``(out, in·kh·kw)`` matrices
    (``reshape="flatten"``).

    Args:
      muon_kwargs: further arguments of [`muon`][] (e.g. ``{"ns_coefficients": "polar_express"}``);
        they override the keywords below (``{"lr": 0.02}`` = ``muon_lr=0.02``).
      adamw_kwargs: further arguments of [`adamw`][]; they override the keywords below.
      labels: a label tree (``"muon"``/``"adamw"`` per leaf) or a callable ``params -> labels``;
        default ``muon_labels(params, rule, model=model)``.
      rule: per-parameter override of the default labels (see [`muon_labels`][]).
      model: the model whose ``named_parameters()`` the tree holds (split by module type;
        without it, by name).
      muon_lr, muon_weight_decay, momentum, nesterov, ns_steps, adjust_lr_fn, ns_dtype: Muon's.
      adamw_lr, adamw_weight_decay, betas, eps: AdamW's.

    Example:
      >>> nn = torch.nn
      >>> model = nn.Sequential(nn.Embedding(10, 4), nn.Linear(4, 4), nn.Linear(4, 10))
      >>> params = dict(model.named_parameters())
      >>> opt = fo.muon_with_adamw(model=model)
      >>> state = opt.init(params)
    """
    muon_kw: dict[str, Any] = {
        "lr": muon_lr,
        "weight_decay": muon_weight_decay,
        "momentum": momentum,
        "nesterov": nesterov,
        "ns_steps": ns_steps,
        "adjust_lr_fn": adjust_lr_fn,
        "ns_dtype": ns_dtype,
        "reshape": "flatten",
    }
    muon_kw.update(muon_kwargs or {})
    adamw_kw: dict[str, Any] = {
        "lr": adamw_lr,
        "weight_decay": adamw_weight_decay,
        "betas": betas,
        "eps": eps,
    }
    adamw_kw.update(adamw_kwargs or {})
    if labels is None:

        def labels(params: Params) -> Any:
            return muon_labels(params, rule, model=model)

    return partition({"muon": muon(**muon_kw), "adamw": adamw(**adamw_kw)}, labels)
