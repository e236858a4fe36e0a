r"""Batched estimators for exponential families, for Monte-Carlo studies over many independent data
sets.

For an exponential family :math:`E(x\mid\theta) = \theta^\top T(x)`, several estimators reduce to
convex problems in the sufficient statistics that can be solved for hundreds of replicate data sets
at once. They give the same answers as minimizing the generic losses of :mod:`ebmlib.losses` one
data set at a time (the tests check this), only faster."""

from __future__ import annotations

import math
import warnings
from typing import NamedTuple

import torch

from .validation import (
    ConvergenceWarning,
    check_finite,
    check_generator,
    check_int,
    check_positive,
    check_tensor,
)

__all__ = [
    "mle_exponential_family",
    "nce_exponential_family",
    "score_matching_exponential_family",
    "denoising_score_matching_exponential_family",
    "denoising_perturbation",
    "sandwich_covariance",
    "score_matching_asymptotics",
    "denoising_score_matching_asymptotics",
    "nce_asymptotics",
    "is_mle_asymptotics",
    "NCEEstimate",
]


class NCEEstimate(NamedTuple):
    """What :func:`nce_exponential_family` returns (unpacks as ``theta, log_z``)."""

    #: :math:`\hat\theta`, shape ``(R, K)``.
    theta: torch.Tensor
    #: The learned :math:`c` standing for :math:`\log Z`, shape ``(R,)``.
    log_z: torch.Tensor


def _warn_not_converged(solver: str, max_iter: int, decrement: torch.Tensor, tol: float) -> None:
    """Warn that a batched Newton solver stopped at ``max_iter`` with some Newton decrements (one
    per replicate) still above ``tol``. The warning points at the caller of the public solver
    (``solver`` -> :func:`_damped_newton` -> here)."""
    bad = ~(decrement < tol)  # NaN counts as not converged
    warnings.warn(
        f"{solver}: Newton's method stopped after max_iter={max_iter} iterations without "
        f"converging in {int(bad.sum())} of {decrement.numel()} replicates (largest Newton "
        f"decrement {float(decrement.max()):.3g} > tol={tol:g}); the last iterate is returned. "
        "Raise max_iter, or check that the estimate exists (for example that the data's mean "
        "statistics lie inside the convex hull of the grid's)",
        ConvergenceWarning,
        stacklevel=4,
    )


def _newton_step(grad: torch.Tensor, hess: torch.Tensor, ridge: float):
    r"""The Newton step :math:`(H + \text{ridge}\,I)^{-1} g` and the Newton decrement
    :math:`g^\top(H + \text{ridge}\,I)^{-1} g` of every replicate: shapes (R, P) and (R,)."""
    p = grad.shape[1]
    step = torch.linalg.solve(
        hess + ridge * torch.eye(p, dtype=hess.dtype), grad.unsqueeze(-1)
    ).squeeze(-1)
    return step, (grad * step).sum(1)


def _halve_until_no_worse(objective, x, loss, step, max_halvings: int, slack: float):
    """Try ``x - step``, halving the step of each replicate whose loss rises by more than
    ``slack``, at most ``max_halvings`` tries; returns the last trial point, its loss and its
    cache."""
    scale = torch.ones(x.shape[0], dtype=x.dtype)
    for _ in range(max_halvings):
        trial = x - scale[:, None] * step
        new_loss, new_cache = objective(trial)
        worse = new_loss > loss + slack
        if not bool(worse.any()):
            break
        scale = torch.where(worse, scale / 2, scale)
    return trial, new_loss, new_cache


def _damped_newton(
    objective,
    derivatives,
    x: torch.Tensor,
    *,
    solver: str,
    max_iter: int,
    tol: float,
    ridge: float,
    max_halvings: int,
    slack: float,
) -> torch.Tensor:
    """Minimize a convex objective for R replicates at once by Newton's method with step halving.

    ``objective(x)`` returns the losses, shape (R,), and a cache that ``derivatives(x, cache)``
    turns into the gradients (R, P) and Hessians (R, P, P) at ``x`` (shape (R, P)). At most
    ``max_iter`` updates are made; the iteration stops when every replicate's Newton decrement is
    below ``tol``, and warns (:class:`~ebmlib.validation.ConvergenceWarning`, in the name of
    ``solver``) when ``max_iter`` updates end without that. Each update halves the step of a
    replicate whose loss would rise by more than ``slack``, at most ``max_halvings`` times."""
    loss, cache = objective(x)
    for iteration in range(max_iter + 1):  # max_iter updates; the last pass only checks
        step, decrement = _newton_step(*derivatives(x, cache), ridge)
        if bool((decrement < tol).all()):
            break
        if iteration == max_iter:
            _warn_not_converged(solver, max_iter, decrement, tol)
            break
        x, loss, cache = _halve_until_no_worse(objective, x, loss, step, max_halvings, slack)
    return x


def _nce_objective(beta, phi_d, phi_n, off_d, off_n, n_data):
    """NCE loss of every replicate at ``beta``, shape (R,), with the logits ``(g_d, g_n)`` as the
    cache."""
    g_d = torch.einsum("rnk,rk->rn", phi_d, beta) + off_d
    g_n = torch.einsum("rnk,rk->rn", phi_n, beta) + off_n
    loss = (
        -(torch.nn.functional.logsigmoid(g_d).sum(1) + torch.nn.functional.logsigmoid(-g_n).sum(1))
        / n_data
    )
    return loss, (g_d, g_n)


def _nce_derivatives(logits, phi_d, phi_n, n_data):
    """Gradient (R, K+1) and Hessian (R, K+1, K+1) of the NCE loss, given its logits."""
    g_d, g_n = logits
    p_d, p_n = torch.sigmoid(g_d), torch.sigmoid(g_n)
    grad = (
        torch.einsum("rn,rnk->rk", p_d - 1, phi_d) + torch.einsum("rn,rnk->rk", p_n, phi_n)
    ) / n_data
    w_d, w_n = p_d * (1 - p_d), p_n * (1 - p_n)
    hess = (
        torch.einsum("rn,rnk,rnl->rkl", w_d, phi_d, phi_d)
        + torch.einsum("rn,rnk,rnl->rkl", w_n, phi_n, phi_n)
    ) / n_data
    return grad, hess


