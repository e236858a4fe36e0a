"""AIS for continuous energies (HMC transitions) against exact log Z in 16 dimensions, and the RBM
path.

Statistical checks: |log Z-hat - log Z| < Z_TOL reported standard errors (see conftest.py).
"""

import math

import pytest
import torch

from conftest import Z_TOL
from ebmlib import GaussianEnergy
from ebmlib.annealing import AISResult, ais_log_partition, sigmoid_schedule
from ebmlib.grbm import GaussianBernoulliRBM
from ebmlib.rbm import BernoulliRBM

D = 16


def _gen(seed):
    return torch.Generator().manual_seed(seed)


def test_anisotropic_gaussian_in_16_dimensions():
    precision = torch.linspace(0.5, 4.0, D, dtype=torch.float64)
    mu = torch.linspace(-1.0, 1.0, D, dtype=torch.float64)

    def energy(x):
        return 0.5 * (((x - mu) ** 2) * precision).sum(1)

    exact = 0.5 * D * math.log(2 * math.pi) - 0.5 * float(precision.log().sum())
    base = GaussianEnergy(torch.zeros(D, dtype=torch.float64), 2.0)
    res = ais_log_partition(energy, base=base, n_runs=100, betas=200, generator=_gen(0))
    assert isinstance(res, AISResult) and res.log_z.shape == () and res.stderr.shape == ()
    assert res.log_weights.shape == (100,) and res.step_sizes.shape == (199,)
    assert abs(float(res.log_z) - exact) < Z_TOL * float(res.stderr)
    # the step size adapts from the first guess: the acceptance rate ends between 0.4 and 0.9
    assert 0.4 < float(res.acceptance[-50:].mean()) < 0.9
    assert float(res.step_sizes[-1]) != float(res.step_sizes[0])


def test_unequal_two_mode_mixture_in_16_dimensions():
    weights, s = torch.tensor([0.3, 0.7], dtype=torch.float64), 0.5
    # 8 nats apart per mode sd
    means = torch.stack([torch.full((D,), -1.0), torch.full((D,), 1.0)]).double()
    z_scale = 5.0  # unnormalized mass

    def energy(x):
        sq = ((x[:, None, :] - means) ** 2).sum(-1) / (2 * s**2)  # (n, 2)
        return -torch.logsumexp(torch.log(weights) - sq, 1) - math.log(z_scale)

    exact = math.log(z_scale) + 0.5 * D * math.log(2 * math.pi * s**2)
    base = GaussianEnergy(torch.zeros(D, dtype=torch.float64), 1.5)
    res = ais_log_partition(energy, base=base, n_runs=100, betas=300, generator=_gen(1))
    assert abs(float(res.log_z) - exact) < Z_TOL * float(res.stderr)
    assert float(res.stderr) < 0.5
    # a schedule far too short is off by far more than its own error bar claims: the test can fail
    short = ais_log_partition(energy, base=base, n_runs=100, betas=3, generator=_gen(2))
    assert float(short.log_z) < exact - 2.0


def test_sigmoid_schedule():
    b = sigmoid_schedule(101)
    assert float(b[0]) == 0.0 and float(b[-1]) == 1.0 and bool((b.diff() > 0).all())
    assert float(b[1] - b[0]) < float(b[51] - b[50]) / 5, "finer at the ends than in the middle"
    with pytest.raises(ValueError, match="n_temperatures"):
        sigmoid_schedule(1)


def test_gaussian_bernoulli_rbm_through_the_same_call():
    gen = _gen(3)
    model = GaussianBernoulliRBM(D, 6, generator=gen)
    with torch.no_grad():
        model.weight.normal_(0.0, 0.5, generator=gen)
        model.hidden_bias.normal_(0.0, 1.0, generator=gen)
        model.visible_bias.normal_(0.0, 1.0, generator=gen)
        exact = float(model.log_partition_exact())
        x = model.sample_exact(2000, generator=gen)
    base = GaussianEnergy(x.mean(0), torch.linalg.cholesky(torch.cov(x.T)))
    res = ais_log_partition(model, base=base, n_runs=100, betas=200, generator=gen)
    assert abs(float(res.log_z) - exact) < Z_TOL * float(res.stderr)


def test_rbm_path_and_errors():
    rbm = BernoulliRBM(6, 4)
    with torch.no_grad():
        rbm.weight.zero_()
    res = ais_log_partition(rbm, n_runs=10, betas=20, generator=_gen(4))
    assert isinstance(res, AISResult)
    # zero parameters: exact
    assert float(res.log_z) == pytest.approx(10 * math.log(2), abs=1e-9)

    def energy(x):
        return 0.5 * (x**2).sum(1)

    with pytest.raises(ValueError, match="base"):
        ais_log_partition(energy, n_runs=10, betas=10)
    with pytest.raises(TypeError, match="base"):
        ais_log_partition(energy, base=energy, n_runs=10, betas=10)
    with pytest.raises(ValueError, match="base"):
        ais_log_partition(rbm, base=GaussianEnergy(0.0, 1.0), n_runs=10, betas=10)
    with pytest.raises(ValueError, match="step_size"):
        ais_log_partition(energy, base=GaussianEnergy(torch.zeros(2), 1.0), step_size=0.0, betas=10)
    with pytest.raises(ValueError, match="n_runs"):
        ais_log_partition(energy, base=GaussianEnergy(torch.zeros(2), 1.0), n_runs=1, betas=10)
