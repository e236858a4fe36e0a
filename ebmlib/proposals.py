r"""Proposal (reference) densities :math:`q(y)` for importance sampling and independent
Metropolis–Hastings.

A proposal is any object with

* ``sample(n, *, generator=None)`` returning a tensor of shape ``(n, d)``, and
* ``log_prob(y)`` mapping ``(n, d)`` to normalized log densities of shape ``(n,)``.

The paper's two requirements on a proposal (Section 3.2 of :cite:p:`ebmgradientnote`) are exactly
these two methods: it can be evaluated point-wise, including its normalizing constant, and it can be
sampled."""

from __future__ import annotations

import math

import numpy as np
import torch
from scipy import stats

from .validation import check_batch, check_generator, check_int, check_positive

__all__ = [
    "GaussianProposal",
    "StudentTProposal",
    "gaussian_relative_second_moment",
    "self_normalized_variance",
    "gaussian_truncated_second_moment",
]


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
        check_generator(generator, device=self.mean.device)
        return self.mean + self.std * torch.randn(
            n, self.dim, generator=generator, dtype=self.mean.dtype, device=self.mean.device
        )

    def log_prob(self, y: torch.Tensor) -> torch.Tensor:
        """Normalized log density of each row of ``y`` (shape ``(n, d)``), shape ``(n,)``."""
        check_batch(y, "y", dim=self.dim)
        z = (y - self.mean) / self.std
        return (-0.5 * z * z - torch.log(self.std) - 0.5 * math.log(2 * math.pi)).sum(dim=1)


