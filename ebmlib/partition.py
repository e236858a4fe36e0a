r"""The partition function :math:`Z(\theta)` of RBMs by annealing, and importance-sampling
estimates re-exported from :mod:`ebmlib.weights`.

For RBMs too large to enumerate, :func:`ais_log_partition` runs annealed importance sampling
:cite:p:`neal2001ais,salakhutdinov2008` and :func:`reverse_ais` its reverse, RAISE
:cite:p:`burda2015`, which bound the log-likelihood from the two sides. The importance-sampling
estimate of :math:`\log Z` (paper Eq. 7), the self-normalized weights and the effective sample
size live one layer down, in :mod:`ebmlib.weights`, and are importable from here too.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ._progress import progress_bar
from .rbm import BernoulliRBM, core
from .validation import (
    check_batch,
    check_binary,
    check_finite,
    check_generator,
    check_int,
    check_tensor,
)
from .weights import (
    LogZEstimate,
    ess,
    log_mean_exp_with_stderr,
    log_partition_is,
    self_normalized_weights,
)

__all__ = [
    "log_partition_is",
    "ess",
    "self_normalized_weights",
    "ais_schedule",
    "published_ais_schedule",
    "base_rate_bias",
    "log_mean_exp_with_stderr",
    "LogZEstimate",
    "ais_log_partition",
    "ais_log_weights",
    "reverse_ais",
]


_PUBLISHED_SEGMENTS = ((0.5, 1e-3), (0.9, 1e-4), (1.0, 1e-5))


def published_ais_schedule(dtype: torch.dtype = torch.float64) -> torch.Tensor:
    r"""The inverse temperatures of :cite:t:`salakhutdinov2008`: steps of 1e-3 on [0, 0.5], 1e-4 on
    [0.5, 0.9] and 1e-5 on [0.9, 1].

    Returns
    -------
    torch.Tensor, shape (14501,)
        Increasing from exactly 0 to exactly 1.
    """
    return ais_schedule(
        1
        + sum(
            round((end - start) / step)
            for (start, _), (end, step) in zip(
                ((0.0, None),) + _PUBLISHED_SEGMENTS[:-1], _PUBLISHED_SEGMENTS, strict=True
            )
        ),
        dtype=dtype,
    )


def ais_schedule(n_temperatures: int, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    r"""An AIS schedule of ``n_temperatures`` inverse temperatures with the shape of the published
    one.

    The steps are split between the segments [0, 0.5], [0.5, 0.9] and [0.9, 1] in the published
    proportions 500 : 4000 : 10000, and are uniform within each segment, so that the schedule is
    fine where the distributions change fastest, near :math:`\beta = 1`. ``ais_schedule(14501)`` is
    :func:`published_ais_schedule`.

    Parameters
    ----------
    n_temperatures : int >= 2
        Number of inverse temperatures, including 0 and 1.

    Returns
    -------
    torch.Tensor, shape (n_temperatures,)
    """
    n_temperatures = check_int(n_temperatures, "n_temperatures", minimum=2)
    n_steps = n_temperatures - 1
    if n_steps < 3:
        return torch.linspace(0.0, 1.0, n_temperatures, dtype=dtype, device="cpu")
    weights = [
        round((end - start) / step)
        for (start, _), (end, step) in zip(
            ((0.0, None),) + _PUBLISHED_SEGMENTS[:-1], _PUBLISHED_SEGMENTS, strict=True
        )
    ]
    counts = [max(1, round(n_steps * w / sum(weights))) for w in weights[:-1]]
    counts.append(n_steps - sum(counts))
    pieces, start = [], 0.0
    for (end, _), count in zip(_PUBLISHED_SEGMENTS, counts, strict=True):
        pieces.append(torch.linspace(start, end, count + 1, dtype=dtype, device="cpu")[:-1])
        start = end
    return torch.cat(pieces + [torch.ones(1, dtype=dtype, device="cpu")])


def _check_schedule(betas, dtype) -> torch.Tensor:
    if isinstance(betas, torch.Tensor):
        betas = check_tensor(betas, "betas").to(dtype)
        if betas.ndim != 1 or betas.numel() < 2:
            raise ValueError(
                f"betas must be a 1-D tensor of at least 2 inverse temperatures, got shape "
                f"{tuple(betas.shape)}"
            )
        check_finite(betas, "betas")
        if (
            float(betas[0]) != 0.0
            or float(betas[-1]) != 1.0
            or not bool((betas[1:] > betas[:-1]).all())
        ):
            raise ValueError("betas must increase strictly from exactly 0 to exactly 1")
        return betas
    return ais_schedule(check_int(betas, "betas", minimum=2), dtype=dtype)


def base_rate_bias(data: torch.Tensor) -> torch.Tensor:
    r"""Visible biases of the base-rate model: the logits of the smoothed pixel marginals of
    ``data``.

    :math:`b^A_i = \log\frac{p_i}{1-p_i}` with :math:`p_i = (\sum_n v_{ni} + 1)/(N + 2)` (Laplace's
    rule, so that a pixel that is always off gets a finite bias).

    Parameters
    ----------
    data : torch.Tensor, shape (N, n_visible)
        Binary training data.

    Returns
    -------
    torch.Tensor, shape (n_visible,)
    """
    data = check_batch(data, "data")
    p = (data.sum(0) + 1.0) / (data.shape[0] + 2.0)
    return torch.log(p) - torch.log1p(-p)


class _AnnealedRBM:
    r"""The path :math:`f_\beta` of :mod:`ebmlib.rbm.core` from the base-rate model
    (:math:`\beta = 0`, hidden units uniform) to the RBM's marginal (:math:`\beta = 1`), with the
    core's Gibbs kernels."""

    def __init__(self, rbm, base_bias: torch.Tensor | None):
        if not isinstance(rbm, BernoulliRBM):
            raise TypeError(f"rbm must be an ebmlib.rbm.BernoulliRBM, got {type(rbm).__name__}")
        self.W, self.b, self.c = (p.detach() for p in rbm.parameters())
        self.dtype = self.W.dtype
        self.base = torch.zeros_like(self.b) if base_bias is None else base_bias.to(self.dtype)
        self.b_gap = self.b - self.base
        # log Z_A: visible units independent with logits b_A, hidden units uniform
        self.log_z_base = F.softplus(self.base).sum() + self.W.shape[1] * math.log(2.0)

    def hidden_input(self, v):
        return core.hidden_logits(v, self.W, self.c)

    def log_f_gap(self, v, x, hi: float, lo: float) -> torch.Tensor:
        r""":math:`\log f_{hi}(v) - \log f_{lo}(v)`, given ``x = c + vW``; shape (R,)."""
        return core.log_weight(v, x, self.b_gap, hi) - core.log_weight(v, x, self.b_gap, lo)

    def transition(self, x, beta: float, generator):
        """One Gibbs step v -> h -> v' that leaves :math:`f_\beta` invariant; returns v', x'."""
        return core.gibbs_step(
            x, self.W, self.b, self.c, beta=beta, base_bias=self.base, generator=generator
        )


