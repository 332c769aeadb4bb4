"""Schedule-Free AdamW and SGD (the ``schedulefree`` package's names and defaults)."""

from __future__ import annotations

from functional_optim import _validation
from functional_optim.core import GradientTransformation, Hyperparam, chain, identity
from functional_optim.hyperparams import schedulable
from functional_optim.transforms.bias_corrected_rms import scale_by_bias_corrected_rms
from functional_optim.transforms.schedule_free import schedule_free
from functional_optim.transforms.weight_decay import add_decayed_weights

__all__ = ["schedule_free_adamw", "schedule_free_sgd"]


@schedulable("lr", "betas", "eps", "weight_decay", "r", "weight_lr_power")
def schedule_free_adamw(
    lr: Hyperparam = 0.0025,
    betas: tuple[Hyperparam, Hyperparam] = (0.9, 0.999),
    eps: Hyperparam = 1e-8,
    weight_decay: Hyperparam = 0,
    warmup_steps: int = 0,
    r: Hyperparam = 0.0,
    weight_lr_power: Hyperparam = 2.0,
) -> GradientTransformation:
    r"""Schedule-Free AdamW, as ``schedulefree.AdamWScheduleFree`` (arguments and defaults).

    ```text
    schedule_free(chain(scale_by_bias_corrected_rms(β2, eps),   # g / (sqrt(v/bc2) + eps)
                        add_decayed_weights(weight_decay)),     # + wd·y (at y)
                  lr, β1, warmup_steps, r, weight_lr_power)
    ```

    The parameters the transform updates are the training point $y$; evaluate (and save a
    model for inference) at [`fo.schedule_free_eval_params`][functional_optim.schedule_free_eval_params].

    Example:
      >>> opt = fo.schedule_free_adamw(lr=1e-3, warmup_steps=10)
      >>> params = {"w": torch.ones(2)}
      >>> updates, state = opt.update({"w": torch.ones(2)}, opt.init(params), params)

    References:
      Defazio et al., "The Road Less Scheduled", NeurIPS 2024.
    """
    _validation.learning_rate(lr)
    _validation.betas(betas)
    _validation.nonnegative("weight_decay", weight_decay, "weight_decay value")
    base = chain(scale_by_bias_corrected_rms(betas[1], eps), add_decayed_weights(weight_decay))
    return schedule_free(base, lr, betas[0], warmup_steps, r, weight_lr_power)


@schedulable("lr", "momentum", "weight_decay", "r", "weight_lr_power")
def schedule_free_sgd(
    lr: Hyperparam = 1.0,
    momentum: Hyperparam = 0.9,
    weight_decay: Hyperparam = 0,
    warmup_steps: int = 0,
    r: Hyperparam = 0.0,
    weight_lr_power: Hyperparam = 2.0,
) -> GradientTransformation:
    r"""Schedule-Free SGD, as ``schedulefree.SGDScheduleFree`` (arguments and defaults).

    ```text
    schedule_free(add_decayed_weights(weight_decay) or identity(), lr, momentum,
                  warmup_steps, r, weight_lr_power)
    ```

    Example:
      >>> opt = fo.schedule_free_sgd(lr=0.1)
      >>> params = {"w": torch.ones(2)}
      >>> updates, state = opt.update({"w": torch.ones(2)}, opt.init(params), params)
      >>> fo.apply_updates(params, updates)["w"].tolist()  # first step: y - lr·g (c = 1, z = y)
      [0.8999999761581421, 0.8999999761581421]

    References:
      Defazio et al., "The Road Less Scheduled", NeurIPS 2024.
    """
    _validation.learning_rate(lr)
    _validation.nonnegative("weight_decay", weight_decay, "weight_decay value")
    base = add_decayed_weights(weight_decay) if _validation.value_of(weight_decay) != 0 else identity()
    return schedule_free(base, lr, momentum, warmup_steps, r, weight_lr_power)
