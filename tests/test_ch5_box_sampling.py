"""Samplers restricted to a box (``bounds=``): reflection at the walls, invariance of the truncated
target.

The target is a standard Gaussian truncated to a box, whose moments are known in closed form.
Independent chains start from exact draws of the truncated target; a kernel that leaves it invariant
keeps the moments of the final states within Z_TOL standard errors (over chains) of the exact ones,
while the same kernel without ``bounds`` lets the chains leave the box.
"""

import math

import pytest
import torch

from conftest import Z_TOL
from ebmlib import ReplayBuffer
from ebmlib.samplers import reflect_into_box, sample, step

BOX = [(0.5, 3.0), (-1.0, 0.2)]  # cuts the standard Gaussian hard on one side of each axis
STEPS = {"rw_metropolis": 0.6, "mala": 0.1, "hmc": 0.25}


def _half_square(x):
    return 0.5 * (x**2).sum(1)


def _phi(t):
    return math.exp(-0.5 * t * t) / math.sqrt(2 * math.pi)


def _cdf(t):
    return 0.5 * (1 + math.erf(t / math.sqrt(2)))


def _truncated_normal_moments(low, high):
    """Exact E[x] and E[x^2] of N(0, 1) truncated to [low, high]."""
    mass = _cdf(high) - _cdf(low)
    mean = (_phi(low) - _phi(high)) / mass
    second = 1 + (low * _phi(low) - high * _phi(high)) / mass
    return mean, second


def _truncated_draws(n, gen):
    """Exact draws of the box-truncated standard Gaussian by inverting its CDF, shape (n, 2)."""
    cols = []
    for low, high in BOX:
        u = torch.rand(n, generator=gen, dtype=torch.float64)
        u = _cdf(low) + u * (_cdf(high) - _cdf(low))
        cols.append(torch.special.ndtri(u))
    return torch.stack(cols, dim=1)


def _assert_truncated_moments(x, label):
    n = x.shape[0]
    for j, (low, high) in enumerate(BOX):
        mean, second = _truncated_normal_moments(low, high)
        xj = x[:, j]
        se_mean = float(xj.std()) / math.sqrt(n)
        se_second = float((xj**2).std()) / math.sqrt(n)
        assert abs(float(xj.mean()) - mean) < Z_TOL * se_mean, f"{label}: mean of axis {j}"
        assert abs(float((xj**2).mean()) - second) < Z_TOL * se_second, (
            f"{label}: second moment of axis {j}"
        )


def test_reflect_into_box_exact_values():
    x = torch.tensor([[1.2, 0.5], [-0.3, 2.5], [1.7, -2.2], [0.25, 0.75]], dtype=torch.float64)
    out = reflect_into_box(x, [(0.0, 1.0), (0.0, 1.0)])
    expected = torch.tensor([[0.8, 0.5], [0.3, 0.5], [0.3, 0.2], [0.25, 0.75]], dtype=torch.float64)
    torch.testing.assert_close(out, expected)


def test_truncated_moments_oracle_matches_draws(gen):
    # the oracle and the exact draws agree (checks the helpers themselves)
    _assert_truncated_moments(_truncated_draws(40000, gen), "exact draws")


@pytest.mark.parametrize("method", sorted(STEPS))
def test_bounded_kernels_leave_truncated_target_invariant(method, gen):
    x0 = _truncated_draws(20000, gen)
    x, info = sample(
        _half_square,
        x0,
        method=method,
        n_steps=20,
        step_size=STEPS[method],
        generator=gen,
        n_leapfrog=5,
        bounds=BOX,
    )
    assert 0.1 < info["acceptance_rate"] < 1.0, f"{method}: acceptance {info['acceptance_rate']}"
    low = torch.tensor([b[0] for b in BOX], dtype=x.dtype)
    high = torch.tensor([b[1] for b in BOX], dtype=x.dtype)
    assert bool(((x >= low) & (x <= high)).all()), f"{method}: a chain left the box"
    _assert_truncated_moments(x, method)


@pytest.mark.parametrize("method", sorted(STEPS) + ["langevin"])
def test_without_bounds_chains_leave_the_box(method, gen):
    # the power of the test above: the same kernels without bounds do not stay in the box
    x0 = _truncated_draws(2000, gen)
    step_size = STEPS.get(method, 0.05)
    x, _ = sample(
        _half_square,
        x0,
        method=method,
        n_steps=20,
        step_size=step_size,
        generator=gen,
        n_leapfrog=5,
    )
    low = torch.tensor([b[0] for b in BOX], dtype=x.dtype)
    high = torch.tensor([b[1] for b in BOX], dtype=x.dtype)
    outside = (~((x >= low) & (x <= high)).all(1)).double().mean()
    assert outside > 0.2, f"{method}: only {float(outside):.3f} of the chains left the box"


