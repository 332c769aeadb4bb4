"""Drop-in ``torch.optim.Optimizer`` classes wrapping any ``GradientTransformation``.

``FunctionalOptimizer(params, transform_or_factory, **hyperparams)`` runs any transform (or a
factory such as ``fo.adamw`` with its hyperparameters kept in ``param_groups``); ``SGD``,
``Adam``, ``AdamW``, ... are torch's classes with the same names, signatures, defaults and
state format.
"""

from functional_optim._exports import public_names
from functional_optim.adapters._base import *
from functional_optim.adapters.adam_family import *
from functional_optim.adapters.muon_split import *
from functional_optim.adapters.optimizers import *
from functional_optim.adapters.sign_family import *

__all__ = public_names(__name__)
