import math

import numpy as np
import pytest
import torch
from scipy import integrate, optimize, stats

from conftest import Z_TOL
from ebmlib import GaussianEnergy
from ebmlib.book.gaussian_scale import log_partition_is_grid
from ebmlib.losses import importance_sampling_gradient_loss, importance_sampling_nll
from ebmlib.partition import ess, log_partition_is, self_normalized_weights
from ebmlib.proposals import GaussianProposal


def test_is_estimate_is_unbiased_for_z_within_monte_carlo_error(gen):
    # model N(0, theta^2) unnormalized, proposal N(0, s^2) with s > theta: finite-variance weights
    theta, s, M, R = 2.0, 3.0, 200, 2000
    q = GaussianProposal(0.0, s)
    y = q.sample(M * R, generator=gen)
    log_phi = (-0.5 * y[:, 0] ** 2 / theta**2).reshape(R, M)
    log_q = q.log_prob(y).reshape(R, M)
    z_hat = torch.exp(log_partition_is(log_phi, log_q))
    z_true = math.sqrt(2 * math.pi) * theta
    se = float(z_hat.std()) / math.sqrt(R)
    assert abs(float(z_hat.mean()) - z_true) < Z_TOL * se
    # the spread matches the closed-form variance of one weight, Var_q(w) / M
    second = math.sqrt(2 * math.pi) * s * math.sqrt(math.pi / (1 / theta**2 - 1 / (2 * s**2)))
    sd_pred = math.sqrt((second - z_true**2) / M)
    # a sample sd from R draws has relative SE sqrt((kurtosis - 1) / R) / 2, the kurtosis estimated
    # from the draws
    centred = z_hat - z_hat.mean()
    kurtosis = float(centred.pow(4).mean() / centred.pow(2).mean() ** 2)
    assert abs(float(z_hat.std()) / sd_pred - 1) < Z_TOL * 0.5 * math.sqrt((kurtosis - 1) / R)


def test_optimal_proposal_gives_exact_log_partition():
    # q = p exactly: every weight equals Z, so log Z-hat = log Z for any M (paper Eq. 10)
    model = GaussianEnergy(0.5, 1.7)
    q = GaussianProposal(0.5, 1.7)
    y = q.sample(7, generator=torch.Generator().manual_seed(0))
    est = log_partition_is(-model(y).detach(), q.log_prob(y))
    assert float(est) == pytest.approx(float(model.log_partition().detach()), abs=1e-13)


def test_log_partition_is_is_stable_when_weights_underflow():
    log_phi = torch.tensor([[-2000.0, -2001.0, -2002.0]], dtype=torch.float64)
    est = log_partition_is(log_phi, torch.zeros(3, dtype=torch.float64))
    expected = -2000.0 + math.log((1 + math.exp(-1) + math.exp(-2)) / 3)
    assert float(est) == pytest.approx(expected, abs=1e-12)


