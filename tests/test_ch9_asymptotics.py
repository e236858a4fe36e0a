"""Sandwich (asymptotic) covariances of the closed-form estimators, and DSM with several or
antithetic draws."""

import math

import pytest
import torch

from conftest import Z_TOL
from ebmlib import PolynomialEnergy
from ebmlib.estimators import (
    denoising_perturbation,
    denoising_score_matching_asymptotics,
    denoising_score_matching_exponential_family,
    is_mle_asymptotics,
    mle_exponential_family,
    nce_asymptotics,
    nce_exponential_family,
    sandwich_covariance,
    score_matching_asymptotics,
    score_matching_exponential_family,
)
from ebmlib.exact import log_partition_quadrature, quadrature_grid, sample_quadrature
from ebmlib.proposals import GaussianProposal

F64 = torch.float64
BOX = (-6.0, 6.0)
THETA = torch.tensor([-1.0, 0.25], dtype=F64)  # the double well of chapter 9


def stats(x):
    return torch.cat([x**2, x**4], -1)


def grad_stats(x):
    return torch.cat([2 * x, 4 * x**3], -1)[..., None]


def second_stats(x):
    return torch.cat([2 * torch.ones_like(x), 12 * x**2], -1)


def gaussian_grid(mu, s):
    grid, log_w, _ = quadrature_grid([(mu - 14 * s, mu + 14 * s)], 8001)
    log_p = -0.5 * ((grid[:, 0] - mu) / s) ** 2 - math.log(s * math.sqrt(2 * math.pi))
    return grid, log_w, log_p, torch.softmax(log_w + log_p, 0)


@pytest.fixture(scope="module")
def double_well():
    truth = PolynomialEnergy(THETA.tolist())
    grid, log_w, _ = quadrature_grid([BOX], 4001)
    log_p = -truth(grid).detach() - log_partition_quadrature(truth, [BOX], 4001).detach()
    probs = torch.softmax(log_w + log_p, 0)
    centred = stats(grid) - probs @ stats(grid)
    fisher = torch.einsum("g,gk,gl->kl", probs, centred, centred)
    return truth, grid, log_w, log_p, probs, fisher


def test_score_matching_on_a_gaussian_has_the_mle_covariance():
    # T = (x, x^2): SM is the MLE, whose asymptotic covariance is I^{-1} with I = Cov T in closed
    # form
    mu, s = 0.7, 1.3
    grid, _, _, probs = gaussian_grid(mu, s)
    x = grid
    g = torch.cat([torch.ones_like(x), 2 * x], -1)[..., None]
    lap = torch.cat([torch.zeros_like(x), 2 * torch.ones_like(x)], -1)
    theta, cov = score_matching_asymptotics(g, lap, probs)
    assert torch.allclose(theta, torch.tensor([-mu / s**2, 1 / (2 * s**2)], dtype=F64), rtol=1e-9)
    fisher = torch.tensor(
        [[s**2, 2 * mu * s**2], [2 * mu * s**2, 4 * mu**2 * s**2 + 2 * s**4]], dtype=F64
    )
    assert torch.allclose(cov, torch.linalg.inv(fisher), rtol=1e-8)
    # the same through the generic sandwich: psi = G G^T theta - lap
    psi = torch.einsum("gkd,gld,l->gk", g, g, theta) - lap
    jac = torch.einsum("gkd,gld->gkl", g, g)
    assert torch.allclose(sandwich_covariance(psi, jac, probs), cov, rtol=1e-10)


