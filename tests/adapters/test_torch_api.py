"""Everything torch.optim users rely on works on the adapters: GradScaler, distributed checkpoint
helpers, hooks in torch's order, closures, deepcopy/pickle, zero_grad, named parameters,
add_param_group, implementation flags, differentiable steps."""

from __future__ import annotations

import copy
import pickle

import pytest
import torch
from torch.distributed.checkpoint.state_dict import get_optimizer_state_dict, set_optimizer_state_dict
from torch.optim.optimizer import register_optimizer_step_post_hook, register_optimizer_step_pre_hook

import functional_optim as fo
from tests.adapters._cases import assert_same_state


def _model(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, 1))


def _batch(step: int):
    gen = torch.Generator().manual_seed(step)
    return torch.randn(8, 3, generator=gen), torch.randn(8, 1, generator=gen)


def _loss(model, step):
    x, y = _batch(step)
    return ((model(x) - y) ** 2).mean()


def _train(model, opt, steps, start=0, scaler=None):
    for step in range(start, start + steps):
        opt.zero_grad()
        loss = _loss(model, step)
        if scaler is None:
            loss.backward()
            opt.step()
        else:
            scaler.scale(loss).backward()
            if step == start + 1:  # an overflowing step: GradScaler must skip it for both
                next(model.parameters()).grad.view(-1)[0] = float("inf")
            scaler.step(opt)
            scaler.update()


def _assert_models_equal(a, b):
    for (n, p), q in zip(a.named_parameters(), b.parameters(), strict=True):
        torch.testing.assert_close(p, q, msg=lambda m, n=n: f"{n}: {m}")


def test_grad_scaler_unscale_step_update_like_torch():
    mt, mf = _model(), _model()
    ot = torch.optim.AdamW(mt.parameters(), lr=0.01, foreach=False)
    of = fo.adapters.AdamW(mf.parameters(), lr=0.01)
    st, sf = torch.amp.GradScaler("cpu", init_scale=2.0**10), torch.amp.GradScaler("cpu", init_scale=2.0**10)
    _train(mt, ot, 6, scaler=st)
    _train(mf, of, 6, scaler=sf)
    assert st.get_scale() == sf.get_scale() < 2.0**10  # the inf step halved the scale
    _assert_models_equal(mf, mt)
    assert_same_state(ot, of)
    assert of.state[next(mf.parameters())]["step"].item() == 5  # the inf step was skipped


@pytest.mark.parametrize("direction", ["torch_to_fo", "fo_to_torch", "fo_to_fresh_fo"])
def test_distributed_checkpoint_helpers_round_trip(direction):
    src_cls = torch.optim.Adam if direction == "torch_to_fo" else fo.adapters.Adam
    dst_cls = torch.optim.Adam if direction == "fo_to_torch" else fo.adapters.Adam
    ms = _model()
    src = src_cls(ms.parameters(), lr=0.01, weight_decay=0.1)
    _train(ms, src, 3)
    osd = copy.deepcopy(get_optimizer_state_dict(ms, src))
    assert "0.weight" in osd["state"]  # keyed by fully qualified names
    md = _model(1)
    md.load_state_dict(ms.state_dict())
    dst = dst_cls(md.parameters(), lr=0.5)
    set_optimizer_state_dict(md, dst, osd)
    assert dst.param_groups[0]["lr"] == 0.01
    assert_same_state(src, dst)
    _train(ms, src, 3, start=3)
    _train(md, dst, 3, start=3)
    _assert_models_equal(md, ms)


