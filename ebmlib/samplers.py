r"""Samplers for :math:`p(x) \propto \exp(-E(x))`.

Every sampler returns ``(x, info)``: the samples, shape ``(n, d)``, and a dict of diagnostics that always holds
``"acceptance_rate"`` (1.0 for samplers without an accept/reject step).

This module holds the two samplers of Section 6 of :cite:p:`ebmgradientnote`, both built on a proposal
:math:`q` that does not depend on the current state (see :mod:`ebmlib.proposals`):

* :func:`independent_metropolis`: Metropolis–Hastings with an independent proposal. The acceptance probability
  :math:`\min\{1, w(y')/w(y)\}` with :math:`w = \phi/q` needs no :math:`Z`.
* :func:`importance_resampling`: importance sampling followed by multinomial resampling
  (sampling-importance-resampling).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from .partition import ess, log_partition_is
from .validation import check_batch, check_energy_output, check_generator, check_int

__all__ = ["independent_metropolis", "importance_resampling"]


def _check_proposal(proposal) -> None:
    if not (callable(getattr(proposal, "sample", None)) and callable(getattr(proposal, "log_prob", None))):
        raise TypeError("proposal must have sample(n, *, generator) and log_prob(y) methods "
                        f"(see ebmlib.proposals), got {type(proposal).__name__}")


def _log_weights(energy_fn: Callable, proposal, y: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        e = check_energy_output(energy_fn(y), y.shape[0])
        log_w = -e - proposal.log_prob(y)
    if bool(torch.isnan(log_w).any()):
        raise ValueError("energy_fn or proposal.log_prob returned NaN at the proposal samples")
    return log_w


def independent_metropolis(energy_fn: Callable, proposal, *, n_steps: int, n_chains: int = 1,
                           x0: torch.Tensor | None = None, generator: torch.Generator | None = None,
                           return_chain: bool = False):
    r"""Metropolis–Hastings with an independent proposal :math:`q` (paper Section 6).

    At each step a candidate :math:`y'\sim q` replaces the state :math:`y` with probability

    .. math::

        \alpha = \min\left\{1, \frac{\phi(y')\,q(y)}{\phi(y)\,q(y')}\right\} = \min\left\{1, \frac{w(y')}{w(y)}\right\},
        \qquad w = \phi / q ,

    in which :math:`Z` cancels. All candidates and their weights are computed in one batch; only the
    accept/reject recursion, on log weights alone, is sequential. Chains run in parallel.

    Parameters
    ----------
    energy_fn : callable
        Maps ``(n, d)`` to ``(n,)``.
    proposal : object
        With ``sample(n, *, generator)`` and ``log_prob(y)`` (see :mod:`ebmlib.proposals`).
    n_steps : int
        Number of MH steps per chain.
    n_chains : int
        Independent chains.
    x0 : torch.Tensor, shape (n_chains, d), optional
        Initial states (default: a draw from the proposal).
    generator : torch.Generator, optional
    return_chain : bool
        Also return every state in ``info["chain"]``, shape ``(n_steps, n_chains, d)``.

    Returns
    -------
    x : torch.Tensor, shape (n_chains, d)
        Final states.
    info : dict
        ``"acceptance_rate"`` (float), ``"acceptance_per_chain"`` (shape ``(n_chains,)``) and, if asked,
        ``"chain"``.
    """
    _check_proposal(proposal)
    n_steps = check_int(n_steps, "n_steps")
    n_chains = check_int(n_chains, "n_chains")
    check_generator(generator)
    candidates = proposal.sample(n_steps * n_chains, generator=generator)
    d = candidates.shape[1]
    log_w_cand = _log_weights(energy_fn, proposal, candidates).reshape(n_steps, n_chains)
    candidates = candidates.reshape(n_steps, n_chains, d)
    if x0 is None:
        state = proposal.sample(n_chains, generator=generator)
    else:
        state = check_batch(x0, "x0", dim=d).clone()
        if state.shape[0] != n_chains:
            raise ValueError(f"x0 must have shape ({n_chains}, {d}), got {tuple(x0.shape)}")
    log_w_state = _log_weights(energy_fn, proposal, state)
    if bool((log_w_state == -float("inf")).all()):
        raise ValueError("the initial states have zero density under the model or the proposal")
    log_u = torch.log(torch.rand(n_steps, n_chains, generator=generator, dtype=log_w_cand.dtype)).numpy()
    # The recursion only needs log weights: run it on NumPy arrays, remember which candidate each chain holds
    # (-1 for its initial state), and gather the states once at the end.
    lw_cand = log_w_cand.numpy()
    lw_state = log_w_state.numpy().copy()
    held = np.full(n_chains, -1, dtype=np.int64)
    history = np.empty((n_steps, n_chains), dtype=np.int64) if return_chain else None
    n_accepted = np.zeros(n_chains, dtype=np.int64)
    with np.errstate(invalid="ignore"):  # -inf - (-inf) is NaN, and NaN never accepts
        for t in range(n_steps):
            accept = log_u[t] < lw_cand[t] - lw_state
            lw_state = np.where(accept, lw_cand[t], lw_state)
            held = np.where(accept, t, held)
            n_accepted += accept
            if history is not None:
                history[t] = held
    pool = torch.cat([state[None], candidates])                    # (n_steps + 1, n_chains, d); index 0 = start
    chains = torch.arange(n_chains)
    final = pool[torch.from_numpy(held) + 1, chains]
    rate = torch.from_numpy(n_accepted).to(log_w_cand.dtype) / n_steps
    info = {"acceptance_rate": float(rate.mean()), "acceptance_per_chain": rate}
    if history is not None:
        info["chain"] = pool[torch.from_numpy(history) + 1, chains[None, :]]
    return final, info


def importance_resampling(energy_fn: Callable, proposal, *, n_samples: int, n_proposals: int | None = None,
                          generator: torch.Generator | None = None):
    r"""Importance sampling plus multinomial resampling (paper Section 6, Eq. 19–20).

    Draw :math:`z_1,\dots,z_K \sim q`, weight them by :math:`w_k = \phi(z_k)/q(z_k)`, and resample ``n_samples``
    points with replacement with probabilities :math:`\bar w_k = w_k/\sum_j w_j`. The result is approximately
    distributed as :math:`p`; the approximation improves as :math:`K` grows and degrades as the weights become
    uneven (small ESS), since then a few :math:`z_k` are repeated many times.

    Parameters
    ----------
    energy_fn : callable
    proposal : object
        With ``sample(n, *, generator)`` and ``log_prob(y)``.
    n_samples : int
        Number of resampled points.
    n_proposals : int, optional
        Number :math:`K` of proposal draws (default ``n_samples``, as in the paper).
    generator : torch.Generator, optional

    Returns
    -------
    x : torch.Tensor, shape (n_samples, d)
    info : dict
        ``"acceptance_rate"`` (1.0), ``"ess"`` of the weights, ``"log_partition"`` (the IS estimate
        :math:`\log\hat Z` from the same draws) and ``"unique_fraction"`` (distinct points / ``n_samples``).
    """
    _check_proposal(proposal)
    n_samples = check_int(n_samples, "n_samples")
    n_proposals = n_samples if n_proposals is None else check_int(n_proposals, "n_proposals")
    check_generator(generator)
    z = proposal.sample(n_proposals, generator=generator)
    log_w = _log_weights(energy_fn, proposal, z)
    if bool((log_w == -float("inf")).all()):
        raise ValueError("every proposal draw has zero weight: the proposal misses the model's support")
    probs = torch.softmax(log_w, dim=0)
    idx = torch.multinomial(probs, n_samples, replacement=True, generator=generator)
    info = {
        "acceptance_rate": 1.0,
        "ess": float(ess(log_w)),
        "log_partition": float(log_partition_is(log_w, torch.zeros_like(log_w))),
        "unique_fraction": float(torch.unique(idx).numel() / n_samples),
    }
    return z[idx], info
