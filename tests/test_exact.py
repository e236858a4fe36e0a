import math

import numpy as np
import pytest
import torch
from scipy import integrate

from ebmlib import GaussianEnergy, PolynomialEnergy
from ebmlib.exact import (
    binary_states,
    exact_nll,
    exact_nll_gradient,
    exact_nll_quadrature,
    expectation_quadrature,
    log_partition_enumeration,
    log_partition_quadrature,
    quadrature_grid,
)


@pytest.mark.parametrize("mean, std", [(0.0, 0.3), (1.0, 2.0), (-3.0, 6.0)])
def test_quadrature_log_partition_matches_gaussian_closed_form(mean, std):
    g = GaussianEnergy(mean, std)
    lz = log_partition_quadrature(g, (mean - 14 * std, mean + 14 * std))
    assert float(lz.detach()) == pytest.approx(float(g.log_partition().detach()), abs=1e-12)


@pytest.mark.parametrize(
    "theta, powers", [([0.5, 0.1], (2, 4)), ([-1.0, 0.25], (2, 4)), ([0.7, -0.3, 0.2], (1, 3, 4))]
)
def test_quadrature_log_partition_matches_scipy_quad(theta, powers):
    p = PolynomialEnergy(theta, powers=powers)

    def phi(x):
        return math.exp(-sum(t * x**k for t, k in zip(theta, powers, strict=True)))

    z_ref, abserr = integrate.quad(phi, -np.inf, np.inf, epsabs=0, epsrel=1e-13)
    lz = log_partition_quadrature(p, (-12, 12))
    assert float(lz.detach()) == pytest.approx(math.log(z_ref), abs=1e-10)


def test_quadrature_2d_matches_correlated_gaussian():
    g = GaussianEnergy([0.5, -1.0], [[1.0, 0.0], [0.9, 0.5]])
    lz = log_partition_quadrature(g, [(-9, 10), (-10, 8)], n_points=401)
    assert float(lz.detach()) == pytest.approx(float(g.log_partition().detach()), abs=1e-9)


def test_quadrature_gradient_is_minus_model_expectation_of_energy_gradient():
    # Gaussian: d log Z / d sigma = 1 / sigma, d log Z / d mu = 0 (analytic)
    g = GaussianEnergy(0.7, 1.6)
    lz = log_partition_quadrature(g, (-25, 25))
    d_mu, d_l = torch.autograd.grad(lz, [g.mean, g.scale_tril])
    assert float(d_mu) == pytest.approx(0.0, abs=1e-12)
    assert float(d_l) == pytest.approx(1 / 1.6, abs=1e-12)
    # polynomial family: grad log Z = -E_p[T(x)], E_p by an independent scipy quadrature
    theta, powers = [0.4, 0.15], (2, 4)
    p = PolynomialEnergy(theta, powers=powers)
    (grad,) = torch.autograd.grad(log_partition_quadrature(p, (-12, 12)), p.theta)

    def phi(x):
        return math.exp(-(theta[0] * x**2 + theta[1] * x**4))

    z = integrate.quad(phi, -np.inf, np.inf, epsrel=1e-13)[0]
    moments = [
        integrate.quad(lambda x, k=k: x**k * phi(x), -np.inf, np.inf, epsrel=1e-13)[0] / z
        for k in powers
    ]
    torch.testing.assert_close(
        grad, -torch.tensor(moments, dtype=torch.float64), rtol=1e-9, atol=1e-12
    )


def test_expectation_quadrature_moments():
    g = GaussianEnergy(1.0, 2.0)
    m = expectation_quadrature(lambda x: torch.cat([x, x**2], dim=1), g, (-30, 30))
    torch.testing.assert_close(m, torch.tensor([1.0, 5.0], dtype=torch.float64), rtol=0, atol=1e-10)
    scalar = expectation_quadrature(lambda x: x[:, 0], g, (-30, 30))
    assert scalar.shape == () and float(scalar.detach()) == pytest.approx(1.0, abs=1e-10)


def test_quadrature_rejects_a_box_that_cuts_off_mass():
    g = GaussianEnergy(0.0, 3.0)
    with pytest.raises(ValueError, match="bounds too narrow"):
        log_partition_quadrature(g, (-5, 5))
    # the check can be disabled explicitly
    assert torch.isfinite(log_partition_quadrature(g, (-5, 5), tail_tol=None))


@pytest.mark.parametrize(
    "bounds, n_points, err, match",
    [
        ((1.0, -1.0), None, ValueError, "low < high"),
        ((0.0, float("inf")), None, ValueError, "finite"),
        ([(0, 1), (0, 1), (0, 1)], None, ValueError, "1-D or 2-D"),
        ((-1.0, 1.0), 2, ValueError, "n_points"),
        ((-1.0, 1.0), 2.5, TypeError, "n_points"),
        ("ab", None, TypeError, "bounds"),
        ([], None, ValueError, "bounds"),
    ],
)
def test_quadrature_grid_rejects_bad_arguments(bounds, n_points, err, match):
    with pytest.raises(err, match=match):
        quadrature_grid(bounds, n_points)


def test_quadrature_grid_shapes_and_weights():
    pts, log_w, axes = quadrature_grid([(0, 1), (0, 2)], n_points=(11, 21))
    assert pts.shape == (231, 2) and log_w.shape == (231,) and len(axes) == 2
    assert float(torch.exp(log_w).sum()) == pytest.approx(2.0, abs=1e-12)  # area of the box


