"""Batched exact MLE for exponential families, against the closed-form Gaussian MLE; IS-MLE, score
matching and DSM in closed form against the generic losses."""

import math

import pytest
import torch
from scipy import integrate
from scipy import stats as sstats

from conftest import P_FALSE_ALARM
from ebmlib import PolynomialEnergy
from ebmlib.estimators import (
    denoising_score_matching_exponential_family,
    mle_exponential_family,
    score_matching_exponential_family,
)
from ebmlib.exact import log_partition_quadrature, quadrature_grid, sample_quadrature
from ebmlib.losses import (
    denoising_score_matching_loss,
    importance_sampling_nll,
    score_matching_loss,
    sliced_score_matching_loss,
)
from ebmlib.proposals import GaussianProposal


def test_mle_exponential_family_matches_the_gaussian_closed_form_for_every_replicate():
    # E = theta_1 x + theta_2 x^2 is N(mu, v) with theta_2 = 1/(2v), theta_1 = -mu/v
    gen = torch.Generator().manual_seed(0)
    x = 0.7 + 1.3 * torch.randn(5, 400, 1, generator=gen, dtype=torch.float64)
    stats = PolynomialEnergy([0.0, 1.0], powers=(1, 2)).sufficient_statistics
    grid, log_w, _ = quadrature_grid([(-12.0, 12.0)], 8001)
    mean_stats = torch.stack([stats(xr).mean(0) for xr in x])
    theta = mle_exponential_family(mean_stats, stats(grid), log_w)
    mu, v = x.mean(dim=(1, 2)), x.var(dim=(1, 2), unbiased=False)
    assert torch.allclose(theta[:, 1], 1 / (2 * v), rtol=1e-8)
    assert torch.allclose(theta[:, 0], -mu / v, rtol=1e-8, atol=1e-10)
    single = mle_exponential_family(mean_stats[2], stats(grid), log_w)
    assert single.shape == (2,) and torch.allclose(single, theta[2])


def test_newton_solvers_warn_when_they_stop_before_converging():
    from ebmlib.estimators import NCEEstimate, nce_exponential_family
    from ebmlib.validation import ConvergenceWarning

    gen = torch.Generator().manual_seed(0)
    x = 0.7 + 1.3 * torch.randn(3, 200, 1, generator=gen, dtype=torch.float64)
    stats = PolynomialEnergy([0.0, 1.0], powers=(1, 2)).sufficient_statistics
    grid, log_w, _ = quadrature_grid([(-12.0, 12.0)], 2001)
    mean_stats = torch.stack([stats(xr).mean(0) for xr in x])
    with pytest.warns(ConvergenceWarning, match=r"mle_exponential_family.*max_iter=1 .*decrement"):
        mle_exponential_family(mean_stats, stats(grid), log_w, max_iter=1)
    y = 2.0 * torch.randn(3, 400, 1, generator=gen, dtype=torch.float64)
    lq_x = -0.5 * (x[..., 0] / 2.0) ** 2 - math.log(2.0 * math.sqrt(2 * math.pi))
    lq_y = -0.5 * (y[..., 0] / 2.0) ** 2 - math.log(2.0 * math.sqrt(2 * math.pi))
    t_x, t_y = (
        stats(x.reshape(-1, 1)).reshape(3, 200, 2),
        stats(y.reshape(-1, 1)).reshape(3, 400, 2),
    )
    with pytest.warns(ConvergenceWarning, match=r"nce_exponential_family.*max_iter=1 "):
        nce_exponential_family(t_x, t_y, lq_x, lq_y, max_iter=1)
    result = nce_exponential_family(t_x, t_y, lq_x, lq_y)  # converges: no warning
    assert isinstance(result, NCEEstimate) and result.theta.shape == (3, 2)
    assert result.log_z.shape == (3,)


def test_mle_exponential_family_rejects_bad_input():
    grid = torch.zeros(10, 2, dtype=torch.float64)
    with pytest.raises(ValueError, match="disagree"):
        mle_exponential_family(
            torch.zeros(3, 3, dtype=torch.float64), grid, torch.zeros(10, dtype=torch.float64)
        )
    with pytest.raises(ValueError, match="log_weights"):
        mle_exponential_family(
            torch.zeros(2, dtype=torch.float64), grid, torch.zeros(9, dtype=torch.float64)
        )
    with pytest.raises(ValueError, match="mean_stats"):
        mle_exponential_family(
            torch.tensor([float("nan"), 0.0]), grid, torch.zeros(10, dtype=torch.float64)
        )


# ---------------------------------------------------------------- IS-MLE, score matching, DSM in
# closed form


def quartic_features(x):
    """T = (x^2, x^4), dT/dx and d2T/dx2 for x of shape (..., 1)."""
    return (
        torch.cat([x**2, x**4], -1),
        torch.cat([2 * x, 4 * x**3], -1)[..., None],
        torch.cat([2 * torch.ones_like(x), 12 * x**2], -1),
    )


def grad_norm(loss, energy):
    (g,) = torch.autograd.grad(loss, energy.theta)
    return float(g.abs().max())


