"""Reference cases of the composable wrappers (Schedule-Free, MARS, cautious masking) and the
parameter-free optimizers (Prodigy, D-Adaptation AdamW, DoG).

References: the authors' PyTorch packages (``schedulefree``, ``prodigyopt``, ``dadaptation``,
``dog-optimizer``), optax.contrib (on CPU with jax), and pytorch-optimizer for MARS and cautious
masking (the authors' MARS and C-Optim code is not on PyPI; ours follows it, see the notes).

Tolerances: float64 ``1e-10`` where only the order of operations differs. The parameter-free
methods estimate a global step size ``d`` from dot products over all parameters and ``d`` feeds
back into the next estimate, which amplifies rounding differences. Without weight decay they
match to a few float32 ulps; with decoupled weight decay the references apply the decay as a
separate in-place ``p.add_(p, alpha=-wd·dlr)`` before the step (two roundings) and ours adds
one update ``-dlr·(m/denom + wd·p)``: one ulp at step 1, ~1e-3 (float32) after 100 steps, ~1e-12
(float64). Hence the ``-decay`` cases' tolerances ``1e-2`` (float32) and ``1e-10`` (float64).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

import functional_optim as fo
from tests.reference._framework import ReferenceCase, mlp_problem, run_optax, run_pure, run_torch

PARAM_FREE_ATOL = {torch.float32: 1e-4, torch.float64: 1e-10}
DECAY_ATOL = {torch.float32: 1e-2, torch.float64: 1e-10}
DECAY_NOTE = "decay as one update vs the package's in-place p.add_(p, -wd·dlr): ulps, amplified by d"
PO_MARS_ATOL = {torch.float32: 1e-5, torch.float64: 1e-7}
"""pytorch-optimizer's MARS takes ``sqrt(v + 1e-15)``: ~5e-9 apart in float64 from step 1."""


def _vs_torch(ours: Callable[[], fo.GradientTransformation], ref: Callable[[list], Any]):
    def run(dtype: torch.dtype, steps: int):
        problem = mlp_problem(dtype)
        return run_pure(ours(), problem, steps), run_torch(ref, problem, steps)

    return run


def _vs_optax(ours: Callable[[], fo.GradientTransformation], ref: Callable[[], Any]):
    def run(dtype: torch.dtype, steps: int):
        problem = mlp_problem(dtype)
        return run_pure(ours(), problem, steps), run_optax(ref, problem, steps)

    return run


def _dropin_vs_torch(ours: Callable[[list], Any], ref: Callable[[list], Any]):
    def run(dtype: torch.dtype, steps: int):
        problem = mlp_problem(dtype)
        return run_torch(ours, problem, steps), run_torch(ref, problem, steps)

    return run


def _train_mode(opt: Any) -> Any:
    opt.train()
    return opt


def _sf():
    import schedulefree

    return schedulefree


class _Jitted:
    """optax.contrib's transforms with their ``update`` jitted (the eager jax ops take ~15 s per
    case on a small CPU; XLA's fusion changes only the last bits)."""

    def __getattr__(self, name: str) -> Callable[..., Any]:
        import jax
        import optax
        import optax.contrib

        def make(*args: Any, **kwargs: Any) -> Any:
            tx = getattr(optax.contrib, name)(*args, **kwargs)
            return optax.GradientTransformation(tx.init, jax.jit(tx.update))

        return make


def _contrib() -> _Jitted:
    return _Jitted()


def _po():
    import pytorch_optimizer

    return pytorch_optimizer


OPTAX = ("jax", "optax")
SF_ADAMW = dict(lr=1e-2, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01, warmup_steps=10)
SF_SGD = dict(lr=0.05, momentum=0.9, weight_decay=0.01, warmup_steps=10)
PRODIGY = dict(lr=1.0)
DADAPT = dict(lr=1.0)
DECAY = dict(weight_decay=0.01)
DOG = dict(reps_rel=1e-4, weight_decay=0.001)
MARS = dict(lr=3e-3, betas=(0.95, 0.99), gamma=0.025, weight_decay=0.01, eps=0.0)

