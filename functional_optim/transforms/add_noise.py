"""``add_noise``: annealed Gaussian gradient noise (Neelakantan et al., 2015)."""

from __future__ import annotations

from typing import Any, NamedTuple

import torch
from torch import Tensor

from functional_optim import _validation, ops, tree
from functional_optim.core import GradientTransformation, Hyperparam, Params, Updates
from functional_optim.hyperparams import schedulable

__all__ = ["AddNoiseState", "add_noise"]

_MIX = 0x9E3779B97F4A7C15  # golden-ratio constant: spreads (seed, count) over the 63-bit seed space
_LEAF = 0x94D049BB133111EB  # separates the leaves' streams


class AddNoiseState(NamedTuple):
    """State of [`add_noise`][].

    Attributes:
      count: updates done so far (0-dim int64, CPU).
      seed: the base seed (0-dim int64, CPU). The generator of step ``t`` and leaf ``i`` is
        seeded from ``(seed, t, i)``, so the noise is reproducible from the state alone (no generator object).
    """

    count: Tensor  # type: ignore[assignment]  # a field named like tuple.count
    seed: Tensor


def _step_seed(seed: int, count: int) -> int:
    return (seed * _MIX + count * 0xBF58476D1CE4E5B9 + 1) % (2**63 - 1)


@schedulable("eta", "gamma")
def add_noise(eta: Hyperparam = 0.01, gamma: Hyperparam = 0.55, seed: int = 0) -> GradientTransformation:
    r"""Add annealed Gaussian noise to the updates.

    $$
    \sigma_t^2 = \frac{\eta}{(1 + t)^\gamma},\qquad u_t = g_t + \mathcal N(0, \sigma_t^2)
    $$

    with ``t`` the number of previous updates (the first step has ``σ² = η``). The noise of leaf
    ``i`` at step ``t`` comes from a ``torch.Generator`` on the update's device seeded from
    ``(seed, t, i)``, so runs are reproducible, a restored state continues the same sequence,
    and a leaf's noise does not depend on which other leaves have a gradient.
    The state holds only two counters (no generator object), so it round-trips through a
    ``state_dict``. ``None`` gradients stay ``None`` and draw nothing.

    Not traceable with a traced ``count``: the seed is read on the host. Under ``vmap`` pass
    ``randomness="same"`` or ``"different"``.

    Args:
      eta: the initial noise variance ``η`` (>= 0; the paper uses 0.01, 0.3 or 1.0).
      gamma: the annealing exponent ``γ`` (>= 0; the paper uses 0.55).
      seed: the base seed (int).

    Example:
        >>> params = {"w": torch.zeros(3)}
        >>> opt = fo.chain(fo.add_noise(0.01, 0.55, seed=0), fo.sgd(0.1))
        >>> state = opt.init(params)
        >>> updates, state = opt.update({"w": torch.zeros(3)}, state, params)
        >>> bool((updates["w"] != 0).all())  # a zero gradient plus Gaussian noise
        True

    References:
      Neelakantan et al., "Adding Gradient Noise Improves Learning for Very Deep Networks", 2015.
      optax.add_noise (DeepMind).
    """
    _validation.nonnegative("eta", eta, "eta")
    _validation.nonnegative("gamma", gamma, "gamma")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ValueError(f"seed must be an int, got {seed!r}")

    def init_fn(params: Params) -> AddNoiseState:
        del params
        return AddNoiseState(torch.zeros((), dtype=torch.int64), torch.tensor(seed, dtype=torch.int64))

    def update_fn(updates: Updates, state: AddNoiseState, params: Params | None = None, **extra: Any):
        del params, extra
        count = int(state.count)
        eta_, gamma_ = ops.scalar(eta), ops.scalar(gamma)  # type: ignore[arg-type]
        std = (eta_ / (1 + count) ** gamma_) ** 0.5
        step_seed = _step_seed(int(state.seed), count)
        leaves, spec = tree.flatten(updates)
        gens: dict[torch.device, torch.Generator] = {}

        def noisy(i: int, u: Tensor | None) -> Tensor | None:
            if u is None:
                return None
            if u.device not in gens:
                gens[u.device] = torch.Generator(device=u.device)
            gen = gens[u.device].manual_seed((step_seed + i * _LEAF) % (2**63 - 1))
            noise = torch.randn(u.shape, generator=gen, device=u.device, dtype=u.dtype)
            return u + std * noise

        out = [noisy(i, u) for i, u in enumerate(leaves)]
        return tree.unflatten(spec, out), AddNoiseState(state.count + 1, state.seed)

    return GradientTransformation(init_fn, update_fn)