def _check_nce_inputs(stats_data, stats_noise, log_q_data, log_q_noise) -> None:
    for name, t in (
        ("stats_data", stats_data),
        ("stats_noise", stats_noise),
        ("log_q_data", log_q_data),
        ("log_q_noise", log_q_noise),
    ):
        check_tensor(t, name)
        check_finite(t, name)
    if (
        stats_data.ndim != 3
        or stats_noise.ndim != 3
        or stats_data.shape[0] != stats_noise.shape[0]
        or stats_data.shape[2] != stats_noise.shape[2]
    ):
        raise ValueError(
            "stats_data (R, N, K) and stats_noise (R, M, K) disagree: "
            f"{tuple(stats_data.shape)} and "
            f"{tuple(stats_noise.shape)}"
        )
    r, n, _ = stats_data.shape
    m = stats_noise.shape[1]
    if n == 0 or m == 0:
        raise ValueError("stats_data and stats_noise need at least one point per replicate")
    if log_q_data.shape != (r, n) or log_q_noise.shape != (r, m):
        raise ValueError(f"log_q_data must have shape ({r}, {n}) and log_q_noise ({r}, {m})")


def _nce_features(stats_data, stats_noise, log_q_data, log_q_noise):
    r"""Features of :math:`\beta = (\theta, c)` and offsets of the NCE logistic regression:
    ``(phi_d, phi_n, off_d, off_n)``."""
    r, n, _ = stats_data.shape
    m = stats_noise.shape[1]
    log_nu = math.log(m / n)
    ones_d = -torch.ones(r, n, 1, dtype=stats_data.dtype)
    ones_n = -torch.ones(r, m, 1, dtype=stats_data.dtype)
    phi_d = torch.cat([-stats_data, ones_d], dim=2)
    phi_n = torch.cat([-stats_noise, ones_n], dim=2)
    return phi_d, phi_n, -log_q_data - log_nu, -log_q_noise - log_nu


def nce_exponential_family(
    stats_data: torch.Tensor,
    stats_noise: torch.Tensor,
    log_q_data: torch.Tensor,
    log_q_noise: torch.Tensor,
    *,
    max_iter: int = 100,
    tol: float = 1e-10,
):
    r"""NCE estimates :math:`(\hat\theta, \hat c)` for many replicate data sets at once, by damped
    Newton steps.

    With :math:`E = \theta^\top T` and :math:`c` for :math:`\log Z`, the NCE classifier's logit
    :math:`G(x) = -\theta^\top T(x) - c - \log q(x) - \log\nu` is linear in
    :math:`\beta = (\theta, c)`, so :func:`ebmlib.losses.nce_loss` is the loss of a logistic
    regression with features :math:`(-T(x), -1)` and offset :math:`-\log q(x) - \log\nu`. It is
    convex; Newton's method with step halving solves it to machine precision.

    Parameters
    ----------
    stats_data : torch.Tensor, shape (R, N, K)
        Sufficient statistics :math:`T(x)` of the :math:`N` data points of each of :math:`R`
        replicates.
    stats_noise : torch.Tensor, shape (R, M, K)
        :math:`T(y)` of the :math:`M = \nu N` noise points of each replicate.
    log_q_data, log_q_noise : torch.Tensor, shapes (R, N) and (R, M)
        Normalized noise log densities.
    max_iter : int
        Newton iterations at most.
    tol : float
        Stop when every replicate's Newton decrement is below ``tol``.

    Returns
    -------
    NCEEstimate
        ``(theta, log_z)``: :math:`\hat\theta`, shape ``(R, K)``, and the learned :math:`c`, shape
        ``(R,)``.

    Warns
    -----
    ConvergenceWarning
        When ``max_iter`` iterations end with some replicate's Newton decrement still above
        ``tol`` (the last iterate is returned).
    """
    _check_nce_inputs(stats_data, stats_noise, log_q_data, log_q_noise)
    max_iter = check_int(max_iter, "max_iter")
    r, n, k = stats_data.shape
    phi_d, phi_n, off_d, off_n = _nce_features(stats_data, stats_noise, log_q_data, log_q_noise)
    beta = _damped_newton(
        lambda beta: _nce_objective(beta, phi_d, phi_n, off_d, off_n, n),
        lambda beta, logits: _nce_derivatives(logits, phi_d, phi_n, n),
        torch.zeros(r, k + 1, dtype=stats_data.dtype),
        solver="nce_exponential_family",
        max_iter=max_iter,
        tol=tol,
        ridge=1e-12,
        max_halvings=50,
        slack=1e-14,
    )
    return NCEEstimate(beta[:, :k], beta[:, k])


def _grid_log_p(theta, grid_stats, log_w):
    """log w_g - theta^T T(x_g) for every replicate: (R, G); grid_stats is (G, K) or (R, G, K)."""
    if grid_stats.ndim == 2:
        return log_w[None, :] - theta @ grid_stats.T
    return log_w - torch.einsum("rgk,rk->rg", grid_stats, theta)


def _grid_nll(theta, mean_stats, grid_stats, log_w):
    """Average NLL of every replicate, shape (R,), with log Z by quadrature on the grid."""
    log_z = torch.logsumexp(_grid_log_p(theta, grid_stats, log_w), dim=1)  # (R,)
    return (theta * mean_stats).sum(1) + log_z


