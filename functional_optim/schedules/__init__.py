"""Pure schedules ``count -> value``: every torch.optim.lr_scheduler, and optax favourites."""

from functional_optim.schedules._base import ScheduleObject
from functional_optim.schedules.lr_scheduler import *
from functional_optim.schedules.optax_style import *
from functional_optim.schedules.plateau import *
from functional_optim.schedules.rex import *
from functional_optim.schedules.wsd import *

__all__ = [
    "ReduceLROnPlateauState",
    "ScheduleObject",
    "chained_scheduler",
    "constant",
    "constant_lr",
    "cosine_annealing_lr",
    "cosine_annealing_warm_restarts",
    "cosine_decay",
    "cyclic_lr",
    "cyclic_momentum",
    "exponential_lr",
    "join_schedules",
    "lambda_lr",
    "linear",
    "linear_lr",
    "linear_warmup",
    "multi_step_lr",
    "multiplicative_lr",
    "one_cycle_lr",
    "one_cycle_momentum",
    "piecewise_constant",
    "polynomial_lr",
    "reduce_lr_on_plateau",
    "rex",
    "sequential_lr",
    "step_lr",
    "swa_lr",
    "warmup",
    "warmup_cosine_decay",
    "warmup_stable_decay",
]
