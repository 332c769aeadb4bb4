"""Drop-in ``torch.optim.Optimizer`` classes wrapping any ``GradientTransformation``.

``FunctionalOptimizer(params, transform_or_factory, **hyperparams)`` runs any transform (or a
factory such as ``fo.adamw`` with its hyperparameters kept in ``param_groups``); ``SGD``,
``Adam``, ``AdamW``, ... are torch's classes with the same names, signatures, defaults and
state format.
"""

from functional_optim.adapters._base import *
from functional_optim.adapters.matrix import *
from functional_optim.adapters.muon_split import *
from functional_optim.adapters.optimizers import *

__all__ = [
    "ASGD",
    "FUNCTIONAL_STATE_KEY",
    "IMPLEMENTATION_FLAGS",
    "LBFGS",
    "SGD",
    "Adadelta",
    "Adafactor",
    "Adagrad",
    "Adam",
    "AdamW",
    "Adamax",
    "FunctionalOptimizer",
    "Muon",
    "MuonWithAdamW",
    "NAdam",
    "RAdam",
    "RMSprop",
    "Rprop",
    "SparseAdam",
    "muon_or_adamw",
]