def _grid_nll_derivatives(theta, mean_stats, grid_stats, log_w):
    r"""Gradient :math:`\bar T - \mathbb E_\theta T`, shape (R, K), and Hessian
    :math:`\operatorname{Cov}_\theta T` (the Fisher information), shape (R, K, K), of
    :func:`_grid_nll`."""
    r = theta.shape[0]
    p = torch.softmax(_grid_log_p(theta, grid_stats, log_w), dim=1)  # (R, G) model weights
    points = grid_stats if grid_stats.ndim == 3 else grid_stats[None, :, :]
    mean_model = torch.einsum("rg,rgk->rk", p, points.expand(r, -1, -1))  # E_theta T, (R, K)
    centred = points - mean_model[:, None, :]
    fisher = torch.einsum("rg,rgk,rgl->rkl", p, centred, centred)
    return mean_stats - mean_model, fisher


def _check_mle_inputs(mean_stats, grid_stats, log_weights) -> None:
    for name, t in (
        ("mean_stats", mean_stats),
        ("grid_stats", grid_stats),
        ("log_weights", log_weights),
    ):
        check_tensor(t, name)
        check_finite(t, name)
    mean_stats = mean_stats[None, :] if mean_stats.ndim == 1 else mean_stats
    batched = grid_stats.ndim == 3
    if (
        mean_stats.ndim != 2
        or grid_stats.ndim not in (2, 3)
        or grid_stats.shape[-1] != mean_stats.shape[1]
        or (batched and grid_stats.shape[0] != mean_stats.shape[0])
    ):
        raise ValueError(
            f"mean_stats (R, K) and grid_stats (G, K) or (R, G, K) disagree: "
            f"{tuple(mean_stats.shape)} and {tuple(grid_stats.shape)}"
        )
    if log_weights.shape != grid_stats.shape[:-1]:
        raise ValueError(
            f"log_weights must have shape {tuple(grid_stats.shape[:-1])}, "
            f"got {tuple(log_weights.shape)}"
        )


def mle_exponential_family(
    mean_stats: torch.Tensor,
    grid_stats: torch.Tensor,
    log_weights: torch.Tensor,
    *,
    theta0: torch.Tensor | None = None,
    max_iter: int = 100,
    tol: float = 1e-12,
):
    r"""Exact maximum-likelihood estimates for many replicate data sets at once, by damped Newton
    steps.

    For :math:`E(x\mid\theta)=\theta^\top T(x)` the average NLL is
    :math:`\ell(\theta) = \theta^\top\bar T + \log Z(\theta)` with :math:`\bar T` the data mean of
    :math:`T`, and :math:`\log Z` is computed by quadrature on fixed nodes :math:`x_g` with weights
    :math:`w_g`: :math:`\log Z(\theta) = \log\sum_g w_g e^{-\theta^\top T(x_g)}`. Its gradient is
    :math:`\bar T - \mathbb E_\theta T` and its Hessian :math:`\operatorname{Cov}_\theta T` (the
    Fisher information), so :math:`\ell` is convex and Newton's method with step halving converges
    from any start.

    The "grid" may be any weighted point set. With :math:`M` draws :math:`y_m` from a proposal
    :math:`q` and :math:`\log w_m = -\log q(y_m) - \log M`, the same computation is Geyer's
    importance-sampling MLE :cite:p:`geyer1994` (minimizing :math:`J_{GL}`); pass a different sample
    per replicate as ``grid_stats`` of shape ``(R, M, K)``. The minimizer exists when :math:`\bar T`
    lies inside the convex hull of the points' statistics.

    Parameters
    ----------
    mean_stats : torch.Tensor, shape (R, K) or (K,)
        :math:`\bar T` for each of :math:`R` data sets.
    grid_stats : torch.Tensor, shape (G, K) or (R, G, K)
        :math:`T(x_g)` at the quadrature nodes (for example from
        :func:`ebmlib.exact.quadrature_grid`), shared by all replicates or one set per replicate.
    log_weights : torch.Tensor, shape (G,) or (R, G)
        :math:`\log w_g`.
    theta0 : torch.Tensor, shape (K,) or (R, K), optional
        Starting point (default zero, the uniform density on the quadrature box).
    max_iter : int
    tol : float
        Stop when every replicate's Newton decrement is below ``tol``.

    Returns
    -------
    theta : torch.Tensor, shape (R, K) (or (K,) for a 1-D ``mean_stats``)
        The MLE. The caller should check that the fitted density is negligible at the box's edges,
        as :func:`ebmlib.exact.log_partition_quadrature` does.

    Warns
    -----
    ConvergenceWarning
        When ``max_iter`` iterations end with some replicate's Newton decrement still above
        ``tol`` (the last iterate is returned).
    """
    _check_mle_inputs(mean_stats, grid_stats, log_weights)
    single = mean_stats.ndim == 1
    mean_stats = mean_stats[None, :] if single else mean_stats
    max_iter = check_int(max_iter, "max_iter")
    r, k = mean_stats.shape
    theta = (
        torch.zeros(r, k, dtype=mean_stats.dtype)
        if theta0 is None
        else torch.as_tensor(theta0, dtype=mean_stats.dtype).expand(r, k).clone()
    )
    theta = _damped_newton(
        lambda theta: (_grid_nll(theta, mean_stats, grid_stats, log_weights), None),
        lambda theta, _: _grid_nll_derivatives(theta, mean_stats, grid_stats, log_weights),
        theta,
        solver="mle_exponential_family",
        max_iter=max_iter,
        tol=tol,
        ridge=1e-14,
        max_halvings=60,
        slack=1e-13,
    )
    return theta[0] if single else theta


def _least_squares_fit(gram: torch.Tensor, rhs: torch.Tensor) -> torch.Tensor:
    k = gram.shape[-1]
    scale = gram.diagonal(dim1=-2, dim2=-1).abs().amax(-1).clamp_min(1e-300)[:, None, None]
    return torch.linalg.solve(
        gram + 1e-13 * scale * torch.eye(k, dtype=gram.dtype), rhs.unsqueeze(-1)
    ).squeeze(-1)


