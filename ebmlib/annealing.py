r"""Annealed importance sampling (Neal 2001) for any energy, behind one function for RBMs and
continuous models.

For a continuous energy :math:`E` and a normalized base :math:`p_0 \propto e^{-E_0}` with known
:math:`\log Z_0` (a :class:`~ebmlib.GaussianEnergy`, say), the path of intermediate energies is

.. math::

    E_\beta(x) = (1-\beta)\,E_0(x) + \beta\,E(x),
    \qquad 0 = \beta_0 < \beta_1 < \dots < \beta_K = 1 .

Each run starts from an exact draw :math:`x \sim p_0`; at every temperature it adds
:math:`(\beta_k - \beta_{k-1})\,(E_0(x) - E(x))` to its log-weight and then moves :math:`x` by one
Hamiltonian Monte Carlo step that leaves :math:`p_{\beta_k} \propto e^{-E_{\beta_k}}` invariant. The
mean of the weights is an unbiased estimate of :math:`Z/Z_0`, so
:math:`\log\hat Z = \log Z_0 + \log\frac1R\sum_r w_r`, which is biased *downwards* in :math:`\log Z`
by Jensen's inequality (and so biased upwards in log-likelihood). The HMC step size is adapted from
one temperature to the next towards a target acceptance rate (Wu, Burda, Salakhutdinov & Grosse
2017), so no tuning is needed; every step at a given temperature is still an exact
:math:`p_{\beta_k}`-invariant kernel.

The runs live where ``base.sample`` puts them (the base's device and dtype); every tensor created
along the way follows, and a ``generator``, when given, must live on that device.

For a :class:`~ebmlib.rbm.BernoulliRBM` the same call runs the Gibbs-transition AIS of Salakhutdinov
& Murray (2008), :func:`ebmlib.partition.ais_log_partition`."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

import torch

from . import partition
from .rbm import BernoulliRBM
from .samplers import ChainState, _hmc
from .validation import check_batch, check_energy_output, check_generator, check_int, check_positive

__all__ = ["AISResult", "ais_log_partition", "sigmoid_schedule"]


def sigmoid_schedule(
    n_temperatures: int, *, delta: float = 4.0, dtype: torch.dtype = torch.float64
) -> torch.Tensor:
    r"""Inverse temperatures :math:`0=\beta_0<\dots<\beta_{K}=1` spaced finely at both ends, shape
    ``(n,)``.

    :math:`\beta_k \propto \operatorname{sigmoid}(\delta(2k/(n-1) - 1))`, shifted and scaled to run
    from 0 to 1 (Grosse, Ghahramani & Adams 2015). Moving from a broad base to a narrow continuous
    target, the variance of the log-weight increments is largest near :math:`\beta = 0`, where the
    published RBM schedule (:func:`ebmlib.partition.ais_schedule`) is coarsest; this schedule is the
    default for continuous models."""
    n_temperatures = check_int(n_temperatures, "n_temperatures", minimum=2)
    delta = check_positive(delta, "delta")
    s = torch.sigmoid(torch.linspace(-delta, delta, n_temperatures, dtype=dtype, device="cpu"))
    return (s - s[0]) / (s[-1] - s[0])


class AISResult(NamedTuple):
    """What an AIS run returns. The first two fields are always the estimate and its standard
    error."""

    #: :math:`\log\hat Z`, a 0-d tensor.
    log_z: torch.Tensor
    #: Its standard error, by the delta method over the runs' weights (a 0-d tensor).
    stderr: torch.Tensor
    #: Each run's :math:`\log Z_0 + \log w_r`, shape ``(n_runs,)``.
    log_weights: torch.Tensor
    #: The HMC step size used at each temperature, shape ``(K,)`` (empty for RBMs).
    step_sizes: torch.Tensor
    #: The HMC acceptance rate at each temperature, shape ``(K,)`` (empty for RBMs).
    acceptance: torch.Tensor


def _tempered(energy: Callable, base: Callable, beta: float) -> Callable:
    return lambda x: (1.0 - beta) * base(x) + beta * energy(x)


def _ais_continuous(
    energy, base, *, n_runs, betas, n_leapfrog, step_size, target_acceptance, generator
) -> AISResult:
    if not hasattr(base, "sample") or not hasattr(base, "log_partition"):
        raise TypeError(
            "base must be a normalized energy with .sample(n, generator=) and .log_partition(), "
            f"such as GaussianEnergy; got {type(base).__name__}"
        )
    n_leapfrog = check_int(n_leapfrog, "n_leapfrog")
    eps = check_positive(step_size, "step_size")
    target_acceptance = float(target_acceptance)
    if not 0.0 < target_acceptance < 1.0:
        raise ValueError(f"target_acceptance must lie in (0, 1), got {target_acceptance}")
    with torch.no_grad():
        x = check_batch(base.sample(n_runs, generator=generator), "base.sample(n_runs)").detach()
        log_z0 = base.log_partition().detach().to(x)
    check_generator(generator, device=x.device)
    if isinstance(betas, int) and not isinstance(betas, bool):
        schedule = sigmoid_schedule(betas, dtype=x.dtype)
    else:
        schedule = partition._check_schedule(betas, x.dtype)
    schedule = schedule.tolist()  # Python floats: no device round trip per temperature
    log_w = torch.zeros(n_runs, dtype=x.dtype, device=x.device)
    steps, accepts = [], []
    for k in range(1, len(schedule)):
        b_prev, b = schedule[k - 1], schedule[k]
        with torch.no_grad():
            e0 = check_energy_output(base(x), n_runs, "base")
            e1 = check_energy_output(energy(x), n_runs, "energy")
        log_w = log_w + (b - b_prev) * (e0 - e1)
        state, acc = _hmc(
            _tempered(energy, base, b),
            ChainState(x),
            step_size=eps,
            n_leapfrog=n_leapfrog,
            generator=generator,
        )
        x = state.x
        rate = float(acc.to(x.dtype).mean())
        steps.append(eps)
        accepts.append(rate)
        # Robbins-Monro-style multiplicative adaptation for the next temperature (bounded factor
        # per step).
        eps = eps * math.exp(max(-0.5, min(0.5, 2.0 * (rate - target_acceptance))))
    if not torch.isfinite(log_w).all():
        raise FloatingPointError(
            "AIS produced non-finite log-weights: check the energy and the base scale"
        )
    log_mean, stderr = partition.log_mean_exp_with_stderr(log_w)
    return AISResult(
        log_z0 + log_mean,
        stderr,
        log_z0 + log_w,
        torch.tensor(steps, dtype=x.dtype, device=x.device),
        torch.tensor(accepts, dtype=x.dtype, device=x.device),
    )


def ais_log_partition(
    model,
    *,
    base=None,
    n_runs: int = 100,
    betas=10000,
    generator: torch.Generator | None = None,
    data: torch.Tensor | None = None,
    n_leapfrog: int = 5,
    step_size: float = 0.1,
    target_acceptance: float = 0.65,
) -> AISResult:
    r"""Estimate :math:`\log Z` of ``model`` by annealed importance sampling.

    Parameters
    ----------
    model : BernoulliRBM or callable
        An RBM (Gibbs transitions, base-rate start; :func:`ebmlib.partition.ais_log_partition`), or
        any energy mapping ``(n, d)`` to ``(n,)`` (HMC transitions from ``base``).
    base : normalized energy, optional
        Required for a continuous ``model``: it must provide ``sample(n, generator=)`` and
        ``log_partition()``, like :class:`~ebmlib.GaussianEnergy`. Choose it to cover the model's
        mass (a Gaussian fitted to the data is a good default).
    n_runs : int
        Independent annealing runs :math:`R`.
    betas : int or torch.Tensor
        The number of temperatures of the default schedule (for RBMs the published one,
        :func:`ebmlib.partition.ais_schedule`; for continuous models :func:`sigmoid_schedule`), or
        an increasing 1-D tensor from 0 to 1.
    generator : torch.Generator, optional
    data : torch.Tensor, optional
        RBMs only: binary data whose marginals set the base-rate model.
    n_leapfrog, step_size, target_acceptance
        Continuous models only: leapfrog steps per HMC move, the first step size, and the acceptance
        rate towards which the step size is adapted from one temperature to the next.

    Returns
    -------
    AISResult
        ``(log_z, stderr, log_weights, step_sizes, acceptance)``; the first two are 0-d tensors.
    """
    n_runs = check_int(n_runs, "n_runs", minimum=2)
    check_generator(generator)
    if isinstance(model, BernoulliRBM):
        if base is not None:
            raise ValueError(
                "base is for continuous models; an RBM anneals from its base-rate model (data=)"
            )
        log_w = partition.ais_log_weights(
            model, n_runs=n_runs, betas=betas, generator=generator, data=data
        )
        log_z, stderr = partition.log_mean_exp_with_stderr(log_w)
        empty = log_w.new_zeros(0)
        return AISResult(log_z, stderr, log_w, empty, empty)
    if not callable(model):
        raise TypeError(
            f"model must be a BernoulliRBM or an energy callable, got {type(model).__name__}"
        )
    if base is None:
        raise ValueError(
            "a continuous model needs a normalized base, e.g. base=GaussianEnergy(mean, scale)"
        )
    if data is not None:
        raise ValueError(
            "data sets an RBM's base-rate model; for a continuous model fit the base instead"
        )
    return _ais_continuous(
        model,
        base,
        n_runs=n_runs,
        betas=betas,
        n_leapfrog=n_leapfrog,
        step_size=step_size,
        target_acceptance=target_acceptance,
        generator=generator,
    )
