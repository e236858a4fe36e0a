"""Pseudo-likelihood and ratio matching for BernoulliRBM against brute-force enumeration, gradcheck,
consistency."""

import pytest
import torch

from ebmlib.exact import binary_states
from ebmlib.rbm import BernoulliRBM, pseudo_likelihood_loss, ratio_matching_loss
from ebmlib.rbm.proxies import OBJECTIVES, objective_gradients


def random_rbm(n_visible, n_hidden, seed, scale=1.0):
    g = torch.Generator().manual_seed(seed)
    rbm = BernoulliRBM(n_visible, n_hidden, generator=g, weight_scale=scale)
    rbm.visible_bias = torch.randn(n_visible, generator=g, dtype=torch.float64)
    rbm.hidden_bias = torch.randn(n_hidden, generator=g, dtype=torch.float64)
    return rbm


def brute_log_phi(rbm, v):
    """log sum_h exp(-E(v, h)) by enumerating every hidden state, shape (n,)."""
    hs = binary_states(rbm.n_hidden)
    vv = v.repeat_interleave(hs.shape[0], 0)
    hh = hs.repeat(v.shape[0], 1)
    return torch.logsumexp(-rbm.energy(vv, hh).view(v.shape[0], hs.shape[0]), 1)


def brute_losses(rbm, v):
    """Both objectives from unnormalized probabilities of v and of every one-bit flip, no shortcut
    formula."""
    log_p = brute_log_phi(rbm, v)
    pl, rm = torch.zeros(()), torch.zeros(())
    for i in range(rbm.n_visible):
        flipped = v.clone()
        flipped[:, i] = 1 - flipped[:, i]
        log_q = brute_log_phi(rbm, flipped)
        cond = torch.exp(
            log_p - torch.logaddexp(log_p, log_q)
        )  # p(v_i | v_-i) = p(v) / (p(v) + p(v^(i)))
        pl = pl - torch.log(cond).mean()
        ratio = torch.exp(log_p - log_q)  # p(v) / p(v^(i))
        rm = rm + ((1 / (1 + ratio)) ** 2).mean()
    return pl, rm


def test_losses_match_enumeration():
    rbm = random_rbm(5, 3, seed=0)
    v = binary_states(5)  # every state once
    pl, rm = brute_losses(rbm, v)
    assert float(pseudo_likelihood_loss(rbm, v)) == pytest.approx(float(pl), abs=1e-12)
    assert float(ratio_matching_loss(rbm, v)) == pytest.approx(float(rm), abs=1e-12)
    assert float(pseudo_likelihood_loss(rbm, v)) == pytest.approx(
        float(-rbm.pseudo_log_likelihood(v).mean()), abs=1e-12
    )


@pytest.mark.parametrize("loss", [pseudo_likelihood_loss, ratio_matching_loss])
def test_gradcheck(loss):
    rbm = random_rbm(4, 3, seed=1)
    v = binary_states(4)[::3]

    def f(w, b, c):
        rbm.weight, rbm.visible_bias, rbm.hidden_bias = w, b, c
        return loss(rbm, v)

    params = tuple(p.clone().requires_grad_(True) for p in rbm.parameters())
    assert torch.autograd.gradcheck(f, params)


@pytest.mark.parametrize("loss", [pseudo_likelihood_loss, ratio_matching_loss])
def test_consistent_expected_gradient_vanishes_at_the_model(loss):
    """Both are proper: with data distributed exactly as the model, the expected gradient is
    zero."""
    rbm = random_rbm(5, 3, seed=2)
    v = binary_states(5)
    p = torch.softmax(brute_log_phi(rbm, v), 0)  # exact p(v) by enumeration
    params = [t.clone().requires_grad_(True) for t in rbm.parameters()]
    rbm.weight, rbm.visible_bias, rbm.hidden_bias = params
    per_point = torch.stack([loss(rbm, v[j : j + 1]) for j in range(v.shape[0])])
    grads = torch.autograd.grad((p * per_point).sum(), params, retain_graph=True)
    assert max(float(g.abs().max()) for g in grads) < 1e-12
    # and it does not vanish at other parameters (the test has power)
    other = torch.softmax(-brute_log_phi(rbm, v).detach(), 0)
    grads = torch.autograd.grad((other * per_point).sum(), params)
    assert max(float(g.abs().max()) for g in grads) > 1e-3


@pytest.mark.parametrize("objective", ["pseudo_likelihood", "ratio_matching"])
def test_fit_with_objective_improves_exact_likelihood(objective):
    teacher = random_rbm(6, 3, seed=3, scale=2.0)
    g = torch.Generator().manual_seed(0)
    data = teacher.gibbs(torch.zeros(2000, 6, dtype=torch.float64), n_steps=50, generator=g)
    student = BernoulliRBM(6, 3, generator=torch.Generator().manual_seed(1))
    before = float(student.log_likelihood(data, student.log_partition_exact()).mean())
    loss = {"pseudo_likelihood": pseudo_likelihood_loss, "ratio_matching": ratio_matching_loss}[
        objective
    ]
    loss_before = float(loss(student, data))
    history = student.fit(
        data,
        n_epochs=5,
        batch_size=20,
        learning_rate=0.1,
        momentum=0.5,
        objective=objective,
        generator=torch.Generator().manual_seed(2),
        progress=False,
    )
    after = float(student.log_likelihood(data, student.log_partition_exact()).mean())
    assert len(history["seconds"]) == 5
    assert float(loss(student, data)) < loss_before
    assert after > before + 0.1


def test_bad_input():
    rbm = random_rbm(4, 2, seed=0)
    with pytest.raises(ValueError, match="objective"):
        rbm.fit(
            binary_states(4),
            n_epochs=1,
            batch_size=4,
            learning_rate=0.1,
            objective="score_matching",
        )
    with pytest.raises(ValueError, match="v must hold only 0 and 1"):
        pseudo_likelihood_loss(rbm, torch.full((2, 4), 0.5, dtype=torch.float64))
    with pytest.raises(TypeError, match="rbm"):
        ratio_matching_loss("not an rbm", binary_states(4))
    with pytest.raises(ValueError, match="v"):
        ratio_matching_loss(rbm, torch.zeros(0, 4, dtype=torch.float64))


@pytest.mark.parametrize("objective", ["pseudo_likelihood", "ratio_matching"])
def test_closed_form_gradient_used_by_fit_matches_autograd(objective):
    rbm = random_rbm(7, 4, seed=4)
    v = torch.bernoulli(
        torch.full((9, 7), 0.4, dtype=torch.float64), generator=torch.Generator().manual_seed(0)
    )
    params = [p.clone().requires_grad_(True) for p in rbm.parameters()]
    expected = torch.autograd.grad(OBJECTIVES[objective](*params, v), params)
    got = objective_gradients(*rbm.parameters(), v, objective)
    for e, g in zip(expected, got, strict=True):
        assert torch.allclose(e, g, atol=1e-12)
