"""Local MCMC samplers (random-walk MH, ULA, MALA, HMC), mixing diagnostics and the replay buffer.

Statistical checks start independent chains from exact draws of the target, run the sampler, and
compare the moments of the final states with the exact ones within Z_TOL standard errors of the mean
over chains (see conftest.py): a kernel that does not leave the target invariant moves the moments
by many standard errors.
"""

import math

import numpy as np
import pytest
import torch

from conftest import Z_TOL
from ebmlib import GaussianEnergy, MixtureEnergy, MLPEnergy, ReplayBuffer, cd_loss
from ebmlib.diagnostics import (
    autocorrelation,
    effective_sample_size,
    integrated_autocorrelation_time,
)
from ebmlib.samplers import (
    KERNELS,
    METHODS,
    ChainState,
    init_state,
    leapfrog_steps,
    sample,
    step,
    tune_step_size,
    ula_gaussian_covariance,
    ula_gaussian_variance,
)

CORR = torch.tensor(
    [[1.0, 0.0], [0.95, math.sqrt(1 - 0.95**2)]], dtype=torch.float64
)  # Cholesky factor
STEPS = {"rw_metropolis": 0.5, "mala": 0.05, "hmc": 0.2, "langevin": 0.01}


def _gaussian_2d():
    return GaussianEnergy(
        [1.0, -1.0], CORR * torch.tensor([1.0, 2.0], dtype=torch.float64)[:, None]
    )


def _bimodal():
    comps = [GaussianEnergy(-1.5, 0.7), GaussianEnergy(1.5, 0.7)]
    return MixtureEnergy(comps, [c.log_partition for c in comps], weights=[0.3, 0.7])


# its exact moments: E x = sum w_j mu_j, Var x = sd^2 + w_1 w_2 (mu_2 - mu_1)^2
BIMODAL_MEAN = torch.tensor([0.3 * -1.5 + 0.7 * 1.5], dtype=torch.float64)
BIMODAL_VAR = torch.tensor([0.7**2 + 0.3 * 0.7 * 3.0**2], dtype=torch.float64)


def _assert_moments(x, mean, cov, label):
    n = x.shape[0]
    var = torch.diagonal(cov)
    se_mean = torch.sqrt(var / n)
    assert torch.all((x.mean(0) - mean).abs() < Z_TOL * se_mean), (
        f"{label}: mean {x.mean(0)} vs {mean}"
    )
    # for a Gaussian, Var(s^2) = 2 var^2 / n; for the mixture use the fourth moment estimated from
    # the draws
    fourth = ((x - mean) ** 4).mean(0)
    se_var = torch.sqrt((fourth - var**2).clamp_min(2 * var**2 / n) / n)
    assert torch.all((x.var(0) - var).abs() < Z_TOL * se_var), (
        f"{label}: variance {x.var(0)} vs {var}"
    )


@pytest.mark.parametrize("method", ["rw_metropolis", "mala", "hmc"])
def test_exact_samplers_leave_a_correlated_gaussian_invariant(method):
    target = _gaussian_2d()
    gen = torch.Generator().manual_seed(1)
    x0 = target.sample(20000, generator=gen).detach()
    x, info = sample(
        target, x0, method=method, n_steps=30, step_size=STEPS[method], generator=gen, n_leapfrog=5
    )
    with torch.no_grad():
        _assert_moments(x, target.mean, target.covariance(), method)
        corr = torch.corrcoef(x.T)[0, 1]
    assert abs(float(corr) - 0.95) < Z_TOL * (1 - 0.95**2) / math.sqrt(x.shape[0]), corr  # sd of r
    assert 0.2 < info["acceptance_rate"] < 1.0
    assert x.shape == x0.shape and x.dtype == x0.dtype


