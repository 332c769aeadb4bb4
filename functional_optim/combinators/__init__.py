"""Chain-level wrappers that hold other transforms: partition, masked, apply_if_finite,
multi_steps, lookahead, skip_large_updates (and ``inject_hyperparams``, defined in
`fo.hyperparams`)."""

from functional_optim.combinators.apply_if_finite import *
from functional_optim.combinators.blockwise import *
from functional_optim.combinators.lookahead import *
from functional_optim.combinators.masked import *
from functional_optim.combinators.multi_steps import *
from functional_optim.combinators.partition import *
from functional_optim.combinators.precondition_momentum import *
from functional_optim.combinators.skip_large_updates import *
from functional_optim.hyperparams import InjectHyperparamsState, inject_hyperparams, schedulable

__all__ = [
    "ApplyIfFiniteState",
    "BlockwiseState",
    "InjectHyperparamsState",
    "LookaheadState",
    "MaskedState",
    "MultiStepsState",
    "PartitionState",
    "PreconditionMomentumState",
    "SkipLargeUpdatesState",
    "all_finite",
    "apply_if_finite",
    "block_shapes",
    "blockwise",
    "inject_hyperparams",
    "lookahead",
    "masked",
    "merge_small_dims",
    "multi_steps",
    "partition",
    "precondition_momentum",
    "schedulable",
    "skip_large_updates",
]
