"""The dense, elementwise algorithms of functional_optim with non-default options, for tests
that must cover every algorithm (purity, grad/vmap/compile). Muon, SparseAdam and LBFGS need
special inputs and are covered by their own tests."""

from __future__ import annotations

from collections.abc import Callable

import functional_optim as fo

ELEMENTWISE: dict[str, Callable[[], fo.GradientTransformation]] = {
    "sgd": lambda: fo.sgd(lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.01),
    "sgd_dampening": lambda: fo.sgd(lr=0.1, momentum=0.9, dampening=0.3),
    "adam": lambda: fo.adam(lr=0.01, weight_decay=0.01, amsgrad=True),
    "adamw": lambda: fo.adamw(lr=0.01),
    "adamax": lambda: fo.adamax(lr=0.01, weight_decay=0.01),
    "nadam": lambda: fo.nadam(lr=0.01, weight_decay=0.01),
    "nadam_decoupled": lambda: fo.nadam(lr=0.01, weight_decay=0.01, decoupled_weight_decay=True),
    "radam": lambda: fo.radam(lr=0.01, weight_decay=0.01),
    "adagrad": lambda: fo.adagrad(lr=0.1, lr_decay=0.01, initial_accumulator_value=0.1),
    "adadelta": lambda: fo.adadelta(lr=1.0, weight_decay=0.01),
    "rmsprop": lambda: fo.rmsprop(lr=0.01, momentum=0.9, centered=True),
    "rprop": lambda: fo.rprop(lr=0.01),
    "asgd": lambda: fo.asgd(lr=0.01, t0=2),
    "adafactor": lambda: fo.adafactor(lr=0.01, weight_decay=0.01),
    "lion": lambda: fo.lion(lr=0.01, weight_decay=0.1),
    "signum": lambda: fo.signum(lr=0.01, weight_decay=0.01),
    "signum_no_momentum": lambda: fo.signum(lr=0.01, momentum=0.0),  # sign SGD
    "lars": lambda: fo.lars(lr=0.5, weight_decay=0.01, trust_coefficient=0.01, nesterov=True),
    "lamb": lambda: fo.lamb(lr=0.01, weight_decay=0.01),
    "novograd": lambda: fo.novograd(lr=0.01, weight_decay=0.01, grad_averaging=True),
    "adabelief": lambda: fo.adabelief(lr=0.01, weight_decay=0.01, amsgrad=True, rectify=False),
    "yogi": lambda: fo.yogi(lr=0.01, weight_decay=0.01),
    "adopt": lambda: fo.adopt(lr=0.01, weight_decay=0.01),
    "ademamix": lambda: fo.ademamix(lr=0.01, weight_decay=0.01),
    "adan": lambda: fo.adan(lr=0.01, weight_decay=0.02),
    "laprop": lambda: fo.laprop(lr=0.01, weight_decay=0.01, amsgrad=True),
}

# The entries whose alias the adapters run as one fused in-place step around a ``Rule``
# (``fused.plan(alias).rule`` is not ``None``): the rule's in-place step must equal its pure one.
FUSED_RULES: frozenset[str] = frozenset(
    {
        "sgd",
        "sgd_dampening",
        "adam",
        "adamw",
        "adamax",
        "nadam",
        "nadam_decoupled",
        "radam",
        "adagrad",
        "adadelta",
        "rmsprop",
        "rprop",
        "asgd",
        "lion",
        "signum",
        "signum_no_momentum",
        "adabelief",
        "yogi",
        "adopt",
        "ademamix",
        "laprop",
        "adan",
        "novograd",
        "lars",
        "lamb",
    }
)


def available() -> dict[str, Callable[[], fo.GradientTransformation]]:
    """The catalogue entries whose alias exists in this build."""
    out = {}
    for name, make in ELEMENTWISE.items():
        alias = name.split("_")[0]
        if hasattr(fo, alias):
            out[name] = make
    return out
