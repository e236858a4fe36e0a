"""Score matching (exact, denoising, sliced) and NCE against closed forms."""

import math

import pytest
import torch
from torch.autograd import gradcheck
from torch.func import functional_call

from conftest import Z_TOL
from ebmlib import GaussianEnergy, MLPEnergy, PolynomialEnergy
from ebmlib.losses import (
    denoising_score_matching_loss,
    nce_loss,
    score_matching_loss,
    sliced_score_matching_loss,
)
from ebmlib.proposals import GaussianProposal


def test_exact_score_matching_is_stationary_at_the_gaussian_mle(gen):
    # for a Gaussian model the score-matching estimator equals the MLE (mean and full covariance)
    L = torch.tensor([[1.5, 0.0], [0.8, 0.6]], dtype=torch.float64)
    x = (
        torch.tensor([0.5, -1.0], dtype=torch.float64)
        + torch.randn(400, 2, generator=gen, dtype=torch.float64) @ L.T
    )
    mean = x.mean(0)
    cov = (x - mean).T @ (x - mean) / x.shape[0]
    g = GaussianEnergy(mean, torch.linalg.cholesky(cov))
    loss = score_matching_loss(g, x)
    grads = torch.autograd.grad(loss, [g.mean, g.scale_tril])
    assert max(float(gr.abs().max()) for gr in grads) < 1e-10
    # closed form of the objective at the MLE: 1/2 tr(P S P) - tr(P) = -tr(P)/2 with P = S^-1
    assert float(loss.detach()) == pytest.approx(
        -0.5 * float(torch.trace(torch.linalg.inv(cov))), abs=1e-10
    )


def test_score_matching_1d_value_matches_closed_form(gen):
    x = 2.0 * torch.randn(50, 1, generator=gen, dtype=torch.float64)
    lam = 0.7  # E = lam x^2 / 2: s = -lam x, ds/dx = -lam
    e = PolynomialEnergy([lam / 2], powers=(2,))
    expected = float(0.5 * lam**2 * (x**2).mean() - lam)
    assert float(score_matching_loss(e, x).detach()) == pytest.approx(expected, abs=1e-12)


def test_denoising_score_matching_targets_the_noise_convolved_precision():
    """For N(0, s^2) data and E = theta x^2, DSM is quadratic in theta with minimizer
    1/(2(s^2 + sigma^2))."""
    s, sigma, n = 1.5, 0.8, 200_000
    x = s * torch.randn(n, 1, generator=torch.Generator().manual_seed(0), dtype=torch.float64)

    def loss_at(theta):  # same noise for every theta: reseed
        e = PolynomialEnergy([theta], powers=(2,))
        return float(
            denoising_score_matching_loss(
                e, x, sigma, generator=torch.Generator().manual_seed(1)
            ).detach()
        )

    l0, l1, l2 = (
        loss_at(0.1),
        loss_at(0.2),
        loss_at(0.3),
    )  # exact for a quadratic: vertex from three points
    a = (l2 - 2 * l1 + l0) / (2 * 0.1**2)
    b = (l1 - l0) / 0.1 - a * (0.1 + 0.2)
    precision = 2 * (-b / (2 * a))
    # The minimizer is the ratio mean(x~ eps / sigma) / mean(x~^2). With x~ = x + sigma eps, v = s^2
    # + sigma^2 and r = 1/v, Var(x~ eps / sigma - r x~^2) = s^2 / sigma^2 exactly, so by the delta
    # method SE = (s/sigma) / (v sqrt n).
    v = s**2 + sigma**2
    target = 1 / v
    se = (s / sigma) / (v * math.sqrt(n))
    assert abs(precision - target) < Z_TOL * se
    # and it differs from the MLE's 1/s^2 by much more than that
    assert abs(precision - 1 / s**2) > 2 * Z_TOL * se


