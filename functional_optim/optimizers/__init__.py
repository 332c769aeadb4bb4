"""The torch.optim algorithms as pure transforms, built only by composing transforms."""

from functional_optim._exports import public_names
from functional_optim.optimizers.adabelief import *
from functional_optim.optimizers.adadelta import *
from functional_optim.optimizers.adafactor import *
from functional_optim.optimizers.adagrad import *
from functional_optim.optimizers.adam import *
from functional_optim.optimizers.adamax import *
from functional_optim.optimizers.adan import *
from functional_optim.optimizers.ademamix import *
from functional_optim.optimizers.adopt import *
from functional_optim.optimizers.asgd import *
from functional_optim.optimizers.lamb import *
from functional_optim.optimizers.laprop import *
from functional_optim.optimizers.lars import *
from functional_optim.optimizers.lbfgs import *
from functional_optim.optimizers.lion import *
from functional_optim.optimizers.muon import *
from functional_optim.optimizers.muon_split import *
from functional_optim.optimizers.nadam import *
from functional_optim.optimizers.novograd import *
from functional_optim.optimizers.radam import *
from functional_optim.optimizers.rmsprop import *
from functional_optim.optimizers.rprop import *
from functional_optim.optimizers.sgd import *
from functional_optim.optimizers.signum import *
from functional_optim.optimizers.sparse_adam import *
from functional_optim.optimizers.yogi import *

__all__ = public_names(__name__)