def test_ess_and_normalized_weights():
    assert float(ess(torch.zeros(10, dtype=torch.float64))) == pytest.approx(10.0)
    assert float(ess(torch.tensor([0.0, -800.0, -800.0], dtype=torch.float64))) == pytest.approx(
        1.0
    )
    lw = torch.randn(5, 50, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    torch.testing.assert_close(ess(lw), ess(lw + 123.0))  # scale invariant
    w = self_normalized_weights(lw)
    torch.testing.assert_close(w.sum(-1), torch.ones(5, dtype=torch.float64))
    torch.testing.assert_close(ess(lw), 1 / (w**2).sum(-1))


def test_grid_evaluator_falls_back_when_the_shift_bound_is_loose():
    # two features that cancel: each has a huge range, so the bound (2000) is far above the true
    # maximum (0)
    feats = torch.tensor(
        [[[0.0, 1000.0, -1000.0], [0.0, -1000.0, 1000.0]]], dtype=torch.float64
    )  # (1, 2, 3)
    coefs = torch.tensor([[1.0, 1.0], [0.5, 0.5]], dtype=torch.float64)
    fast = log_partition_is_grid(feats, coefs)
    direct = log_partition_is(coefs @ feats[0], torch.zeros(3, dtype=torch.float64))
    torch.testing.assert_close(fast[0], direct)


def test_grid_evaluator_matches_direct_estimate(gen):
    q = GaussianProposal(2.0, 2.0)
    y = q.sample(4 * 300, generator=gen).reshape(4, 300, 1)
    log_q = q.log_prob(y.reshape(-1, 1)).reshape(4, 300)
    thetas = torch.linspace(0.5, 6.0, 12, dtype=torch.float64)
    features = torch.stack([0.5 * y[..., 0] ** 2, log_q], dim=1)  # (R, K=2, M)
    coefs = torch.stack([-1 / thetas**2, -torch.ones_like(thetas)], dim=1)  # (L, 2)
    fast = log_partition_is_grid(features, coefs, chunk_size=3)
    direct = log_partition_is(
        -0.5 * y[:, None, :, 0] ** 2 / thetas[None, :, None] ** 2, log_q[:, None, :]
    )
    torch.testing.assert_close(fast, direct, rtol=0, atol=1e-12)


def test_argmin_of_j_gl_converges_to_the_mle_at_the_predicted_rate():
    """theta_GL - theta_MLE has sd ~ sqrt(V/M)/J'' with V from quadrature; check mean ~0 and sd
    within 10%."""
    gen = torch.Generator().manual_seed(7)
    theta_star, n_obs, s, M, R = 2.0, 100, 3.0, 2000, 200
    x = GaussianEnergy(0.0, theta_star).sample(n_obs, generator=gen)
    mle = float(x.pow(2).mean().sqrt())
    q = GaussianProposal(0.0, s)
    y = q.sample(M * R, generator=gen).reshape(R, M)
    log_q = q.log_prob(y.reshape(-1, 1)).reshape(R, M)
    m2 = float(x.pow(2).mean())

    def foc(theta, r):  # d/dtheta J_GL/N = -m2/theta^3 + sum_m wbar_m y_m^2/theta^3  (Eq. 12)
        w = torch.softmax(-0.5 * y[r] ** 2 / theta**2 - log_q[r], dim=0)
        return float((w * y[r] ** 2).sum()) - m2

    est = np.array(
        [optimize.brentq(foc, 0.5 * mle, 2 * mle, args=(r,), xtol=1e-12) for r in range(R)]
    )

    # delta method: Var(theta_GL) = Var(d/dtheta log Z-hat) / (d2 J/N)^2, at theta = mle
    def log_p_density(t):
        return stats.norm.logpdf(t, 0.0, mle)

    def log_q_density(t):
        return stats.norm.logpdf(t, 0.0, s)

    g_bar = 1 / mle  # E_p[t^2/theta^3]
    V = integrate.quad(
        lambda t: math.exp(2 * log_p_density(t) - log_q_density(t)) * (t * t / mle**3 - g_bar) ** 2,
        -np.inf,
        np.inf,
    )[0]
    sd_pred = math.sqrt(V / M) / (2 / mle**2)
    z = (est - mle) / sd_pred
    assert abs(z.mean()) < Z_TOL / math.sqrt(R)
    assert abs(z.std() - 1) < Z_TOL * math.sqrt(1 / (2 * R))


def test_is_nll_and_its_gradient_against_closed_forms(gen):
    x = 2.0 * torch.randn(50, 1, generator=gen, dtype=torch.float64)
    model = GaussianEnergy(0.0, 1.8, learn_mean=False)
    q = GaussianProposal(0.0, 3.0)
    y = q.sample(400, generator=gen)
    log_q = q.log_prob(y)
    j = importance_sampling_nll(model, x, y, log_q)
    (grad,) = torch.autograd.grad(j, model.scale_tril)
    theta = 1.8
    w = torch.softmax(-0.5 * y[:, 0] ** 2 / theta**2 - log_q, dim=0)
    eq12 = float((-(x**2) / theta**3).mean() - (w * (-(y[:, 0] ** 2) / theta**3)).sum())
    assert float(grad) == pytest.approx(eq12, abs=1e-12)
    direct = float((x**2).mean() / (2 * theta**2)) + math.log(
        float(torch.exp(-0.5 * y[:, 0] ** 2 / theta**2 - log_q).mean())
    )
    assert float(j.detach()) == pytest.approx(direct, abs=1e-12)
    # the surrogate loss has the same gradient, but its samples and weights receive no gradient
    y_req = y.clone().requires_grad_(True)
    (grad2,) = torch.autograd.grad(
        importance_sampling_gradient_loss(model, x, y_req, log_q), model.scale_tril
    )
    assert float(grad2) == pytest.approx(eq12, abs=1e-12)


@pytest.mark.parametrize(
    "args, err, match",
    [
        ((torch.zeros(3, 0), torch.zeros(0)), ValueError, "log_phi needs at least one sample"),
        ((torch.tensor([float("nan")]), torch.zeros(1)), ValueError, "log_phi contains NaN"),
        ((torch.zeros(2, 3), torch.zeros(4)), ValueError, "broadcast"),
        (
            (torch.zeros(3), torch.tensor([0.0, float("inf"), 0.0])),
            ValueError,
            "log_q contains NaN or infinite",
        ),
        (([0.0], torch.zeros(1)), TypeError, "log_phi must be a torch.Tensor"),
    ],
)
def test_log_partition_is_rejects_bad_input(args, err, match):
    with pytest.raises(err, match=match):
        log_partition_is(*args)


def test_partition_helpers_reject_bad_input():
    with pytest.raises(ValueError, match="log_w needs at least one sample"):
        ess(torch.zeros(0))
    with pytest.raises(ValueError, match="features must have shape"):
        log_partition_is_grid(torch.zeros(3, 2), torch.zeros(1, 2))
    with pytest.raises(ValueError, match="coefficients must have shape"):
        log_partition_is_grid(torch.zeros(1, 2, 3), torch.zeros(1, 3))
    with pytest.raises(ValueError, match="chunk_size"):
        log_partition_is_grid(torch.zeros(1, 2, 3), torch.zeros(1, 2), chunk_size=0)


def test_is_losses_reject_bad_input():
    model = GaussianEnergy(0.0, 1.0)
    x = torch.zeros(3, 1, dtype=torch.float64)
    y = torch.zeros(4, 1, dtype=torch.float64)
    with pytest.raises(ValueError, match=r"log_q_y must have shape \(4,\)"):
        importance_sampling_nll(model, x, y, torch.zeros(3, dtype=torch.float64))
    with pytest.raises(ValueError, match="y is an empty batch"):
        importance_sampling_nll(
            model, x, torch.zeros(0, 1, dtype=torch.float64), torch.zeros(0, dtype=torch.float64)
        )
    with pytest.raises(ValueError, match="log_q_y contains NaN"):
        importance_sampling_gradient_loss(
            model, x, y, torch.full((4,), float("nan"), dtype=torch.float64)
        )
    with pytest.raises(ValueError, match="y must have 1 columns"):
        importance_sampling_nll(
            model, x, torch.zeros(4, 2, dtype=torch.float64), torch.zeros(4, dtype=torch.float64)
        )
