"""The torch.optim algorithms as pure transforms, built only by composing transforms."""

from functional_optim.optimizers.adadelta import *
from functional_optim.optimizers.adafactor import *
from functional_optim.optimizers.adagrad import *
from functional_optim.optimizers.adam import *
from functional_optim.optimizers.adamax import *
from functional_optim.optimizers.adamuon import *
from functional_optim.optimizers.asgd import *
from functional_optim.optimizers.cautious_adamw import *
from functional_optim.optimizers.dadapt_adam import *
from functional_optim.optimizers.dog import *
from functional_optim.optimizers.lbfgs import *
from functional_optim.optimizers.mars import *
from functional_optim.optimizers.muon import *
from functional_optim.optimizers.muon_split import *
from functional_optim.optimizers.nadam import *
from functional_optim.optimizers.normuon import *
from functional_optim.optimizers.prodigy import *
from functional_optim.optimizers.radam import *
from functional_optim.optimizers.rmsprop import *
from functional_optim.optimizers.rprop import *
from functional_optim.optimizers.schedule_free import *
from functional_optim.optimizers.scion import *
from functional_optim.optimizers.sgd import *
from functional_optim.optimizers.soap import *
from functional_optim.optimizers.sparse_adam import *

__all__ = [
    "MUON_EXCLUDE_PATTERN",
    "MUON_WITH_ADAMW_DEFAULTS",
    "adadelta",
    "adafactor",
    "adagrad",
    "adam",
    "adamax",
    "adamuon",
    "adamw",
    "asgd",
    "cautious_adamw",
    "dadapt_adam",
    "dadapt_adamw",
    "default_muon_rule",
    "dog",
    "lbfgs",
    "mars_adamw",
    "muon",
    "muon_labels",
    "muon_with_adamw",
    "nadam",
    "normuon",
    "prodigy",
    "radam",
    "rmsprop",
    "rprop",
    "schedule_free_adamw",
    "schedule_free_sgd",
    "scion",
    "sgd",
    "soap",
    "sparse_adam",
]
