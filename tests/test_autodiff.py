import pytest
import torch

from ebmlib import GaussianEnergy, MLPEnergy, PolynomialEnergy
from ebmlib.autodiff import energy_gradients, energy_input_grad, parameter_names


def test_energy_gradients_match_closed_form_for_gaussian(gen):
    g = GaussianEnergy(0.4, 1.5)
    x = torch.randn(9, 1, generator=gen, dtype=torch.float64)
    G = energy_gradients(g, x)
    assert parameter_names(g) == ["mean", "scale_tril"]
    torch.testing.assert_close(G[:, 0], -(x[:, 0] - 0.4) / 1.5**2)
    torch.testing.assert_close(G[:, 1], -((x[:, 0] - 0.4) ** 2) / 1.5**3)


def test_energy_gradients_rows_sum_to_gradient_of_sum(gen):
    m = MLPEnergy(2, 8, generator=gen, dtype=torch.float64)
    x = torch.randn(6, 2, generator=gen, dtype=torch.float64)
    G = energy_gradients(m, x)
    full = torch.autograd.grad(m(x).sum(), list(m.parameters()))
    torch.testing.assert_close(G.sum(0), torch.cat([f.reshape(-1) for f in full]))
    p = PolynomialEnergy([0.5, 0.2])
    xs = torch.randn(4, 1, generator=gen, dtype=torch.float64)
    torch.testing.assert_close(energy_gradients(p, xs), p.sufficient_statistics(xs))


def test_energy_input_grad_and_no_parameter_grad_leak(gen):
    g = GaussianEnergy([0.0, 1.0], [2.0, 0.5])
    x = torch.randn(5, 2, generator=gen, dtype=torch.float64)
    e, gx = energy_input_grad(g, x)
    torch.testing.assert_close(
        gx,
        (x - torch.tensor([0.0, 1.0], dtype=torch.float64))
        / torch.tensor([4.0, 0.25], dtype=torch.float64),
    )
    torch.testing.assert_close(e, g(x).detach())
    assert all(p.grad is None for p in g.parameters())


def test_autodiff_rejects_bad_input():
    g = GaussianEnergy(0.0, 1.0, learn_mean=False, learn_scale=False)
    with pytest.raises(ValueError, match="no parameters"):
        energy_gradients(g, torch.zeros(2, 1, dtype=torch.float64))
    with pytest.raises(ValueError, match="x is an empty batch"):
        energy_gradients(GaussianEnergy(0.0, 1.0), torch.zeros(0, 1, dtype=torch.float64))
    with pytest.raises(ValueError, match="energy_fn must map"):
        energy_input_grad(lambda x: x, torch.zeros(3, 2))