def test_quadrature_rejects_nonfinite_or_misshaped_energy():
    with pytest.raises(ValueError, match="NaN or infinite"):
        log_partition_quadrature(lambda x: torch.log(x[:, 0]), (-1, 1))
    with pytest.raises(ValueError, match="energy_fn must map"):
        log_partition_quadrature(lambda x: x, (-1, 1))


def test_binary_states_order_and_range():
    s = binary_states(3)
    # row i holds the bits of i, least significant first
    expected = torch.tensor(
        [[(i >> j) & 1 for j in range(3)] for i in range(8)], dtype=torch.float64
    )
    torch.testing.assert_close(s, expected)
    torch.testing.assert_close(binary_states(3, 2, 4), s[2:4])
    with pytest.raises(ValueError, match="start"):
        binary_states(3, 5, 20)


def test_enumeration_matches_independent_bits_closed_form_and_is_differentiable():
    b = torch.tensor([0.3, -1.2, 2.0, 0.0, 0.5], dtype=torch.float64, requires_grad=True)

    def energy(s):
        return -(s @ b)

    lz = log_partition_enumeration(energy, 5, chunk_size=7)  # uneven chunks on purpose
    closed = torch.log1p(torch.exp(b)).sum()
    assert float(lz.detach()) == pytest.approx(float(closed.detach()), abs=1e-12)
    (grad,) = torch.autograd.grad(lz, b)
    torch.testing.assert_close(grad, torch.sigmoid(b.detach()))  # E_p[s_i]


def test_enumeration_refuses_impossible_sizes():
    with pytest.raises(ValueError, match="too large to enumerate"):
        log_partition_enumeration(lambda s: s.sum(1), 40)
    with pytest.raises(ValueError, match="n_bits"):
        log_partition_enumeration(lambda s: s.sum(1), 0)


def test_exact_nll_and_gradient_against_gaussian_closed_form(gen):
    x = 2.0 * torch.randn(100, 1, generator=gen, dtype=torch.float64)
    sigma = 1.5
    g = GaussianEnergy(0.0, sigma, learn_mean=False)
    nll = exact_nll(g, x, g.log_partition())
    closed = float((x**2).mean()) / (2 * sigma**2) + math.log(math.sqrt(2 * math.pi) * sigma)
    assert float(nll.detach()) == pytest.approx(closed, abs=1e-13)
    assert float(exact_nll_quadrature(g, x, (-20, 20)).detach()) == pytest.approx(closed, abs=1e-11)
    value, (grad,) = exact_nll_gradient(g, x, (-20, 20))
    # d/d sigma [ mean(x^2)/(2 sigma^2) + log sigma ] = -mean(x^2)/sigma^3 + 1/sigma
    expected = -float((x**2).mean()) / sigma**3 + 1 / sigma
    assert float(grad) == pytest.approx(expected, abs=1e-11)
    assert float(value) == pytest.approx(closed, abs=1e-11)


def test_exact_nll_rejects_bad_input():
    g = GaussianEnergy(0.0, 1.0)
    with pytest.raises(ValueError, match="x is an empty batch"):
        exact_nll(g, torch.zeros(0, 1, dtype=torch.float64), g.log_partition())
    with pytest.raises(ValueError, match="x contains NaN"):
        exact_nll(g, torch.tensor([[float("nan")]], dtype=torch.float64), g.log_partition())
    with pytest.raises(ValueError, match="log_z must be a scalar"):
        exact_nll(g, torch.zeros(2, 1, dtype=torch.float64), torch.zeros(2, dtype=torch.float64))
    with pytest.raises(TypeError, match="x must be a floating-point"):
        exact_nll(g, torch.zeros(2, 1, dtype=torch.int64), g.log_partition())
    frozen = GaussianEnergy(0.0, 1.0, learn_mean=False, learn_scale=False)
    with pytest.raises(ValueError, match="params is empty"):
        exact_nll_gradient(frozen, torch.zeros(2, 1, dtype=torch.float64), (-10, 10))


def test_observed_information_matches_gaussian_fisher_information(gen):
    from ebmlib.exact import observed_information

    x = 1.5 + 2.0 * torch.randn(500, 1, generator=gen, dtype=torch.float64)
    mu, sd = float(x.mean()), float(x.std(unbiased=False))
    g = GaussianEnergy(mu, sd)  # at the MLE the observed information is N * diag(1/s^2, 2/s^2)
    H, names = observed_information(g, x, g.log_partition)
    assert names == ["mean[0]", "scale_tril[0]"]
    torch.testing.assert_close(
        H,
        torch.diag(torch.tensor([500 / sd**2, 1000 / sd**2], dtype=torch.float64)),
        rtol=1e-9,
        atol=1e-9,
    )
    # a normalized mixture needs no log_z; its Hessian is symmetric and finite
    from ebmlib import MixtureEnergy

    c1, c2 = GaussianEnergy(-1.0, 1.0), GaussianEnergy(2.0, 1.0)
    H2, names2 = observed_information(
        MixtureEnergy([c1, c2], [c1.log_partition, c2.log_partition]), x
    )
    assert H2.shape == (6, 6) and len(names2) == 6
    torch.testing.assert_close(H2, H2.T)
    with pytest.raises(ValueError, match="no parameters"):
        observed_information(GaussianEnergy(0.0, 1.0, learn_mean=False, learn_scale=False), x)
