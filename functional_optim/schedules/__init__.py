"""Pure schedules ``count -> value``: every torch.optim.lr_scheduler, and optax favourites."""

from functional_optim._exports import public_names
from functional_optim.schedules.lr_scheduler import *
from functional_optim.schedules.optax_style import *
from functional_optim.schedules.plateau import *
from functional_optim.schedules.rex import *
from functional_optim.schedules.wsd import *

__all__ = public_names(__name__)
