r"""Energy functions :math:`E(x\mid\theta)`, written as :class:`torch.nn.Module` s.

Every energy maps a batch ``x`` of shape ``(n, d)`` to a tensor of shape
``(n,)``, and defines the density :math:`p(x\mid\theta) = \exp(-E(x\mid\theta)) / Z(\theta)`.
Its learnable parameters are ordinary ``nn.Parameter`` s, so
``torch.autograd`` gives :math:`\nabla_\theta E` and every optimizer works.

* :class:`GaussianEnergy`: the one family here with a closed-form
  :meth:`~GaussianEnergy.log_partition`, the ground truth for many tests.
* :class:`PolynomialEnergy`: a 1-D exponential family
  :math:`E(x) = \sum_j \theta_j x^{k_j}` (for example a quartic), whose
  normalizer has no closed form but is computed by quadrature in :mod:`ebmlib.exact`.
* :class:`MLPEnergy`: a small neural network energy.
* :class:`MixtureEnergy`: a finite mixture of unnormalized densities, each with its own (estimated)
  normalizer.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .validation import check_generator, check_int

__all__ = ["GaussianEnergy", "PolynomialEnergy", "MLPEnergy", "GaussianMLPEnergy", "MixtureEnergy"]


def _check_input(x: torch.Tensor, dim: int, name: str = "x") -> None:
    """Cheap shape check used inside ``forward`` (no data is read)."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.ndim != 2 or x.shape[1] != dim:
        raise ValueError(
            f"{name} must have shape (n, {dim}) (use (n, 1) for 1-D data), "
            f"got shape {tuple(x.shape)}"
        )


