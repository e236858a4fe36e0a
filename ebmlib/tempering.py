r"""Parallel tempering (replica exchange) for multimodal targets :math:`p(x) \propto \exp(-E(x))`.

Local samplers (:mod:`ebmlib.samplers`) cross an energy barrier :math:`\Delta E` only after waiting
roughly :math:`e^{\Delta E}` steps. Parallel tempering :cite:p:`swendsen1986replica,geyer1991markov`
runs, for every chain, one replica at each inverse temperature
:math:`1 = \beta_0 > \beta_1 > \dots > \beta_{K-1} > 0`, replica :math:`k` targeting
:math:`p_k(x) \propto e^{-\beta_k E(x)}`, whose barriers are :math:`\beta_k\,\Delta E`. The hot
replicas cross barriers; exchanges between neighbouring temperatures carry what they find down to
:math:`\beta = 1`. The joint target :math:`\prod_k p_k(x_k)` is left invariant by the local moves (a
Metropolized kernel per replica) and by the exchange :math:`x_i \leftrightarrow x_j`, accepted with
probability

.. math::

    \min\{1, \exp[(\beta_i - \beta_j)(E(x_i) - E(x_j))]\},

so the :math:`\beta = 1` replicas are exact draws of :math:`p` at stationarity. No :math:`Z` is
needed. The choice of the ladder is reviewed by :cite:t:`earl2005parallel`; :func:`geometric_betas`
gives a geometric one. The hottest replica must cross the barriers (:math:`\beta_{K-1}\Delta E` of a
nat or so), and neighbours must be close enough that their exchanges are accepted:
``info["swap_acceptance"]`` reports the rate for each pair.

**Per-temperature steps.** :func:`parallel_tempering` reuses the scalar-step kernels of
:mod:`ebmlib.samplers` exactly, on the whole stacked batch of replicas: replica :math:`k` runs in
the coordinates :math:`y = x / c_k` on the energy :math:`\beta_k E(c_k y)`, and one step of size
:math:`s` there *is* one step of size :math:`c_k s` (random walk, leapfrog) or :math:`c_k^2 s`
(Langevin) on :math:`\beta_k E` in :math:`x`.

**The schedule.** Every step of :func:`parallel_tempering` advances all :math:`K \times n` replicas
by one step of the local kernel on their tempered energies :math:`\beta_k E` (one call of the
energy on the stacked batch of shape ``(K * n_chains, d)``), and every ``swap_every`` steps
proposes exchanges between neighbouring temperatures, alternating the even pairs
:math:`(0,1), (2,3), \dots` and the odd pairs :math:`(1,2), (3,4), \dots` (non-overlapping, so
all are tested at once), each accepted with the probability above. Exchanges reuse the energies
(and gradients) that the local kernels already hold, so they cost no evaluation."""

from __future__ import annotations

import functools
import math
import numbers
from collections.abc import Callable

import torch

from .samplers import ChainState, _bind_kernel
from .validation import check_batch, check_generator, check_int, check_positive

__all__ = ["parallel_tempering", "geometric_betas", "TEMPERING_METHODS"]

#: Local kernels allowed within a temperature: the Metropolis-corrected ones (ULA's biased
#: stationary law would break the exchange move's detailed balance).
TEMPERING_METHODS = ("rw_metropolis", "mala", "hmc")

# how each method's step size scales with the width of the tempered target, sd / sqrt(beta):
# a proposal standard deviation or a leapfrog step scales with the width, a Langevin step with its
# square
_STEP_POWER = {"rw_metropolis": 0.5, "mala": 1.0, "hmc": 0.5}
_GRADS_PER_STEP = {"rw_metropolis": 0, "mala": 1, "hmc": None}  # HMC: n_leapfrog


def geometric_betas(n_temperatures: int, beta_min: float) -> torch.Tensor:
    r"""A geometric ladder :math:`\beta_k = \beta_\min^{k/(K-1)}`, :math:`k = 0, \dots, K-1`, from 1
    to ``beta_min``.

    Parameters
    ----------
    n_temperatures : int
        :math:`K \ge 2`.
    beta_min : float in (0, 1)
        The hottest inverse temperature.

    Returns
    -------
    torch.Tensor, shape (K,), float64, strictly decreasing, first entry exactly 1.
    """
    n_temperatures = check_int(n_temperatures, "n_temperatures", minimum=2)
    beta_min = check_positive(beta_min, "beta_min")
    if beta_min >= 1:
        raise ValueError(f"beta_min must lie in (0, 1), got {beta_min}")
    k = torch.arange(n_temperatures, dtype=torch.float64, device="cpu")
    return beta_min ** (k / (n_temperatures - 1))


