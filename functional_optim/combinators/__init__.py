"""Chain-level wrappers: partition, masked, inject_hyperparams, apply_if_finite, multi_steps, ..."""

from functional_optim._exports import public_names
from functional_optim.combinators.adaptive_grad_clip import *
from functional_optim.combinators.add_noise import *
from functional_optim.combinators.apply_if_finite import *
from functional_optim.combinators.centralize import *
from functional_optim.combinators.clip_by_block_rms import *
from functional_optim.combinators.freeze import *
from functional_optim.combinators.inject_hyperparams import *
from functional_optim.combinators.lookahead import *
from functional_optim.combinators.masked import *
from functional_optim.combinators.multi_steps import *
from functional_optim.combinators.partition import *
from functional_optim.combinators.skip_large_updates import *
from functional_optim.combinators.snapshot import *
from functional_optim.combinators.zero_nans import *

__all__ = public_names(__name__)
