r"""The RBM core: the conditionals, the Gibbs step and the free energy, written once.

Every function takes the parameters :math:`(W, b, c)` explicitly, so that the model's methods
(:class:`~ebmlib.rbm.BernoulliRBM`), its trainer and annealed importance sampling
(:mod:`ebmlib.partition`) share them. They follow the annealing path

.. math::  f_\beta(v) = e^{(1-\beta)\, b_A^\top v + \beta\, b^\top v}
           \prod_j \big(1 + e^{\beta(c_j + v^\top W_{:j})}\big),

from the base-rate model (:math:`\beta = 0`: visible units independent with logits :math:`b_A`,
hidden units uniform) to the RBM's marginal (:math:`\beta = 1`, where
:math:`f_1(v) = e^{b_A^\top v}\, e^{-F(v)}`; with :math:`b_A = 0` it is :math:`e^{-F(v)}`). The
plain model is the case :math:`\beta = 1`, :math:`b_A = 0`. Nothing here validates its inputs: the
public boundary (the model's methods, :mod:`ebmlib.partition`) does.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["hidden_logits", "log_weight", "gibbs_step", "flip_gaps"]


def hidden_logits(v: torch.Tensor, weight: torch.Tensor, hidden_bias: torch.Tensor) -> torch.Tensor:
    r"""Hidden pre-activations :math:`x = c + vW`, shape ``(n, n_hidden)``; at inverse temperature
    :math:`\beta`, :math:`p_\beta(h_j = 1\mid v) = \sigma(\beta x_j)`."""
    return torch.addmm(hidden_bias, v, weight)


def log_weight(
    v: torch.Tensor, x: torch.Tensor, visible_gap: torch.Tensor, beta: float = 1.0
) -> torch.Tensor:
    r""":math:`\log f_\beta(v) - b_A^\top v = \beta\,(b - b_A)^\top v
    + \sum_j \operatorname{softplus}(\beta x_j)`, shape ``(n,)``, given ``x = c + vW``.

    With ``visible_gap`` :math:`= b` (so :math:`b_A = 0`) and :math:`\beta = 1` it is minus the free
    energy, :math:`-F(v) = b^\top v + \sum_j \operatorname{softplus}(c_j + v^\top W_{:j})`.
    Swapping the layers' roles (``v`` a batch of hidden states, ``x = b + hW^\top``,
    ``visible_gap = c``) gives the hidden layer's marginal. Differentiable in the parameters.
    """
    if beta == 1.0:
        return (v @ visible_gap) + F.softplus(x).sum(1)
    return beta * (v @ visible_gap) + F.softplus(beta * x).sum(1)


def gibbs_step(
    x: torch.Tensor,
    weight: torch.Tensor,
    visible_bias: torch.Tensor,
    hidden_bias: torch.Tensor,
    *,
    beta: float = 1.0,
    base_bias: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""One block-Gibbs step :math:`v \to h \sim p_\beta(h\mid v) \to v' \sim p_\beta(v\mid h)` that
    leaves :math:`f_\beta` invariant and is reversible with respect to it.

    The conditionals are :math:`p_\beta(h_j = 1\mid v) = \sigma(\beta x_j)` and
    :math:`p_\beta(v_i = 1\mid h) = \sigma\big((1-\beta) b^A_i + \beta (b_i + W_{i:}h)\big)`.

    Parameters
    ----------
    x : torch.Tensor, shape (n, n_hidden)
        :math:`c + vW` of the current states (from :func:`hidden_logits`).
    weight, visible_bias, hidden_bias : torch.Tensor
        :math:`W` ``(n_visible, n_hidden)``, :math:`b` ``(n_visible,)``, :math:`c` ``(n_hidden,)``.
    beta : float
        Inverse temperature :math:`\beta \in [0, 1]` (1: the RBM itself).
    base_bias : torch.Tensor, shape (n_visible,), optional
        The base model's visible logits :math:`b_A` (0 when omitted).
    generator : torch.Generator, optional

    Returns
    -------
    v, x : torch.Tensor
        The new states ``(n, n_visible)`` and their :math:`c + v'W`.
    """
    h = torch.bernoulli(torch.sigmoid(x if beta == 1.0 else beta * x), generator=generator)
    if base_bias is not None:
        bias = torch.lerp(base_bias, visible_bias, beta)  # (1 - beta) b_A + beta b
    else:
        bias = visible_bias if beta == 1.0 else beta * visible_bias
    logits = torch.addmm(bias, h, weight.T, alpha=beta)
    v = torch.bernoulli(torch.sigmoid(logits), generator=generator)
    return v, hidden_logits(v, weight, hidden_bias)


def flip_gaps(
    v: torch.Tensor, weight: torch.Tensor, visible_bias: torch.Tensor, hidden_bias: torch.Tensor
) -> torch.Tensor:
    r""":math:`F(v) - F(v^{(i)})` for every row and bit, shape ``(n, n_visible)``; differentiable in
    the parameters.

    :math:`v^{(i)}` is ``v`` with bit ``i`` flipped. With :math:`x = c + vW` and
    :math:`s_i = 1 - 2v_i`, :math:`F(v) - F(v^{(i)}) = s_i b_i
    + \sum_j[\operatorname{softplus}(x_j + s_i W_{ij}) - \operatorname{softplus}(x_j)]`. Rows are
    processed in chunks so that memory stays bounded. :math:`\log p(v_i\mid v_{-i})
    = -\operatorname{softplus}(F(v) - F(v^{(i)}))`.
    """
    x = hidden_logits(v, weight, hidden_bias)
    sign = 1.0 - 2.0 * v  # +1 where the bit turns on
    sp = F.softplus(x).sum(1, keepdim=True)
    gaps = []
    step = max(1, 2**22 // (weight.shape[0] * weight.shape[1]))  # rows per chunk: bounded memory
    for start in range(0, v.shape[0], step):
        xs, ss = x[start : start + step], sign[start : start + step]
        x_flip = xs[:, None, :] + ss[:, :, None] * weight[None]  # (m, n_v, n_h)
        gaps.append(ss * visible_bias + F.softplus(x_flip).sum(2) - sp[start : start + step])
    return torch.cat(gaps)
