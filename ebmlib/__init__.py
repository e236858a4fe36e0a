"""ebmlib: estimators and samplers for energy-based models p(x|θ) = exp(-E(x|θ)) / Z(θ).

The library behind the executable book *Training energy-based models*.
Modules:

- :mod:`ebmlib.energies`: energy functions (Gaussian with analytic log Z, polynomial exponential family, MLP).
- :mod:`ebmlib.exact`: oracles (log Z by quadrature or enumeration, exact NLL and gradient).
- :mod:`ebmlib.losses`: losses to minimize (contrastive / Monte-Carlo ML, ...).
- :mod:`ebmlib.training`: the one training loop.
- :mod:`ebmlib.plotting`: the shared figure style.
- :mod:`ebmlib.validation`: argument checks that raise clear errors (also used by chapters for their parameters).
"""

from . import energies, exact, losses, plotting, training, validation
from .energies import GaussianEnergy, MLPEnergy, PolynomialEnergy
from .losses import cd_loss
from .training import History, robbins_monro_schedule, train

__version__ = "0.1.0"

__all__ = [
    "energies", "exact", "losses", "plotting", "training", "validation",
    "GaussianEnergy", "MLPEnergy", "PolynomialEnergy", "cd_loss",
    "History", "robbins_monro_schedule", "train",
]
