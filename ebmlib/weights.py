r"""Importance weights: the estimate of :math:`\log Z`, self-normalized weights, and their quality.

Importance sampling (paper Eq. 7, :cite:p:`geyer1994,ebmgradientnote`): with :math:`y_m \sim q`,

.. math::

    \hat Z(\theta) = \frac1M \sum_{m=1}^M \frac{\phi(y_m\mid\theta)}{q(y_m)} = \frac1M\sum_m w_m,
    \qquad \log\hat Z = \operatorname{logsumexp}_m(\log w_m) - \log M .

Everything is computed from *log* weights, so weights that underflow in linear space (common in the
tails, or in high dimension) are handled exactly. These are the building blocks that samplers
(importance resampling), estimators (AIS) and losses (Geyer's IS likelihood) share.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch

from .validation import check_finite, check_tensor

__all__ = [
    "log_partition_is",
    "self_normalized_weights",
    "ess",
    "log_mean_exp_with_stderr",
    "LogZEstimate",
]


class LogZEstimate(NamedTuple):
    r"""An estimate of :math:`\log Z` and its standard error (unpacks as ``log_z, stderr``)."""

    #: :math:`\log\hat Z` (a tensor: 0-d, or one entry per group of runs).
    log_z: torch.Tensor
    #: Its delta-method standard error, same shape.
    stderr: torch.Tensor


def _check_log_weights(log_w, name: str) -> torch.Tensor:
    check_tensor(log_w, name)
    if log_w.ndim == 0 or log_w.shape[-1] == 0:
        raise ValueError(
            f"{name} needs at least one sample along its last dimension, "
            f"got shape {tuple(log_w.shape)}"
        )
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
        :math:`\hat Z` itself is unbiased for :math:`Z`; its log is biased downwards by Jensen's
        inequality.
    """
    _check_log_weights(log_phi, "log_phi")
    check_tensor(log_q, "log_q")
    check_finite(log_q, "log_q")
    try:
        log_w = log_phi - log_q
    except RuntimeError as err:
        raise ValueError(
            f"log_q of shape {tuple(log_q.shape)} does not broadcast to log_phi of shape "
            f"{tuple(log_phi.shape)}"
        ) from err
    if log_w.shape != log_phi.shape:
        raise ValueError(
            f"log_q of shape {tuple(log_q.shape)} must broadcast to log_phi's shape "
            f"{tuple(log_phi.shape)}"
        )
    return torch.logsumexp(log_w, dim=-1) - math.log(log_w.shape[-1])


def self_normalized_weights(log_w: torch.Tensor) -> torch.Tensor:
    r"""Normalized importance weights :math:`\bar w_m = w_m / \sum_j w_j` (paper Eq. 13), along the
    last dimension."""
    _check_log_weights(log_w, "log_w")
    return torch.softmax(log_w, dim=-1)


def ess(log_w: torch.Tensor) -> torch.Tensor:
    r"""Kish's effective sample size :math:`(\sum_m w_m)^2 / \sum_m w_m^2`, along the last
    dimension.

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


def log_mean_exp_with_stderr(log_w: torch.Tensor) -> LogZEstimate:
    r"""Log-mean-exp along the last dimension and its delta-method standard error.

    For independent unbiased estimates :math:`w_r` of :math:`Z` given as :math:`\log w_r`,
    :math:`\log\bar w = \operatorname{logsumexp}_r \log w_r - \log R` and
    :math:`\mathrm{se}(\log\bar w)\approx \mathrm{sd}(w)/(\sqrt R\,\bar w)`, computed without
    overflow.

    Parameters
    ----------
    log_w : torch.Tensor, shape (..., R)

    Returns
    -------
    LogZEstimate
        ``(log_z, stderr)``, each of shape ``(...)``: :math:`\log\bar w` and its standard error
        (``inf`` when ``R == 1``).
    """
    _check_log_weights(log_w, "log_w")
    n = log_w.shape[-1]
    log_mean = torch.logsumexp(log_w, dim=-1) - math.log(n)
    w = torch.exp(log_w - log_w.amax(dim=-1, keepdim=True))
    # delta method: sd(log Z_hat) ~ sd(w) / (sqrt(n) mean(w))
    stderr = (
        w.std(dim=-1) / (math.sqrt(n) * w.mean(dim=-1))
        if n > 1
        else torch.full_like(log_mean, math.inf)
    )
    return LogZEstimate(log_mean, stderr)
