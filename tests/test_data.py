import hashlib
import importlib.util
import math
import shutil
from pathlib import Path

import pytest
import torch

from conftest import Z_TOL
from ebmlib.data import (
    DIGITS_SHA256,
    bits_per_dim,
    dequantize,
    inverse_logit_transform,
    load_digits_binary,
    load_digits_binary_labels,
    load_digits_grey,
    load_digits_grey_labels,
    logit_transform,
    ring_log_density,
    ring_of_gaussians,
    two_moons,
    two_moons_log_density,
)
from ebmlib.exact import expectation_quadrature, log_partition_quadrature


def test_ring_log_density_is_normalized_and_matches_samples():
    def energy(x):
        return -ring_log_density(x)

    log_z = log_partition_quadrature(energy, [(-5, 5), (-5, 5)], n_points=501)
    assert float(log_z) == pytest.approx(0.0, abs=1e-9)
    x = ring_of_gaussians(20000, generator=torch.Generator().manual_seed(0))
    assert x.shape == (20000, 2)
    # second moment E||x||^2 = r^2 + 2 sigma^2, checked within Z_TOL SE; and against quadrature
    r2 = (x**2).sum(1)
    exact = 2.0**2 + 2 * 0.3**2
    assert abs(float(r2.mean()) - exact) < Z_TOL * float(r2.std()) / math.sqrt(20000)
    quad = expectation_quadrature(lambda p: (p**2).sum(1), energy, [(-5, 5), (-5, 5)], n_points=501)
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
    box = [(-5.0, 5.0), (-5.0, 5.0)]

    def energy(x):
        return -two_moons_log_density(x, n_arc=401)  # node spacing 0.08 noise sd: still exact

    assert abs(float(log_partition_quadrature(energy, box, n_points=201))) < 1e-6

    # probability of the upper-left quadrant, by quadrature and by sampling (binomial standard
    # error)
    def region(x):
        return ((x[:, 0] < 0) & (x[:, 1] > 0)).to(x.dtype)[:, None]

    p = float(expectation_quadrature(region, energy, box, n_points=201)[0])
    n = 40000
    x = two_moons(n, generator=torch.Generator().manual_seed(0))
    frac = float(region(x).mean())
    assert abs(frac - p) < Z_TOL * math.sqrt(p * (1 - p) / n)
    with pytest.raises(ValueError, match="noise"):
        two_moons(10, noise=0.0)
    with pytest.raises(ValueError, match="x"):
        two_moons_log_density(torch.zeros(3, 3))


# ---------------------------------------------------------------- binarized digits
DATA = Path(__file__).resolve().parent.parent / "data"  # provenance and regeneration script
PACKAGE_DATA = Path(__file__).resolve().parent.parent / "ebmlib" / "datasets"  # the shipped files
BINARY = ("digits_binary_train.txt", "digits_binary_test.txt")


def test_load_digits_binary_shapes_values_and_labels():
    train, test = load_digits_binary()
    y_train, y_test = load_digits_binary_labels()
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
    for name in BINARY:
        shutil.copy(PACKAGE_DATA / name, tmp_path / name)
    raw = bytearray((tmp_path / "digits_binary_test.txt").read_bytes())
    raw[2] = ord("1") if raw[2] == ord("0") else ord("0")  # flip one pixel
    (tmp_path / "digits_binary_test.txt").write_bytes(bytes(raw))
    with pytest.raises(ValueError, match="digits_binary_test.txt fails its sha256 check"):
        load_digits_binary(root=tmp_path)
    (tmp_path / "digits_binary_train.txt").unlink()
    with pytest.raises(FileNotFoundError, match="make_digits_binary.py"):
        load_digits_binary(root=tmp_path)
    with pytest.raises(TypeError, match="dtype"):
        load_digits_binary(dtype=torch.int64)


def test_regeneration_script_reproduces_the_files_bit_for_bit(tmp_path):
    spec = importlib.util.spec_from_file_location(
        "make_digits_binary", DATA / "make_digits_binary.py"
    )
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    script.main(["--out", str(tmp_path)])
    for name in BINARY:
        assert (tmp_path / name).read_bytes() == (PACKAGE_DATA / name).read_bytes()


# ------------------------------------------------ grey-level digits and the logit transform


def test_grey_digits_split_and_agree_with_the_binarized_set():
    images, labels = load_digits_grey(), load_digits_grey_labels()
    assert [t.shape for t in images] == [(1250, 64), (250, 64), (297, 64)]
    pixels = torch.cat(list(images))
    assert float(pixels.min()) == 0.0 and float(pixels.max()) == 16.0
    assert sorted(torch.unique(labels.train).tolist()) == list(range(10))
    # the same permutation: binarizing the grey test set gives the binarized test set, image for
    # image
    (_, test_bits), (_, test_labels) = load_digits_binary(), load_digits_binary_labels()
    assert torch.equal((images.test / 16 > 0.5).double(), test_bits)
    assert torch.equal(labels.test, test_labels)
    train_bits = load_digits_binary()[0]
    assert torch.equal((torch.cat([images.train, images.valid]) / 16 > 0.5).double(), train_bits)


def test_grey_digits_checksum_and_regeneration(tmp_path):
    assert DIGITS_SHA256["digits_grey.txt"] in (DATA / "README.md").read_text()
    spec = importlib.util.spec_from_file_location("make_digits_grey", DATA / "make_digits_grey.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    script.main(["--out", str(tmp_path)])
    shipped = (PACKAGE_DATA / "digits_grey.txt").read_bytes()
    assert (tmp_path / "digits_grey.txt").read_bytes() == shipped
    raw = bytearray((tmp_path / "digits_grey.txt").read_bytes())
    raw[8] = ord("3") if raw[8] != ord("3") else ord("4")  # change one label
    (tmp_path / "digits_grey.txt").write_bytes(bytes(raw))
    with pytest.raises(ValueError, match="digits_grey.txt fails its sha256 check"):
        load_digits_grey(root=tmp_path)


def test_dequantize_and_logit_transform_with_its_jacobian():
    gen = torch.Generator().manual_seed(0)
    levels = torch.randint(0, 17, (4000, 3), generator=gen).double()
    x = dequantize(levels, generator=gen)
    assert bool(((x > 0) & (x < 1)).all())
    assert torch.equal(torch.floor(17 * x), levels)  # each point stays in its own bin
    # within the bin the offset is U(0, 1): mean 1/2 with standard error sqrt(1/12 / n)
    offset = 17 * x - levels
    assert abs(float(offset.mean()) - 0.5) < Z_TOL * math.sqrt(1 / 12 / offset.numel())
    y, log_det = logit_transform(x[:5], lam=0.05)
    torch.testing.assert_close(inverse_logit_transform(y, lam=0.05), x[:5], rtol=0, atol=1e-12)
    for i in range(5):
        jac = torch.autograd.functional.jacobian(
            lambda r: logit_transform(r[None], lam=0.05)[0][0], x[i]
        )
        assert float(torch.logdet(jac)) == pytest.approx(float(log_det[i]), abs=1e-10)
    assert float(bits_per_dim(torch.tensor(-64 * math.log(2)), 64)) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="levels"):
        dequantize(torch.full((2, 2), 17.0))
    with pytest.raises(ValueError, match="x must lie"):
        logit_transform(torch.zeros(2, 2))
    with pytest.raises(ValueError, match="lam"):
        logit_transform(x[:2], lam=0.5)
