r"""Data sets for the chapters: binarized handwritten digits, and 2-D toy densities with exact log densities.

* :func:`load_digits_binary`: the 1797 8x8 digits of scikit-learn's copy of the UCI data, binarized, with a fixed
  train/test split, read from the package data (``ebmlib/datasets/``) and checked against their SHA-256.
* :func:`ring_of_gaussians` / :func:`ring_log_density`: eight Gaussian modes on a circle.
* :func:`two_moons` / :func:`two_moons_log_density`: two interleaved half circles blurred by Gaussian noise.

Every generator takes an explicit ``torch.Generator``; nothing touches global random state.
"""

from __future__ import annotations

import hashlib
import math
from importlib import resources
from pathlib import Path

import torch

from .validation import check_batch, check_generator, check_int, check_positive

__all__ = ["load_digits_binary", "DIGITS_SHA256", "ring_of_gaussians", "ring_log_density", "two_moons", "two_moons_log_density"]


#: SHA-256 of the files written by ``data/make_digits_binary.py`` (also listed in ``data/README.md``).
#: The files ship inside the package, in ``ebmlib/datasets/``, and are read through ``importlib.resources``.
DIGITS_SHA256 = {
    "digits_binary_train.txt": "c55cef3f51449deeb7bcd318fa77ff313b242b58f1dfb80bb8eae3fa7408e281",
    "digits_binary_test.txt": "a0c1def4a640543ecb68e6f9cbdc3376832a1194217abe181798b85b682599c4",
}
_DATASETS = "datasets"


def _read_digits(path, dtype) -> tuple[torch.Tensor, torch.Tensor]:
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: regenerate it with `python data/make_digits_binary.py`")
    raw = path.read_bytes()
    digest = hashlib.sha256(raw).hexdigest()
    if digest != DIGITS_SHA256[path.name]:
        raise ValueError(f"{path} fails its sha256 check (got {digest}, expected {DIGITS_SHA256[path.name]}): "
                         "the file is corrupted or was edited; regenerate it with `python data/make_digits_binary.py`")
    labels, rows = [], []
    for line in raw.decode("ascii").splitlines():
        label, bits = line.split()
        labels.append(int(label))
        rows.append([int(c) for c in bits])
    return torch.tensor(rows, dtype=dtype), torch.tensor(labels)


def load_digits_binary(*, return_labels: bool = False, dtype: torch.dtype = torch.float64,
                       root: str | Path | None = None):
    r"""The binarized 8x8 handwritten digits, split into a fixed training and test set.

    The 1797 images of scikit-learn's copy of the UCI Optical Recognition of Handwritten Digits data (CC BY 4.0),
    binarized by ``grey / 16 > 0.5`` and split by a fixed permutation into 1500 training and 297 test images
    (``data/make_digits_binary.py`` regenerates the files bit for bit). Each file is checked against its SHA-256
    before it is read.

    Parameters
    ----------
    return_labels : bool
        Also return the digit labels (0-9).
    dtype : torch.dtype
        Floating dtype of the images.
    root : path, optional
        Folder holding the files (default: the copy shipped inside the package, ``ebmlib/datasets/``).

    Returns
    -------
    train : torch.Tensor, shape (1500, 64)
        0/1 images, row by row.
    test : torch.Tensor, shape (297, 64)
    train_labels, test_labels : torch.Tensor of int64, shapes (1500,) and (297,)
        Only with ``return_labels=True``.

    Raises
    ------
    FileNotFoundError
        A file is missing.
    ValueError
        A file fails its SHA-256 check.
    """
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise TypeError(f"dtype must be a floating torch.dtype, got {dtype!r}")
    folder = resources.files("ebmlib") / _DATASETS if root is None else Path(root)
    train, train_labels = _read_digits(folder / "digits_binary_train.txt", dtype)
    test, test_labels = _read_digits(folder / "digits_binary_test.txt", dtype)
    if return_labels:
        return train, test, train_labels, test_labels
    return train, test


def _ring_centres(n_modes: int, radius: float, dtype) -> torch.Tensor:
    angles = 2 * math.pi * torch.arange(n_modes, dtype=dtype) / n_modes
    return radius * torch.stack([torch.cos(angles), torch.sin(angles)], dim=1)   # (K, 2)


