"""The :class:`BernoulliRBM` model: parameters, energies, conditionals, sampling and exact
quantities, each computed by :mod:`ebmlib.rbm.core`."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from ..exact import log_partition_enumeration
from ..history import History
from ..validation import (
    check_batch,
    check_binary,
    check_float_dtype,
    check_generator,
    check_int,
    check_positive,
)
from . import core, proxies, trainer

__all__ = ["BernoulliRBM", "MAX_EXACT_BITS"]

#: Largest layer :meth:`BernoulliRBM.log_partition_exact` enumerates by default (2**24 states,
#: about a minute).
MAX_EXACT_BITS = 24


class BernoulliRBM:
    r"""A restricted Boltzmann machine with binary visible and hidden units.

    Parameters
    ----------
    n_visible, n_hidden : int
        Layer sizes :math:`n_v` and :math:`n_h`.
    generator : torch.Generator, optional
        Draws the initial weights, :math:`W_{ij}\sim\mathcal N(0, \text{weight\_scale}^2)`; the
        biases start at 0.
    weight_scale : float
        Standard deviation of the initial weights (0.01, as in Hinton's practical guide and
        scikit-learn).
    dtype : torch.dtype
        Floating dtype of the parameters (float64 by default).

    Attributes
    ----------
    weight : torch.Tensor, shape (n_visible, n_hidden)
    visible_bias : torch.Tensor, shape (n_visible,)
    hidden_bias : torch.Tensor, shape (n_hidden,)
        Plain tensors: a caller may overwrite them in place, or set ``requires_grad`` to
        differentiate through :meth:`free_energy` and :meth:`energy`.
    """

    def __init__(self, n_visible: int, n_hidden: int, *, generator=None, weight_scale=0.01,
                 dtype: torch.dtype = torch.float64):  # fmt: skip
        self.n_visible = check_int(n_visible, "n_visible")
        self.n_hidden = check_int(n_hidden, "n_hidden")
        check_generator(generator)
        weight_scale = check_positive(weight_scale, "weight_scale", allow_zero=True)
        check_float_dtype(dtype)
        self.weight = weight_scale * torch.randn(
            n_visible, n_hidden, generator=generator, dtype=dtype
        )
        self.visible_bias = torch.zeros(n_visible, dtype=dtype)
        self.hidden_bias = torch.zeros(n_hidden, dtype=dtype)

    @property
    def dtype(self) -> torch.dtype:
        return self.weight.dtype

    def parameters(self) -> list[torch.Tensor]:
        """``[weight, visible_bias, hidden_bias]``."""
        return [self.weight, self.visible_bias, self.hidden_bias]

    def to(self, device=None, dtype: torch.dtype | None = None) -> BernoulliRBM:
        """Move the parameters in place and return ``self``, as ``torch.nn.Module.to`` does."""
        if dtype is not None:
            check_float_dtype(dtype)
        self.weight, self.visible_bias, self.hidden_bias = (
            p.to(device=device, dtype=dtype) for p in self.parameters()
        )
        return self

    def copy(self) -> BernoulliRBM:
        """An independent copy with cloned parameters."""
        other = BernoulliRBM(self.n_visible, self.n_hidden, weight_scale=0.0, dtype=self.dtype)
        other.weight, other.visible_bias, other.hidden_bias = (
            p.detach().clone() for p in self.parameters()
        )
        return other

    @classmethod
    def from_sklearn(cls, model) -> BernoulliRBM:
        """The parameters of a fitted ``sklearn.neural_network.BernoulliRBM`` (``components_`` is
        ``W^T``), in float64."""
        for name in ("components_", "intercept_visible_", "intercept_hidden_"):
            if not hasattr(model, name):
                raise TypeError(f"model must be a fitted scikit-learn BernoulliRBM (no {name})")
        n_hidden, n_visible = model.components_.shape
        rbm = cls(n_visible, n_hidden, weight_scale=0.0)
        rbm.weight = torch.tensor(model.components_.T, dtype=torch.float64).contiguous()
        rbm.visible_bias = torch.tensor(model.intercept_visible_, dtype=torch.float64)
        rbm.hidden_bias = torch.tensor(model.intercept_hidden_, dtype=torch.float64)
        return rbm

    def __repr__(self) -> str:
        return f"BernoulliRBM(n_visible={self.n_visible}, n_hidden={self.n_hidden}, {self.dtype})"

    def visible(self, v, name: str = "v") -> torch.Tensor:
        """``v`` checked to be a ``(n, n_visible)`` batch of 0/1, in the model's dtype."""
        return check_binary(v, name, self.n_visible, self.dtype)

    def energy(self, v: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        r"""Joint energy :math:`E(v,h) = -b^\top v - c^\top h - v^\top W h`, shape ``(n,)``."""
        v, h = self.visible(v), check_binary(h, "h", self.n_hidden, self.dtype)
        if h.shape[0] != v.shape[0]:
            raise ValueError(
                f"v and h need the same number of rows, got {v.shape[0]} and {h.shape[0]}"
            )
        return -(v @ self.visible_bias) - (h @ self.hidden_bias) - ((v @ self.weight) * h).sum(1)

    def free_energy(self, v: torch.Tensor) -> torch.Tensor:
        r""":math:`F(v) = -b^\top v - \sum_j \operatorname{softplus}(c_j + v^\top W_{:j})`, shape
        ``(n,)``; ``v`` may hold values in [0, 1] (mean-field reconstructions)."""
        v = check_batch(v, "v", self.n_visible).to(self.dtype)
        x = core.hidden_logits(v, self.weight, self.hidden_bias)
        return -core.log_weight(v, x, self.visible_bias)

    def hidden_probabilities(self, v: torch.Tensor) -> torch.Tensor:
        r""":math:`p(h_j = 1 \mid v) = \sigma(c_j + v^\top W_{:j})`, shape ``(n, n_hidden)``."""
        v = check_batch(v, "v", self.n_visible).to(self.dtype)
        return torch.sigmoid(core.hidden_logits(v, self.weight, self.hidden_bias))

    def visible_probabilities(self, h: torch.Tensor) -> torch.Tensor:
        r""":math:`p(v_i = 1 \mid h) = \sigma(b_i + W_{i:} h)`, shape ``(n, n_visible)``."""
        h = check_batch(h, "h", self.n_hidden).to(self.dtype)
        return torch.sigmoid(core.hidden_logits(h, self.weight.T, self.visible_bias))

    def gibbs(self, v: torch.Tensor, n_steps: int = 1, *, generator=None) -> torch.Tensor:
        r"""``n_steps`` block-Gibbs steps :math:`v \to h \to v'`
        (:func:`ebmlib.rbm.core.gibbs_step`) from each row of ``v``, shape ``(n, n_visible)``;
        each leaves :math:`p(v)` invariant."""
        v = self.visible(v)
        n_steps = check_int(n_steps, "n_steps")
        check_generator(generator, device=self.weight.device)
        with torch.no_grad():
            x = core.hidden_logits(v, self.weight, self.hidden_bias)
            for _ in range(n_steps):
                v, x = core.gibbs_step(x, *self.parameters(), generator=generator)
        return v

    def log_partition_exact(self, *, max_bits: int = MAX_EXACT_BITS, chunk_size: int = 2**16):
        r"""Exact :math:`\log Z` (a differentiable scalar) by enumerating the smaller layer's
        :math:`2^{\min(n_v, n_h)}` states in chunks of ``chunk_size``: with :math:`n_h \le n_v`,
        :math:`\log Z = \log\sum_h \exp(c^\top h + \sum_i \operatorname{softplus}(b_i + W_{i:}h))`.

        Raises ``ValueError`` beyond ``2**max_bits`` states (default 24); estimate log Z with
        :func:`ebmlib.partition.ais_log_partition` then."""
        max_bits = check_int(max_bits, "max_bits", maximum=62)
        n_small = min(self.n_visible, self.n_hidden)
        if n_small > max_bits:
            raise ValueError(
                f"log_partition_exact would enumerate 2**{n_small} states (the smaller layer has "
                f"{n_small} units), more than the limit 2**{max_bits} (max_bits={max_bits}); "
                "estimate log Z with ebmlib.partition.ais_log_partition instead"
            )
        W, b, c = self.parameters()
        if self.n_hidden <= self.n_visible:  # sum over h of exp(-F_h(h)), the layers swapped
            W, b, c = W.T, c, b

        def free_energy(s):
            return -core.log_weight(s, core.hidden_logits(s, W, c), b)

        kwargs = {"chunk_size": chunk_size, "max_bits": max_bits, "device": W.device}
        return log_partition_enumeration(free_energy, n_small, dtype=self.dtype, **kwargs)

    def log_likelihood(self, v: torch.Tensor, log_z) -> torch.Tensor:
        r"""Per-sample :math:`\log p(v) = -F(v) - \log Z`, shape ``(n,)``, given a scalar
        ``log_z`` (exact or estimated)."""
        v = self.visible(v)
        log_z = torch.as_tensor(log_z, dtype=self.dtype, device=self.weight.device)
        if log_z.ndim != 0 or not bool(torch.isfinite(log_z)):
            raise ValueError(f"log_z must be a finite scalar, got {log_z}")
        return -self.free_energy(v) - log_z

    def pseudo_log_likelihood(self, v, *, exact: bool = True, generator=None) -> torch.Tensor:
        r""":math:`\sum_i \log p(v_i \mid v_{-i})` per sample, shape ``(n,)``; see
        :func:`ebmlib.rbm.proxies.pseudo_log_likelihood` (``exact=False``: scikit-learn's
        one-random-bit estimate)."""
        return proxies.pseudo_log_likelihood(self, v, exact=exact, generator=generator)

    def reconstruction_error(self, v, *, kind: str = "cross_entropy") -> torch.Tensor:
        """Mean-field reconstruction error per sample, shape ``(n,)``; see
        :func:`ebmlib.rbm.proxies.reconstruction_error`."""
        return proxies.reconstruction_error(self, v, kind=kind)

    def fit(
        self,
        v: torch.Tensor,
        *,
        n_epochs: int,
        batch_size: int = 20,
        learning_rate: float = 0.1,
        k: int = 1,
        persistent: bool = True,
        momentum: float = 0.5,
        weight_decay: float = 0.0,
        schedule: str | Callable[[int], float] = "linear",
        generator: torch.Generator | None = None,
        callbacks: Sequence[Callable[[int, dict], object]] = (),
        progress: bool | None = None,
        objective: str = "contrastive",
    ) -> History:
        """Train by PCD-k (default), CD-k or a sampling-free objective; the defaults (PCD-1,
        batch 20, rate 0.1 decaying linearly to 0, momentum 0.5, no weight decay) beat
        scikit-learn's ``BernoulliRBM``. Returns the per-epoch :class:`~ebmlib.history.History`.
        Every argument is documented in :func:`ebmlib.rbm.trainer.fit_rbm`."""
        return trainer.fit_rbm(
            self, v, n_epochs=n_epochs, batch_size=batch_size, learning_rate=learning_rate, k=k,
            persistent=persistent, momentum=momentum, weight_decay=weight_decay,
            schedule=schedule, generator=generator, callbacks=callbacks, progress=progress,
            objective=objective,
        )  # fmt: skip