class GaussianEnergy(nn.Module):
    r"""Gaussian energy with mean :math:`\mu` and Cholesky factor :math:`L` of the covariance.

    .. math::

        E(x) = \tfrac12 (x-\mu)^\top \Sigma^{-1} (x-\mu), \qquad \Sigma = L L^\top,

        \log Z = \tfrac d2 \log(2\pi) + \sum_i \log |L_{ii}|.

    Parameters
    ----------
    mean : float or array-like of shape (d,)
        The mean :math:`\mu`. A number gives a 1-D model.
    scale : float, array-like of shape (d,) or (d, d)
        A number is an isotropic standard deviation; a vector gives the
        standard deviations of a diagonal covariance; a matrix is the
        lower-triangular factor :math:`L` (only its lower triangle is used).
        For the 1-D model of the book's chapter 2, ``scale`` is :math:`\theta`,
        the standard deviation.
    learn_mean, learn_scale : bool
        Whether :math:`\mu` and :math:`L` receive gradients.
    dtype : torch.dtype
        Floating-point type of the parameters (default float64).

    Examples
    --------
    >>> energy = GaussianEnergy(0.0, 2.0)          # N(0, 2^2) in 1-D
    >>> float(energy.log_partition())               # log(sqrt(2 pi) * 2)
    1.612085713764618
    """

    def __init__(
        self,
        mean=0.0,
        scale=1.0,
        *,
        learn_mean: bool = True,
        learn_scale: bool = True,
        dtype: torch.dtype = torch.float64,
    ):
        super().__init__()
        mean_t = torch.as_tensor(mean, dtype=dtype).reshape(-1).clone()
        if mean_t.numel() == 0:
            raise ValueError("mean must hold at least one value")
        if not bool(torch.isfinite(mean_t).all()):
            raise ValueError("mean contains NaN or infinite values")
        d = mean_t.numel()
        scale_t = torch.as_tensor(scale, dtype=dtype).clone()
        if scale_t.ndim == 0:
            tril = torch.eye(d, dtype=dtype) * scale_t
        elif scale_t.ndim == 1:
            if scale_t.numel() != d:
                raise ValueError(
                    f"scale must have {d} entries to match mean, got {scale_t.numel()}"
                )
            tril = torch.diag(scale_t)
        elif scale_t.ndim == 2 and scale_t.shape == (d, d):
            tril = torch.tril(scale_t)
        else:
            raise ValueError(
                f"scale must be a number, shape ({d},) or ({d}, {d}); got {tuple(scale_t.shape)}"
            )
        if not bool(torch.isfinite(tril).all()):
            raise ValueError("scale contains NaN or infinite values")
        if bool((torch.diagonal(tril) <= 0).any()):
            raise ValueError("scale must be positive (a positive diagonal for a Cholesky factor)")
        self.dim = d
        self.mean = nn.Parameter(mean_t, requires_grad=learn_mean)
        self.scale_tril = nn.Parameter(tril, requires_grad=learn_scale)

    def _tril(self) -> torch.Tensor:
        return torch.tril(self.scale_tril)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Energy of each row of ``x`` (shape ``(n, d)``), returned with shape ``(n,)``."""
        _check_input(x, self.dim)
        diff = (x - self.mean).T  # (d, n)
        if self.dim == 1:
            z = diff / self.scale_tril[0, 0]
        else:
            z = torch.linalg.solve_triangular(self._tril(), diff, upper=False)
        return 0.5 * (z * z).sum(dim=0)

    def log_partition(self) -> torch.Tensor:
        r"""Analytic :math:`\log Z = \frac d2\log 2\pi + \log|\det L|`, a differentiable scalar."""
        return (
            0.5 * self.dim * math.log(2 * math.pi)
            + torch.log(torch.diagonal(self.scale_tril).abs()).sum()
        )

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        r"""Normalized log density :math:`-E(x) - \log Z`, shape ``(n,)``."""
        return -self.forward(x) - self.log_partition()

    def covariance(self) -> torch.Tensor:
        r"""The covariance :math:`\Sigma = L L^\top`, shape ``(d, d)``."""
        tril = self._tril()
        return tril @ tril.T

    @torch.no_grad()
    def sample(self, n: int, *, generator: torch.Generator | None = None) -> torch.Tensor:
        r"""Draw ``n`` exact samples :math:`x = \mu + L z`, :math:`z\sim\mathcal N(0, I)`; shape
        ``(n, d)``."""
        n = check_int(n, "n")
        check_generator(generator, device=self.mean.device)
        z = torch.randn(
            n, self.dim, generator=generator, dtype=self.mean.dtype, device=self.mean.device
        )
        return self.mean + z @ self._tril().T


class PolynomialEnergy(nn.Module):
    r"""A 1-D exponential family with polynomial sufficient statistics.

    .. math::

        E(x\mid\theta) = \sum_{j} \theta_j\, x^{k_j} = \theta^\top T(x),
        \qquad T(x) = (x^{k_1}, \dots, x^{k_J}).

    Because :math:`E` is linear in :math:`\theta`,
    :math:`\nabla_\theta E(x) = T(x)` and
    :math:`\nabla_\theta \log Z = -\mathbb E_p[T(x)]`. The density is
    normalizable when the largest power is even and its coefficient is
    positive; the constructor checks this for the initial ``theta``.

    Parameters
    ----------
    theta : array-like of shape (J,)
        Natural parameters :math:`\theta_j`.
    powers : sequence of int, default (2, 4)
        The distinct positive powers :math:`k_j`, one per entry of ``theta``.
        The default ``(2, 4)`` gives :math:`E(x) = \theta_1 x^2 + \theta_2 x^4`.
    dtype : torch.dtype
        Floating-point type of ``theta`` (default float64).
    """

    def __init__(self, theta, powers=(2, 4), *, dtype: torch.dtype = torch.float64):
        super().__init__()
        theta_t = torch.as_tensor(theta, dtype=dtype).reshape(-1).clone()
        powers = tuple(int(check_int(k, "powers", minimum=1)) for k in powers)
        if len(powers) != theta_t.numel():
            raise ValueError(f"theta has {theta_t.numel()} entries but powers has {len(powers)}")
        if len(set(powers)) != len(powers):
            raise ValueError(f"powers must be distinct, got {powers}")
        if not bool(torch.isfinite(theta_t).all()):
            raise ValueError("theta contains NaN or infinite values")
        top = max(range(len(powers)), key=lambda j: powers[j])
        if powers[top] % 2 == 1 or theta_t[top] <= 0:
            raise ValueError(
                f"theta does not define a normalizable density: the largest power {powers[top]} "
                f"must be even with a positive coefficient, got {float(theta_t[top])}"
            )
        self.dim = 1
        self.powers = powers
        self.register_buffer("_powers", torch.tensor(powers, dtype=dtype))
        self.theta = nn.Parameter(theta_t)

    def sufficient_statistics(self, x: torch.Tensor) -> torch.Tensor:
        r"""The statistics :math:`T(x)`, shape ``(n, J)``, for ``x`` of shape ``(n, 1)``."""
        _check_input(x, 1)
        return x ** self._powers.to(x.dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Energy :math:`\\theta^\\top T(x)` of each row, shape ``(n,)``."""
        return self.sufficient_statistics(x) @ self.theta.to(x.dtype)


