import math

import numpy as np
import pytest
import torch
from scipy import integrate, stats

from conftest import Z_TOL
from ebmlib import GaussianEnergy
from ebmlib.book import gaussian_scale as gs
from ebmlib.exact import exact_nll
from ebmlib.losses import importance_sampling_nll
from ebmlib.proposals import GaussianProposal, StudentTProposal


@pytest.fixture
def data():
    return GaussianEnergy(0.0, 2.0).sample(100, generator=torch.Generator().manual_seed(0))


def test_exact_nll_and_mle(data):
    thetas = torch.tensor([0.5, 2.0, 5.0], dtype=torch.float64)
    for th, j in zip(thetas, gs.nll(data, thetas), strict=True):
        g = GaussianEnergy(0.0, float(th))
        assert float(j) == pytest.approx(
            100 * float(exact_nll(g, data, g.log_partition()).detach()), rel=1e-13
        )
    mle = gs.mle(data)
    grid = torch.linspace(0.9 * mle, 1.1 * mle, 2001, dtype=torch.float64)
    assert float(grid[gs.nll(data, grid).argmin()]) == pytest.approx(mle, abs=2e-4)


@pytest.mark.parametrize(
    "df, loc, a, b", [(None, 2.0, 2.0, 0.0), (None, 2.0, 2.0, 1.0), (3.0, 0.0, 1.0, 1.5)]
)
def test_curves_equal_the_generic_is_nll_at_every_theta(data, df, loc, a, b):
    t = gs.standardized_draws(3, 50, df=df, generator=torch.Generator().manual_seed(1))
    thetas = torch.tensor([0.5, 1.3, 2.0, 4.0, 6.0], dtype=torch.float64)
    curves = gs.j_gl_curves(data, thetas, t, loc=loc, scale_intercept=a, scale_slope=b, df=df)
    assert curves.shape == (3, 5)
    for r in range(3):
        for k, th in enumerate(thetas):
            s = a + b * float(th)
            q = GaussianProposal(loc, s) if df is None else StudentTProposal(df, loc, s)
            y = loc + s * t[r][:, None]
            direct = importance_sampling_nll(GaussianEnergy(0.0, float(th)), data, y, q.log_prob(y))
            assert float(curves[r, k]) == pytest.approx(100 * float(direct.detach()), rel=1e-11)


def test_optimal_proposal_recovers_exact_nll_in_every_run(data):
    t = gs.standardized_draws(4, 10, generator=torch.Generator().manual_seed(2))
    thetas = torch.linspace(0.5, 6.0, 12, dtype=torch.float64)
    curves = gs.j_gl_curves(data, thetas, t, loc=0.0, scale_intercept=0.0, scale_slope=1.0)
    torch.testing.assert_close(curves, gs.nll(data, thetas).expand(4, -1), rtol=1e-12, atol=1e-9)


def test_gaussian_scale_rejects_bad_input(data):
    t = gs.standardized_draws(2, 5, generator=torch.Generator().manual_seed(0))
    with pytest.raises(ValueError, match="thetas"):
        gs.nll(data, [1.0, -1.0])
    with pytest.raises(ValueError, match="proposal scale"):
        gs.log_z_hat_curves([1.0, 2.0], t, loc=0.0, scale_intercept=-3.0, scale_slope=1.0)
    with pytest.raises(ValueError, match=r"t must have shape \(R, M\)"):
        gs.log_z_hat_curves([1.0], t[0], loc=0.0, scale_intercept=1.0)
    with pytest.raises(ValueError, match="n_samples"):
        gs.standardized_draws(2, 0)
    with pytest.raises(ValueError, match="df"):
        gs.standardized_draws(2, 3, df=-1.0)
    with pytest.raises(ValueError, match="x must have 1 columns"):
        gs.nll(torch.zeros(3, 2, dtype=torch.float64), [1.0])


def test_grid_argmin_refines_a_parabola_exactly():
    thetas = torch.linspace(0.5, 6.0, 111, dtype=torch.float64)
    centres = torch.tensor([1.234, 3.0, 5.55], dtype=torch.float64)
    curves = (thetas[None, :] - centres[:, None]) ** 2 * 7.0 + 3.0
    torch.testing.assert_close(gs.grid_argmin(curves, thetas), centres)
    edge = -(thetas[None, :])  # decreasing: minimum at the right edge
    assert float(gs.grid_argmin(edge, thetas)[0]) == 6.0


def _rho_by_quad(theta, loc, s, df=None):
    log_q = (
        (lambda y: stats.norm.logpdf(y, loc, s))
        if df is None
        else (lambda y: stats.t.logpdf(y, df, loc, s))
    )

    def f(y):
        return math.exp(2 * stats.norm.logpdf(y, 0.0, theta) - log_q(y))

    return integrate.quad(f, -np.inf, np.inf, epsabs=0, epsrel=1e-11, limit=200)[0]


@pytest.mark.parametrize(
    "theta, loc, s, df",
    [
        (2.0, 2.0, 4.0, None),
        (1.0, 0.0, 3.0, None),
        (5.0, 2.0, 7.0, None),
        (6.0, 0.0, 1.0, 3.0),
        (2.0, 2.0, 2.0, 3.0),
    ],
)
def test_relative_second_moment_matches_independent_quadrature(theta, loc, s, df):
    rho = gs.relative_second_moment([theta], loc=loc, scale_intercept=s, df=df)
    assert float(rho) == pytest.approx(_rho_by_quad(theta, loc, s, df), rel=1e-8)


