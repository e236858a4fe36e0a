r"""The experiment of Section 7 of :cite:p:`ebmgradientnote`: Geyer's IS-MLE for the scale of a
Gaussian.

Model: :math:`p(x\mid\theta) = \mathcal N(x\mid 0, \theta^2)`, so

.. math::

    E(x\mid\theta) = \frac{x^2}{2\theta^2}, \qquad Z(\theta) = \sqrt{2\pi}\,\theta,
    \qquad J(\theta) = \sum_{n=1}^N \frac{x_n^2}{2\theta^2} + N\log(\sqrt{2\pi}\,\theta).

Proposals form a location–scale family whose scale may depend on :math:`\theta`,

.. math::

    q(y\mid\theta) = \frac{1}{s(\theta)}\, q_0\!\left(\frac{y-\mu_q}{s(\theta)}\right),
    \qquad s(\theta) = a + b\,\theta,

with :math:`q_0` a standard Gaussian or a standard Student-t. The paper's
:math:`q_1 = \mathcal N(2, 2^2)` is :math:`(\mu_q, a, b) = (2, 2, 0)`; its
:math:`q_2(\cdot\mid\theta) = \mathcal N(2, (2+\theta)^2)` is :math:`(2, 2, 1)`; the optimal
proposal :math:`q\propto\phi(\cdot\mid\theta)` is :math:`(0, 0, 1)`.

Samples are drawn as :math:`y_m = \mu_q + s(\theta)\,t_m` with standardized draws
:math:`t_m\sim q_0` that are *shared across the grid of* :math:`\theta` within a run (common random
numbers). At each single :math:`\theta` the samples are exactly distributed as
:math:`q(\cdot\mid\theta)`, so any pointwise summary over runs (the mean curve, the band covering
all runs, the variance of :math:`\hat Z(\theta)`) has exactly the distribution it would have with
fresh draws at every :math:`\theta`; only the shape of a single realization across :math:`\theta`
changes, becoming smooth. Then the log weight is linear in four features of :math:`t`,

.. math::

    \log w = -\frac{(\mu_q + s t)^2}{2\theta^2} - \log q_0(t) + \log s
    = \underbrace{\left(-\tfrac{s^2}{2\theta^2}\right)}_{\times t^2}
    + \underbrace{\left(-\tfrac{\mu_q s}{\theta^2}\right)}_{\times t}
    + \underbrace{\left(-\tfrac{\mu_q^2}{2\theta^2} + \log s\right)}_{\times 1}
    + \underbrace{(-1)}_{\times \log q_0(t)},

(for a Gaussian :math:`q_0` the last feature folds into :math:`t^2` and :math:`1`), and
:func:`log_partition_is_grid` evaluates :math:`\log\hat Z` for all runs and all :math:`\theta`
at once.
"""

from __future__ import annotations

import math

import torch

from ..proposals import GaussianProposal, StudentTProposal
from ..validation import (
    check_batch,
    check_finite,
    check_generator,
    check_int,
    check_positive,
    check_tensor,
)

__all__ = [
    "log_partition_is_grid",
    "energy",
    "log_partition",
    "nll",
    "mle",
    "standardized_draws",
    "log_z_hat_curves",
    "ess_curves",
    "j_gl_curves",
    "j_gl_curves_fresh",
    "PAPER_PROPOSALS",
    "paper_experiment",
    "grid_argmin",
    "relative_second_moment",
    "weight_moment_finite",
]