class MLPEnergy(nn.Module):
    r"""A multilayer-perceptron energy :math:`E(x) = f_\theta(x)` with a scalar output.

    The default ``MLPEnergy(2, 64)`` is the 2-64-64-1 network with SiLU
    activations used across the book and its benchmarks. Smooth activations
    keep :math:`\nabla_x E` continuous, which Langevin and HMC samplers need.

    Parameters
    ----------
    dim : int
        Input dimension ``d``.
    hidden : int or sequence of int
        Hidden-layer widths. An int ``h`` gives two hidden layers of width ``h``.
    activation : type of nn.Module, default nn.SiLU
        Activation between layers.
    generator : torch.Generator, optional
        Source of randomness for the initial weights, drawn uniformly on
        :math:`[-1/\sqrt{\text{fan-in}}, 1/\sqrt{\text{fan-in}}]`.
    dtype : torch.dtype
        Parameter type (default float32, the usual choice for networks).
    """

    def __init__(
        self,
        dim: int,
        hidden=64,
        *,
        activation=nn.SiLU,
        generator: torch.Generator | None = None,
        dtype: torch.dtype = torch.float32,
    ):
        super().__init__()
        self.dim = check_int(dim, "dim")
        widths = [hidden, hidden] if isinstance(hidden, int) else list(hidden)
        widths = [check_int(h, "hidden") for h in widths]
        check_generator(generator)
        sizes = [self.dim, *widths, 1]
        layers: list[nn.Module] = []
        for i, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
            linear = nn.Linear(fan_in, fan_out, dtype=dtype)
            bound = 1.0 / math.sqrt(fan_in)
            with torch.no_grad():
                linear.weight.copy_(
                    torch.rand(fan_out, fan_in, generator=generator, dtype=dtype) * 2 * bound
                    - bound
                )
                linear.bias.copy_(
                    torch.rand(fan_out, generator=generator, dtype=dtype) * 2 * bound - bound
                )
            layers.append(linear)
            if i < len(sizes) - 2:
                layers.append(activation())
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Energy of each row of ``x`` (shape ``(n, d)``), returned with shape ``(n,)``."""
        _check_input(x, self.dim)
        return self.net(x).squeeze(-1)


class GaussianMLPEnergy(nn.Module):
    r"""A network's correction to a standard normal:
    :math:`E(x) = \tfrac12\lVert x\rVert^2 + f_\theta(x)`.

    :math:`f_\theta` is an :class:`MLPEnergy` whose output layer starts at zero, so the model starts
    as the standard normal (the fitted Gaussian, in coordinates whitened by it, such as
    :func:`ebmlib.data.load_digits_continuous`). The quadratic term keeps the density normalizable:
    an MLP with SiLU activations grows at most linearly in :math:`\lVert x\rVert`, so
    :math:`e^{-E}` has Gaussian tails whatever :math:`\theta` is.

    Parameters
    ----------
    dim : int
        Input dimension ``d``.
    hidden : int or sequence of int
        Hidden widths of :math:`f_\theta` (as in :class:`MLPEnergy`).
    generator : torch.Generator, optional
        Draws the hidden layers' initial weights.
    dtype : torch.dtype
        Parameter type (default float32).
    """

    def __init__(
        self,
        dim: int,
        hidden=128,
        *,
        generator: torch.Generator | None = None,
        dtype: torch.dtype = torch.float32,
    ):
        super().__init__()
        self.net = MLPEnergy(dim, hidden, generator=generator, dtype=dtype)
        with torch.no_grad():
            self.net.net[-1].weight.zero_()
            self.net.net[-1].bias.zero_()
        self.dim = self.net.dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Energy of each row of ``x`` (shape ``(n, d)``), returned with shape ``(n,)``."""
        return 0.5 * (x * x).sum(-1) + self.net(x)


