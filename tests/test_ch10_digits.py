"""Chapter 10's pieces: the whitened continuous digits and the Gaussian-plus-network energy."""

import math

import pytest
import torch

from ebmlib import GaussianMLPEnergy, ais_log_partition
from ebmlib.data import load_digits_continuous
from ebmlib.energies import GaussianEnergy


@pytest.fixture(scope="module")
def digits():
    return load_digits_continuous(generator=torch.Generator().manual_seed(0), dtype=torch.float64)


def test_whitened_training_images_have_zero_mean_and_identity_covariance(digits):
    assert digits.train.shape == (1250, 64)
    assert digits.valid.shape == (250, 64) and digits.test.shape == (297, 64)
    assert torch.allclose(digits.train.mean(0), torch.zeros(64, dtype=torch.float64), atol=1e-10)
    assert torch.allclose(torch.cov(digits.train.T), torch.eye(64, dtype=torch.float64), atol=1e-8)
    # held-out images are not whitened exactly: their covariance differs from the identity
    assert not torch.allclose(
        torch.cov(digits.valid.T), torch.eye(64, dtype=torch.float64), atol=1e-2
    )


def test_log_det_is_the_jacobian_of_pixels_to_whitened_points(digits):
    # one test image: rebuild its pixels, then differentiate the whole map pixels -> z
    z = digits.test[:1]
    x = digits.to_pixels(z)[0]
    lam = digits.lam

    def pixels_to_z(px):
        s = lam + (1 - 2 * lam) * px
        y = torch.log(s) - torch.log1p(-s)
        return torch.linalg.solve_triangular(
            digits.scale_tril, (y - digits.mean)[:, None], upper=False
        )[:, 0]

    assert torch.allclose(pixels_to_z(x), z[0], atol=1e-9)
    jac = torch.autograd.functional.jacobian(pixels_to_z, x)
    assert math.isclose(
        float(torch.linalg.slogdet(jac)[1]), float(digits.log_det.test[0]), abs_tol=1e-8
    )


def test_pixels_are_in_the_unit_interval_and_the_split_is_seeded(digits):
    x = digits.to_pixels(digits.test)
    assert float(x.min()) > 0 and float(x.max()) < 1
    again = load_digits_continuous(generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    other = load_digits_continuous(generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    assert torch.equal(again.test, digits.test)
    assert not torch.equal(other.test, digits.test)  # new dequantization noise


def test_bad_arguments_are_refused():
    with pytest.raises(TypeError, match="dtype"):
        load_digits_continuous(dtype=torch.int64)
    with pytest.raises(ValueError, match="lam"):
        load_digits_continuous(lam=0.5)
    with pytest.raises(TypeError, match="generator"):
        load_digits_continuous(generator=0)


def test_gaussian_mlp_energy_starts_at_the_standard_normal_and_stays_normalizable():
    model = GaussianMLPEnergy(
        16, 32, generator=torch.Generator().manual_seed(0), dtype=torch.float64
    )
    x = torch.randn(50, 16, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    assert torch.allclose(model(x), 0.5 * (x * x).sum(1))
    # perturb the network: the quadratic term keeps the density normalizable, and its log Z
    # (estimated by AIS from the standard normal) moves away from the normal's
    with torch.no_grad():
        model.net.net[-1].weight.normal_(0.0, 0.3, generator=torch.Generator().manual_seed(2))
    base = GaussianEnergy(
        torch.zeros(16, dtype=torch.float64), 1.0, learn_mean=False, learn_scale=False
    )
    result = ais_log_partition(
        model, base=base, n_runs=64, betas=200, generator=torch.Generator().manual_seed(3)
    )
    assert torch.isfinite(result.log_z)
    assert abs(float(result.log_z) - float(base.log_partition())) > 4 * float(result.stderr)
    with pytest.raises(ValueError):
        model(torch.randn(3, 15, dtype=torch.float64))