def log_partition_is_grid(
    features: torch.Tensor, coefficients: torch.Tensor, *, chunk_size: int = 2
) -> torch.Tensor:
    r""":math:`\log\hat Z` for many independent runs and a whole grid of :math:`\theta` at once.

    For an exponential family and a Gaussian or Student-t proposal, the log weight is linear in a
    few features of each sample,

    .. math::

        \log w_{r\ell m} = \log\phi(y_{rm}\mid\theta_\ell) - \log q(y_{rm}\mid\theta_\ell)
        = \sum_k C_{\ell k}\, F_{rkm},

    (for example :math:`F = (y^2/2, \log q(y))`, :math:`C_\ell = (-1/\theta_\ell^2, -1)` for the
    model :math:`\mathcal N(0,\theta^2)` and a fixed proposal). Then :math:`\log\hat Z_{r\ell}` for
    every run :math:`r` and grid point :math:`\ell` is one batched matrix product followed by a
    log-mean-exp, evaluated in chunks of runs small enough to stay in the CPU cache. For stability
    the exponent is shifted by an upper bound on its maximum that follows from the range of each
    feature, folded into the matrix product; if that bound is ever so loose that a sum would
    underflow, the chunk is recomputed with the exact maximum. The exponentials are taken in base 2
    (cheaper than base :math:`e`, and exact up to rounding). This is what makes the book's 1000-run
    Monte-Carlo studies fast.

    Parameters
    ----------
    features : torch.Tensor, shape (R, K, M)
        Feature :math:`k` of sample :math:`m` of run :math:`r`.
    coefficients : torch.Tensor, shape (L, K)
        Coefficients :math:`C_{\ell k}` for each of :math:`L` parameter values.
    chunk_size : int
        Runs per chunk.

    Returns
    -------
    torch.Tensor, shape (R, L)
        :math:`\log\hat Z` (Eq. 7) for each run and parameter value. Not differentiable (computed in
        place).
    """
    check_tensor(features, "features")
    check_tensor(coefficients, "coefficients")
    chunk_size = check_int(chunk_size, "chunk_size")
    if features.ndim != 3 or features.shape[0] == 0 or features.shape[2] == 0:
        raise ValueError(
            f"features must have shape (R, K, M) with R, M >= 1, got {tuple(features.shape)}"
        )
    if coefficients.ndim != 2 or coefficients.shape[1] != features.shape[1]:
        raise ValueError(
            f"coefficients must have shape (L, {features.shape[1]}), "
            f"got {tuple(coefficients.shape)}"
        )
    check_finite(features, "features")
    check_finite(coefficients, "coefficients")
    n_runs, n_feat, n_samples = features.shape
    n_grid = coefficients.shape[0]
    coef2 = coefficients.to(features.dtype) / math.log(2)  # log2 w = C F / ln 2
    out = torch.empty(n_runs, n_grid, dtype=features.dtype)
    with torch.no_grad():
        f_max, f_min = features.amax(dim=2), features.amin(dim=2)  # (R, K)
        coef_batch = coef2.expand(chunk_size, n_grid, n_feat)
        for start in range(0, n_runs, chunk_size):
            stop = min(start + chunk_size, n_runs)
            # An upper bound on max_m log2 w from the per-run feature ranges:
            # sum_k max(C f_max, C f_min). Shifting by it inside the matrix product keeps every
            # power of 2 <= 1 without a separate max pass.
            shift = torch.maximum(
                coef2 * f_max[start:stop, None, :], coef2 * f_min[start:stop, None, :]
            ).sum(-1)
            log2_w = torch.baddbmm(
                -shift[..., None], coef_batch[: stop - start], features[start:stop]
            )
            total = log2_w.exp2_().sum(dim=-1)  # (c, L)
            underflow = total < 1e-280  # the bound was too loose: redo exactly
            if bool(underflow.any()):
                exact = torch.matmul(coef2, features[start:stop])
                peak = exact.amax(dim=-1)
                total = torch.where(underflow, (exact - peak[..., None]).exp2().sum(dim=-1), total)
                shift = torch.where(underflow, peak, shift)
            out[start:stop] = (total.log2_() + shift) * math.log(2)
    return out - math.log(n_samples)


# --------------------------------------------------------------------------------------------------
# Annealed importance sampling for RBMs
# --------------------------------------------------------------------------------------------------

#: Segments of the schedule of Salakhutdinov & Murray (2008): (end, step) pairs starting from
#: beta = 0.


def _thetas(thetas) -> torch.Tensor:
    thetas = torch.as_tensor(thetas, dtype=torch.float64).reshape(-1)
    if thetas.numel() == 0 or not bool(torch.isfinite(thetas).all()) or bool((thetas <= 0).any()):
        raise ValueError("thetas must be a non-empty set of finite, positive scales")
    return thetas


