import pytest
import torch

from ebmlib import GaussianEnergy, cd_loss


def test_cd_loss_gradient_is_positive_minus_negative_phase(gen):
    g = GaussianEnergy(0.3, 1.2)
    x_pos = torch.randn(50, 1, generator=gen, dtype=torch.float64)
    x_neg = torch.randn(70, 1, generator=gen, dtype=torch.float64).requires_grad_(True)
    loss = cd_loss(g, x_pos, x_neg)
    grads = torch.autograd.grad(loss, [g.mean, g.scale_tril])
    mu, s = 0.3, 1.2
    # dE/dmu = -(x-mu)/s^2, dE/ds = -(x-mu)^2/s^3
    exp_mu = (-(x_pos - mu) / s**2).mean() - (-(x_neg.detach() - mu) / s**2).mean()
    exp_s = (-((x_pos - mu) ** 2) / s**3).mean() - (-((x_neg.detach() - mu) ** 2) / s**3).mean()
    assert float(grads[0]) == pytest.approx(float(exp_mu), abs=1e-12)
    assert float(grads[1].sum()) == pytest.approx(float(exp_s), abs=1e-12)


def test_cd_loss_does_not_leak_gradient_into_negative_samples(gen):
    g = GaussianEnergy(0.0, 1.0)
    x_neg = torch.randn(10, 1, generator=gen, dtype=torch.float64, requires_grad=True)
    cd_loss(g, torch.zeros(3, 1, dtype=torch.float64), x_neg).backward()
    assert x_neg.grad is None


def test_cd_loss_rejects_bad_input():
    g = GaussianEnergy([0.0, 0.0], 1.0)
    ok = torch.zeros(4, 2, dtype=torch.float64)
    with pytest.raises(ValueError, match="x_neg must have 2 columns"):
        cd_loss(g, ok, torch.zeros(4, 3, dtype=torch.float64))
    with pytest.raises(ValueError, match="x_pos is an empty batch"):
        cd_loss(g, torch.zeros(0, 2, dtype=torch.float64), ok)
    with pytest.raises(ValueError, match="x_neg contains NaN"):
        cd_loss(g, ok, torch.full((4, 2), float("nan"), dtype=torch.float64))
    with pytest.raises(TypeError, match="x_pos must be a torch.Tensor"):
        cd_loss(g, [[0.0, 0.0]], ok)
