"""Chain-level wrappers: partition, masked, inject_hyperparams, apply_if_finite, multi_steps, ..."""

from functional_optim._exports import public_names
from functional_optim.combinators.inject_hyperparams import *
from functional_optim.combinators.partition import *

__all__ = public_names(__name__)
