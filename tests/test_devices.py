"""Device- and dtype-ready neural code: samplers, losses, the training loop, tempering and
continuous AIS run where their inputs live, in their inputs' dtype.

Three axes:

* float32 and float64 inputs on the CPU: every output keeps the input dtype;
* the ``meta`` device (shapes without data) for the parts that are pure tensor operations: one step
  of each kernel (the Metropolis-Hastings test is a tensor comparison) and every loss;
* ``meta`` as the *default* device while the inputs stay on the CPU: both RBMs (fits, Gibbs,
  proxies, exact log Z), AIS and reverse AIS, and tempering build no tensor off their inputs'
  device (one that named no device would land on meta and fail);
* ``cuda``, when a GPU is present (skipped otherwise), with a generator on the GPU: the rule is that
  a generator lives on its inputs' device.
"""

import pytest
import torch

import ebmlib
from ebmlib import (
    GaussianEnergy,
    MLPEnergy,
    ReplayBuffer,
    cd_loss,
    denoising_score_matching_loss,
    nce_loss,
    parallel_tempering,
    score_matching_loss,
    sliced_score_matching_loss,
    train,
)
from ebmlib.proposals import GaussianProposal
from ebmlib.samplers import (
    KERNELS,
    METHODS,
    ChainState,
    importance_resampling,
    independent_metropolis,
    init_state,
    sample,
    step,
)
from ebmlib.validation import check_generator

CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device here")
DEVICES = ["cpu", pytest.param("cuda", marks=CUDA)]
DTYPES = [torch.float32, torch.float64]


def _gen(device, seed=0):
    return torch.Generator(device=device).manual_seed(seed)


def _points(n, d, dtype, device, seed=1):
    return torch.randn(n, d, generator=_gen(device, seed), dtype=dtype, device=device)


def _mlp(dtype, device, dim=2):
    return MLPEnergy(dim, 8, generator=torch.Generator().manual_seed(2), dtype=dtype).to(device)


def _same_place(t, dtype, device):
    assert t.dtype == dtype, f"dtype {t.dtype}, expected {dtype}"
    assert t.device.type == torch.device(device).type, f"device {t.device}, expected {device}"


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("method", METHODS)
def test_sample_keeps_dtype_and_device(method, dtype, device):
    energy = _mlp(dtype, device)
    x0 = _points(6, 2, dtype, device)
    x, info = sample(
        energy,
        x0,
        method=method,
        n_steps=3,
        step_size=0.05,
        n_leapfrog=2,
        generator=_gen(device),
        return_chain=True,
    )
    _same_place(x, dtype, device)
    _same_place(info["chain"], dtype, device)
    state = info["state"]
    if state.energy is not None:
        _same_place(state.energy, dtype, device)
    # with bounds too (the box is built on x0's device, in its dtype)
    x, _ = sample(
        energy,
        x0.clamp(-3, 3),
        method=method,
        n_steps=2,
        step_size=0.05,
        n_leapfrog=2,
        generator=_gen(device),
        bounds=[(-3.0, 3.0)] * 2,
    )
    _same_place(x, dtype, device)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_independent_samplers_keep_dtype_and_device(dtype, device):
    target = GaussianEnergy([0.0, 0.0], 1.0, dtype=dtype).to(device)
    proposal = GaussianProposal([0.0, 0.0], 1.5, dtype=dtype)
    proposal.mean, proposal.std = proposal.mean.to(device), proposal.std.to(device)
    x, info = independent_metropolis(
        target, proposal, n_steps=5, n_chains=4, generator=_gen(device), return_chain=True
    )
    _same_place(x, dtype, device)
    _same_place(info["chain"], dtype, device)
    x, _ = importance_resampling(target, proposal, n_samples=5, generator=_gen(device))
    _same_place(x, dtype, device)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_losses_keep_dtype_and_device(dtype, device):
    energy = _mlp(dtype, device)
    x = _points(8, 2, dtype, device)
    noise = _points(16, 2, dtype, device, seed=3)
    g = _gen(device)
    log_z = torch.zeros((), dtype=dtype, device=device, requires_grad=True)
    log_q = -0.5 * (noise**2).sum(1)
    losses = {
        "cd": cd_loss(energy, x, noise),
        "sm": score_matching_loss(energy, x),
        "dsm": denoising_score_matching_loss(energy, x, 0.1, generator=g),
        "ssm": sliced_score_matching_loss(energy, x, 2, generator=g),
        "ssm-rademacher": sliced_score_matching_loss(
            energy, x, 2, generator=g, projection="rademacher"
        ),
        "nce": nce_loss(energy, log_z, x, noise, -0.5 * (x**2).sum(1), log_q),
    }
    for name, loss in losses.items():
        assert loss.shape == (), name
        _same_place(loss, dtype, device)
        loss.backward()
    assert all(p.grad.dtype == dtype for p in energy.parameters())


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_replay_buffer_and_train_keep_dtype_and_device(dtype, device):
    energy = _mlp(dtype, device)
    data = _points(32, 2, dtype, device)
    g = _gen(device)
    buffer = ReplayBuffer(
        _points(20, 2, dtype, device, seed=4),
        restart_fn=lambda n, gen: torch.randn(n, 2, generator=gen, dtype=dtype, device=device),
        restart_prob=0.5,
    )
    x_neg, _ = buffer.negatives(
        energy, 10, method="langevin", n_steps=2, step_size=0.01, generator=g
    )
    _same_place(x_neg, dtype, device)
    _same_place(buffer.states, dtype, device)

    def loss_fn(t):
        neg, info = buffer.negatives(
            energy, 8, method="mala", n_steps=1, step_size=0.01, generator=g
        )
        return cd_loss(energy, data[8 * (t % 4) : 8 * (t % 4 + 1)], neg), {
            "acc": info["acceptance_rate"]
        }

    history = train(loss_fn, energy.parameters(), n_updates=3, progress=False)
    assert history["step"] == [0, 1, 2]
    for p in energy.parameters():
        _same_place(p, dtype, device)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("method", ["rw_metropolis", "mala", "hmc"])