@pytest.mark.parametrize("method", ["rw_metropolis", "mala", "hmc"])
def test_exact_samplers_converge_on_a_bimodal_mixture(method):
    # Chains that have not mixed hold the wrong share w of the right-hand mode; an error dw moves
    # the mean by 3 dw (modes 3 apart) against SE sqrt(2.38 / n). 5000 chains put dw = 0.065 at 2
    # Z_TOL SE.
    target = _bimodal()
    gen = torch.Generator().manual_seed(2)
    x0 = torch.zeros(5000, 1, dtype=torch.float64)  # every chain starts between the modes
    x, info = sample(
        target,
        x0,
        method=method,
        n_steps=400,
        step_size={"rw_metropolis": 1.5, "mala": 0.3, "hmc": 0.3}[method],
        generator=gen,
    )
    _assert_moments(x, BIMODAL_MEAN, torch.diag(BIMODAL_VAR), method)


def test_ula_has_its_known_step_size_bias():
    # the bias, 0.111, is 10 SE of the variance at n = 20000 (> 2 Z_TOL): MALA's check below can see
    # it
    target = GaussianEnergy(0.0, 1.0)
    gen = torch.Generator().manual_seed(3)
    n, eps = 20000, 0.2
    x0 = target.sample(n, generator=gen).detach()
    x, info = sample(target, x0, method="langevin", n_steps=100, step_size=eps, generator=gen)
    v_ula = ula_gaussian_variance(1.0, eps)  # 1 / (1 - 0.1) = 1.111
    se = math.sqrt(2 * v_ula**2 / n)
    assert abs(float(x.var()) - v_ula) < Z_TOL * se
    assert float(x.var()) - 1.0 > 2 * Z_TOL * se, "ULA's bias must be visible at this step size"
    assert info["acceptance_rate"] == 1.0
    # MALA, with the same proposal, removes the bias
    xm, _ = sample(target, x0, method="mala", n_steps=100, step_size=eps, generator=gen)
    assert abs(float(xm.var()) - 1.0) < Z_TOL * math.sqrt(2 / n)


def test_ula_gaussian_variance_formula_and_its_domain():
    assert ula_gaussian_variance(2.0, 0.4) == pytest.approx(2.0 / 0.9)
    with pytest.raises(ValueError, match="diverges"):
        ula_gaussian_variance(1.0, 2.0)
    cov = torch.tensor([[2.0, 0.0], [0.0, 0.5]], dtype=torch.float64)
    v = ula_gaussian_covariance(cov, 0.4)
    assert torch.allclose(
        torch.diagonal(v),
        torch.tensor(
            [ula_gaussian_variance(2.0, 0.4), ula_gaussian_variance(0.5, 0.4)], dtype=torch.float64
        ),
    )
    with pytest.raises(ValueError, match="diverges"):
        ula_gaussian_covariance(cov, 1.0)


def test_ula_matches_its_predicted_covariance_on_a_correlated_gaussian():
    # In the eigenbasis of the covariance, ULA's prediction is diagonal, and the stiff direction
    # (variance 0.078) is inflated by 14%: 11 SE of a sample variance from 15000 chains (> 2 Z_TOL).
    # The stiff direction relaxes within a few steps from exact draws; the soft one's bias (0.2%) is
    # far below its SE whatever the length.
    target = _gaussian_2d()
    gen = torch.Generator().manual_seed(7)
    n, eps = 15000, 0.02
    with torch.no_grad():
        cov = target.covariance()
    predicted = ula_gaussian_covariance(cov, eps)
    x, _ = sample(
        target,
        target.sample(n, generator=gen).detach(),
        method="langevin",
        n_steps=50,
        step_size=eps,
        generator=gen,
    )
    _, vecs = torch.linalg.eigh(cov)
    pred = vecs.T @ predicted @ vecs
    assert torch.allclose(pred, torch.diag(torch.diagonal(pred)), atol=1e-12), (
        "same eigenvectors as cov"
    )
    lam = torch.diagonal(pred)
    emp = torch.cov((x @ vecs).T)
    # SE of a sample variance 2 lam^2 / n, of a sample covariance of independent coordinates lam_1
    # lam_2 / n
    se = torch.sqrt((torch.diag(lam**2) + torch.outer(lam, lam)) / n)
    assert torch.all((emp - pred).abs() < Z_TOL * se), (emp, pred)
    exact = torch.diagonal(vecs.T @ cov @ vecs)
    assert float(lam[0] - exact[0]) > 2 * Z_TOL * float(se[0, 0]), (
        "the stiff direction's bias must be visible"
    )


