"""Section 6 samplers (independent MH, IS with resampling) and the proposal densities."""

import math

import numpy as np
import pytest
import torch
from scipy import stats

from conftest import P_FALSE_ALARM, Z_TOL
from ebmlib import GaussianEnergy, PolynomialEnergy
from ebmlib.exact import expectation_quadrature
from ebmlib.proposals import GaussianProposal, StudentTProposal
from ebmlib.samplers import importance_resampling, independent_metropolis

QUARTIC = PolynomialEnergy(
    [-1.0, 0.25], powers=(2, 4)
)  # bimodal: E = -x^2 + x^4/4, modes at +-sqrt(2)


def _exact_moments(energy, box=(-8, 8)):
    m = expectation_quadrature(lambda x: torch.cat([x, x**2, x**4], dim=1), energy, box).detach()
    var_f = (
        expectation_quadrature(lambda x: torch.cat([x, x**2], dim=1) ** 2, energy, box).detach()
        - m[:2] ** 2
    )
    return m, var_f


def test_independent_metropolis_reproduces_bimodal_target_moments():
    gen = torch.Generator().manual_seed(11)
    chains = 4000
    x, info = independent_metropolis(
        QUARTIC, StudentTProposal(4.0, 0.0, 2.0), n_steps=200, n_chains=chains, generator=gen
    )
    m, var_f = _exact_moments(QUARTIC)
    # final states of independent chains are iid draws (after 200 steps of a uniformly ergodic
    # kernel)
    for k, f in enumerate([x[:, 0], x[:, 0] ** 2]):
        se = math.sqrt(float(var_f[k]) / chains)
        assert abs(float(f.mean()) - float(m[k])) < Z_TOL * se, f"moment {k + 1}"
    assert 0.2 < info["acceptance_rate"] < 0.9
    per_chain = info["acceptance_per_chain"]
    assert per_chain.shape == (chains,) and float(per_chain.mean()) == pytest.approx(
        info["acceptance_rate"]
    )


def test_independent_metropolis_chain_and_start_state():
    g = GaussianEnergy(0.0, 2.0)
    x0 = torch.full(
        (3, 1), 50.0, dtype=torch.float64
    )  # far out in the tail: the first move is accepted
    x, info = independent_metropolis(
        g,
        GaussianProposal(0.0, 4.0),
        n_steps=50,
        n_chains=3,
        x0=x0,
        generator=torch.Generator().manual_seed(0),
        return_chain=True,
    )
    assert info["chain"].shape == (50, 3, 1)
    assert torch.equal(info["chain"][-1], x)
    assert bool((info["chain"][-1].abs() < 50).all())


def test_importance_resampling_reproduces_target_moments():
    gen = torch.Generator().manual_seed(5)
    n = 20000
    x, info = importance_resampling(
        QUARTIC, StudentTProposal(4.0, 0.0, 2.0), n_samples=n, n_proposals=4 * n, generator=gen
    )
    m, var_f = _exact_moments(QUARTIC)
    # resampled means have variance about Var_p(f) (1/ESS + 1/n) (IS error plus multinomial noise)
    for k, f in enumerate([x[:, 0], x[:, 0] ** 2]):
        se = math.sqrt(float(var_f[k]) * (1 / info["ess"] + 1 / n))
        assert abs(float(f.mean()) - float(m[k])) < Z_TOL * se
    # the IS estimate of log Z from the same draws is close to quadrature
    from ebmlib.exact import log_partition_quadrature

    # Var(log Z-hat) ~ 1/ESS - 1/(number of proposals) by the delta method
    se_log_z = math.sqrt(1 / info["ess"] - 1 / (4 * n))
    exact_log_z = float(log_partition_quadrature(QUARTIC, (-8, 8)).detach())
    assert abs(info["log_partition"] - exact_log_z) < Z_TOL * se_log_z
    assert 0 < info["unique_fraction"] <= 1 and info["ess"] <= 4 * n


def test_proposals_log_prob_match_scipy_and_samples_pass_ks():
    y = torch.linspace(-6, 9, 31, dtype=torch.float64)[:, None]
    g = GaussianProposal(2.0, 3.0)
    np.testing.assert_allclose(
        g.log_prob(y).numpy(), stats.norm.logpdf(y[:, 0].numpy(), 2.0, 3.0), rtol=1e-12
    )
    t = StudentTProposal(3.0, 1.0, 2.0)
    np.testing.assert_allclose(
        t.log_prob(y).numpy(), stats.t.logpdf(y[:, 0].numpy(), 3.0, 1.0, 2.0), rtol=1e-12
    )
    gen = torch.Generator().manual_seed(3)
    # KS tests at the false-alarm rate of Z_TOL
    assert (
        stats.kstest(g.sample(5000, generator=gen)[:, 0].numpy(), "norm", args=(2.0, 3.0)).pvalue
        > P_FALSE_ALARM
    )
    assert (
        stats.kstest(t.sample(5000, generator=gen)[:, 0].numpy(), "t", args=(3.0, 1.0, 2.0)).pvalue
        > P_FALSE_ALARM
    )
    # a diagonal Gaussian in 2-D: the sum of the two 1-D log densities
    two = GaussianProposal([0.0, 1.0], [1.0, 2.0])
    assert two.sample(4, generator=gen).shape == (4, 2)
    y2 = torch.stack([y[:, 0], y.flip(0)[:, 0]], dim=1)
    expected = stats.norm.logpdf(y2[:, 0].numpy(), 0.0, 1.0) + stats.norm.logpdf(
        y2[:, 1].numpy(), 1.0, 2.0
    )
    np.testing.assert_allclose(two.log_prob(y2).numpy(), expected, rtol=1e-12)


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: GaussianProposal(0.0, 0.0), "std must be > 0"),
        (lambda: GaussianProposal(0.0, -1.0), "std must be > 0"),
        (lambda: GaussianProposal(float("nan"), 1.0), "mean must hold finite"),
        (lambda: GaussianProposal([0.0, 0.0], [1.0, 1.0, 1.0]), "std has 3 entries"),
        (lambda: StudentTProposal(0.0), "df must be finite and > 0"),
        (lambda: StudentTProposal(3.0, 0.0, -2.0), "scale must be > 0"),
    ],
)
def test_proposals_reject_bad_parameters(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_samplers_reject_bad_input():
    g = GaussianEnergy(0.0, 1.0)
    q = GaussianProposal(0.0, 2.0)
    with pytest.raises(TypeError, match="proposal must have sample"):
        independent_metropolis(g, object(), n_steps=3)
    with pytest.raises(ValueError, match="n_steps"):
        independent_metropolis(g, q, n_steps=0)
    with pytest.raises(ValueError, match=r"x0 must have shape \(2, 1\)"):
        independent_metropolis(
            g, q, n_steps=3, n_chains=2, x0=torch.zeros(3, 1, dtype=torch.float64)
        )
    with pytest.raises(ValueError, match="n_samples"):
        importance_resampling(g, q, n_samples=0)
    with pytest.raises(TypeError, match="generator"):
        importance_resampling(g, q, n_samples=3, generator=1)
    with pytest.raises(ValueError, match="y must have 1 columns"):
        GaussianProposal(0.0, 1.0).log_prob(torch.zeros(3, 2, dtype=torch.float64))
