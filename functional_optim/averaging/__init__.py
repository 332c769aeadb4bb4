"""Weight averaging: SWA and EMA as pure transforms, AveragedModel, update_bn."""

from functional_optim._exports import public_names
from functional_optim.averaging.averagers import *
from functional_optim.averaging.swa_utils import *

__all__ = public_names(__name__)
