r"""Losses whose gradients are (estimates of) the maximum-likelihood gradient, or replace it.

Every loss is a scalar to be *minimized* and is differentiable with respect to
the energy's parameters. Sign convention: :math:`p(x) \propto e^{-E(x)}`.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from .autodiff import energy_input_grad
from .validation import (
    check_batch,
    check_energy_output,
    check_finite,
    check_generator,
    check_int,
    check_positive,
    check_tensor,
)
from .weights import log_partition_is, self_normalized_weights

__all__ = [
    "cd_loss",
    "importance_sampling_nll",
    "importance_sampling_gradient_loss",
    "score_matching_loss",
    "denoising_score_matching_loss",
    "sliced_score_matching_loss",
    "nce_loss",
]


def cd_loss(
    energy_fn: Callable, x_pos: torch.Tensor, x_neg: torch.Tensor, *, energy_penalty: float = 0.0
) -> torch.Tensor:
    r"""The contrastive surrogate whose gradient is the Monte-Carlo ML gradient.

    .. math::

        \mathcal L(\theta)
        = \frac1N\sum_{n} E(x^+_n\mid\theta) - \frac1M\sum_{m} E(x^-_m\mid\theta),
        \qquad
        \nabla_\theta\mathcal L
        = \underbrace{\mathbb E_{\text{data}}[\nabla_\theta E]}_{\text{positive phase}}
        - \underbrace{\mathbb E_{\text{samples}}[\nabla_\theta E]}_{\text{negative phase}}.

    With exact model samples ``x_neg`` the gradient is an unbiased estimate of
    the gradient of the average NLL (paper Eq. 17). With ``x_neg`` from a
    short MCMC run started at the data it is contrastive divergence (CD-k);
    from persistent chains it is PCD. The value of the loss itself is *not*
    the NLL (the :math:`\log Z` term is missing); only its gradient matters.
    ``x_neg`` is detached, so no gradient flows into the sampler.

    Parameters
    ----------
    energy_fn : callable
        Maps ``(n, d)`` to ``(n,)``.
    x_pos : torch.Tensor, shape (N, d)
        Data (positive samples).
    x_neg : torch.Tensor, shape (M, d)
        Model samples (negative samples).
    energy_penalty : float >= 0
        Weight :math:`\alpha` of the energy-magnitude regularizer
        :math:`\alpha(\overline{E(x^+)^2} + \overline{E(x^-)^2})` of :cite:t:`du2019implicit`, a
        standard cure for energies that drift to large magnitudes when the negative samples lag
        behind the model.

    Returns
    -------
    torch.Tensor
        A scalar.
    """
    check_batch(x_pos, "x_pos")
    check_batch(x_neg, "x_neg", dim=x_pos.shape[1])
    alpha = check_positive(energy_penalty, "energy_penalty", allow_zero=True)
    e_pos = check_energy_output(energy_fn(x_pos), x_pos.shape[0])
    e_neg = check_energy_output(energy_fn(x_neg.detach()), x_neg.shape[0])
    loss = e_pos.mean() - e_neg.mean()
    if alpha > 0:
        loss = loss + alpha * ((e_pos**2).mean() + (e_neg**2).mean())
    return loss


def _check_proposal_batch(energy_fn, x, y, log_q_y):
    check_batch(x, "x")
    check_batch(y, "y", dim=x.shape[1])
    check_tensor(log_q_y, "log_q_y")
    if log_q_y.shape != (y.shape[0],):
        raise ValueError(
            f"log_q_y must have shape ({y.shape[0]},) to match y, got {tuple(log_q_y.shape)}"
        )
    check_finite(log_q_y, "log_q_y")
    e_x = check_energy_output(energy_fn(x), x.shape[0])
    e_y = check_energy_output(energy_fn(y), y.shape[0])
    return e_x, e_y


def importance_sampling_nll(
    energy_fn: Callable, x: torch.Tensor, y: torch.Tensor, log_q_y: torch.Tensor
) -> torch.Tensor:
    r"""Geyer's importance-sampling approximation of the average NLL, :math:`J_{GL}(\theta)/N`
    (paper Eq. 8).

    .. math::

        \frac{J_{GL}(\theta)}{N} = \frac1N\sum_{n=1}^N E(x_n\mid\theta)
        + \log \frac1M\sum_{m=1}^M \frac{\exp\{-E(y_m\mid\theta)\}}{q(y_m)},
        \qquad y_m\sim q .

    For fixed samples ``y`` this is a deterministic, differentiable function of :math:`\theta`;
    minimizing it gives Geyer's estimator :math:`\hat\theta_{GL}` (Eq. 9). When :math:`q` does not
    depend on :math:`\theta`, its gradient is exactly the self-normalized IS gradient of Eq. 12/18.

    Parameters
    ----------
    energy_fn : callable
        Maps ``(n, d)`` to ``(n,)``.
    x : torch.Tensor, shape (N, d)
        Data.
    y : torch.Tensor, shape (M, d)
        Samples from the proposal.
    log_q_y : torch.Tensor, shape (M,)
        Normalized proposal log density at ``y``.

    Returns
    -------
    torch.Tensor
        A scalar.
    """
    e_x, e_y = _check_proposal_batch(energy_fn, x, y, log_q_y)
    return e_x.mean() + log_partition_is(-e_y, log_q_y)


def importance_sampling_gradient_loss(
    energy_fn: Callable, x: torch.Tensor, y: torch.Tensor, log_q_y: torch.Tensor
) -> torch.Tensor:
    r"""Surrogate loss whose gradient is the self-normalized IS gradient (paper Eq. 12 and 18).

    .. math::

        \mathcal L(\theta) = \frac1N\sum_n E(x_n\mid\theta) - \sum_m \bar w_m\, E(y_m\mid\theta),
        \qquad \bar w_m = \frac{\phi(y_m\mid\theta)/q(y_m)}{\sum_j \phi(y_j\mid\theta)/q(y_j)} ,

    with the normalized weights :math:`\bar w_m` and the samples held fixed (detached), so that

    .. math::

        \nabla_\theta\mathcal L
        = \frac1N\sum_n \nabla_\theta E(x_n) - \sum_m \bar w_m \nabla_\theta E(y_m).

    This is the estimator to use inside a training loop when the proposal depends on :math:`\theta`
    or is redrawn at every step. Its value is not the NLL; use :func:`importance_sampling_nll` for
    that.

    Parameters
    ----------
    energy_fn, x, y, log_q_y
        As in :func:`importance_sampling_nll`.

    Returns
    -------
    torch.Tensor
        A scalar.
    """
    e_x, e_y = _check_proposal_batch(energy_fn, x, y.detach(), log_q_y.detach())
    weights = self_normalized_weights(-e_y.detach() - log_q_y.detach())
    return e_x.mean() - (weights * e_y).sum()


def _scores(energy_fn, x: torch.Tensor):
    """Model score s(x) = -grad_x E(x), shape (n, d), differentiable in the parameters (and in x,
    for second derivatives); and the copy of x, with grad enabled, that it depends on."""
    x = x.detach().requires_grad_(True)
    _, grad_e = energy_input_grad(energy_fn, x, create_graph=True)
    return -grad_e, x


def score_matching_loss(energy_fn: Callable, x: torch.Tensor) -> torch.Tensor:
    r"""Hyvärinen's score-matching objective with the exact Hessian trace :cite:p:`hyvarinen2005`.

    .. math::

        J_{SM}(\theta) = \frac1N\sum_{n=1}^N \Bigl[\tfrac12\lVert s_\theta(x_n)\rVert^2
        + \operatorname{tr}\nabla_x s_\theta(x_n)\Bigr],
        \qquad s_\theta(x) = \nabla_x\log p(x\mid\theta) = -\nabla_x E(x\mid\theta).

    Integration by parts turns the Fisher divergence
    :math:`\tfrac12\mathbb E_{\text{data}}\lVert s_\theta - \nabla\log p_{\text{data}}\rVert^2` into
    this expression plus a constant, removing the unknown data score; :math:`Z` never appears
    because it does not depend on :math:`x`. The trace needs one extra backward pass per dimension,
    so the cost grows linearly in :math:`d` (see :func:`sliced_score_matching_loss` for an
    :math:`O(1)` alternative).

    Parameters
    ----------
    energy_fn : callable
        Maps ``(n, d)`` to ``(n,)``; must be twice differentiable in ``x``.
    x : torch.Tensor, shape (N, d)

    Returns
    -------
    torch.Tensor
        A scalar, differentiable in the energy's parameters.
    """
    check_batch(x, "x")
    s, x_req = _scores(energy_fn, x)
    trace = torch.zeros(x.shape[0], dtype=s.dtype, device=s.device)
    for i in range(x.shape[1]):
        (row,) = torch.autograd.grad(s[:, i].sum(), x_req, create_graph=True)
        trace = trace + row[:, i]
    return (0.5 * (s * s).sum(dim=1) + trace).mean()


def denoising_score_matching_loss(
    energy_fn: Callable,
    x: torch.Tensor,
    sigma: float,
    *,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    r"""Denoising score matching :cite:p:`vincent2011` with Gaussian noise of standard deviation
    ``sigma``.

    .. math::

        J_{DSM}(\theta) = \frac1N\sum_n
        \tfrac12\Bigl\lVert s_\theta(\tilde x_n) + \frac{\tilde x_n - x_n}{\sigma^2}\Bigr\rVert^2,
        \qquad \tilde x_n = x_n + \sigma\varepsilon_n,\ \varepsilon_n\sim\mathcal N(0, I).

    It needs no second derivatives, but it fits the score of the *noise-convolved* data density
    :math:`p_{\text{data}} * \mathcal N(0,\sigma^2 I)`: for :math:`\mathcal N(0, s^2)` data it
    targets the precision :math:`1/(s^2+\sigma^2)`, a bias that vanishes only as
    :math:`\sigma\to 0`, where the variance of the loss grows like :math:`1/\sigma^2`.

    Parameters
    ----------
    energy_fn : callable
    x : torch.Tensor, shape (N, d)
    sigma : float
        Noise level, > 0.
    generator : torch.Generator, optional
        Keyword-only; on the device of ``x``.

    Returns
    -------
    torch.Tensor
        A scalar.
    """
    check_batch(x, "x")
    sigma = check_positive(sigma, "sigma")
    check_generator(generator, device=x.device)
    noise = torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)
    x_noisy = x.detach() + sigma * noise
    s, _ = _scores(energy_fn, x_noisy)
    return 0.5 * ((s + noise / sigma) ** 2).sum(dim=1).mean()


def sliced_score_matching_loss(
    energy_fn: Callable,
    x: torch.Tensor,
    n_projections: int = 1,
    *,
    generator: torch.Generator | None = None,
    variance_reduction: bool = True,
    projection: str = "gaussian",
) -> torch.Tensor:
    r"""Sliced score matching :cite:p:`song2019sliced`: the Hessian trace replaced by random
    projections.

    With :math:`v\sim\mathcal N(0, I)`, or with Rademacher :math:`v` (independent :math:`\pm1`
    entries, Hutchinson's trace estimator :cite:p:`hutchinson1989trace`),
    :math:`\mathbb E[vv^\top] = I` and so
    :math:`\mathbb E[v^\top\nabla_x s\,v] = \operatorname{tr}\nabla_x s`, hence

    .. math::

        J_{SSM}(\theta) = \frac1N\sum_n \frac1K\sum_{k=1}^K\Bigl[
        v_{nk}^\top \nabla_x\bigl(v_{nk}^\top s_\theta(x_n)\bigr)
        + \tfrac12\lVert s_\theta(x_n)\rVert^2\Bigr]

    is unbiased for :func:`score_matching_loss` and costs one extra backward pass whatever the
    dimension. With ``variance_reduction=False`` the quadratic term is the projected
    :math:`\tfrac12 (v^\top s)^2` instead of its expectation :math:`\tfrac12\lVert s\rVert^2`.
    Keeping the expectation removes that term's variance, but the total does not always fall: per
    point, the plain form's variance exceeds the reduced one's by
    :math:`\tfrac12\lVert s\rVert^4 + 2\,s^\top(\nabla_x s)\,s`, which can be negative.

    For a symmetric matrix :math:`A` (here :math:`H = \nabla_x s`, or :math:`H + \tfrac12 ss^\top`
    in the plain form), :math:`\operatorname{Var}(v^\top A v) = 2\lVert A\rVert_F^2` for Gaussian
    :math:`v` and :math:`2(\lVert A\rVert_F^2 - \sum_i A_{ii}^2)` for Rademacher :math:`v`:
    Rademacher projections are never worse, and exact when :math:`A` is diagonal. In one dimension
    :math:`v^2 = 1`, so with Rademacher projections both forms equal :func:`score_matching_loss`
    exactly.

    Parameters
    ----------
    energy_fn : callable
    x : torch.Tensor, shape (N, d)
    n_projections : int
        Projections :math:`K` per data point.
    generator : torch.Generator, optional
        Keyword-only; on the device of ``x``.
    variance_reduction : bool
        Use the exact :math:`\tfrac12\lVert s\rVert^2` (default) rather than its projected estimate
        (the "SSM-VR" form of :cite:p:`song2019sliced`).
    projection : {"gaussian", "rademacher"}
        Distribution of the projections :math:`v`: standard normal (default) or independent
        :math:`\pm1` signs.

    Returns
    -------
    torch.Tensor
        A scalar.
    """
    check_batch(x, "x")
    n_projections = check_int(n_projections, "n_projections")
    check_generator(generator, device=x.device)
    if not isinstance(projection, str):
        raise TypeError(f"projection must be a str, got {type(projection).__name__}")
    if projection not in ("gaussian", "rademacher"):
        raise ValueError(f"projection must be 'gaussian' or 'rademacher', got {projection!r}")
    n, d = x.shape
    x_rep = x.detach().repeat_interleave(n_projections, dim=0)
    if projection == "gaussian":
        v = torch.randn(n * n_projections, d, generator=generator, dtype=x.dtype, device=x.device)
    else:
        v = torch.randint(
            0, 2, (n * n_projections, d), generator=generator, dtype=x.dtype, device=x.device
        )
        v = 2 * v - 1
    s, x_req = _scores(energy_fn, x_rep)
    sv = (s * v).sum(dim=1)
    (grad_sv,) = torch.autograd.grad(sv.sum(), x_req, create_graph=True)
    quad = 0.5 * (s * s).sum(dim=1) if variance_reduction else 0.5 * sv * sv
    return ((grad_sv * v).sum(dim=1) + quad).mean()


def nce_loss(
    energy_fn: Callable,
    log_z: torch.Tensor,
    x_data: torch.Tensor,
    x_noise: torch.Tensor,
    log_q_data: torch.Tensor,
    log_q_noise: torch.Tensor,
) -> torch.Tensor:
    r"""Noise-contrastive estimation :cite:p:`gutmann2010,gutmann2012` with :math:`\log Z` a learned
    parameter.

    The model :math:`\log p_\theta(x) = -E(x\mid\theta) - c` with :math:`c` standing for
    :math:`\log Z` is fitted by logistic regression between the :math:`N` data points and
    :math:`\nu N` noise points from :math:`q`, :math:`\nu` = ``len(x_noise) / len(x_data)``:

    .. math::

        G(x) = \log p_\theta(x) - \log q(x) - \log\nu, \\
        J_{NCE}(\theta, c) = -\frac1N\Bigl[\sum_n \log\sigma\bigl(G(x_n)\bigr)
        + \sum_m \log\bigl(1-\sigma(G(y_m))\bigr)\Bigr].

    Because the classifier can only succeed if :math:`p_\theta` is normalized, the minimizer has
    :math:`c\approx\log Z(\theta)`: normalization is learned rather than computed. NCE is consistent
    for any noise with support covering the data's, and approaches the MLE's efficiency as
    :math:`\nu` grows.

    Parameters
    ----------
    energy_fn : callable
    log_z : torch.Tensor
        Scalar :math:`c`, usually an ``nn.Parameter`` trained with the energy.
    x_data : torch.Tensor, shape (N, d)
    x_noise : torch.Tensor, shape (M, d)
    log_q_data, log_q_noise : torch.Tensor, shapes (N,) and (M,)
        Normalized noise log densities at the data and at the noise samples.

    Returns
    -------
    torch.Tensor
        A scalar (the loss per data point).
    """
    check_batch(x_data, "x_data")
    check_batch(x_noise, "x_noise", dim=x_data.shape[1])
    check_tensor(log_z, "log_z")
    if log_z.numel() != 1:
        raise ValueError(f"log_z must be a scalar, got shape {tuple(log_z.shape)}")
    for name, lq, n in (
        ("log_q_data", log_q_data, x_data.shape[0]),
        ("log_q_noise", log_q_noise, x_noise.shape[0]),
    ):
        check_tensor(lq, name)
        if lq.shape != (n,):
            raise ValueError(f"{name} must have shape ({n},), got {tuple(lq.shape)}")
        check_finite(lq, name)
    log_nu = math.log(x_noise.shape[0] / x_data.shape[0])
    e_data = check_energy_output(energy_fn(x_data), x_data.shape[0])
    e_noise = check_energy_output(energy_fn(x_noise), x_noise.shape[0])
    c = log_z.reshape(())
    g_data = -e_data - c - log_q_data - log_nu
    g_noise = -e_noise - c - log_q_noise - log_nu
    return (
        -(
            torch.nn.functional.logsigmoid(g_data).sum()
            + torch.nn.functional.logsigmoid(-g_noise).sum()
        )
        / x_data.shape[0]
    )


def conditional_nce_loss(energy_fn: Callable, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    r"""Conditional noise-contrastive estimation :cite:p:`ceylan2018` with symmetric conditional
    noise.

    Each data point :math:`x_n` is paired with :math:`\kappa` noise points
    :math:`y_{nk}\sim p_c(\cdot\mid x_n)` drawn from a *symmetric* conditional density,
    :math:`p_c(y\mid x) = p_c(x\mid y)` (for example :math:`y = x + \varepsilon\xi` with
    :math:`\xi\sim\mathcal N(0, I)`). A classifier tells the ordered pair :math:`(x, y)` from
    :math:`(y, x)` with the logit

    .. math::

        G(x, y) = \log\frac{\phi(x)\,p_c(y\mid x)}{\phi(y)\,p_c(x\mid y)} = E(y) - E(x),

    in which both the normalizer :math:`Z` and the noise density cancel. The loss is the logistic
    loss

    .. math::

        J_{CNCE}(\theta) = \frac{1}{N\kappa}\sum_{n=1}^N\sum_{k=1}^\kappa
        \log\bigl(1 + e^{-G(x_n, y_{nk})}\bigr)

    (Ceylan & Gutmann's :math:`J_N` is twice this). It fits the same unnormalized model as NCE, but
    :math:`\log Z` is neither needed nor estimated. For :math:`y = x + \varepsilon\xi` and small
    :math:`\varepsilon`,
    :math:`J_{CNCE} = \log 2 + \tfrac{\varepsilon^2}{4} J_{SM} + O(\varepsilon^4)` in expectation
    over :math:`\xi`, with :math:`J_{SM}` the score-matching objective
    (:func:`score_matching_loss`).

    Parameters
    ----------
    energy_fn : callable
        Maps ``(n, d)`` to ``(n,)``.
    x : torch.Tensor, shape (N, d)
        Data.
    y : torch.Tensor, shape (N, kappa, d)
        Noise points, ``y[n, k]`` drawn from the symmetric conditional :math:`p_c(\cdot\mid x_n)`.

    Returns
    -------
    torch.Tensor
        A scalar (the loss per pair).
    """
    check_batch(x, "x")
    check_tensor(y, "y")
    n, d = x.shape
    if y.ndim != 3 or y.shape[0] != n or y.shape[2] != d or y.shape[1] == 0:
        raise ValueError(
            f"y must have shape ({n}, kappa, {d}) with kappa >= 1, got shape {tuple(y.shape)}"
        )
    check_finite(y, "y")
    kappa = y.shape[1]
    e_x = check_energy_output(energy_fn(x), n)
    e_y = check_energy_output(energy_fn(y.reshape(n * kappa, d)), n * kappa).reshape(n, kappa)
    g = e_y - e_x[:, None]
    return torch.nn.functional.softplus(-g).mean()


__all__.append("conditional_nce_loss")