def _check_betas(betas) -> torch.Tensor:
    if isinstance(betas, (str, bytes)):
        raise TypeError(
            "betas must be a 1-D sequence or tensor of inverse temperatures, "
            f"got {type(betas).__name__}"
        )
    try:
        where = betas.device if isinstance(betas, torch.Tensor) else "cpu"
        b = torch.as_tensor(betas, dtype=torch.float64, device=where)
    except (TypeError, ValueError, RuntimeError) as err:
        raise TypeError(
            f"betas must be a 1-D sequence or tensor of inverse temperatures, got {betas!r}"
        ) from err
    if b.ndim != 1 or b.numel() == 0:
        raise ValueError(f"betas must be a non-empty 1-D sequence, got shape {tuple(b.shape)}")
    if not bool(torch.isfinite(b).all()) or bool((b <= 0).any()) or bool((b > 1).any()):
        raise ValueError(f"betas must all lie in (0, 1], got {b.tolist()}")
    if float(b[0]) != 1.0:
        raise ValueError(f"betas[0] must be 1 (the target itself), got {float(b[0])}")
    if b.numel() > 1 and not bool((b[1:] < b[:-1]).all()):
        raise ValueError(f"betas must be strictly decreasing, got {b.tolist()}")
    return b


def _check_step_sizes(step_size, method: str, betas: torch.Tensor) -> torch.Tensor:
    k = betas.numel()
    if (
        isinstance(step_size, numbers.Real)
        and not isinstance(step_size, bool)
        or (isinstance(step_size, torch.Tensor) and step_size.numel() == 1 and step_size.ndim == 0)
    ):
        s = check_positive(step_size, "step_size")
        return s * betas ** (-_STEP_POWER[method])
    try:
        steps = [check_positive(v, f"step_size[{i}]") for i, v in enumerate(step_size)]
    except TypeError as err:
        if "step_size[" in str(err):
            raise
        raise TypeError(
            f"step_size must be a positive number or a sequence of {k} positive numbers (one per "
            f"temperature), got {type(step_size).__name__}"
        ) from err
    if len(steps) != k:
        raise ValueError(f"step_size must hold one step per temperature ({k}), got {len(steps)}")
    return torch.tensor(steps, dtype=torch.float64, device="cpu")


def _check_tempering_method(method) -> str:
    if method not in TEMPERING_METHODS:
        extra = (
            " (ULA has no accept/reject step, so its biased chains would break the exchange's "
            "balance)"
            if method == "langevin"
            else ""
        )
        raise ValueError(
            f"method must be one of {', '.join(map(repr, TEMPERING_METHODS))}, "
            f"got {method!r}{extra}"
        )
    return method


def _check_ladder_args(method, x0, betas, counts, generator, step_size):
    """The checks of :func:`parallel_tempering`: returns ``x0``, the inverse temperatures and the
    steps per temperature (in ``x0``'s dtype, on its device) and the checked integers ``counts``
    (``n_steps``, ``n_leapfrog``, ``swap_every``)."""
    _check_tempering_method(method)
    x0 = check_batch(x0, "x0").detach()
    b = _check_betas(betas).to(dtype=x0.dtype, device=x0.device)
    counts = tuple(
        check_int(v, name)
        for v, name in zip(counts, ("n_steps", "n_leapfrog", "swap_every"), strict=True)
    )
    check_generator(generator, device=x0.device)
    steps = _check_step_sizes(step_size, method, b).to(dtype=x0.dtype, device=x0.device)
    return x0, b, steps, counts


def _coordinate_scales(steps: torch.Tensor, method: str):
    """The common step ``s0 = steps[0]`` and the scales :math:`c_k`, shape (K,), of the coordinates
    :math:`y = x / c_k` in which ``s0`` is replica :math:`k`'s step ``steps[k]`` (module notes)."""
    s0 = float(steps[0])
    return s0, (steps / s0) ** (0.5 if method == "mala" else 1.0)


def _tempered_replicas(energy_fn, x0: torch.Tensor, b: torch.Tensor, c: torch.Tensor):
    r"""The tempered energy of the stacked replicas in their coordinates, :math:`y \mapsto
    \beta_k E(c_k y)` row by row, the starting state (``x0`` at every temperature, in those
    coordinates) and the scale of each row, shape ``(K * n, 1)``."""
    n = x0.shape[0]
    beta_rows = b.repeat_interleave(n)  # (K * n,)
    c_rows = c.repeat_interleave(n)[:, None]  # (K * n, 1)

    def tempered(y):
        return beta_rows * energy_fn(c_rows * y)

    return tempered, ChainState(x0.repeat(b.numel(), 1) / c_rows), c_rows