def test_sample_quadrature_matches_the_exact_cdf():
    energy = PolynomialEnergy([-1.0, 0.25])
    x = sample_quadrature(energy, (-6.0, 6.0), 20000, generator=torch.Generator().manual_seed(0))
    log_z = float(log_partition_quadrature(energy, [(-6.0, 6.0)], 20001).detach())

    def density(t):
        return math.exp(-(-t * t + 0.25 * t**4) - log_z)

    def cdf(t):
        return integrate.quad(density, -6.0, t, epsabs=1e-12)[0]

    sorted_x = torch.sort(x[:, 0]).values
    # Kolmogorov-Smirnov distance against the exact CDF, at every 50th order statistic
    d = max(
        abs(cdf(float(v)) - (i + 1) / len(sorted_x)) for i, v in list(enumerate(sorted_x))[::50]
    )
    assert d < sstats.kstwo.ppf(
        1 - P_FALSE_ALARM, len(sorted_x)
    )  # the same false-alarm rate as Z_TOL
    with pytest.raises(ValueError, match="cut off mass"):
        sample_quadrature(energy, (-1.0, 1.0), 10)


def test_batched_grids_give_the_importance_sampling_mle():
    """Per-replicate proposal samples: the minimizer of Geyer's J_GL, checked by the generic loss's
    gradient."""
    gen = torch.Generator().manual_seed(1)
    truth = PolynomialEnergy([-1.0, 0.25])
    x = sample_quadrature(truth, (-6.0, 6.0), 3 * 200, generator=gen).view(3, 200, 1)
    q = GaussianProposal(0.0, 2.0)
    y = q.sample(3 * 2000, generator=gen).view(3, 2000, 1)
    log_q = q.log_prob(y.view(-1, 1)).view(3, 2000)
    t_x, t_y = quartic_features(x)[0], quartic_features(y)[0]
    theta = mle_exponential_family(
        t_x.mean(1), t_y, -log_q - math.log(2000), theta0=torch.tensor([0.0, 0.1])
    )
    for r in range(3):
        energy = PolynomialEnergy(theta[r].tolist())
        loss = importance_sampling_nll(energy, x[r], y[r], log_q[r]).mean()
        assert grad_norm(loss, energy) < 1e-5  # Newton stops at a decrement of 1e-12
    with pytest.raises(ValueError, match="log_weights must have shape"):
        mle_exponential_family(t_x.mean(1), t_y, log_q[0])


def test_score_matching_closed_forms_minimize_the_generic_losses():
    gen = torch.Generator().manual_seed(2)
    x = sample_quadrature(PolynomialEnergy([-1.0, 0.25]), (-6.0, 6.0), 500, generator=gen)
    _, g, lap = quartic_features(x)
    theta = score_matching_exponential_family(g[None], lap[None])[0]
    energy = PolynomialEnergy(theta.tolist())
    assert grad_norm(score_matching_loss(energy, x), energy) < 1e-10
    # sliced (variance-reduced): the Laplacian is replaced by v^2 T'' for the loss's own projections
    v = torch.randn(500, 1, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    theta_s = score_matching_exponential_family(g[None], (v**2 * lap)[None])[0]
    energy = PolynomialEnergy(theta_s.tolist())
    loss = sliced_score_matching_loss(energy, x, 1, generator=torch.Generator().manual_seed(3))
    assert grad_norm(loss, energy) < 1e-10
    # denoising: the loss draws eps = randn(x.shape) from its generator
    sigma = 0.3
    eps = torch.randn(x.shape, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    _, g_noisy, _ = quartic_features(x + sigma * eps)
    theta_d = denoising_score_matching_exponential_family(g_noisy[None], eps[None], sigma)[0]
    energy = PolynomialEnergy(theta_d.tolist())
    loss = denoising_score_matching_loss(
        energy, x, sigma, generator=torch.Generator().manual_seed(4)
    )
    assert grad_norm(loss, energy) < 1e-10


def test_score_matching_equals_the_mle_for_a_gaussian():
    x = 1.7 * torch.randn(
        4, 300, 1, generator=torch.Generator().manual_seed(5), dtype=torch.float64
    )
    theta = score_matching_exponential_family(2 * x[..., None], 2 * torch.ones_like(x))  # T = x^2
    assert torch.allclose(theta[:, 0], 1 / (2 * (x**2).mean((1, 2))), rtol=1e-10)


def test_closed_form_estimators_reject_bad_input():
    g = torch.zeros(2, 5, 2, 1, dtype=torch.float64)
    with pytest.raises(ValueError, match="second_stats must have shape"):
        score_matching_exponential_family(g, torch.zeros(2, 5, 3, dtype=torch.float64))
    with pytest.raises(ValueError, match="grad_stats must have 4 dimensions"):
        score_matching_exponential_family(
            torch.zeros(5, 2, 1, dtype=torch.float64), torch.zeros(2, 5, 2)
        )
    with pytest.raises(ValueError, match="sigma"):
        denoising_score_matching_exponential_family(
            g, torch.zeros(2, 5, 1, dtype=torch.float64), 0.0
        )
    with pytest.raises(ValueError, match="noise must have shape"):
        denoising_score_matching_exponential_family(
            g, torch.zeros(2, 4, 1, dtype=torch.float64), 0.1
        )
    with pytest.raises(ValueError, match="NaN"):
        score_matching_exponential_family(
            g * float("nan"), torch.zeros(2, 5, 2, dtype=torch.float64)
        )