def _check_stats(t, name, ndim):
    check_tensor(t, name)
    check_finite(t, name)
    if t.ndim != ndim or t.shape[1] == 0:
        raise ValueError(
            f"{name} must have {ndim} dimensions with at least one point per replicate, "
            f"got shape {tuple(t.shape)}"
        )
    return t


def score_matching_exponential_family(
    grad_stats: torch.Tensor, second_stats: torch.Tensor
) -> torch.Tensor:
    r"""Score-matching estimates for many replicate data sets at once, in closed form.

    For :math:`E = \theta^\top T` the model score is
    :math:`s_\theta(x) = -\sum_k\theta_k\nabla_x T_k(x)`, so
    :func:`ebmlib.losses.score_matching_loss` is the quadratic

    .. math::  J(\theta) = \frac1N\sum_n\Bigl[
               \tfrac12\bigl\lVert \textstyle\sum_k \theta_k \nabla T_k(x_n)\bigr\rVert^2
               - \theta^\top \Delta T(x_n)\Bigr],
               \qquad \hat\theta
               = \Bigl(\frac1N\sum_n G_n G_n^\top\Bigr)^{-1}\frac1N\sum_n \Delta T(x_n),

    with :math:`G_n` the :math:`K\times d` matrix of :math:`\nabla_x T_k(x_n)`
    :cite:p:`hyvarinen2005`. Sliced score matching (:func:`ebmlib.losses.sliced_score_matching_loss`
    with variance reduction) is the same computation with :math:`\Delta T` replaced by the projected
    second derivative :math:`v_n^\top\nabla_x^2 T_k(x_n)\,v_n`.

    Parameters
    ----------
    grad_stats : torch.Tensor, shape (R, N, K, d)
        :math:`\partial T_k(x_n)/\partial x_j` for each of :math:`R` replicates.
    second_stats : torch.Tensor, shape (R, N, K)
        :math:`\Delta T_k(x_n)` (exact) or :math:`v_n^\top\nabla^2 T_k(x_n) v_n` (sliced).

    Returns
    -------
    theta : torch.Tensor, shape (R, K)
    """
    _check_stats(grad_stats, "grad_stats", 4)
    _check_stats(second_stats, "second_stats", 3)
    if second_stats.shape != grad_stats.shape[:3]:
        raise ValueError(
            f"second_stats must have shape {tuple(grad_stats.shape[:3])}, "
            f"got {tuple(second_stats.shape)}"
        )
    gram = torch.einsum("rnkd,rnld->rkl", grad_stats, grad_stats) / grad_stats.shape[1]
    return _least_squares_fit(gram, second_stats.mean(1))


def denoising_score_matching_exponential_family(
    grad_stats_noisy: torch.Tensor, noise: torch.Tensor, sigma: float
) -> torch.Tensor:
    r"""Denoising score-matching estimates for many replicate data sets at once, in closed form.

    With :math:`\tilde x_n = x_n + \sigma\varepsilon_n`,
    :func:`ebmlib.losses.denoising_score_matching_loss` is
    :math:`\frac1N\sum_n\tfrac12\lVert -G(\tilde x_n)^\top\theta + \varepsilon_n/\sigma\rVert^2`
    :cite:p:`vincent2011`, a least-squares problem with solution

    .. math::  \hat\theta_\sigma = \Bigl(\frac1N\sum_n G(\tilde x_n) G(\tilde x_n)^\top\Bigr)^{-1}
               \frac1N\sum_n G(\tilde x_n)\,\varepsilon_n/\sigma .

    **Several noise draws per point.** With inputs of shapes ``(R, N, M, K, d)`` and
    ``(R, N, M, d)`` each data point carries :math:`M` draws :math:`\varepsilon_{nm}` and the loss
    averages over them (the sums run over :math:`n` and :math:`m`). Draws from
    :func:`denoising_perturbation` may be independent (``n_draws``) or antithetic pairs
    :math:`\pm\varepsilon` (``antithetic=True``); a pair cancels the :math:`O(1/\sigma)` term
    :math:`G(x_n)\varepsilon/\sigma` of the right-hand side, the noise that dominates the
    estimator's variance at small :math:`\sigma` (:func:`denoising_score_matching_asymptotics`
    computes that variance).

    Parameters
    ----------
    grad_stats_noisy : torch.Tensor, shape (R, N, K, d) or (R, N, M, K, d)
        :math:`\partial T_k/\partial x_j` at the *noisy* points :math:`\tilde x_n` (or
        :math:`\tilde x_{nm}`).
    noise : torch.Tensor, shape (R, N, d) or (R, N, M, d)
        The standard normal draws :math:`\varepsilon_n` (or :math:`\varepsilon_{nm}`).
    sigma : float
        Noise level, > 0.

    Returns
    -------
    theta : torch.Tensor, shape (R, K)
    """
    if isinstance(grad_stats_noisy, torch.Tensor) and grad_stats_noisy.ndim == 5:
        _check_stats(grad_stats_noisy, "grad_stats_noisy", 5)
        _check_stats(noise, "noise", 4)
        r, n, m, k, d = grad_stats_noisy.shape
        if noise.shape != (r, n, m, d):
            raise ValueError(f"noise must have shape {(r, n, m, d)}, got {tuple(noise.shape)}")
        if m == 0:
            raise ValueError("grad_stats_noisy needs at least one noise draw per point (M >= 1)")
        grad_stats_noisy, noise = (
            grad_stats_noisy.reshape(r, n * m, k, d),
            noise.reshape(r, n * m, d),
        )
    _check_stats(grad_stats_noisy, "grad_stats_noisy", 4)
    _check_stats(noise, "noise", 3)
    sigma = check_positive(sigma, "sigma")
    r, n, k, d = grad_stats_noisy.shape
    if noise.shape != (r, n, d):
        raise ValueError(f"noise must have shape {(r, n, d)}, got {tuple(noise.shape)}")
    gram = torch.einsum("rnkd,rnld->rkl", grad_stats_noisy, grad_stats_noisy) / n
    rhs = torch.einsum("rnkd,rnd->rk", grad_stats_noisy, noise) / (n * sigma)
    return _least_squares_fit(gram, rhs)


