r"""Estimators of the partition function :math:`Z(\theta)` and of importance-sampling quality.

Importance sampling (paper Eq. 7, :cite:p:`geyer1994,ebmgradientnote`): with :math:`y_m \sim q`,

.. math::

    \hat Z(\theta) = \frac1M \sum_{m=1}^M \frac{\phi(y_m\mid\theta)}{q(y_m)} = \frac1M\sum_m w_m,
    \qquad \log\hat Z = \operatorname{logsumexp}_m(\log w_m) - \log M .

Everything is computed from *log* weights, so weights that underflow in linear space (common in the
tails, or in high dimension) are handled exactly.

For RBMs too large to enumerate, :func:`ais_log_partition` runs annealed importance sampling
:cite:p:`neal2001ais,salakhutdinov2008` and :func:`reverse_ais` its reverse, RAISE
:cite:p:`burda2015`, which bound the log-likelihood from the two sides."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ._progress import progress_bar
from .validation import check_batch, check_finite, check_generator, check_int, check_tensor

__all__ = [
    "log_partition_is",
    "ess",
    "self_normalized_weights",
    "log_partition_is_grid",
    "ais_schedule",
    "published_ais_schedule",
    "base_rate_bias",
    "log_mean_exp_with_stderr",
    "ais_log_partition",
    "reverse_ais",
]


def _check_log_weights(log_w, name: str) -> torch.Tensor:
    check_tensor(log_w, name)
    if log_w.ndim == 0 or log_w.shape[-1] == 0:
        raise ValueError(
            f"{name} needs at least one sample along its last dimension, "
            f"got shape {tuple(log_w.shape)}"
        )
    if bool(torch.isnan(log_w).any()) or bool((log_w == math.inf).any()):
        raise ValueError(f"{name} contains NaN or +inf")
    return log_w


def log_partition_is(log_phi: torch.Tensor, log_q: torch.Tensor) -> torch.Tensor:
    r"""Importance-sampling estimate :math:`\log\hat Z` (paper Eq. 7), along the last dimension.

    Parameters
    ----------
    log_phi : torch.Tensor, shape (..., M)
        :math:`\log\phi(y_m\mid\theta) = -E(y_m\mid\theta)` at the proposal samples.
    log_q : torch.Tensor, broadcastable to ``log_phi``
        :math:`\log q(y_m)`, the normalized proposal log density at the same samples.

    Returns
    -------
    torch.Tensor, shape (...)
        :math:`\log \frac1M\sum_m \exp(\log\phi_m - \log q_m)`; differentiable in both inputs.
        :math:`\hat Z` itself is unbiased for :math:`Z`; its log is biased downwards by Jensen's
        inequality.
    """
    _check_log_weights(log_phi, "log_phi")
    check_tensor(log_q, "log_q")
    check_finite(log_q, "log_q")
    try:
        log_w = log_phi - log_q
    except RuntimeError as err:
        raise ValueError(
            f"log_q of shape {tuple(log_q.shape)} does not broadcast to log_phi of shape "
            f"{tuple(log_phi.shape)}"
        ) from err
    if log_w.shape != log_phi.shape:
        raise ValueError(
            f"log_q of shape {tuple(log_q.shape)} must broadcast to log_phi's shape "
            f"{tuple(log_phi.shape)}"
        )
    return torch.logsumexp(log_w, dim=-1) - math.log(log_w.shape[-1])


def self_normalized_weights(log_w: torch.Tensor) -> torch.Tensor:
    r"""Normalized importance weights :math:`\bar w_m = w_m / \sum_j w_j` (paper Eq. 13), along the
    last dimension."""
    _check_log_weights(log_w, "log_w")
    return torch.softmax(log_w, dim=-1)


def ess(log_w: torch.Tensor) -> torch.Tensor:
    r"""Kish's effective sample size :math:`(\sum_m w_m)^2 / \sum_m w_m^2`, along the last
    dimension.

    It lies between 1 (one weight dominates) and :math:`M` (equal weights), and
    :math:`M/\mathrm{ESS} - 1` is the squared coefficient of variation of the weights, hence of the
    relative variance of :math:`\hat Z`.

    Parameters
    ----------
    log_w : torch.Tensor, shape (..., M)
        Log importance weights (unnormalized is fine).

    Returns
    -------
    torch.Tensor, shape (...)
    """
    _check_log_weights(log_w, "log_w")
    return torch.exp(2 * torch.logsumexp(log_w, dim=-1) - torch.logsumexp(2 * log_w, dim=-1))


def log_partition_is_grid(
    features: torch.Tensor, coefficients: torch.Tensor, *, chunk_size: int = 2
) -> torch.Tensor:
    r""":math:`\log\hat Z` for many independent runs and a whole grid of :math:`\theta` at once.

    For an exponential family and a Gaussian or Student-t proposal, the log weight is linear in a
    few features of each sample,

    .. math::

        \log w_{r\ell m} = \log\phi(y_{rm}\mid\theta_\ell) - \log q(y_{rm}\mid\theta_\ell)
        = \sum_k C_{\ell k}\, F_{rkm},

    (for example :math:`F = (y^2/2, \log q(y))`, :math:`C_\ell = (-1/\theta_\ell^2, -1)` for the
    model :math:`\mathcal N(0,\theta^2)` and a fixed proposal). Then :math:`\log\hat Z_{r\ell}` for
    every run :math:`r` and grid point :math:`\ell` is one batched matrix product followed by a
    log-mean-exp, evaluated in chunks of runs small enough to stay in the CPU cache. For stability
    the exponent is shifted by an upper bound on its maximum that follows from the range of each
    feature, folded into the matrix product; if that bound is ever so loose that a sum would
    underflow, the chunk is recomputed with the exact maximum. The exponentials are taken in base 2
    (cheaper than base :math:`e`, and exact up to rounding). This is what makes the book's 1000-run
    Monte-Carlo studies fast.

    Parameters
    ----------
    features : torch.Tensor, shape (R, K, M)
        Feature :math:`k` of sample :math:`m` of run :math:`r`.
    coefficients : torch.Tensor, shape (L, K)
        Coefficients :math:`C_{\ell k}` for each of :math:`L` parameter values.
    chunk_size : int
        Runs per chunk.

    Returns
    -------
    torch.Tensor, shape (R, L)
        :math:`\log\hat Z` (Eq. 7) for each run and parameter value. Not differentiable (computed in
        place).
    """
    check_tensor(features, "features")
    check_tensor(coefficients, "coefficients")
    chunk_size = check_int(chunk_size, "chunk_size")
    if features.ndim != 3 or features.shape[0] == 0 or features.shape[2] == 0:
        raise ValueError(
            f"features must have shape (R, K, M) with R, M >= 1, got {tuple(features.shape)}"
        )
    if coefficients.ndim != 2 or coefficients.shape[1] != features.shape[1]:
        raise ValueError(
            f"coefficients must have shape (L, {features.shape[1]}), "
            f"got {tuple(coefficients.shape)}"
        )
    check_finite(features, "features")
    check_finite(coefficients, "coefficients")
    n_runs, n_feat, n_samples = features.shape
    n_grid = coefficients.shape[0]
    coef2 = coefficients.to(features.dtype) / math.log(2)  # log2 w = C F / ln 2
    out = torch.empty(n_runs, n_grid, dtype=features.dtype)
    with torch.no_grad():
        f_max, f_min = features.amax(dim=2), features.amin(dim=2)  # (R, K)
        coef_batch = coef2.expand(chunk_size, n_grid, n_feat)
        for start in range(0, n_runs, chunk_size):
            stop = min(start + chunk_size, n_runs)
            # An upper bound on max_m log2 w from the per-run feature ranges:
            # sum_k max(C f_max, C f_min). Shifting by it inside the matrix product keeps every
            # power of 2 <= 1 without a separate max pass.
            shift = torch.maximum(
                coef2 * f_max[start:stop, None, :], coef2 * f_min[start:stop, None, :]
            ).sum(-1)
            log2_w = torch.baddbmm(
                -shift[..., None], coef_batch[: stop - start], features[start:stop]
            )
            total = log2_w.exp2_().sum(dim=-1)  # (c, L)
            underflow = total < 1e-280  # the bound was too loose: redo exactly
            if bool(underflow.any()):
                exact = torch.matmul(coef2, features[start:stop])
                peak = exact.amax(dim=-1)
                total = torch.where(underflow, (exact - peak[..., None]).exp2().sum(dim=-1), total)
                shift = torch.where(underflow, peak, shift)
            out[start:stop] = (total.log2_() + shift) * math.log(2)
    return out - math.log(n_samples)


# --------------------------------------------------------------------------------------------------
# Annealed importance sampling for RBMs
# --------------------------------------------------------------------------------------------------

#: Segments of the schedule of Salakhutdinov & Murray (2008): (end, step) pairs starting from
#: beta = 0.
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
        return torch.linspace(0.0, 1.0, n_temperatures, dtype=dtype)
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
        pieces.append(torch.linspace(start, end, count + 1, dtype=dtype)[:-1])
        start = end
    return torch.cat(pieces + [torch.ones(1, dtype=dtype)])


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
    r"""The path
    :math:`f_\beta(v) = e^{(1-\beta) b_A^\top v + \beta b^\top v}
    \prod_j (1 + e^{\beta(c_j + v^\top W_{:j})})`
    from the base-rate model (:math:`\beta = 0`, hidden units uniform) to the RBM's marginal
    :math:`e^{-F(v)}` (:math:`\beta = 1`), and its Gibbs kernels."""

    def __init__(self, rbm, base_bias: torch.Tensor | None):
        from .rbm import BernoulliRBM

        if not isinstance(rbm, BernoulliRBM):
            raise TypeError(f"rbm must be an ebmlib.rbm.BernoulliRBM, got {type(rbm).__name__}")
        self.W, self.b, self.c = (p.detach() for p in rbm.parameters())
        self.dtype = self.W.dtype
        self.base = torch.zeros_like(self.b) if base_bias is None else base_bias.to(self.dtype)
        self.b_gap = self.b - self.base
        # log Z_A: visible units independent with logits b_A, hidden units uniform
        self.log_z_base = F.softplus(self.base).sum() + self.W.shape[1] * math.log(2.0)

    def hidden_input(self, v):
        return torch.addmm(self.c, v, self.W)

    def log_f_gap(self, v, x, hi: float, lo: float) -> torch.Tensor:
        """:math:`\\log f_{hi}(v) - \\log f_{lo}(v)`, given ``x = c + vW``; shape (R,)."""
        return (hi - lo) * (v @ self.b_gap) + F.softplus(hi * x).sum(1) - F.softplus(lo * x).sum(1)

    def transition(self, x, beta: float, generator):
        """One Gibbs step v -> h -> v' that leaves :math:`f_\\beta` invariant (and is reversible);
        returns v', x'."""
        h = torch.bernoulli(torch.sigmoid(beta * x), generator=generator)
        bias = torch.lerp(self.base, self.b, beta)  # (1 - beta) b_A + beta b
        v = torch.bernoulli(
            torch.sigmoid(torch.addmm(bias, h, self.W.T, alpha=beta)), generator=generator
        )
        return v, self.hidden_input(v)


def log_mean_exp_with_stderr(log_w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Log-mean-exp along the last dimension and its delta-method standard error.

    For independent unbiased estimates :math:`w_r` of :math:`Z` given as :math:`\log w_r`,
    :math:`\log\bar w = \operatorname{logsumexp}_r \log w_r - \log R` and
    :math:`\mathrm{se}(\log\bar w)\approx \mathrm{sd}(w)/(\sqrt R\,\bar w)`, computed without
    overflow.

    Parameters
    ----------
    log_w : torch.Tensor, shape (..., R)

    Returns
    -------
    log_mean, stderr : torch.Tensor, shape (...)
        ``stderr`` is ``inf`` when ``R == 1``.
    """
    _check_log_weights(log_w, "log_w")
    n = log_w.shape[-1]
    log_mean = torch.logsumexp(log_w, dim=-1) - math.log(n)
    w = torch.exp(log_w - log_w.amax(dim=-1, keepdim=True))
    # delta method: sd(log Z_hat) ~ sd(w) / (sqrt(n) mean(w))
    stderr = (
        w.std(dim=-1) / (math.sqrt(n) * w.mean(dim=-1))
        if n > 1
        else torch.full_like(log_mean, math.inf)
    )
    return log_mean, stderr


