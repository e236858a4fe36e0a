r"""Mixing diagnostics for Markov chains: autocorrelation, integrated autocorrelation time,
effective sample size.

For a stationary chain :math:`f_1,\dots,f_T` with autocorrelation :math:`\rho_k`, the variance of
the chain mean is :math:`\operatorname{Var}(f)\,\tau/T` with the integrated autocorrelation time
:math:`\tau = 1 + 2\sum_{k\ge1}\rho_k`, so the chain is worth :math:`T/\tau` independent draws (its
effective sample size). :math:`\tau` is estimated with Geyer's initial positive sequence: the sums
:math:`\Gamma_m=\rho_{2m}+\rho_{2m+1}` are added while they stay positive, which truncates the noisy
tail of the empirical autocorrelation without a tuning constant :cite:p:`geyer1992practical`."""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["autocorrelation", "integrated_autocorrelation_time", "effective_sample_size"]


def _as_chains(chain) -> np.ndarray:
    if isinstance(chain, torch.Tensor):
        chain = chain.detach().cpu().numpy()
    a = np.asarray(chain, dtype=np.float64)
    if a.ndim == 1:
        a = a[:, None]
    if a.ndim != 2:
        raise ValueError(f"chain must have shape (n_steps,) or (n_steps, n_chains), got {a.shape}")
    if a.shape[0] < 4:
        raise ValueError(f"chain needs at least 4 steps, got {a.shape[0]}")
    if not np.isfinite(a).all():
        raise ValueError("chain contains NaN or infinite values")
    return a


def autocorrelation(chain, max_lag: int | None = None) -> np.ndarray:
    r"""Empirical autocorrelation :math:`\hat\rho_k`, :math:`k=0,\dots`, averaged over chains.

    Parameters
    ----------
    chain : array or tensor, shape (n_steps,) or (n_steps, n_chains)
        One scalar summary per step (e.g. a coordinate) for each chain.
    max_lag : int, optional
        Largest lag returned (default ``n_steps - 1``).

    Returns
    -------
    numpy.ndarray, shape (max_lag + 1,)
        :math:`\hat\rho_0 = 1`. Computed by FFT, centring each chain on the mean over all chains so
        that chains stuck in different places show up as slowly decaying correlation.
    """
    a = _as_chains(chain)
    t = a.shape[0]
    max_lag = t - 1 if max_lag is None else int(max_lag)
    if not 0 <= max_lag < t:
        raise ValueError(f"max_lag must lie in [0, {t - 1}], got {max_lag}")
    centred = a - a.mean()
    n_fft = 1 << (2 * t - 1).bit_length()
    spec = np.fft.rfft(centred, n=n_fft, axis=0)
    acov = np.fft.irfft(spec * np.conj(spec), n=n_fft, axis=0)[:t].mean(axis=1) / t
    if acov[0] <= 0:
        raise ValueError("chain is constant: its autocorrelation is undefined")
    return acov[: max_lag + 1] / acov[0]


def integrated_autocorrelation_time(chain) -> float:
    r""":math:`\hat\tau = -1 + 2\sum_{m=0}^{M}\hat\Gamma_m`, with Geyer's initial positive sequence
    :math:`\hat\Gamma_m = \hat\rho_{2m}+\hat\rho_{2m+1} > 0`. At least 1 for a sampler that is no
    better than iid draws on this statistic; below 1 for antithetic chains (e.g. HMC on a Gaussian).
    """
    rho = autocorrelation(chain)
    pairs = rho[: 2 * (len(rho) // 2)].reshape(-1, 2).sum(axis=1)
    stop = np.argmax(pairs <= 0) if (pairs <= 0).any() else len(pairs)
    return float(-1.0 + 2.0 * pairs[:stop].sum())


def effective_sample_size(chain) -> float:
    r"""Effective sample size :math:`n_\text{chains} T/\hat\tau` of a chain (or a batch of chains)
    of length ``T``."""
    a = _as_chains(chain)
    return float(a.size / integrated_autocorrelation_time(a))