class MixtureEnergy(nn.Module):
    r"""A finite mixture of energy-based models (Eq. 26 of :cite:p:`ebmgradientnote`).

    .. math::

        p(x\mid\pi,\theta) = \sum_{g=1}^G \pi_g\,\frac{\phi_g(x\mid\theta_g)}{Z_g(\theta_g)},
        \qquad E(x) = -\log\sum_g \exp\{\log\pi_g - E_g(x\mid\theta_g) - \log Z_g(\theta_g)\},

    with :math:`\pi = \operatorname{softmax}(\text{logits})`. Each component keeps its own
    normalizer, supplied as a callable: the exact :math:`\log Z_g` when it is known, or an
    importance-sampling estimate such as ``lambda: log_partition_is(-component(y_g), log_q_g)`` with
    fixed draws ``y_g`` (Geyer's method per component). When every :math:`\log Z_g` is exact the
    mixture is normalized, so the average of :math:`E` over data *is* the NLL.

    Parameters
    ----------
    components : sequence of nn.Module
        The component energies :math:`E_g`, all on the same dimension.
    log_partitions : sequence of callables
        ``log_partitions[g]()`` returns :math:`\log Z_g` (a scalar tensor, differentiable in
        :math:`\theta_g`).
    weights : array-like of shape (G,), optional
        Initial mixing weights (positive; normalized here). Default: equal weights.
    """

    def __init__(self, components, log_partitions, weights=None):
        super().__init__()
        components = list(components)
        log_partitions = list(log_partitions)
        if len(components) < 1 or len(components) != len(log_partitions):
            raise ValueError(
                f"need one log_partitions callable per component, got {len(components)} components "
                f"and {len(log_partitions)} callables"
            )
        if not all(callable(f) for f in log_partitions):
            raise TypeError("log_partitions must be callables returning log Z_g")
        dims = {getattr(c, "dim", None) for c in components}
        if len(dims) != 1:
            raise ValueError(f"all components must share one dimension, got {dims}")
        self.dim = dims.pop()
        self.components = nn.ModuleList(components)
        self._log_partitions = log_partitions
        w = (
            torch.full((len(components),), 1.0 / len(components), dtype=torch.float64)
            if weights is None
            else torch.as_tensor(weights, dtype=torch.float64).reshape(-1)
        )
        if (
            w.numel() != len(components)
            or not bool(torch.isfinite(w).all())
            or bool((w <= 0).any())
        ):
            raise ValueError(f"weights must be {len(components)} positive numbers, got {weights!r}")
        self.logits = nn.Parameter(torch.log(w / w.sum()))

    def weights(self) -> torch.Tensor:
        r"""Mixing weights :math:`\pi`, shape ``(G,)``."""
        return torch.softmax(self.logits, dim=0)

    def component_log_densities(self, x: torch.Tensor) -> torch.Tensor:
        r""":math:`\log\pi_g - E_g(x) - \log Z_g` for each component and point, shape ``(G, n)``."""
        _check_input(x, self.dim)
        log_pi = torch.log_softmax(self.logits, dim=0)
        rows = [
            log_pi[g].to(x.dtype) - comp(x) - self._log_partitions[g]().to(x.dtype)
            for g, comp in enumerate(self.components)
        ]
        return torch.stack(rows)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Mixture energy of each row of ``x`` (shape ``(n, d)``), shape ``(n,)``."""
        return -torch.logsumexp(self.component_log_densities(x), dim=0)

    def responsibilities(self, x: torch.Tensor) -> torch.Tensor:
        """Posterior component probabilities of each point, shape ``(n, G)``."""
        return torch.softmax(self.component_log_densities(x), dim=0).T
