"""Drop-in ``torch.optim.Optimizer`` classes wrapping any ``GradientTransformation``.

``FunctionalOptimizer(params, transform_or_factory, **hyperparams)`` runs any transform (or a
factory such as ``fo.adamw`` with its hyperparameters kept in ``param_groups``); ``SGD``,
``Adam``, ``AdamW``, ... are torch's classes with the same names, signatures, defaults and
state format.
"""

from functional_optim.adapters._base import *
from functional_optim.adapters.adam_family import *
from functional_optim.adapters.matrix import *
from functional_optim.adapters.muon_split import *
from functional_optim.adapters.optimizers import *
from functional_optim.adapters.parameter_free import *
from functional_optim.adapters.schedule_free import *
from functional_optim.adapters.sign_family import *

__all__ = [
    "ADOPT",
    "ASGD",
    "FUNCTIONAL_STATE_KEY",
    "IMPLEMENTATION_FLAGS",
    "LARS",
    "LBFGS",
    "SGD",
    "SOAP",
    "AdEMAMix",
    "AdaBelief",
    "AdaMuon",
    "Adadelta",
    "Adafactor",
    "Adagrad",
    "Adam",
    "AdamW",
    "AdamWScheduleFree",
    "Adamax",
    "Adan",
    "DAdaptAdam",
    "DoG",
    "FunctionalOptimizer",
    "Kron",
    "LaProp",
    "Lamb",
    "Lion",
    "Muon",
    "MuonWithAdamW",
    "NAdam",
    "NorMuon",
    "Novograd",
    "Prodigy",
    "RAdam",
    "RMSprop",
    "Rprop",
    "SGDScheduleFree",
    "Scion",
    "Shampoo",
    "Signum",
    "SparseAdam",
    "Yogi",
    "muon_or_adamw",
]