def ais_log_weights(
    rbm,
    *,
    n_runs: int = 100,
    betas=10000,
    generator: torch.Generator | None = None,
    data: torch.Tensor | None = None,
    progress: bool | None = None,
) -> torch.Tensor:
    r"""Each annealing run's estimate :math:`\log Z_0 + \log w_r` of an RBM's :math:`\log Z`, shape
    ``(n_runs,)``: the weights behind :func:`ais_log_partition`, which is their
    :func:`log_mean_exp_with_stderr`.

    Split them into groups (``log_w.view(groups, runs)``) and pass them to
    :func:`log_mean_exp_with_stderr` to get independent estimates of :math:`\log Z` from one batch.
    The arguments and the random stream are those of :func:`ais_log_partition`: with the same
    generator state, ``log_mean_exp_with_stderr(ais_log_weights(...))`` is
    ``ais_log_partition(...)``.
    """
    n_runs = check_int(n_runs, "n_runs")
    model = _AnnealedRBM(
        rbm, None if data is None else base_rate_bias(check_batch(data, "data", rbm.n_visible))
    )
    check_generator(generator, device=model.W.device)
    schedule = _check_schedule(betas, model.dtype).tolist()
    with torch.no_grad():
        v = torch.bernoulli(
            torch.sigmoid(model.base).expand(n_runs, -1).contiguous(), generator=generator
        )
        x = model.hidden_input(v)
        log_w = torch.zeros(n_runs, dtype=model.dtype, device=model.W.device)
        steps = progress_bar(
            range(1, len(schedule)), total=len(schedule) - 1, desc="AIS", progress=progress
        )
        for k in steps:
            log_w += model.log_f_gap(v, x, schedule[k], schedule[k - 1])
            if k < len(schedule) - 1:
                v, x = model.transition(x, schedule[k], generator)
        return log_w + model.log_z_base


