"""The torch.optim algorithms as pure transforms, built only by composing transforms."""

from functional_optim.optimizers.adabelief import *
from functional_optim.optimizers.adadelta import *
from functional_optim.optimizers.adafactor import *
from functional_optim.optimizers.adagrad import *
from functional_optim.optimizers.adam import *
from functional_optim.optimizers.adamax import *
from functional_optim.optimizers.adamuon import *
from functional_optim.optimizers.adan import *
from functional_optim.optimizers.ademamix import *
from functional_optim.optimizers.adopt import *
from functional_optim.optimizers.asgd import *
from functional_optim.optimizers.cautious_adamw import *
from functional_optim.optimizers.dadapt_adam import *
from functional_optim.optimizers.dog import *
from functional_optim.optimizers.kron import *
from functional_optim.optimizers.lamb import *
from functional_optim.optimizers.laprop import *
from functional_optim.optimizers.lars import *
from functional_optim.optimizers.lbfgs import *
from functional_optim.optimizers.lion import *
from functional_optim.optimizers.mars import *
from functional_optim.optimizers.muon import *
from functional_optim.optimizers.muon_split import *
from functional_optim.optimizers.nadam import *
from functional_optim.optimizers.normuon import *
from functional_optim.optimizers.novograd import *
from functional_optim.optimizers.prodigy import *
from functional_optim.optimizers.radam import *
from functional_optim.optimizers.rmsprop import *
from functional_optim.optimizers.rprop import *
from functional_optim.optimizers.schedule_free import *
from functional_optim.optimizers.scion import *
from functional_optim.optimizers.sgd import *
from functional_optim.optimizers.shampoo import *
from functional_optim.optimizers.signum import *
from functional_optim.optimizers.soap import *
from functional_optim.optimizers.sparse_adam import *
from functional_optim.optimizers.yogi import *

__all__ = [
    "GRAFTING_RULES",
    "MUON_EXCLUDE_PATTERN",
    "MUON_WITH_ADAMW_DEFAULTS",
    "adabelief",
    "adadelta",
    "adafactor",
    "adagrad",
    "adam",
    "adamax",
    "adamuon",
    "adamw",
    "adan",
    "ademamix",
    "adopt",
    "asgd",
    "cautious_adamw",
    "dadapt_adam",
    "dadapt_adamw",
    "default_muon_rule",
    "dog",
    "kron",
    "lamb",
    "laprop",
    "lars",
    "lbfgs",
    "lion",
    "mars_adamw",
    "muon",
    "muon_labels",
    "muon_with_adamw",
    "nadam",
    "normuon",
    "novograd",
    "prodigy",
    "radam",
    "rmsprop",
    "rprop",
    "schedule_free_adamw",
    "schedule_free_sgd",
    "scion",
    "sgd",
    "shampoo",
    "sign_sgd",
    "signum",
    "soap",
    "sparse_adam",
    "yogi",
]
