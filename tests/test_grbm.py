"""GaussianBernoulliRBM against enumeration of the hidden layer, quadrature over the visible one,
and gradcheck.

Statistical checks: |estimate - exact| < Z_TOL standard errors (see conftest.py).
"""

import math

import pytest
import torch

from conftest import Z_TOL
from ebmlib.exact import log_partition_quadrature
from ebmlib.grbm import GaussianBernoulliRBM, _hidden_states


def _random_model(n_visible, n_hidden, seed, scale=1.0):
    gen = torch.Generator().manual_seed(seed)
    model = GaussianBernoulliRBM(n_visible, n_hidden, generator=gen)
    with torch.no_grad():
        model.weight.copy_(
            scale * torch.randn(n_visible, n_hidden, generator=gen, dtype=torch.float64)
        )
        model.visible_bias.copy_(torch.randn(n_visible, generator=gen, dtype=torch.float64))
        model.hidden_bias.copy_(torch.randn(n_hidden, generator=gen, dtype=torch.float64))
        model.log_sigma.copy_(0.3 * torch.randn(n_visible, generator=gen, dtype=torch.float64))
    return model


def test_free_energy_sums_the_joint_energy_over_every_hidden_state():
    model = _random_model(5, 4, seed=0)
    v = torch.randn(7, 5, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    states = _hidden_states(0, 16, 4, torch.zeros((), dtype=torch.float64))
    joint = torch.stack([model.energy(v, h.expand(7, 4)) for h in states], 1)  # (7, 16)
    expected = -torch.logsumexp(-joint, 1)
    torch.testing.assert_close(model.free_energy(v), expected, rtol=0, atol=1e-12)
    assert torch.equal(model(v), model.free_energy(v))


def test_exact_log_partition_matches_quadrature_over_the_visible_units():
    model = _random_model(2, 3, seed=2, scale=0.8)
    with torch.no_grad():
        quad = log_partition_quadrature(model, [(-14.0, 14.0), (-14.0, 14.0)], n_points=801)
        exact = model.log_partition_exact()
    assert float(exact) == pytest.approx(float(quad), abs=1e-8)
    # chunking changes nothing
    torch.testing.assert_close(model.log_partition_exact(chunk_size=3), exact, rtol=0, atol=1e-12)


class _LogZ(torch.nn.Module):
    """``log_partition_exact`` as a module call, so torch.func.functional_call can swap the
    parameters."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self):
        return self.model.log_partition_exact()


def test_exact_log_partition_is_differentiable():
    model = _LogZ(_random_model(3, 3, seed=3))
    names = ["model.weight", "model.visible_bias", "model.hidden_bias", "model.log_sigma"]
    inputs = tuple(model.get_parameter(n).detach().clone().requires_grad_(True) for n in names)

    def log_z(*tensors):
        return torch.func.functional_call(model, dict(zip(names, tensors, strict=True)), ())

    assert torch.autograd.gradcheck(log_z, inputs)


def test_exact_samples_and_gibbs_chains_match_the_exact_mean():
    model = _random_model(3, 4, seed=4)
    states = _hidden_states(0, 16, 4, torch.zeros((), dtype=torch.float64))
    with torch.no_grad():
        p_h = torch.softmax(model._hidden_log_weights(states), 0)
        mean = p_h @ model.visible_mean(states)  # E[v] = sum_h p(h) E[v | h]
    gen = torch.Generator().manual_seed(5)
    n = 20000
    x = model.sample_exact(n, generator=gen)
    se = x.std(0) / math.sqrt(n)
    assert ((x.mean(0) - mean).abs() / se).max() < Z_TOL
    # block Gibbs from a bad start forgets it: 4000 independent chains, 200 sweeps
    chains = model.gibbs(torch.full((4000, 3), 5.0, dtype=torch.float64), 200, generator=gen)
    se = chains.std(0) / math.sqrt(4000)
    assert ((chains.mean(0) - mean).abs() / se).max() < Z_TOL


def test_log_likelihood_integrates_to_one_and_bad_input_is_refused():
    model = _random_model(1, 2, seed=6)
    grid = torch.linspace(-15, 15, 20001, dtype=torch.float64)[:, None]
    with torch.no_grad():
        dens = model.log_likelihood(grid).exp()
    assert float(torch.trapezoid(dens, grid[:, 0])) == pytest.approx(1.0, abs=1e-9)
    with pytest.raises(ValueError, match="max_hidden"):
        GaussianBernoulliRBM(4, 30).log_partition_exact()
    with pytest.raises(ValueError, match="v"):
        model.free_energy(torch.zeros(3, 2, dtype=torch.float64))
    with pytest.raises(ValueError, match="n_hidden"):
        GaussianBernoulliRBM(4, 0)
    with pytest.raises(ValueError, match="v"):
        model.free_energy(torch.tensor([[float("nan")]], dtype=torch.float64))
