import math

import pytest
import torch

from ebmlib.data import ring_log_density, ring_of_gaussians
from ebmlib.exact import expectation_quadrature, log_partition_quadrature


def test_ring_log_density_is_normalized_and_matches_samples():
    energy = lambda x: -ring_log_density(x)
    assert float(log_partition_quadrature(energy, [(-5, 5), (-5, 5)], n_points=501)) == pytest.approx(0.0, abs=1e-9)
    x = ring_of_gaussians(20000, generator=torch.Generator().manual_seed(0))
    assert x.shape == (20000, 2)
    # second moment E||x||^2 = r^2 + 2 sigma^2, checked within 4 SE; and against quadrature
    r2 = (x ** 2).sum(1)
    exact = 2.0 ** 2 + 2 * 0.3 ** 2
    assert abs(float(r2.mean()) - exact) < 4 * float(r2.std()) / math.sqrt(20000)
    quad = expectation_quadrature(lambda p: (p ** 2).sum(1), energy, [(-5, 5), (-5, 5)], n_points=501)
    assert float(quad) == pytest.approx(exact, abs=1e-9)


def test_ring_is_reproducible_and_validates():
    a = ring_of_gaussians(5, generator=torch.Generator().manual_seed(1))
    b = ring_of_gaussians(5, generator=torch.Generator().manual_seed(1))
    assert torch.equal(a, b)
    with pytest.raises(ValueError, match="std must be finite and > 0"):
        ring_of_gaussians(5, std=0.0)
    with pytest.raises(ValueError, match="n must be"):
        ring_of_gaussians(0)
    with pytest.raises(ValueError, match="x must have 2 columns"):
        ring_log_density(torch.zeros(3, 1, dtype=torch.float64))


def test_two_moons_density_is_normalized_and_matches_its_sampler():
    import math

    from ebmlib.data import two_moons, two_moons_log_density
    from ebmlib.exact import expectation_quadrature, log_partition_quadrature

    box = [(-5.0, 5.0), (-5.0, 5.0)]
    energy = lambda x: -two_moons_log_density(x, n_arc=401)    # node spacing 0.08 noise sd: still exact
    assert abs(float(log_partition_quadrature(energy, box, n_points=201))) < 1e-6
    # probability of the upper-left quadrant, by quadrature and by sampling (binomial standard error)
    region = lambda x: ((x[:, 0] < 0) & (x[:, 1] > 0)).to(x.dtype)[:, None]
    p = float(expectation_quadrature(region, energy, box, n_points=201)[0])
    n = 40000
    x = two_moons(n, generator=torch.Generator().manual_seed(0))
    frac = float(region(x).mean())
    assert abs(frac - p) < 4.5 * math.sqrt(p * (1 - p) / n)
    with pytest.raises(ValueError, match="noise"):
        two_moons(10, noise=0.0)
    with pytest.raises(ValueError, match="x"):
        two_moons_log_density(torch.zeros(3, 3))
