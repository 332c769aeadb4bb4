"""``clip_by_rms``: cap each update tensor's root-mean-square (Adafactor's update clipping)."""

from __future__ import annotations

from functional_optim.core import GradientTransformation, Hyperparam
from functional_optim.hyperparams import schedulable
from functional_optim.transforms.clip_by_block_rms import clip_by_block_rms

__all__ = ["clip_by_rms"]


@schedulable("threshold")
def clip_by_rms(threshold: Hyperparam = 1.0) -> GradientTransformation:
    r"""Update clipping by RMS, per tensor: Adafactor's $d$ (Shazeer & Stern, 2018), the
    clipping StableAdamW applies to AdamW's update (Wortsman et al., 2023).

    $$
    u = \frac{g}{\max\big(1, \operatorname{rms}(g)/d\big)},\qquad
    \operatorname{rms}(g) = \sqrt{\operatorname{mean}(g^2)}
    $$

    The same maths as [`clip_by_block_rms`][], with Adafactor's default $d = 1$; place it
    after the rule whose update it clips (``chain(scale_by_adam(), clip_by_rms(1.0), ...)``).

    Args:
      threshold: $d$ (> 0; float, 0-dim tensor or schedule).

    Example:
      >>> opt = fo.clip_by_rms(1.0)
      >>> updates, _ = opt.update({"w": torch.full((4,), 3.0)}, opt.init({"w": torch.zeros(4)}))
      >>> updates["w"].tolist()
      [1.0, 1.0, 1.0, 1.0]

    References:
      Shazeer & Stern, "Adafactor: Adaptive Learning Rates with Sublinear Memory Cost", ICML 2018.
      Wortsman et al., "Stable and low-precision training for large-scale vision-language
      models", NeurIPS 2023.
    """
    return clip_by_block_rms(threshold)
