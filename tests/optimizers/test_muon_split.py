"""``muon_labels`` / ``muon_with_adamw``: Muon for hidden matrices, AdamW for the rest, in one call."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import functional_optim as fo


class TinyGPT(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.wte = nn.Embedding(11, 8)
        self.ln_1 = nn.LayerNorm(8)
        self.attn = nn.Linear(8, 24)
        self.proj = nn.Linear(8, 8, bias=False)
        self.conv = nn.Conv1d(8, 8, 3)
        self.lm_head = nn.Linear(8, 11, bias=False)


def test_name_rule_without_a_model_sends_hidden_matrices_to_muon_and_the_rest_to_adamw():
    params = dict(TinyGPT().named_parameters())
    labels = fo.muon_labels(params)
    assert labels == {
        "wte.weight": "adamw",
        "ln_1.weight": "adamw",
        "ln_1.bias": "adamw",
        "attn.weight": "muon",
        "attn.bias": "adamw",
        "proj.weight": "muon",
        "conv.weight": "adamw",
        "conv.bias": "adamw",
        "lm_head.weight": "adamw",
    }


class Plain(nn.Module):
    """Names no name rule recognises: ``tok``, ``pos``, ``out``; a tied head; a custom block."""

    def __init__(self, tie: bool) -> None:
        super().__init__()
        self.tok = nn.Embedding(13, 8)
        self.pos = nn.Parameter(torch.zeros(6, 8))
        self.norm = nn.LayerNorm(8)
        self.mix = nn.Linear(8, 16)
        self.back = nn.Linear(16, 8, bias=False)
        self.conv = nn.Conv1d(8, 8, 3)
        self.out = nn.Linear(8, 13, bias=False)
        if tie:
            self.out.weight = self.tok.weight


@pytest.mark.parametrize("tie", [False, True], ids=["untied", "tied"])
def test_split_by_module_type_sends_embeddings_head_norms_biases_and_tables_to_adamw(tie):
    model = Plain(tie)
    labels = fo.muon_labels(model)
    muon = {k for k, v in labels.items() if v == "muon"}
    assert muon == {"mix.weight", "back.weight", "conv.weight"}
    assert {k for k, v in labels.items() if v == "adamw"} == set(dict(model.named_parameters())) - muon
    assert ("out.weight" in labels) is not tie  # tied: one tensor, listed once (under tok)
    # the same split for a tree of copies of the parameters, named as in the model
    copies = {k: v.detach().clone() for k, v in model.named_parameters()}
    assert fo.muon_labels(copies, model=model) == labels


def test_without_embeddings_the_last_linear_is_the_head():
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 3))
    labels = fo.muon_labels(model)
    assert [k for k, v in labels.items() if v == "muon"] == ["0.weight", "2.weight"]


def test_a_rule_overrides_the_module_split_and_none_keeps_it():
    model = Plain(tie=False)
    labels = fo.muon_labels(model, rule=lambda n, p: "muon" if n == "out.weight" else None)
    assert (
        labels["out.weight"] == "muon" and labels["mix.weight"] == "muon" and labels["tok.weight"] == "adamw"
    )


def test_a_user_rule_overrides_the_default_and_is_checked():
    params = dict(TinyGPT().named_parameters())
    labels = fo.muon_labels(params, rule=lambda name, p: "muon" if name == "lm_head.weight" else "adamw")
    assert [k for k, v in labels.items() if v == "muon"] == ["lm_head.weight"]
    with pytest.raises(ValueError, match="expected 'muon' or 'adamw'"):
        fo.muon_labels(params, rule=lambda name, p: "sgd")


def test_muon_with_adamw_equals_muon_and_adamw_applied_to_their_parts():
    torch.manual_seed(0)
    params = {k: v.detach().clone() for k, v in TinyGPT().named_parameters()}
    muon_kw = {"lr": 0.02, "ns_dtype": torch.float32}
    adamw_kw = {"lr": 3e-3, "weight_decay": 0.01}
    opt = fo.muon_with_adamw(muon_kw, adamw_kw)
    state = opt.init(params)
    labels = fo.muon_labels(params)
    mu = {k: v for k, v in params.items() if labels[k] == "muon"}
    ad = {k: v for k, v in params.items() if labels[k] == "adamw"}
    d = fo.MUON_WITH_ADAMW_DEFAULTS
    m_opt = fo.muon(**{"weight_decay": d["muon_weight_decay"], "reshape": "flatten", **muon_kw})
    a_opt = fo.adamw(**{"betas": d["betas"], "eps": d["eps"], **adamw_kw})
    m_state, a_state = m_opt.init(mu), a_opt.init(ad)
    for step in range(3):
        grads = {k: torch.sin(v * (step + 1)) for k, v in params.items()}
        updates, state = opt.update(grads, state, params)
        params = fo.apply_updates(params, updates)
        mu_u, m_state = m_opt.update({k: grads[k] for k in mu}, m_state, mu)
        ad_u, a_state = a_opt.update({k: grads[k] for k in ad}, a_state, ad)
        mu, ad = fo.apply_updates(mu, mu_u), fo.apply_updates(ad, ad_u)
    for k in params:
        torch.testing.assert_close(params[k], (mu if k in mu else ad)[k], rtol=0, atol=0)


def test_explicit_labels_are_used():
    params = {"a": torch.randn(4, 3), "b": torch.randn(3)}
    opt = fo.muon_with_adamw({"ns_dtype": torch.float32}, {}, labels={"a": "muon", "b": "adamw"})
    updates, _ = opt.update({"a": torch.ones(4, 3), "b": torch.ones(3)}, opt.init(params), params)
    assert updates["a"].shape == (4, 3) and updates["b"].shape == (3,)
    with pytest.raises(ValueError, match="reshape='flatten' needs >= 2 dims"):
        fo.muon_with_adamw(labels={"a": "muon", "b": "muon"}).init(params)