CASES: list[ReferenceCase] = [
    # ------------------------------------------------------------------ Schedule-Free
    ReferenceCase(
        "schedule_free_adamw",
        "schedulefree.AdamWScheduleFree 1.4",
        ("schedulefree",),
        _vs_torch(
            lambda: fo.schedule_free_adamw(**SF_ADAMW),
            lambda ps: _train_mode(_sf().AdamWScheduleFree(ps, **SF_ADAMW)),
        ),
    ),
    ReferenceCase(
        "schedule_free_sgd",
        "schedulefree.SGDScheduleFree 1.4",
        ("schedulefree",),
        _vs_torch(
            lambda: fo.schedule_free_sgd(**SF_SGD),
            lambda ps: _train_mode(_sf().SGDScheduleFree(ps, **SF_SGD)),
        ),
    ),
    ReferenceCase(
        "schedule_free_adamw-optax",
        "optax.contrib.schedule_free_adamw",
        OPTAX,
        _vs_optax(
            lambda: fo.schedule_free_adamw(lr=1e-2, weight_decay=0.01),
            lambda: _contrib().schedule_free_adamw(1e-2, weight_decay=0.01),
        ),
        note="no warmup: optax's warmup is lr·k/W from k = 0, the package's lr·(k+1)/W",
    ),
    # ------------------------------------------------------------------ parameter-free
    ReferenceCase(
        "prodigy",
        "prodigyopt.Prodigy 1.1",
        ("prodigyopt",),
        _vs_torch(lambda: fo.prodigy(**PRODIGY), lambda ps: __import__("prodigyopt").Prodigy(ps, **PRODIGY)),
        atol=PARAM_FREE_ATOL,
    ),
    ReferenceCase(
        "prodigy-decay",
        "prodigyopt.Prodigy 1.1",
        ("prodigyopt",),
        _vs_torch(
            lambda: fo.prodigy(**PRODIGY, **DECAY),
            lambda ps: __import__("prodigyopt").Prodigy(ps, **PRODIGY, **DECAY),
        ),
        atol=DECAY_ATOL,
        note=DECAY_NOTE,
    ),
    ReferenceCase(
        "prodigy-optax",
        "optax.contrib.prodigy",
        OPTAX,
        _vs_optax(lambda: fo.prodigy(lr=1.0, use_bias_correction=True), lambda: _contrib().prodigy(1.0)),
        atol=PARAM_FREE_ATOL,
    ),
    ReferenceCase(
        "dadapt_adamw",
        "dadaptation.DAdaptAdam(decouple=True) 3.2",
        ("dadaptation",),
        _vs_torch(
            lambda: fo.dadapt_adamw(**DADAPT),
            lambda ps: __import__("dadaptation").DAdaptAdam(ps, decouple=True, **DADAPT),
        ),
        atol=PARAM_FREE_ATOL,
    ),
    ReferenceCase(
        "dadapt_adamw-decay",
        "dadaptation.DAdaptAdam(decouple=True) 3.2",
        ("dadaptation",),
        _vs_torch(
            lambda: fo.dadapt_adamw(**DADAPT, **DECAY),
            lambda ps: __import__("dadaptation").DAdaptAdam(ps, decouple=True, **DADAPT, **DECAY),
        ),
        atol=DECAY_ATOL,
        note=DECAY_NOTE,
    ),
    ReferenceCase(
        "dadapt_adamw-optax",
        "optax.contrib.dadapt_adamw",
        OPTAX,
        _vs_optax(
            lambda: fo.dadapt_adamw(lr=1.0, use_bias_correction=True),
            lambda: _contrib().dadapt_adamw(1.0),
        ),
        atol=PARAM_FREE_ATOL,
    ),
    ReferenceCase(
        "dog",
        "dog-optimizer DoG 1.0.3",
        ("dog",),
        _vs_torch(lambda: fo.dog(**DOG), lambda ps: __import__("dog").DoG(ps, **DOG)),
        atol=PARAM_FREE_ATOL,
    ),
    ReferenceCase(
        "dog-optax",
        "optax.contrib.dog",
        OPTAX,
        _vs_optax(lambda: fo.dog(reps_rel=1e-4), lambda: _contrib().dog(init_step=("heuristic", 1e-4))),
        atol=PARAM_FREE_ATOL,
    ),
    # ------------------------------------------------------------------ MARS / cautious
    ReferenceCase(
        "mars_adamw",
        "pytorch_optimizer.MARS 4.1",
        ("pytorch_optimizer",),
        _vs_torch(
            lambda: fo.mars_adamw(optimize_1d=True, **MARS),
            lambda ps: _po().MARS(ps, optimize_1d=True, **MARS),
        ),
        atol=PO_MARS_ATOL,
        note="eps=0 (p-o adds eps before the bias correction, the authors after); p-o: sqrt(v+1e-15)",
    ),
    ReferenceCase(
        "mars_adamw-1d_adamw",
        "pytorch_optimizer.MARS 4.1",
        ("pytorch_optimizer",),
        _vs_torch(
            lambda: fo.mars_adamw(**MARS, lr_1d=1e-3, weight_decay_1d=0.05),
            lambda ps: _po().MARS(ps, **MARS, lr_1d=1e-3, weight_decay_1d=0.05),
        ),
        atol=PO_MARS_ATOL,
        note="1-D tensors by AdamW (betas_1d, lr_1d, weight_decay_1d); eps=0 and 1e-15 as above",
    ),
    ReferenceCase(
        "cautious-mars",
        "pytorch_optimizer.MARS(cautious=True)",
        ("pytorch_optimizer",),
        _vs_torch(
            lambda: fo.chain(
                fo.cautious(
                    fo.chain(fo.scale_by_mars(0.95, 0.025), fo.scale_by_adam(0.95, 0.99, 0.0)),
                    rescale="numel",
                ),
                fo.add_decayed_weights(0.01),
                fo.scale_by_learning_rate(3e-3),
            ),
            lambda ps: _po().MARS(ps, optimize_1d=True, cautious=True, **MARS),
        ),
        atol=PO_MARS_ATOL,
        note="mask m vs raw g, rescale numel/(sum+1) (the paper's v1); eps=0 and 1e-15 as above",
    ),
]

