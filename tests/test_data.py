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


# ---------------------------------------------------------------- binarized digits
import hashlib
import importlib.util
import shutil
from pathlib import Path

from ebmlib.data import DIGITS_SHA256, load_digits_binary

DATA = Path(__file__).resolve().parent.parent / "data"               # provenance and regeneration script
PACKAGE_DATA = Path(__file__).resolve().parent.parent / "ebmlib" / "datasets"   # the shipped files


def test_load_digits_binary_shapes_values_and_labels():
    train, test, y_train, y_test = load_digits_binary(return_labels=True)
    assert train.shape == (1500, 64) and test.shape == (297, 64)
    assert train.dtype == torch.float64
    assert set(torch.unique(torch.cat([train, test])).tolist()) == {0.0, 1.0}
    assert y_train.shape == (1500,) and y_test.shape == (297,)
    assert sorted(torch.unique(y_train).tolist()) == list(range(10))
    # the binarization x/16 > 0.5 leaves about 29% of the pixels on
    assert 0.25 < float(train.mean()) < 0.33
    a, b = load_digits_binary(dtype=torch.float32)
    assert a.dtype == torch.float32 and torch.equal(a.double(), train)


def test_digits_files_match_their_published_checksums():
    readme = (DATA / "README.md").read_text()
    for name, digest in DIGITS_SHA256.items():
        assert hashlib.sha256((PACKAGE_DATA / name).read_bytes()).hexdigest() == digest
        assert digest in readme


def test_corrupted_or_missing_digits_file_fails_clearly(tmp_path):
    for name in DIGITS_SHA256:
        shutil.copy(PACKAGE_DATA / name, tmp_path / name)
    raw = bytearray((tmp_path / "digits_binary_test.txt").read_bytes())
    raw[2] = ord("1") if raw[2] == ord("0") else ord("0")        # flip one pixel
    (tmp_path / "digits_binary_test.txt").write_bytes(bytes(raw))
    with pytest.raises(ValueError, match="digits_binary_test.txt fails its sha256 check"):
        load_digits_binary(root=tmp_path)
    (tmp_path / "digits_binary_train.txt").unlink()
    with pytest.raises(FileNotFoundError, match="make_digits_binary.py"):
        load_digits_binary(root=tmp_path)
    with pytest.raises(TypeError, match="dtype"):
        load_digits_binary(dtype=torch.int64)


def test_regeneration_script_reproduces_the_files_bit_for_bit(tmp_path):
    spec = importlib.util.spec_from_file_location("make_digits_binary", DATA / "make_digits_binary.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    script.main(["--out", str(tmp_path)])
    for name in DIGITS_SHA256:
        assert (tmp_path / name).read_bytes() == (PACKAGE_DATA / name).read_bytes()
