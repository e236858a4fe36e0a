"""Annealed importance sampling and its reverse against the exact log Z and log-likelihood of
enumerable RBMs."""

import math

import pytest
import torch

from conftest import Z_TOL
from ebmlib.data import load_digits_binary
from ebmlib.exact import binary_states
from ebmlib.partition import (
    LogZEstimate,
    ais_log_partition,
    ais_log_weights,
    ais_schedule,
    base_rate_bias,
    log_mean_exp_with_stderr,
    published_ais_schedule,
    reverse_ais,
)
from ebmlib.rbm import BernoulliRBM


def random_rbm(n_visible, n_hidden, seed, scale=1.0):
    g = torch.Generator().manual_seed(seed)
    rbm = BernoulliRBM(n_visible, n_hidden, generator=g, weight_scale=scale)
    rbm.visible_bias = 0.5 * torch.randn(n_visible, generator=g, dtype=torch.float64)
    rbm.hidden_bias = 0.5 * torch.randn(n_hidden, generator=g, dtype=torch.float64)
    return rbm


@pytest.fixture(scope="module")
def digits_rbm():
    train, test = load_digits_binary()
    rbm = BernoulliRBM(64, 16, generator=torch.Generator().manual_seed(0))
    rbm.fit(
        train,
        n_epochs=20,
        batch_size=20,
        learning_rate=0.05,
        momentum=0.0,
        schedule="constant",
        generator=torch.Generator().manual_seed(1),
        progress=False,
    )
    return rbm, train, test


def test_published_schedule():
    s = published_ais_schedule()
    assert s.shape == (14501,) and float(s[0]) == 0.0 and float(s[-1]) == 1.0
    steps = torch.diff(s)
    assert torch.allclose(steps[:500], torch.tensor(1e-3, dtype=torch.float64))
    assert torch.allclose(steps[500:4500], torch.tensor(1e-4, dtype=torch.float64))
    assert torch.allclose(steps[4500:], torch.tensor(1e-5, dtype=torch.float64))
    assert torch.equal(ais_schedule(14501), s)
    for n in (2, 3, 5, 100, 1001):
        t = ais_schedule(n)
        assert (
            t.shape == (n,)
            and float(t[0]) == 0.0
            and float(t[-1]) == 1.0
            and bool((torch.diff(t) > 0).all())
        )


def test_ais_is_exact_for_zero_parameters():
    rbm = BernoulliRBM(10, 6, weight_scale=0.0)
    log_z, se = ais_log_partition(
        rbm, n_runs=5, betas=50, generator=torch.Generator().manual_seed(0)
    )
    assert float(log_z) == pytest.approx(16 * math.log(2), abs=1e-12) and float(se) == 0.0
    assert float(rbm.log_partition_exact()) == pytest.approx(16 * math.log(2), abs=1e-12)
    # the reverse estimate is exact too: log p(v) = -n_v log 2 for every v
    lp = reverse_ais(
        rbm, binary_states(10)[::97], betas=50, generator=torch.Generator().manual_seed(0)
    )
    assert torch.allclose(lp, torch.full_like(lp, -10 * math.log(2)), atol=1e-12)


def test_base_rate_model_is_exact_for_an_independent_model():
    """With W = 0 and visible biases equal to the base-rate biases, every AIS weight is the same."""
    data = torch.bernoulli(
        torch.full((50, 8), 0.3, dtype=torch.float64), generator=torch.Generator().manual_seed(1)
    )
    rbm = BernoulliRBM(8, 4, weight_scale=0.0)
    rbm.visible_bias = base_rate_bias(data)
    log_z, se = ais_log_partition(
        rbm, n_runs=4, betas=20, data=data, generator=torch.Generator().manual_seed(2)
    )
    assert (
        float(log_z) == pytest.approx(float(rbm.log_partition_exact()), abs=1e-12)
        and float(se) < 1e-12
    )


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_ais_is_within_its_standard_error_of_the_exact_log_partition(seed):
    rbm = random_rbm(12, 8, seed)
    exact = float(rbm.log_partition_exact())
    log_z, se = ais_log_partition(
        rbm, n_runs=200, betas=1000, generator=torch.Generator().manual_seed(10 + seed)
    )
    assert float(se) < 0.05
    assert abs(float(log_z) - exact) < Z_TOL * float(se)


def test_ais_on_a_trained_digits_rbm(digits_rbm):
    rbm, train, _ = digits_rbm
    exact = float(rbm.log_partition_exact())
    log_z, se = ais_log_partition(
        rbm, n_runs=100, betas=3000, data=train, generator=torch.Generator().manual_seed(3)
    )
    assert abs(float(log_z) - exact) < max(Z_TOL * float(se), 1e-3)
    assert abs(float(log_z) - exact) < 0.05


