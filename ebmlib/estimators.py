r"""Batched estimators for exponential families, for Monte-Carlo studies over many independent data sets.

For an exponential family :math:`E(x\mid\theta) = \theta^\top T(x)`, several estimators reduce to convex problems in
the sufficient statistics that can be solved for hundreds of replicate data sets at once. They give the same answers
as minimizing the generic losses of :mod:`ebmlib.losses` one data set at a time (the tests check this), only faster.
"""

from __future__ import annotations

import math

import torch

from .validation import check_finite, check_int, check_positive, check_tensor

__all__ = ["mle_exponential_family", "nce_exponential_family", "score_matching_exponential_family",
           "denoising_score_matching_exponential_family"]


def _nce_objective(beta, phi_d, phi_n, off_d, off_n, n_data):
    g_d = torch.einsum("rnk,rk->rn", phi_d, beta) + off_d
    g_n = torch.einsum("rnk,rk->rn", phi_n, beta) + off_n
    loss = -(torch.nn.functional.logsigmoid(g_d).sum(1) + torch.nn.functional.logsigmoid(-g_n).sum(1)) / n_data
    return loss, g_d, g_n


def nce_exponential_family(stats_data: torch.Tensor, stats_noise: torch.Tensor, log_q_data: torch.Tensor,
                           log_q_noise: torch.Tensor, *, max_iter: int = 100, tol: float = 1e-10):
    r"""NCE estimates :math:`(\hat\theta, \hat c)` for many replicate data sets at once, by damped Newton steps.

    With :math:`E = \theta^\top T` and :math:`c` for :math:`\log Z`, the NCE classifier's logit
    :math:`G(x) = -\theta^\top T(x) - c - \log q(x) - \log\nu` is linear in :math:`\beta = (\theta, c)`, so
    :func:`ebmlib.losses.nce_loss` is the loss of a logistic regression with features :math:`(-T(x), -1)` and offset
    :math:`-\log q(x) - \log\nu`. It is convex; Newton's method with step halving solves it to machine precision.

    Parameters
    ----------
    stats_data : torch.Tensor, shape (R, N, K)
        Sufficient statistics :math:`T(x)` of the :math:`N` data points of each of :math:`R` replicates.
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
    theta : torch.Tensor, shape (R, K)
    log_z : torch.Tensor, shape (R,)
        The learned :math:`c`.
    """
    for name, t in (("stats_data", stats_data), ("stats_noise", stats_noise), ("log_q_data", log_q_data),
                    ("log_q_noise", log_q_noise)):
        check_tensor(t, name)
        check_finite(t, name)
    if stats_data.ndim != 3 or stats_noise.ndim != 3 or stats_data.shape[0] != stats_noise.shape[0] \
            or stats_data.shape[2] != stats_noise.shape[2]:
        raise ValueError(f"stats_data (R, N, K) and stats_noise (R, M, K) disagree: {tuple(stats_data.shape)} and "
                         f"{tuple(stats_noise.shape)}")
    r, n, k = stats_data.shape
    m = stats_noise.shape[1]
    if n == 0 or m == 0:
        raise ValueError("stats_data and stats_noise need at least one point per replicate")
    if log_q_data.shape != (r, n) or log_q_noise.shape != (r, m):
        raise ValueError(f"log_q_data must have shape ({r}, {n}) and log_q_noise ({r}, {m})")
    max_iter = check_int(max_iter, "max_iter")
    log_nu = math.log(m / n)
    ones_d = -torch.ones(r, n, 1, dtype=stats_data.dtype)
    ones_n = -torch.ones(r, m, 1, dtype=stats_data.dtype)
    phi_d = torch.cat([-stats_data, ones_d], dim=2)                   # features of (theta, c)
    phi_n = torch.cat([-stats_noise, ones_n], dim=2)
    off_d, off_n = -log_q_data - log_nu, -log_q_noise - log_nu
    beta = torch.zeros(r, k + 1, dtype=stats_data.dtype)
    loss, g_d, g_n = _nce_objective(beta, phi_d, phi_n, off_d, off_n, n)
    for _ in range(max_iter):
        p_d, p_n = torch.sigmoid(g_d), torch.sigmoid(g_n)
        grad = (torch.einsum("rn,rnk->rk", p_d - 1, phi_d) + torch.einsum("rn,rnk->rk", p_n, phi_n)) / n
        w_d, w_n = p_d * (1 - p_d), p_n * (1 - p_n)
        hess = (torch.einsum("rn,rnk,rnl->rkl", w_d, phi_d, phi_d) + torch.einsum("rn,rnk,rnl->rkl", w_n, phi_n, phi_n)) / n
        hess = hess + 1e-12 * torch.eye(k + 1, dtype=hess.dtype)
        step = torch.linalg.solve(hess, grad.unsqueeze(-1)).squeeze(-1)
        decrement = (grad * step).sum(1)
        if bool((decrement < tol).all()):
            break
        scale = torch.ones(r, dtype=beta.dtype)
        for _ in range(50):  # step halving, per replicate, until the loss does not increase
            trial = beta - scale[:, None] * step
            new_loss, new_g_d, new_g_n = _nce_objective(trial, phi_d, phi_n, off_d, off_n, n)
            worse = new_loss > loss + 1e-14
            if not bool(worse.any()):
                break
            scale = torch.where(worse, scale / 2, scale)
        beta, loss, g_d, g_n = trial, new_loss, new_g_d, new_g_n
    return beta[:, :k], beta[:, k]