def test_hmc_and_mala_reuse_the_last_gradient():
    calls = []
    target = GaussianEnergy([0.0, 0.0], 1.0)

    def counted(x):
        calls.append(x.shape[0])
        return target(x)

    x0 = torch.zeros(7, 2, dtype=torch.float64)
    _, info = sample(counted, x0, method="hmc", n_steps=6, step_size=0.1, n_leapfrog=4)
    assert len(calls) == 1 + 6 * 4 and info["n_grad_evals"] == 24
    calls.clear()
    sample(counted, x0, method="mala", n_steps=6, step_size=0.1)
    assert len(calls) == 1 + 6
    calls.clear()
    _, info = sample(counted, x0, method="langevin", n_steps=6, step_size=0.1)
    assert len(calls) == 6 and info["n_grad_evals"] == 6


def test_continuing_from_a_state_reuses_it():
    target = GaussianEnergy([0.0, 0.0], 1.0)
    calls = []

    def counted(x):
        calls.append(x.shape[0])
        return target(x)

    x0 = torch.zeros(5, 2, dtype=torch.float64)
    gen = torch.Generator().manual_seed(4)
    _, info = sample(counted, x0, method="mala", n_steps=3, step_size=0.1, generator=gen)
    state = info["state"]
    assert isinstance(state, ChainState) and state.grad is not None
    calls.clear()
    x2, _ = sample(
        counted, state.x, method="mala", n_steps=1, step_size=0.1, generator=gen, state=state
    )
    assert len(calls) == 1, (
        "only the proposal is evaluated: the state's energy and gradient are reused"
    )
    # three steps and one more from the state are the same chains as four steps in one call
    x4, _ = sample(
        target,
        x0,
        method="mala",
        n_steps=4,
        step_size=0.1,
        generator=torch.Generator().manual_seed(4),
    )
    assert torch.equal(x2, x4)


