r"""Samplers for :math:`p(x) \propto \exp(-E(x))`.

Every sampler returns ``(x, info)``: the samples, shape ``(n, d)``, and a dict of diagnostics that
always holds ``"acceptance_rate"`` (1.0 for samplers without an accept/reject step).

**Local MCMC** (chapter 4): one interface, :func:`sample`, with ``method`` one of

* ``"rw_metropolis"``: random-walk Metropolis, proposal :math:`x' = x + s\,\xi`, :math:`s` =
  ``step_size``;
* ``"langevin"``: the unadjusted Langevin algorithm (ULA),
  :math:`x' = x - \varepsilon\nabla E(x) + \sqrt{2\varepsilon}\,\xi`;
* ``"mala"``: the same proposal, corrected by a Metropolis–Hastings test;
* ``"hmc"``: Hamiltonian Monte Carlo with ``n_leapfrog`` leapfrog steps of size :math:`\varepsilon`
  and unit mass.

**Boxes.** With ``bounds=[(low, high), ...]`` every method targets the density *truncated* to the
box, :math:`p(x)\propto e^{-E(x)}\,\mathbb 1[x\in B]`: ULA and random-walk proposals are reflected
at the walls (:func:`reflect_into_box`; the reflected Gaussian random walk is a symmetric proposal,
so random-walk Metropolis stays exact), and MALA and HMC reject a proposal that leaves the box (its
target density is zero), so their Metropolis–Hastings test keeps the truncated density exactly
invariant.

Each method is also a per-step kernel (:data:`KERNELS`) acting on an immutable :class:`ChainState`,
which carries the energies and input gradients of the current states so that no evaluation is
repeated: MALA and HMC reuse the gradient computed at the end of the previous step. The public
kernels check their arguments; :func:`sample` checks them once and runs the unchecked kernels.
Input gradients come from :func:`ebmlib.autodiff.energy_input_grad`. Persistent chains (PCD,
:mod:`ebmlib.training`) advance a few steps at a time through :func:`sample` or :func:`step`. Input
gradients are taken with :func:`torch.autograd.grad` with respect to ``x`` only, so the parameters'
``.grad`` is never touched.

**Devices and dtypes.** The chains run where their initial states live: every tensor a sampler
creates takes the device and dtype of ``x0`` (or of the proposal's draws), and a ``generator``, when
given, must live on that same device (``torch.Generator(device=x0.device)``; a CPU generator cannot
draw on a GPU), else a ``ValueError`` says so.

**Independent-proposal samplers** (Section 6 of :cite:p:`ebmgradientnote`), built on a proposal
:math:`q` that does not depend on the current state (see :mod:`ebmlib.proposals`):

* :func:`independent_metropolis`: Metropolis–Hastings with an independent proposal. The acceptance
  probability :math:`\min\{1, w(y')/w(y)\}` with :math:`w = \phi/q` needs no :math:`Z`.
* :func:`importance_resampling`: importance sampling followed by multinomial resampling
  (sampling-importance-resampling).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch

from .autodiff import energy_input_grad
from .validation import (
    check_batch,
    check_bounds,
    check_energy_output,
    check_generator,
    check_int,
    check_positive,
)
from .weights import ess, log_partition_is

__all__ = [
    "ChainState",
    "KERNELS",
    "METHODS",
    "sample",
    "step",
    "init_state",
    "rw_metropolis_step",
    "langevin_step",
    "mala_step",
    "hmc_step",
    "leapfrog_steps",
    "tune_step_size",
    "ula_gaussian_variance",
    "ula_gaussian_covariance",
    "independent_metropolis",
    "importance_resampling",
    "Box",
    "reflect_into_box",
]


# --------------------------------------------------------------------------------------------------
# Local MCMC: kernels on a ChainState, and the one entry point sample()
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class ChainState:
    r"""The current states of a batch of chains, with what is known about them. Immutable.

    ``ChainState(x)`` holds states and nothing else. The cached energies and input gradients are
    filled only by :func:`init_state` and by the kernels, which compute them *at* ``x``, so a cache
    always belongs to its ``x``; they cannot be passed to the constructor. A cache is valid for the
    energy that computed it: after the energy's parameters change (a training step), start again
    from ``ChainState(state.x)``. The kernels never modify a state's tensors in place.

    Attributes
    ----------
    x : torch.Tensor, shape (n_chains, d)
        Current states (detached).
    energy : torch.Tensor, shape (n_chains,), or None
        :math:`E(x)`, when it has been computed.
    grad : torch.Tensor, shape (n_chains, d), or None
        :math:`\nabla_x E(x)`, when it has been computed.
    """

    x: torch.Tensor
    energy: torch.Tensor | None = field(default=None, init=False)
    grad: torch.Tensor | None = field(default=None, init=False)

    def __post_init__(self):
        object.__setattr__(self, "x", check_batch(self.x, "state.x", finite=False).detach())

    @classmethod
    def _at(cls, x: torch.Tensor, energy=None, grad=None) -> ChainState:
        """A state with its cache, for the kernels (which computed ``energy`` and ``grad`` at
        ``x``)."""
        state = cls(x)
        object.__setattr__(state, "energy", energy)
        object.__setattr__(state, "grad", grad)
        return state


def _check_state(state) -> ChainState:
    if not isinstance(state, ChainState):
        raise TypeError(
            "state must be an ebmlib.samplers.ChainState (ChainState(x) or init_state(energy_fn, "
            f"x)), got {type(state).__name__}"
        )
    return state


@dataclass(frozen=True)
class Box:
    r"""An axis-aligned box :math:`\prod_i [\text{low}_i, \text{high}_i]`, as two tensors of shape
    ``(d,)``."""

    low: torch.Tensor
    high: torch.Tensor

    def contains(self, x: torch.Tensor) -> torch.Tensor:
        """Boolean mask, shape ``(n,)``: which rows of ``x`` lie in the closed box."""
        return ((x >= self.low) & (x <= self.high)).all(dim=1)


def _as_box(bounds, d: int, like: torch.Tensor) -> Box | None:
    """``None``, a :class:`Box`, or a sequence of ``(low, high)`` pairs (one per dimension) ->
    ``Box`` (with the dtype and device of ``like``) or None."""
    if bounds is None:
        return None
    if isinstance(bounds, Box):
        if bounds.low.shape != (d,):
            raise ValueError(f"bounds must have {d} (low, high) pairs, got {bounds.low.shape[0]}")
        if bounds.low.dtype == like.dtype and bounds.low.device == like.device:
            return bounds
        return Box(bounds.low.to(like), bounds.high.to(like))
    pairs = check_bounds(bounds, "bounds")
    if len(pairs) != d:
        raise ValueError(
            f"bounds must have one (low, high) pair per dimension ({d}), got {len(pairs)}"
        )
    t = torch.tensor(pairs, dtype=like.dtype, device=like.device)
    return Box(t[:, 0].contiguous(), t[:, 1].contiguous())


def reflect_into_box(x: torch.Tensor, bounds) -> torch.Tensor:
    r"""Fold points into a box by reflecting them at its walls (as often as needed), shape
    preserved.

    In each coordinate, with :math:`L = \text{high}-\text{low}` and
    :math:`u = (x-\text{low}) \bmod 2L`, the result is :math:`\text{low} + \min(u, 2L-u)`: the
    position of a particle that bounces elastically between the walls. The reflected Gaussian random
    walk :math:`x\mapsto \text{reflect}(x + s\xi)` has a transition density that is symmetric in its
    two arguments (a sum over mirror images), so it leaves the uniform density on the box invariant.

    Parameters
    ----------
    x : torch.Tensor, shape (n, d)
    bounds : sequence of (low, high) pairs, one per dimension, or :class:`Box`

    Returns
    -------
    torch.Tensor, shape (n, d)
    """
    x = check_batch(x, "x")
    return _reflect(x, _as_box(bounds, x.shape[1], x))


def _reflect(x: torch.Tensor, box: Box) -> torch.Tensor:
    width = box.high - box.low
    u = torch.remainder(x - box.low, 2 * width)
    return box.low + torch.minimum(u, 2 * width - u)


def _energy(energy_fn, x):
    with torch.no_grad():
        return check_energy_output(energy_fn(x), x.shape[0])


def _noise(x: torch.Tensor, generator) -> torch.Tensor:
    """Standard normal noise shaped, typed and placed like ``x``."""
    return torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)


def init_state(energy_fn: Callable, x0: torch.Tensor, *, need_grad: bool = True) -> ChainState:
    """A :class:`ChainState` at ``x0`` with its energies (and input gradients when
    ``need_grad``)."""
    x0 = check_batch(x0, "x0").detach()
    if need_grad:
        return ChainState._at(x0, *energy_input_grad(energy_fn, x0))
    return ChainState._at(x0, _energy(energy_fn, x0), None)


def _accept(log_ratio: torch.Tensor, generator) -> torch.Tensor:
    """Metropolis–Hastings test: accept where log U < log_ratio (NaN never accepts)."""
    u = torch.rand(
        log_ratio.shape, generator=generator, dtype=log_ratio.dtype, device=log_ratio.device
    )
    return torch.log(u) < log_ratio


# The kernels proper: arguments already checked (by sample(), step() or a public kernel below).


def _rw_metropolis(energy_fn, state, *, step_size, generator, box=None):
    x = state.x
    e = state.energy if state.energy is not None else _energy(energy_fn, x)
    proposal = x + step_size * _noise(x, generator)
    if box is not None:
        proposal = _reflect(proposal, box)
    e_new = _energy(energy_fn, proposal)
    acc = _accept(e - e_new, generator)
    x_next = torch.where(acc[:, None], proposal, x)
    return ChainState._at(x_next, torch.where(acc, e_new, e), None), acc


def _langevin(energy_fn, state, *, step_size, generator, box=None):
    x = state.x
    g = state.grad if state.grad is not None else energy_input_grad(energy_fn, x)[1]
    x_next = x - step_size * g + math.sqrt(2.0 * step_size) * _noise(x, generator)
    if box is not None:
        x_next = _reflect(x_next, box)
    # the gradient at x_next is computed by the next step (not here), so a final step costs
    # nothing extra
    return ChainState(x_next), torch.ones(x.shape[0], dtype=torch.bool, device=x.device)


def _mala(energy_fn, state, *, step_size, generator, box=None):
    x = state.x
    if state.energy is None or state.grad is None:
        state = ChainState._at(x, *energy_input_grad(energy_fn, x))
    e, g = state.energy, state.grad
    proposal = x - step_size * g + math.sqrt(2.0 * step_size) * _noise(x, generator)
    e_new, g_new = energy_input_grad(energy_fn, proposal)
    log_q_fwd = -((proposal - x + step_size * g) ** 2).sum(1) / (4 * step_size)
    log_q_bwd = -((x - proposal + step_size * g_new) ** 2).sum(1) / (4 * step_size)
    acc = _accept(e - e_new + log_q_bwd - log_q_fwd, generator)
    if box is not None:
        acc = acc & box.contains(proposal)
    keep = acc[:, None]
    return ChainState._at(
        torch.where(keep, proposal, x), torch.where(acc, e_new, e), torch.where(keep, g_new, g)
    ), acc


def _hmc(energy_fn, state, *, step_size, generator, n_leapfrog=10, box=None):
    x = state.x
    if state.energy is None or state.grad is None:
        state = ChainState._at(x, *energy_input_grad(energy_fn, x))
    e0, g0 = state.energy, state.grad
    r = _noise(x, generator)
    h0 = e0 + 0.5 * (r * r).sum(1)
    half = 0.5 * step_size
    y, g = x, g0
    r = r - half * g
    for i in range(n_leapfrog):
        y = y + step_size * r
        e, g = energy_input_grad(energy_fn, y)
        r = r - (step_size if i < n_leapfrog - 1 else half) * g
    h1 = e + 0.5 * (r * r).sum(1)
    acc = _accept(h0 - h1, generator)
    if box is not None:
        acc = acc & box.contains(y)
    keep = acc[:, None]
    return ChainState._at(
        torch.where(keep, y, x), torch.where(acc, e, e0), torch.where(keep, g, g0)
    ), acc


_KERNELS = {"rw_metropolis": _rw_metropolis, "langevin": _langevin, "mala": _mala, "hmc": _hmc}


def _bind_kernel(method: str, n_leapfrog: int) -> Callable:
    """The unchecked kernel of ``method`` with its method-specific arguments bound (HMC's
    ``n_leapfrog``): ``kernel(energy_fn, state, *, step_size, generator, box=None)``."""
    kernel = _KERNELS[method]
    return functools.partial(kernel, n_leapfrog=n_leapfrog) if method == "hmc" else kernel


def _check_kernel_args(state, step_size, generator, bounds, n_leapfrog=None):
    """The public boundary of the per-step kernels: returns (state, step_size, box, n_leapfrog)."""
    state = _check_state(state)
    step_size = check_positive(step_size, "step_size")
    check_generator(generator, device=state.x.device)
    if n_leapfrog is not None:
        n_leapfrog = check_int(n_leapfrog, "n_leapfrog")
    return state, step_size, _as_box(bounds, state.x.shape[1], state.x), n_leapfrog


def rw_metropolis_step(
    energy_fn: Callable,
    state: ChainState,
    *,
    step_size: float,
    generator: torch.Generator | None = None,
    bounds=None,
) -> tuple[ChainState, torch.Tensor]:
    r"""One random-walk Metropolis step: propose :math:`x' = x + s\,\xi`, accept with
    :math:`\min\{1, e^{E(x)-E(x')}\}`.

    With ``bounds`` the proposal is reflected into the box (:func:`reflect_into_box`); the reflected
    proposal is still symmetric, so the same test targets the truncated density. Returns the new
    state and the boolean acceptance mask, shape ``(n_chains,)``. Needs no gradient."""
    state, step_size, box, _ = _check_kernel_args(state, step_size, generator, bounds)
    return _rw_metropolis(energy_fn, state, step_size=step_size, generator=generator, box=box)


def langevin_step(
    energy_fn: Callable,
    state: ChainState,
    *,
    step_size: float,
    generator: torch.Generator | None = None,
    bounds=None,
) -> tuple[ChainState, torch.Tensor]:
    r"""One unadjusted Langevin step
    :math:`x' = x - \varepsilon\nabla E(x) + \sqrt{2\varepsilon}\,\xi`.

    Every move is kept (no correction), so the chain targets a *biased* density whose error grows
    with :math:`\varepsilon` (see :func:`ula_gaussian_variance`). With ``bounds`` the move is
    reflected into the box (:func:`reflect_into_box`), a discretization of the Langevin diffusion
    reflected at the walls, whose stationary density is :math:`e^{-E}` truncated to the box. Costs
    one gradient evaluation."""
    state, step_size, box, _ = _check_kernel_args(state, step_size, generator, bounds)
    return _langevin(energy_fn, state, step_size=step_size, generator=generator, box=box)


def mala_step(
    energy_fn: Callable,
    state: ChainState,
    *,
    step_size: float,
    generator: torch.Generator | None = None,
    bounds=None,
) -> tuple[ChainState, torch.Tensor]:
    r"""One Metropolis-adjusted Langevin step.

    The Langevin proposal :math:`x' \sim \mathcal N(x-\varepsilon\nabla E(x), 2\varepsilon I)` is
    accepted with probability
    :math:`\min\{1, \exp[E(x)-E(x') + \log q(x\mid x') - \log q(x'\mid x)]\}`, with
    :math:`\log q(b\mid a) = -\lVert b-a+\varepsilon\nabla E(a)\rVert^2/(4\varepsilon)` + const.
    Costs one gradient evaluation: the gradient at the proposal is kept for the next step. With
    ``bounds`` a proposal outside the box is rejected (the truncated target is zero there), which
    keeps the truncated density exactly invariant."""
    state, step_size, box, _ = _check_kernel_args(state, step_size, generator, bounds)
    return _mala(energy_fn, state, step_size=step_size, generator=generator, box=box)


def hmc_step(
    energy_fn: Callable,
    state: ChainState,
    *,
    step_size: float,
    n_leapfrog: int = 10,
    generator: torch.Generator | None = None,
    bounds=None,
) -> tuple[ChainState, torch.Tensor]:
    r"""One Hamiltonian Monte Carlo step: ``n_leapfrog`` leapfrog steps, unit mass, then an MH test.

    With momentum :math:`r\sim\mathcal N(0, I)` and :math:`H(x, r) = E(x) + \lVert r\rVert^2/2`, the
    leapfrog integrator

    .. math::

        r \leftarrow r - \tfrac\varepsilon2\nabla E(x),\quad x \leftarrow x + \varepsilon r,\quad
        r \leftarrow r - \tfrac\varepsilon2\nabla E(x)

    is volume-preserving and reversible, so the end point is accepted with probability
    :math:`\min\{1, e^{H_0 - H_L}\}`. The gradient at the start is the one kept from the previous
    step, so a step costs exactly ``n_leapfrog`` gradient evaluations; each evaluation also returns
    the energy that the final test needs. With ``bounds`` a trajectory that ends outside the box is
    rejected (the truncated target is zero there), which keeps the truncated density exactly
    invariant."""
    state, step_size, box, n_leapfrog = _check_kernel_args(
        state, step_size, generator, bounds, n_leapfrog
    )
    return _hmc(
        energy_fn,
        state,
        step_size=step_size,
        n_leapfrog=n_leapfrog,
        generator=generator,
        box=box,
    )


#: The per-step kernels, by method name:
#: ``kernel(energy_fn, state, *, step_size, generator, ...) -> (state, accepted)``.
KERNELS = {
    "rw_metropolis": rw_metropolis_step,
    "langevin": langevin_step,
    "mala": mala_step,
    "hmc": hmc_step,
}
METHODS = tuple(KERNELS)


def _check_method(method) -> str:
    if not isinstance(method, str) or method not in KERNELS:
        raise ValueError(f"method must be one of {', '.join(map(repr, METHODS))}, got {method!r}")
    return method


def step(
    energy_fn: Callable,
    state: ChainState,
    *,
    method: str,
    step_size: float,
    generator: torch.Generator | None = None,
    n_leapfrog: int = 10,
    bounds=None,
) -> tuple[ChainState, torch.Tensor]:
    """Advance every chain by one step of ``method``; returns the new :class:`ChainState` and the
    acceptance mask.

    ``bounds`` (optional, one ``(low, high)`` pair per dimension) restricts the target to a box, as
    in :func:`sample`."""
    _check_method(method)
    state, step_size, box, n_leapfrog = _check_kernel_args(
        state, step_size, generator, bounds, n_leapfrog
    )
    return _bind_kernel(method, n_leapfrog)(
        energy_fn, state, step_size=step_size, generator=generator, box=box
    )


def _check_start(x0: torch.Tensor, state: ChainState | None, box: Box | None) -> ChainState:
    """The state :func:`sample` starts from: ``state`` when given (it must hold ``x0``), else
    ``ChainState(x0)``; ``x0`` must lie in the box."""
    if box is not None and not bool(box.contains(x0).all()):
        raise ValueError("x0 must lie inside bounds when bounds are given")
    if state is None:
        return ChainState(x0)
    if _check_state(state).x is not x0 and not (
        state.x.shape == x0.shape
        and state.x.dtype == x0.dtype
        and state.x.device == x0.device
        and torch.equal(state.x, x0)
    ):
        raise ValueError(
            "x0 and state.x disagree: to continue from a state pass x0=state.x (its cached "
            "energies and gradients belong to state.x), or drop state= to start afresh at x0"
        )
    return state


def _run_chains(kernel, energy_fn, state: ChainState, n_steps: int, return_chain: bool):
    """Apply ``kernel(energy_fn, state)`` ``n_steps`` times; returns the final state, the number
    of accepted moves of each chain and, when ``return_chain``, every state (shape
    ``(n_steps, n_chains, d)``, else None)."""
    x = state.x
    n_accepted = torch.zeros(x.shape[0], dtype=torch.int64, device=x.device)
    chain = (
        torch.empty((n_steps, *x.shape), dtype=x.dtype, device=x.device) if return_chain else None
    )
    for t in range(n_steps):
        state, acc = kernel(energy_fn, state)
        n_accepted += acc
        if chain is not None:
            chain[t] = state.x
    return state, n_accepted, chain


def _sample_info(method, state, n_accepted, chain, n_steps, step_size, n_leapfrog) -> dict:
    """The ``info`` dict of :func:`sample`, after checking that the chains stayed finite."""
    if not bool(torch.isfinite(state.x).all()):
        raise FloatingPointError(
            f"{method} chains reached NaN or infinite values: step_size={step_size} is too "
            "large for this energy (or the energy is unbounded below)"
        )
    grads_per_step = {"rw_metropolis": 0, "langevin": 1, "mala": 1, "hmc": n_leapfrog}[method]
    rate = n_accepted.to(torch.float64) / n_steps
    info = {
        "acceptance_rate": float(rate.mean()),
        "acceptance_per_chain": rate,
        "n_grad_evals": grads_per_step * n_steps,
        "state": state,
    }
    if chain is not None:
        info["chain"] = chain
    return info


def sample(
    energy_fn: Callable,
    x0: torch.Tensor,
    *,
    method: str,
    n_steps: int,
    step_size: float,
    generator: torch.Generator | None = None,
    n_leapfrog: int = 10,
    return_chain: bool = False,
    state: ChainState | None = None,
    bounds=None,
):
    r"""Run ``n_chains`` Markov chains targeting :math:`p(x)\propto e^{-E(x)}` for ``n_steps``
    steps, on ``x0``'s device and in its dtype (see the module notes on devices).

    Parameters
    ----------
    energy_fn : callable
        Maps ``(n, d)`` to ``(n,)``; differentiable in ``x`` for the gradient-based methods.
    x0 : torch.Tensor, shape (n_chains, d)
        Initial states, one row per chain. Their dtype is the chains' dtype.
    method : {"rw_metropolis", "langevin", "mala", "hmc"}
    n_steps : int
        Number of MCMC steps (for HMC, of whole trajectories of ``n_leapfrog`` leapfrog steps).
    step_size : float > 0
        The proposal standard deviation (``"rw_metropolis"``), :math:`\varepsilon` in
        :math:`x' = x - \varepsilon\nabla E + \sqrt{2\varepsilon}\,\xi` (``"langevin"``,
        ``"mala"``), or the leapfrog step (``"hmc"``).
    generator : torch.Generator, optional
        On ``x0``'s device.
    n_leapfrog : int
        Leapfrog steps per HMC trajectory.
    return_chain : bool
        Also return every state in ``info["chain"]``, shape ``(n_steps, n_chains, d)``.
    state : ChainState, optional
        The state returned by a previous call as ``info["state"]``: continuing from it reuses its
        cached energies and gradients. ``x0`` must then be ``state.x`` (the same tensor, or one
        equal to it); a different ``x0`` raises ``ValueError``. Valid only while the energy is
        unchanged: after a parameter update, pass ``x0`` alone.
    bounds : sequence of (low, high) pairs, optional
        One pair per dimension: target :math:`e^{-E}` *truncated* to this box. ULA and random-walk
        moves are reflected at the walls; MALA and HMC reject proposals outside it (see the module
        notes). ``x0`` must lie in the box.

    Returns
    -------
    x : torch.Tensor, shape (n_chains, d)
        Final states.
    info : dict
        ``"acceptance_rate"`` (mean over steps and chains; 1.0 for ULA), ``"acceptance_per_chain"``
        (shape ``(n_chains,)``), ``"n_grad_evals"`` (gradient evaluations per chain), ``"state"``
        (the final :class:`ChainState`) and, if asked, ``"chain"``.

    Raises
    ------
    FloatingPointError
        When the chains leave the finite numbers (a step size too large for the energy's curvature).
    """
    _check_method(method)
    x0 = check_batch(x0, "x0")
    n_steps = check_int(n_steps, "n_steps")
    step_size = check_positive(step_size, "step_size")
    n_leapfrog = check_int(n_leapfrog, "n_leapfrog")
    check_generator(generator, device=x0.device)
    box = _as_box(bounds, x0.shape[1], x0)
    kernel = functools.partial(
        _bind_kernel(method, n_leapfrog), step_size=step_size, generator=generator, box=box
    )
    state, n_accepted, chain = _run_chains(
        kernel, energy_fn, _check_start(x0, state, box), n_steps, return_chain
    )
    info = _sample_info(method, state, n_accepted, chain, n_steps, step_size, n_leapfrog)
    return state.x, info


def leapfrog_steps(trajectory_length: float, step_size: float) -> int:
    r"""The number of leapfrog steps :math:`L = \lceil T/\varepsilon\rceil` (at least 1) that
    integrate for time ``trajectory_length`` :math:`T` at step ``step_size`` :math:`\varepsilon`."""
    trajectory_length = check_positive(trajectory_length, "trajectory_length")
    step_size = check_positive(step_size, "step_size")
    return max(1, math.ceil(trajectory_length / step_size - 1e-9))


def tune_step_size(
    energy_fn: Callable,
    x0: torch.Tensor,
    *,
    method: str,
    target_acceptance: float,
    generator: torch.Generator | None = None,
    n_steps: int = 20,
    n_leapfrog: int = 10,
    trajectory_length: float | None = None,
    search: tuple[float, float] = (1e-4, 10.0),
    n_iter: int = 20,
) -> tuple[float, float]:
    r"""The step size at which ``method`` accepts a fraction ``target_acceptance`` of its moves,
    found by bisection on :math:`\log\varepsilon`.

    Each evaluation runs the chains ``n_steps`` steps from ``x0`` (ideally draws from the target)
    at the bracket's midpoint and keeps the half where the rate crosses the target (the rate falls
    as the step grows, away from HMC's resonant lengths). The rate is a Monte Carlo estimate, so
    the answer holds up to its noise, about :math:`\sqrt{a(1-a)/(n_\text{chains}n_\text{steps})}`.

    Parameters
    ----------
    energy_fn, x0 : callable, torch.Tensor of shape (n_chains, d)
        The energy, ``(n, d)`` to ``(n,)``, and the starting states, reused at every evaluation.
    method : {"rw_metropolis", "mala", "hmc"}
        A sampler with an accept step (ULA accepts everything).
    target_acceptance : float in (0, 1)
        E.g. 0.234 (random walk), 0.574 (MALA), 0.651 (HMC): the high-dimensional optima of
        :cite:t:`roberts2001optimal` and :cite:t:`beskos2013optimal`.
    generator : torch.Generator, optional
        On ``x0``'s device.
    n_steps, n_leapfrog : int
        Steps per evaluation, and HMC's leapfrog steps per trajectory.
    trajectory_length : float > 0, optional
        HMC only: hold the integration time :math:`T = L\varepsilon` fixed instead of :math:`L`,
        using :math:`L = \lceil T/\varepsilon\rceil` leapfrog steps at step :math:`\varepsilon`
        (the setting of :cite:t:`beskos2013optimal`); see :func:`leapfrog_steps`.
    search, n_iter : (float, float), int
        The initial bracket ``(low, high)``, ``0 < low < high``, and the number of halvings.

    Returns
    -------
    step_size : float
        The bracket's geometric midpoint after ``n_iter`` halvings.
    acceptance : float
        The rate measured at the last evaluation.
    """
    _check_method(method)
    if method == "langevin":
        raise ValueError("method: ULA accepts every move, so it has no acceptance rate to tune")
    target_acceptance = check_positive(target_acceptance, "target_acceptance")
    if target_acceptance >= 1:
        raise ValueError(f"target_acceptance must lie in (0, 1), got {target_acceptance}")
    low, high = (check_positive(v, "search") for v in search)
    if low >= high:
        raise ValueError(f"search must be (low, high) with low < high, got {search}")
    if trajectory_length is not None:
        if method != "hmc":
            raise ValueError("trajectory_length: only HMC has trajectories")
        trajectory_length = check_positive(trajectory_length, "trajectory_length")
    lo, hi = math.log(low), math.log(high)
    rate = float("nan")
    for _ in range(check_int(n_iter, "n_iter")):
        mid = 0.5 * (lo + hi)
        step_size = math.exp(mid)
        if trajectory_length is not None:
            n_leapfrog = leapfrog_steps(trajectory_length, step_size)
        _, info = sample(
            energy_fn,
            x0,
            method=method,
            n_steps=n_steps,
            step_size=step_size,
            generator=generator,
            n_leapfrog=n_leapfrog,
        )
        rate = info["acceptance_rate"]
        lo, hi = (mid, hi) if rate > target_acceptance else (lo, mid)
    return math.exp(0.5 * (lo + hi)), rate


def ula_gaussian_variance(variance: float, step_size: float) -> float:
    r"""Stationary variance of ULA on :math:`\mathcal N(\mu, \sigma^2)`:
    :math:`\sigma^2/(1-\varepsilon/(2\sigma^2))`.

    ULA on this target is the AR(1) recursion
    :math:`x' - \mu = (1-\varepsilon/\sigma^2)(x-\mu) + \sqrt{2\varepsilon}\xi`, whose stationary
    variance :math:`v` solves :math:`v = (1-\varepsilon/\sigma^2)^2 v + 2\varepsilon`. The chain is
    stable only for :math:`\varepsilon < 2\sigma^2`; the bias is :math:`O(\varepsilon)`."""
    variance = check_positive(variance, "variance")
    step_size = check_positive(step_size, "step_size")
    if step_size >= 2 * variance:
        raise ValueError(
            f"ULA diverges on this Gaussian for step_size >= 2*variance = {2 * variance}"
        )
    return variance / (1.0 - step_size / (2.0 * variance))


def ula_gaussian_covariance(covariance: torch.Tensor, step_size: float) -> torch.Tensor:
    r"""Stationary covariance of ULA on :math:`\mathcal N(\mu, \Sigma)`:
    :math:`(A - \varepsilon A^2/2)^{-1}`, :math:`A=\Sigma^{-1}`.

    The d-dimensional form of :func:`ula_gaussian_variance`: the recursion
    :math:`x'-\mu = (I-\varepsilon A)(x-\mu) + \sqrt{2\varepsilon}\,\xi` has stationary covariance
    :math:`V = 2\varepsilon\,[I-(I-\varepsilon A)^2]^{-1}`, since :math:`A` commutes with :math:`V`.
    Stable only for :math:`\varepsilon < 2\lambda_\min(\Sigma)`.

    Parameters
    ----------
    covariance : torch.Tensor, shape (d, d)
        Symmetric positive definite :math:`\Sigma`.
    step_size : float > 0

    Returns
    -------
    torch.Tensor, shape (d, d)
    """
    if (
        not isinstance(covariance, torch.Tensor)
        or covariance.ndim != 2
        or covariance.shape[0] != covariance.shape[1]
    ):
        raise ValueError("covariance must be a square (d, d) tensor")
    step_size = check_positive(step_size, "step_size")
    lam_min = float(torch.linalg.eigvalsh(covariance)[0])
    if lam_min <= 0:
        raise ValueError("covariance must be positive definite")
    if step_size >= 2 * lam_min:
        raise ValueError(
            "ULA diverges on this Gaussian for step_size >= 2 * smallest eigenvalue = "
            f"{2 * lam_min}"
        )
    precision = torch.linalg.inv(covariance)
    return torch.linalg.inv(precision - 0.5 * step_size * precision @ precision)


# --------------------------------------------------------------------------------------------------
# Independent-proposal samplers (Section 6)
# --------------------------------------------------------------------------------------------------


def _check_proposal(proposal) -> None:
    if not (
        callable(getattr(proposal, "sample", None))
        and callable(getattr(proposal, "log_prob", None))
    ):
        raise TypeError(
            "proposal must have sample(n, *, generator) and log_prob(y) methods "
            f"(see ebmlib.proposals), got {type(proposal).__name__}"
        )


def _log_weights(energy_fn: Callable, proposal, y: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        e = check_energy_output(energy_fn(y), y.shape[0])
        log_w = -e - proposal.log_prob(y)
    if bool(torch.isnan(log_w).any()):
        raise ValueError("energy_fn or proposal.log_prob returned NaN at the proposal samples")
    return log_w


def _imh_start(energy_fn, proposal, x0, n_chains: int, d: int, generator):
    """Initial states of :func:`independent_metropolis` (a draw from the proposal when ``x0`` is
    None) and their log weights."""
    if x0 is None:
        state = proposal.sample(n_chains, generator=generator)
    else:
        state = check_batch(x0, "x0", dim=d).clone()
        if state.shape[0] != n_chains:
            raise ValueError(f"x0 must have shape ({n_chains}, {d}), got {tuple(x0.shape)}")
    log_w_state = _log_weights(energy_fn, proposal, state)
    if bool((log_w_state == -float("inf")).all()):
        raise ValueError("the initial states have zero density under the model or the proposal")
    return state, log_w_state


def _imh_recursion(log_u: np.ndarray, lw_cand: np.ndarray, lw_state: np.ndarray, return_chain):
    """The accept/reject recursion of :func:`independent_metropolis`, on log weights alone.

    It runs on NumPy arrays (on the host) and remembers which candidate each chain holds (-1 for
    its initial state), so that the states are gathered once at the end. ``log_u``, ``lw_cand``:
    shape (n_steps, n_chains); ``lw_state``: shape (n_chains,). Returns the index
    held by each chain at the end, the indices held after every step (or None unless
    ``return_chain``) and the number of accepted moves of each chain."""
    n_steps, n_chains = lw_cand.shape
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
    return held, history, n_accepted


def independent_metropolis(
    energy_fn: Callable,
    proposal,
    *,
    n_steps: int,
    n_chains: int = 1,
    x0: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
    return_chain: bool = False,
):
    r"""Metropolis–Hastings with an independent proposal :math:`q` (paper Section 6).

    At each step a candidate :math:`y'\sim q` replaces the state :math:`y` with probability

    .. math::

        \alpha = \min\left\{1, \frac{\phi(y')\,q(y)}{\phi(y)\,q(y')}\right\}
        = \min\left\{1, \frac{w(y')}{w(y)}\right\},
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
        ``"acceptance_rate"`` (float), ``"acceptance_per_chain"`` (shape ``(n_chains,)``) and, if
        asked, ``"chain"``.
    """
    _check_proposal(proposal)
    n_steps = check_int(n_steps, "n_steps")
    n_chains = check_int(n_chains, "n_chains")
    check_generator(generator)
    candidates = proposal.sample(n_steps * n_chains, generator=generator)
    check_generator(generator, device=candidates.device)
    d, device = candidates.shape[1], candidates.device
    log_w_cand = _log_weights(energy_fn, proposal, candidates).reshape(n_steps, n_chains)
    candidates = candidates.reshape(n_steps, n_chains, d)
    state, log_w_state = _imh_start(energy_fn, proposal, x0, n_chains, d, generator)
    u = torch.rand(n_steps, n_chains, generator=generator, dtype=log_w_cand.dtype, device=device)
    held, history, n_accepted = _imh_recursion(
        torch.log(u).cpu().numpy(),
        log_w_cand.cpu().numpy(),
        log_w_state.cpu().numpy().copy(),
        return_chain,
    )
    pool = torch.cat([state[None], candidates])  # (n_steps + 1, n_chains, d); index 0 = start
    chains = torch.arange(n_chains, device=device)
    final = pool[torch.from_numpy(held).to(device) + 1, chains]
    rate = torch.from_numpy(n_accepted).to(device=device, dtype=log_w_cand.dtype) / n_steps
    info = {"acceptance_rate": float(rate.mean()), "acceptance_per_chain": rate}
    if history is not None:
        info["chain"] = pool[torch.from_numpy(history).to(device) + 1, chains[None, :]]
    return final, info


def importance_resampling(
    energy_fn: Callable,
    proposal,
    *,
    n_samples: int,
    n_proposals: int | None = None,
    generator: torch.Generator | None = None,
):
    r"""Importance sampling plus multinomial resampling (paper Section 6, Eq. 19–20).

    Draw :math:`z_1,\dots,z_K \sim q`, weight them by :math:`w_k = \phi(z_k)/q(z_k)`, and resample
    ``n_samples`` points with replacement with probabilities :math:`\bar w_k = w_k/\sum_j w_j`. The
    result is approximately distributed as :math:`p`; the approximation improves as :math:`K` grows
    and degrades as the weights become uneven (small ESS), since then a few :math:`z_k` are repeated
    many times.

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
        :math:`\log\hat Z` from the same draws) and ``"unique_fraction"`` (distinct points /
        ``n_samples``).
    """
    _check_proposal(proposal)
    n_samples = check_int(n_samples, "n_samples")
    n_proposals = n_samples if n_proposals is None else check_int(n_proposals, "n_proposals")
    check_generator(generator)
    z = proposal.sample(n_proposals, generator=generator)
    check_generator(generator, device=z.device)
    log_w = _log_weights(energy_fn, proposal, z)
    if bool((log_w == -float("inf")).all()):
        raise ValueError(
            "every proposal draw has zero weight: the proposal misses the model's support"
        )
    probs = torch.softmax(log_w, dim=0)
    idx = torch.multinomial(probs, n_samples, replacement=True, generator=generator)
    info = {
        "acceptance_rate": 1.0,
        "ess": float(ess(log_w)),
        "log_partition": float(log_partition_is(log_w, torch.zeros_like(log_w))),
        "unique_fraction": float(torch.unique(idx).numel() / n_samples),
    }
    return z[idx], info