def test_distributed_checkpoint_keeps_non_per_parameter_state():
    # set_optimizer_state_dict first runs one step with zero grads and lr=0 on a fresh optimizer;
    # a ready-made transform has no 'lr' in its groups, so that step must be a no-op by itself
    # (Adam with zero grads is; weight decay would not be): see the adapters' docs.
    def make(model):
        t = fo.inject_hyperparams(fo.adam)(lr=lambda c: 0.01 / (1 + c), betas=(0.8, 0.9))
        return fo.adapters.FunctionalOptimizer(model.parameters(), t)

    ms = _model()
    src = make(ms)
    _train(ms, src, 3)
    osd = copy.deepcopy(get_optimizer_state_dict(ms, src))
    md = _model(1)
    md.load_state_dict(ms.state_dict())
    dst = make(md)
    set_optimizer_state_dict(md, dst, osd)
    _train(ms, src, 3, start=3)
    _train(md, dst, 3, start=3)
    _assert_models_equal(md, ms)


def test_hooks_run_in_torch_order():
    calls: list[str] = []
    p = torch.nn.Parameter(torch.ones(2))
    opt = fo.adapters.SGD([p], lr=0.1)
    handles = [
        register_optimizer_step_pre_hook(lambda o, a, k: calls.append("global_pre")),
        register_optimizer_step_post_hook(lambda o, a, k: calls.append("global_post")),
        opt.register_step_pre_hook(lambda o, a, k: calls.append("pre")),
        opt.register_step_post_hook(lambda o, a, k: calls.append("post")),
        opt.register_state_dict_pre_hook(lambda o: calls.append("sd_pre")),
        opt.register_state_dict_post_hook(lambda o, sd: calls.append("sd_post")),
        opt.register_load_state_dict_pre_hook(lambda o, sd: calls.append("load_pre")),
        opt.register_load_state_dict_post_hook(lambda o: calls.append("load_post")),
    ]
    try:
        p.grad = torch.ones(2)
        opt.step()
        opt.load_state_dict(opt.state_dict())
    finally:
        for h in handles:
            h.remove()
    assert calls == ["global_pre", "pre", "post", "global_post", "sd_pre", "sd_post", "load_pre", "load_post"]


def test_step_pre_hook_can_inject_a_closure():
    p = torch.nn.Parameter(torch.ones(2))
    opt = fo.adapters.Adam([p])
    opt.register_step_pre_hook(lambda o, a, k: (a, {"closure": lambda: torch.tensor(7.0)}))
    p.grad = torch.ones(2)
    assert opt.step().item() == 7.0


def test_closure_is_called_with_grad_enabled_and_its_loss_returned():
    m = _model()
    opt = fo.adapters.SGD(m.parameters(), lr=0.1, momentum=0.9)
    seen = []

    def closure():
        seen.append(torch.is_grad_enabled())
        opt.zero_grad()
        loss = _loss(m, 0)
        loss.backward()
        return loss

    with torch.no_grad():
        loss = opt.step(closure)
    assert seen == [True] and loss.requires_grad


@pytest.mark.parametrize("how", ["deepcopy", "pickle"])
def test_deepcopy_and_pickle_continue_identically(how):
    m = _model()
    opt = fo.adapters.NAdam(m.parameters(), lr=0.01)
    _train(m, opt, 2)
    if how == "deepcopy":
        m2, opt2 = copy.deepcopy((m, opt))
    else:
        m2, opt2 = pickle.loads(pickle.dumps((m, opt)))
    assert type(opt2) is fo.adapters.NAdam and opt2.defaults == opt.defaults
    assert opt2.param_groups[0]["params"][0] is next(m2.parameters())
    _train(m, opt, 3, start=2)
    _train(m2, opt2, 3, start=2)
    _assert_models_equal(m2, m)


