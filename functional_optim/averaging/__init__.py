"""Weight averaging: SWA and EMA as pure transforms, AveragedModel, update_bn."""

from functional_optim.averaging.averagers import *
from functional_optim.averaging.swa_utils import *

__all__ = [
    "AverageState",
    "AveragedModel",
    "Averager",
    "AvgFnConflictError",
    "WithAverageState",
    "averaged_params",
    "ema",
    "get_ema_avg_fn",
    "get_ema_multi_avg_fn",
    "get_swa_avg_fn",
    "get_swa_multi_avg_fn",
    "swa",
    "update_bn",
    "with_average",
]