def _grid_log_p(theta, grid_stats, log_w):
    """log w_g - theta^T T(x_g) for every replicate: (R, G); grid_stats is (G, K) or (R, G, K)."""
    if grid_stats.ndim == 2:
        return log_w[None, :] - theta @ grid_stats.T
    return log_w - torch.einsum("rgk,rk->rg", grid_stats, theta)


def _grid_nll(theta, mean_stats, grid_stats, log_w):
    log_z = torch.logsumexp(_grid_log_p(theta, grid_stats, log_w), dim=1)           # (R,)
    return (theta * mean_stats).sum(1) + log_z


def mle_exponential_family(mean_stats: torch.Tensor, grid_stats: torch.Tensor, log_weights: torch.Tensor, *,
                           theta0: torch.Tensor | None = None, max_iter: int = 100, tol: float = 1e-12):
    r"""Exact maximum-likelihood estimates for many replicate data sets at once, by damped Newton steps.

    For :math:`E(x\mid\theta)=\theta^\top T(x)` the average NLL is
    :math:`\ell(\theta) = \theta^\top\bar T + \log Z(\theta)` with :math:`\bar T` the data mean of :math:`T`, and
    :math:`\log Z` is computed by quadrature on fixed nodes :math:`x_g` with weights :math:`w_g`:
    :math:`\log Z(\theta) = \log\sum_g w_g e^{-\theta^\top T(x_g)}`. Its gradient is :math:`\bar T - \mathbb E_\theta T`
    and its Hessian :math:`\operatorname{Cov}_\theta T` (the Fisher information), so :math:`\ell` is convex and
    Newton's method with step halving converges from any start.

    The "grid" may be any weighted point set. With :math:`M` draws :math:`y_m` from a proposal :math:`q` and
    :math:`\log w_m = -\log q(y_m) - \log M`, the same computation is Geyer's importance-sampling MLE
    :cite:p:`geyer1994` (minimizing :math:`J_{GL}`); pass a different sample per replicate as ``grid_stats`` of shape
    ``(R, M, K)``. The minimizer exists when :math:`\bar T` lies inside the convex hull of the points' statistics.

    Parameters
    ----------
    mean_stats : torch.Tensor, shape (R, K) or (K,)
        :math:`\bar T` for each of :math:`R` data sets.
    grid_stats : torch.Tensor, shape (G, K) or (R, G, K)
        :math:`T(x_g)` at the quadrature nodes (for example from :func:`ebmlib.exact.quadrature_grid`), shared by
        all replicates or one set per replicate.
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
        The MLE. The caller should check that the fitted density is negligible at the box's edges, as
        :func:`ebmlib.exact.log_partition_quadrature` does.
    """
    for name, t in (("mean_stats", mean_stats), ("grid_stats", grid_stats), ("log_weights", log_weights)):
        check_tensor(t, name)
        check_finite(t, name)
    single = mean_stats.ndim == 1
    mean_stats = mean_stats[None, :] if single else mean_stats
    batched = grid_stats.ndim == 3
    if mean_stats.ndim != 2 or grid_stats.ndim not in (2, 3) or grid_stats.shape[-1] != mean_stats.shape[1] \
            or (batched and grid_stats.shape[0] != mean_stats.shape[0]):
        raise ValueError(f"mean_stats (R, K) and grid_stats (G, K) or (R, G, K) disagree: "
                         f"{tuple(mean_stats.shape)} and {tuple(grid_stats.shape)}")
    if log_weights.shape != grid_stats.shape[:-1]:
        raise ValueError(f"log_weights must have shape {tuple(grid_stats.shape[:-1])}, got {tuple(log_weights.shape)}")
    max_iter = check_int(max_iter, "max_iter")
    r, k = mean_stats.shape
    theta = torch.zeros(r, k, dtype=mean_stats.dtype) if theta0 is None else \
        torch.as_tensor(theta0, dtype=mean_stats.dtype).expand(r, k).clone()
    loss = _grid_nll(theta, mean_stats, grid_stats, log_weights)
    for _ in range(max_iter):
        p = torch.softmax(_grid_log_p(theta, grid_stats, log_weights), dim=1)          # (R, G) model weights
        points = grid_stats if batched else grid_stats[None, :, :]
        mean_model = torch.einsum("rg,rgk->rk", p, points.expand(r, -1, -1))          # E_theta T, (R, K)
        centred = points - mean_model[:, None, :]
        fisher = torch.einsum("rg,rgk,rgl->rkl", p, centred, centred)
        grad = mean_stats - mean_model
        step = torch.linalg.solve(fisher + 1e-14 * torch.eye(k, dtype=fisher.dtype), grad.unsqueeze(-1)).squeeze(-1)
        if bool(((grad * step).sum(1) < tol).all()):
            break
        scale = torch.ones(r, dtype=theta.dtype)
        for _ in range(60):
            trial = theta - scale[:, None] * step
            new_loss = _grid_nll(trial, mean_stats, grid_stats, log_weights)
            worse = new_loss > loss + 1e-13
            if not bool(worse.any()):
                break
            scale = torch.where(worse, scale / 2, scale)
        theta, loss = trial, new_loss
    return theta[0] if single else theta



