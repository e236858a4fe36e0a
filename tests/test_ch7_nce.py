"""Chapter 7: conditional NCE against exact answers, and NCE with noise equal to the model against
the MLE gradient."""

import math

import pytest
import torch

from ebmlib import (
    GaussianEnergy,
    PolynomialEnergy,
    conditional_nce_loss,
    nce_loss,
    score_matching_loss,
)


@pytest.fixture(autouse=True)
def float64_default():
    """These checks compare to 1e-13: float64 by default here, restored afterwards (no leak into
    other tests)."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(previous)


def test_cnce_matches_hand_computed_value():
    energy = PolynomialEnergy([0.7], powers=(2,))  # E(u) = 0.7 u^2
    x = torch.tensor([[0.5], [-1.0]])
    y = torch.tensor([[[0.0], [1.0]], [[-2.0], [0.5]]])  # (N=2, kappa=2, d=1)
    e = lambda u: 0.7 * u**2  # noqa: E731
    terms = [
        math.log1p(math.exp(e(xn) - e(ynk)))
        for xn, row in ((0.5, (0.0, 1.0)), (-1.0, (-2.0, 0.5)))
        for ynk in row
    ]
    assert float(conditional_nce_loss(energy, x, y).detach()) == pytest.approx(
        sum(terms) / 4, rel=1e-13
    )


def test_cnce_does_not_depend_on_the_normalizer():
    gen = torch.Generator().manual_seed(0)
    energy = GaussianEnergy(torch.zeros(2), torch.eye(2))
    x = torch.randn(50, 2, generator=gen)
    y = x[:, None, :] + 0.3 * torch.randn(50, 3, 2, generator=gen)
    base = conditional_nce_loss(energy, x, y)
    shifted = conditional_nce_loss(
        lambda u: energy(u) + 5.0, x, y
    )  # exp(-E) / e^5: Z changes, the loss does not
    assert float(shifted.detach()) == pytest.approx(float(base.detach()), rel=1e-14)


def test_cnce_small_noise_is_score_matching():
    """With antithetic pairs y = x +- eps (1-D) the odd orders cancel:
    4 (J - log 2) / eps^2 = J_SM + O(eps^2)."""
    gen = torch.Generator().manual_seed(1)
    x = 1.3 * torch.randn(400, 1, generator=gen)
    energy = PolynomialEnergy([0.4, 0.05], powers=(2, 4))
    j_sm = float(score_matching_loss(energy, x).detach())
    errors = []
    for eps in (0.04, 0.02, 0.01):
        y = torch.stack([x + eps, x - eps], dim=1)  # (N, 2, 1)
        scaled = 4 * (float(conditional_nce_loss(energy, x, y).detach()) - math.log(2)) / eps**2
        errors.append(abs(scaled - j_sm))
    # halving eps divides an O(eps^2) remainder by 4 (3.5 to 4.5 allows for the O(eps^4) term)
    assert all(3.5 < a / b < 4.5 for a, b in zip(errors[:-1], errors[1:], strict=True)), (
        f"not an eps^2 rate: {errors}"
    )
    assert errors[-1] < 1e-2 * abs(j_sm), f"small-noise limit missed: {errors}"


def test_cnce_gradcheck():
    gen = torch.Generator().manual_seed(2)
    x = torch.randn(6, 1, generator=gen)
    y = x[:, None, :] + 0.5 * torch.randn(6, 2, 1, generator=gen)

    def f(theta):
        return conditional_nce_loss(
            lambda u: theta[0] * u[:, 0] ** 2 + theta[1] * u[:, 0] ** 4, x, y
        )

    assert torch.autograd.gradcheck(f, (torch.tensor([0.3, 0.1], requires_grad=True),))


@pytest.mark.parametrize(
    "y, match",
    [
        (torch.zeros(5, 2, 1), r"y must have shape \(4, kappa, 1\)"),
        (torch.zeros(4, 0, 1), "y must have shape"),
        (torch.zeros(4, 2), "y must have shape"),
        (torch.full((4, 2, 1), float("nan")), "y"),
    ],
)
def test_cnce_bad_noise(y, match):
    energy = PolynomialEnergy([0.5], powers=(2,))
    with pytest.raises(ValueError, match=match):
        conditional_nce_loss(energy, torch.zeros(4, 1), y)


def test_cnce_bad_data():
    energy = PolynomialEnergy([0.5], powers=(2,))
    with pytest.raises(ValueError, match="x"):
        conditional_nce_loss(energy, torch.zeros(4), torch.zeros(4, 2, 1))
    with pytest.raises(TypeError, match="x"):
        conditional_nce_loss(energy, [[0.0]], torch.zeros(1, 2, 1))


def test_nce_with_noise_equal_to_model_is_the_mle_gradient():
    """q = p_theta and c = log Z(theta):
    grad J_NCE = nu/(1+nu) (mean_x grad E - mean_y grad E), exactly."""
    gen = torch.Generator().manual_seed(3)
    theta1, nu, n = 0.35, 4, 300  # E = theta1 u^2, variance 1/(2 theta1)
    sd = 1 / math.sqrt(2 * theta1)
    x = torch.randn(n, 1, generator=gen)
    y = sd * torch.randn(nu * n, 1, generator=gen)
    energy = PolynomialEnergy([theta1], powers=(2,))
    log_z = torch.tensor(0.5 * math.log(2 * math.pi * sd**2), requires_grad=True)
    log_q = lambda u: -(u[:, 0] ** 2) / (2 * sd**2) - 0.5 * math.log(2 * math.pi * sd**2)  # noqa: E731
    loss = nce_loss(energy, log_z, x, y, log_q(x), log_q(y))
    g_theta, g_c = torch.autograd.grad(loss, [energy.theta, log_z])
    mc_mle = float((x**2).mean() - (y**2).mean())  # Monte-Carlo MLE gradient in theta1
    assert float(g_theta[0]) == pytest.approx(nu / (1 + nu) * mc_mle, rel=1e-12)
    assert abs(float(g_c)) < 1e-12, "at c = log Z the c-gradient vanishes identically"
