"""Every combinator runs inside the drop-in adapter: the adapter's trajectory equals the pure
loop, and save -> load -> continue through ``state_dict`` equals uninterrupted training."""

from __future__ import annotations

import io

import pytest
import torch
from torch import nn

import functional_optim as fo
from functional_optim.adapters import FunctionalOptimizer


def _is_matrix(params):
    return fo.tree.map(lambda p: p.ndim > 1, params)


def _labels(params):
    return fo.tree.map(lambda p: "matrices" if p.ndim > 1 else "vectors", params)


ADAM = lambda: fo.adam(lr=0.01)  # noqa: E731

COMBINATORS = {
    "partition": lambda: fo.partition(
        {"matrices": fo.adamw(lr=0.01), "vectors": fo.sgd(lr=0.1, momentum=0.9)}, _labels
    ),
    "masked": lambda: fo.chain(fo.masked(fo.scale_by_adam(), _is_matrix), fo.scale_by_learning_rate(0.01)),
    "freeze": lambda: fo.chain(ADAM(), fo.freeze(_is_matrix)),
    "inject_hyperparams": lambda: fo.inject_hyperparams(fo.adamw)(lr=lambda count: 0.01 / (1 + count)),
    "apply_if_finite": lambda: fo.apply_if_finite(ADAM(), max_consecutive_errors=2),
    "multi_steps": lambda: fo.multi_steps(ADAM(), every_k=2),
    "lookahead": lambda: fo.lookahead(fo.sgd(lr=0.1, momentum=0.5), sync_period=2, alpha=0.5),
    "skip_large_updates": lambda: fo.skip_large_updates(ADAM(), max_squared_norm=10.0),
    "add_noise": lambda: fo.chain(fo.add_noise(0.01, 0.55, seed=3), ADAM()),
    "centralize": lambda: fo.chain(fo.centralize(), ADAM()),
    "zero_nans": lambda: fo.chain(fo.zero_nans(), ADAM()),
    "clip_by_block_rms": lambda: fo.chain(fo.clip_by_block_rms(0.5), ADAM()),
    "adaptive_grad_clip": lambda: fo.chain(fo.adaptive_grad_clip(0.05), ADAM()),
    "snapshot": lambda: fo.chain(fo.snapshot(), ADAM()),
}


def _model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 5), nn.Tanh(), nn.Linear(5, 2))


def _batches(n):
    gen = torch.Generator().manual_seed(1)
    return [(torch.randn(8, 4, generator=gen), torch.randn(8, 2, generator=gen)) for _ in range(n)]


def _step(model, opt, x, y):
    opt.zero_grad()
    nn.functional.mse_loss(model(x), y).backward()
    opt.step()


@pytest.mark.parametrize("name", sorted(COMBINATORS))
def test_combinator_in_the_adapter_equals_the_pure_loop(name):
    batches = _batches(6)
    model = _model()
    opt = FunctionalOptimizer(model.parameters(), COMBINATORS[name]())
    for x, y in batches:
        _step(model, opt, x, y)

    pure = _model()
    params = [p.detach().clone() for p in pure.parameters()]
    transform = COMBINATORS[name]()
    state = transform.init(params)
    for x, y in batches:
        for p, v in zip(pure.parameters(), params, strict=False):
            p.data.copy_(v)
        pure.zero_grad()
        nn.functional.mse_loss(pure(x), y).backward()
        updates, state = transform.update([p.grad for p in pure.parameters()], state, params)
        params = fo.apply_updates(params, updates)
    for a, b in zip(model.parameters(), params, strict=False):
        torch.testing.assert_close(a.detach(), b, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("name", sorted(COMBINATORS))
def test_combinator_state_dict_round_trip_continues_identically(name):
    batches = _batches(6)
    reference = _model()
    ref_opt = FunctionalOptimizer(reference.parameters(), COMBINATORS[name]())
    for x, y in batches:
        _step(reference, ref_opt, x, y)

    model = _model()
    opt = FunctionalOptimizer(model.parameters(), COMBINATORS[name]())
    for x, y in batches[:3]:
        _step(model, opt, x, y)
    buffer = io.BytesIO()
    torch.save({"model": model.state_dict(), "opt": opt.state_dict()}, buffer)
    buffer.seek(0)
    saved = torch.load(buffer, weights_only=False)

    resumed = _model()
    resumed.load_state_dict(saved["model"])
    resumed_opt = FunctionalOptimizer(resumed.parameters(), COMBINATORS[name]())
    resumed_opt.load_state_dict(saved["opt"])
    for x, y in batches[3:]:
        _step(resumed, resumed_opt, x, y)
    for a, b in zip(resumed.parameters(), reference.parameters(), strict=False):
        assert torch.equal(a, b), name
