r"""Data sets for the chapters: binarized handwritten digits, and 2-D toy densities with exact log
densities.

* :func:`load_digits_binary`: the 1797 8x8 digits of scikit-learn's copy of the UCI data, binarized,
  with a fixed train/test split, read from the package data (``ebmlib/datasets/``) and checked
  against their SHA-256.
* :func:`ring_of_gaussians` / :func:`ring_log_density`: eight Gaussian modes on a circle.
* :func:`two_moons` / :func:`two_moons_log_density`: two interleaved half circles blurred by
  Gaussian noise.

Every generator takes an explicit ``torch.Generator``; nothing touches global random state.
"""

from __future__ import annotations

import hashlib
import math
from importlib import resources
from pathlib import Path
from typing import NamedTuple

import torch

from .validation import check_batch, check_float_dtype, check_generator, check_int, check_positive

__all__ = [
    "load_digits_binary",
    "load_digits_binary_labels",
    "DIGITS_SHA256",
    "load_digits_grey",
    "load_digits_grey_labels",
    "DigitsSplit",
    "dequantize",
    "logit_transform",
    "inverse_logit_transform",
    "bits_per_dim",
    "ContinuousDigits",
    "load_digits_continuous",
    "ring_of_gaussians",
    "ring_log_density",
    "two_moons",
    "two_moons_log_density",
]


#: SHA-256 of the files written by ``data/make_digits_binary.py`` (also listed in
#: ``data/README.md``). The files ship inside the package, in ``ebmlib/datasets/``, and are read
#: through ``importlib.resources``.
DIGITS_SHA256 = {
    "digits_binary_train.txt": "c55cef3f51449deeb7bcd318fa77ff313b242b58f1dfb80bb8eae3fa7408e281",
    "digits_binary_test.txt": "a0c1def4a640543ecb68e6f9cbdc3376832a1194217abe181798b85b682599c4",
    "digits_grey.txt": "7168273de34ab586f614b7b777af8d8ea40f44c6e2eb4591be31b52a78c71b78",
}
_DATASETS = "datasets"


def _verified_bytes(path, script: str) -> bytes:
    """The file's bytes, after checking its SHA-256 against :data:`DIGITS_SHA256`."""
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: regenerate it with `python data/{script}`")
    raw = path.read_bytes()
    digest = hashlib.sha256(raw).hexdigest()
    if digest != DIGITS_SHA256[path.name]:
        raise ValueError(
            f"{path} fails its sha256 check (got {digest}, expected {DIGITS_SHA256[path.name]}): "
            f"the file is corrupted or was edited; regenerate it with `python data/{script}`"
        )
    return raw


def _read_digits(path, dtype) -> tuple[torch.Tensor, torch.Tensor]:
    raw = _verified_bytes(path, "make_digits_binary.py")
    labels, rows = [], []
    for line in raw.decode("ascii").splitlines():
        label, bits = line.split()
        labels.append(int(label))
        rows.append([int(c) for c in bits])
    return torch.tensor(rows, dtype=dtype), torch.tensor(labels)