def _run_ladder(kernel, tempered, state, b, c, n_steps, swap_every, generator, return_chain):
    r"""``n_steps`` local steps of every replica (``kernel(tempered, state)``), with a round of
    exchanges every ``swap_every`` steps; returns the final state, the counts ``(accepted, tried,
    done)`` (accepted local moves per temperature and chain, shape (K, n); exchanges tried and
    done per pair, shape (K-1,)) and the :math:`\beta = 1` chain (or None)."""
    k, x = b.numel(), state.x
    n = x.shape[0] // k
    accepted = torch.zeros(k, n, dtype=torch.float64, device=x.device)
    swaps_tried = torch.zeros(max(k - 1, 0), dtype=torch.float64, device=x.device)
    swaps_done = torch.zeros(max(k - 1, 0), dtype=torch.float64, device=x.device)
    chain = (
        torch.empty((n_steps, n, x.shape[1]), dtype=x.dtype, device=x.device)
        if return_chain
        else None
    )
    n_rounds = 0
    for t in range(n_steps):
        state, acc = kernel(tempered, state)
        accepted += acc.reshape(k, n)
        if k > 1 and (t + 1) % swap_every == 0:
            state = _exchange(state, b, c, n, n_rounds % 2, generator, swaps_tried, swaps_done)
            n_rounds += 1
        if chain is not None:
            chain[t] = state.x[:n] * c[0]
    return state, (accepted, swaps_tried, swaps_done), chain


def _final_replicas(state: ChainState, c_rows, k: int, step_size) -> torch.Tensor:
    """The final replicas in x-coordinates, shape (K, n_chains, d), checked finite."""
    x_all = (state.x * c_rows).reshape(k, -1, state.x.shape[1])
    if not bool(torch.isfinite(x_all).all()):
        raise FloatingPointError(
            f"parallel tempering reached NaN or infinite values: step_size={step_size} is "
            "too large for this energy (or the energy is unbounded below)"
        )
    return x_all


def _tempering_info(method, n_steps, n_leapfrog, b, steps, counts, x_all, chain) -> dict:
    """The ``info`` dict of :func:`parallel_tempering`."""
    (accepted, tried, done), k = counts, b.numel()
    per_step = n_leapfrog if method == "hmc" else _GRADS_PER_STEP[method]
    rate_t = accepted.mean(1) / n_steps
    info = {
        "acceptance_rate": float(rate_t[0]),
        "acceptance_per_temperature": rate_t,
        "swap_acceptance": torch.where(tried > 0, done / tried.clamp_min(1.0), math.nan),
        "n_grad_evals": k * n_steps * per_step,
        "n_energy_evals": k * n_steps * (1 if method == "rw_metropolis" else per_step),
        "betas": b,
        "step_sizes": steps,
        "x_all": x_all,
    }
    if chain is not None:
        info["chain"] = chain
    return info