def denoising_perturbation(
    x: torch.Tensor,
    sigma: float,
    *,
    n_draws: int = 1,
    antithetic: bool = False,
    generator: torch.Generator | None = None,
):
    r"""Noisy copies :math:`\tilde x_{nm} = x_n + \sigma\varepsilon_{nm}` of each point, for
    denoising score matching.

    Parameters
    ----------
    x : torch.Tensor, shape (R, N, d)
        Data of :math:`R` replicates.
    sigma : float
        Noise level, > 0.
    n_draws : int
        Independent draws per point, :math:`\varepsilon_{nm}\sim\mathcal N(0, I_d)`.
    antithetic : bool
        If true, each draw comes with its mirror :math:`-\varepsilon_{nm}`, so :math:`M = 2\,`
        ``n_draws``; otherwise :math:`M =` ``n_draws``.
    generator : torch.Generator, optional

    Returns
    -------
    x_noisy : torch.Tensor, shape (R, N, M, d)
    noise : torch.Tensor, shape (R, N, M, d)
        The draws :math:`\varepsilon_{nm}`; pass both (through the statistics' gradient) to
        :func:`denoising_score_matching_exponential_family`.
    """
    check_tensor(x, "x")
    check_finite(x, "x")
    if x.ndim != 3 or x.shape[1] == 0:
        raise ValueError(f"x must have shape (R, N, d) with N >= 1, got {tuple(x.shape)}")
    sigma = check_positive(sigma, "sigma")
    n_draws = check_int(n_draws, "n_draws")
    if not isinstance(antithetic, bool):
        raise TypeError(f"antithetic must be a bool, got {type(antithetic).__name__}")
    check_generator(generator)
    r, n, d = x.shape
    eps = torch.randn(r, n, n_draws, d, generator=generator, dtype=x.dtype)
    if antithetic:
        eps = torch.stack([eps, -eps], dim=3).reshape(
            r, n, 2 * n_draws, d
        )  # (eps_1, -eps_1, eps_2, ...)
    return x[:, :, None, :] + sigma * eps, eps


