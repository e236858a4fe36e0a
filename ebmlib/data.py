r"""Data sets for the chapters: 2-D toy densities with exact log densities, and Gaussian samples.

Every generator takes an explicit ``torch.Generator``; nothing touches global random state.
"""

from __future__ import annotations

import math

import torch

from .validation import check_batch, check_generator, check_int, check_positive

__all__ = ["ring_of_gaussians", "ring_log_density"]


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
