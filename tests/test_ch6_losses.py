"""Sliced score matching with Rademacher (Hutchinson) projections, against exact score matching."""

import math

import pytest
import torch

from conftest import Z_TOL
from ebmlib import GaussianEnergy, MLPEnergy, PolynomialEnergy
from ebmlib.losses import score_matching_loss, sliced_score_matching_loss


@pytest.mark.parametrize("variance_reduction", [True, False])
def test_rademacher_sliced_objective_is_unbiased_for_the_exact_one(variance_reduction):
    m = MLPEnergy(3, 16, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    x = torch.randn(5, 3, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    exact = float(score_matching_loss(m, x).detach())
    K = 4000
    # the spread of single-projection estimates gives the SE of the mean of K of them
    singles = torch.tensor(
        [
            float(
                sliced_score_matching_loss(
                    m,
                    x,
                    1,
                    generator=torch.Generator().manual_seed(100 + k),
                    variance_reduction=variance_reduction,
                    projection="rademacher",
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
            projection="rademacher",
        ).detach()
    )
    se = float(singles.std()) / math.sqrt(K)
    assert se > 0
    assert abs(many - exact) < Z_TOL * se


@pytest.mark.parametrize("variance_reduction", [True, False])
def test_rademacher_sliced_is_exact_in_one_dimension(variance_reduction):
    """In 1-D v = +-1, so v^2 = 1: v s' v = s' and (v s)^2 = s^2, the exact objective for every
    draw."""
    e = PolynomialEnergy([0.4, -0.3, 0.05], powers=(2, 3, 4))
    x = torch.randn(50, 1, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    exact = score_matching_loss(e, x)
    (g_exact,) = torch.autograd.grad(exact, e.theta)
    for k in range(5):
        sliced = sliced_score_matching_loss(
            e,
            x,
            3,
            generator=torch.Generator().manual_seed(k),
            variance_reduction=variance_reduction,
            projection="rademacher",
        )
        (g_sliced,) = torch.autograd.grad(sliced, e.theta)
        assert float(sliced.detach()) == pytest.approx(float(exact.detach()), abs=1e-12)
        assert torch.allclose(g_sliced, g_exact, atol=1e-12)


def test_gaussian_sliced_is_not_exact_in_one_dimension():
    e = PolynomialEnergy([0.4, 0.05], powers=(2, 4))
    x = torch.randn(50, 1, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    exact = float(score_matching_loss(e, x).detach())
    sliced = float(
        sliced_score_matching_loss(e, x, 1, generator=torch.Generator().manual_seed(1)).detach()
    )
    assert abs(sliced - exact) > 1e-3


def test_rademacher_variance_matches_the_hutchinson_formula():
    """One point, quadratic energy: Var(v'Hv) = 2 (||H||_F^2 - sum_i H_ii^2) for Rademacher v."""
    P = torch.tensor([[2.0, 0.6], [0.6, 1.0]], dtype=torch.float64)
    g = GaussianEnergy([0.0, 0.0], torch.linalg.cholesky(torch.linalg.inv(P)))
    x = torch.tensor([[0.7, -1.2]], dtype=torch.float64)
    H = -P
    # v'Hv = tr H + 2 H_12 v_1 v_2 with v_1 v_2 = +-1 equally likely: variance 4 H_12^2 exactly
    expected = float(2 * ((H**2).sum() - (torch.diagonal(H) ** 2).sum()))
    assert expected == pytest.approx(4 * 0.6**2)
    K = 200
    draws = torch.tensor(
        [
            float(
                sliced_score_matching_loss(
                    g, x, 1, generator=torch.Generator().manual_seed(k), projection="rademacher"
                ).detach()
            )
            for k in range(K)
        ],
        dtype=torch.float64,
    )
    # each draw is one of two values, mean +- 2 |H_12|: a two-point law, kurtosis 1, so the sample
    # variance has relative SE sqrt((kurtosis - 1) / K + 2 / (K - 1)) <= sqrt(2 / (K - 1))
    assert abs(float(draws.var()) / expected - 1) < Z_TOL * math.sqrt(2 / (K - 1))
    # the two values are exactly tr-term +- 2 |H_12| plus the fixed quadratic term
    s = -(P @ x[0])
    centre = float(torch.trace(H) + 0.5 * s @ s)
    assert torch.allclose(
        torch.sort(torch.unique(draws.round(decimals=10))).values,
        torch.tensor([centre - 1.2, centre + 1.2], dtype=torch.float64),
    )


def test_rademacher_is_exact_for_a_diagonal_hessian():
    g = GaussianEnergy(
        [0.3, -0.2, 0.1], torch.diag(torch.tensor([1.0, 0.5, 2.0], dtype=torch.float64))
    )
    x = torch.randn(20, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    exact = float(score_matching_loss(g, x).detach())
    sliced = float(
        sliced_score_matching_loss(
            g, x, 1, generator=torch.Generator().manual_seed(1), projection="rademacher"
        ).detach()
    )
    assert sliced == pytest.approx(exact, abs=1e-12)


def test_default_projection_is_unchanged():
    """The default draws v = randn from the generator, as before the option existed."""
    m = MLPEnergy(2, 8, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    x = torch.randn(7, 2, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    a = sliced_score_matching_loss(m, x, 2, generator=torch.Generator().manual_seed(5))
    b = sliced_score_matching_loss(
        m, x, 2, generator=torch.Generator().manual_seed(5), projection="gaussian"
    )
    assert torch.equal(a.detach(), b.detach())


def test_bad_projection_is_rejected():
    e = PolynomialEnergy([0.5], powers=(2,))
    x = torch.zeros(3, 1, dtype=torch.float64)
    with pytest.raises(ValueError, match="projection"):
        sliced_score_matching_loss(e, x, 1, projection="uniform")
    with pytest.raises(TypeError, match="projection"):
        sliced_score_matching_loss(e, x, 1, projection=1)