def test_generic_factory_optimizer_pickles_and_reads_group_hyperparameters_each_step():
    mt, mf = _model(), _model()
    ot = torch.optim.AdamW(mt.parameters(), lr=0.01, weight_decay=0.1, foreach=False)
    of = fo.adapters.FunctionalOptimizer(mf.parameters(), fo.adamw, lr=0.01, weight_decay=0.1)
    assert of.defaults == {
        "lr": 0.01,
        "weight_decay": 0.1,
        "betas": (0.9, 0.999),
        "eps": 1e-8,
        "amsgrad": False,
        "maximize": False,
        "differentiable": False,
        "state_dtype": None,  # fo.adamw's own option (bfloat16 moments), a group key like the others
    }
    _train(mt, ot, 2)
    _train(mf, of, 2)
    for o in (ot, of):  # hyperparameters are read from the groups at every step
        o.param_groups[0]["weight_decay"] = 0.5
        o.param_groups[0]["betas"] = (0.8, 0.99)
        o.param_groups[0]["maximize"] = True
    _train(mt, ot, 3, start=2)
    _train(mf, of, 3, start=2)
    _assert_models_equal(mf, mt)
    assert pickle.loads(pickle.dumps(of)).defaults == of.defaults


def test_generic_transform_equals_the_pure_functional_loop():
    transform = fo.chain(fo.clip_by_global_norm(0.5), fo.scale_by_adam(), fo.scale_by_learning_rate(0.01))
    m = _model()
    opt = fo.adapters.FunctionalOptimizer(m.parameters(), transform)
    params = {n: p.detach().clone() for n, p in _model().named_parameters()}
    state = transform.init(params)
    func_model = _model()
    for step in range(4):
        _train(m, opt, 1, start=step)
        grads = torch.func.grad(
            lambda ps, s=step: (
                (torch.func.functional_call(func_model, ps, (_batch(s)[0],)) - _batch(s)[1]) ** 2
            ).mean()
        )(params)
        updates, state = transform.update(grads, state, params)
        params = fo.apply_updates(params, updates)
    for n, p in m.named_parameters():
        torch.testing.assert_close(p.detach(), params[n])
    assert set(opt.state[next(m.parameters())]) == {"step", "exp_avg", "exp_avg_sq"}


def test_named_parameters_zero_grad_and_add_param_group_like_torch():
    mt, mf = _model(), _model()
    ot = torch.optim.RMSprop(list(mt.named_parameters())[:2], lr=0.01, foreach=False)
    of = fo.adapters.RMSprop(list(mf.named_parameters())[:2], lr=0.01)
    assert of.param_groups[0]["param_names"] == ["0.weight", "0.bias"]
    ot.add_param_group({"params": list(mt.named_parameters())[2:], "lr": 0.05, "momentum": 0.5})
    of.add_param_group({"params": list(mf.named_parameters())[2:], "lr": 0.05, "momentum": 0.5})
    _train(mt, ot, 3)
    _train(mf, of, 3)
    _assert_models_equal(mf, mt)
    assert of.state_dict()["param_groups"][1]["param_names"] == ["2.weight", "2.bias"]
    assert_same_state(ot, of)
    g = next(mf.parameters()).grad
    of.zero_grad(set_to_none=False)
    assert next(mf.parameters()).grad is g and not g.any()
    of.zero_grad()
    assert all(p.grad is None for p in mf.parameters())


def test_none_grads_create_no_state_and_do_not_count():
    a, b = torch.nn.Parameter(torch.ones(2)), torch.nn.Parameter(torch.ones(3))
    opt = fo.adapters.Adam([a, b])
    opt.step()
    assert len(opt.state) == 0
    a.grad = torch.ones(2)
    opt.step()
    opt.step()
    assert opt.state[a]["step"].item() == 2 and b not in opt.state


def test_adagrad_state_is_created_eagerly_with_the_constructor_accumulator_like_torch():
    a, b = torch.nn.Parameter(torch.ones(2)), torch.nn.Parameter(torch.ones(3))
    t = torch.optim.Adagrad(
        [{"params": [a]}, {"params": [b], "initial_accumulator_value": 5.0}], initial_accumulator_value=0.5
    )
    f = fo.adapters.Adagrad(
        [{"params": [a]}, {"params": [b], "initial_accumulator_value": 5.0}], initial_accumulator_value=0.5
    )
    assert_same_state(t, f)
    assert f.state[b]["sum"][0].item() == 0.5