@pytest.mark.parametrize("variance_reduction", [True, False])
def test_sliced_objective_is_unbiased_for_the_exact_one(variance_reduction):
    torch.manual_seed(0)  # only for the MLP's initial weights below (explicit generator elsewhere)
    m = MLPEnergy(3, 16, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    x = torch.randn(5, 3, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    exact = float(score_matching_loss(m, x).detach())
    # K independent single-projection estimates; their mean must match within Z_TOL standard errors
    K = 4000
    vals = torch.tensor(
        [
            float(
                sliced_score_matching_loss(
                    m,
                    x,
                    1,
                    generator=torch.Generator().manual_seed(100 + k),
                    variance_reduction=variance_reduction,
                ).detach()
            )
            for k in range(0, K, 50)
        ]
    )
    many = float(
        sliced_score_matching_loss(
            m,
            x,
            K,
            generator=torch.Generator().manual_seed(7),
            variance_reduction=variance_reduction,
        ).detach()
    )
    se = float(vals.std()) / math.sqrt(K)
    assert abs(many - exact) < Z_TOL * se


def test_sliced_variance_matches_the_exact_formulas():
    """For one point and v ~ N(0, I), H = grad s: Var_VR = 2 tr(H^2) and
    Var_plain = Var_VR + ||s||^4 / 2 + 2 s'Hs."""
    P = torch.tensor([[2.0, 0.6], [0.6, 1.0]], dtype=torch.float64)
    g = GaussianEnergy([0.0, 0.0], torch.linalg.cholesky(torch.linalg.inv(P)))
    x = torch.tensor([[0.7, -1.2]], dtype=torch.float64)
    s, H = -(P @ x[0]), -P
    var_vr = float(2 * torch.trace(H @ H))
    var_plain = var_vr + 0.5 * float(s @ s) ** 2 + 2 * float(s @ H @ s)
    # The loss with K projections of one point is the mean of K single-projection draws, its
    # projections being v = randn(K, d) from the generator (the documented draw order). Rebuilding
    # each draw from the same v gives the K draws themselves: their mean must be the loss exactly,
    # and their variance the formula. Each draw is a Gaussian quadratic form v'Av + c, whose
    # kurtosis is at most that of chi^2_1, 15, so the sample variance has relative SE at most
    # sqrt(14 / K). K = 2e5 puts the 11% gap between the two formulas at 14 SE (> 2 Z_TOL): swapping
    # them, or a wrong projection law, cannot pass.
    K = 200_000
    v = torch.randn(K, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    for vr, expected in ((True, var_vr), (False, var_plain)):
        loss = sliced_score_matching_loss(
            g, x, K, generator=torch.Generator().manual_seed(0), variance_reduction=vr
        )
        quad = 0.5 * float(s @ s) if vr else 0.5 * (v @ s) ** 2
        draws = ((v @ H) * v).sum(1) + quad
        assert float(loss.detach()) == pytest.approx(float(draws.mean()), rel=1e-12, abs=1e-12)
        assert abs(float(draws.var()) / expected - 1) < Z_TOL * math.sqrt(14 / K)
    assert abs(var_plain / var_vr - 1) > 2 * Z_TOL * math.sqrt(14 / K)


def test_losses_pass_gradcheck_in_float64():
    x = torch.randn(6, 1, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    e = PolynomialEnergy([0.4, 0.05], powers=(2, 4))
    theta = e.theta.detach().clone().requires_grad_(True)

    def energy(th):
        return lambda z: functional_call(e, {"theta": th}, (z,))

    q = GaussianProposal(0.0, 2.0)
    y = q.sample(12, generator=torch.Generator().manual_seed(1))
    c = torch.tensor(1.0, dtype=torch.float64, requires_grad=True)
    checks = [
        lambda th: score_matching_loss(energy(th), x),
        lambda th: denoising_score_matching_loss(
            energy(th), x, 0.3, generator=torch.Generator().manual_seed(5)
        ),
        lambda th: sliced_score_matching_loss(
            energy(th), x, 3, generator=torch.Generator().manual_seed(5)
        ),
    ]
    for f in checks:
        assert gradcheck(f, (theta,))
    assert gradcheck(
        lambda th, cc: nce_loss(energy(th), cc, x, y, q.log_prob(x), q.log_prob(y)), (theta, c)
    )


def test_nce_recovers_theta_and_log_z_on_the_gaussian_toy_problem():
    # Gutmann & Hyvarinen's toy problem: phi(u) = exp(-c) exp(-theta u^2 / 2), theta* = 1, nu = 10
    n, nu = 20_000, 10
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 1, generator=g, dtype=torch.float64)
    q = GaussianProposal(0.0, 1.5)
    y = q.sample(nu * n, generator=g)
    e = PolynomialEnergy([0.3], powers=(2,))  # E = theta_1 u^2, precision = 2 theta_1
    c = torch.nn.Parameter(torch.tensor(0.0, dtype=torch.float64))
    opt = torch.optim.LBFGS(
        list(e.parameters()) + [c],
        lr=1,
        max_iter=200,
        line_search_fn="strong_wolfe",
        tolerance_grad=1e-12,
        tolerance_change=1e-14,
    )

    def closure():
        opt.zero_grad()
        loss = nce_loss(e, c, x, y, q.log_prob(x), q.log_prob(y))
        loss.backward()
        return loss

    opt.step(closure)
    precision = 2 * float(e.theta.detach()[0])
    # at nu = 10 NCE's asymptotic variance is close to the MLE's, sqrt(2/n) for a Gaussian
    # precision; allow 25% more
    se = 1.25 * math.sqrt(2 / n)
    assert abs(precision - 1.0) < Z_TOL * se
    # c estimates log Z(theta*) = log sqrt(2 pi); its SE follows by the delta method: SE(precision)
    # / 2
    assert abs(float(c.detach()) - 0.5 * math.log(2 * math.pi)) < Z_TOL * se / 2


@pytest.mark.parametrize(
    "call, err, match",
    [
        (
            lambda e, x: score_matching_loss(e, x[:, :0]),
            ValueError,
            "x must have shape|x must have 1 columns|empty",
        ),
        (
            lambda e, x: score_matching_loss(e, torch.zeros(0, 1, dtype=torch.float64)),
            ValueError,
            "x is an empty batch",
        ),
        (
            lambda e, x: denoising_score_matching_loss(e, x, 0.0),
            ValueError,
            "sigma must be finite and > 0",
        ),
        (lambda e, x: denoising_score_matching_loss(e, x, -1.0), ValueError, "sigma"),
        (
            lambda e, x: denoising_score_matching_loss(
                e, torch.full((3, 1), float("nan"), dtype=torch.float64), 0.1
            ),
            ValueError,
            "x contains NaN",
        ),
        (lambda e, x: sliced_score_matching_loss(e, x, 0), ValueError, "n_projections"),
        (lambda e, x: sliced_score_matching_loss(e, x, 1, generator=3), TypeError, "generator"),
    ],
)
def test_score_losses_reject_bad_input(call, err, match):
    e = PolynomialEnergy([0.5], powers=(2,))
    x = torch.randn(4, 1, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    with pytest.raises(err, match=match):
        call(e, x)


def test_nce_rejects_bad_input():
    e = PolynomialEnergy([0.5], powers=(2,))
    x = torch.zeros(4, 1, dtype=torch.float64)
    y = torch.zeros(8, 1, dtype=torch.float64)
    c = torch.tensor(0.0, dtype=torch.float64)

    def lq(n):
        return torch.zeros(n, dtype=torch.float64)

    with pytest.raises(ValueError, match="x_noise is an empty batch"):
        nce_loss(e, c, x, torch.zeros(0, 1, dtype=torch.float64), lq(4), lq(0))
    with pytest.raises(ValueError, match=r"log_q_noise must have shape \(8,\)"):
        nce_loss(e, c, x, y, lq(4), lq(7))
    with pytest.raises(ValueError, match=r"log_q_data must have shape \(4,\)"):
        nce_loss(e, c, x, y, lq(5), lq(8))
    with pytest.raises(ValueError, match="log_z must be a scalar"):
        nce_loss(e, torch.zeros(2, dtype=torch.float64), x, y, lq(4), lq(8))
    with pytest.raises(ValueError, match="log_q_data contains NaN"):
        nce_loss(e, c, x, y, torch.full((4,), float("nan"), dtype=torch.float64), lq(8))
    with pytest.raises(ValueError, match="x_noise must have 1 columns"):
        nce_loss(e, c, x, torch.zeros(8, 2, dtype=torch.float64), lq(4), lq(8))


def test_batched_nce_matches_the_generic_loss_fit():
    from ebmlib.estimators import nce_exponential_family

    g = torch.Generator().manual_seed(3)
    R, n, nu = 3, 400, 5
    q = GaussianProposal(0.0, 2.0)
    x = 1.3 * torch.randn(R, n, 1, generator=g, dtype=torch.float64)
    y = q.sample(R * n * nu, generator=g).reshape(R, n * nu, 1)
    lq_x = q.log_prob(x.reshape(-1, 1)).reshape(R, n)
    lq_y = q.log_prob(y.reshape(-1, 1)).reshape(R, n * nu)
    stats_x = torch.cat([x, x**2], dim=2)  # E = theta_1 x + theta_2 x^2
    stats_y = torch.cat([y, y**2], dim=2)
    theta, c = nce_exponential_family(stats_x, stats_y, lq_x, lq_y)
    for r in range(R):
        e, cc = _fit_nce_by_lbfgs(x[r], y[r], lq_x[r], lq_y[r])
        torch.testing.assert_close(theta[r], e.theta.detach(), rtol=0, atol=1e-6)
        assert float(c[r]) == pytest.approx(float(cc.detach()), abs=1e-6)


def _fit_nce_by_lbfgs(x, y, lq_x, lq_y):
    """The generic nce_loss minimized by L-BFGS over E = theta_1 x + theta_2 x^2 and c."""
    e = PolynomialEnergy([0.0, 0.3], powers=(1, 2))
    cc = torch.nn.Parameter(torch.tensor(0.0, dtype=torch.float64))
    opt = torch.optim.LBFGS(
        list(e.parameters()) + [cc],
        lr=1,
        max_iter=500,
        line_search_fn="strong_wolfe",
        tolerance_grad=1e-13,
        tolerance_change=1e-15,
    )

    def closure():
        opt.zero_grad()
        loss = nce_loss(e, cc, x, y, lq_x, lq_y)
        loss.backward()
        return loss

    opt.step(closure)
    return e, cc


def test_batched_nce_rejects_bad_input():
    from ebmlib.estimators import nce_exponential_family

    z = torch.zeros
    with pytest.raises(ValueError, match="disagree"):
        nce_exponential_family(z(2, 3, 1), z(2, 4, 2), z(2, 3), z(2, 4))
    with pytest.raises(ValueError, match="log_q_data must have shape"):
        nce_exponential_family(z(2, 3, 1), z(2, 4, 1), z(2, 2), z(2, 4))
    with pytest.raises(ValueError, match="at least one point"):
        nce_exponential_family(z(2, 0, 1), z(2, 4, 1), z(2, 0), z(2, 4))
    with pytest.raises(ValueError, match="stats_noise contains NaN"):
        nce_exponential_family(z(2, 3, 1), torch.full((2, 4, 1), float("nan")), z(2, 3), z(2, 4))