def energy(x: torch.Tensor, thetas) -> torch.Tensor:
    r""":math:`E(x\mid\theta) = x^2/(2\theta^2)` for every point and every :math:`\theta`: shape
    ``(n, L)``."""
    check_batch(x, "x", dim=1)
    th = _thetas(thetas)
    return x.to(torch.float64) ** 2 / (2 * th[None, :] ** 2)


def log_partition(thetas) -> torch.Tensor:
    r"""The exact :math:`\log Z(\theta) = \log(\sqrt{2\pi}\,\theta)`, shape ``(L,)``."""
    return 0.5 * math.log(2 * math.pi) + torch.log(_thetas(thetas))


def nll(x: torch.Tensor, thetas) -> torch.Tensor:
    r"""The exact negative log-likelihood :math:`J(\theta)` (paper Eq. 5) on a grid, shape
    ``(L,)``."""
    return energy(x, thetas).sum(0) + x.shape[0] * log_partition(thetas)


def mle(x: torch.Tensor) -> float:
    r"""The closed-form MLE :math:`\hat\theta = (\frac1N\sum_n x_n^2)^{1/2}`."""
    check_batch(x, "x", dim=1)
    return float(x.to(torch.float64).pow(2).mean().sqrt())


def standardized_draws(
    n_runs: int,
    n_samples: int,
    *,
    df: float | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    r"""Standardized proposal draws :math:`t_{rm}\sim q_0`, shape ``(n_runs, n_samples)``.

    ``df=None`` gives a standard Gaussian :math:`q_0`; a number gives a standard Student-t with
    ``df`` degrees of freedom. Pass the same ``df`` to :func:`log_z_hat_curves`."""
    n_runs = check_int(n_runs, "n_runs")
    n_samples = check_int(n_samples, "n_samples")
    check_generator(generator)
    base = GaussianProposal(0.0, 1.0) if df is None else StudentTProposal(check_positive(df, "df"))
    return base.sample(n_runs * n_samples, generator=generator).reshape(n_runs, n_samples)


def log_z_hat_curves(
    thetas,
    t: torch.Tensor,
    *,
    loc: float,
    scale_intercept: float,
    scale_slope: float = 0.0,
    df: float | None = None,
    chunk_size: int = 2,
) -> torch.Tensor:
    r"""IS estimates :math:`\log\hat Z(\theta)` (Eq. 7) for every run and every :math:`\theta`.

    Parameters
    ----------
    thetas : array-like of shape (L,)
        Positive grid of :math:`\theta`.
    t : torch.Tensor, shape (R, M)
        Standardized draws from :func:`standardized_draws` (drawn with the same ``df``).
    loc : float
        Proposal location :math:`\mu_q`.
    scale_intercept, scale_slope : float
        :math:`a` and :math:`b` in :math:`s(\theta) = a + b\theta`; :math:`s` must be positive on
        the grid.
    df : float, optional
        Degrees of freedom of a Student-t :math:`q_0`; ``None`` for a Gaussian :math:`q_0`.
    chunk_size : int
        Runs per chunk in :func:`~ebmlib.book.gaussian_scale.log_partition_is_grid`.

    Returns
    -------
    torch.Tensor, shape (R, L)
    """
    features, coefficients = _features_and_coefficients(
        thetas, t, loc, scale_intercept, scale_slope, df
    )
    return log_partition_is_grid(features, coefficients, chunk_size=chunk_size)


def ess_curves(
    thetas,
    t: torch.Tensor,
    *,
    loc: float,
    scale_intercept: float,
    scale_slope: float = 0.0,
    df: float | None = None,
    chunk_size: int = 2,
) -> torch.Tensor:
    r"""Effective sample size :math:`(\sum_m w_m)^2/\sum_m w_m^2` of every run at every
    :math:`\theta`, shape ``(R, L)``.

    Since :math:`\log w^2 = 2\log w` is linear in the same features with doubled coefficients, both
    sums come from :func:`~ebmlib.book.gaussian_scale.log_partition_is_grid`. Arguments as in
    :func:`log_z_hat_curves`."""
    features, coefficients = _features_and_coefficients(
        thetas, t, loc, scale_intercept, scale_slope, df
    )
    log_mean_w = log_partition_is_grid(features, coefficients, chunk_size=chunk_size)
    log_mean_w2 = log_partition_is_grid(features, 2 * coefficients, chunk_size=chunk_size)
    return t.shape[1] * torch.exp(2 * log_mean_w - log_mean_w2)


def _features_and_coefficients(thetas, t, loc, scale_intercept, scale_slope, df):
    """Features (R, K, M) of the draws and coefficients (L, K) such that log w = C F (see the module
    docstring)."""
    th = _thetas(thetas)
    check_tensor(t, "t")
    if t.ndim != 2:
        raise ValueError(f"t must have shape (R, M), got {tuple(t.shape)}")
    s = scale_intercept + scale_slope * th
    if bool((s <= 0).any()) or not math.isfinite(loc):
        raise ValueError(
            "the proposal scale a + b*theta must be positive on the whole grid and loc finite"
        )
    coefficients = [-(s**2) / (2 * th**2), -loc * s / th**2, -(loc**2) / (2 * th**2) + torch.log(s)]
    n_feat = 3 if df is None else 4
    features = torch.empty(t.shape[0], n_feat, t.shape[1], dtype=t.dtype)
    torch.mul(t, t, out=features[:, 0])
    features[:, 1] = t
    features[:, 2] = 1.0
    if df is None:
        # log q0(t) = -t^2/2 - log(2 pi)/2 is itself linear in (t^2, 1): fold it into those
        # coefficients
        coefficients[0] = coefficients[0] + 0.5
        coefficients[2] = coefficients[2] + 0.5 * math.log(2 * math.pi)
    else:
        features[:, 3] = (
            StudentTProposal(check_positive(df, "df")).log_prob(t.reshape(-1, 1)).reshape(t.shape)
        )
        coefficients.append(-torch.ones_like(th))
    return features, torch.stack(coefficients, dim=1)


def j_gl_curves(
    x: torch.Tensor,
    thetas,
    t: torch.Tensor,
    *,
    loc: float,
    scale_intercept: float,
    scale_slope: float = 0.0,
    df: float | None = None,
    chunk_size: int = 2,
) -> torch.Tensor:
    r"""Geyer's :math:`J_{GL}(\theta) = \sum_n E(x_n\mid\theta) + N\log\hat Z(\theta)` (paper Eq. 8)
    for every run.

    Arguments as in :func:`log_z_hat_curves`, plus the data ``x`` of shape ``(N, 1)``.

    Returns
    -------
    torch.Tensor, shape (R, L)
    """
    log_z = log_z_hat_curves(
        thetas,
        t,
        loc=loc,
        scale_intercept=scale_intercept,
        scale_slope=scale_slope,
        df=df,
        chunk_size=chunk_size,
    )
    return energy(x, thetas).sum(0)[None, :] + x.shape[0] * log_z


def j_gl_curves_fresh(
    x: torch.Tensor,
    thetas,
    n_runs: int,
    n_samples: int,
    *,
    loc: float,
    scale_intercept: float,
    scale_slope: float = 0.0,
    df: float | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    r""":math:`J_{GL}(\theta)` with a *fresh* proposal sample at every :math:`\theta`, as the paper
    draws it.

    For a proposal that depends on :math:`\theta`, Section 3.2 of :cite:p:`ebmgradientnote` draws a
    new sample :math:`y^{(\theta_\ell)}_1,\dots,y^{(\theta_\ell)}_M\sim q(\cdot\mid\theta_\ell)` at
    each grid point. Here the standardized draws of grid point :math:`\ell` are
    ``standardized_draws(n_runs, n_samples, df=df)``, drawn anew for each :math:`\ell` in grid
    order, so the values at different :math:`\theta` are independent. At any single :math:`\theta`
    the result has the same distribution as :func:`j_gl_curves` with common random numbers; a single
    curve is jagged instead of smooth, which matters for its :math:`\arg\min`.

    Parameters
    ----------
    x : torch.Tensor, shape (N, 1)
        The observations.
    thetas : array-like of shape (L,)
        Positive grid of :math:`\theta`.
    n_runs, n_samples : int
        Runs :math:`R` and proposal sample size :math:`M` at each :math:`\theta`.
    loc, scale_intercept, scale_slope, df
        The proposal, as in :func:`log_z_hat_curves`.
    generator : torch.Generator, optional

    Returns
    -------
    torch.Tensor, shape (R, L)
    """
    th = _thetas(thetas)
    n_runs = check_int(n_runs, "n_runs")
    n_samples = check_int(n_samples, "n_samples")
    check_generator(generator)
    out = torch.empty(n_runs, th.numel(), dtype=torch.float64)
    for ell in range(th.numel()):
        t = standardized_draws(n_runs, n_samples, df=df, generator=generator)
        out[:, ell] = j_gl_curves(
            x,
            th[ell : ell + 1],
            t,
            loc=loc,
            scale_intercept=scale_intercept,
            scale_slope=scale_slope,
            df=df,
            chunk_size=n_runs,
        )[:, 0]
    return out


#: The paper's two proposals (Section 7): q1 = N(2, 2^2), independent of theta;
#: q2 = N(2, (2 + theta)^2).
PAPER_PROPOSALS = {
    "q1": {"loc": 2.0, "scale_intercept": 2.0, "scale_slope": 0.0},
    "q2": {"loc": 2.0, "scale_intercept": 2.0, "scale_slope": 1.0},
}


def paper_experiment(
    x: torch.Tensor,
    thetas,
    m_values,
    n_runs: int,
    *,
    proposals: dict | None = None,
    generator: torch.Generator | None = None,
) -> dict:
    r"""All the curves behind the paper's Figures 1 and 2: :math:`J_{GL}(\theta)` for every
    proposal, every :math:`M`, every run and every :math:`\theta`.

    Parameters
    ----------
    x : torch.Tensor, shape (N, 1)
        The observations.
    thetas : array-like of shape (L,)
        The grid of :math:`\theta`.
    m_values : sequence of int
        Proposal sample sizes :math:`M`.
    n_runs : int
        Independent runs (independent proposal samples) for each proposal and :math:`M`.
    proposals : dict, optional
        Name to ``dict(loc=, scale_intercept=, scale_slope=, df=None)``; default
        :data:`PAPER_PROPOSALS`.
    generator : torch.Generator, optional

    Returns
    -------
    dict
        ``{(name, M): curves}`` with ``curves`` of shape ``(n_runs, L)``.
    """
    proposals = PAPER_PROPOSALS if proposals is None else proposals
    out = {}
    for name, spec in proposals.items():
        for m in m_values:
            t = standardized_draws(n_runs, m, df=spec.get("df"), generator=generator)
            out[(name, int(m))] = j_gl_curves(x, thetas, t, **spec)
    return out


def grid_argmin(curves: torch.Tensor, thetas) -> torch.Tensor:
    r"""The minimizer of each curve (Eq. 9), refined by a parabola through the grid minimum and its
    neighbours.

    Parameters
    ----------
    curves : torch.Tensor, shape (R, L)
    thetas : array-like of shape (L,)
        Increasing, equally spaced grid.

    Returns
    -------
    torch.Tensor, shape (R,)
        :math:`\hat\theta_{GL}` for each run; a minimum at the edge of the grid is returned as that
        edge.
    """
    th = _thetas(thetas)
    check_tensor(curves, "curves")
    if curves.ndim != 2 or curves.shape[1] != th.numel() or th.numel() < 3:
        raise ValueError(f"curves must have shape (R, {th.numel()}) with at least 3 grid points")
    idx = curves.argmin(dim=1).clamp(1, th.numel() - 2)
    left, mid, right = (curves.gather(1, (idx + k)[:, None])[:, 0] for k in (-1, 0, 1))
    denom = left - 2 * mid + right
    step = th[1] - th[0]
    offset = torch.where(denom > 0, 0.5 * (left - right) / denom, torch.zeros_like(denom)).clamp(
        -1, 1
    )
    best = th[idx] + offset * step
    at_edge = (curves.argmin(dim=1) == 0) | (curves.argmin(dim=1) == th.numel() - 1)
    return torch.where(at_edge, th[curves.argmin(dim=1)], best)


def relative_second_moment(
    thetas, *, loc: float, scale_intercept: float, scale_slope: float = 0.0, df: float | None = None
) -> torch.Tensor:
    r"""The exact
    :math:`\rho(\theta) = \mathbb E_q[(p/q)^2] = \int p(y\mid\theta)^2/q(y\mid\theta)\,dy`.

    It fixes the variance of the IS estimator (Eq. 7):
    :math:`\operatorname{Var}(\hat Z)/Z^2 = (\rho - 1)/M`, so by the delta method
    :math:`\operatorname{sd}(\log\hat Z)\approx\sqrt{(\rho-1)/M}` and
    :math:`\mathrm{ESS}\approx M/\rho` for large :math:`M`. It is infinite when the proposal's tails
    are too light.

    For a Gaussian proposal :math:`\mathcal N(\mu, s^2)` and :math:`p=\mathcal N(0,\theta^2)`, with
    :math:`a = 1/\theta^2` and :math:`b = 1/(2s^2)`,

    .. math::

        \rho = \frac{s}{\sqrt{2\pi}\,\theta^2}\sqrt{\frac{\pi}{a-b}}
        \exp\left\{\frac{b^2\mu^2}{a-b} + b\mu^2\right\}\quad (a > b),
        \qquad \rho=\infty \text{ if } s\le\theta/\sqrt2 .

    For a Student-t proposal it is finite for every :math:`\theta` and is computed by
    ``scipy.integrate.quad``.

    Returns
    -------
    torch.Tensor, shape (L,)
    """
    import numpy as np
    from scipy import integrate, special

    th = _thetas(thetas)
    out = []
    for theta in th.tolist():
        s = scale_intercept + scale_slope * theta
        if s <= 0:
            raise ValueError("the proposal scale a + b*theta must be positive on the whole grid")
        if df is None:
            a, b = 1 / theta**2, 1 / (2 * s * s)
            if a <= b:
                out.append(math.inf)
                continue
            out.append(
                s
                / (math.sqrt(2 * math.pi) * theta**2)
                * math.sqrt(math.pi / (a - b))
                * math.exp(b * b * loc * loc / (a - b) + b * loc * loc)
            )
            continue
        log_t_norm = (
            special.gammaln((df + 1) / 2)
            - special.gammaln(df / 2)
            - 0.5 * math.log(df * math.pi)
            - math.log(s)
        )
        log_p_norm = -math.log(theta) - 0.5 * math.log(2 * math.pi)

        def integrand(y, theta=theta, s=s, log_t_norm=log_t_norm, log_p_norm=log_p_norm):
            log_q = log_t_norm - (df + 1) / 2 * math.log1p(((y - loc) / s) ** 2 / df)
            return math.exp(2 * (log_p_norm - y * y / (2 * theta * theta)) - log_q)

        value, _ = integrate.quad(integrand, -np.inf, np.inf, epsabs=0, epsrel=1e-10, limit=200)
        out.append(value)
    return torch.tensor(out, dtype=torch.float64)


def weight_moment_finite(
    thetas,
    k: int,
    *,
    loc: float,
    scale_intercept: float,
    scale_slope: float = 0.0,
    df: float | None = None,
) -> torch.Tensor:
    r"""Whether the importance weight :math:`w = p/q` has a finite :math:`k`-th moment under
    :math:`q`, per :math:`\theta`.

    :math:`\mathbb E_q[w^k] = \int p^k/q^{k-1}` is finite for a Gaussian proposal of scale :math:`s`
    exactly when :math:`s^2 > (k-1)\theta^2/k` (for :math:`k=2`: :math:`s>\theta/\sqrt2`), and
    always for a Student-t proposal. A sample variance of :math:`\hat Z` over runs is itself
    reliable only where the fourth moment is finite.

    Returns
    -------
    torch.Tensor of bool, shape (L,)
    """
    th = _thetas(thetas)
    k = check_int(k, "k", minimum=1)
    s = scale_intercept + scale_slope * th
    if bool((s <= 0).any()):
        raise ValueError("the proposal scale a + b*theta must be positive on the whole grid")
    if df is not None:
        return torch.ones_like(th, dtype=torch.bool)
    return s * s > (k - 1) * th * th / k