def test_chain_state_is_immutable_and_its_cache_belongs_to_its_x():
    import dataclasses

    target = GaussianEnergy([0.0, 0.0], 1.0)
    x0 = torch.randn(4, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    state = init_state(target, x0)
    torch.testing.assert_close(state.energy, target(x0).detach())
    with pytest.raises(dataclasses.FrozenInstanceError):
        state.x = torch.zeros(4, 2, dtype=torch.float64)
    with pytest.raises(TypeError):
        ChainState(x0, target(x0))  # a cache is computed by the kernels, never passed in
    bare = ChainState(x0)
    assert bare.energy is None and bare.grad is None
    with pytest.raises(ValueError, match="state.x"):
        ChainState(torch.zeros(3))


def test_sample_refuses_a_state_that_disagrees_with_x0_and_reuses_an_equal_one():
    target = GaussianEnergy([0.0, 0.0], 1.0)
    calls = []

    def counted(x):
        calls.append(x.shape[0])
        return target(x)

    x0 = torch.zeros(5, 2, dtype=torch.float64)
    gen = torch.Generator().manual_seed(4)
    x, info = sample(counted, x0, method="mala", n_steps=2, step_size=0.1, generator=gen)
    with pytest.raises(ValueError, match="x0 and state.x disagree"):
        sample(counted, x + 1, method="mala", n_steps=1, step_size=0.1, state=info["state"])
    with pytest.raises(TypeError, match="ChainState"):
        sample(counted, x, method="mala", n_steps=1, step_size=0.1, state=x)
    calls.clear()
    sample(counted, x.clone(), method="mala", n_steps=1, step_size=0.1, state=info["state"])
    assert len(calls) == 1, "an equal copy of state.x reuses the state's cache"


@pytest.mark.parametrize("method", METHODS)
def test_public_kernels_check_their_arguments(method):
    target = GaussianEnergy([0.0, 0.0], 1.0)
    state = ChainState(torch.zeros(3, 2, dtype=torch.float64))
    kernel = KERNELS[method]
    with pytest.raises(TypeError, match="ChainState"):
        kernel(target, torch.zeros(3, 2, dtype=torch.float64), step_size=0.1)
    for bad in (0.0, -1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="step_size"):
            kernel(target, state, step_size=bad)
    with pytest.raises(TypeError, match="generator"):
        kernel(target, state, step_size=0.1, generator=1)
    with pytest.raises(ValueError, match="method"):
        step(target, state, method="gibbs", step_size=0.1)
    with pytest.raises(ValueError, match="step_size"):
        step(target, state, method=method, step_size=0.0)
    with pytest.raises(ValueError, match="n_leapfrog"):
        step(target, state, method="hmc", step_size=0.1, n_leapfrog=0)
    if method == "hmc":
        with pytest.raises(TypeError, match="n_leapfrog"):
            kernel(target, state, step_size=0.1, n_leapfrog=2.5)


@pytest.mark.parametrize("method", METHODS)
def test_sampling_never_touches_parameter_gradients(method):
    net = MLPEnergy(2, 16, generator=torch.Generator().manual_seed(0))
    x0 = torch.randn(10, 2, generator=torch.Generator().manual_seed(1))
    sample(net, x0, method=method, n_steps=3, step_size=0.01, n_leapfrog=3)
    assert all(p.grad is None for p in net.parameters())
    loss = net(x0).mean()
    loss.backward()
    before = [p.grad.clone() for p in net.parameters()]
    sample(net, x0, method=method, n_steps=3, step_size=0.01, n_leapfrog=3)
    assert all(torch.equal(b, p.grad) for b, p in zip(before, net.parameters(), strict=True))


def test_step_kernel_matches_sample_with_one_step():
    target = _gaussian_2d()
    x0 = torch.zeros(4, 2, dtype=torch.float64)
    a, _ = sample(
        target,
        x0,
        method="hmc",
        n_steps=1,
        step_size=0.1,
        n_leapfrog=3,
        generator=torch.Generator().manual_seed(5),
    )
    state, acc = step(
        target,
        ChainState(x0),
        method="hmc",
        step_size=0.1,
        n_leapfrog=3,
        generator=torch.Generator().manual_seed(5),
    )
    assert torch.equal(a, state.x) and acc.shape == (4,) and acc.dtype == torch.bool
    # the mask says which chains moved: rejected ones stay at x0, accepted ones left it (a step of
    # 0.5 from this start rejects some chains)
    state, acc = step(
        target,
        ChainState(x0),
        method="hmc",
        step_size=0.5,
        n_leapfrog=3,
        generator=torch.Generator().manual_seed(5),
    )
    assert bool(acc.any()) and not bool(acc.all())
    assert torch.equal(state.x[~acc], x0[~acc]) and bool((state.x[acc] != x0[acc]).all())


def test_sampler_rejects_bad_input():
    target = GaussianEnergy([0.0, 0.0], 1.0)
    x0 = torch.zeros(3, 2, dtype=torch.float64)
    with pytest.raises(ValueError, match="method must be one of"):
        sample(target, x0, method="gibbs", n_steps=1, step_size=0.1)
    with pytest.raises(ValueError, match="step_size"):
        sample(target, x0, method="mala", n_steps=1, step_size=0.0)
    with pytest.raises(ValueError, match="step_size"):
        sample(target, x0, method="hmc", n_steps=1, step_size=float("nan"))
    with pytest.raises(ValueError, match="n_leapfrog"):
        sample(target, x0, method="hmc", n_steps=1, step_size=0.1, n_leapfrog=0)
    with pytest.raises(ValueError, match="n_steps"):
        sample(target, x0, method="langevin", n_steps=0, step_size=0.1)
    with pytest.raises(ValueError, match="x0"):
        sample(
            target,
            torch.full((3, 2), float("nan"), dtype=torch.float64),
            method="mala",
            n_steps=1,
            step_size=0.1,
        )
    with pytest.raises(ValueError, match="x0"):
        sample(
            target, torch.zeros(0, 2, dtype=torch.float64), method="mala", n_steps=1, step_size=0.1
        )
    with pytest.raises(ValueError, match="x0"):
        sample(target, torch.zeros(3), method="mala", n_steps=1, step_size=0.1)
    with pytest.raises(TypeError, match="generator"):
        sample(target, x0, method="mala", n_steps=1, step_size=0.1, generator=1)
    with pytest.raises(ValueError, match="energy_fn"):
        sample(lambda x: x, x0, method="langevin", n_steps=1, step_size=0.1)


def test_ula_divergence_is_reported_not_silent():
    target = GaussianEnergy(0.0, 0.1)  # curvature 100: ULA is unstable for step_size > 0.02
    x0 = torch.ones(4, 1, dtype=torch.float64)
    with pytest.raises(FloatingPointError, match="step_size"):
        sample(target, x0, method="langevin", n_steps=2000, step_size=0.5)


def _ar1(phi, n_steps, n_chains, seed):
    rng = np.random.default_rng(seed)
    x = np.empty((n_steps, n_chains))
    x[0] = rng.standard_normal(n_chains)
    noise = rng.standard_normal((n_steps, n_chains)) * math.sqrt(1 - phi**2)
    for t in range(1, n_steps):
        x[t] = phi * x[t - 1] + noise[t]
    return x


def test_autocorrelation_time_of_an_ar1_chain():
    phi = 0.6
    x = _ar1(phi, 2000, 200, seed=0)
    rho = autocorrelation(x, max_lag=5)
    # Bartlett: Var(rho_k) <= (1 + phi^2) / ((1 - phi^2) N) for an AR(1) chain, N = all draws
    se_rho = math.sqrt((1 + phi**2) / (1 - phi**2) / x.size)
    assert np.allclose(rho, phi ** np.arange(6), rtol=0, atol=Z_TOL * se_rho)
    tau = integrated_autocorrelation_time(x)
    # the SE of tau from the spread of the estimates on 20 disjoint groups of 10 chains
    groups = [integrated_autocorrelation_time(x[:, i::20]) for i in range(20)]
    se_tau = float(np.std(groups, ddof=1)) / math.sqrt(20)
    assert abs(tau - (1 + phi) / (1 - phi)) < Z_TOL * se_tau
    assert effective_sample_size(x) == pytest.approx(x.size / tau)
    # iid draws: tau = 1. Not a check in standard errors but a bound on a bias: Geyer's truncation
    # keeps the leading positive noise pairs, each of size ~ 1/sqrt(size) = 7e-4
    iid = np.random.default_rng(1).standard_normal((4000, 500))
    assert integrated_autocorrelation_time(iid) == pytest.approx(1.0, abs=0.03)


def test_diagnostics_reject_bad_chains():
    with pytest.raises(ValueError, match="chain"):
        autocorrelation(np.ones((2, 3)))
    with pytest.raises(ValueError, match="constant"):
        autocorrelation(np.ones((10, 3)))
    with pytest.raises(ValueError, match="NaN"):
        integrated_autocorrelation_time(np.array([0.0, 1.0, np.nan, 2.0, 3.0]))


def test_replay_buffer_pcd_and_restarts():
    target = GaussianEnergy([0.0, 0.0], 1.0)
    gen = torch.Generator().manual_seed(6)
    pcd = ReplayBuffer(torch.full((50, 2), 5.0, dtype=torch.float64))
    x, info = pcd.negatives(target, method="langevin", n_steps=1, step_size=0.1, generator=gen)
    assert torch.equal(pcd.states, x) and info["n_restarted"] == 0

    def fresh(n, g):
        return torch.zeros(n, 2, dtype=torch.float64)

    buf = ReplayBuffer(
        torch.full((10000, 2), 5.0, dtype=torch.float64), restart_fn=fresh, restart_prob=0.05
    )
    total = 0
    for _ in range(20):
        _, info = buf.negatives(
            target, 1000, method="rw_metropolis", n_steps=1, step_size=1e-9, generator=gen
        )
        total += info["n_restarted"]
    assert abs(total - 1000) < Z_TOL * math.sqrt(20000 * 0.05 * 0.95)
    moved = (buf.states[:, 0] < 4.0).sum()  # restarted states (at 0) were written back
    assert 0 < int(moved) <= total
    with pytest.raises(ValueError, match="restart_fn"):
        ReplayBuffer(torch.zeros(3, 2), restart_prob=0.1)
    with pytest.raises(ValueError, match="restart_prob"):
        ReplayBuffer(torch.zeros(3, 2), restart_fn=fresh, restart_prob=1.5)
    with pytest.raises(ValueError, match="n must be"):
        pcd.negatives(target, 51, method="langevin", n_steps=1, step_size=0.1)


def test_cd_loss_energy_penalty():
    target = GaussianEnergy([0.0], 1.0)
    xp = torch.tensor([[1.0], [2.0]], dtype=torch.float64)
    xn = torch.tensor([[0.0], [3.0]], dtype=torch.float64)
    ep, en = target(xp), target(xn)
    expected = ep.mean() - en.mean() + 0.1 * ((ep**2).mean() + (en**2).mean())
    assert torch.allclose(cd_loss(target, xp, xn, energy_penalty=0.1), expected)
    with pytest.raises(ValueError, match="energy_penalty"):
        cd_loss(target, xp, xn, energy_penalty=-1.0)


@pytest.mark.parametrize(
    "method, target, expected",
    # the high-dimensional optimal steps on N(0, I_d): random walk 2.38 / sqrt(d) (Roberts &
    # Rosenthal 2001); at d = 64 the 0.234-step is within 5% of it
    [("rw_metropolis", 0.234, 2.38 / 8.0), ("mala", 0.574, None), ("hmc", 0.651, None)],
)
def test_tune_step_size_hits_its_target_acceptance(method, target, expected):
    d, n_chains = 64, 200
    energy = lambda x: 0.5 * (x * x).sum(1)  # noqa: E731
    g = torch.Generator().manual_seed(0)
    x0 = torch.randn(n_chains, d, generator=g, dtype=torch.float64)
    step, _ = tune_step_size(
        energy, x0, method=method, target_acceptance=target, generator=g, n_leapfrog=5
    )
    # a fresh, longer run at the tuned step: its rate is the target up to the bisection's noise,
    # sqrt(a (1 - a) / (200 * 20)) ~ 0.008 per evaluation, plus the bracket's width
    _, info = sample(
        energy, x0, method=method, n_steps=100, step_size=step, generator=g, n_leapfrog=5
    )
    assert abs(info["acceptance_rate"] - target) < 0.04
    if expected is not None:
        assert step == pytest.approx(expected, rel=0.05)


def test_tune_step_size_rejects_bad_input():
    x0 = torch.zeros(4, 2)
    energy = lambda x: 0.5 * (x * x).sum(1)  # noqa: E731
    with pytest.raises(ValueError, match="ULA"):
        tune_step_size(energy, x0, method="langevin", target_acceptance=0.5)
    with pytest.raises(ValueError, match="target_acceptance"):
        tune_step_size(energy, x0, method="mala", target_acceptance=1.2)
    with pytest.raises(ValueError, match="search"):
        tune_step_size(energy, x0, method="mala", target_acceptance=0.5, search=(1.0, 0.1))
    with pytest.raises(ValueError, match="method"):
        tune_step_size(energy, x0, method="nuts", target_acceptance=0.5)


def test_tune_step_size_can_hold_hmc_trajectory_time_fixed():
    d = 64
    energy = lambda x: 0.5 * (x * x).sum(1)  # noqa: E731
    g = torch.Generator().manual_seed(1)
    x0 = torch.randn(100, d, generator=g, dtype=torch.float64)
    step, _ = tune_step_size(
        energy, x0, method="hmc", target_acceptance=0.651, generator=g, trajectory_length=1.5
    )
    n_leapfrog = leapfrog_steps(1.5, step)
    assert n_leapfrog * step >= 1.5 > (n_leapfrog - 1) * step
    _, info = sample(
        energy, x0, method="hmc", n_steps=100, step_size=step, generator=g, n_leapfrog=n_leapfrog
    )
    assert abs(info["acceptance_rate"] - 0.651) < 0.04
    with pytest.raises(ValueError, match="trajectory_length"):
        tune_step_size(energy, x0, method="mala", target_acceptance=0.5, trajectory_length=1.0)
    assert leapfrog_steps(1.0, 0.25) == 4 and leapfrog_steps(0.1, 0.25) == 1
