"""The torch.optim algorithms as pure transforms, built only by composing transforms."""

from functional_optim.optimizers.adam import *

from functional_optim._exports import public_names

__all__ = public_names(__name__)
