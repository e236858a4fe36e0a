r"""Estimators of the partition function :math:`Z(\theta)` and of importance-sampling quality.

Importance sampling (paper Eq. 7, :cite:p:`geyer1994,ebmgradientnote`): with :math:`y_m \sim q`,

.. math::

    \hat Z(\theta) = \frac1M \sum_{m=1}^M \frac{\phi(y_m\mid\theta)}{q(y_m)} = \frac1M\sum_m w_m,
    \qquad \log\hat Z = \operatorname{logsumexp}_m(\log w_m) - \log M .

Everything is computed from *log* weights, so weights that underflow in linear space (common in the tails, or
in high dimension) are handled exactly.
"""

from __future__ import annotations

import math

import torch

from .validation import check_finite, check_int, check_tensor

__all__ = ["log_partition_is", "ess", "self_normalized_weights", "log_partition_is_grid"]


def _check_log_weights(log_w, name: str) -> torch.Tensor:
    check_tensor(log_w, name)
    if log_w.ndim == 0 or log_w.shape[-1] == 0:
        raise ValueError(f"{name} needs at least one sample along its last dimension, got shape {tuple(log_w.shape)}")
    if bool(torch.isnan(log_w).any()) or bool((log_w == math.inf).any()):
        raise ValueError(f"{name} contains NaN or +inf")
    return log_w


def log_partition_is(log_phi: torch.Tensor, log_q: torch.Tensor) -> torch.Tensor:
    r"""Importance-sampling estimate :math:`\log\hat Z` (paper Eq. 7), along the last dimension.

    Parameters
    ----------
    log_phi : torch.Tensor, shape (..., M)
        :math:`\log\phi(y_m\mid\theta) = -E(y_m\mid\theta)` at the proposal samples.
    log_q : torch.Tensor, broadcastable to ``log_phi``
        :math:`\log q(y_m)`, the normalized proposal log density at the same samples.

    Returns
    -------
    torch.Tensor, shape (...)
        :math:`\log \frac1M\sum_m \exp(\log\phi_m - \log q_m)`; differentiable in both inputs.
        :math:`\hat Z` itself is unbiased for :math:`Z`; its log is biased downwards by Jensen's inequality.
    """
    _check_log_weights(log_phi, "log_phi")
    check_tensor(log_q, "log_q")
    check_finite(log_q, "log_q")
    try:
        log_w = log_phi - log_q
    except RuntimeError as err:
        raise ValueError(f"log_q of shape {tuple(log_q.shape)} does not broadcast to log_phi of shape "
                         f"{tuple(log_phi.shape)}") from err
    if log_w.shape != log_phi.shape:
        raise ValueError(f"log_q of shape {tuple(log_q.shape)} must broadcast to log_phi's shape "
                         f"{tuple(log_phi.shape)}")
    return torch.logsumexp(log_w, dim=-1) - math.log(log_w.shape[-1])


def self_normalized_weights(log_w: torch.Tensor) -> torch.Tensor:
    r"""Normalized importance weights :math:`\bar w_m = w_m / \sum_j w_j` (paper Eq. 13), along the last dimension."""
    _check_log_weights(log_w, "log_w")
    return torch.softmax(log_w, dim=-1)


def ess(log_w: torch.Tensor) -> torch.Tensor:
    r"""Kish's effective sample size :math:`(\sum_m w_m)^2 / \sum_m w_m^2`, along the last dimension.

    It lies between 1 (one weight dominates) and :math:`M` (equal weights), and
    :math:`M/\mathrm{ESS} - 1` is the squared coefficient of variation of the weights, hence of the
    relative variance of :math:`\hat Z`.

    Parameters
    ----------
    log_w : torch.Tensor, shape (..., M)
        Log importance weights (unnormalized is fine).

    Returns
    -------
    torch.Tensor, shape (...)
    """
    _check_log_weights(log_w, "log_w")
    return torch.exp(2 * torch.logsumexp(log_w, dim=-1) - torch.logsumexp(2 * log_w, dim=-1))


