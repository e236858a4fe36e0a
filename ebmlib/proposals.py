r"""Proposal (reference) densities :math:`q(y)` for importance sampling and independent Metropolis–Hastings.

A proposal is any object with

* ``sample(n, *, generator=None)`` returning a tensor of shape ``(n, d)``, and
* ``log_prob(y)`` mapping ``(n, d)`` to normalized log densities of shape ``(n,)``.

The paper's two requirements on a proposal (Section 3.2 of :cite:p:`ebmgradientnote`) are exactly these two
methods: it can be evaluated point-wise, including its normalizing constant, and it can be sampled.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from scipy import stats

from .validation import check_batch, check_generator, check_int, check_positive

__all__ = ["GaussianProposal", "StudentTProposal"]


def _vector(value, name: str, dtype) -> torch.Tensor:
    t = torch.as_tensor(value, dtype=dtype).reshape(-1).clone()
    if t.numel() == 0 or not bool(torch.isfinite(t).all()):
        raise ValueError(f"{name} must hold finite values, got {value!r}")
    return t


class GaussianProposal:
    r"""Diagonal Gaussian :math:`q(y) = \prod_i \mathcal N(y_i \mid \mu_i, s_i^2)`.

    Parameters
    ----------
    mean : float or array-like of shape (d,)
    std : float or array-like of shape (d,)
        Positive standard deviations (a number is broadcast to every dimension).
    dtype : torch.dtype
    """

    def __init__(self, mean=0.0, std=1.0, *, dtype: torch.dtype = torch.float64):
        self.mean = _vector(mean, "mean", dtype)
        std_t = _vector(std, "std", dtype)
        if bool((std_t <= 0).any()):
            raise ValueError(f"std must be > 0, got {std!r}")
        self.std = std_t.expand_as(self.mean).clone() if std_t.numel() == 1 else std_t
        if self.std.shape != self.mean.shape:
            raise ValueError(f"std has {self.std.numel()} entries but mean has {self.mean.numel()}")
        self.dim = self.mean.numel()

    def sample(self, n: int, *, generator: torch.Generator | None = None) -> torch.Tensor:
        """Draw ``n`` points, shape ``(n, d)``."""
        n = check_int(n, "n")
        check_generator(generator)
        return self.mean + self.std * torch.randn(n, self.dim, generator=generator, dtype=self.mean.dtype)

    def log_prob(self, y: torch.Tensor) -> torch.Tensor:
        """Normalized log density of each row of ``y`` (shape ``(n, d)``), shape ``(n,)``."""
        check_batch(y, "y", dim=self.dim)
        z = (y - self.mean) / self.std
        return (-0.5 * z * z - torch.log(self.std) - 0.5 * math.log(2 * math.pi)).sum(dim=1)


class StudentTProposal:
    r"""Heavy-tailed proposal: independent Student-t coordinates with ``df`` degrees of freedom.

    .. math::

        q(y) = \prod_i \frac{1}{s_i}\, t_\nu\!\left(\frac{y_i - \mu_i}{s_i}\right).

    Samples use the inverse CDF (``scipy.stats.t.ppf``) of uniforms drawn from ``generator``, so they are
    reproducible like every other draw in :mod:`ebmlib`.

    Parameters
    ----------
    df : float
        Degrees of freedom :math:`\nu > 0` (small values give heavy tails; :math:`\nu\to\infty` is Gaussian).
    loc, scale : float or array-like of shape (d,)
    dtype : torch.dtype
    """

    def __init__(self, df: float, loc=0.0, scale=1.0, *, dtype: torch.dtype = torch.float64):
        self.df = check_positive(df, "df")
        self.loc = _vector(loc, "loc", dtype)
        scale_t = _vector(scale, "scale", dtype)
        if bool((scale_t <= 0).any()):
            raise ValueError(f"scale must be > 0, got {scale!r}")
        self.scale = scale_t.expand_as(self.loc).clone() if scale_t.numel() == 1 else scale_t
        if self.scale.shape != self.loc.shape:
            raise ValueError(f"scale has {self.scale.numel()} entries but loc has {self.loc.numel()}")
        self.dim = self.loc.numel()

    def sample(self, n: int, *, generator: torch.Generator | None = None) -> torch.Tensor:
        """Draw ``n`` points, shape ``(n, d)``."""
        n = check_int(n, "n")
        check_generator(generator)
        u = torch.rand(n, self.dim, generator=generator, dtype=torch.float64)
        u = u.clamp(min=np.finfo(np.float64).tiny)  # rand can return exactly 0
        t = torch.from_numpy(stats.t.ppf(u.numpy(), self.df)).to(self.loc.dtype)
        return self.loc + self.scale * t

    def log_prob(self, y: torch.Tensor) -> torch.Tensor:
        """Normalized log density of each row of ``y`` (shape ``(n, d)``), shape ``(n,)``."""
        check_batch(y, "y", dim=self.dim)
        nu = torch.tensor(self.df, dtype=y.dtype)
        z = (y - self.loc) / self.scale
        log_norm = (torch.lgamma((nu + 1) / 2) - torch.lgamma(nu / 2) - 0.5 * torch.log(nu * math.pi))
        return (log_norm - torch.log(self.scale) - (nu + 1) / 2 * torch.log1p(z * z / nu)).sum(dim=1)
