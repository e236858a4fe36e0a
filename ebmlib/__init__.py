"""ebmlib: estimators and samplers for energy-based models p(x|θ) = exp(-E(x|θ)) / Z(θ).

The library behind the executable book *Training energy-based models*. Its modules form layers,
each importing only from the layers below it (checked by import-linter, ``pyproject.toml``):

1. Checks and records: :mod:`ebmlib.validation` (argument checks that raise clear errors),
   :mod:`ebmlib.history` (the record of a training run), :mod:`ebmlib.timing`.
2. Exact oracles and primitives: :mod:`ebmlib.exact` (log Z by quadrature or enumeration, exact
   NLL and gradient), :mod:`ebmlib.autodiff` (per-sample and input gradients of an energy),
   :mod:`ebmlib.weights` (importance weights: the IS estimate of log Z, ESS).
3. Models and data: :mod:`ebmlib.energies` (Gaussian, polynomial exponential family, MLP,
   Gaussian plus MLP, mixtures), :mod:`ebmlib.proposals` (Gaussian and Student-t proposals),
   :mod:`ebmlib.rbm` (binary RBMs and their trainer), :mod:`ebmlib.grbm` (Gaussian-Bernoulli
   RBMs), :mod:`ebmlib.data` (the digits and toy densities).
4. Samplers: :mod:`ebmlib.samplers` (random-walk Metropolis, ULA, MALA, HMC behind one
   interface; independent MH, IS with resampling), :mod:`ebmlib.tempering` (parallel tempering),
   :mod:`ebmlib.diagnostics` (autocorrelation, ESS of chains).
5. Estimators: :mod:`ebmlib.partition` (AIS and reverse AIS for RBMs), :mod:`ebmlib.annealing`
   (AIS for any energy), :mod:`ebmlib.estimators` (batched estimators for exponential families
   and their sandwich covariances).
6. Losses: :mod:`ebmlib.losses` (contrastive, Geyer IS, score matching, NCE).
7. Training: :mod:`ebmlib.training` (the one training loop, the replay buffer).

The chapters' own helpers (plotting, the paper's Section 7 experiment, running fits side by side,
named claims, ``reproduce``) sit above all of these in :mod:`ebmlib.book`, which the core never
imports; ``import ebmlib`` loads neither matplotlib nor the book helpers.
"""

from . import (
    annealing,
    autodiff,
    data,
    diagnostics,
    energies,
    estimators,
    exact,
    grbm,
    history,
    losses,
    partition,
    proposals,
    rbm,
    samplers,
    tempering,
    timing,
    training,
    validation,
    weights,
)
from .annealing import AISResult, ais_log_partition, sigmoid_schedule
from .energies import GaussianEnergy, GaussianMLPEnergy, MixtureEnergy, MLPEnergy, PolynomialEnergy
from .grbm import GaussianBernoulliRBM
from .losses import (
    cd_loss,
    conditional_nce_loss,
    denoising_score_matching_loss,
    importance_sampling_gradient_loss,
    importance_sampling_nll,
    nce_loss,
    score_matching_loss,
    sliced_score_matching_loss,
)
from .rbm import BernoulliRBM, pseudo_likelihood_loss, ratio_matching_loss
from .tempering import geometric_betas, parallel_tempering
from .training import History, ReplayBuffer, robbins_monro_schedule, train
from .validation import ConvergenceWarning


def _version() -> str:
    """The installed distribution's version: pyproject.toml is its one source."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("ebmlib")
    except PackageNotFoundError:  # imported from a source tree that was never installed
        return "0+unknown"


__version__ = _version()

__all__ = [
    "autodiff",
    "data",
    "diagnostics",
    "energies",
    "estimators",
    "exact",
    "losses",
    "partition",
    "proposals",
    "rbm",
    "samplers",
    "timing",
    "training",
    "validation",
    "history",
    "weights",
    "BernoulliRBM",
    "ConvergenceWarning",
    "GaussianEnergy",
    "GaussianMLPEnergy",
    "MixtureEnergy",
    "MLPEnergy",
    "PolynomialEnergy",
    "cd_loss",
    "importance_sampling_nll",
    "importance_sampling_gradient_loss",
    "score_matching_loss",
    "denoising_score_matching_loss",
    "sliced_score_matching_loss",
    "nce_loss",
    "conditional_nce_loss",
    "History",
    "ReplayBuffer",
    "robbins_monro_schedule",
    "train",
    "annealing",
    "grbm",
    "GaussianBernoulliRBM",
    "AISResult",
    "ais_log_partition",
    "sigmoid_schedule",
    "tempering",
    "geometric_betas",
    "parallel_tempering",
    "pseudo_likelihood_loss",
    "ratio_matching_loss",
]
