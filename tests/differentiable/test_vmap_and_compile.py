"""``torch.func.vmap`` over a stacked model ensemble and ``torch.compile(fullgraph=True)`` of
``update`` give the same numbers as the plain eager path, for every algorithm."""

from __future__ import annotations

import copy
import time

import pytest
import torch
from torch import nn
from torch.func import functional_call, grad, stack_module_state, vmap

import functional_optim as fo
from functional_optim import tree
from tests._catalog import available

ALGORITHMS = available()
MEMBERS = 4


def _ensemble():
    torch.manual_seed(0)
    models = [nn.Sequential(nn.Linear(3, 8), nn.Tanh(), nn.Linear(8, 8)) for _ in range(MEMBERS)]
    params, _ = stack_module_state(models)
    base = copy.deepcopy(models[0]).to("meta")

    def loss(p, x, y):
        return ((functional_call(base, p, (x,)) - y) ** 2).mean()

    x = torch.randn(MEMBERS, 16, 3)
    y = torch.randn(MEMBERS, 16, 8)
    return params, loss, x, y


def _member(t, i):
    return tree.map(lambda v: v[i] if isinstance(v, torch.Tensor) and v.dim() > 0 else v, t)


@pytest.mark.parametrize("name", sorted(ALGORITHMS))
def test_vmapped_optimizer_over_an_ensemble_equals_a_loop_over_members(name):
    opt = ALGORITHMS[name]()
    params, loss, x, y = _ensemble()
    loop_params = [{k: v[i].clone() for k, v in params.items()} for i in range(MEMBERS)]
    loop_states = [opt.init(p) for p in loop_params]
    states = vmap(opt.init)(params)
    for _ in range(3):
        grads = vmap(grad(loss))(params, x, y)
        updates, states = vmap(opt.update)(grads, states, params)
        params = fo.apply_updates(params, updates)
        for i in range(MEMBERS):
            g = grad(loss)(loop_params[i], x[i], y[i])
            u, loop_states[i] = opt.update(g, loop_states[i], loop_params[i])
            loop_params[i] = fo.apply_updates(loop_params[i], u)
    for i in range(MEMBERS):
        for k in params:
            torch.testing.assert_close(params[k][i], loop_params[i][k], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", sorted(ALGORITHMS))
def test_compiled_update_with_fullgraph_equals_eager(name, record_property):
    torch._dynamo.reset()
    opt = ALGORITHMS[name]()
    gen = torch.Generator().manual_seed(0)
    params = {"w": torch.randn(6, 4, generator=gen), "b": torch.randn(4, generator=gen)}
    eager_params, eager_state = params, opt.init(params)
    comp_params, comp_state = params, opt.init(params)
    compiled = torch.compile(opt.update, fullgraph=True)
    compile_seconds = None
    for step in range(3):
        g = {"w": torch.randn(6, 4, generator=gen), "b": torch.randn(4, generator=gen)}
        u, eager_state = opt.update(g, eager_state, eager_params)
        eager_params = fo.apply_updates(eager_params, u)
        start = time.perf_counter()
        u, comp_state = compiled(g, comp_state, comp_params)
        if step == 0:
            compile_seconds = time.perf_counter() - start
        comp_params = fo.apply_updates(comp_params, u)
    record_property("compile_seconds", compile_seconds)
    for k in params:
        torch.testing.assert_close(comp_params[k], eager_params[k], rtol=1e-5, atol=1e-6)