def ais_log_partition(
    rbm,
    *,
    n_runs: int = 100,
    betas=10000,
    generator: torch.Generator | None = None,
    data: torch.Tensor | None = None,
    return_log_weights: bool = False,
    progress: bool | None = None,
):
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
    data : torch.Tensor, shape (N, n_visible), optional
        Training data for the base-rate biases; without it the base model is uniform
        (:math:`b_A = 0`).
    return_log_weights : bool
        Also return each run's estimate :math:`\log Z_0 + \log w_r`; split them into groups and pass
        each to :func:`log_mean_exp_with_stderr` to get independent estimates of :math:`\log Z` from
        one batch.
    progress : bool, optional
        Progress bar over temperatures.

    Returns
    -------
    log_z : torch.Tensor
        Scalar :math:`\log\hat Z`.
    stderr : torch.Tensor
        Scalar delta-method standard error of :math:`\log\hat Z`,
        :math:`\mathrm{sd}(w)/(\sqrt R\,\bar w)`.
    log_w : torch.Tensor, shape (n_runs,)
        Each run's :math:`\log Z_0 + \log w_r`; only with ``return_log_weights=True``.
    """
    n_runs = check_int(n_runs, "n_runs")
    check_generator(generator)
    model = _AnnealedRBM(
        rbm, None if data is None else base_rate_bias(check_batch(data, "data", rbm.n_visible))
    )
    schedule = _check_schedule(betas, model.dtype).tolist()
    with torch.no_grad():
        v = torch.bernoulli(
            torch.sigmoid(model.base).expand(n_runs, -1).contiguous(), generator=generator
        )
        x = model.hidden_input(v)
        log_w = torch.zeros(n_runs, dtype=model.dtype)
        steps = progress_bar(
            range(1, len(schedule)), total=len(schedule) - 1, desc="AIS", progress=progress
        )
        for k in steps:
            log_w += model.log_f_gap(v, x, schedule[k], schedule[k - 1])
            if k < len(schedule) - 1:
                v, x = model.transition(x, schedule[k], generator)
        log_w += model.log_z_base
        log_z, stderr = log_mean_exp_with_stderr(log_w)
    return (log_z, stderr, log_w) if return_log_weights else (log_z, stderr)


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
    from .rbm import _check_binary

    n_runs = check_int(n_runs, "n_runs")
    check_generator(generator)
    model = _AnnealedRBM(
        rbm, None if data is None else base_rate_bias(check_batch(data, "data", rbm.n_visible))
    )
    v = _check_binary(v, "v", rbm.n_visible, model.dtype)
    schedule = _check_schedule(betas, model.dtype).tolist()
    n = v.shape[0]
    with torch.no_grad():
        chain = v.repeat_interleave(
            n_runs, dim=0
        )  # (n * n_runs, n_visible), runs of a point adjacent
        x = model.hidden_input(chain)
        log_w = (chain @ model.b) + F.softplus(x).sum(1) - model.log_z_base  # -F(v) - log Z_0
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
