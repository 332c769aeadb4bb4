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


def test_default_labels_send_hidden_matrices_to_muon_and_the_rest_to_adam():
    params = dict(TinyGPT().named_parameters())
    labels = fo.muon_labels(params)
    assert labels == {
        "wte.weight": "adam",
        "ln_1.weight": "adam",
        "ln_1.bias": "adam",
        "attn.weight": "muon",
        "attn.bias": "adam",
        "proj.weight": "muon",
        "conv.weight": "adam",
        "conv.bias": "adam",
        "lm_head.weight": "adam",
    }


def test_a_user_rule_overrides_the_default_and_is_checked():
    params = dict(TinyGPT().named_parameters())
    labels = fo.muon_labels(params, rule=lambda name, p: "muon" if name == "lm_head.weight" else "adam")
    assert [k for k, v in labels.items() if v == "muon"] == ["lm_head.weight"]
    with pytest.raises(ValueError, match="expected 'muon' or 'adam'"):
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
    ad = {k: v for k, v in params.items() if labels[k] == "adam"}
    m_opt, a_opt = fo.muon(**muon_kw), fo.adamw(**adamw_kw)
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
    opt = fo.muon_with_adamw({"ns_dtype": torch.float32}, {}, labels={"a": "muon", "b": "adam"})
    updates, _ = opt.update({"a": torch.ones(4, 3), "b": torch.ones(3)}, opt.init(params), params)
    assert updates["a"].shape == (4, 3) and updates["b"].shape == (3,)
    with pytest.raises(ValueError, match="Muon only supports 2D parameters"):
        fo.muon_with_adamw(labels={"a": "muon", "b": "muon"}).init(params)
