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
