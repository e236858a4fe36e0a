"""Parallel tempering (ebmlib.tempering) against exact answers.

The main check is an unequal mixture of well-separated Gaussians, all chains started in the lightest
mode: the fraction of beta = 1 states in each mode must match the known weight within Z_TOL standard
errors, computed from the independent chains (the final states of different chains are iid draws).
The same start under plain ``sample`` stays where it began, so the check can fail.
"""

import math

import pytest
import torch

from conftest import Z_TOL
from ebmlib import geometric_betas, parallel_tempering
from ebmlib.samplers import sample


@pytest.fixture(autouse=True)
def _flush_denormals():
    # far-away mixture components underflow to denormal numbers, which are slow on CPUs
    torch.set_flush_denormal(True)
    yield
    torch.set_flush_denormal(False)


def _mixture_energy(means, weights, sd):
    """E(x) = -log sum_j w_j N(x; mu_j, sd^2 I), up to a constant; means (J, d)."""
    means = torch.as_tensor(means, dtype=torch.float64)
    log_w = torch.log(torch.as_tensor(weights, dtype=torch.float64))

    def energy(x):
        sq = ((x[:, None, :] - means[None]) ** 2).sum(-1)
        return -torch.logsumexp(log_w - sq / (2 * sd**2), dim=1)

    return energy


def _assert_weights(x, means, weights, label):
    """Fraction of chains nearest each mode within Z_TOL standard errors of the known weights."""
    means = torch.as_tensor(means, dtype=torch.float64)
    nearest = torch.cdist(x, means).argmin(1)
    n = x.shape[0]
    for j, w in enumerate(weights):
        frac = float((nearest == j).double().mean())
        se = math.sqrt(w * (1 - w) / n)
        assert abs(frac - w) < Z_TOL * se, (
            f"{label}: mode {j} holds {frac:.3f} of the chains, expected {w} +- {Z_TOL * se:.3f}"
        )


# Two modes 8 apart with sd 0.5: the barrier is about 32 nats, so a single chain never crosses.
MEANS_1D, WEIGHTS_1D, SD_1D = [[-4.0], [4.0]], [0.2, 0.8], 0.5


@pytest.mark.parametrize(
    "method, step, n_steps", [("mala", 0.15, 300), ("rw_metropolis", 0.75, 300)]
)
def test_mode_weights_of_an_unequal_mixture(method, step, n_steps):
    energy = _mixture_energy(MEANS_1D, WEIGHTS_1D, SD_1D)
    gen = torch.Generator().manual_seed(0)
    # 1000 chains: a share off by 0.1 (chains that have not crossed) is 8 SE (~2 Z_TOL); none
    # crossing is 60
    x0 = torch.full((1000, 1), -4.0, dtype=torch.float64)  # every chain in the light mode
    betas = geometric_betas(6, 0.03)  # hottest barrier: 0.03 * 32 ~ 1 nat
    x, info = parallel_tempering(
        energy, x0, betas=betas, n_steps=n_steps, step_size=step, method=method, generator=gen
    )
    assert x.shape == x0.shape and x.dtype == x0.dtype
    _assert_weights(x, MEANS_1D, WEIGHTS_1D, method)
    assert info["swap_acceptance"].shape == (5,) and bool((info["swap_acceptance"] > 0.2).all())
    per_temperature = info["acceptance_per_temperature"]
    assert per_temperature.shape == (6,) and float(per_temperature[0]) == info["acceptance_rate"]
    assert 0.2 < info["acceptance_rate"] <= 1.0 and bool(
        ((per_temperature > 0) & (per_temperature <= 1)).all()
    )


def test_a_single_chain_stalls_where_tempering_mixes():
    energy = _mixture_energy(MEANS_1D, WEIGHTS_1D, SD_1D)
    gen = torch.Generator().manual_seed(0)
    x0 = torch.full((200, 1), -4.0, dtype=torch.float64)
    x, _ = sample(
        energy, x0, method="mala", n_steps=1800, step_size=0.15, generator=gen
    )  # 6 x 300 gradients
    frac_heavy = float((x[:, 0] > 0).double().mean())
    assert frac_heavy < 0.01, f"plain MALA crossed a 32-nat barrier: {frac_heavy}"


def test_three_modes_in_two_dimensions_with_hmc():
    means = [[0.0, 0.0], [6.0, 0.0], [0.0, 6.0]]
    weights = [0.2, 0.3, 0.5]
    energy = _mixture_energy(means, weights, 0.6)
    gen = torch.Generator().manual_seed(1)
    x0 = torch.zeros(800, 2, dtype=torch.float64)  # every chain in the lightest mode
    x, info = parallel_tempering(
        energy,
        x0,
        betas=geometric_betas(6, 0.04),
        n_steps=80,
        step_size=0.3,
        method="hmc",
        n_leapfrog=5,
        generator=gen,
    )
    _assert_weights(x, means, weights, "hmc")
    assert info["n_grad_evals"] == 6 * 80 * 5


def test_every_temperature_targets_its_tempered_gaussian():
    # E = x^2 / 2 tempered by beta is N(0, 1 / beta): the exchanges must leave every replica's
    # variance exact
    betas = torch.tensor([1.0, 0.5, 0.2, 0.1], dtype=torch.float64)
    gen = torch.Generator().manual_seed(2)
    n = 4000
    _, info = parallel_tempering(
        lambda x: 0.5 * (x**2).sum(1),
        torch.zeros(n, 1, dtype=torch.float64),
        betas=betas,
        n_steps=150,
        step_size=0.5,
        generator=gen,
    )
    var = info["x_all"].var(1)[:, 0]
    se = (1 / betas) * math.sqrt(2 / n)
    assert bool(((var - 1 / betas).abs() < Z_TOL * se).all()), (
        f"replica variances {var} vs {1 / betas}"
    )
    assert bool((info["swap_acceptance"] > 0.3).all())


