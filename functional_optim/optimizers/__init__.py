"""The torch.optim algorithms as pure transforms, built only by composing transforms."""

from functional_optim._exports import public_names
from functional_optim.optimizers.adam import *

__all__ = public_names(__name__)
