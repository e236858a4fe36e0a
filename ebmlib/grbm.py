r"""Gaussian–Bernoulli restricted Boltzmann machines: real-valued visible units, binary hidden
units.

The energy, with :math:`\sigma_i = e^{\text{log\_sigma}_i}` (Cho, Ilin & Raiko 2011; Melchior, Wang
& Wiskott 2016),

.. math::

    E(v, h) = \sum_i \frac{(v_i - b_i)^2}{2\sigma_i^2} - c^\top h
    - \sum_{ij} \frac{v_i}{\sigma_i} W_{ij} h_j .

Given :math:`h` the visible units are independent Gaussians,
:math:`v_i \mid h \sim \mathcal N(b_i + \sigma_i (Wh)_i, \sigma_i^2)`, and given :math:`v` the
hidden units are independent Bernoullis with
:math:`p(h_j = 1\mid v) = \operatorname{sigmoid}(c_j + \sum_i W_{ij} v_i/\sigma_i)`. Summing
:math:`h` out gives the free energy

.. math::

    F(v) = \sum_i \frac{(v_i - b_i)^2}{2\sigma_i^2}
    - \sum_j \operatorname{softplus}\Bigl(c_j + \sum_i W_{ij} \frac{v_i}{\sigma_i}\Bigr),

and integrating :math:`v` out, by completing the square in :math:`u_i = v_i/\sigma_i`, gives for
every hidden state

.. math::

    \log \int e^{-E(v, h)}\,dv = \sum_i \log(\sigma_i\sqrt{2\pi}) + c^\top h
    + \sum_i \Bigl(\frac{b_i}{\sigma_i} (Wh)_i + \tfrac12 (Wh)_i^2\Bigr),

so the marginal of :math:`v` is a mixture of :math:`2^{n_h}` Gaussians and :math:`\log Z` is a
log-sum-exp over the :math:`2^{n_h}` hidden states, computed exactly by
:meth:`GaussianBernoulliRBM.log_partition_exact` while :math:`n_h` is small."""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from .validation import check_batch, check_generator, check_int

__all__ = ["GaussianBernoulliRBM", "MAX_ENUMERATED_HIDDEN"]

#: The largest hidden layer whose :math:`2^{n_h}` states
#: :meth:`GaussianBernoulliRBM.log_partition_exact` sums.
MAX_ENUMERATED_HIDDEN = 24


def _hidden_states(start: int, stop: int, n_hidden: int, like: torch.Tensor) -> torch.Tensor:
    """Hidden states ``start .. stop-1`` in binary, shape ``(stop - start, n_hidden)``, with the
    dtype and device of ``like``."""
    codes = torch.arange(start, stop, dtype=torch.int64, device=like.device)
    bits = (codes[:, None] >> torch.arange(n_hidden, dtype=torch.int64, device=like.device)) & 1
    return bits.to(like.dtype)


