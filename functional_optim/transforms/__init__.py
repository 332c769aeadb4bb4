"""Small building blocks that optimizers are composed from, one concern per file."""

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
from functional_optim.transforms.bias_corrected_rms import *
from functional_optim.transforms.cautious import *
from functional_optim.transforms.cautious_weight_decay import *
from functional_optim.transforms.centralize import *
from functional_optim.transforms.clip_by_block_rms import *
from functional_optim.transforms.clip_by_rms import *
from functional_optim.transforms.clipping import *
from functional_optim.transforms.dadapt_adam import *
from functional_optim.transforms.decay_after_update import *
from functional_optim.transforms.diagonal_preconditioner import *
from functional_optim.transforms.dog import *
from functional_optim.transforms.factored import *
from functional_optim.transforms.freeze import *
from functional_optim.transforms.grafting import *
from functional_optim.transforms.kron import *
from functional_optim.transforms.lamb import *
from functional_optim.transforms.laprop import *
from functional_optim.transforms.lars import *
from functional_optim.transforms.lbfgs import *
from functional_optim.transforms.line_search import *
from functional_optim.transforms.lion import *
from functional_optim.transforms.lmo import *
from functional_optim.transforms.mars import *
from functional_optim.transforms.momentum import *
from functional_optim.transforms.muon_momentum import *
from functional_optim.transforms.nadam import *
from functional_optim.transforms.neuron_norm import *
from functional_optim.transforms.novograd import *
from functional_optim.transforms.ns_design import *
from functional_optim.transforms.orthogonalize import *
from functional_optim.transforms.orthogonalize_distributed import *
from functional_optim.transforms.prodigy import *
from functional_optim.transforms.proximal_decay import *
from functional_optim.transforms.radam import *
from functional_optim.transforms.rms import *
from functional_optim.transforms.rms_matching import *
from functional_optim.transforms.rprop import *
from functional_optim.transforms.scaling import *
from functional_optim.transforms.schedule_free import *
from functional_optim.transforms.shampoo import *
from functional_optim.transforms.shape_scaling import *
from functional_optim.transforms.sign import *
from functional_optim.transforms.snapshot import *
from functional_optim.transforms.soap import *
from functional_optim.transforms.sparse_adam import *
from functional_optim.transforms.trust_ratio import *
from functional_optim.transforms.update_second_moment import *
from functional_optim.transforms.weight_decay import *
from functional_optim.transforms.yogi import *
from functional_optim.transforms.zero_nans import *

__all__ = [
    "LMO_NORMS",
    "NS_METHODS",
    "NS_NORMS",
    "NS_PRESETS",
    "AddNoiseState",
    "CautiousState",
    "DecayAfterUpdateState",
    "EmaMomentumState",
    "EmaState",
    "GraftState",
    "NeuronNormState",
    "ScaleByAdadeltaState",
    "ScaleByAdagradState",
    "ScaleByAdamState",
    "ScaleByAdamaxState",
    "ScaleByAdanState",
    "ScaleByAdemamixState",
    "ScaleByAdoptState",
    "ScaleByAsgdState",
    "ScaleByBeliefState",
    "ScaleByBiasCorrectedRmsState",
    "ScaleByDAdaptAdamState",
    "ScaleByDiagonalPreconditionerState",
    "ScaleByDoGState",
    "ScaleByFactoredRmsState",
    "ScaleByKronState",
    "ScaleByLBFGSState",
    "ScaleByLapropState",
    "ScaleByLionState",
    "ScaleByMarsState",
    "ScaleByNAdamState",
    "ScaleByNovogradState",
    "ScaleByProdigyState",
    "ScaleByRAdamState",
    "ScaleByRmsState",
    "ScaleByRpropState",
    "ScaleByShampooState",
    "ScaleBySignumState",
    "ScaleBySoapState",
    "ScaleBySparseAdamState",
    "ScaleByYogiState",
    "ScheduleFreeState",
    "SnapshotState",
    "TraceState",
    "UpdateSecondMomentState",
    "ZeroNansState",
    "adaptive_grad_clip",
    "add_cautious_decayed_weights",
    "add_decayed_weights",
    "add_noise",
    "ademamix_alpha_warmup",
    "ademamix_beta3_warmup",
    "adopt_clip",
    "cautious",
    "cautious_mask",
    "centralize",
    "clip",
    "clip_by_block_rms",
    "clip_by_global_norm",
    "clip_by_rms",
    "cubic_interpolate",
    "decay_after_update",
    "default_ns_dtype",
    "ema",
    "freeze",
    "graft",
    "kron_merged_shape",
    "matrix_inverse_root",
    "matrix_view_shape",
    "negate",
    "newton_schulz",
    "orthogonalize",
    "orthogonalize_distributed",
    "polar_express_coefficients",
    "precond_update_prob_schedule",
    "read_snapshots",
    "scale",
    "scale_by_adadelta",
    "scale_by_adagrad",
    "scale_by_adam",
    "scale_by_adamax",
    "scale_by_adan",
    "scale_by_ademamix",
    "scale_by_adopt",
    "scale_by_asgd",
    "scale_by_belief",
    "scale_by_bias_corrected_rms",
    "scale_by_dadapt_adam",
    "scale_by_diagonal_preconditioner",
    "scale_by_dog",
    "scale_by_ema_momentum",
    "scale_by_factored_rms",
    "scale_by_identity_preconditioner",
    "scale_by_kron",
    "scale_by_lamb",
    "scale_by_laprop",
    "scale_by_lars",
    "scale_by_lbfgs",
    "scale_by_learning_rate",
    "scale_by_lion",
    "scale_by_lmo",
    "scale_by_mars",
    "scale_by_nadam",
    "scale_by_neuron_norm",
    "scale_by_novograd",
    "scale_by_prodigy",
    "scale_by_proximal_decay",
    "scale_by_radam",
    "scale_by_rms",
    "scale_by_rprop",
    "scale_by_shampoo",
    "scale_by_shape",
    "scale_by_sign",
    "scale_by_signum",
    "scale_by_soap",
    "scale_by_sparse_adam",
    "scale_by_trust_ratio",
    "scale_by_update_second_moment",
    "scale_by_yogi",
    "scale_to_rms",
    "schedule_free",
    "schedule_free_eval_params",
    "schedule_free_train_params",
    "shampoo_inverse_exponents",
    "shape_factor",
    "snapshot",
    "soap_view_shape",
    "strong_wolfe",
    "trace",
    "unitwise_norm",
    "zero_nans",
]