def _least_squares_fit(gram: torch.Tensor, rhs: torch.Tensor) -> torch.Tensor:
    k = gram.shape[-1]
    scale = gram.diagonal(dim1=-2, dim2=-1).abs().amax(-1).clamp_min(1e-300)[:, None, None]
    return torch.linalg.solve(gram + 1e-13 * scale * torch.eye(k, dtype=gram.dtype), rhs.unsqueeze(-1)).squeeze(-1)


def _check_stats(t, name, ndim):
    check_tensor(t, name)
    check_finite(t, name)
    if t.ndim != ndim or t.shape[1] == 0:
        raise ValueError(f"{name} must have {ndim} dimensions with at least one point per replicate, "
                         f"got shape {tuple(t.shape)}")
    return t


def score_matching_exponential_family(grad_stats: torch.Tensor, second_stats: torch.Tensor) -> torch.Tensor:
    r"""Score-matching estimates for many replicate data sets at once, in closed form.

    For :math:`E = \theta^\top T` the model score is :math:`s_\theta(x) = -\sum_k\theta_k\nabla_x T_k(x)`, so
    :func:`ebmlib.losses.score_matching_loss` is the quadratic

    .. math::  J(\theta) = \frac1N\sum_n\Bigl[\tfrac12\bigl\lVert \textstyle\sum_k \theta_k \nabla T_k(x_n)\bigr\rVert^2
               - \theta^\top \Delta T(x_n)\Bigr],
               \qquad \hat\theta = \Bigl(\frac1N\sum_n G_n G_n^\top\Bigr)^{-1}\frac1N\sum_n \Delta T(x_n),

    with :math:`G_n` the :math:`K\times d` matrix of :math:`\nabla_x T_k(x_n)` :cite:p:`hyvarinen2005`. Sliced score
    matching (:func:`ebmlib.losses.sliced_score_matching_loss` with variance reduction) is the same computation with
    :math:`\Delta T` replaced by the projected second derivative :math:`v_n^\top\nabla_x^2 T_k(x_n)\,v_n`.

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
        raise ValueError(f"second_stats must have shape {tuple(grad_stats.shape[:3])}, got {tuple(second_stats.shape)}")
    gram = torch.einsum("rnkd,rnld->rkl", grad_stats, grad_stats) / grad_stats.shape[1]
    return _least_squares_fit(gram, second_stats.mean(1))


def denoising_score_matching_exponential_family(grad_stats_noisy: torch.Tensor, noise: torch.Tensor,
                                                sigma: float) -> torch.Tensor:
    r"""Denoising score-matching estimates for many replicate data sets at once, in closed form.

    With :math:`\tilde x_n = x_n + \sigma\varepsilon_n`, :func:`ebmlib.losses.denoising_score_matching_loss` is
    :math:`\frac1N\sum_n\tfrac12\lVert -G(\tilde x_n)^\top\theta + \varepsilon_n/\sigma\rVert^2`
    :cite:p:`vincent2011`, a least-squares problem with solution

    .. math::  \hat\theta_\sigma = \Bigl(\frac1N\sum_n G(\tilde x_n) G(\tilde x_n)^\top\Bigr)^{-1}
               \frac1N\sum_n G(\tilde x_n)\,\varepsilon_n/\sigma .

    Parameters
    ----------
    grad_stats_noisy : torch.Tensor, shape (R, N, K, d)
        :math:`\partial T_k/\partial x_j` at the *noisy* points :math:`\tilde x_n`.
    noise : torch.Tensor, shape (R, N, d)
        The standard normal draws :math:`\varepsilon_n`.
    sigma : float
        Noise level, > 0.

    Returns
    -------
    theta : torch.Tensor, shape (R, K)
    """
    _check_stats(grad_stats_noisy, "grad_stats_noisy", 4)
    _check_stats(noise, "noise", 3)
    sigma = check_positive(sigma, "sigma")
    r, n, k, d = grad_stats_noisy.shape
    if noise.shape != (r, n, d):
        raise ValueError(f"noise must have shape {(r, n, d)}, got {tuple(noise.shape)}")
    gram = torch.einsum("rnkd,rnld->rkl", grad_stats_noisy, grad_stats_noisy) / n
    rhs = torch.einsum("rnkd,rnd->rk", grad_stats_noisy, noise) / (n * sigma)
    return _least_squares_fit(gram, rhs)
