"""Small building blocks that optimizers are composed from, one concern per file."""

from functional_optim._exports import public_names
from functional_optim.transforms.adam import *
from functional_optim.transforms.scaling import *
from functional_optim.transforms.weight_decay import *

__all__ = public_names(__name__)