def test_parallel_tempering_keeps_dtype_and_device(method, dtype, device):
    energy = _mlp(dtype, device)
    x, info = parallel_tempering(
        energy,
        _points(4, 2, dtype, device),
        betas=[1.0, 0.5, 0.25],
        n_steps=4,
        step_size=0.05,
        method=method,
        n_leapfrog=2,
        generator=_gen(device),
        return_chain=True,
    )
    _same_place(x, dtype, device)
    _same_place(info["x_all"], dtype, device)
    _same_place(info["chain"], dtype, device)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_continuous_ais_keeps_dtype_and_device(dtype, device):
    target = GaussianEnergy([0.5, -0.5], 0.7, dtype=dtype).to(device)
    base = GaussianEnergy([0.0, 0.0], 1.0, dtype=dtype).to(device)
    res = ebmlib.ais_log_partition(
        target, base=base, n_runs=8, betas=6, n_leapfrog=2, generator=_gen(device)
    )
    for t in (res.log_z, res.stderr, res.log_weights, res.step_sizes, res.acceptance):
        _same_place(t, dtype, device)
    assert res.log_weights.shape == (8,) and res.step_sizes.shape == (5,)


# --- meta: shapes and placement without data ------------------------------------------------------


@pytest.mark.parametrize("method", METHODS)
def test_one_kernel_step_runs_on_meta(method):
    energy = _mlp(torch.float32, "meta")
    x = torch.empty(5, 2, device="meta")
    for state in (ChainState(x), init_state(energy, x)):
        new, acc = step(
            energy, state, method=method, step_size=0.1, n_leapfrog=2, generator=_gen("cpu")
        )
        assert new.x.shape == (5, 2) and new.x.device.type == "meta"
        assert new.x.dtype == torch.float32
        assert acc.shape == (5,) and acc.dtype == torch.bool and acc.device.type == "meta"
        new, _ = KERNELS[method](energy, new, step_size=0.1, bounds=[(-1.0, 1.0)] * 2)
        assert new.x.device.type == "meta"


def test_losses_run_on_meta():
    energy = _mlp(torch.float64, "meta")
    x = torch.empty(6, 2, dtype=torch.float64, device="meta")
    noise = torch.empty(12, 2, dtype=torch.float64, device="meta")
    log_z = torch.zeros((), dtype=torch.float64, device="meta")
    losses = [
        cd_loss(energy, x, noise),
        score_matching_loss(energy, x),
        denoising_score_matching_loss(energy, x, 0.1),
        sliced_score_matching_loss(energy, x, 2),
        nce_loss(energy, log_z, x, noise, x.new_empty(6), x.new_empty(12)),
    ]
    for loss in losses:
        assert loss.shape == () and loss.device.type == "meta" and loss.dtype == torch.float64


# --- nothing is created on the default device: inputs on the CPU, the default device meta ---------
# Inside ``with torch.device("meta")`` a factory call that names no device (torch.zeros(n),
# torch.randn(shape, generator=...)) makes a meta tensor: combined with the CPU inputs it raises,
# and a result on meta shows the leak. This finds, without a GPU, every tensor a model, sampler,
# loss, training loop or AIS would build off its inputs' device.


