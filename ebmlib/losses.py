r"""Losses whose gradients are (estimates of) the maximum-likelihood gradient, or replace it.

Every loss is a scalar to be *minimized* and is differentiable with respect to
the energy's parameters. Sign convention: :math:`p(x) \propto e^{-E(x)}`.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from .validation import check_batch, check_energy_output

__all__ = ["cd_loss"]


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
