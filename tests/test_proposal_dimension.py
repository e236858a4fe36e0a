"""Closed forms behind chapter 3: rho of a scaled Gaussian proposal in d dimensions, its truncated
version, and the asymptotic variance of self-normalized importance sampling."""

from __future__ import annotations

import math

import pytest
import torch

from conftest import Z_TOL
from ebmlib.book import gaussian_scale as gs
from ebmlib.partition import log_partition_is
from ebmlib.proposals import (
    GaussianProposal,
    gaussian_relative_second_moment,
    gaussian_truncated_second_moment,
    self_normalized_variance,
)


def test_rho_one_dimension_matches_the_general_formula():
    for c in (0.75, 1.0, 1.3, 2.0, 4.0):
        for theta in (0.5, 2.0):
            general = float(
                gs.relative_second_moment([theta], loc=0.0, scale_intercept=c * theta)[0]
            )
            assert float(gaussian_relative_second_moment(c)) == pytest.approx(general, rel=1e-12)
    assert float(gaussian_relative_second_moment(1.0, dim=7)) == pytest.approx(1.0, abs=1e-14)


def test_rho_is_infinite_at_or_below_one_over_sqrt_two():
    out = gaussian_relative_second_moment([0.5, 1 / math.sqrt(2), 0.71], dim=3)
    assert math.isinf(float(out[0])) and math.isinf(float(out[1])) and math.isfinite(float(out[2]))
    assert out.shape == (3,)


def test_rho_in_d_dimensions_is_the_power_and_matches_monte_carlo():
    c, d, n = 1.5, 3, 400_000
    rho = float(gaussian_relative_second_moment(c, dim=d))
    assert rho == pytest.approx(float(gaussian_relative_second_moment(c)) ** d, rel=1e-12)
    gen = torch.Generator().manual_seed(1)
    q, p = GaussianProposal([0.0] * d, c * 2.0), GaussianProposal([0.0] * d, 2.0)
    y = q.sample(n, generator=gen)
    w2 = torch.exp(2 * (p.log_prob(y) - q.log_prob(y)))  # c^2 > 3/4: w^2 has a finite variance
    se = float(w2.std()) / math.sqrt(n)
    assert abs(float(w2.mean()) - rho) < Z_TOL * se
    # and the relative variance of Z-hat from M draws is (rho - 1)/M
    m, runs = 20, 20_000
    y = q.sample(m * runs, generator=gen)
    ratio = torch.exp(
        log_partition_is((p.log_prob(y) - q.log_prob(y)).reshape(runs, m), torch.zeros(()))
    )
    centred = ratio - ratio.mean()
    rel_se = math.sqrt((float(centred.pow(4).mean() / centred.pow(2).mean() ** 2) - 1) / runs)
    assert abs(float(ratio.var()) / ((rho - 1) / m) - 1) < Z_TOL * rel_se


def test_rho_bad_input():
    with pytest.raises(ValueError, match="scale_ratio"):
        gaussian_relative_second_moment(-1.0)
    with pytest.raises(ValueError, match="scale_ratio"):
        gaussian_relative_second_moment([1.0, float("nan")])
    with pytest.raises(TypeError, match="scale_ratio"):
        gaussian_relative_second_moment("wide")
    with pytest.raises(ValueError, match="dim"):
        gaussian_relative_second_moment(1.5, dim=0)


def test_truncated_second_moment_tends_to_rho_or_diverges():
    for theta, loc, s in [(5.0, 2.0, 7.0), (1.0, 0.0, 3.0), (2.0, 2.0, 2.0)]:
        rho = float(gs.relative_second_moment([theta], loc=loc, scale_intercept=s)[0])
        assert gaussian_truncated_second_moment(theta, loc, s, math.inf) == pytest.approx(
            rho, rel=1e-10
        )
        assert gaussian_truncated_second_moment(theta, loc, s, 40 * s) == pytest.approx(
            rho, rel=1e-8
        )
    # s <= theta / sqrt(2): infinite, and the window integral grows without bound (A < 0 and A = 0)
    for theta in (5.0, 2 * math.sqrt(2)):
        assert math.isinf(gaussian_truncated_second_moment(theta, 2.0, 2.0, math.inf))
        values = [
            gaussian_truncated_second_moment(theta, 2.0, 2.0, h) for h in (5.0, 10.0, 20.0, 40.0)
        ]
        assert all(b > 2 * a for a, b in zip(values[:-1], values[1:], strict=True))


def test_truncated_second_moment_matches_quadrature():
    from scipy import integrate, stats

    for theta, loc, s, h in [
        (5.0, 2.0, 2.0, 6.0),
        (5.0, 2.0, 7.0, 3.0),
        (2 * math.sqrt(2), 2.0, 2.0, 5.0),
    ]:
        ref = integrate.quad(
            lambda y, theta=theta, loc=loc, s=s: math.exp(
                2 * stats.norm.logpdf(y, 0, theta) - stats.norm.logpdf(y, loc, s)
            ),
            loc - h,
            loc + h,
            epsabs=0,
            epsrel=1e-12,
            limit=200,
        )[0]
        assert gaussian_truncated_second_moment(theta, loc, s, h) == pytest.approx(ref, rel=1e-9)


def test_truncated_second_moment_bad_input():
    with pytest.raises(ValueError, match="half_width"):
        gaussian_truncated_second_moment(1.0, 0.0, 1.0, 0.0)
    with pytest.raises(ValueError, match="scale"):
        gaussian_truncated_second_moment(1.0, 0.0, -1.0, 1.0)


def test_self_normalized_variance_exact_cases():
    theta = 1.7
    p = GaussianProposal(0.0, theta)
    # q = p: the variance of f under p; f(y) = y^2 gives 2 theta^4
    assert self_normalized_variance(p, p, lambda y: y * y) == pytest.approx(2 * theta**4, rel=1e-8)
    # q = N(0, (c theta)^2), f(y) = y: rho(c) * theta^2 c^2 / (2 c^2 - 1)
    c = 1.6
    q = GaussianProposal(0.0, c * theta)
    expected = float(gaussian_relative_second_moment(c)) * theta**2 * c * c / (2 * c * c - 1)
    assert self_normalized_variance(p, q, lambda y: y) == pytest.approx(expected, rel=1e-8)
    # a constant is estimated exactly
    assert self_normalized_variance(p, q, lambda y: 3.0) == pytest.approx(0.0, abs=1e-12)


def test_self_normalized_variance_bad_input():
    p = GaussianProposal(0.0, 1.0)
    with pytest.raises(TypeError, match="proposal"):
        self_normalized_variance(p, object(), lambda y: y)
    with pytest.raises(ValueError, match="target"):
        self_normalized_variance(GaussianProposal([0.0, 0.0], 1.0), p, lambda y: y)
    with pytest.raises(ValueError, match="lower"):
        self_normalized_variance(p, p, lambda y: y, lower=1.0, upper=0.0)
