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
from functional_optim.adapters.parameter_free import *
from functional_optim.adapters.schedule_free import *

__all__ = [
    "ASGD",
    "FUNCTIONAL_STATE_KEY",
    "IMPLEMENTATION_FLAGS",
    "LBFGS",
    "SGD",
    "SOAP",
    "AdaMuon",
    "Adadelta",
    "Adafactor",
    "Adagrad",
    "Adam",
    "AdamW",
    "AdamWScheduleFree",
    "Adamax",
    "DAdaptAdam",
    "DoG",
    "FunctionalOptimizer",
    "Muon",
    "MuonWithAdamW",
    "NAdam",
    "NorMuon",
    "Prodigy",
    "RAdam",
    "RMSprop",
    "Rprop",
    "SGDScheduleFree",
    "Scion",
    "SparseAdam",
    "muon_or_adamw",
]
