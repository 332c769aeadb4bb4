"""Adan as a composition of transforms (the authors' ``Adan``, sail-sg/Adan)."""

from __future__ import annotations

from functional_optim import _validation
from functional_optim.core import GradientTransformation, Hyperparam, chain
from functional_optim.hyperparams import schedulable
from functional_optim.transforms.adan import scale_by_adan
from functional_optim.transforms.clipping import clip_by_global_norm
from functional_optim.transforms.proximal_decay import scale_by_proximal_decay
from functional_optim.transforms.scaling import scale_by_learning_rate
from functional_optim.transforms.weight_decay import add_decayed_weights

__all__ = ["adan"]


@schedulable("lr", "betas", "eps", "weight_decay")
def adan(
    lr: Hyperparam = 1e-3,
    betas: tuple[Hyperparam, Hyperparam, Hyperparam] = (0.98, 0.92, 0.99),
    eps: Hyperparam = 1e-8,
    weight_decay: Hyperparam = 0.0,
    max_grad_norm: float = 0.0,
    no_prox: bool = False,
) -> GradientTransformation:
    r"""Adan, with the authors' arguments, defaults and ``β`` convention.

    ```text
    chain(clip_by_global_norm(max_grad_norm)        if max_grad_norm > 0,
          scale_by_adan(β1, β2, β3, eps),
          add_decayed_weights(weight_decay, decoupled=no_prox),
          scale_by_proximal_decay(lr, weight_decay)  unless no_prox,   # p ← (p - lr·u)/(1 + lr·wd)
          scale_by_learning_rate(lr))                                  # no_prox: p ← p - lr·(u + wd·p)
    ```

    The adapters apply both forms in place as the authors' code: the step, then
    ``p.div_(1 + lr·wd)`` (proximal), or ``p.mul_(1 - lr·wd)`` then the step (``no_prox``).

    Args:
      lr: learning rate.
      betas: ``(β1, β2, β3)`` in the code's convention (one minus the paper's).
      eps: added to the denominator.
      weight_decay: proximal (default) or decoupled (``no_prox``) decay.
      max_grad_norm: clip the gradients to this global norm first (``0``: off).
      no_prox: decoupled instead of proximal weight decay.

    Examples:
        >>> opt = fo.adan(lr=0.1)
        >>> params = [torch.zeros(1)]
        >>> opt.update([torch.tensor([1.0])], opt.init(params), params)[0][0]
        tensor([-0.1000])

    References:
      Xie et al., "Adan: Adaptive Nesterov Momentum Algorithm for Faster Optimizing Deep Models",
      TPAMI 2024.
    """
    _validation.learning_rate(lr)
    if not isinstance(betas, tuple | list) or len(betas) != 3:
        raise ValueError(f"adan: betas must be (beta1, beta2, beta3), got {betas!r}")
    _validation.nonnegative("max_grad_norm", max_grad_norm)
    return chain(
        *([clip_by_global_norm(max_grad_norm)] if max_grad_norm > 0 else []),
        scale_by_adan(betas[0], betas[1], betas[2], eps),
        add_decayed_weights(weight_decay, decoupled=no_prox),
        *([] if no_prox else [scale_by_proximal_decay(lr, weight_decay)]),
        scale_by_learning_rate(lr),
    )