def test_sliced_projections_on_a_gaussian():
    # T = x^2 (K = 1): exact SM has variance 1/(2 s^4); Gaussian v adds Var(v^2) E[T''^2] = 2 * 4 to
    # B = 8, doubling it; Rademacher v (v^2 = 1) changes nothing in one dimension
    s = 1.7
    grid, _, _, probs = gaussian_grid(0.0, s)
    g, lap = 2 * grid[..., None], 2 * torch.ones_like(grid)
    _, exact = score_matching_asymptotics(g, lap, probs)
    _, gauss = score_matching_asymptotics(g, lap, probs, projection="gaussian")
    _, rade = score_matching_asymptotics(g, lap[..., None, None], probs, projection="rademacher")
    assert math.isclose(float(exact), 1 / (2 * s**4), rel_tol=1e-8)
    assert math.isclose(float(gauss), 1 / s**4, rel_tol=1e-8)
    assert math.isclose(float(rade), float(exact), rel_tol=1e-12)


def test_sandwich_covariance_parts_and_counts():
    # MLE: psi = T - mu, Jacobian = I; c copies of a part divide the covariance by c
    gen = torch.Generator().manual_seed(0)
    t = torch.randn(5000, 2, generator=gen, dtype=F64) @ torch.tensor(
        [[1.0, 0.3], [0.0, 0.5]], dtype=F64
    )
    cov_t = torch.cov(t.T, correction=0)
    jac = cov_t.expand(5000, 2, 2)
    assert torch.allclose(sandwich_covariance(t, jac), torch.linalg.inv(cov_t), rtol=1e-10)
    assert torch.allclose(
        sandwich_covariance([t], [jac], [None], counts=[4.0]),
        torch.linalg.inv(cov_t) / 4,
        rtol=1e-10,
    )
    two = sandwich_covariance([t, t], [jac, jac], [None, None], counts=[1.0, 3.0])
    assert torch.allclose(two, torch.linalg.inv(cov_t) / 4, rtol=1e-10)


def fisher_weighted(theta, limit, fisher, n):
    """N (theta - limit)^T I (theta - limit) per replicate."""
    d = theta - limit
    return n * torch.einsum("rk,kl,rl->r", d, fisher, d)


def assert_matches(theta, limit, cov, fisher, n, k=Z_TOL):
    """Mean and Fisher-weighted spread of replicate estimates against the sandwich, within k
    standard errors."""
    r = theta.shape[0]
    se_mean = theta.std(0) / math.sqrt(r)
    assert bool(((theta.mean(0) - limit).abs() < k * se_mean).all()), (
        theta.mean(0),
        limit,
        se_mean,
    )
    e = fisher_weighted(theta, limit, fisher, n)
    predicted = float(torch.trace(fisher @ cov))
    assert abs(float(e.mean()) - predicted) < k * float(e.std()) / math.sqrt(r), (
        float(e.mean()),
        predicted,
    )


@pytest.mark.parametrize(
    "sigma, n_draws, antithetic",
    [(0.3, 1, False), (0.1, 1, False), (0.1, 3, False), (0.1, 1, True), (0.3, 2, True)],
)
def test_dsm_asymptotics_match_monte_carlo(double_well, sigma, n_draws, antithetic):
    truth, grid, _, _, probs, fisher = double_well
    r, n = 400, 400
    gen = torch.Generator().manual_seed(11)
    x = sample_quadrature(truth, BOX, r * n, generator=gen).view(r, n, 1)
    x_noisy, eps = denoising_perturbation(
        x, sigma, n_draws=n_draws, antithetic=antithetic, generator=gen
    )
    theta = denoising_score_matching_exponential_family(grad_stats(x_noisy), eps, sigma)
    limit, cov = denoising_score_matching_asymptotics(
        grad_stats, grid, probs, sigma, n_draws=n_draws, antithetic=antithetic
    )
    assert_matches(theta, limit, cov, fisher, n)


def test_antithetic_pairs_remove_most_of_the_small_sigma_variance(double_well):
    _, grid, _, _, probs, fisher = double_well
    one = denoising_score_matching_asymptotics(grad_stats, grid, probs, 0.1)[1]
    pair = denoising_score_matching_asymptotics(grad_stats, grid, probs, 0.1, antithetic=True)[1]
    assert float(torch.trace(fisher @ pair)) < float(torch.trace(fisher @ one)) / 5
    # as sigma -> 0 an antithetic pair's estimating function tends to sliced SM's with Gaussian v =
    # eps
    tiny = denoising_score_matching_asymptotics(grad_stats, grid, probs, 1e-3, antithetic=True)[1]
    sliced = score_matching_asymptotics(
        grad_stats(grid)[..., :, :], second_stats(grid), probs, projection="gaussian"
    )[1]
    assert torch.allclose(tiny, sliced, rtol=1e-3)


