"""BernoulliRBM against brute-force enumeration of every (v, h), and its CD update against
autograd."""

import math

import pytest
import torch

from conftest import Z_TOL
from ebmlib.exact import binary_states
from ebmlib.rbm import BernoulliRBM, core


def random_rbm(n_visible, n_hidden, seed, scale=1.0):
    g = torch.Generator().manual_seed(seed)
    rbm = BernoulliRBM(n_visible, n_hidden, generator=g, weight_scale=scale)
    rbm.visible_bias = torch.randn(n_visible, generator=g, dtype=torch.float64)
    rbm.hidden_bias = torch.randn(n_hidden, generator=g, dtype=torch.float64)
    return rbm


def joint_table(rbm):
    """log of the unnormalized p(v, h) for every pair: shape (2^nv, 2^nh), with the state lists."""
    vs, hs = binary_states(rbm.n_visible), binary_states(rbm.n_hidden)
    v = vs.repeat_interleave(hs.shape[0], 0)
    h = hs.repeat(vs.shape[0], 1)
    return -rbm.energy(v, h).view(vs.shape[0], hs.shape[0]), vs, hs


@pytest.mark.parametrize("shape", [(5, 3), (3, 5)])
def test_free_energy_and_log_partition_match_enumeration(shape):
    rbm = random_rbm(*shape, seed=0)
    log_joint, vs, _ = joint_table(rbm)
    free = -torch.logsumexp(log_joint, 1)
    assert torch.allclose(rbm.free_energy(vs), free, atol=1e-12)
    exact = torch.logsumexp(log_joint.flatten(), 0)
    assert float(rbm.log_partition_exact()) == pytest.approx(float(exact), abs=1e-12)
    # chunking changes nothing; log p sums to 1
    assert float(rbm.log_partition_exact(chunk_size=2)) == pytest.approx(float(exact), abs=1e-12)
    assert float(torch.logsumexp(rbm.log_likelihood(vs, exact), 0)) == pytest.approx(0.0, abs=1e-12)


def test_conditionals_match_enumeration():
    rbm = random_rbm(4, 3, seed=1)
    log_joint, vs, hs = joint_table(rbm)
    p_h_given_v = torch.softmax(log_joint, 1) @ hs  # E[h | v] = p(h_j = 1 | v)
    assert torch.allclose(rbm.hidden_probabilities(vs), p_h_given_v, atol=1e-12)
    p_v_given_h = torch.softmax(log_joint, 0).T @ vs
    assert torch.allclose(rbm.visible_probabilities(hs), p_v_given_h, atol=1e-12)


def test_log_partition_exact_refuses_sizes_it_cannot_enumerate():
    rbm = BernoulliRBM(64, 30)
    with pytest.raises(ValueError, match=r"2\*\*30 states .* limit 2\*\*24 .*ais_log_partition"):
        rbm.log_partition_exact()
    with pytest.raises(ValueError, match=r"limit 2\*\*10"):
        BernoulliRBM(64, 12).log_partition_exact(max_bits=10)
    # the smaller layer is the one enumerated: 64 x 16 is cheap
    assert math.isfinite(float(BernoulliRBM(64, 16).log_partition_exact()))


def test_gibbs_leaves_the_model_invariant_and_converges():
    rbm = random_rbm(4, 3, seed=2)
    _, vs, _ = joint_table(rbm)
    p = torch.exp(rbm.log_likelihood(vs, rbm.log_partition_exact()))
    n = 40000
    g = torch.Generator().manual_seed(3)
    exact_draws = vs[torch.multinomial(p, n, replacement=True, generator=g)]
    for start, k in ((exact_draws, 2), (torch.zeros(n, 4, dtype=torch.float64), 30)):
        out = rbm.gibbs(start, n_steps=k, generator=g)
        index = (out * 2 ** torch.arange(4, dtype=torch.float64)).sum(1).long()
        freq = torch.bincount(index, minlength=16).double() / n
        z = (freq - p) / torch.sqrt(p * (1 - p) / n)
        assert float(z.abs().max()) < Z_TOL, z