# ---------------------------------------------------------------------- the drop-in classes
CASES += [
    ReferenceCase(
        "dropin-AdamWScheduleFree",
        "schedulefree.AdamWScheduleFree 1.4",
        ("schedulefree",),
        _dropin_vs_torch(
            lambda ps: fo.adapters.AdamWScheduleFree(ps, **SF_ADAMW),
            lambda ps: _train_mode(_sf().AdamWScheduleFree(ps, **SF_ADAMW)),
        ),
    ),
    ReferenceCase(
        "dropin-SGDScheduleFree",
        "schedulefree.SGDScheduleFree 1.4",
        ("schedulefree",),
        _dropin_vs_torch(
            lambda ps: fo.adapters.SGDScheduleFree(ps, **SF_SGD),
            lambda ps: _train_mode(_sf().SGDScheduleFree(ps, **SF_SGD)),
        ),
    ),
    ReferenceCase(
        "dropin-Prodigy",
        "prodigyopt.Prodigy 1.1",
        ("prodigyopt",),
        _dropin_vs_torch(
            lambda ps: fo.adapters.Prodigy(ps, **PRODIGY),
            lambda ps: __import__("prodigyopt").Prodigy(ps, **PRODIGY),
        ),
        atol=PARAM_FREE_ATOL,
    ),
    ReferenceCase(
        "dropin-DAdaptAdam",
        "dadaptation.DAdaptAdam(decouple=True) 3.2",
        ("dadaptation",),
        _dropin_vs_torch(
            lambda ps: fo.adapters.DAdaptAdam(ps, decouple=True, **DADAPT),
            lambda ps: __import__("dadaptation").DAdaptAdam(ps, decouple=True, **DADAPT),
        ),
        atol=PARAM_FREE_ATOL,
    ),
    ReferenceCase(
        "dropin-DoG",
        "dog-optimizer DoG 1.0.3",
        ("dog",),
        _dropin_vs_torch(lambda ps: fo.adapters.DoG(ps, **DOG), lambda ps: __import__("dog").DoG(ps, **DOG)),
        atol=PARAM_FREE_ATOL,
    ),
]