def test_relative_second_moment_infinite_region_and_monte_carlo():
    # infinite exactly when the Gaussian proposal is too narrow: s <= theta / sqrt(2)
    assert math.isinf(float(gs.relative_second_moment([3.0], loc=0.0, scale_intercept=2.0)))
    assert math.isfinite(float(gs.relative_second_moment([2.8], loc=0.0, scale_intercept=2.0)))
    # the empirical variance of Z-hat matches (rho - 1) / M
    th, mu, s = 2.0, 2.0, 4.0
    rho = gs.relative_second_moment([th], loc=mu, scale_intercept=s)
    t = gs.standardized_draws(4000, 50, generator=torch.Generator().manual_seed(4))
    log_z = gs.log_z_hat_curves([th], t, loc=mu, scale_intercept=s)[:, 0]
    rel = torch.exp(log_z - gs.log_partition([th]))
    var_pred = (float(rho) - 1) / 50
    assert abs(float(rel.mean()) - 1) < Z_TOL * math.sqrt(var_pred / 4000)
    # a sample variance of R draws has relative SE sqrt((kurtosis - 1) / R), the kurtosis estimated
    # from the draws
    centred = rel - rel.mean()
    rel_se = math.sqrt((float(centred.pow(4).mean() / centred.pow(2).mean() ** 2) - 1) / 4000)
    assert abs(float(rel.var()) / var_pred - 1) < Z_TOL * rel_se


def test_ess_curves_match_the_generic_ess():
    from ebmlib.partition import ess

    t = gs.standardized_draws(2, 40, df=4.0, generator=torch.Generator().manual_seed(3))
    thetas = torch.tensor([1.0, 3.0], dtype=torch.float64)
    curves = gs.ess_curves(thetas, t, loc=1.0, scale_intercept=1.0, scale_slope=0.5, df=4.0)
    for r in range(2):
        for k, th in enumerate(thetas):
            s = 1.0 + 0.5 * float(th)
            y = 1.0 + s * t[r][:, None]
            log_w = -(y[:, 0] ** 2) / (2 * th**2) - StudentTProposal(4.0, 1.0, s).log_prob(y)
            assert float(curves[r, k]) == pytest.approx(float(ess(log_w)), rel=1e-10)


def test_weight_moment_finiteness_boundary():
    th = torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64)
    # k = 2 matches relative_second_moment being finite
    fin2 = gs.weight_moment_finite(th, 2, loc=0.0, scale_intercept=2.0)
    torch.testing.assert_close(
        fin2, torch.isfinite(gs.relative_second_moment(th, loc=0.0, scale_intercept=2.0))
    )
    # k = 4 needs s^2 > 3 theta^2 / 4: s = 2 works for theta < 2.31
    assert gs.weight_moment_finite(th, 4, loc=0.0, scale_intercept=2.0).tolist() == [
        True,
        True,
        False,
    ]
    assert bool(gs.weight_moment_finite(th, 4, loc=0.0, scale_intercept=0.1, df=3.0).all())
    with pytest.raises(ValueError, match="k must be"):
        gs.weight_moment_finite(th, 0, loc=0.0, scale_intercept=1.0)


def test_fresh_curves_draw_a_new_sample_at_every_theta(data):
    spec = dict(loc=2.0, scale_intercept=2.0, scale_slope=1.0)
    thetas = torch.tensor([1.0, 2.0, 3.5], dtype=torch.float64)
    fresh = gs.j_gl_curves_fresh(
        data, thetas, 4, 30, generator=torch.Generator().manual_seed(5), **spec
    )
    assert fresh.shape == (4, 3)
    # column l is the common-random-numbers estimator at theta_l fed with the l-th block of draws
    gen = torch.Generator().manual_seed(5)
    for ell in range(3):
        t = gs.standardized_draws(4, 30, generator=gen)
        direct = gs.j_gl_curves(data, thetas[ell : ell + 1], t, **spec)[:, 0]
        torch.testing.assert_close(fresh[:, ell], direct, rtol=1e-12, atol=0)


def test_fresh_curves_are_exact_for_the_optimal_proposal(data):
    thetas = torch.linspace(0.5, 6.0, 7, dtype=torch.float64)
    fresh = gs.j_gl_curves_fresh(
        data,
        thetas,
        3,
        8,
        loc=0.0,
        scale_intercept=0.0,
        scale_slope=1.0,
        generator=torch.Generator().manual_seed(6),
    )
    torch.testing.assert_close(fresh, gs.nll(data, thetas).expand(3, -1), rtol=1e-12, atol=1e-9)


def test_fresh_curves_are_independent_across_theta_and_crn_curves_are_not(data):
    # neighbouring grid points: correlation ~0 with fresh draws (SE 1/sqrt(R)), close to 1 with
    # common draws
    spec = dict(loc=2.0, scale_intercept=2.0, scale_slope=1.0)
    thetas = torch.tensor([2.0, 2.05], dtype=torch.float64)
    n_runs = 2000
    fresh = gs.j_gl_curves_fresh(
        data, thetas, n_runs, 50, generator=torch.Generator().manual_seed(7), **spec
    )
    t = gs.standardized_draws(n_runs, 50, generator=torch.Generator().manual_seed(8))
    crn = gs.j_gl_curves(data, thetas, t, **spec)

    def corr(c):
        return float(torch.corrcoef(c.T)[0, 1])

    assert abs(corr(fresh)) < Z_TOL / math.sqrt(n_runs)
    assert corr(crn) > 0.95


def test_fresh_curves_reject_bad_input(data):
    with pytest.raises(ValueError, match="n_samples"):
        gs.j_gl_curves_fresh(data, [1.0], 2, 0, loc=0.0, scale_intercept=1.0)
    with pytest.raises(ValueError, match="thetas"):
        gs.j_gl_curves_fresh(data, [-1.0], 2, 3, loc=0.0, scale_intercept=1.0)