def test_pseudo_likelihood_matches_enumeration_and_the_stochastic_version_is_unbiased():
    rbm = random_rbm(6, 4, seed=4)
    _, vs, _ = joint_table(rbm)
    log_p = rbm.log_likelihood(vs, rbm.log_partition_exact())
    index = {tuple(v.tolist()): i for i, v in enumerate(vs)}
    expected = []
    for v in vs:
        total = 0.0
        for i in range(6):
            flipped = v.clone()
            flipped[i] = 1 - flipped[i]
            a, b = log_p[index[tuple(v.tolist())]], log_p[index[tuple(flipped.tolist())]]
            total += float(a - torch.logaddexp(a, b))
        expected.append(total)
    exact = rbm.pseudo_log_likelihood(vs)
    assert torch.allclose(exact, torch.tensor(expected, dtype=torch.float64), atol=1e-12)
    # the one-bit estimate, n_v * log p(v_i | v_-i) for a uniform i, is unbiased for the exact sum
    n = 20000
    v = vs[[5, 37]].repeat_interleave(n, 0)
    draws = rbm.pseudo_log_likelihood(
        v, exact=False, generator=torch.Generator().manual_seed(5)
    ).view(2, n)
    z = (draws.mean(1) - exact[[5, 37]]) / (draws.std(1) / math.sqrt(n))
    assert float(z.abs().max()) < Z_TOL


def test_reconstruction_error_formulas():
    rbm = random_rbm(6, 4, seed=6)
    v = binary_states(6)[::7]
    recon = torch.sigmoid(rbm.visible_bias + rbm.hidden_probabilities(v) @ rbm.weight.T)
    ce = -(v * torch.log(recon) + (1 - v) * torch.log1p(-recon)).sum(1)
    assert torch.allclose(rbm.reconstruction_error(v), ce, atol=1e-10)
    assert torch.allclose(
        rbm.reconstruction_error(v, kind="squared"), ((v - recon) ** 2).sum(1), atol=1e-12
    )
    with pytest.raises(ValueError, match="kind"):
        rbm.reconstruction_error(v, kind="l1")


def cd_gradient(rbm, v_pos, v_neg):
    """The CD/PCD gradient by autograd: of mean F(v_pos) - mean F(v_neg), negatives held fixed."""
    params = [p.clone().requires_grad_(True) for p in rbm.parameters()]
    x_pos, x_neg = (torch.addmm(params[2], v, params[0]) for v in (v_pos, v_neg))
    gap = (
        core.log_weight(v_neg, x_neg, params[1]).mean()
        - core.log_weight(v_pos, x_pos, params[1]).mean()
    )
    return torch.autograd.grad(gap, params)


@pytest.mark.parametrize("beta", [1.0, 0.35])
def test_the_core_gibbs_step_leaves_the_annealed_distribution_invariant(beta):
    """Exact draws from f_beta (enumerated), one core Gibbs step, frequencies against f_beta."""
    rbm = random_rbm(4, 3, seed=12, scale=1.0)
    base = torch.tensor([0.5, -1.0, 0.2, 1.5], dtype=torch.float64)
    vs = binary_states(4)
    x = core.hidden_logits(vs, rbm.weight, rbm.hidden_bias)
    log_f = core.log_weight(vs, x, rbm.visible_bias - base, beta) + vs @ base
    p = torch.softmax(log_f, 0)
    n = 40000
    g = torch.Generator().manual_seed(13)
    start = vs[torch.multinomial(p, n, replacement=True, generator=g)]
    x0 = core.hidden_logits(start, rbm.weight, rbm.hidden_bias)
    out, x1 = core.gibbs_step(x0, *rbm.parameters(), beta=beta, base_bias=base, generator=g)
    assert torch.equal(x1, core.hidden_logits(out, rbm.weight, rbm.hidden_bias))
    freq = torch.bincount((out * 2 ** torch.arange(4.0)).sum(1).long(), minlength=16) / n
    z = (freq.double() - p) / torch.sqrt(p * (1 - p) / n)
    assert float(z.abs().max()) < Z_TOL, z


def test_the_free_energy_is_the_cores_log_weight_and_the_gibbs_step_is_the_models():
    rbm = random_rbm(6, 4, seed=14, scale=0.5)
    v = binary_states(6)
    x = core.hidden_logits(v, rbm.weight, rbm.hidden_bias)
    hand = -(v @ rbm.visible_bias) - torch.nn.functional.softplus(x).sum(1)
    assert torch.allclose(rbm.free_energy(v), hand, atol=1e-12)
    g1, g2 = (torch.Generator().manual_seed(15) for _ in range(2))
    once = rbm.gibbs(v, 3, generator=g1)
    for _ in range(3):
        v, x = core.gibbs_step(x, *rbm.parameters(), generator=g2)
    assert torch.equal(once, v)


