import math

import pytest
import torch
from torch.autograd import gradcheck

from conftest import Z_TOL
from ebmlib import GaussianEnergy, MLPEnergy, PolynomialEnergy


def test_gaussian_1d_energy_and_log_partition():
    g = GaussianEnergy(0.5, 2.0)
    x = torch.tensor([[0.5], [2.5], [-1.5]], dtype=torch.float64)
    torch.testing.assert_close(g(x), torch.tensor([0.0, 0.5, 0.5], dtype=torch.float64))
    assert float(g.log_partition().detach()) == pytest.approx(
        math.log(math.sqrt(2 * math.pi) * 2.0), abs=1e-14
    )


def test_gaussian_matches_torch_distribution():
    L = torch.tensor([[1.5, 0.0], [0.7, 0.4]], dtype=torch.float64)
    mu = torch.tensor([0.3, -1.0], dtype=torch.float64)
    g = GaussianEnergy(mu, L)
    ref = torch.distributions.MultivariateNormal(mu, scale_tril=L)
    x = torch.randn(7, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    torch.testing.assert_close(g.log_prob(x), ref.log_prob(x))
    torch.testing.assert_close(g.covariance(), L @ L.T)


def test_gaussian_diagonal_scale_and_samples(gen):
    # n = 2000: a scale off by 15% (its square by 30%) is 2 Z_TOL SE of the sample variance
    n = 2000
    g = GaussianEnergy([1.0, -2.0], [0.5, 3.0])
    x = g.sample(n, generator=gen)
    assert x.shape == (n, 2) and x.dtype == torch.float64
    se_mean = torch.tensor([0.5, 3.0], dtype=torch.float64) / math.sqrt(n)
    assert bool(((x.mean(0) - g.mean.detach()).abs() < Z_TOL * se_mean).all())
    # variance of a sample variance for a Gaussian is 2 s^4 / (n-1)
    se_var = torch.tensor([0.25, 9.0], dtype=torch.float64) * math.sqrt(2 / (n - 1))
    assert bool(
        ((x.var(0) - torch.tensor([0.25, 9.0], dtype=torch.float64)).abs() < Z_TOL * se_var).all()
    )


def test_gaussian_sample_is_reproducible():
    g = GaussianEnergy(0.0, 1.0)
    a = g.sample(5, generator=torch.Generator().manual_seed(3))
    b = g.sample(5, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, b)


def test_gaussian_gradcheck_wrt_parameters_and_input():
    g = GaussianEnergy([0.2, -0.4], [[1.2, 0.0], [0.3, 0.8]])
    mu = g.mean.detach().clone().requires_grad_(True)
    L = g.scale_tril.detach().clone().requires_grad_(True)
    x = torch.randn(
        4, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(1), requires_grad=True
    )

    def energy(mu_, L_, x_):
        return torch.func.functional_call(g, {"mean": mu_, "scale_tril": L_}, (x_,))

    assert gradcheck(energy, (mu, L, x))
    # analytic: d log Z / d L_ii = 1 / L_ii, and log Z does not depend on the mean
    (grad,) = torch.autograd.grad(g.log_partition(), g.scale_tril)
    torch.testing.assert_close(grad, torch.diag(1.0 / torch.diagonal(g.scale_tril.detach())))


@pytest.mark.parametrize(
    "bad, err",
    [
        (dict(mean=0.0, scale=0.0), ValueError),
        (dict(mean=0.0, scale=-1.0), ValueError),
        (dict(mean=float("nan"), scale=1.0), ValueError),
        (dict(mean=[0.0, 0.0], scale=[1.0, 2.0, 3.0]), ValueError),
        (dict(mean=0.0, scale=float("inf")), ValueError),
    ],
)
def test_gaussian_rejects_bad_parameters(bad, err):
    with pytest.raises(err, match="mean|scale"):
        GaussianEnergy(**bad)


def test_energies_reject_bad_input_shape():
    g = GaussianEnergy([0.0, 0.0], 1.0)
    with pytest.raises(ValueError, match=r"x must have shape \(n, 2\)"):
        g(torch.zeros(3, dtype=torch.float64))
    with pytest.raises(ValueError, match="x must have shape"):
        g(torch.zeros(3, 3, dtype=torch.float64))
    with pytest.raises(TypeError, match="x must be a torch.Tensor"):
        g([[0.0, 0.0]])
    with pytest.raises(ValueError, match="x must have shape"):
        PolynomialEnergy([1.0, 1.0])(torch.zeros(3, 2, dtype=torch.float64))
    with pytest.raises(ValueError, match="x must have shape"):
        MLPEnergy(2, 8)(torch.zeros(3, 3))


def test_gaussian_sample_rejects_bad_arguments():
    g = GaussianEnergy(0.0, 1.0)
    with pytest.raises(ValueError, match="n must be"):
        g.sample(0)
    with pytest.raises(TypeError, match="generator"):
        g.sample(3, generator=0)


def test_polynomial_energy_values_and_statistics():
    p = PolynomialEnergy([0.5, 0.25], powers=(2, 4))
    x = torch.tensor([[1.0], [2.0]], dtype=torch.float64)
    torch.testing.assert_close(
        p.sufficient_statistics(x), torch.tensor([[1.0, 1.0], [4.0, 16.0]], dtype=torch.float64)
    )
    torch.testing.assert_close(p(x), torch.tensor([0.75, 6.0], dtype=torch.float64))


def test_polynomial_energy_gradcheck():
    x = torch.randn(
        6, 1, dtype=torch.float64, generator=torch.Generator().manual_seed(2), requires_grad=True
    )
    p = PolynomialEnergy([0.3, -0.2, 0.1], powers=(1, 2, 4))
    assert gradcheck(lambda x_: p(x_), (x,))
    # E is linear in theta, so its gradient is the sufficient statistic
    (grad,) = torch.autograd.grad(p(x.detach()).sum(), p.theta)
    torch.testing.assert_close(grad, p.sufficient_statistics(x.detach()).sum(0))


@pytest.mark.parametrize(
    "theta, powers",
    [([1.0, -1.0], (2, 4)), ([1.0, 1.0], (2, 3)), ([1.0], (2, 4)), ([1.0, 1.0], (2, 2))],
)
def test_polynomial_rejects_non_normalizable_or_inconsistent(theta, powers):
    with pytest.raises(ValueError, match="theta|powers"):
        PolynomialEnergy(theta, powers=powers)


def test_mlp_energy_shape_init_reproducible_and_gradcheck():
    a = MLPEnergy(2, 16, generator=torch.Generator().manual_seed(0))
    b = MLPEnergy(2, 16, generator=torch.Generator().manual_seed(0))
    for pa, pb in zip(a.parameters(), b.parameters(), strict=True):
        assert torch.equal(pa, pb)
    assert [m.out_features for m in a.net if isinstance(m, torch.nn.Linear)] == [16, 16, 1]
    x = torch.randn(5, 2, generator=torch.Generator().manual_seed(2))
    # E(x) is the network's one output per row, (n,) not (n, 1), by hand through the layers
    h = x
    for layer in a.net:
        h = layer(h)
    assert a(x).shape == (5,) and torch.equal(a(x), h[:, 0]) and torch.equal(a(x), b(x))
    m = MLPEnergy(3, (8, 4), generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    xd = torch.randn(
        4, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(3), requires_grad=True
    )
    assert gradcheck(lambda x_: m(x_), (xd,))


def test_mlp_rejects_bad_sizes():
    with pytest.raises(ValueError, match="dim"):
        MLPEnergy(0, 8)
    with pytest.raises(ValueError, match="hidden"):
        MLPEnergy(2, (8, 0))
    with pytest.raises(TypeError, match="dim"):
        MLPEnergy(2.5, 8)


def test_mixture_energy_matches_closed_form_and_is_normalized():
    from ebmlib import MixtureEnergy
    from ebmlib.exact import log_partition_quadrature

    c1, c2 = GaussianEnergy(-2.0, 0.7), GaussianEnergy(1.5, 1.2)
    mix = MixtureEnergy([c1, c2], [c1.log_partition, c2.log_partition], weights=[0.3, 0.7])
    x = torch.linspace(-5, 5, 11, dtype=torch.float64)[:, None]
    dens = 0.3 * torch.exp(c1.log_prob(x)) + 0.7 * torch.exp(c2.log_prob(x))
    torch.testing.assert_close(mix(x), -torch.log(dens))
    assert float(log_partition_quadrature(mix, (-15, 15)).detach()) == pytest.approx(0.0, abs=1e-10)
    torch.testing.assert_close(
        mix.weights().detach(), torch.tensor([0.3, 0.7], dtype=torch.float64)
    )
    r = mix.responsibilities(x)
    assert r.shape == (11, 2)
    torch.testing.assert_close(r.sum(1), torch.ones(11, dtype=torch.float64))
    # gradients reach the mixing logits and each component's parameters
    mix(x).sum().backward()
    assert (
        mix.logits.grad is not None and c1.scale_tril.grad is not None and c2.mean.grad is not None
    )


def test_mixture_energy_rejects_bad_arguments():
    from ebmlib import MixtureEnergy

    c = GaussianEnergy(0.0, 1.0)
    with pytest.raises(ValueError, match="one log_partitions callable per component"):
        MixtureEnergy([c, c], [c.log_partition])
    with pytest.raises(TypeError, match="callables"):
        MixtureEnergy([c], [1.0])
    with pytest.raises(ValueError, match="weights must be 2 positive"):
        MixtureEnergy(
            [c, GaussianEnergy(1.0, 1.0)], [c.log_partition, c.log_partition], weights=[1.0, -1.0]
        )
    with pytest.raises(ValueError, match="share one dimension"):
        MixtureEnergy([c, GaussianEnergy([0.0, 0.0], 1.0)], [c.log_partition, c.log_partition])
