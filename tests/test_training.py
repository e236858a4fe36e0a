import math

import pytest
import torch

from conftest import Z_TOL
from ebmlib import (
    BernoulliRBM,
    GaussianEnergy,
    ReplayBuffer,
    cd_loss,
    robbins_monro_schedule,
    train,
)
from ebmlib.exact import exact_nll


def test_exact_gradient_descent_reaches_closed_form_mle(gen):
    x = 2.0 + 1.5 * torch.randn(200, 1, generator=gen, dtype=torch.float64)
    g = GaussianEnergy(0.0, 1.0)
    hist = train(
        lambda t: exact_nll(g, x, g.log_partition()),
        g.parameters(),
        n_updates=400,
        learning_rate=0.2,
        progress=False,
    )
    assert float(g.mean.detach()) == pytest.approx(float(x.mean()), abs=1e-8)
    assert float(g.scale_tril.detach()) == pytest.approx(float(x.std(unbiased=False)), abs=1e-8)
    assert hist["loss"][-1] < hist["loss"][0]
    assert len(hist["step"]) == 400


def test_robbins_monro_with_exact_samples_converges_within_monte_carlo_error(gen):
    x = 3.0 * torch.randn(400, 1, generator=gen, dtype=torch.float64)
    g = GaussianEnergy(0.0, 2.0, learn_mean=False)
    sampler_gen = torch.Generator().manual_seed(99)

    def loss(t):
        return cd_loss(g, x, g.sample(100, generator=sampler_gen))

    n_updates, lr, t0 = 3000, 2.0, 50.0
    train(
        loss,
        g.parameters(),
        n_updates=n_updates,
        learning_rate=lr,
        schedule=robbins_monro_schedule(1.0, t0),
        progress=False,
    )
    mle = float(x.pow(2).mean().sqrt())
    # Step a_t ~ a/t with a = lr*t0. Near the MLE s the mean gradient is c*(sigma - s) with c =
    # 2/s^2, and the gradient noise has sd g = sqrt(2) s^2 / sqrt(100) / s^3. Robbins-Monro theory
    # (a*c > 1/2) gives Var(sigma_t) ~ a^2 g^2 / ((2ac - 1) t); the test allows Z_TOL such standard
    # errors. 3000 updates, not fewer: a schedule that does not decay leaves an sd of about sqrt(lr
    # g^2 / 2c) = 0.1, which must stand clear of Z_TOL standard errors (here 7.5 SE).
    a, c, g_sd = lr * t0, 2 / mle**2, math.sqrt(2) / (10 * mle)
    se = math.sqrt(a**2 * g_sd**2 / ((2 * a * c - 1) * n_updates))
    assert float(g.scale_tril.detach()) == pytest.approx(mle, abs=Z_TOL * se)


def test_train_callbacks_logs_and_early_stop(gen):
    g = GaussianEnergy(0.0, 1.0)
    x = torch.randn(10, 1, generator=gen, dtype=torch.float64)
    seen = []

    def cb(step, logs):
        logs["mean"] = float(g.mean.detach())
        seen.append(step)
        return step == 4

    hist = train(
        lambda t: (exact_nll(g, x, g.log_partition()), {"custom": t * 2}),
        g.parameters(),
        n_updates=100,
        callbacks=[cb],
        progress=False,
    )
    assert seen == [0, 1, 2, 3, 4] and hist.stopped_early
    assert hist["custom"] == [0, 2, 4, 6, 8] and len(hist["mean"]) == 5
    assert hist.as_tensor("loss").dtype == torch.float64


def test_train_reports_divergence_instead_of_nan():
    p = torch.nn.Parameter(torch.tensor(1.0, dtype=torch.float64))
    with pytest.raises(FloatingPointError, match="diverged"):
        train(lambda t: torch.log(p - 2.0), [p], n_updates=3, progress=False)


@pytest.mark.parametrize(
    "kwargs, err, match",
    [
        (dict(n_updates=0), ValueError, "n_updates"),
        (dict(n_updates=3, learning_rate=0.0), ValueError, "learning_rate"),
        (dict(n_updates=3, learning_rate=float("nan")), ValueError, "learning_rate"),
        (dict(n_updates=3, optimizer="lbfgs"), ValueError, "optimizer"),
        (dict(n_updates=3, grad_clip=-1.0), ValueError, "grad_clip"),
    ],
)
def test_train_rejects_bad_arguments(kwargs, err, match):
    p = torch.nn.Parameter(torch.tensor(1.0))
    with pytest.raises(err, match=match):
        train(lambda t: p**2, [p], progress=False, **kwargs)


def test_train_rejects_empty_parameters_and_non_scalar_loss():
    with pytest.raises(ValueError, match="parameters is empty"):
        train(lambda t: torch.tensor(0.0), [], n_updates=1, progress=False)
    p = torch.nn.Parameter(torch.ones(2))
    with pytest.raises(ValueError, match="scalar"):
        train(lambda t: p * 2, [p], n_updates=1, progress=False)


def test_robbins_monro_schedule_validates_and_decays():
    s = robbins_monro_schedule(0.75, 5.0)
    assert s(0) == 1.0 and s(5) == pytest.approx(2**-0.75)
    with pytest.raises(ValueError, match="kappa"):
        robbins_monro_schedule(0.5)
    with pytest.raises(ValueError, match="t0"):
        robbins_monro_schedule(1.0, 0.0)


def test_a_replay_buffer_of_rbm_chains_advances_them_by_gibbs():
    """method="gibbs": the chains move by the model's own Gibbs sampler, stream for stream."""
    rbm = BernoulliRBM(6, 3, generator=torch.Generator().manual_seed(0), weight_scale=1.0)
    start = torch.bernoulli(
        torch.full((5, 6), 0.5, dtype=torch.float64), generator=torch.Generator().manual_seed(1)
    )
    buffer = ReplayBuffer(start)
    x, info = buffer.negatives(
        rbm, method="gibbs", n_steps=3, generator=torch.Generator().manual_seed(2)
    )
    expected = rbm.gibbs(start, 3, generator=torch.Generator().manual_seed(2))
    assert torch.equal(x, expected) and torch.equal(buffer.states, expected)
    assert info["n_restarted"] == 0
    with pytest.raises(TypeError, match="gibbs"):
        ReplayBuffer(torch.zeros(3, 2)).negatives(
            GaussianEnergy([0.0, 0.0], 1.0), method="gibbs", n_steps=1
        )
