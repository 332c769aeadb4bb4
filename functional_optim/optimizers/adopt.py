"""ADOPT as a composition of transforms (the authors' ``ADOPT``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from functional_optim import _validation
from functional_optim.core import GradientTransformation, Hyperparam, chain
from functional_optim.hyperparams import schedulable
from functional_optim.transforms.adopt import adopt_clip, scale_by_adopt
from functional_optim.transforms.scaling import scale_by_learning_rate
from functional_optim.transforms.weight_decay import add_decayed_weights

__all__ = ["adopt"]


@schedulable("lr", "betas", "eps", "weight_decay")
def adopt(
    lr: Hyperparam = 1e-3,
    betas: tuple[Hyperparam, Hyperparam] = (0.9, 0.9999),
    eps: Hyperparam = 1e-6,
    clip_lambda: Callable[[Any], Any] | None = adopt_clip,
    weight_decay: Hyperparam = 0.0,
    decouple: bool = False,
) -> GradientTransformation:
    r"""ADOPT, with the authors' arguments and defaults (iShohei220/adopt).

    ```text
    chain(add_decayed_weights(weight_decay)   # L2 (unless decouple)
          scale_by_adopt(β1, β2, eps, clip_lambda),
          add_decayed_weights(weight_decay, decoupled=True)   # p ← p - lr·wd·p (decouple)
          scale_by_learning_rate(lr))
    ```

    ``clip_lambda(t)`` is evaluated at the paper's ``t`` (1 at the first parameter update);
    see [`fo.scale_by_adopt`][functional_optim.scale_by_adopt] for the one-step shift of the authors' code.

    Args:
      lr: learning rate.
      betas: ``(β1, β2)``.
      eps: lower bound of ``sqrt(v)``.
      clip_lambda: clipping threshold ``c_t`` (``None``: no clipping).
      weight_decay: L2 penalty, or decoupled decay with ``decouple``.
      decouple: AdamW-style decay.

    Example:
      >>> opt = fo.adopt()
      >>> params = [torch.zeros(1)]
      >>> state = opt.init(params)
      >>> for g in (1.0, 1.0):  # the first gradient only initialises the second moment
      ...     updates, state = opt.update([torch.tensor([g])], state, params)
      >>> updates[0]
      tensor([-0.0001])

    References:
      Taniguchi et al., "ADOPT: Modified Adam Can Converge with Any β2 with the Optimal Rate",
      NeurIPS 2024.
    """
    _validation.learning_rate(lr)
    _validation.betas(betas)
    _validation.nonnegative("weight_decay", weight_decay, "weight_decay value")
    decay = add_decayed_weights(weight_decay, decoupled=decouple)
    return chain(
        *([] if decouple else [decay]),
        scale_by_adopt(betas[0], betas[1], eps, clip_lambda),
        *([decay] if decouple else []),
        scale_by_learning_rate(lr),
    )
