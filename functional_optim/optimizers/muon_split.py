"""A whole model in one call: Muon for the hidden matrices, AdamW for everything else."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from torch import Tensor

from functional_optim import tree
from functional_optim.combinators.partition import partition
from functional_optim.core import GradientTransformation, Params
from functional_optim.optimizers.adam import adamw
from functional_optim.optimizers.muon import muon

__all__ = ["MUON_EXCLUDE_PATTERN", "default_muon_rule", "muon_labels", "muon_with_adamw"]

MUON_EXCLUDE_PATTERN = re.compile(
    r"(^|[._])(embed\w*|embeddings?|emb|wte|wpe|tok_emb\w*|pos_emb\w*|lm_head|head|classifier|"
    r"unembed\w*|norm\w*|\w*_norm|ln\w*|layernorm|rmsnorm|bn\d*|bias)([._]|$)",
    re.IGNORECASE,
)
"""Parameter names that go to AdamW even when 2-D: embeddings (``embed``, ``wte``, ``wpe``,
``tok_emb``...), output heads (``lm_head``, ``head``, ``classifier``, ``unembed``), norms (``norm``,
``ln_1``, ``layernorm``, ``bn``) and biases. Matched against the dotted name of the leaf, on whole
components (``blocks.0.attn.head_proj`` is not a head; ``transformer.wte.weight`` is an embedding)."""

Rule = Callable[[str, Tensor], str]


def default_muon_rule(name: str, param: Tensor) -> str:
    """``"muon"`` for 2-D hidden matrices, ``"adam"`` for everything else.

    A parameter is a hidden matrix when it has exactly 2 dims and no component of its name
    matches :data:`MUON_EXCLUDE_PATTERN` (embeddings, output head, norms, biases)."""
    if param.ndim != 2:
        return "adam"
    return "adam" if MUON_EXCLUDE_PATTERN.search(name) else "muon"


def muon_labels(named_params_tree: Params, rule: Rule | None = None) -> Any:
    """One label (``"muon"`` or ``"adam"``) per leaf of a parameter tree.

    Args:
      named_params_tree: e.g. ``dict(model.named_parameters())`` or any nested tree; the name of a
        leaf is its path joined with ``"."`` (the key itself for a flat dict).
      rule: ``rule(name, param) -> "muon" | "adam"``; default :func:`default_muon_rule`. ``None``
        leaves get the label ``None``.

    Example::

        params = dict(model.named_parameters())
        muon_labels(params)   # {"wte.weight": "adam", "h.0.attn.c_attn.weight": "muon", ...}
    """
    rule = rule or default_muon_rule
    leaves, spec = tree.flatten(named_params_tree)
    names = tree.leaf_names(spec)
    labels = [None if p is None else rule(str(n), p) for n, p in zip(names, leaves, strict=True)]
    for n, lab in zip(names, labels, strict=True):
        if lab not in (None, "muon", "adam"):
            raise ValueError(f"muon_labels: rule returned {lab!r} for {n!r}; expected 'muon' or 'adam'")
    return tree.unflatten(spec, labels)


def muon_with_adamw(
    muon_kwargs: Mapping[str, Any] | None = None,
    adamw_kwargs: Mapping[str, Any] | None = None,
    labels: Any | Callable[[Params], Any] | None = None,
    *,
    rule: Rule | None = None,
) -> GradientTransformation:
    """``partition({"muon": muon(**muon_kwargs), "adam": adamw(**adamw_kwargs)}, labels)``.

    The usual recipe for training a whole network with Muon: the hidden 2-D matrices get Muon,
    embeddings, the output head, biases, norms and any non-2-D parameter get AdamW.

    Args:
      muon_kwargs: arguments of :func:`muon` (e.g. ``{"lr": 0.02}``).
      adamw_kwargs: arguments of :func:`adamw` (e.g. ``{"lr": 3e-4, "weight_decay": 0.01}``).
      labels: a label tree (``"muon"``/``"adam"`` per leaf) or a callable ``params -> labels``;
        default ``lambda params: muon_labels(params, rule)``.
      rule: the per-parameter rule used when ``labels`` is ``None`` (see :func:`muon_labels`).

    Example::

        params = dict(model.named_parameters())
        opt = fo.muon_with_adamw({"lr": 0.02}, {"lr": 3e-4})
        state = opt.init(params)
    """
    if labels is None:

        def labels(params: Params) -> Any:
            return muon_labels(params, rule)

    return partition(
        {"muon": muon(**dict(muon_kwargs or {})), "adam": adamw(**dict(adamw_kwargs or {}))}, labels
    )