@pytest.mark.parametrize(
    "persistent, weight_decay, momentum", [(False, 0.0, 0.0), (True, 0.0, 0.0), (False, 0.3, 0.5)]
)
def test_one_fit_step_is_the_hand_derived_update(persistent, weight_decay, momentum):
    """Replay fit's random draws (documented order; each layer carries one extra always-on unit) by
    hand."""
    rbm = random_rbm(7, 5, seed=9, scale=0.3)
    before = rbm.copy()
    data = torch.bernoulli(
        torch.full((12, 7), 0.4, dtype=torch.float64), generator=torch.Generator().manual_seed(1)
    )
    rbm.fit(
        data,
        n_epochs=1,
        batch_size=12,
        learning_rate=0.1,
        k=2,
        persistent=persistent,
        momentum=momentum,
        weight_decay=weight_decay,
        generator=torch.Generator().manual_seed(2),
        progress=False,
    )
    g = torch.Generator().manual_seed(2)
    v_pos = data[torch.randperm(12, generator=g)]

    def with_one(p):
        return torch.cat([p, torch.ones(p.shape[0], 1, dtype=p.dtype)], 1)

    if persistent:
        h = torch.zeros(12, 5, dtype=torch.float64)
    else:
        h = torch.bernoulli(with_one(before.hidden_probabilities(v_pos)), generator=g)[:, :5]
    for _ in range(2):
        v_neg = torch.bernoulli(with_one(before.visible_probabilities(h)), generator=g)[:, :7]
        h = torch.bernoulli(with_one(before.hidden_probabilities(v_neg)), generator=g)[:, :5]
    g_w, g_b, g_c = cd_gradient(before, v_pos, v_neg)
    assert torch.allclose(
        rbm.weight, before.weight - 0.1 * (g_w + weight_decay * before.weight), atol=1e-12
    )
    assert torch.allclose(rbm.visible_bias, before.visible_bias - 0.1 * g_b, atol=1e-12)
    assert torch.allclose(rbm.hidden_bias, before.hidden_bias - 0.1 * g_c, atol=1e-12)


def test_the_learning_rate_schedule_scales_each_update():
    data = torch.bernoulli(
        torch.full((12, 7), 0.4, dtype=torch.float64), generator=torch.Generator().manual_seed(1)
    )
    steps = []

    def fitted(schedule):
        rbm = random_rbm(7, 5, seed=9, scale=0.3)
        rbm.fit(
            data,
            n_epochs=2,
            batch_size=6,  # two updates per epoch, four in all
            schedule=schedule,
            generator=torch.Generator().manual_seed(2),
            progress=False,
        )
        return rbm

    def recorded(t):
        steps.append(t)
        return 1.0 - t / 4

    linear, by_hand = fitted("linear"), fitted(recorded)
    assert steps == [0, 1, 2, 3]
    assert torch.equal(linear.weight, by_hand.weight)
    constant, ones = fitted("constant"), fitted(lambda t: 1.0)
    assert torch.equal(constant.weight, ones.weight)
    assert not torch.allclose(constant.weight, linear.weight)


def test_pcd_training_on_digits_raises_the_exact_log_likelihood():
    from ebmlib.data import load_digits_binary

    train, test = load_digits_binary()
    rbm = BernoulliRBM(64, 8, generator=torch.Generator().manual_seed(0))
    start = float(rbm.log_likelihood(test, rbm.log_partition_exact()).mean())
    assert start == pytest.approx(-64 * math.log(2), abs=0.1)
    calls = []
    history = rbm.fit(
        train,
        n_epochs=3,
        batch_size=20,
        learning_rate=0.05,
        momentum=0.0,
        schedule="constant",
        generator=torch.Generator().manual_seed(1),
        progress=False,
        callbacks=[lambda epoch, logs: calls.append(epoch)],
    )
    assert calls == [1, 2, 3] and history["epoch"] == [1, 2, 3]
    end = float(rbm.log_likelihood(test, rbm.log_partition_exact()).mean())
    assert end > -30.0 > start
    # a callback can stop training
    history = rbm.fit(
        train,
        n_epochs=5,
        batch_size=20,
        learning_rate=0.05,
        progress=False,
        callbacks=lambda epoch, logs: epoch == 2,
    )
    assert history.stopped_early and history["epoch"] == [1, 2]