def test_one_temperature_is_the_plain_sampler():
    # with betas = [1] there are no exchanges, so the same random stream gives the same states as
    # sample()
    energy = _mixture_energy(MEANS_1D, WEIGHTS_1D, SD_1D)
    x0 = torch.linspace(-5, 5, 50, dtype=torch.float64)[:, None]
    for method in ("rw_metropolis", "mala", "hmc"):
        x_pt, info = parallel_tempering(
            energy,
            x0,
            betas=[1.0],
            n_steps=20,
            step_size=0.2,
            method=method,
            n_leapfrog=3,
            generator=torch.Generator().manual_seed(3),
        )
        x_s, info_s = sample(
            energy,
            x0,
            method=method,
            n_steps=20,
            step_size=0.2,
            n_leapfrog=3,
            generator=torch.Generator().manual_seed(3),
        )
        assert torch.equal(x_pt, x_s), method
        assert info["acceptance_rate"] == pytest.approx(info_s["acceptance_rate"])
        assert info["swap_acceptance"].shape == (0,)


def test_one_stacked_energy_call_per_step_and_none_for_exchanges():
    calls = []

    def energy(x):
        calls.append(x.shape[0])
        return 0.5 * (x**2).sum(1)

    _, info = parallel_tempering(
        energy,
        torch.zeros(7, 2, dtype=torch.float64),
        betas=[1.0, 0.6, 0.3],
        n_steps=10,
        step_size=0.3,
        generator=torch.Generator().manual_seed(0),
    )
    assert calls == [21] * 11  # the first evaluation at x0, then one per step; exchanges reuse them
    assert info["n_grad_evals"] == 3 * 10


def test_step_sizes_scale_with_temperature_or_are_given():
    energy = lambda x: 0.5 * (x**2).sum(1)  # noqa: E731
    x0 = torch.zeros(5, 1, dtype=torch.float64)
    betas = [1.0, 0.25]
    for method, expected in [
        ("mala", [0.1, 0.4]),
        ("rw_metropolis", [0.1, 0.2]),
        ("hmc", [0.1, 0.2]),
    ]:
        _, info = parallel_tempering(
            energy, x0, betas=betas, n_steps=2, step_size=0.1, method=method
        )
        assert torch.allclose(info["step_sizes"], torch.tensor(expected, dtype=torch.float64)), (
            method
        )
    _, info = parallel_tempering(energy, x0, betas=betas, n_steps=2, step_size=[0.3, 0.05])
    assert info["step_sizes"].tolist() == [0.3, 0.05]


def test_geometric_betas():
    b = geometric_betas(5, 0.0625)
    assert torch.allclose(b, torch.tensor([1.0, 0.5, 0.25, 0.125, 0.0625], dtype=torch.float64))
    with pytest.raises(ValueError, match="beta_min"):
        geometric_betas(3, 1.5)
    with pytest.raises(ValueError, match="n_temperatures"):
        geometric_betas(1, 0.5)


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"betas": [[1.0, 0.5]]}, ValueError, "betas must be a non-empty 1-D"),
        ({"betas": []}, ValueError, "betas must be a non-empty 1-D"),
        ({"betas": [0.9, 0.5]}, ValueError, r"betas\[0\] must be 1"),
        ({"betas": [1.0, 0.0]}, ValueError, r"betas must all lie in \(0, 1\]"),
        ({"betas": [1.0, 1.5]}, ValueError, r"betas must all lie in \(0, 1\]"),
        ({"betas": [1.0, float("nan")]}, ValueError, r"betas must all lie in \(0, 1\]"),
        ({"betas": [1.0, 0.3, 0.5]}, ValueError, "betas must be strictly decreasing"),
        ({"betas": "1"}, TypeError, "betas must be a 1-D sequence"),
        ({"step_size": -0.1}, ValueError, "step_size"),
        ({"step_size": [0.1, 0.2, 0.3]}, ValueError, "one step per temperature"),
        ({"step_size": [0.1, -0.2]}, ValueError, r"step_size\[1\]"),
        ({"step_size": "big"}, TypeError, "step_size"),
        ({"method": "langevin"}, ValueError, "method must be one of"),
        ({"method": "gibbs"}, ValueError, "method must be one of"),
        ({"n_steps": 0}, ValueError, "n_steps"),
        ({"swap_every": 1.5}, TypeError, "swap_every"),
        ({"generator": 3}, TypeError, "generator"),
    ],
)
def test_bad_input_names_the_argument(kwargs, error, match):
    args = {"betas": [1.0, 0.5], "n_steps": 2, "step_size": 0.1} | kwargs
    with pytest.raises(error, match=match):
        parallel_tempering(lambda x: (x**2).sum(1), torch.zeros(3, 1, dtype=torch.float64), **args)


@pytest.mark.parametrize(
    "x0, match",
    [
        (torch.zeros(3), "x0 must have shape"),
        (torch.zeros(0, 2), "x0 is an empty batch"),
        (torch.tensor([[float("nan")]]), "x0 contains NaN"),
    ],
)
def test_bad_x0(x0, match):
    with pytest.raises(ValueError, match=match):
        parallel_tempering(lambda x: (x**2).sum(1), x0, betas=[1.0, 0.5], n_steps=2, step_size=0.1)


def test_untried_exchanges_report_nan():
    _, info = parallel_tempering(
        lambda x: (x**2).sum(1),
        torch.zeros(3, 1, dtype=torch.float64),
        betas=[1.0, 0.5, 0.25],
        n_steps=3,
        step_size=0.1,
        swap_every=5,
    )
    assert bool(torch.isnan(info["swap_acceptance"]).all())