def test_sliced_score_matching_asymptotics_match_monte_carlo(double_well):
    truth, grid, _, _, probs, fisher = double_well
    r, n = 400, 400
    gen = torch.Generator().manual_seed(12)
    x = sample_quadrature(truth, BOX, r * n, generator=gen).view(r, n, 1)
    v = torch.randn(x.shape, generator=gen, dtype=F64)
    theta = score_matching_exponential_family(grad_stats(x), v**2 * second_stats(x))
    limit, cov = score_matching_asymptotics(
        grad_stats(grid), second_stats(grid), probs, projection="gaussian"
    )
    assert torch.allclose(limit, THETA, atol=1e-8)
    assert_matches(theta, limit, cov, fisher, n)


def test_nce_and_is_mle_asymptotics_match_monte_carlo(double_well):
    truth, grid, log_w, log_p, _, fisher = double_well
    r, n, ratio = 300, 400, 2
    gen = torch.Generator().manual_seed(13)
    q = GaussianProposal(0.0, 1.5)
    x = sample_quadrature(truth, BOX, r * n, generator=gen).view(r, n, 1)
    y = q.sample(r * n * ratio, generator=gen).view(r, n * ratio, 1)
    lq_x, lq_y = q.log_prob(x.view(-1, 1)).view(r, n), q.log_prob(y.view(-1, 1)).view(r, n * ratio)
    theta_nce, _ = nce_exponential_family(stats(x), stats(y), lq_x, lq_y)
    cov_nce = nce_asymptotics(stats(grid), log_w, log_p, q.log_prob(grid), ratio)
    assert_matches(theta_nce, THETA, cov_nce, fisher, n)
    theta_is = mle_exponential_family(
        stats(x).mean(1),
        stats(y),
        -lq_y - math.log(n * ratio),
        theta0=torch.tensor([0.0, 0.1], dtype=F64),
    )
    cov_is = is_mle_asymptotics(stats(grid), log_w, log_p, q.log_prob(grid), ratio)
    assert_matches(theta_is, THETA, cov_is, fisher, n)
    # more noise helps both: NCE's covariance tends to I^{-1} as nu grows, IS-MLE's as the ratio
    # grows
    i_inv = torch.linalg.inv(fisher)
    big = nce_asymptotics(stats(grid), log_w, log_p, q.log_prob(grid), 1e4)
    assert torch.allclose(big, i_inv, rtol=1e-2)
    assert torch.allclose(
        is_mle_asymptotics(stats(grid), log_w, log_p, q.log_prob(grid), 1e6), i_inv, rtol=1e-4
    )


def test_denoising_perturbation_draws_and_mirrors():
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(2, 5, 1, generator=gen, dtype=F64)
    x_noisy, eps = denoising_perturbation(x, 0.2, n_draws=3, antithetic=True, generator=gen)
    assert x_noisy.shape == eps.shape == (2, 5, 6, 1)
    assert torch.equal(eps[:, :, 1::2], -eps[:, :, 0::2])
    assert torch.allclose(x_noisy, x[:, :, None] + 0.2 * eps)
    # M draws per point are the estimator on N * M points
    theta = denoising_score_matching_exponential_family(grad_stats(x_noisy), eps, 0.2)
    flat = denoising_score_matching_exponential_family(
        grad_stats(x_noisy).reshape(2, 30, 2, 1), eps.reshape(2, 30, 1), 0.2
    )
    assert torch.allclose(theta, flat, rtol=1e-12)


