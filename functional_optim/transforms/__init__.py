"""Small building blocks that optimizers are composed from, one concern per file."""

from functional_optim._exports import public_names
from functional_optim.transforms.adadelta import *
from functional_optim.transforms.adagrad import *
from functional_optim.transforms.adam import *
from functional_optim.transforms.adamax import *
from functional_optim.transforms.adan import *
from functional_optim.transforms.adaptive_grad_clip import *
from functional_optim.transforms.add_noise import *
from functional_optim.transforms.ademamix import *
from functional_optim.transforms.adopt import *
from functional_optim.transforms.asgd import *
from functional_optim.transforms.belief import *
from functional_optim.transforms.centralize import *
from functional_optim.transforms.clip_by_block_rms import *
from functional_optim.transforms.clipping import *
from functional_optim.transforms.factored import *
from functional_optim.transforms.freeze import *
from functional_optim.transforms.laprop import *
from functional_optim.transforms.lbfgs import *
from functional_optim.transforms.line_search import *
from functional_optim.transforms.lion import *
from functional_optim.transforms.momentum import *
from functional_optim.transforms.muon_momentum import *
from functional_optim.transforms.nadam import *
from functional_optim.transforms.novograd import *
from functional_optim.transforms.orthogonalize import *
from functional_optim.transforms.proximal_decay import *
from functional_optim.transforms.radam import *
from functional_optim.transforms.rms import *
from functional_optim.transforms.rprop import *
from functional_optim.transforms.scaling import *
from functional_optim.transforms.shape_scaling import *
from functional_optim.transforms.sign import *
from functional_optim.transforms.snapshot import *
from functional_optim.transforms.sparse_adam import *
from functional_optim.transforms.trust_ratio import *
from functional_optim.transforms.weight_decay import *
from functional_optim.transforms.yogi import *
from functional_optim.transforms.zero_nans import *

__all__ = public_names(__name__)
