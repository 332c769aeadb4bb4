"""AdaBelief as a composition of transforms (adabelief-pytorch's ``AdaBelief``)."""

from __future__ import annotations

from functional_optim import _validation
from functional_optim.core import GradientTransformation, Hyperparam, chain
from functional_optim.hyperparams import schedulable
from functional_optim.transforms.belief import scale_by_belief
from functional_optim.transforms.scaling import scale_by_learning_rate
from functional_optim.transforms.weight_decay import add_decayed_weights

__all__ = ["adabelief"]


@schedulable("lr", "betas", "eps", "weight_decay")
def adabelief(
    lr: Hyperparam = 1e-3,
    betas: tuple[Hyperparam, Hyperparam] = (0.9, 0.999),
    eps: Hyperparam = 1e-16,
    weight_decay: Hyperparam = 0.0,
    amsgrad: bool = False,
    weight_decouple: bool = True,
    fixed_decay: bool = False,
    rectify: bool = True,
    degenerated_to_sgd: bool = True,
) -> GradientTransformation:
    r"""AdaBelief, with adabelief-pytorch's (0.2) arguments and defaults.

    ```text
    chain(add_decayed_weights(weight_decay)   # L2, unless weight_decouple
          scale_by_belief(β1, β2, eps, amsgrad, rectify, degenerated_to_sgd),
          add_decayed_weights(weight_decay, decoupled=True)   # p ← p - lr·wd·p (weight_decouple)
          scale_by_learning_rate(lr))
    ```

    ``rectify=True`` (the package's default) is RAdam's rectification; the paper's plain
    AdaBelief is ``rectify=False``. ``fixed_decay=True`` (decay not scaled by ``lr``) is not
    supported.

    Args:
      lr: learning rate.
      betas: ``(β1, β2)``.
      eps: added to the belief ``s_t`` and to the denominator.
      weight_decay: decoupled (``weight_decouple``) or L2 decay.
      amsgrad: running maximum of the belief.
      weight_decouple: AdamW-style decay.
      fixed_decay: must be ``False``.
      rectify: RAdam's rectification.
      degenerated_to_sgd: with ``rectify``, momentum-SGD steps while the rectifier is undefined.

    Examples:
        >>> opt = fo.adabelief(lr=0.1, rectify=False)
        >>> params = [torch.zeros(2)]
        >>> opt.update([torch.tensor([2.0, -1.0])], opt.init(params), params)[0][0]
        tensor([-0.1111,  0.1111])

    References:
      Zhuang et al., "AdaBelief Optimizer: Adapting Stepsizes by the Belief in Observed
      Gradients", NeurIPS 2020.
    """
    _validation.learning_rate(lr)
    _validation.betas(betas)
    _validation.nonnegative("weight_decay", weight_decay, "weight_decay value")
    if fixed_decay:
        raise ValueError(f"adabelief: fixed_decay={fixed_decay!r} is not supported (use fixed_decay=False)")
    decay = add_decayed_weights(weight_decay, decoupled=weight_decouple)
    return chain(
        *([] if weight_decouple else [decay]),
        scale_by_belief(
            betas[0], betas[1], eps, amsgrad=amsgrad, rectify=rectify, degenerated_to_sgd=degenerated_to_sgd
        ),
        *([decay] if weight_decouple else []),
        scale_by_learning_rate(lr),
    )
