"""The transforms of the wrappers / parameter-free family, for the contract tests."""

from __future__ import annotations

from collections.abc import Callable

import functional_optim as fo

TRANSFORMS: dict[str, Callable[[], fo.GradientTransformation]] = {
    "cautious": lambda: fo.chain(fo.cautious(fo.scale_by_adam()), fo.scale_by_learning_rate(0.1)),
    "cautious_weight_decay": lambda: fo.chain(fo.scale_by_adam(), fo.add_cautious_decayed_weights(0.1)),
    "scale_by_mars": lambda: fo.scale_by_mars(0.9, 0.5),
    "graft": lambda: fo.graft(fo.scale_by_adam(), fo.scale_by_bias_corrected_rms()),
    "clip_by_rms": lambda: fo.clip_by_rms(0.5),
    "scale_by_bias_corrected_rms": lambda: fo.scale_by_bias_corrected_rms(),
    "schedule_free_adamw": lambda: fo.schedule_free_adamw(lr=0.1, warmup_steps=2, weight_decay=0.1),
    "schedule_free_sgd": lambda: fo.schedule_free_sgd(lr=0.1, weight_decay=0.1),
    "prodigy": lambda: fo.prodigy(weight_decay=0.1),
    "prodigy_no_momentum": lambda: fo.prodigy(betas=(0.0, 0.99), use_bias_correction=False),
    "dadapt_adamw": lambda: fo.dadapt_adamw(weight_decay=0.1),
    "dadapt_adam_l2": lambda: fo.dadapt_adam(weight_decay=0.1, use_bias_correction=True),
    "dog": lambda: fo.dog(weight_decay=0.01),
    "mars_adamw": lambda: fo.mars_adamw(),
    "cautious_adamw": lambda: fo.cautious_adamw(cautious_weight_decay=True),
}