class StudentTProposal:
    r"""Heavy-tailed proposal: independent Student-t coordinates with ``df`` degrees of freedom.

    .. math::

        q(y) = \prod_i \frac{1}{s_i}\, t_\nu\!\left(\frac{y_i - \mu_i}{s_i}\right).

    Samples use the inverse CDF (``scipy.stats.t.ppf``) of uniforms drawn from ``generator``, so
    they are reproducible like every other draw in :mod:`ebmlib`.

    Parameters
    ----------
    df : float
        Degrees of freedom :math:`\nu > 0` (small values give heavy tails; :math:`\nu\to\infty` is
        Gaussian).
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
            raise ValueError(
                f"scale has {self.scale.numel()} entries but loc has {self.loc.numel()}"
            )
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
        log_norm = torch.lgamma((nu + 1) / 2) - torch.lgamma(nu / 2) - 0.5 * torch.log(nu * math.pi)
        return (log_norm - torch.log(self.scale) - (nu + 1) / 2 * torch.log1p(z * z / nu)).sum(
            dim=1
        )


def gaussian_relative_second_moment(scale_ratio, *, dim: int = 1) -> torch.Tensor:
    r"""Exact :math:`\rho = \mathbb E_q[(p/q)^2]` for a Gaussian proposal that is ``scale_ratio``
    times too wide.

    Target :math:`p = \mathcal N(0, \theta^2 I_d)`, proposal
    :math:`q = \mathcal N(0, (c\theta)^2 I_d)` with :math:`c` = ``scale_ratio`` and :math:`d` =
    ``dim``. In one dimension

    .. math::

        \rho_1(c) = \int \frac{p(y)^2}{q(y)}\,dy = \frac{c}{\sqrt{2\pi}\,\theta}
        \int e^{-\frac{y^2}{2\theta^2}\left(2 - \frac{1}{c^2}\right)}\,dy
        = \frac{c^2}{\sqrt{2c^2 - 1}} \quad (c > 1/\sqrt2),
        \qquad \rho_1(c) = \infty \quad (c\le 1/\sqrt2),

    independent of :math:`\theta`. For the product densities the weight
    :math:`p/q = \prod_i p_i(y_i)/q_i(y_i)` is a product of independent factors under :math:`q`, so
    :math:`\rho_d(c) = \rho_1(c)^d`. It fixes the relative variance of the IS estimate of :math:`Z`
    from :math:`M` draws, :math:`(\rho_d - 1)/M`, and the effective sample size,
    :math:`\mathrm{ESS}\approx M/\rho_d`.

    Parameters
    ----------
    scale_ratio : float or array-like
        Positive ratios :math:`c` of the proposal's standard deviation to the target's.
    dim : int
        Dimension :math:`d\ge 1`.

    Returns
    -------
    torch.Tensor, float64, the shape of ``scale_ratio`` (0-d for a number)
        :math:`\rho_d(c)`; ``inf`` where :math:`c\le 1/\sqrt2` (and where the value overflows
        float64).
    """
    if isinstance(scale_ratio, bool) or not isinstance(
        scale_ratio, (int, float, list, tuple, np.ndarray, torch.Tensor)
    ):
        raise TypeError(
            f"scale_ratio must be a number or an array of numbers, got {type(scale_ratio).__name__}"
        )
    c = torch.as_tensor(scale_ratio, dtype=torch.float64)
    if c.numel() == 0 or not bool(torch.isfinite(c).all()) or bool((c <= 0).any()):
        raise ValueError(f"scale_ratio must hold finite values > 0, got {scale_ratio!r}")
    dim = check_int(dim, "dim")
    finite = 2 * c * c > 1
    gap = torch.where(finite, 2 * c * c - 1, torch.ones_like(c))
    log_rho = dim * (2 * torch.log(c) - 0.5 * torch.log(gap))
    return torch.where(finite, torch.exp(log_rho), torch.full_like(c, math.inf))


def _check_density_1d(obj, name: str) -> None:
    if not callable(getattr(obj, "log_prob", None)):
        raise TypeError(f"{name} must have a log_prob(y) method (see ebmlib.proposals)")
    if getattr(obj, "dim", 1) != 1:
        raise ValueError(f"{name} must be one-dimensional, got dim={obj.dim}")


def self_normalized_variance(
    target, proposal, fn, *, lower: float = -math.inf, upper: float = math.inf
) -> float:
    r"""Asymptotic variance of the self-normalized IS estimate of :math:`\mathbb E_p[f]`, by
    quadrature (1-D).

    With :math:`y_m\sim q` and :math:`\bar w_m = w_m/\sum_j w_j`, :math:`w = p/q`, the delta method
    gives :math:`M\operatorname{Var}\big(\sum_m \bar w_m f(y_m)\big)\to\sigma^2_q` as
    :math:`M\to\infty`, where

    .. math::

        \sigma^2_q = \int \frac{p(y)^2}{q(y)}\,\big(f(y) - \mathbb E_p[f]\big)^2\,dy .

    For :math:`q = p` it is :math:`\operatorname{Var}_p(f)`, the variance of a mean of exact
    samples; it is not the smallest: :math:`\sigma^2_q` is minimized by
    :math:`q\propto p\,|f-\mathbb E_p f|` :cite:p:`owen2013mc`. It is infinite where :math:`p^2/q`
    is not integrable; pass finite ``lower`` and ``upper`` to see the truncated integral grow.

    Parameters
    ----------
    target, proposal : objects with ``log_prob(y)``
        Normalized one-dimensional densities :math:`p` and :math:`q` (e.g.
        :class:`GaussianProposal`).
    fn : callable
        :math:`f`, mapping a float to a float.
    lower, upper : float
        Integration range (default the real line).

    Returns
    -------
    float
        :math:`\sigma^2_q`.
    """
    from scipy import integrate

    _check_density_1d(target, "target")
    _check_density_1d(proposal, "proposal")
    if not callable(fn):
        raise TypeError("fn must be callable")
    lower, upper = float(lower), float(upper)
    if math.isnan(lower) or math.isnan(upper) or not lower < upper:
        raise ValueError(f"lower must be < upper, got lower={lower}, upper={upper}")

    def log_p(y):
        return float(target.log_prob(torch.tensor([[y]], dtype=torch.float64))[0])

    def log_q(y):
        return float(proposal.log_prob(torch.tensor([[y]], dtype=torch.float64))[0])

    opts = dict(epsabs=0.0, epsrel=1e-10, limit=400)
    mean_f = integrate.quad(lambda y: math.exp(log_p(y)) * fn(y), -math.inf, math.inf, **opts)[0]
    value = integrate.quad(
        lambda y: math.exp(2 * log_p(y) - log_q(y)) * (fn(y) - mean_f) ** 2, lower, upper, **opts
    )[0]
    return float(value)


def gaussian_truncated_second_moment(
    theta: float, loc: float, scale: float, half_width: float
) -> float:
    r"""Part of :math:`\rho = \mathbb E_q[(p/q)^2]` from the window :math:`|y - \mu| \le h` (closed
    form).

    Target :math:`p = \mathcal N(0,\theta^2)`, proposal :math:`q = \mathcal N(\mu, s^2)`. Completing
    the square,

    .. math::

        \frac{p(y)^2}{q(y)} = \frac{s}{\sqrt{2\pi}\,\theta^2}\exp\left(-A y^2 - \frac{\mu}{s^2}\,y
        + \frac{\mu^2}{2s^2}\right), \qquad A = \frac{1}{\theta^2} - \frac{1}{2s^2},

    so :math:`\rho = \lim_{h\to\infty}\rho_h` is finite exactly when :math:`A > 0`, i.e.
    :math:`s > \theta/\sqrt2`. When :math:`A \le 0` the integrand *grows* in the tails and
    :math:`\rho_h\to\infty`. The integral over :math:`[\mu-h, \mu+h]` is evaluated with the error
    function (:math:`A>0`), the imaginary error function (:math:`A<0`) or exactly (:math:`A=0`).

    Parameters
    ----------
    theta, scale : float
        Positive :math:`\theta` and :math:`s`.
    loc : float
        :math:`\mu`.
    half_width : float
        :math:`h > 0` (``math.inf`` gives :math:`\rho`).

    Returns
    -------
    float
    """
    from scipy import special

    theta, scale = check_positive(theta, "theta"), check_positive(scale, "scale")
    loc = float(loc)
    if not math.isfinite(loc):
        raise ValueError(f"loc must be finite, got {loc}")
    if (
        isinstance(half_width, bool)
        or not isinstance(half_width, (int, float))
        or math.isnan(half_width)
        or half_width <= 0
    ):
        raise ValueError(f"half_width must be > 0, got {half_width!r}")
    a = 1 / theta**2 - 1 / (2 * scale**2)
    b = loc / scale**2
    pref = scale / (math.sqrt(2 * math.pi) * theta**2) * math.exp(loc**2 / (2 * scale**2))
    lo, hi = loc - half_width, loc + half_width
    if a > 0:  # exp(-a (y + b/2a)^2 + b^2/4a)
        shift, r = b / (2 * a), math.sqrt(a)
        return float(
            pref
            * math.exp(b * b / (4 * a))
            * 0.5
            * math.sqrt(math.pi / a)
            * (special.erf(r * (hi + shift)) - special.erf(r * (lo + shift)))
        )
    if math.isinf(half_width):
        return math.inf
    if abs(a) <= 1e-9 / theta**2:  # A = 0 up to rounding: exp(-b y)
        return pref * (hi - lo) if b == 0 else pref * (math.exp(-b * lo) - math.exp(-b * hi)) / b
    c = -a  # exp(c (y - b/2c)^2 - b^2/4c)
    shift, r = b / (2 * c), math.sqrt(c)
    return float(
        pref
        * math.exp(-b * b / (4 * c))
        * 0.5
        * math.sqrt(math.pi / c)
        * (special.erfi(r * (hi - shift)) - special.erfi(r * (lo - shift)))
    )