class GaussianBernoulliRBM(nn.Module):
    r"""A Gaussian–Bernoulli RBM with parameters ``weight`` (n_visible, n_hidden), ``visible_bias``
    :math:`b`, ``hidden_bias`` :math:`c` and ``log_sigma`` (n_visible); see the module docstring for
    the energy.

    The module is also an *energy* in the library's sense: ``model(v)`` is the free energy
    :math:`F(v)`, shape ``(n,)``, so samplers, losses and AIS take it as they take any other energy.

    Parameters
    ----------
    n_visible, n_hidden : int
        Layer sizes.
    generator : torch.Generator, optional
        Draws the initial weights, :math:`W_{ij}\sim\mathcal N(0, 0.01^2)`; biases and ``log_sigma``
        start at 0.
    dtype : torch.dtype
        Floating dtype of the parameters (float64 by default).
    """

    def __init__(
        self,
        n_visible: int,
        n_hidden: int,
        *,
        generator: torch.Generator | None = None,
        dtype: torch.dtype = torch.float64,
    ):
        super().__init__()
        n_visible = check_int(n_visible, "n_visible")
        n_hidden = check_int(n_hidden, "n_hidden")
        check_generator(generator)
        w = 0.01 * torch.randn(n_visible, n_hidden, generator=generator, dtype=dtype)
        self.weight = nn.Parameter(w)
        self.visible_bias = nn.Parameter(torch.zeros(n_visible, dtype=dtype))
        self.hidden_bias = nn.Parameter(torch.zeros(n_hidden, dtype=dtype))
        self.log_sigma = nn.Parameter(torch.zeros(n_visible, dtype=dtype))

    @property
    def n_visible(self) -> int:
        return self.weight.shape[0]

    @property
    def n_hidden(self) -> int:
        return self.weight.shape[1]

    @property
    def sigma(self) -> torch.Tensor:
        """:math:`\\sigma = e^{\\text{log\\_sigma}}`, shape ``(n_visible,)``."""
        return self.log_sigma.exp()

    def _check_v(self, v: torch.Tensor) -> torch.Tensor:
        return check_batch(v, "v", dim=self.n_visible)

    def hidden_input(self, v: torch.Tensor) -> torch.Tensor:
        """:math:`c_j + \\sum_i W_{ij} v_i/\\sigma_i`, shape ``(n, n_hidden)``."""
        return self.hidden_bias + (v / self.sigma) @ self.weight

    def energy(self, v: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        """The joint energy :math:`E(v, h)`, shape ``(n,)``, for ``v`` (n, n_visible) and ``h`` (n,
        n_hidden)."""
        v = self._check_v(v)
        h = check_batch(h, "h", dim=self.n_hidden)
        if h.shape[0] != v.shape[0]:
            raise ValueError(
                f"v and h must have the same number of rows, got {v.shape[0]} and {h.shape[0]}"
            )
        quad = ((v - self.visible_bias) ** 2 / (2 * self.sigma**2)).sum(1)
        return quad - h @ self.hidden_bias - (((v / self.sigma) @ self.weight) * h).sum(1)

    def free_energy(self, v: torch.Tensor) -> torch.Tensor:
        """:math:`F(v) = -\\log\\sum_h e^{-E(v,h)}`, shape ``(n,)``."""
        v = self._check_v(v)
        quad = ((v - self.visible_bias) ** 2 / (2 * self.sigma**2)).sum(1)
        return quad - F.softplus(self.hidden_input(v)).sum(1)

    def forward(self, v: torch.Tensor) -> torch.Tensor:
        return self.free_energy(v)

    def hidden_probability(self, v: torch.Tensor) -> torch.Tensor:
        """:math:`p(h_j = 1 \\mid v)`, shape ``(n, n_hidden)``."""
        return torch.sigmoid(self.hidden_input(self._check_v(v)))

    def visible_mean(self, h: torch.Tensor) -> torch.Tensor:
        """:math:`E[v \\mid h] = b + \\sigma \\odot (W h)`, shape ``(n, n_visible)``."""
        h = check_batch(h, "h", dim=self.n_hidden)
        return self.visible_bias + self.sigma * (h @ self.weight.T)

    def gibbs(
        self, v: torch.Tensor, n_steps: int = 1, *, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """``n_steps`` sweeps of block Gibbs sampling, :math:`v \\to h \\to v`; returns ``v``, same
        shape."""
        n_steps = check_int(n_steps, "n_steps")
        check_generator(generator)
        v = self._check_v(v).detach()
        with torch.no_grad():
            for _ in range(n_steps):
                p = self.hidden_probability(v)
                u = torch.rand(p.shape, generator=generator, dtype=p.dtype, device=p.device)
                h = (u < p).to(p.dtype)
                noise = torch.randn(v.shape, generator=generator, dtype=v.dtype, device=v.device)
                v = self.visible_mean(h) + self.sigma * noise
        return v

    def _hidden_log_weights(self, h: torch.Tensor) -> torch.Tensor:
        """:math:`\\log\\int e^{-E(v,h)}dv` without the constant
        :math:`\\sum_i\\log(\\sigma_i\\sqrt{2\\pi})`."""
        wh = h @ self.weight.T  # (m, n_visible)
        return h @ self.hidden_bias + (wh * (self.visible_bias / self.sigma) + 0.5 * wh**2).sum(1)

    def log_partition_exact(
        self, *, max_hidden: int = MAX_ENUMERATED_HIDDEN, chunk_size: int = 1 << 16
    ) -> torch.Tensor:
        """Exact :math:`\\log Z`: the Gaussian integral over ``v`` in closed form, summed over all
        :math:`2^{n_h}` hidden states in chunks (differentiable in the parameters).

        Raises
        ------
        ValueError
            When ``n_hidden`` exceeds ``max_hidden`` (default 24, about 17 million states); estimate
            :math:`\\log Z` with :func:`ebmlib.ais_log_partition` instead.
        """
        max_hidden = check_int(max_hidden, "max_hidden")
        chunk_size = check_int(chunk_size, "chunk_size")
        if self.n_hidden > max_hidden:
            raise ValueError(
                f"log_partition_exact sums 2**n_hidden = 2**{self.n_hidden} hidden states, "
                "more than "
                f"max_hidden = {max_hidden} allows; use ais_log_partition for a model this size"
            )
        total = 1 << self.n_hidden
        parts = [
            torch.logsumexp(
                self._hidden_log_weights(
                    _hidden_states(s, min(s + chunk_size, total), self.n_hidden, self.weight)
                ),
                0,
            )
            for s in range(0, total, chunk_size)
        ]
        const = (self.log_sigma + 0.5 * math.log(2 * math.pi)).sum()
        return const + torch.logsumexp(torch.stack(parts), 0)

    def log_likelihood(
        self, v: torch.Tensor, log_z: torch.Tensor | float | None = None
    ) -> torch.Tensor:
        """:math:`\\log p(v) = -F(v) - \\log Z`, shape ``(n,)``; ``log_z`` defaults to the exact
        value."""
        if log_z is None:
            log_z = self.log_partition_exact()
        return -self.free_energy(v) - log_z

    def sample_exact(self, n: int, *, generator: torch.Generator | None = None) -> torch.Tensor:
        """Exact samples of :math:`p(v)`, shape ``(n, n_visible)``: a hidden state from its marginal
        (enumerated), then :math:`v\\mid h`. Limited to ``n_hidden <= 16``."""
        n = check_int(n, "n")
        check_generator(generator)
        if self.n_hidden > 16:
            raise ValueError(
                f"sample_exact enumerates 2**n_hidden states; n_hidden = {self.n_hidden} > 16"
            )
        with torch.no_grad():
            states = _hidden_states(0, 1 << self.n_hidden, self.n_hidden, self.weight)
            probs = torch.softmax(self._hidden_log_weights(states), 0)
            idx = torch.multinomial(probs, n, replacement=True, generator=generator)
            h = states[idx]
            w = self.weight
            noise = torch.randn(
                n, self.n_visible, generator=generator, dtype=w.dtype, device=w.device
            )
            return self.visible_mean(h) + self.sigma * noise