def _rbm_cases():
    from ebmlib import GaussianBernoulliRBM, ais_log_partition
    from ebmlib.partition import reverse_ais
    from ebmlib.rbm import BernoulliRBM, pseudo_likelihood_loss, ratio_matching_loss
    from ebmlib.rbm.proxies import pseudo_log_likelihood, reconstruction_error

    g = _gen("cpu", 5)
    v = (torch.rand(40, 6, generator=g) < 0.5).double()
    rbm = BernoulliRBM(6, 3, generator=g)
    grbm = GaussianBernoulliRBM(4, 3, generator=g)
    x = torch.randn(10, 4, generator=g, dtype=torch.float64)
    base = GaussianEnergy(torch.zeros(4, dtype=torch.float64), torch.eye(4, dtype=torch.float64))
    betas = torch.tensor([1.0, 0.5], dtype=torch.float64)

    def fit(**kw):
        model = rbm.copy()
        model.fit(v, n_epochs=1, batch_size=10, generator=_gen("cpu"), **kw)
        return model.weight

    return {
        "BernoulliRBM.fit (CD-1)": lambda: fit(),
        "BernoulliRBM.fit (PCD)": lambda: fit(persistent=True),
        "BernoulliRBM.fit (pseudo-likelihood)": lambda: fit(objective="pseudo_likelihood"),
        "BernoulliRBM.fit (ratio matching)": lambda: fit(objective="ratio_matching"),
        "BernoulliRBM.gibbs": lambda: rbm.gibbs(v, 2, generator=_gen("cpu")),
        "BernoulliRBM.log_partition_exact": lambda: rbm.log_partition_exact(),
        "pseudo_log_likelihood (one bit)": lambda: pseudo_log_likelihood(
            rbm, v, exact=False, generator=_gen("cpu")
        ),
        "pseudo_log_likelihood (exact)": lambda: pseudo_log_likelihood(rbm, v),
        "reconstruction_error": lambda: reconstruction_error(rbm, v),
        "pseudo_likelihood_loss": lambda: pseudo_likelihood_loss(rbm, v),
        "ratio_matching_loss": lambda: ratio_matching_loss(rbm, v),
        "ais_log_partition (RBM)": lambda: (
            ais_log_partition(rbm, n_runs=5, betas=10, generator=_gen("cpu"), data=v).log_z
        ),
        "reverse_ais": lambda: reverse_ais(rbm, v[:3], betas=10, generator=_gen("cpu")),
        "GaussianBernoulliRBM.gibbs": lambda: grbm.gibbs(x, 2, generator=_gen("cpu")),
        "GaussianBernoulliRBM.sample_exact": lambda: grbm.sample_exact(5, generator=_gen("cpu")),
        "GaussianBernoulliRBM.log_partition_exact": lambda: grbm.log_partition_exact(),
        "ais_log_partition (Gaussian-Bernoulli RBM)": lambda: (
            ais_log_partition(grbm, base=base, n_runs=5, betas=6, generator=_gen("cpu")).log_z
        ),
        "parallel_tempering": lambda: parallel_tempering(
            grbm, x[:4], method="mala", n_steps=3, step_size=0.1, betas=betas, generator=_gen("cpu")
        )[0],
    }


RBM_CASES = sorted(_rbm_cases())


@pytest.mark.parametrize("case", RBM_CASES)
def test_nothing_is_built_on_the_default_device(case):
    run = _rbm_cases()[case]
    with torch.device("meta"):
        out = run()
    out = out if isinstance(out, torch.Tensor) else out[0]
    assert out.device.type == "cpu", f"{case} returned a tensor on {out.device}"


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_rbms_keep_dtype_and_device(dtype, device):
    from ebmlib import GaussianBernoulliRBM, ais_log_partition
    from ebmlib.rbm import BernoulliRBM
    from ebmlib.rbm.proxies import pseudo_log_likelihood

    g = _gen(device)
    rbm = BernoulliRBM(6, 3, generator=torch.Generator().manual_seed(1)).to(device, dtype)
    v = (torch.rand(30, 6, generator=g, device=device) < 0.5).to(dtype)
    rbm.fit(v, n_epochs=1, batch_size=10, persistent=True, generator=g)
    for t in (*rbm.parameters(), rbm.gibbs(v, 2, generator=g), rbm.log_partition_exact(),
              pseudo_log_likelihood(rbm, v, exact=False, generator=g),
              ais_log_partition(rbm, n_runs=4, betas=5, generator=g).log_z):  # fmt: skip
        _same_place(t, dtype, device)
    grbm = GaussianBernoulliRBM(4, 3, generator=torch.Generator().manual_seed(2), dtype=dtype)
    grbm = grbm.to(device)
    x = _points(5, 4, dtype, device)
    for t in (grbm.gibbs(x, 2, generator=g), grbm.sample_exact(3, generator=g),
              grbm.log_partition_exact(), grbm(x)):  # fmt: skip
        _same_place(t, dtype, device)


# --- the generator lives on the inputs' device ----------------------------------------------------


def test_a_generator_on_another_device_is_refused_with_a_clear_error():
    with pytest.raises(ValueError, match=r"generator lives on cpu but the inputs on cuda"):
        check_generator(torch.Generator(), device=torch.device("cuda"))
    check_generator(torch.Generator(), device="cpu")
    check_generator(torch.Generator(), device="meta")  # no data: any generator will do
    if torch.cuda.is_available():
        x = torch.zeros(3, 2, device="cuda")
        with pytest.raises(ValueError, match="generator lives on cpu"):
            sample(
                GaussianEnergy([0.0, 0.0], 1.0).to("cuda"),
                x,
                method="langevin",
                n_steps=1,
                step_size=0.1,
                generator=torch.Generator(),
            )