@pytest.mark.parametrize(
    "kwargs, err, match",
    [
        (dict(n_epochs=0), ValueError, "n_epochs"),
        (dict(batch_size=0), ValueError, "batch_size"),
        (dict(learning_rate=-0.1), ValueError, "learning_rate"),
        (dict(learning_rate=float("nan")), ValueError, "learning_rate"),
        (dict(k=0), ValueError, "k must be"),
        (dict(momentum=1.0), ValueError, "momentum"),
        (dict(weight_decay=-1.0), ValueError, "weight_decay"),
        (dict(generator=0), TypeError, "generator"),
        (dict(schedule="cosine"), ValueError, "schedule"),
        (dict(schedule=0.5), ValueError, "schedule"),
    ],
)
def test_fit_rejects_bad_arguments(kwargs, err, match):
    rbm = BernoulliRBM(4, 2)
    args = dict(n_epochs=1, batch_size=2, learning_rate=0.1) | kwargs
    with pytest.raises(err, match=match):
        rbm.fit(torch.ones(3, 4, dtype=torch.float64), **args, progress=False)


def test_methods_reject_bad_data():
    rbm = BernoulliRBM(4, 2)
    with pytest.raises(ValueError, match="only 0 and 1"):
        rbm.fit(
            torch.full((3, 4), 0.5, dtype=torch.float64),
            n_epochs=1,
            batch_size=2,
            learning_rate=0.1,
        )
    with pytest.raises(ValueError, match="4 columns"):
        rbm.pseudo_log_likelihood(torch.ones(3, 5, dtype=torch.float64))
    with pytest.raises(ValueError, match="empty batch"):
        rbm.gibbs(torch.ones(0, 4, dtype=torch.float64))
    with pytest.raises(ValueError, match="NaN"):
        rbm.free_energy(torch.full((2, 4), float("nan"), dtype=torch.float64))
    with pytest.raises(TypeError, match="floating-point"):
        rbm.free_energy(torch.ones(2, 4, dtype=torch.int64))
    with pytest.raises(ValueError, match="log_z must be a finite scalar"):
        rbm.log_likelihood(torch.ones(2, 4, dtype=torch.float64), float("inf"))
    with pytest.raises(ValueError, match="n_hidden must be"):
        BernoulliRBM(4, 0)
    with pytest.raises(ValueError, match="same number of rows"):
        rbm.energy(torch.ones(2, 4, dtype=torch.float64), torch.ones(3, 2, dtype=torch.float64))


def test_fit_reports_divergence():
    """Non-finite weights after an epoch stop training with a message (here forced by an infinite
    start)."""
    rbm = BernoulliRBM(4, 2, generator=torch.Generator().manual_seed(0))
    rbm.weight[0, 0] = float("inf")
    with pytest.raises(FloatingPointError, match="non-finite in epoch 1: lower learning_rate"):
        rbm.fit(
            torch.ones(4, 4, dtype=torch.float64),
            n_epochs=2,
            batch_size=2,
            learning_rate=0.1,
            generator=torch.Generator().manual_seed(1),
            progress=False,
        )


def test_from_sklearn_reads_a_fitted_scikit_learn_model():
    from sklearn.neural_network import BernoulliRBM as SklearnRBM

    data = torch.bernoulli(
        torch.full((40, 6), 0.3, dtype=torch.float64), generator=torch.Generator().manual_seed(0)
    )
    sk = SklearnRBM(n_components=3, n_iter=2, random_state=0).fit(data.numpy())
    rbm = BernoulliRBM.from_sklearn(sk)
    assert (rbm.n_visible, rbm.n_hidden) == (6, 3)
    # scikit-learn's free energy is -v.b - sum_j log(1 + exp(c_j + v W_j)): the same formula
    assert torch.allclose(
        rbm.free_energy(data), torch.tensor(sk._free_energy(data.numpy())), atol=1e-12
    )
    assert torch.allclose(
        rbm.hidden_probabilities(data), torch.tensor(sk.transform(data.numpy())), atol=1e-12
    )
    with pytest.raises(TypeError, match="fitted scikit-learn BernoulliRBM"):
        BernoulliRBM.from_sklearn(SklearnRBM())