def log_partition_is_grid(features: torch.Tensor, coefficients: torch.Tensor, *,
                          chunk_size: int = 2) -> torch.Tensor:
    r""":math:`\log\hat Z` for many independent runs and a whole grid of :math:`\theta` at once.

    For an exponential family and a Gaussian or Student-t proposal, the log weight is linear in a few features
    of each sample,

    .. math::

        \log w_{r\ell m} = \log\phi(y_{rm}\mid\theta_\ell) - \log q(y_{rm}\mid\theta_\ell)
        = \sum_k C_{\ell k}\, F_{rkm},

    (for example :math:`F = (y^2/2, \log q(y))`, :math:`C_\ell = (-1/\theta_\ell^2, -1)` for the model
    :math:`\mathcal N(0,\theta^2)` and a fixed proposal). Then :math:`\log\hat Z_{r\ell}` for every run :math:`r` and
    grid point :math:`\ell` is one batched matrix product followed by a log-mean-exp, evaluated in chunks of runs
    small enough to stay in the CPU cache. For stability the exponent is shifted by an upper bound on its maximum
    that follows from the range of each feature, folded into the matrix product; if that bound is ever so loose
    that a sum would underflow, the chunk is recomputed with the exact maximum. The exponentials are taken in
    base 2 (cheaper than base :math:`e`, and exact up to rounding). This is what makes the book's 1000-run
    Monte-Carlo studies fast.

    Parameters
    ----------
    features : torch.Tensor, shape (R, K, M)
        Feature :math:`k` of sample :math:`m` of run :math:`r`.
    coefficients : torch.Tensor, shape (L, K)
        Coefficients :math:`C_{\ell k}` for each of :math:`L` parameter values.
    chunk_size : int
        Runs per chunk.

    Returns
    -------
    torch.Tensor, shape (R, L)
        :math:`\log\hat Z` (Eq. 7) for each run and parameter value. Not differentiable (computed in place).
    """
    check_tensor(features, "features")
    check_tensor(coefficients, "coefficients")
    chunk_size = check_int(chunk_size, "chunk_size")
    if features.ndim != 3 or features.shape[0] == 0 or features.shape[2] == 0:
        raise ValueError(f"features must have shape (R, K, M) with R, M >= 1, got {tuple(features.shape)}")
    if coefficients.ndim != 2 or coefficients.shape[1] != features.shape[1]:
        raise ValueError(f"coefficients must have shape (L, {features.shape[1]}), got {tuple(coefficients.shape)}")
    check_finite(features, "features")
    check_finite(coefficients, "coefficients")
    n_runs, n_feat, n_samples = features.shape
    n_grid = coefficients.shape[0]
    coef2 = coefficients.to(features.dtype) / math.log(2)          # log2 w = C F / ln 2
    out = torch.empty(n_runs, n_grid, dtype=features.dtype)
    with torch.no_grad():
        f_max, f_min = features.amax(dim=2), features.amin(dim=2)   # (R, K)
        coef_batch = coef2.expand(chunk_size, n_grid, n_feat)
        for start in range(0, n_runs, chunk_size):
            stop = min(start + chunk_size, n_runs)
            # An upper bound on max_m log2 w from the per-run feature ranges: sum_k max(C f_max, C f_min).
            # Shifting by it inside the matrix product keeps every power of 2 <= 1 without a separate max pass.
            shift = torch.maximum(coef2 * f_max[start:stop, None, :], coef2 * f_min[start:stop, None, :]).sum(-1)
            log2_w = torch.baddbmm(-shift[..., None], coef_batch[:stop - start], features[start:stop])
            total = log2_w.exp2_().sum(dim=-1)                       # (c, L)
            underflow = total < 1e-280                               # the bound was too loose: redo exactly
            if bool(underflow.any()):
                exact = torch.matmul(coef2, features[start:stop])
                peak = exact.amax(dim=-1)
                total = torch.where(underflow, (exact - peak[..., None]).exp2().sum(dim=-1), total)
                shift = torch.where(underflow, peak, shift)
            out[start:stop] = (total.log2_() + shift) * math.log(2)
    return out - math.log(n_samples)
