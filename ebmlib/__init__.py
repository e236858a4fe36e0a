"""ebmlib: estimators and samplers for energy-based models p(x|θ) = exp(-E(x|θ)) / Z(θ).

The library behind the executable book *Training energy-based models*.
Modules:

- :mod:`ebmlib.energies`: energy functions (Gaussian with analytic log Z, polynomial exponential
  family, MLP).
- :mod:`ebmlib.exact`: oracles (log Z by quadrature or enumeration, exact NLL and gradient).
- :mod:`ebmlib.autodiff`: per-sample parameter gradients and input gradients of an energy.
- :mod:`ebmlib.partition`: importance-sampling estimates of log Z, effective sample size; AIS and
  reverse AIS for RBMs.
- :mod:`ebmlib.rbm`: binary restricted Boltzmann machines (exact log Z, pseudo-likelihood, CD/PCD
  training).
- :mod:`ebmlib.grbm`: Gaussian-Bernoulli RBMs (real visible units; exact log Z over the hidden
  states).
- :mod:`ebmlib.annealing`: annealed importance sampling for RBMs and for any continuous energy
  (HMC).
- :mod:`ebmlib.proposals`: proposal densities (Gaussian, Student-t) for IS and independent MH.
- :mod:`ebmlib.samplers`: MCMC (random-walk Metropolis, ULA, MALA, HMC) behind one interface,
  independent MH, IS with resampling.
- :mod:`ebmlib.tempering`: parallel tempering (replica exchange) for multimodal targets.
- :mod:`ebmlib.diagnostics`: autocorrelation, integrated autocorrelation time and effective sample
  size of chains.
- :mod:`ebmlib.gaussian_scale`: the reference paper's Section 7 experiment, vectorized over runs and
  theta.
- :mod:`ebmlib.data`: the binarized digits (checked against their sha256) and toy densities with
  exact log densities.
- :mod:`ebmlib.estimators`: batched estimators for exponential families (NCE by Newton's method) and
  their asymptotic (sandwich) covariances.
- :mod:`ebmlib.timing`: a minimal timing helper for cost figures and benchmarks.
- :mod:`ebmlib.losses`: losses to minimize (contrastive / Monte-Carlo ML, Geyer IS-NLL, IS
  gradient).
- :mod:`ebmlib.training`: the one training loop.
- :mod:`ebmlib.plotting`: the shared figure style.
- :mod:`ebmlib.validation`: argument checks that raise clear errors (also used by chapters for their
  parameters).
- :mod:`ebmlib.book`: the chapters' own helpers (running independent fits side by side); the core
  never imports it.
"""

from . import (
    annealing,
    autodiff,
    data,
    diagnostics,
    energies,
    estimators,
    exact,
    gaussian_scale,
    grbm,
    losses,
    partition,
    plotting,
    proposals,
    rbm,
    samplers,
    tempering,
    timing,
    training,
    validation,
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

__version__ = "0.2.0"

__all__ = [
    "autodiff",
    "data",
    "diagnostics",
    "energies",
    "estimators",
    "exact",
    "gaussian_scale",
    "losses",
    "partition",
    "plotting",
    "proposals",
    "rbm",
    "samplers",
    "timing",
    "training",
    "validation",
    "BernoulliRBM",
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