def test_antithetic_dsm_closed_form_for_a_gaussian():
    # T = x^2, G = 2 x: a pair (eps, -eps) gives theta = sum eps^2 / (2 sum (x^2 + sigma^2 eps^2))
    gen = torch.Generator().manual_seed(4)
    x = 1.5 * torch.randn(3, 50, 1, generator=gen, dtype=F64)
    sigma = 0.4
    x_noisy, eps = denoising_perturbation(x, sigma, antithetic=True, generator=gen)
    theta = denoising_score_matching_exponential_family(2 * x_noisy[..., None], eps, sigma)[:, 0]
    e = eps[:, :, 0, 0]
    expected = (e**2).sum(1) / (2 * (x[..., 0] ** 2 + sigma**2 * e**2).sum(1))
    assert torch.allclose(theta, expected, rtol=1e-10)


def test_asymptotics_reject_bad_input(double_well):
    _, grid, log_w, log_p, probs, _ = double_well
    with pytest.raises(ValueError, match="projection"):
        score_matching_asymptotics(
            grad_stats(grid), second_stats(grid), probs, projection="uniform"
        )
    with pytest.raises(ValueError, match="second_stats"):
        score_matching_asymptotics(grad_stats(grid), second_stats(grid)[:, :1], probs)
    with pytest.raises(ValueError, match="weights"):
        score_matching_asymptotics(grad_stats(grid), second_stats(grid), -probs)
    with pytest.raises(ValueError, match="sigma"):
        denoising_score_matching_asymptotics(grad_stats, grid, probs, 0.0)
    with pytest.raises(ValueError, match="nodes"):
        denoising_score_matching_asymptotics(
            grad_stats, torch.zeros(4, 2, dtype=F64), probs[:4], 0.1
        )
    with pytest.raises(TypeError, match="antithetic"):
        denoising_score_matching_asymptotics(grad_stats, grid, probs, 0.1, antithetic=1)
    with pytest.raises(ValueError, match="nu"):
        nce_asymptotics(stats(grid), log_w, log_p, log_p, 0.0)
    with pytest.raises(ValueError, match="log_q"):
        is_mle_asymptotics(stats(grid), log_w, log_p, log_p[:-1], 1.0)
    with pytest.raises(ValueError, match="jacobian"):
        sandwich_covariance(torch.zeros(3, 2, dtype=F64), torch.zeros(3, 2, 3, dtype=F64))
    with pytest.raises(ValueError, match="n_draws"):
        denoising_perturbation(torch.zeros(1, 3, 1, dtype=F64), 0.1, n_draws=0)
    with pytest.raises(ValueError, match="x must have shape"):
        denoising_perturbation(torch.zeros(3, 1, dtype=F64), 0.1)
    with pytest.raises(ValueError, match="noise must have shape"):
        denoising_score_matching_exponential_family(
            torch.zeros(2, 3, 2, 2, 1, dtype=F64), torch.zeros(2, 3, 1, 1, dtype=F64), 0.1
        )


def test_nce_asymptotics_never_beats_the_cramer_rao_bound_with_a_wide_noise():
    # a noise with mass outside the quadrature's range (N(0, 4^2) on [-6, 6]) used to give an
    # efficiency above 1; both densities are now treated as truncated to the nodes
    nodes, log_w, _ = quadrature_grid([(-6.0, 6.0)], 801, dtype=torch.float64)
    t = 0.5 * nodes**2  # N(0, 1) as E = theta x^2 / 2 at theta = 1
    log_p = GaussianProposal(0.0, 1.0).log_prob(nodes)
    log_q = GaussianProposal(0.0, 4.0).log_prob(nodes)
    w = torch.softmax(log_w + log_p, 0)
    fisher = float((w * t[:, 0] ** 2).sum() - (w * t[:, 0]).sum() ** 2)
    for nu in (1.0, 10.0, 100.0):
        cov = nce_asymptotics(t, log_w, log_p, log_q, nu)
        assert float(cov[0, 0]) * fisher >= 1 - 1e-9
