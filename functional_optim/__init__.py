"""functional_optim: pure, composable optimizer transforms for PyTorch.

``import functional_optim as fo`` gives the core (``fo.chain``, ``fo.apply_updates``), the
building blocks (``fo.scale_by_adam``...), the combinators (``fo.partition``...) and the 15
``torch.optim`` algorithms (``fo.adamw``...). Drop-in ``torch.optim.Optimizer`` classes live
in ``fo.adapters``, schedules in ``fo.schedules``, weight averaging in ``fo.averaging``.
"""

from functional_optim import adapters, averaging, schedules, tree
from functional_optim.combinators import *
from functional_optim.compiled import CompiledStep, compile_step
from functional_optim.core import (
    EmptyState,
    GradientTransformation,
    Hyperparam,
    Params,
    Schedule,
    State,
    Updates,
    apply_updates,
    chain,
    identity,
)
from functional_optim.differentiable import *
from functional_optim.optimizers import *
from functional_optim.stochastic_rounding import *
from functional_optim.transforms import *

__version__ = "0.1.0"
