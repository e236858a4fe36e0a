"""Batched exact MLE for exponential families, against the closed-form Gaussian MLE."""

import pytest
import torch

from ebmlib import PolynomialEnergy
from ebmlib.estimators import mle_exponential_family
from ebmlib.exact import quadrature_grid


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


def test_mle_exponential_family_rejects_bad_input():
    grid = torch.zeros(10, 2, dtype=torch.float64)
    with pytest.raises(ValueError, match="disagree"):
        mle_exponential_family(torch.zeros(3, 3, dtype=torch.float64), grid, torch.zeros(10, dtype=torch.float64))
    with pytest.raises(ValueError, match="log_weights"):
        mle_exponential_family(torch.zeros(2, dtype=torch.float64), grid, torch.zeros(9, dtype=torch.float64))
    with pytest.raises(ValueError, match="mean_stats"):
        mle_exponential_family(torch.tensor([float("nan"), 0.0]), grid, torch.zeros(10, dtype=torch.float64))