# ---------------------------------------------------------- asymptotic (sandwich) covariances
def _sandwich(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    a_inv = torch.linalg.inv(a)
    cov = a_inv @ b @ a_inv.T
    return (cov + cov.T) / 2


def _check_probs(weights, g, name):
    if weights is None:
        return torch.full((g,), 1.0 / g, dtype=torch.float64)
    check_tensor(weights, name)
    check_finite(weights, name)
    if weights.shape != (g,):
        raise ValueError(f"{name} must have shape ({g},), got {tuple(weights.shape)}")
    if bool((weights < 0).any()) or not float(weights.sum()) > 0:
        raise ValueError(f"{name} must be non-negative with a positive sum")
    return weights / weights.sum()


def sandwich_covariance(psi, jacobian, weights=None, *, counts=None) -> torch.Tensor:
    r"""Asymptotic covariance :math:`A^{-1}BA^{-\top}` of an M-estimator, from its estimating
    function.

    An M-estimator solves :math:`\frac1N\sum_{n=1}^N\psi(z_n, \hat\theta) = 0` over :math:`N`
    independent observations :math:`z_n`. If :math:`\theta_0` solves
    :math:`\mathbb E\,\psi(z, \theta_0) = 0`, then
    :math:`\sqrt N(\hat\theta - \theta_0) \to \mathcal N(0, A^{-1}BA^{-\top})` with
    :math:`A = \mathbb E\,\partial_\theta\psi(z,\theta_0)` and
    :math:`B = \operatorname{Cov}\psi(z,\theta_0)` :cite:p:`huber1967`. The expectations are
    weighted sums over points (quadrature nodes with their probabilities, or a sample with equal
    weights).

    One observation's estimating function may be a sum of independent *parts*,
    :math:`\psi(z) = \sum_i\sum_{j=1}^{c_i}\psi_i(z_{ij})` with :math:`c_i` independent copies of
    part :math:`i` (for NCE: one data point and :math:`\nu` noise points). Then
    :math:`A = \sum_i c_i\,\mathbb E\,\partial_\theta\psi_i` and
    :math:`B = \sum_i c_i\operatorname{Cov}\psi_i`.

    Parameters
    ----------
    psi : torch.Tensor, shape (G, P), or a sequence of such tensors
        :math:`\psi_i` at the points, evaluated at :math:`\theta_0` (a sequence: one tensor per
        part, each with its own G).
    jacobian : torch.Tensor, shape (G, P, P), or a sequence of them
        :math:`\partial\psi_i/\partial\theta` at the points (row: component of :math:`\psi`).
    weights : torch.Tensor, shape (G,), or a sequence of them (or ``None`` entries), optional
        Non-negative weights of the points (normalized here); ``None`` for equal weights.
    counts : sequence of float, optional
        :math:`c_i`, default 1 for every part.

    Returns
    -------
    torch.Tensor, shape (P, P)
        :math:`A^{-1}BA^{-\top}`: :math:`N` times the covariance of :math:`\hat\theta` to first
        order.
    """
    parts = isinstance(psi, (list, tuple))
    psis = list(psi) if parts else [psi]
    jacs = list(jacobian) if isinstance(jacobian, (list, tuple)) else [jacobian]
    ws = list(weights) if isinstance(weights, (list, tuple)) else [weights] * len(psis)
    cs = [1.0] * len(psis) if counts is None else [check_positive(c, "counts") for c in counts]
    if not (len(psis) == len(jacs) == len(ws) == len(cs)) or not psis:
        raise ValueError("psi, jacobian, weights and counts must have one entry per part")
    a = b = 0.0
    p_dim = None
    for ps, jc, w, c in zip(psis, jacs, ws, cs, strict=True):
        check_tensor(ps, "psi")
        check_finite(ps, "psi")
        check_tensor(jc, "jacobian")
        check_finite(jc, "jacobian")
        if ps.ndim != 2 or ps.shape[0] == 0:
            raise ValueError(f"psi must have shape (G, P) with G >= 1, got {tuple(ps.shape)}")
        g, p = ps.shape
        p_dim = p if p_dim is None else p_dim
        if p != p_dim or jc.shape != (g, p, p):
            raise ValueError(f"jacobian must have shape {(g, p_dim, p_dim)}, got {tuple(jc.shape)}")
        w = _check_probs(w, g, "weights").to(ps.dtype)
        mean = w @ ps
        centred = ps - mean
        a = a + c * torch.einsum("g,gkl->kl", w, jc)
        b = b + c * torch.einsum("g,gk,gl->kl", w, centred, centred)
    return _sandwich(a, b)


def _projection_variance(second_stats, projection):
    """E_x Cov_v(v^T H_k v, v^T H_l v) integrand per point: (G, K, K)."""
    if projection == "gaussian":
        return 2 * torch.einsum("gkij,glij->gkl", second_stats, second_stats)
    off = second_stats - torch.diag_embed(torch.diagonal(second_stats, dim1=-2, dim2=-1))
    return 2 * torch.einsum("gkij,glij->gkl", off, off)  # rademacher: v_i^2 = 1


def score_matching_asymptotics(
    grad_stats: torch.Tensor,
    second_stats: torch.Tensor,
    weights: torch.Tensor,
    *,
    projection: str | None = None,
):
    r"""Limit and asymptotic covariance of (sliced) score matching for :math:`E = \theta^\top T`.

    The estimator of :func:`score_matching_exponential_family` solves
    :math:`\frac1N\sum_n\psi(x_n,\theta)=0` with :math:`\psi = G G^\top\theta - s`, :math:`G` the
    :math:`K\times d` matrix of :math:`\nabla_x T_k` and :math:`s_k = \Delta T_k` (exact) or
    :math:`v^\top\nabla_x^2T_k\,v` (sliced, one projection :math:`v` per point). So
    :math:`A = \mathbb E[GG^\top]`, :math:`\theta_0 = A^{-1}\mathbb E[\Delta T]` and

    .. math::  B = \operatorname{Cov}_x\bigl(GG^\top\theta_0 - \Delta T\bigr)
               + \mathbb E_x\operatorname{Cov}_v\bigl(v^\top\nabla^2 T\,v\bigr),

    whose second term is :math:`2\operatorname{tr}(H_kH_l)` for Gaussian :math:`v` and the same sum
    without the diagonal for Rademacher :math:`v` (:math:`v_i^2=1`), which in one dimension is zero:
    there sliced SM with Rademacher projections *is* exact SM.

    Parameters
    ----------
    grad_stats : torch.Tensor, shape (G, K, d)
        :math:`\partial T_k/\partial x_j` at the points.
    second_stats : torch.Tensor, shape (G, K) or (G, K, d, d)
        The Laplacians :math:`\Delta T_k`, or the Hessians :math:`\nabla_x^2 T_k` (needed for
        ``projection`` when :math:`d > 1`).
    weights : torch.Tensor, shape (G,)
        Probabilities of the points under the data distribution (normalized here).
    projection : {None, "gaussian", "rademacher"}
        ``None`` for exact score matching, else the law of the sliced projections.

    Returns
    -------
    theta : torch.Tensor, shape (K,)
        The limit :math:`\theta_0`.
    cov : torch.Tensor, shape (K, K)
        :math:`A^{-1}BA^{-\top}`.
    """
    check_tensor(grad_stats, "grad_stats")
    check_finite(grad_stats, "grad_stats")
    check_tensor(second_stats, "second_stats")
    check_finite(second_stats, "second_stats")
    if grad_stats.ndim != 3:
        raise ValueError(f"grad_stats must have shape (G, K, d), got {tuple(grad_stats.shape)}")
    g, k, d = grad_stats.shape
    if projection not in (None, "gaussian", "rademacher"):
        raise ValueError(f"projection must be None, 'gaussian' or 'rademacher', got {projection!r}")
    if second_stats.shape == (g, k, d, d):
        hessians = second_stats
        laplacian = torch.diagonal(second_stats, dim1=-2, dim2=-1).sum(-1)
    elif second_stats.shape == (g, k):
        laplacian = second_stats
        if projection is not None and d > 1:
            raise ValueError(
                "second_stats must hold the Hessians, shape (G, K, d, d), for a sliced estimator "
                "with d > 1"
            )
        hessians = second_stats[:, :, None, None]
    else:
        raise ValueError(
            f"second_stats must have shape {(g, k)} or {(g, k, d, d)}, "
            f"got {tuple(second_stats.shape)}"
        )
    w = _check_probs(weights, g, "weights").to(grad_stats.dtype)
    gram = torch.einsum("gkd,gld->gkl", grad_stats, grad_stats)
    a = torch.einsum("g,gkl->kl", w, gram)
    theta = torch.linalg.solve(a, w @ laplacian)
    psi = gram @ theta - laplacian
    centred = psi - w @ psi
    b = torch.einsum("g,gk,gl->kl", w, centred, centred)
    if projection is not None:
        b = b + torch.einsum("g,gkl->kl", w, _projection_variance(hessians, projection))
    return theta, _sandwich(a, b)


def _check_dsm_asymptotics_args(grad_stats_fn, nodes, sigma, n_draws, antithetic, n_hermite):
    """The checks of :func:`denoising_score_matching_asymptotics`; returns ``sigma``, ``n_draws``
    and ``n_hermite`` checked."""
    check_tensor(nodes, "nodes")
    check_finite(nodes, "nodes")
    if nodes.ndim != 2 or nodes.shape[1] != 1 or nodes.shape[0] == 0:
        raise ValueError(f"nodes must have shape (G, 1) (one dimension), got {tuple(nodes.shape)}")
    sigma = check_positive(sigma, "sigma")
    n_draws = check_int(n_draws, "n_draws")
    n_hermite = check_int(n_hermite, "n_hermite", minimum=2)
    if not isinstance(antithetic, bool):
        raise TypeError(f"antithetic must be a bool, got {type(antithetic).__name__}")
    if not callable(grad_stats_fn):
        raise TypeError("grad_stats_fn must be callable")
    return sigma, n_draws, n_hermite


def _standard_normal_hermite(n_hermite: int, dtype):
    r"""Gauss–Hermite nodes and probabilities for :math:`\varepsilon\sim\mathcal N(0, 1)`, shapes
    (H,) and (H,)."""
    import numpy as np

    e_nodes, e_w = np.polynomial.hermite_e.hermegauss(n_hermite)  # weight exp(-e^2 / 2)
    eps = torch.as_tensor(e_nodes, dtype=dtype)
    return eps, torch.as_tensor(e_w / e_w.sum(), dtype=dtype)  # N(0, 1) probabilities


def _dsm_units(grad_stats_fn, nodes, sigma, eps):
    r""":math:`G(\tilde x)G(\tilde x)^\top`, shape (G, H, K, K), and
    :math:`G(\tilde x)\,\varepsilon/\sigma`, shape (G, H, K), at :math:`\tilde x = x +
    \sigma\varepsilon` for every node :math:`x` and every noise value :math:`\varepsilon`."""
    gs = grad_stats_fn(nodes[:, None, :] + sigma * eps[None, :, None])[..., 0]  # (G, H, K)
    if gs.ndim != 3 or gs.shape[:2] != (nodes.shape[0], eps.shape[0]):
        raise ValueError("grad_stats_fn must map (..., 1) to (..., K, 1)")
    return gs[..., :, None] * gs[..., None, :], gs * eps[None, :, None] / sigma


def denoising_score_matching_asymptotics(
    grad_stats_fn,
    nodes: torch.Tensor,
    weights: torch.Tensor,
    sigma: float,
    *,
    n_draws: int = 1,
    antithetic: bool = False,
    n_hermite: int = 40,
):
    r"""Limit and asymptotic covariance of denoising score matching for :math:`E = \theta^\top T`,
    in one dimension.

    Per data point the estimator of :func:`denoising_score_matching_exponential_family` averages
    :math:`\psi(x,\varepsilon;\theta)
    = G(\tilde x)G(\tilde x)^\top\theta - G(\tilde x)\,\varepsilon/\sigma`,
    :math:`\tilde x = x+\sigma\varepsilon`, over its :math:`M` draws: ``n_draws`` independent ones,
    or ``n_draws`` antithetic pairs, whose unit is
    :math:`\tfrac12[\psi(x,\varepsilon)+\psi(x,-\varepsilon)]`. With :math:`\psi_u` one such unit,
    :math:`A = \mathbb E[G(\tilde x)G(\tilde x)^\top]`,
    :math:`\theta_\sigma = A^{-1}\mathbb E[G(\tilde x)\varepsilon]/\sigma` (the score-matching fit
    to the :math:`\sigma`-blurred data) and

    .. math::  B = \operatorname{Cov}_x\bigl(\mathbb E[\psi_u\mid x]\bigr)
               + \frac{1}{n_\text{draws}}\,\mathbb E_x\operatorname{Cov}(\psi_u\mid x).

    Expectations over :math:`x` are weighted sums over ``nodes``; those over :math:`\varepsilon` use
    Gauss–Hermite quadrature, exact when :math:`T` is a polynomial of degree below ``n_hermite``.

    Parameters
    ----------
    grad_stats_fn : callable
        Maps points of shape ``(..., 1)`` to :math:`\partial T_k/\partial x`, shape ``(..., K, 1)``.
    nodes : torch.Tensor, shape (G, 1)
    weights : torch.Tensor, shape (G,)
        Probabilities of the nodes under the data distribution (normalized here).
    sigma : float
        Noise level, > 0.
    n_draws : int
        Independent draws (or antithetic pairs) per data point.
    antithetic : bool
    n_hermite : int
        Gauss–Hermite nodes for :math:`\varepsilon`.

    Returns
    -------
    theta : torch.Tensor, shape (K,)
        :math:`\theta_\sigma`.
    cov : torch.Tensor, shape (K, K)
        :math:`A^{-1}BA^{-\top}`.
    """
    sigma, n_draws, n_hermite = _check_dsm_asymptotics_args(
        grad_stats_fn, nodes, sigma, n_draws, antithetic, n_hermite
    )
    w = _check_probs(weights, nodes.shape[0], "weights").to(nodes.dtype)
    eps, e_w = _standard_normal_hermite(n_hermite, nodes.dtype)
    gram, rhs = _dsm_units(grad_stats_fn, nodes, sigma, eps)
    if antithetic:
        gram_m, rhs_m = _dsm_units(grad_stats_fn, nodes, sigma, -eps)
        gram, rhs = (gram + gram_m) / 2, (rhs + rhs_m) / 2
    a = torch.einsum("g,h,ghkl->kl", w, e_w, gram)
    theta = torch.linalg.solve(a, torch.einsum("g,h,ghk->k", w, e_w, rhs))
    psi = gram @ theta - rhs  # (G, H, K), one unit per (x, eps)
    given_x = torch.einsum("h,ghk->gk", e_w, psi)  # E[psi_u | x]
    between = given_x - w @ given_x
    within = psi - given_x[:, None, :]
    b = (
        torch.einsum("g,gk,gl->kl", w, between, between)
        + torch.einsum("g,h,ghk,ghl->kl", w, e_w, within, within) / n_draws
    )
    return theta, _sandwich(a, b)


def nce_asymptotics(
    stats: torch.Tensor,
    log_weights: torch.Tensor,
    log_p: torch.Tensor,
    log_q: torch.Tensor,
    nu: float,
) -> torch.Tensor:
    r"""Asymptotic covariance of NCE's :math:`\hat\theta` for :math:`E = \theta^\top T`, well
    specified.

    Per data point :math:`x` with :math:`\nu` noise points :math:`y_j\sim q`, the estimator of
    :func:`nce_exponential_family` solves the sum of
    :math:`\psi = (1-\sigma(g(x)))\,\phi(x) - \sum_j\sigma(g(y_j))\,\phi(y_j)` for
    :math:`\beta=(\theta, c)`, with features :math:`\phi = (-T, -1)` and logit
    :math:`g = \log p_\beta - \log q - \log\nu`, equal to :math:`\log p - \log q - \log\nu` at the
    truth :cite:p:`gutmann2012`. Both parts have Jacobian
    :math:`-\sigma(g)(1-\sigma(g))\phi\phi^\top`; :func:`sandwich_covariance` combines the data part
    with :math:`\nu` copies of the noise part.

    Parameters
    ----------
    stats : torch.Tensor, shape (G, K)
        :math:`T` at quadrature nodes.
    log_weights : torch.Tensor, shape (G,)
        Log quadrature weights of the nodes.
    log_p, log_q : torch.Tensor, shape (G,)
        The data (model) and noise log densities at the nodes; both are renormalized over the
        nodes, i.e. treated as truncated to the quadrature's range.
    nu : float
        Noise points per data point, > 0.

    Returns
    -------
    torch.Tensor, shape (K, K)
        The :math:`\theta` block of :math:`A^{-1}BA^{-\top}` (with :math:`c` estimated alongside).
    """
    for name, t in (
        ("stats", stats),
        ("log_weights", log_weights),
        ("log_p", log_p),
        ("log_q", log_q),
    ):
        check_tensor(t, name)
        check_finite(t, name)
    if stats.ndim != 2:
        raise ValueError(f"stats must have shape (G, K), got {tuple(stats.shape)}")
    g, k = stats.shape
    for name, t in (("log_weights", log_weights), ("log_p", log_p), ("log_q", log_q)):
        if t.shape != (g,):
            raise ValueError(f"{name} must have shape ({g},), got {tuple(t.shape)}")
    nu = check_positive(nu, "nu")
    phi = torch.cat([-stats, -torch.ones(g, 1, dtype=stats.dtype)], 1)
    # both densities renormalized over the nodes: the logit and the weights then describe the same
    # (truncated) densities, so a noise with mass outside the nodes' range cannot give an
    # efficiency above the Cramer-Rao bound
    log_p = log_p - torch.logsumexp(log_weights + log_p, 0)
    log_q = log_q - torch.logsumexp(log_weights + log_q, 0)
    s = torch.sigmoid(log_p - log_q - math.log(nu))
    jac = -(s * (1 - s))[:, None, None] * phi[:, :, None] * phi[:, None, :]
    w_p, w_q = torch.softmax(log_weights + log_p, 0), torch.softmax(log_weights + log_q, 0)
    cov = sandwich_covariance(
        [(1 - s)[:, None] * phi, -s[:, None] * phi], [jac, jac], [w_p, w_q], counts=[1.0, nu]
    )
    return cov[:k, :k]


def is_mle_asymptotics(
    stats: torch.Tensor,
    log_weights: torch.Tensor,
    log_p: torch.Tensor,
    log_q: torch.Tensor,
    ratio: float,
) -> torch.Tensor:
    r"""Asymptotic covariance of Geyer's importance-sampling MLE with :math:`M = rN` proposal draws.

    The estimator of :func:`mle_exponential_family` on proposal points solves
    :math:`\bar T = \sum_m w_m T(y_m)/\sum_m w_m`, :math:`w_m = e^{-\theta^\top T(y_m)}/q(y_m)`
    :cite:p:`geyer1994`. Linearizing both sides around :math:`\theta^*` (the data mean and the
    self-normalized IS mean are independent) gives

    .. math::  N\operatorname{Cov}\hat\theta \to I^{-1} + \frac1r\,I^{-1}VI^{-1},\qquad
               V = \mathbb E_p\Bigl[\frac pq\,(T-\mu)(T-\mu)^\top\Bigr],

    with :math:`I = \operatorname{Cov}_p T` and :math:`\mu = \mathbb E_pT`: the MLE's covariance
    plus the asymptotic variance of self-normalized importance sampling.

    Parameters
    ----------
    stats, log_weights, log_p, log_q
        As in :func:`nce_asymptotics`.
    ratio : float
        :math:`r = M/N`, > 0.

    Returns
    -------
    torch.Tensor, shape (K, K)
    """
    for name, t in (
        ("stats", stats),
        ("log_weights", log_weights),
        ("log_p", log_p),
        ("log_q", log_q),
    ):
        check_tensor(t, name)
        check_finite(t, name)
    if stats.ndim != 2:
        raise ValueError(f"stats must have shape (G, K), got {tuple(stats.shape)}")
    g = stats.shape[0]
    for name, t in (("log_weights", log_weights), ("log_p", log_p), ("log_q", log_q)):
        if t.shape != (g,):
            raise ValueError(f"{name} must have shape ({g},), got {tuple(t.shape)}")
    ratio = check_positive(ratio, "ratio")
    w_p = torch.softmax(log_weights + log_p, 0)
    centred = stats - w_p @ stats
    fisher = torch.einsum("g,gk,gl->kl", w_p, centred, centred)
    v = torch.einsum("g,gk,gl->kl", w_p * torch.exp(log_p - log_q), centred, centred)
    i_inv = torch.linalg.inv(fisher)
    cov = i_inv + i_inv @ v @ i_inv / ratio
    return (cov + cov.T) / 2
