r"""Losses whose gradients are (estimates of) the maximum-likelihood gradient, or replace it.

Every loss is a scalar to be *minimized* and is differentiable with respect to
the energy's parameters. Sign convention: :math:`p(x) \propto e^{-E(x)}`.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from .partition import log_partition_is, self_normalized_weights
from .validation import check_batch, check_energy_output, check_finite, check_tensor

__all__ = ["cd_loss", "importance_sampling_nll", "importance_sampling_gradient_loss"]


def cd_loss(energy_fn: Callable, x_pos: torch.Tensor, x_neg: torch.Tensor) -> torch.Tensor:
    r"""The contrastive surrogate whose gradient is the Monte-Carlo ML gradient.

    .. math::

        \mathcal L(\theta) = \frac1N\sum_{n} E(x^+_n\mid\theta) - \frac1M\sum_{m} E(x^-_m\mid\theta),
        \qquad
        \nabla_\theta\mathcal L = \underbrace{\mathbb E_{\text{data}}[\nabla_\theta E]}_{\text{positive phase}}
        - \underbrace{\mathbb E_{\text{samples}}[\nabla_\theta E]}_{\text{negative phase}}.

    With exact model samples ``x_neg`` the gradient is an unbiased estimate of
    the gradient of the average NLL (paper Eq. 17). With ``x_neg`` from a
    short MCMC run started at the data it is contrastive divergence (CD-k);
    from persistent chains it is PCD. The value of the loss itself is *not*
    the NLL (the :math:`\log Z` term is missing); only its gradient matters.
    ``x_neg`` is detached, so no gradient flows into the sampler.

    Parameters
    ----------
    energy_fn : callable
        Maps ``(n, d)`` to ``(n,)``.
    x_pos : torch.Tensor, shape (N, d)
        Data (positive samples).
    x_neg : torch.Tensor, shape (M, d)
        Model samples (negative samples).

    Returns
    -------
    torch.Tensor
        A scalar.
    """
    check_batch(x_pos, "x_pos")
    check_batch(x_neg, "x_neg", dim=x_pos.shape[1])
    e_pos = check_energy_output(energy_fn(x_pos), x_pos.shape[0])
    e_neg = check_energy_output(energy_fn(x_neg.detach()), x_neg.shape[0])
    return e_pos.mean() - e_neg.mean()


def _check_proposal_batch(energy_fn, x, y, log_q_y):
    check_batch(x, "x")
    check_batch(y, "y", dim=x.shape[1])
    check_tensor(log_q_y, "log_q_y")
    if log_q_y.shape != (y.shape[0],):
        raise ValueError(f"log_q_y must have shape ({y.shape[0]},) to match y, got {tuple(log_q_y.shape)}")
    check_finite(log_q_y, "log_q_y")
    e_x = check_energy_output(energy_fn(x), x.shape[0])
    e_y = check_energy_output(energy_fn(y), y.shape[0])
    return e_x, e_y


def importance_sampling_nll(energy_fn: Callable, x: torch.Tensor, y: torch.Tensor,
                            log_q_y: torch.Tensor) -> torch.Tensor:
    r"""Geyer's importance-sampling approximation of the average NLL, :math:`J_{GL}(\theta)/N` (paper Eq. 8).

    .. math::

        \frac{J_{GL}(\theta)}{N} = \frac1N\sum_{n=1}^N E(x_n\mid\theta)
        + \log \frac1M\sum_{m=1}^M \frac{\exp\{-E(y_m\mid\theta)\}}{q(y_m)},
        \qquad y_m\sim q .

    For fixed samples ``y`` this is a deterministic, differentiable function of :math:`\theta`; minimizing it
    gives Geyer's estimator :math:`\hat\theta_{GL}` (Eq. 9). When :math:`q` does not depend on
    :math:`\theta`, its gradient is exactly the self-normalized IS gradient of Eq. 12/18.

    Parameters
    ----------
    energy_fn : callable
        Maps ``(n, d)`` to ``(n,)``.
    x : torch.Tensor, shape (N, d)
        Data.
    y : torch.Tensor, shape (M, d)
        Samples from the proposal.
    log_q_y : torch.Tensor, shape (M,)
        Normalized proposal log density at ``y``.

    Returns
    -------
    torch.Tensor
        A scalar.
    """
    e_x, e_y = _check_proposal_batch(energy_fn, x, y, log_q_y)
    return e_x.mean() + log_partition_is(-e_y, log_q_y)


def importance_sampling_gradient_loss(energy_fn: Callable, x: torch.Tensor, y: torch.Tensor,
                                      log_q_y: torch.Tensor) -> torch.Tensor:
    r"""Surrogate loss whose gradient is the self-normalized IS gradient (paper Eq. 12 and 18).

    .. math::

        \mathcal L(\theta) = \frac1N\sum_n E(x_n\mid\theta) - \sum_m \bar w_m\, E(y_m\mid\theta),
        \qquad \bar w_m = \frac{\phi(y_m\mid\theta)/q(y_m)}{\sum_j \phi(y_j\mid\theta)/q(y_j)} ,

    with the normalized weights :math:`\bar w_m` and the samples held fixed (detached), so that

    .. math::

        \nabla_\theta\mathcal L = \frac1N\sum_n \nabla_\theta E(x_n) - \sum_m \bar w_m \nabla_\theta E(y_m).

    This is the estimator to use inside a training loop when the proposal depends on :math:`\theta` or is
    redrawn at every step. Its value is not the NLL; use :func:`importance_sampling_nll` for that.

    Parameters
    ----------
    energy_fn, x, y, log_q_y
        As in :func:`importance_sampling_nll`.

    Returns
    -------
    torch.Tensor
        A scalar.
    """
    e_x, e_y = _check_proposal_batch(energy_fn, x, y.detach(), log_q_y.detach())
    weights = self_normalized_weights(-e_y.detach() - log_q_y.detach())
    return e_x.mean() - (weights * e_y).sum()