def ais_log_partition(
    rbm,
    *,
    n_runs: int = 100,
    betas=10000,
    generator: torch.Generator | None = None,
    data: torch.Tensor | None = None,
    progress: bool | None = None,
) -> LogZEstimate:
    r"""Annealed importance sampling estimate of an RBM's :math:`\log Z`
    :cite:p:`neal2001ais,salakhutdinov2008`.

    ``n_runs`` chains start from exact samples of the base-rate model :math:`p_0` (zero weights,
    visible biases :math:`b_A`, see :func:`base_rate_bias`) and move through the distributions
    :math:`f_{\beta_k}(v) = e^{(1-\beta_k) b_A^\top v + \beta_k b^\top v}
    \prod_j(1+e^{\beta_k(c_j+v^\top W_{:j})})`
    by one Gibbs step at each inverse temperature. Each run's log weight is
    :math:`\log w = \sum_{k=1}^{K}[\log f_{\beta_k}(v_{k-1}) - \log f_{\beta_{k-1}}(v_{k-1})]`, and

    .. math::  \log\hat Z = \log Z_0 + \log\tfrac1R\textstyle\sum_r w_r,
               \qquad \log Z_0 = \sum_i \operatorname{softplus}(b^A_i) + n_h\log 2 .

    :math:`\hat Z` is unbiased, so :math:`\log\hat Z` is biased *down* (Jensen) and a log-likelihood
    computed from it is biased up; :func:`reverse_ais` gives the other side.

    Parameters
    ----------
    rbm : ebmlib.rbm.BernoulliRBM
    n_runs : int
        Independent annealing runs, simulated as one batch.
    betas : int or torch.Tensor
        The number of inverse temperatures in :func:`ais_schedule`, or an increasing 1-D tensor from
        0 to 1 (e.g. :func:`published_ais_schedule`).
    generator : torch.Generator, optional
        On the RBM's device.
    data : torch.Tensor, shape (N, n_visible), optional
        Training data for the base-rate biases; without it the base model is uniform
        (:math:`b_A = 0`).
    progress : bool, optional
        Progress bar over temperatures.

    Returns
    -------
    LogZEstimate
        ``(log_z, stderr)``: the scalar :math:`\log\hat Z` and its delta-method standard error
        :math:`\mathrm{sd}(w)/(\sqrt R\,\bar w)`. Each run's weight is :func:`ais_log_weights`
        (or ``ebmlib.ais_log_partition(rbm, ...).log_weights``).
    """
    return log_mean_exp_with_stderr(
        ais_log_weights(
            rbm, n_runs=n_runs, betas=betas, generator=generator, data=data, progress=progress
        )
    )


def reverse_ais(
    rbm,
    v: torch.Tensor,
    *,
    betas=10000,
    n_runs: int = 1,
    generator: torch.Generator | None = None,
    data: torch.Tensor | None = None,
    progress: bool | None = None,
) -> torch.Tensor:
    r"""Reverse annealed importance sampling (RAISE) estimates of :math:`\log p(v)` per data point
    :cite:p:`burda2015`.

    The chains start *at the data*, :math:`v_K = v`, and anneal backwards,
    :math:`v_{k-1}\sim T_{\beta_k}(\cdot\mid v_k)` (the Gibbs kernels of :func:`ais_log_partition`,
    which are reversible), down to the base-rate model. The weight

    .. math::  \log w = -F(v) - \log Z_0
               - \sum_{k=0}^{K-1}\big[\log f_{\beta_{k+1}}(v_k) - \log f_{\beta_k}(v_k)\big]

    is an unbiased estimate of :math:`p_{\rm ann}(v)`, the marginal of the forward annealing chain,
    which tends to :math:`p(v)` as the schedule gets finer. Hence
    :math:`E[\log\hat p(v)] \le \log p_{\rm ann}(v)`: a stochastic *lower* bound, the conservative
    side, while AIS's :math:`-F(v)-\log\hat Z` tends to over-estimate.

    Parameters
    ----------
    rbm : ebmlib.rbm.BernoulliRBM
    v : torch.Tensor, shape (n, n_visible)
        Data points whose log-probability is estimated (0/1).
    betas : int or torch.Tensor
        As in :func:`ais_log_partition`.
    n_runs : int
        Reverse chains per data point; their weights are averaged before the log.
    generator : torch.Generator, optional
    data : torch.Tensor, shape (N, n_visible), optional
        Training data for the base-rate biases (as in :func:`ais_log_partition`; not the points
        being scored).
    progress : bool, optional

    Returns
    -------
    torch.Tensor, shape (n,)
        :math:`\log\hat p(v)` for each row of ``v``.
    """

    n_runs = check_int(n_runs, "n_runs")
    model = _AnnealedRBM(
        rbm, None if data is None else base_rate_bias(check_batch(data, "data", rbm.n_visible))
    )
    check_generator(generator, device=model.W.device)
    v = check_binary(v, "v", rbm.n_visible, model.dtype)
    schedule = _check_schedule(betas, model.dtype).tolist()
    n = v.shape[0]
    with torch.no_grad():
        chain = v.repeat_interleave(
            n_runs, dim=0
        )  # (n * n_runs, n_visible), runs of a point adjacent
        x = model.hidden_input(chain)
        log_w = core.log_weight(chain, x, model.b) - model.log_z_base  # -F(v) - log Z_0
        steps = progress_bar(
            range(len(schedule) - 1, 0, -1),
            total=len(schedule) - 1,
            desc="reverse AIS",
            progress=progress,
        )
        for k in steps:
            chain, x = model.transition(x, schedule[k], generator)
            log_w -= model.log_f_gap(chain, x, schedule[k], schedule[k - 1])
    return torch.logsumexp(log_w.view(n, n_runs), dim=1) - math.log(n_runs)
