r"""Exact oracles: :math:`\log Z`, model expectations and the exact NLL for small models.

These are the ground truth against which every estimator in the book is
checked. Two routes are provided:

* **Quadrature** on a uniform grid in one or two dimensions (trapezoid
  rule). For a smooth density that has decayed to (numerically) zero at the
  edges of the box, the trapezoid rule converges faster than any power of the
  grid spacing, so a few thousand nodes give :math:`\log Z` to near machine
  precision. The sum is taken in log space with :func:`torch.logsumexp`, so
  it is stable and differentiable in :math:`\theta`: autograd of
  :func:`log_partition_quadrature` *is* the exact :math:`\nabla_\theta\log Z`
  (up to quadrature error).
* **Enumeration** of all :math:`2^n` binary states, in chunks to bound memory,
  refusing sizes that cannot finish.

A box that cuts off visible probability mass is an error, not a silent bias:
:func:`log_partition_quadrature` raises if the density at the edge of the box
is not negligible relative to its peak.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence

import torch

from .validation import (
    check_batch,
    check_bounds,
    check_energy_output,
    check_generator,
    check_int,
    check_positive,
    check_tensor,
)

__all__ = [
    "quadrature_grid",
    "sample_quadrature",
    "log_partition_quadrature",
    "expectation_quadrature",
    "binary_states",
    "log_partition_enumeration",
    "MAX_ENUMERATION_BITS",
    "exact_nll",
    "exact_nll_quadrature",
    "exact_nll_gradient",
    "observed_information",
]

#: Largest number of binary units :func:`log_partition_enumeration` accepts (2^26 ≈ 6.7e7 states).
MAX_ENUMERATION_BITS = 26

_DEFAULT_POINTS = {1: 4001, 2: 301}


def _n_points_per_axis(n_points, d: int) -> list[int]:
    if n_points is None:
        return [_DEFAULT_POINTS[d]] * d
    if not isinstance(n_points, (list, tuple)):
        return [check_int(n_points, "n_points", minimum=3)] * d
    n_points = list(n_points)
    if len(n_points) != d:
        raise ValueError(f"n_points must be an int or have {d} entries, got {len(n_points)}")
    return [check_int(m, "n_points", minimum=3) for m in n_points]


def quadrature_grid(bounds, n_points=None, *, dtype: torch.dtype = torch.float64):
    r"""Nodes and log trapezoid weights on a uniform grid over a 1-D or 2-D box.

    Parameters
    ----------
    bounds : (low, high) or sequence of (low, high)
        The box, one pair per dimension (``d`` is 1 or 2).
    n_points : int or sequence of int, optional
        Nodes per axis (default 4001 in 1-D, 301 per axis in 2-D).
    dtype : torch.dtype

    Returns
    -------
    points : torch.Tensor, shape (m, d)
        Grid nodes; in 2-D the first coordinate varies slowest.
    log_weights : torch.Tensor, shape (m,)
        :math:`\log w_i` so that :math:`\int f \approx \sum_i w_i f(x_i)`.
    axes : list of torch.Tensor
        The 1-D node vectors, for reshaping results to ``(n_1, n_2)`` for plots.
    """
    box = check_bounds(bounds)
    d = len(box)
    if d > 2:
        raise ValueError(
            f"bounds must describe a 1-D or 2-D box for quadrature, got {d} dimensions"
        )
    sizes = _n_points_per_axis(n_points, d)
    axes, log_ws = [], []
    for (low, high), m in zip(box, sizes, strict=True):
        nodes = torch.linspace(low, high, m, dtype=dtype)
        w = torch.full((m,), (high - low) / (m - 1), dtype=dtype)
        w[0] = w[-1] = w[0] / 2
        axes.append(nodes)
        log_ws.append(torch.log(w))
    if d == 1:
        return axes[0][:, None], log_ws[0], axes
    g1, g2 = torch.meshgrid(axes[0], axes[1], indexing="ij")
    points = torch.stack([g1.reshape(-1), g2.reshape(-1)], dim=1)
    log_w = (log_ws[0][:, None] + log_ws[1][None, :]).reshape(-1)
    return points, log_w, axes


def _energies_in_chunks(energy_fn, points: torch.Tensor, chunk_size: int) -> torch.Tensor:
    parts = [energy_fn(points[i : i + chunk_size]) for i in range(0, points.shape[0], chunk_size)]
    for part, start in zip(parts, range(0, points.shape[0], chunk_size), strict=True):
        check_energy_output(part, min(chunk_size, points.shape[0] - start))
    return torch.cat(parts)


def _grid_log_density(energy_fn, bounds, n_points, chunk_size, tail_tol, dtype):
    """Unnormalized log density plus log weights on the grid, with the tail check."""
    points, log_w, axes = quadrature_grid(bounds, n_points, dtype=dtype)
    energies = _energies_in_chunks(energy_fn, points, chunk_size).to(dtype)
    if not bool(torch.isfinite(energies).all()):
        raise ValueError("energy_fn returned NaN or infinite energies on the quadrature grid")
    log_phi = -energies
    if tail_tol is not None:
        sizes = [len(a) for a in axes]
        lp = log_phi.detach().reshape(sizes)
        edge = torch.cat(
            [lp[0].reshape(-1), lp[-1].reshape(-1)]
            + ([lp[:, 0], lp[:, -1]] if len(sizes) == 2 else [])
        )
        excess = float(edge.max() - lp.max())
        if excess > math.log(tail_tol):
            raise ValueError(
                "bounds too narrow: the density at the edge of the box is "
                f"exp({excess:.1f}) times its peak "
                f"(tail_tol={tail_tol:g}); widen bounds, or check that the energy is normalizable"
            )
    return points, log_phi, log_w


def log_partition_quadrature(
    energy_fn: Callable,
    bounds,
    n_points=None,
    *,
    chunk_size: int = 65536,
    tail_tol: float | None = 1e-12,
    dtype: torch.dtype = torch.float64,
) -> torch.Tensor:
    r"""Exact :math:`\log Z = \log\int e^{-E(x)}dx` by the trapezoid rule on a 1-D or 2-D box.

    .. math::

        \log Z \approx \operatorname{logsumexp}_i\bigl(\log w_i - E(x_i)\bigr).

    The result is differentiable: ``torch.autograd.grad`` of it with respect
    to the energy's parameters is :math:`\nabla_\theta \log Z = -\mathbb E_p[\nabla_\theta E]`.

    Parameters
    ----------
    energy_fn : callable
        Maps ``(m, d)`` to ``(m,)``.
    bounds : (low, high) or sequence of (low, high)
        The integration box.
    n_points : int or sequence of int, optional
        Nodes per axis.
    chunk_size : int
        Evaluate the energy on at most this many nodes at once.
    tail_tol : float or None
        Raise ``ValueError`` if :math:`e^{-E}` on the edge of the box exceeds
        ``tail_tol`` times its peak (mass would be cut off). ``None`` disables.
    dtype : torch.dtype
        Type of the grid (float64 by default).

    Returns
    -------
    torch.Tensor
        A scalar.
    """
    chunk_size = check_int(chunk_size, "chunk_size")
    if tail_tol is not None:
        tail_tol = check_positive(tail_tol, "tail_tol")
    _, log_phi, log_w = _grid_log_density(energy_fn, bounds, n_points, chunk_size, tail_tol, dtype)
    return torch.logsumexp(log_phi + log_w, dim=0)


def expectation_quadrature(
    fn: Callable,
    energy_fn: Callable,
    bounds,
    n_points=None,
    *,
    chunk_size: int = 65536,
    tail_tol: float | None = 1e-12,
    dtype: torch.dtype = torch.float64,
) -> torch.Tensor:
    r"""Model expectation :math:`\mathbb E_p[f(x)] = \int f(x)\, e^{-E(x)} dx / Z` by quadrature.

    Parameters
    ----------
    fn : callable
        Maps nodes ``(m, d)`` to ``(m,)`` or ``(m, k)``.
    energy_fn, bounds, n_points, chunk_size, tail_tol, dtype
        As in :func:`log_partition_quadrature`.

    Returns
    -------
    torch.Tensor
        Shape ``()`` or ``(k,)``.
    """
    chunk_size = check_int(chunk_size, "chunk_size")
    if tail_tol is not None:
        tail_tol = check_positive(tail_tol, "tail_tol")
    points, log_phi, log_w = _grid_log_density(
        energy_fn, bounds, n_points, chunk_size, tail_tol, dtype
    )
    probs = torch.softmax(log_phi + log_w, dim=0)  # normalized quadrature weights of p
    values = fn(points)
    if not isinstance(values, torch.Tensor) or values.shape[0] != points.shape[0]:
        raise ValueError(f"fn must map the {points.shape[0]} nodes to a tensor with that many rows")
    values = values.to(dtype)
    return probs @ values if values.ndim == 1 else probs @ values.reshape(values.shape[0], -1)


def sample_quadrature(
    energy_fn: Callable,
    bounds,
    n: int,
    *,
    n_points: int = 20001,
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float64,
) -> torch.Tensor:
    r"""Independent draws from a 1-D density :math:`e^{-E(x)}/Z` by inverting its CDF on a fine
    grid.

    The density is evaluated at ``n_points`` equally spaced nodes of ``bounds``; each cell between
    two nodes gets the trapezoid mass :math:`\tfrac h2(p_i + p_{i+1})`, a cell is drawn with that
    probability and the point is placed within it with density linear between :math:`p_i` and
    :math:`p_{i+1}`. The draws are exact for the piecewise-linear interpolant of the density, whose
    error is :math:`O(h^2)`; a test compares them with the exact CDF.

    Parameters
    ----------
    energy_fn : callable
        Maps ``(m, 1)`` to ``(m,)``.
    bounds : (low, high)
        Interval holding all but a negligible part of the mass (checked: the density at both ends
        must be below ``1e-12`` of its maximum).
    n : int
        Number of draws.
    n_points : int
        Grid nodes.
    generator : torch.Generator, optional

    Returns
    -------
    torch.Tensor, shape (n, 1)
    """
    n = check_int(n, "n")
    n_points = check_int(n_points, "n_points", minimum=3)
    check_generator(generator)
    ((low, high),) = check_bounds([bounds] if not isinstance(bounds[0], (tuple, list)) else bounds)
    nodes = torch.linspace(low, high, n_points, dtype=dtype)
    with torch.no_grad():
        log_p = -check_energy_output(energy_fn(nodes[:, None]), n_points).to(dtype)
    if not bool(torch.isfinite(log_p).all()):
        raise ValueError("energy_fn returned NaN or infinite energies on the grid")
    log_p = log_p - log_p.max()
    if float(log_p[0]) > math.log(1e-12) or float(log_p[-1]) > math.log(1e-12):
        raise ValueError(
            f"bounds {bounds} cut off mass: widen them so that the density is negligible "
            "at both ends"
        )
    p = log_p.exp()
    h = (high - low) / (n_points - 1)
    masses = 0.5 * (p[:-1] + p[1:])
    cell = torch.multinomial(masses, n, replacement=True, generator=generator)
    u = torch.rand(n, generator=generator, dtype=dtype)
    a, b = p[cell], p[cell + 1]
    # invert the CDF of the density a + (b - a) t on [0, 1]:
    #   (a t + (b - a) t^2 / 2) / ((a + b) / 2) = u
    slope = b - a
    disc = torch.sqrt(a * a + slope * u * (a + b))
    t = torch.where(
        slope.abs() > 1e-12 * (a + b), (disc - a) / torch.where(slope == 0, 1.0, slope), u
    )
    return (nodes[cell] + h * t.clamp(0.0, 1.0))[:, None]


def binary_states(
    n_bits: int,
    start: int = 0,
    stop: int | None = None,
    *,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    r"""The binary vectors with indices ``start, ..., stop-1`` of :math:`\{0,1\}^{n}`.

    Row ``i`` holds the bits of the integer ``i``, least significant first. ``device`` defaults
    to PyTorch's default device.

    Returns
    -------
    torch.Tensor, shape (stop - start, n_bits)
    """
    n_bits = check_int(n_bits, "n_bits", maximum=62)
    total = 2**n_bits
    stop = total if stop is None else stop
    if not 0 <= start <= stop <= total:
        raise ValueError(
            f"need 0 <= start <= stop <= 2**n_bits={total}, got start={start}, stop={stop}"
        )
    idx = torch.arange(start, stop, dtype=torch.int64, device=device)
    bits = torch.arange(n_bits, dtype=torch.int64, device=device)
    return ((idx[:, None] >> bits) & 1).to(dtype)


def _state_chunks(n_bits: int, chunk_size: int, dtype, device) -> Iterator[torch.Tensor]:
    total = 2**n_bits
    for start in range(0, total, chunk_size):
        stop = min(start + chunk_size, total)
        yield binary_states(n_bits, start, stop, dtype=dtype, device=device)


def log_partition_enumeration(
    energy_fn: Callable,
    n_bits: int,
    *,
    chunk_size: int = 2**16,
    max_bits: int = MAX_ENUMERATION_BITS,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    r"""Exact :math:`\log Z = \log\sum_{x\in\{0,1\}^n} e^{-E(x)}` by enumerating every state.

    The states are visited in chunks of ``chunk_size`` so that memory stays
    bounded; partial sums are combined with :func:`torch.logsumexp`. The
    result is differentiable in the energy's parameters.

    Parameters
    ----------
    energy_fn : callable
        Maps ``(m, n_bits)`` binary tensors to ``(m,)``.
    n_bits : int
        Number of binary variables.
    chunk_size : int
        States per energy evaluation.
    max_bits : int
        Refuse (``ValueError``) an enumeration over more than ``max_bits`` bits.
    dtype, device : optional
        Of the enumerated states (float64; PyTorch's default device): those of the energy's
        parameters.

    Returns
    -------
    torch.Tensor
        A scalar.
    """
    n_bits = check_int(n_bits, "n_bits")
    max_bits = check_int(max_bits, "max_bits")
    chunk_size = check_int(chunk_size, "chunk_size")
    if n_bits > max_bits:
        raise ValueError(
            f"n_bits={n_bits} is too large to enumerate: 2**{n_bits} states exceeds the limit "
            f"of 2**{max_bits}"
        )
    partial = []
    for states in _state_chunks(n_bits, chunk_size, dtype, device):
        e = check_energy_output(energy_fn(states), states.shape[0])
        partial.append(torch.logsumexp(-e.to(dtype), dim=0))
    log_z = torch.logsumexp(torch.stack(partial), dim=0)
    if not bool(torch.isfinite(log_z)):
        raise ValueError("energy_fn returned NaN or infinite energies during enumeration")
    return log_z


def exact_nll(energy_fn: Callable, x: torch.Tensor, log_z: torch.Tensor) -> torch.Tensor:
    r"""Average negative log-likelihood :math:`\frac1N\sum_n E(x_n) + \log Z` given the exact
    ``log_z``.

    Multiply by :math:`N` for the paper's :math:`J(\theta)` (Eq. 5).

    Parameters
    ----------
    energy_fn : callable
    x : torch.Tensor, shape (N, d)
    log_z : torch.Tensor
        Scalar :math:`\log Z(\theta)`, for example from :func:`log_partition_quadrature`.
    """
    check_batch(x, "x")
    check_tensor(log_z, "log_z")
    if log_z.numel() != 1:
        raise ValueError(f"log_z must be a scalar, got shape {tuple(log_z.shape)}")
    e = check_energy_output(energy_fn(x), x.shape[0])
    return e.mean() + log_z.reshape(())


def exact_nll_quadrature(
    energy_fn: Callable, x: torch.Tensor, bounds, n_points=None, **kwargs
) -> torch.Tensor:
    """Average NLL with :math:`\\log Z` from :func:`log_partition_quadrature`; differentiable."""
    check_batch(x, "x")
    log_z = log_partition_quadrature(energy_fn, bounds, n_points, **kwargs)
    return exact_nll(energy_fn, x, log_z)


def exact_nll_gradient(
    energy_fn: torch.nn.Module,
    x: torch.Tensor,
    bounds,
    n_points=None,
    params: Sequence[torch.Tensor] | None = None,
    **kwargs,
):
    r"""The average NLL and its exact gradient
    :math:`\frac1N\sum_n\nabla_\theta E(x_n) - \mathbb E_p[\nabla_\theta E]`.

    Parameters
    ----------
    energy_fn : torch.nn.Module
    x : torch.Tensor, shape (N, d)
    bounds, n_points, **kwargs
        As in :func:`log_partition_quadrature`.
    params : sequence of tensors, optional
        Parameters to differentiate (default: those of ``energy_fn`` that require grad).

    Returns
    -------
    nll : torch.Tensor
        Scalar (detached).
    grads : tuple of torch.Tensor
        One gradient per parameter, same shapes.
    """
    if params is None:
        params = [p for p in energy_fn.parameters() if p.requires_grad]
    params = list(params)
    if not params:
        raise ValueError("params is empty: energy_fn has no parameters that require grad")
    nll = exact_nll_quadrature(energy_fn, x, bounds, n_points, **kwargs)
    grads = torch.autograd.grad(nll, params)
    return nll.detach(), grads


def observed_information(
    energy_fn: torch.nn.Module, x: torch.Tensor, log_z: Callable[[], torch.Tensor] | None = None
):
    r"""Observed information: the Hessian of
    :math:`J(\theta) = \sum_n E(x_n\mid\theta) + N\log Z(\theta)`.

    At the MLE its inverse estimates the covariance of :math:`\hat\theta`, so the square roots of
    the diagonal of its inverse are the usual standard errors; chapter 9 compares estimators against
    it (the Cramér–Rao bound).

    Parameters
    ----------
    energy_fn : torch.nn.Module
        The model; every parameter that requires grad is included, flattened in
        :meth:`~torch.nn.Module.named_parameters` order.
    x : torch.Tensor, shape (N, d)
    log_z : callable, optional
        Returns :math:`\log Z(\theta)` (for example ``energy.log_partition``); ``None`` for a model
        that is already normalized (such as :class:`~ebmlib.energies.MixtureEnergy` with exact
        component normalizers).

    Returns
    -------
    hessian : torch.Tensor, shape (P, P)
    names : list of str
        One entry per flattened coordinate, ``"name[i]"``.
    """
    check_batch(x, "x")
    named = [(n, p) for n, p in energy_fn.named_parameters() if p.requires_grad]
    if not named:
        raise ValueError("energy_fn has no parameters that require grad")
    sizes = [p.numel() for _, p in named]
    objective_module = _TotalNLL(energy_fn, log_z)

    def objective(v):
        # functional_call swaps the parameters on the modules themselves, so log_z sees them too
        params = {
            f"model.{n}": chunk.reshape(p.shape)
            for (n, p), chunk in zip(named, torch.split(v, sizes), strict=True)
        }
        return torch.func.functional_call(objective_module, params, (x,))

    flat = torch.cat([p.detach().reshape(-1) for _, p in named])
    hessian = torch.autograd.functional.hessian(objective, flat)
    names = [f"{n}[{i}]" for (n, _), size in zip(named, sizes, strict=True) for i in range(size)]
    return hessian, names


class _TotalNLL(torch.nn.Module):
    """sum_n E(x_n) + N log Z, as a module so that torch.func.functional_call can swap its
    parameters."""

    def __init__(self, model: torch.nn.Module, log_z):
        super().__init__()
        self.model = model
        self.log_z = log_z

    def forward(self, x):
        total = self.model(x).sum()
        if self.log_z is not None:
            total = total + x.shape[0] * self.log_z()
        return total