def parallel_tempering(
    energy_fn: Callable,
    x0: torch.Tensor,
    *,
    betas,
    n_steps: int,
    step_size,
    generator: torch.Generator | None = None,
    method: str = "mala",
    n_leapfrog: int = 10,
    swap_every: int = 1,
    return_chain: bool = False,
):
    r"""Parallel tempering: ``n_chains`` independent replica ladders, each with one replica per
    temperature.

    Every step advances all :math:`K \times n` replicas by one step of ``method`` on their tempered
    energies :math:`\beta_k E`; every ``swap_every`` steps, neighbouring temperatures exchange
    states with probability :math:`\min\{1, \exp[(\beta_i - \beta_j)(E(x_i) - E(x_j))]\}`, which
    leaves :math:`\prod_k p_k(x_k)`, :math:`p_k \propto e^{-\beta_k E}`, invariant. The module
    notes give the schedule of exchanges and how each temperature gets its own step.

    Parameters
    ----------
    energy_fn : callable
        Maps ``(m, d)`` to ``(m,)``; differentiable in ``x`` for ``"mala"`` and ``"hmc"``.
    x0 : torch.Tensor, shape (n_chains, d)
        Initial states, replicated at every temperature.
    betas : 1-D sequence or tensor of K floats
        Inverse temperatures, strictly decreasing, all in (0, 1], ``betas[0] == 1``. See
        :func:`geometric_betas`.
    n_steps : int
        Local steps per replica (HMC: trajectories).
    step_size : float or sequence of K floats
        A float is the step at :math:`\beta = 1`, scaled to each temperature's width
        :math:`\propto\beta^{-1/2}`: :math:`s/\sqrt{\beta_k}` for ``"rw_metropolis"`` (proposal sd)
        and ``"hmc"`` (leapfrog step), :math:`\varepsilon/\beta_k` for ``"mala"``. A sequence gives
        each temperature's step as is, with the meaning of :func:`ebmlib.samplers.sample` applied to
        the energy :math:`\beta_k E`.
    generator : torch.Generator, optional
    method : {"rw_metropolis", "mala", "hmc"}
        The local kernel of :mod:`ebmlib.samplers` used within each temperature.
    n_leapfrog : int
        Leapfrog steps per HMC trajectory.
    swap_every : int
        Local steps between two rounds of exchanges.
    return_chain : bool
        Also return the :math:`\beta = 1` states after every step in ``info["chain"]``, shape
        ``(n_steps, n_chains, d)``.

    Returns
    -------
    x : torch.Tensor, shape (n_chains, d)
        The final :math:`\beta = 1` states.
    info : dict
        ``"acceptance_rate"`` (the local kernel's, at :math:`\beta = 1`, mean over steps and
        chains), ``"acceptance_per_temperature"`` (shape ``(K,)``), ``"swap_acceptance"`` (shape
        ``(K-1,)``: the rate for the pair :math:`(\beta_k, \beta_{k+1})`, NaN if no exchange was
        tried), ``"n_grad_evals"`` (gradient evaluations per chain, all temperatures counted:
        :math:`K \times` ``n_steps`` :math:`\times` the kernel's cost per step; 0 for
        ``"rw_metropolis"``), ``"n_energy_evals"`` (energy evaluations per chain, counted the same
        way; each gradient evaluation also gives the energy), ``"betas"``, ``"step_sizes"`` (shape
        ``(K,)``, as used), ``"x_all"`` (final replicas, shape ``(K, n_chains, d)``) and, if asked,
        ``"chain"``.
    """
    x0, b, steps, (n_steps, n_leapfrog, swap_every) = _check_ladder_args(
        method, x0, betas, (n_steps, n_leapfrog, swap_every), generator, step_size
    )
    s0, c = _coordinate_scales(steps, method)
    tempered, start, c_rows = _tempered_replicas(energy_fn, x0, b, c)
    kernel = functools.partial(_bind_kernel(method, n_leapfrog), step_size=s0, generator=generator)
    state, counts, chain = _run_ladder(
        kernel, tempered, start, b, c, n_steps, swap_every, generator, return_chain
    )
    x_all = _final_replicas(state, c_rows, b.numel(), step_size)
    info = _tempering_info(method, n_steps, n_leapfrog, b, steps, counts, x_all, chain)
    return x_all[0].clone(), info


def _exchange(
    state: ChainState,
    b: torch.Tensor,
    c: torch.Tensor,
    n: int,
    parity: int,
    generator,
    tried: torch.Tensor,
    done: torch.Tensor,
) -> ChainState:
    """One round of exchanges between the pairs (i, i+1), i = parity, parity + 2, ...; updates the
    counters."""
    k = b.numel()
    device = state.x.device
    lower = torch.arange(parity, k - 1, 2, device=device)  # colder member i of each pair (i, i+1)
    if lower.numel() == 0:
        return state
    upper = lower + 1
    x = state.x.reshape(k, n, -1) * c[:, None, None]  # back to x-coordinates
    e = state.energy.reshape(k, n) / b[:, None]  # untempered E(x) of every replica
    log_ratio = (b[lower] - b[upper])[:, None] * (e[lower] - e[upper])  # (pairs, n)
    u = torch.rand(log_ratio.shape, generator=generator, dtype=log_ratio.dtype, device=device)
    swap = torch.log(u) < log_ratio
    tried[lower] += n
    done[lower] += swap.sum(1).to(done.dtype)
    # permutation of temperature slots per chain: slot i takes replica i+1 and vice versa where
    # swapped
    src = torch.arange(k, device=device)[:, None].expand(k, n).clone()
    src[lower] = torch.where(swap, upper[:, None], lower[:, None])
    src[upper] = torch.where(swap, lower[:, None], upper[:, None])
    cols = torch.arange(n, device=device)[None, :].expand(k, n)
    x_new = x[src, cols]  # (K, n, d)
    e_new = e[src, cols]
    y_new = (x_new / c[:, None, None]).reshape(k * n, -1)
    energy = (b[:, None] * e_new).reshape(-1)
    grad = None
    if state.grad is not None:
        # gradient in y-coordinates of slot k: c_k * beta_k * grad E(x); rescale the one held by
        # the source slot
        g = state.grad.reshape(k, n, -1)[src, cols]
        factor = (c * b)[:, None] / (c * b)[src]  # (K, n)
        grad = (g * factor[..., None]).reshape(k * n, -1)
    return ChainState._at(y_new, energy, grad)