def test_implementation_flags():
    p = torch.nn.Parameter(torch.ones(2))
    with pytest.raises(RuntimeError, match="`fused` and `foreach` cannot be `True` together"):
        fo.adapters.Adam([p], fused=True, foreach=True)
    with pytest.raises(RuntimeError, match="`fused` does not support `differentiable`"):
        fo.adapters.SGD([p], fused=True, differentiable=True)
    with pytest.raises(ValueError, match="lr as a Tensor is not supported"):
        fo.adapters.Adam([p], lr=torch.tensor(0.1), foreach=True)
    # foreach / capturable select nothing: the same numbers come out; fused=True runs torch's
    # fused kernel: torch.optim.Adam(fused=True)'s numbers (tests/adapters/test_fused_dropins.py)
    outs = []
    for cls, flags in (
        (fo.adapters.Adam, {}),
        (fo.adapters.Adam, {"foreach": True}),
        (fo.adapters.Adam, {"capturable": True}),
        (torch.optim.Adam, {"foreach": False}),
        (fo.adapters.Adam, {"fused": True}),
        (torch.optim.Adam, {"fused": True}),
    ):
        q = torch.nn.Parameter(torch.linspace(-1, 1, 5))
        opt = cls([q], lr=0.1, **flags)
        for _ in range(3):
            q.grad = q.detach() ** 2
            opt.step()
        outs.append(q.detach().clone())
    for o in outs[1:4]:
        assert torch.equal(o, outs[0])
    assert torch.equal(outs[4], outs[5])


def test_differentiable_step_is_differentiable_like_torch():
    def run(cls):
        w = torch.tensor([1.0, -2.0, 0.5], requires_grad=True)
        p = w * 1.0  # non-leaf "parameter", as torch's differentiable mode expects
        opt = cls([p], lr=0.1, weight_decay=0.1, differentiable=True)
        for _ in range(2):
            p.grad = p.detach() * 2 + w  # the gradient depends on w too
            opt.step()
        (p**2).sum().backward()
        return p.detach(), w.grad

    (pt, gt), (pf, gf) = run(torch.optim.Adam), run(fo.adapters.Adam)
    assert gf is not None
    torch.testing.assert_close(pf, pt)
    torch.testing.assert_close(gf, gt)


def test_fused_learning_rate_matches_torch_sgd_and_keeps_the_state_structure():
    # the adapter applies ``p.add_(u, alpha=-lr)`` for chains ending in scale_by_learning_rate
    from functional_optim import adapters

    torch.manual_seed(0)
    ps = [torch.nn.Parameter(torch.randn(5, 3)) for _ in range(3)]
    qs = [torch.nn.Parameter(p.detach().clone()) for p in ps]
    ours = adapters.SGD(ps, lr=0.1, momentum=0.9, weight_decay=0.01)
    ref = torch.optim.SGD(qs, lr=0.1, momentum=0.9, weight_decay=0.01, foreach=True)
    for _ in range(5):
        for p, q in zip(ps, qs, strict=True):
            g = torch.randn_like(p)
            p.grad, q.grad = g.clone(), g.clone()
        ours.step()
        ref.step()
    for p, q in zip(ps, qs, strict=True):
        torch.testing.assert_close(p, q, rtol=1e-6, atol=1e-7)
        torch.testing.assert_close(ours.state[p]["momentum_buffer"], ref.state[q]["momentum_buffer"])
    # the functional path (no fusion) gives the same numbers
    f = adapters.FunctionalOptimizer([torch.nn.Parameter(torch.ones(2))], fo.scale_by_learning_rate(0.5))
    f.param_groups[0]["params"][0].grad = torch.ones(2)
    f.step()
    torch.testing.assert_close(f.param_groups[0]["params"][0].detach(), torch.full((2,), 0.5))