def ring_of_gaussians(n: int, *, n_modes: int = 8, radius: float = 2.0, std: float = 0.3,
                      generator: torch.Generator | None = None, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    r"""Samples from an equal-weight mixture of ``n_modes`` isotropic Gaussians on a circle, shape ``(n, 2)``.

    The mode centres are :math:`r(\cos 2\pi k/K, \sin 2\pi k/K)`, :math:`k=0,\dots,K-1`. The exact log density is
    :func:`ring_log_density`, so any model fitted to these samples can be scored against the truth.
    """
    n = check_int(n, "n")
    n_modes = check_int(n_modes, "n_modes")
    radius = check_positive(radius, "radius", allow_zero=True)
    std = check_positive(std, "std")
    check_generator(generator)
    modes = torch.randint(n_modes, (n,), generator=generator)
    noise = torch.randn(n, 2, generator=generator, dtype=dtype)
    return _ring_centres(n_modes, radius, dtype)[modes] + std * noise


def ring_log_density(x: torch.Tensor, *, n_modes: int = 8, radius: float = 2.0, std: float = 0.3) -> torch.Tensor:
    r"""Exact log density of :func:`ring_of_gaussians` at each row of ``x`` (shape ``(n, 2)``), shape ``(n,)``.

    .. math::

        \log p(x) = \operatorname{logsumexp}_k\Bigl(-\frac{\lVert x-c_k\rVert^2}{2\sigma^2}\Bigr) - \log K - \log(2\pi\sigma^2).
    """
    check_batch(x, "x", dim=2)
    n_modes = check_int(n_modes, "n_modes")
    radius = check_positive(radius, "radius", allow_zero=True)
    std = check_positive(std, "std")
    centres = _ring_centres(n_modes, radius, x.dtype)
    sq = ((x[:, None, :] - centres[None, :, :]) ** 2).sum(-1)                     # (n, K)
    return torch.logsumexp(-sq / (2 * std ** 2), dim=1) - math.log(n_modes) - math.log(2 * math.pi * std ** 2)


def _moon_arcs(t: torch.Tensor, scale: float) -> torch.Tensor:
    """Points on the two arcs at parameters ``t`` in [0, pi], shape (2, len(t), 2), centred at the origin."""
    upper = torch.stack([torch.cos(t) - 0.5, torch.sin(t) - 0.25], dim=1)
    lower = torch.stack([0.5 - torch.cos(t), 0.25 - torch.sin(t)], dim=1)
    return scale * torch.stack([upper, lower])


def two_moons(n: int, *, noise: float = 0.15, scale: float = 1.5, generator: torch.Generator | None = None,
              dtype: torch.dtype = torch.float64) -> torch.Tensor:
    r"""Samples from the two-moons density, shape ``(n, 2)``.

    Each point picks one of the two arcs with probability 1/2 and a position :math:`t\sim U(0,\pi)` on it, then
    adds isotropic Gaussian noise of standard deviation ``noise``. The arcs are
    :math:`s(\cos t - \tfrac12, \sin t - \tfrac14)` and :math:`s(\tfrac12 - \cos t, \tfrac14 - \sin t)` with
    :math:`s` = ``scale`` (the usual two moons, centred). The exact log density is :func:`two_moons_log_density`.
    """
    n = check_int(n, "n")
    noise = check_positive(noise, "noise")
    scale = check_positive(scale, "scale")
    check_generator(generator)
    t = math.pi * torch.rand(n, generator=generator, dtype=dtype)
    arc = torch.randint(2, (n,), generator=generator)
    centres = _moon_arcs(t, scale)[arc, torch.arange(n)]
    return centres + noise * torch.randn(n, 2, generator=generator, dtype=dtype)


def two_moons_log_density(x: torch.Tensor, *, noise: float = 0.15, scale: float = 1.5,
                          n_arc: int = 2001) -> torch.Tensor:
    r"""Log density of :func:`two_moons` at each row of ``x`` (shape ``(n, 2)``), shape ``(n,)``.

    .. math::

        p(x) = \frac12\sum_{a=1}^{2}\frac1\pi\int_0^\pi \mathcal N\bigl(x;\,c_a(t),\,\sigma^2 I\bigr)\,dt ,

    with the integral over the arc parameter computed by the trapezoid rule on ``n_arc`` nodes. The nodes are
    :math:`\pi s/(n_\text{arc}-1)` apart along an arc of radius :math:`s`; with the defaults that is 0.016 of the
    noise standard deviation, and the trapezoid rule on a smooth integrand at that spacing is exact to rounding.
    """
    check_batch(x, "x", dim=2)
    noise = check_positive(noise, "noise")
    scale = check_positive(scale, "scale")
    n_arc = check_int(n_arc, "n_arc", minimum=3)
    t = torch.linspace(0.0, math.pi, n_arc, dtype=x.dtype)
    log_w = torch.full((n_arc,), math.log(math.pi / (n_arc - 1)), dtype=x.dtype)
    log_w[0] = log_w[-1] = log_w[0] - math.log(2)
    centres = _moon_arcs(t, scale).reshape(-1, 2)                                   # (2 * n_arc, 2)
    sq = torch.cdist(x, centres) ** 2                                                # (n, 2 * n_arc)
    log_terms = -sq / (2 * noise ** 2) + log_w.repeat(2)[None, :]
    return torch.logsumexp(log_terms, dim=1) - math.log(2 * math.pi) - math.log(2 * math.pi * noise ** 2)
