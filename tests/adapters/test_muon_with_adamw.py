"""``adapters.MuonWithAdamW`` equals the pure ``fo.muon_with_adamw`` and checkpoints round-trip."""

from __future__ import annotations

import inspect
import io

import pytest
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


class Plain(nn.Module):
    def __init__(self, tie: bool = False):
        super().__init__()
        self.tok = nn.Embedding(11, 8)
        self.pos = nn.Parameter(torch.zeros(6, 8))
        self.hidden = nn.Linear(8, 8)
        self.norm = nn.LayerNorm(8)
        self.out = nn.Linear(8, 11, bias=False)
        if tie:
            self.out.weight = self.tok.weight

    def forward(self, x):
        h = self.tok(x) + self.pos[: x.shape[1]]
        return self.out(self.norm(torch.tanh(self.hidden(h))))


def _muon_tensors(opt):
    return {id(p) for g in opt.param_groups if g["use_muon"] for p in g["params"]}


@pytest.mark.parametrize("tie", [False, True], ids=["untied", "tied"])
def test_with_the_model_embeddings_tables_head_norms_and_biases_go_to_adamw(tie):
    model = Plain(tie)
    for opt in (
        fo.adapters.MuonWithAdamW(model),
        fo.adapters.MuonWithAdamW(model.named_parameters(), model=model),
        fo.adapters.MuonWithAdamW(model.parameters(), model=model),
    ):
        assert _muon_tensors(opt) == {id(model.hidden.weight)}
        assert sum(len(g["params"]) for g in opt.param_groups) == len(list(model.parameters()))


def test_param_groups_as_the_trainer_passes_them_are_split_and_keep_their_settings():
    model = Plain()
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.ndim < 2]
    groups = [{"params": decay, "weight_decay": 0.05}, {"params": no_decay, "weight_decay": 0.0}]
    opt = fo.adapters.MuonWithAdamW(groups, model=model, adamw_lr=1e-3)
    summary = [(g["use_muon"], len(g["params"]), g["weight_decay"], g["lr"]) for g in opt.param_groups]
    assert summary == [(True, 1, 0.05, 0.02), (False, 3, 0.05, 1e-3), (False, 3, 0.0, 1e-3)]
    x = _data(1)[0]
    _loss(model, x).backward()
    opt.step()  # runs


def test_groups_equal_the_pure_optimizer_with_the_same_split():
    batches = _data(3)
    torch.manual_seed(0)
    model = Plain()
    opt = fo.adapters.MuonWithAdamW(
        [{"params": list(model.parameters())}], model=model, muon_lr=0.03, adamw_lr=2e-3
    )
    torch.manual_seed(0)
    pure = Plain()
    params = {k: v.detach().clone() for k, v in pure.named_parameters()}
    tx = fo.muon_with_adamw(model=pure, muon_lr=0.03, adamw_lr=2e-3)
    state = tx.init(params)
    for x in batches:
        opt.zero_grad()
        _loss(model, x).backward()
        opt.step()
        with torch.no_grad():
            for k, p in pure.named_parameters():
                p.copy_(params[k])
        pure.zero_grad()
        _loss(pure, x).backward()
        updates, state = tx.update({k: p.grad for k, p in pure.named_parameters()}, state, params)
        params = fo.apply_updates(params, updates)
    for k, p in model.named_parameters():
        torch.testing.assert_close(p.detach(), params[k], rtol=1e-6, atol=1e-7)


def test_the_pure_and_the_drop_in_version_share_one_set_of_defaults():
    pure = inspect.signature(fo.muon_with_adamw).parameters
    drop_in = inspect.signature(fo.adapters.MuonWithAdamW).parameters
    shared = (set(pure) & set(drop_in)) - {"rule", "model"}
    assert shared == set(fo.MUON_WITH_ADAMW_DEFAULTS) | {"ns_dtype"}
    for name in shared:
        assert pure[name].default == drop_in[name].default, name
