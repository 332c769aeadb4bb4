"""Common first-hour mistakes get messages that say what to do instead."""

from __future__ import annotations

import pytest
import torch

import functional_optim as fo


def test_init_with_a_parameter_generator_asks_for_a_list_or_dict() -> None:
    model = torch.nn.Linear(3, 2)
    with pytest.raises(TypeError, match=r"got a generator.*list\(model\.parameters\(\)\)"):
        fo.adamw().init(model.parameters())


def test_init_with_a_list_of_parameters_still_works() -> None:
    model = torch.nn.Linear(3, 2)
    state = fo.adamw().init([p.detach() for p in model.parameters()])
    assert len(state[0].exp_avg) == 2


@pytest.mark.parametrize(
    ("factory", "wrong", "right"),
    [
        (fo.adamw, "learning_rate", "lr"),
        (fo.sgd, "learning_rate", "lr"),
        (fo.rmsprop, "decay", "alpha"),
        (fo.scale_by_learning_rate, "lr", "learning_rate"),
    ],
)
def test_an_optax_keyword_names_the_function_and_suggests_torchs_name(factory, wrong, right) -> None:
    with pytest.raises(TypeError) as info:
        factory(**{wrong: 0.1})
    message = str(info.value)
    assert f"{factory.__name__}()" in message
    assert f"{wrong!r} (did you mean {right!r}?)" in message


def test_an_unrelated_unknown_keyword_lists_the_parameters() -> None:
    with pytest.raises(
        TypeError, match=r"adam\(\) got unexpected keyword argument\(s\) 'zzz'; its parameters"
    ):
        fo.adam(zzz=1)


def test_a_wrong_positional_call_keeps_torchs_message_with_the_function_name() -> None:
    with pytest.raises(TypeError, match=r"^adam\(\): too many positional arguments"):
        fo.adam(1e-3, (0.9, 0.999), 1e-8, 0.0, False, True)


def _tuple_state_rule_chain() -> fo.GradientTransformation:
    """A custom rule whose init returns a plain tuple (not a NamedTuple)."""
    from functional_optim import ops, rules
    from functional_optim.transforms import _steps

    def step(grads, fields, _, *, in_place):
        bufs, steps = fields
        steps = _steps.increment(steps, in_place=in_place)
        bufs = ops.add_(ops.mul(bufs, 0.5, in_place=in_place), grads)
        return rules.RuleStep([bufs, steps], [rules.Term(bufs, None, rules.unscaled)])

    def init(params):
        return (fo.tree.map(torch.zeros_like, params), _steps.zeros(params))

    rule = rules.Rule("my_rule", step, lambda st: [st[0], st[1]], lambda new: (new[0], new[1]))
    return fo.chain(rules.rule_transform(init, rule), fo.scale_by_learning_rate(0.1))


def test_a_custom_rule_with_a_plain_tuple_state_is_refused_at_init_on_both_paths() -> None:
    """The pure update names a missing gradient's fields by the NamedTuple's fields: a plain tuple
    is refused when the state is made, by the pure API and by the adapter alike (which would
    otherwise run it until a gradient goes missing, then fail with torch's list-length error)."""
    tx = _tuple_state_rule_chain()
    message = r"my_rule: expected the transform's NamedTuple state, got a tuple \(its init must return"
    with pytest.raises(TypeError, match=message):
        tx.init([torch.ones(3)])
    params = [torch.ones(3, requires_grad=True) for _ in range(3)]
    for p in params:
        p.grad = torch.ones(3)
    opt = fo.adapters.FunctionalOptimizer(params, tx)
    with pytest.raises(TypeError, match=message):
        opt.step()
    assert all(torch.equal(p.detach(), torch.ones(3)) for p in params) and not opt.state