def test_reflected_langevin_leaves_uniform_on_box_invariant(gen):
    # E = 0: ULA is the Gaussian random walk, and reflected it is a symmetric kernel, so the uniform
    # density on the box is exactly invariant (no step-size bias), even with steps as large as the
    # box.
    box = [(-1.0, 2.0), (0.0, 0.5)]
    n = 40000
    x0 = torch.stack(
        [torch.rand(n, generator=gen, dtype=torch.float64) * (hi - lo) + lo for lo, hi in box], 1
    )
    x, _ = sample(
        lambda y: torch.zeros(y.shape[0], dtype=y.dtype) + 0.0 * y.sum(1),
        x0,
        method="langevin",
        n_steps=30,
        step_size=0.05,
        generator=gen,
        bounds=box,
    )
    for j, (lo, hi) in enumerate(box):
        width = hi - lo
        xj = x[:, j]
        assert float(xj.min()) >= lo and float(xj.max()) <= hi
        se_mean = width / math.sqrt(12 * n)
        assert abs(float(xj.mean()) - (lo + hi) / 2) < Z_TOL * se_mean, f"mean of axis {j}"
        # the variance of a uniform is width^2 / 12; the SE of the sample variance is width^2 /
        # sqrt(180 n)
        assert abs(float(xj.var()) - width**2 / 12) < Z_TOL * width**2 / math.sqrt(180 * n), (
            f"variance of axis {j}"
        )


def test_reflected_langevin_on_truncated_gaussian_small_step(gen):
    # ULA is biased by O(step) (plus a boundary error of the reflected scheme); at a small step that
    # bias is below the Monte-Carlo error of 20000 chains, and all chains stay in the box
    x0 = _truncated_draws(20000, gen)
    x, _ = sample(
        _half_square, x0, method="langevin", n_steps=50, step_size=1e-3, generator=gen, bounds=BOX
    )
    _assert_truncated_moments(x, "reflected ULA")


def test_large_box_changes_nothing(gen):
    # a box that no chain reaches leaves the chains exactly as without it
    x0 = torch.randn(50, 2, generator=gen, dtype=torch.float64)
    for method in ("rw_metropolis", "langevin", "mala", "hmc"):
        a, _ = sample(
            _half_square,
            x0,
            method=method,
            n_steps=5,
            step_size=0.1,
            generator=torch.Generator().manual_seed(7),
        )
        b, _ = sample(
            _half_square,
            x0,
            method=method,
            n_steps=5,
            step_size=0.1,
            generator=torch.Generator().manual_seed(7),
            bounds=[(-100.0, 100.0)] * 2,
        )
        torch.testing.assert_close(a, b, msg=method)


def test_step_and_replay_buffer_pass_bounds(gen):
    from ebmlib.samplers import init_state

    state = init_state(_half_square, _truncated_draws(500, gen))
    for _ in range(10):
        state, _ = step(
            _half_square, state, method="langevin", step_size=0.5, generator=gen, bounds=BOX
        )
    assert bool((state.x[:, 0] >= 0.5).all() and (state.x[:, 1] <= 0.2).all())
    buffer = ReplayBuffer(_truncated_draws(300, gen))
    x, _ = buffer.negatives(
        _half_square, 100, method="langevin", n_steps=10, step_size=0.5, generator=gen, bounds=BOX
    )
    assert bool(
        (x[:, 0] >= 0.5).all() and (x[:, 1] <= 0.2).all() and (buffer.states[:, 0] >= 0.5).all()
    )


def test_bad_bounds_raise(gen):
    x0 = torch.zeros(4, 2, dtype=torch.float64) + 0.1
    with pytest.raises(ValueError, match="bounds"):
        sample(_half_square, x0, method="langevin", n_steps=1, step_size=0.1, bounds=[(0.0, 1.0)])
    with pytest.raises(ValueError, match="bounds"):
        sample(
            _half_square,
            x0,
            method="langevin",
            n_steps=1,
            step_size=0.1,
            bounds=[(1.0, 0.0), (0.0, 1.0)],
        )
    with pytest.raises(ValueError, match="x0 must lie inside bounds"):
        sample(
            _half_square, x0 + 5, method="mala", n_steps=1, step_size=0.1, bounds=[(0.0, 1.0)] * 2
        )
    with pytest.raises(TypeError, match="bounds"):
        reflect_into_box(x0, 3.0)