def load_digits_binary(
    *, dtype: torch.dtype = torch.float64, root: str | Path | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""The binarized 8x8 handwritten digits, split into a fixed training and test set.

    The 1797 images of scikit-learn's copy of the UCI Optical Recognition of Handwritten Digits data
    (CC BY 4.0), binarized by ``grey / 16 > 0.5`` and split by a fixed permutation into 1500
    training and 297 test images (``data/make_digits_binary.py`` regenerates the files bit for bit).
    Each file is checked against its SHA-256 before it is read.

    Parameters
    ----------
    dtype : torch.dtype
        Floating dtype of the images.
    root : path, optional
        Folder holding the files (default: the copy shipped inside the package,
        ``ebmlib/datasets/``).

    Returns
    -------
    train : torch.Tensor, shape (1500, 64)
        0/1 images, row by row.
    test : torch.Tensor, shape (297, 64)
        The labels are :func:`load_digits_binary_labels`.

    Raises
    ------
    FileNotFoundError
        A file is missing.
    ValueError
        A file fails its SHA-256 check.
    """
    check_float_dtype(dtype)
    folder = _folder(root)
    return tuple(
        _read_digits(folder / f"digits_binary_{s}.txt", dtype)[0] for s in ("train", "test")
    )


def load_digits_binary_labels(
    *, root: str | Path | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """The digit labels (0-9) of :func:`load_digits_binary`'s images: int64 tensors of shapes
    ``(1500,)`` and ``(297,)``, row for row."""
    folder = _folder(root)
    return tuple(
        _read_digits(folder / f"digits_binary_{s}.txt", torch.float64)[1] for s in ("train", "test")
    )


def _folder(root) -> Path:
    return resources.files("ebmlib") / _DATASETS if root is None else Path(root)


class DigitsSplit(NamedTuple):
    """The grey-level digits' training, validation and test images (or their labels)."""

    train: torch.Tensor
    valid: torch.Tensor
    test: torch.Tensor


def load_digits_grey(
    *, dtype: torch.dtype = torch.float64, root: str | Path | None = None
) -> DigitsSplit:
    r"""The 8x8 handwritten digits with their grey levels 0..16, split into training, validation and
    test sets.

    The 1797 images of scikit-learn's copy of the UCI data (CC BY 4.0), split by the permutation of
    :func:`load_digits_binary` (so the two share their 297 test images): 1250 training, 250
    validation and 297 test images. ``data/make_digits_grey.py`` regenerates the file bit for bit;
    it is checked against its SHA-256 before it is read.

    Returns
    -------
    DigitsSplit
        ``(train, valid, test)`` of shapes (1250, 64), (250, 64), (297, 64): grey levels as floats.
        The labels are :func:`load_digits_grey_labels`.
    """
    check_float_dtype(dtype)
    return _read_grey(root, dtype)[0]


def load_digits_grey_labels(*, root: str | Path | None = None) -> DigitsSplit:
    """The digit labels (0-9) of :func:`load_digits_grey`'s images, as a :class:`DigitsSplit` of
    int64 tensors, row for row."""
    return _read_grey(root, torch.float64)[1]


def _read_grey(root, dtype) -> tuple[DigitsSplit, DigitsSplit]:
    raw = _verified_bytes(_folder(root) / "digits_grey.txt", "make_digits_grey.py")
    parts: dict[str, tuple[list, list]] = {"train": ([], []), "valid": ([], []), "test": ([], [])}
    for line in raw.decode("ascii").splitlines():
        split, label, pixels = line.split()
        parts[split][0].append([int(p) for p in pixels.split(",")])
        parts[split][1].append(int(label))
    images = DigitsSplit(*(torch.tensor(parts[k][0], dtype=dtype) for k in DigitsSplit._fields))
    return images, DigitsSplit(*(torch.tensor(parts[k][1]) for k in DigitsSplit._fields))


def dequantize(
    levels: torch.Tensor, *, n_levels: int = 17, generator: torch.Generator | None = None
) -> torch.Tensor:
    r"""Uniform dequantization of integer levels :math:`k \in \{0,\dots,L-1\}` to :math:`(0, 1)`:
    :math:`x = (k + u)/L` with :math:`u \sim U(0, 1)`, same shape.

    A continuous density :math:`p` on :math:`(0,1)^D` then bounds the discrete model's probability,
    :math:`\log P(k) \ge \mathbb E_u[\log p(x)] - D\log L` (Theis, van den Oord & Bethge 2016).
    """
    levels = check_batch(levels, "levels")
    n_levels = check_int(n_levels, "n_levels", minimum=2)
    if (
        bool((levels < 0).any())
        or bool((levels > n_levels - 1).any())
        or not torch.equal(levels, levels.round())
    ):
        raise ValueError(f"levels must be integers in 0..{n_levels - 1}")
    check_generator(generator)
    u = torch.rand(levels.shape, generator=generator, dtype=levels.dtype)
    return (levels + u) / n_levels


def _check_lam(lam) -> float:
    lam = float(lam)
    if not 0.0 < lam < 0.5:
        raise ValueError(f"lam must lie in (0, 0.5), got {lam}")
    return lam


def logit_transform(x: torch.Tensor, *, lam: float = 0.05) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Map pixels :math:`x \in (0,1)^D` to
    :math:`y = \operatorname{logit}(\lambda + (1-2\lambda)x)` (Dinh, Sohl-Dickstein & Bengio 2017),
    with the log-Jacobian of the map.

    Returns
    -------
    y : torch.Tensor, shape (n, D)
    log_det : torch.Tensor, shape (n,)
        :math:`\sum_i \log\lvert dy_i/dx_i\rvert
        = \sum_i [\log(1-2\lambda) - \log s_i - \log(1-s_i)]` with
        :math:`s = \lambda + (1-2\lambda)x`, so that a density of :math:`y` gives the density of
        :math:`x` as :math:`\log p_x(x) = \log p_y(y) + \text{log\_det}`.
    """
    x = check_batch(x, "x")
    lam = _check_lam(lam)
    if bool((x <= 0).any()) or bool((x >= 1).any()):
        raise ValueError("x must lie strictly inside (0, 1); dequantize the levels first")
    s = lam + (1 - 2 * lam) * x
    y = torch.log(s) - torch.log1p(-s)
    log_det = (math.log(1 - 2 * lam) - torch.log(s) - torch.log1p(-s)).sum(1)
    return y, log_det


def inverse_logit_transform(y: torch.Tensor, *, lam: float = 0.05) -> torch.Tensor:
    r"""The pixels :math:`x = (\operatorname{sigmoid}(y) - \lambda)/(1 - 2\lambda)` of logit-space
    points."""
    y = check_batch(y, "y")
    lam = _check_lam(lam)
    return (torch.sigmoid(y) - lam) / (1 - 2 * lam)


def bits_per_dim(log_likelihood_nats, n_dims: int):
    r"""Negative log-likelihood in bits per dimension, :math:`-\ell / (D \log 2)`, for :math:`\ell`
    in nats."""
    n_dims = check_int(n_dims, "n_dims")
    return -log_likelihood_nats / (n_dims * math.log(2))


class ContinuousDigits(NamedTuple):
    r"""The grey digits as continuous data in 64 dimensions, whitened (see
    :func:`load_digits_continuous`).

    ``z = L^{-1}(y - \mu)`` for logit-space images ``y``, with :math:`\mu` and :math:`LL^\top` the
    mean and covariance of the training images, so the full-covariance Gaussian fitted to the
    training set is the standard normal here. A log density of ``z`` is one of the pixels once
    ``log_det`` is added."""

    #: Whitened training, validation and test images, shapes (1250, 64), (250, 64), (297, 64).
    train: torch.Tensor
    valid: torch.Tensor
    test: torch.Tensor
    #: :math:`\log\lvert\det \partial z/\partial x\rvert` per image (pixels :math:`x\in(0,1)^{64}`
    #: to ``z``), as a ``DigitsSplit`` of shapes (1250,), (250,), (297,).
    log_det: DigitsSplit
    #: The training images' logit-space mean, shape (64,), and the Cholesky factor of their
    #: covariance.
    mean: torch.Tensor
    scale_tril: torch.Tensor
    #: The logit transform's :math:`\lambda`.
    lam: float

    def to_pixels(self, z: torch.Tensor) -> torch.Tensor:
        """Map whitened points ``z`` (n, 64) back to pixel intensities in (0, 1), same shape."""
        z = check_batch(z, "z", dim=self.mean.shape[0])
        y = self.mean + z.to(self.mean.dtype) @ self.scale_tril.T
        return inverse_logit_transform(y, lam=self.lam)


def load_digits_continuous(
    *,
    generator: torch.Generator | None = None,
    lam: float = 0.05,
    dtype: torch.dtype = torch.float32,
    root: str | Path | None = None,
) -> ContinuousDigits:
    r"""The grey digits (:func:`load_digits_grey`) as continuous 64-d data for density models.

    Each split is dequantized (:func:`dequantize`, one uniform draw per pixel from ``generator``),
    mapped to logit space (:func:`logit_transform`), then whitened by the Gaussian fitted to the
    *training* images, :math:`z = L^{-1}(y-\mu)`. Whitening is affine, so it changes every log
    density by the same constant, :math:`-\sum_i \log L_{ii}`, which ``log_det`` includes; it lets
    samplers use one step size for every direction.

    Returns
    -------
    ContinuousDigits
        The whitened splits in ``dtype``; ``log_det``, ``mean`` and ``scale_tril`` in float64.
    """
    check_float_dtype(dtype)
    check_generator(generator)
    lam = _check_lam(lam)
    levels = load_digits_grey(root=root)
    y, log_det = zip(
        *(logit_transform(dequantize(part, generator=generator), lam=lam) for part in levels),
        strict=True,
    )
    mean = y[0].mean(0)
    tril = torch.linalg.cholesky(torch.cov(y[0].T))
    whiten_log_det = -torch.log(torch.diagonal(tril)).sum()
    z = [
        torch.linalg.solve_triangular(tril, (part - mean).T, upper=False).T.to(dtype) for part in y
    ]
    return ContinuousDigits(
        *z, DigitsSplit(*(ld + whiten_log_det for ld in log_det)), mean, tril, lam
    )


def _ring_centres(n_modes: int, radius: float, dtype) -> torch.Tensor:
    angles = 2 * math.pi * torch.arange(n_modes, dtype=dtype) / n_modes
    return radius * torch.stack([torch.cos(angles), torch.sin(angles)], dim=1)  # (K, 2)


def ring_of_gaussians(
    n: int,
    *,
    n_modes: int = 8,
    radius: float = 2.0,
    std: float = 0.3,
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float64,
) -> torch.Tensor:
    r"""Samples from an equal-weight mixture of ``n_modes`` isotropic Gaussians on a circle, shape
    ``(n, 2)``.

    The mode centres are :math:`r(\cos 2\pi k/K, \sin 2\pi k/K)`, :math:`k=0,\dots,K-1`. The exact
    log density is :func:`ring_log_density`, so any model fitted to these samples can be scored
    against the truth."""
    n = check_int(n, "n")
    n_modes = check_int(n_modes, "n_modes")
    radius = check_positive(radius, "radius", allow_zero=True)
    std = check_positive(std, "std")
    check_generator(generator)
    modes = torch.randint(n_modes, (n,), generator=generator)
    noise = torch.randn(n, 2, generator=generator, dtype=dtype)
    return _ring_centres(n_modes, radius, dtype)[modes] + std * noise


def ring_log_density(
    x: torch.Tensor, *, n_modes: int = 8, radius: float = 2.0, std: float = 0.3
) -> torch.Tensor:
    r"""Exact log density of :func:`ring_of_gaussians` at each row of ``x`` (shape ``(n, 2)``),
    shape ``(n,)``.

    .. math::

        \log p(x) = \operatorname{logsumexp}_k\Bigl(-\frac{\lVert x-c_k\rVert^2}{2\sigma^2}\Bigr)
        - \log K - \log(2\pi\sigma^2).
    """
    check_batch(x, "x", dim=2)
    n_modes = check_int(n_modes, "n_modes")
    radius = check_positive(radius, "radius", allow_zero=True)
    std = check_positive(std, "std")
    centres = _ring_centres(n_modes, radius, x.dtype)
    sq = ((x[:, None, :] - centres[None, :, :]) ** 2).sum(-1)  # (n, K)
    return (
        torch.logsumexp(-sq / (2 * std**2), dim=1)
        - math.log(n_modes)
        - math.log(2 * math.pi * std**2)
    )


def _moon_arcs(t: torch.Tensor, scale: float) -> torch.Tensor:
    """Points on the two arcs at parameters ``t`` in [0, pi], shape (2, len(t), 2), centred at the
    origin."""
    upper = torch.stack([torch.cos(t) - 0.5, torch.sin(t) - 0.25], dim=1)
    lower = torch.stack([0.5 - torch.cos(t), 0.25 - torch.sin(t)], dim=1)
    return scale * torch.stack([upper, lower])


def two_moons(
    n: int,
    *,
    noise: float = 0.15,
    scale: float = 1.5,
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float64,
) -> torch.Tensor:
    r"""Samples from the two-moons density, shape ``(n, 2)``.

    Each point picks one of the two arcs with probability 1/2 and a position :math:`t\sim U(0,\pi)`
    on it, then adds isotropic Gaussian noise of standard deviation ``noise``. The arcs are
    :math:`s(\cos t - \tfrac12, \sin t - \tfrac14)` and
    :math:`s(\tfrac12 - \cos t, \tfrac14 - \sin t)` with :math:`s` = ``scale`` (the usual two moons,
    centred). The exact log density is :func:`two_moons_log_density`."""
    n = check_int(n, "n")
    noise = check_positive(noise, "noise")
    scale = check_positive(scale, "scale")
    check_generator(generator)
    t = math.pi * torch.rand(n, generator=generator, dtype=dtype)
    arc = torch.randint(2, (n,), generator=generator)
    centres = _moon_arcs(t, scale)[arc, torch.arange(n)]
    return centres + noise * torch.randn(n, 2, generator=generator, dtype=dtype)


def two_moons_log_density(
    x: torch.Tensor, *, noise: float = 0.15, scale: float = 1.5, n_arc: int = 2001
) -> torch.Tensor:
    r"""Log density of :func:`two_moons` at each row of ``x`` (shape ``(n, 2)``), shape ``(n,)``.

    .. math::

        p(x) = \frac12\sum_{a=1}^{2}\frac1\pi\int_0^\pi
        \mathcal N\bigl(x;\,c_a(t),\,\sigma^2 I\bigr)\,dt ,

    with the integral over the arc parameter computed by the trapezoid rule on ``n_arc`` nodes. The
    nodes are :math:`\pi s/(n_\text{arc}-1)` apart along an arc of radius :math:`s`; with the
    defaults that is 0.016 of the noise standard deviation, and the trapezoid rule on a smooth
    integrand at that spacing is exact to rounding."""
    check_batch(x, "x", dim=2)
    noise = check_positive(noise, "noise")
    scale = check_positive(scale, "scale")
    n_arc = check_int(n_arc, "n_arc", minimum=3)
    t = torch.linspace(0.0, math.pi, n_arc, dtype=x.dtype)
    log_w = torch.full((n_arc,), math.log(math.pi / (n_arc - 1)), dtype=x.dtype)
    log_w[0] = log_w[-1] = log_w[0] - math.log(2)
    centres = _moon_arcs(t, scale).reshape(-1, 2)  # (2 * n_arc, 2)
    sq = torch.cdist(x, centres) ** 2  # (n, 2 * n_arc)
    log_terms = -sq / (2 * noise**2) + log_w.repeat(2)[None, :]
    return (
        torch.logsumexp(log_terms, dim=1) - math.log(2 * math.pi) - math.log(2 * math.pi * noise**2)
    )
