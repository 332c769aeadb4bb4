"""``adapters.MuonWithAdamW`` equals the pure ``fo.muon_with_adamw`` and checkpoints round-trip."""

from __future__ import annotations

import io

import torch
from torch import nn

import functional_optim as fo


class Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(11, 8)
        self.hidden = nn.Linear(8, 8)
        self.norm = nn.LayerNorm(8)
        self.head = nn.Linear(8, 11)

    def forward(self, x):
        return self.head(self.norm(torch.tanh(self.hidden(self.embed(x)))))


def _data(n):
    gen = torch.Generator().manual_seed(0)
    return [torch.randint(0, 11, (4, 6), generator=gen) for _ in range(n)]


def _loss(model, x):
    return nn.functional.cross_entropy(model(x).flatten(0, 1), x.roll(1, 1).flatten())


def _model():
    torch.manual_seed(0)
    return Tiny()


KW = {"muon_lr": 0.02, "adamw_lr": 3e-3, "ns_steps": 5}


def test_split_puts_only_hidden_matrices_in_the_muon_group():
    model = _model()
    opt = fo.adapters.MuonWithAdamW(model.named_parameters(), **KW)
    muon_group, adam_group = opt.param_groups
    assert muon_group["use_muon"] and [p.shape for p in muon_group["params"]] == [(8, 8)]
    assert not adam_group["use_muon"] and len(adam_group["params"]) == 6


def test_adapter_equals_the_pure_muon_with_adamw():
    batches = _data(5)
    model = _model()
    opt = fo.adapters.MuonWithAdamW(model.named_parameters(), **KW)
    for x in batches:
        opt.zero_grad()
        _loss(model, x).backward()
        opt.step()

    pure = _model()
    params = {k: v.detach().clone() for k, v in pure.named_parameters()}
    tx = fo.muon_with_adamw(
        {"lr": 0.02, "weight_decay": 0.1}, {"lr": 3e-3, "weight_decay": 0.01, "betas": (0.9, 0.95)}
    )
    state = tx.init(params)
    for x in batches:
        with torch.no_grad():
            for k, p in pure.named_parameters():
                p.copy_(params[k])
        pure.zero_grad()
        _loss(pure, x).backward()
        updates, state = tx.update({k: p.grad for k, p in pure.named_parameters()}, state, params)
        params = fo.apply_updates(params, updates)
    for k, p in model.named_parameters():
        torch.testing.assert_close(p.detach(), params[k], rtol=1e-6, atol=1e-7)


def test_state_dict_round_trip_continues_identically():
    batches = _data(6)
    ref = _model()
    ref_opt = fo.adapters.MuonWithAdamW(ref.named_parameters(), **KW)
    model = _model()
    opt = fo.adapters.MuonWithAdamW(model.named_parameters(), **KW)
    for i, x in enumerate(batches):
        for m, o in ((ref, ref_opt), (model, opt)) if i < 3 else ((ref, ref_opt),):
            o.zero_grad()
            _loss(m, x).backward()
            o.step()
    buf = io.BytesIO()
    torch.save({"m": model.state_dict(), "o": opt.state_dict()}, buf)
    buf.seek(0)
    saved = torch.load(buf, weights_only=False)
    resumed = _model()
    resumed.load_state_dict(saved["m"])
    resumed_opt = fo.adapters.MuonWithAdamW(resumed.named_parameters(), **KW)
    resumed_opt.load_state_dict(saved["o"])
    for x in batches[3:]:
        resumed_opt.zero_grad()
        _loss(resumed, x).backward()
        resumed_opt.step()
    for a, b in zip(resumed.parameters(), ref.parameters(), strict=True):
        assert torch.equal(a, b)