def test_ais_standard_error_describes_the_spread_of_repeated_estimates():
    rbm = random_rbm(10, 6, seed=4, scale=1.5)
    exact = float(rbm.log_partition_exact())
    g = torch.Generator().manual_seed(5)
    runs = [ais_log_partition(rbm, n_runs=50, betas=100, generator=g) for _ in range(40)]
    errors = torch.tensor([float(lz) - exact for lz, _ in runs])
    ses = torch.tensor([float(se) for _, se in runs])
    # the mean error is within Z_TOL SE of zero; the reported SE, a delta-method approximation,
    # matches the observed spread within a factor 2 (a bound on the approximation, not a Monte-Carlo
    # tolerance: the sample sd of 40 errors is itself known to +-11%)
    assert 0.5 < float(errors.std() / ses.mean()) < 2.0
    assert abs(float(errors.mean())) < Z_TOL * float(errors.std()) / math.sqrt(40)


def test_per_run_log_weights_give_the_estimate_and_its_standard_error():
    rbm = random_rbm(8, 5, seed=8)
    result = ais_log_partition(rbm, n_runs=40, betas=50, generator=torch.Generator().manual_seed(9))
    assert isinstance(result, LogZEstimate) and len(result) == 2
    log_z, se = result
    assert (result.log_z, result.stderr) == (log_z, se)
    # the same runs, weight by weight: same arguments, same generator state
    log_w = ais_log_weights(rbm, n_runs=40, betas=50, generator=torch.Generator().manual_seed(9))
    assert log_w.shape == (40,)
    again, se_again = log_mean_exp_with_stderr(log_w)
    assert float(again) == pytest.approx(float(log_z), abs=1e-12) and float(
        se_again
    ) == pytest.approx(float(se))
    # against a direct computation in linear space
    w = torch.exp(log_w)
    assert float(log_z) == pytest.approx(math.log(float(w.mean())), abs=1e-12)
    assert float(se) == pytest.approx(float(w.std() / (math.sqrt(40) * w.mean())), rel=1e-10)
    groups, group_se = log_mean_exp_with_stderr(log_w.view(4, 10))
    assert groups.shape == (4,) and group_se.shape == (4,)
    for i, row in enumerate(log_w.view(4, 10)):  # row by row, the same as one call per row
        one, one_se = log_mean_exp_with_stderr(row)
        assert float(groups[i]) == pytest.approx(float(one), abs=1e-12)
        assert float(group_se[i]) == pytest.approx(float(one_se), rel=1e-12)
    with pytest.raises(ValueError, match="log_w"):
        log_mean_exp_with_stderr(torch.tensor([float("nan"), 0.0]))
    with pytest.raises(TypeError, match="return_log_weights"):
        ais_log_partition(rbm, n_runs=4, betas=5, return_log_weights=True)


def test_reverse_ais_approaches_the_exact_log_likelihood_from_below(digits_rbm):
    rbm, train, test = digits_rbm
    exact = rbm.log_likelihood(test, rbm.log_partition_exact())
    g = torch.Generator().manual_seed(6)
    coarse = reverse_ais(rbm, test, betas=30, data=train, generator=g) - exact
    fine = reverse_ais(rbm, test, betas=2000, data=train, generator=g) - exact

    # a stochastic lower bound: the average gap is negative beyond its standard error, and shrinks
    # with the schedule
    def se(d):
        return float(d.std()) / math.sqrt(d.numel())

    assert float(coarse.mean()) < -Z_TOL * se(coarse)
    assert float(fine.mean()) < Z_TOL * se(fine)
    assert abs(float(fine.mean())) < 0.05 < abs(float(coarse.mean()))


def test_ais_and_reverse_ais_reject_bad_input():
    rbm = BernoulliRBM(4, 3)
    with pytest.raises(ValueError, match="betas must increase"):
        ais_log_partition(rbm, betas=torch.tensor([0.0, 0.7, 0.5, 1.0], dtype=torch.float64))
    with pytest.raises(ValueError, match="betas must increase"):
        ais_log_partition(rbm, betas=torch.tensor([0.1, 1.0], dtype=torch.float64))
    with pytest.raises(ValueError, match="betas must be >= 2"):
        ais_log_partition(rbm, betas=1)
    with pytest.raises(ValueError, match="n_runs"):
        ais_log_partition(rbm, n_runs=0)
    with pytest.raises(TypeError, match="BernoulliRBM"):
        ais_log_partition("rbm")
    with pytest.raises(ValueError, match="data must have 4 columns"):
        ais_log_partition(rbm, data=torch.ones(3, 5, dtype=torch.float64))
    with pytest.raises(ValueError, match="only 0 and 1"):
        reverse_ais(rbm, torch.full((2, 4), 0.5, dtype=torch.float64))
    with pytest.raises(TypeError, match="generator"):
        reverse_ais(rbm, torch.ones(2, 4, dtype=torch.float64), generator=1)
