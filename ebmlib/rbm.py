r"""Binary restricted Boltzmann machines: energy, Gibbs sampling, exact log Z, proxies, and CD/PCD
training.

A Bernoulli RBM has visible units :math:`v\in\{0,1\}^{n_v}`, hidden units :math:`h\in\{0,1\}^{n_h}`
and the energy

.. math::  E(v, h) = -b^\top v - c^\top h - v^\top W h,

with ``weight`` :math:`W` of shape ``(n_visible, n_hidden)``, ``visible_bias`` :math:`b` and
``hidden_bias`` :math:`c`. Summing out :math:`h` gives the *free energy*

.. math::  F(v) = -b^\top v - \sum_j \operatorname{softplus}(c_j + v^\top W_{:j}),
           \qquad p(v) = e^{-F(v)} / Z,

and both conditionals factorize: :math:`p(h_j=1\mid v)=\sigma(c_j + v^\top W_{:j})`,
:math:`p(v_i=1\mid h)=\sigma(b_i + W_{i:}h)`. The gradient of the average log-likelihood is the
difference of a data term and a model term,

.. math::  \nabla_W \tfrac1n\textstyle\sum \log p(v)
           = \langle v\, \sigma(c + W^\top v)^\top\rangle_{\rm data}
           - \langle v\, \sigma(c + W^\top v)^\top\rangle_{\rm model},

and CD-k / PCD replace the model term by samples after ``k`` Gibbs steps from the data (CD) or from
persistent chains (PCD) :cite:p:`hinton2002,tieleman2008`.

Everything here is exact where it can be: :meth:`BernoulliRBM.log_partition_exact` enumerates the
smaller layer, :meth:`BernoulliRBM.pseudo_log_likelihood` sums all :math:`n_v` conditionals.
Estimates of :math:`\log Z` for RBMs too large to enumerate are in :mod:`ebmlib.partition` (AIS and
reverse AIS)."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F

from ._progress import progress_bar
from .exact import log_partition_enumeration
from .history import History
from .validation import check_batch, check_generator, check_int, check_positive

__all__ = [
    "BernoulliRBM",
    "MAX_EXACT_BITS",
    "pseudo_likelihood_loss",
    "ratio_matching_loss",
    "OBJECTIVES",
]

#: Largest layer :meth:`BernoulliRBM.log_partition_exact` enumerates by default (2**24 states,
#: about a minute).
MAX_EXACT_BITS = 24

# Coupling of the two always-on units in the augmented parameter matrix used by BernoulliRBM.fit.
_CLAMP = 1e6


def _check_binary(v, name: str, n_columns: int, dtype: torch.dtype) -> torch.Tensor:
    v = check_batch(v, name, n_columns)
    if not bool(((v == 0) | (v == 1)).all()):
        raise ValueError(f"{name} must hold only 0 and 1")
    return v.to(dtype)


def _rate_schedule(schedule, n_updates: int) -> Callable[[int], float]:
    """The learning-rate multiplier ``s(t)`` of :meth:`BernoulliRBM.fit`, checked."""
    if isinstance(schedule, str):
        if schedule == "linear":
            return lambda t: 1.0 - t / n_updates
        if schedule == "constant":
            return lambda t: 1.0
    elif callable(schedule):
        return schedule
    raise ValueError(f"schedule must be 'linear', 'constant' or a callable, got {schedule!r}")


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
        Floating dtype of the parameters (float64 by default, like every statistical computation in
        the book).

    Attributes
    ----------
    weight : torch.Tensor, shape (n_visible, n_hidden)
    visible_bias : torch.Tensor, shape (n_visible,)
    hidden_bias : torch.Tensor, shape (n_hidden,)
        Plain tensors: a caller may overwrite them in place, or set ``requires_grad`` to
        differentiate through :meth:`free_energy` and :meth:`energy`.
    """

    def __init__(
        self,
        n_visible: int,
        n_hidden: int,
        *,
        generator: torch.Generator | None = None,
        weight_scale: float = 0.01,
        dtype: torch.dtype = torch.float64,
    ):
        self.n_visible = check_int(n_visible, "n_visible")
        self.n_hidden = check_int(n_hidden, "n_hidden")
        check_generator(generator)
        weight_scale = check_positive(weight_scale, "weight_scale", allow_zero=True)
        if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
            raise TypeError(f"dtype must be a floating torch.dtype, got {dtype!r}")
        self.weight = weight_scale * torch.randn(
            n_visible, n_hidden, generator=generator, dtype=dtype
        )
        self.visible_bias = torch.zeros(n_visible, dtype=dtype)
        self.hidden_bias = torch.zeros(n_hidden, dtype=dtype)

    # ------------------------------------------------------------------ basics
    @property
    def dtype(self) -> torch.dtype:
        return self.weight.dtype

    def parameters(self) -> list[torch.Tensor]:
        """``[weight, visible_bias, hidden_bias]``."""
        return [self.weight, self.visible_bias, self.hidden_bias]

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
        ``W^T``), in float64, so that its exact log Z and likelihood can be computed here."""
        for name in ("components_", "intercept_visible_", "intercept_hidden_"):
            if not hasattr(model, name):
                raise TypeError(
                    f"model must be a fitted scikit-learn BernoulliRBM (it has no {name})"
                )
        n_hidden, n_visible = model.components_.shape
        rbm = cls(n_visible, n_hidden, weight_scale=0.0)
        rbm.weight = torch.tensor(model.components_.T, dtype=torch.float64).contiguous()
        rbm.visible_bias = torch.tensor(model.intercept_visible_, dtype=torch.float64)
        rbm.hidden_bias = torch.tensor(model.intercept_hidden_, dtype=torch.float64)
        return rbm

    def __repr__(self) -> str:
        return (
            f"BernoulliRBM(n_visible={self.n_visible}, n_hidden={self.n_hidden}, "
            f"dtype={self.dtype})"
        )

    def _visible(self, v, name="v") -> torch.Tensor:
        return _check_binary(v, name, self.n_visible, self.dtype)

    # ------------------------------------------------------------------ energies
    def energy(self, v: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        r"""Joint energy :math:`E(v,h) = -b^\top v - c^\top h - v^\top W h`, shape ``(n,)``.

        ``v`` has shape ``(n, n_visible)`` and ``h`` shape ``(n, n_hidden)``.
        """
        v = self._visible(v)
        h = _check_binary(h, "h", self.n_hidden, self.dtype)
        if h.shape[0] != v.shape[0]:
            raise ValueError(
                f"v and h need the same number of rows, got {v.shape[0]} and {h.shape[0]}"
            )
        return -(v @ self.visible_bias) - (h @ self.hidden_bias) - ((v @ self.weight) * h).sum(1)

    def hidden_input(self, v: torch.Tensor) -> torch.Tensor:
        r"""Hidden pre-activations :math:`c + v W`, shape ``(n, n_hidden)``."""
        return torch.addmm(self.hidden_bias, v, self.weight)

    def free_energy(self, v: torch.Tensor) -> torch.Tensor:
        r""":math:`F(v) = -b^\top v - \sum_j \operatorname{softplus}(c_j + v^\top W_{:j})`, shape
        ``(n,)``.

        ``v`` may hold values in [0, 1] (mean-field reconstructions); it must have shape
        ``(n, n_visible)``."""
        v = check_batch(v, "v", self.n_visible).to(self.dtype)
        return -(v @ self.visible_bias) - F.softplus(self.hidden_input(v)).sum(1)

    # ------------------------------------------------------------ conditionals and Gibbs sampling
    def hidden_probabilities(self, v: torch.Tensor) -> torch.Tensor:
        r""":math:`p(h_j = 1 \mid v) = \sigma(c_j + v^\top W_{:j})`, shape ``(n, n_hidden)``."""
        v = check_batch(v, "v", self.n_visible).to(self.dtype)
        return torch.sigmoid(self.hidden_input(v))

    def visible_probabilities(self, h: torch.Tensor) -> torch.Tensor:
        r""":math:`p(v_i = 1 \mid h) = \sigma(b_i + W_{i:} h)`, shape ``(n, n_visible)``."""
        h = check_batch(h, "h", self.n_hidden).to(self.dtype)
        return torch.sigmoid(torch.addmm(self.visible_bias, h, self.weight.T))

    def sample_hidden(
        self, v: torch.Tensor, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Draw :math:`h \\sim p(h\\mid v)`, shape ``(n, n_hidden)``."""
        return torch.bernoulli(self.hidden_probabilities(v), generator=check_generator(generator))

    def sample_visible(
        self, h: torch.Tensor, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Draw :math:`v \\sim p(v\\mid h)`, shape ``(n, n_visible)``."""
        return torch.bernoulli(self.visible_probabilities(h), generator=check_generator(generator))

    def gibbs(
        self, v: torch.Tensor, k: int = 1, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        r"""Run ``k`` block-Gibbs steps :math:`v \to h \sim p(h\mid v) \to v' \sim p(v\mid h)` from
        each row of ``v``.

        Each step leaves :math:`p(v)` invariant and is reversible with respect to it.

        Parameters
        ----------
        v : torch.Tensor, shape (n, n_visible)
            Starting states (0/1).
        k : int
            Number of steps.
        generator : torch.Generator, optional

        Returns
        -------
        torch.Tensor, shape (n, n_visible)
        """
        v = self._visible(v)
        k = check_int(k, "k")
        check_generator(generator)
        W, b, c = self.weight, self.visible_bias, self.hidden_bias
        with torch.no_grad():
            for _ in range(k):
                h = torch.bernoulli(torch.sigmoid(torch.addmm(c, v, W)), generator=generator)
                v = torch.bernoulli(torch.sigmoid(torch.addmm(b, h, W.T)), generator=generator)
        return v

    # ------------------------------------------------------------------ exact quantities
    def log_partition_exact(
        self, *, max_bits: int = MAX_EXACT_BITS, chunk_size: int = 2**16
    ) -> torch.Tensor:
        r"""Exact :math:`\log Z` by enumerating the smaller layer.

        With :math:`n_h \le n_v`,
        :math:`\log Z
        = \log\sum_{h} \exp\big(c^\top h + \sum_i \operatorname{softplus}(b_i + W_{i:}h)\big)`,
        a sum over :math:`2^{n_h}` states visited in chunks of ``chunk_size`` (the other case is
        symmetric).

        Parameters
        ----------
        max_bits : int
            Refuse to enumerate more than ``2**max_bits`` states (default 24: 16.8 million states).
        chunk_size : int
            States evaluated at once; bounds memory at ``chunk_size * max(n_visible, n_hidden)``
            numbers.

        Returns
        -------
        torch.Tensor
            A scalar, differentiable in the parameters.

        Raises
        ------
        ValueError
            When ``min(n_visible, n_hidden) > max_bits``; use
            :func:`ebmlib.partition.ais_log_partition` instead.
        """
        max_bits = check_int(max_bits, "max_bits", maximum=62)
        n_small = min(self.n_visible, self.n_hidden)
        if n_small > max_bits:
            raise ValueError(
                f"log_partition_exact would enumerate 2**{n_small} states "
                f"(the smaller layer has {n_small} units), "
                f"more than the limit 2**{max_bits} (max_bits={max_bits}); estimate log Z with "
                "ebmlib.partition.ais_log_partition instead"
            )
        W, b, c = self.weight, self.visible_bias, self.hidden_bias
        if self.n_hidden <= self.n_visible:

            def neg_log_weight(h):  # -log sum_v exp(-E(v, h))
                return -(h @ c) - F.softplus(torch.addmm(b, h, W.T)).sum(1)
        else:

            def neg_log_weight(v):  # F(v)
                return -(v @ b) - F.softplus(torch.addmm(c, v, W)).sum(1)

        return log_partition_enumeration(
            neg_log_weight, n_small, chunk_size=chunk_size, max_bits=max_bits, dtype=self.dtype
        )

    def log_likelihood(self, v: torch.Tensor, log_z) -> torch.Tensor:
        r"""Per-sample :math:`\log p(v) = -F(v) - \log Z`, shape ``(n,)``, given ``log_z`` (exact or
        estimated)."""
        v = self._visible(v)
        log_z = torch.as_tensor(log_z, dtype=self.dtype)
        if log_z.ndim != 0 or not bool(torch.isfinite(log_z)):
            raise ValueError(f"log_z must be a finite scalar, got {log_z}")
        return -self.free_energy(v) - log_z

    # ------------------------------------------------------------------ proxies for the likelihood
    def _flip_free_energy_gaps(self, v: torch.Tensor, bits: torch.Tensor | None) -> torch.Tensor:
        r""":math:`F(v) - F(v^{(i)})`, :math:`v^{(i)}` = ``v`` with bit i flipped; all bits
        ``(n, n_v)`` or one ``(n,)``."""
        if bits is None:
            return _flip_gaps(self.weight, self.visible_bias, self.hidden_bias, v)
        x = self.hidden_input(v)  # (n, n_h)
        rows = torch.arange(v.shape[0])  # one bit per row
        s = 1.0 - 2.0 * v[rows, bits]  # +1 where the bit turns on
        x_flip = x + s[:, None] * self.weight[bits]  # (n, n_h)
        return s * self.visible_bias[bits] + F.softplus(x_flip).sum(1) - F.softplus(x).sum(1)

    def pseudo_log_likelihood(
        self, v: torch.Tensor, *, exact: bool = True, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        r"""Pseudo-log-likelihood :math:`\sum_i \log p(v_i \mid v_{-i})` per sample, shape ``(n,)``.

        Each conditional is
        :math:`\log p(v_i\mid v_{-i}) = -\operatorname{softplus}(F(v) - F(v^{(i)}))`, where
        :math:`v^{(i)}` is ``v`` with bit ``i`` flipped.

        Parameters
        ----------
        v : torch.Tensor, shape (n, n_visible)
        exact : bool
            True: the sum over all :math:`n_v` bits. False: the *stochastic* version used by
            scikit-learn's ``score_samples``, :math:`n_v \log p(v_i\mid v_{-i})` for one bit ``i``
            drawn uniformly per sample (an unbiased but noisy estimate of the exact sum).
        generator : torch.Generator, optional
            Draws the bits when ``exact=False``.
        """
        v = self._visible(v)
        check_generator(generator)
        with torch.no_grad():
            if exact:
                return -F.softplus(self._flip_free_energy_gaps(v, None)).sum(1)
            bits = torch.randint(self.n_visible, (v.shape[0],), generator=generator)
            return -self.n_visible * F.softplus(self._flip_free_energy_gaps(v, bits))

    def reconstruction_error(self, v: torch.Tensor, *, kind: str = "cross_entropy") -> torch.Tensor:
        r"""Mean-field reconstruction error per sample, shape ``(n,)``.

        The reconstruction is :math:`\hat v = \sigma(b + W\,\sigma(c + W^\top v))` (probabilities,
        no sampling), and the error is the cross-entropy
        :math:`-\sum_i [v_i\log\hat v_i + (1-v_i)\log(1-\hat v_i)]` in nats
        (``kind="cross_entropy"``) or the squared error :math:`\sum_i (v_i-\hat v_i)^2`
        (``kind="squared"``)."""
        v = self._visible(v)
        with torch.no_grad():
            logits = torch.addmm(
                self.visible_bias, torch.sigmoid(self.hidden_input(v)), self.weight.T
            )
            if kind == "cross_entropy":
                return F.binary_cross_entropy_with_logits(logits, v, reduction="none").sum(1)
            if kind == "squared":
                return ((v - torch.sigmoid(logits)) ** 2).sum(1)
        raise ValueError(f"kind must be 'cross_entropy' or 'squared', got {kind!r}")

    # ------------------------------------------------------------------ training
    def contrastive_gradient(
        self,
        v_pos: torch.Tensor,
        v_neg: torch.Tensor,
        *,
        p_pos: torch.Tensor | None = None,
        p_neg: torch.Tensor | None = None,
    ):
        r"""The CD/PCD estimate of the gradient of the average *negative* log-likelihood.

        .. math::
            g_W = -\big(\tfrac{1}{n_+} V_+^\top P_+ - \tfrac{1}{n_-} V_-^\top P_-\big),\quad
            g_b = -(\bar v_+ - \bar v_-),\quad g_c = -(\bar p_+ - \bar p_-),

        with :math:`P = \sigma(c + VW)`. It equals the gradient of
        :math:`\overline{F(v_+)} - \overline{F(v_-)}` with the negatives held fixed (tested against
        autograd).

        Parameters
        ----------
        v_pos : torch.Tensor, shape (n_pos, n_visible)
            Data.
        v_neg : torch.Tensor, shape (n_neg, n_visible)
            Negative samples (after ``k`` Gibbs steps).
        p_pos, p_neg : torch.Tensor, optional
            :math:`p(h=1\mid v)` for each, when already computed.

        Returns
        -------
        (g_weight, g_visible_bias, g_hidden_bias) : tensors shaped like the parameters
        """
        if p_pos is None:
            p_pos = torch.sigmoid(self.hidden_input(v_pos))
        if p_neg is None:
            p_neg = torch.sigmoid(self.hidden_input(v_neg))
        n_pos, n_neg = v_pos.shape[0], v_neg.shape[0]
        g_w = torch.addmm(v_neg.T @ p_neg, v_pos.T, p_pos, beta=1.0 / n_neg, alpha=-1.0 / n_pos)
        g_b = v_neg.mean(0) - v_pos.mean(0)
        g_c = p_neg.mean(0) - p_pos.mean(0)
        return g_w, g_b, g_c

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
        progress: bool | None = True,
        objective: str = "contrastive",
    ) -> History:
        r"""Train by stochastic gradient ascent on the log-likelihood with CD-k or PCD-k (or on
        another objective).

        Each epoch visits the rows of ``v`` in a fresh random order, in mini-batches of
        ``batch_size``. For each batch the negative samples come from ``k`` block-Gibbs steps
        started at the batch (CD-k, ``persistent=False``) or continuing ``batch_size`` persistent
        chains (PCD-k / SML, ``persistent=True``; the chains start from :math:`h=0` at each call of
        ``fit``, as in scikit-learn). The update is

        .. math::  u \leftarrow \mu u - a_t\,(g + \lambda\,\theta),
                   \qquad \theta \leftarrow \theta + u,

        with :math:`g` from :meth:`contrastive_gradient`, ``momentum`` :math:`\mu`,
        ``weight_decay`` :math:`\lambda` (on the weights only) and the learning rate
        :math:`a_t = a\,s(t)` at update :math:`t = 0, 1, \dots, T-1` (:math:`T` updates in all):
        ``schedule="linear"`` decays it to zero, :math:`s(t) = 1 - t/T`, which removes the
        epoch-to-epoch wobble of the log-likelihood that a constant rate leaves;
        ``"constant"`` keeps :math:`s = 1` (scikit-learn's update, with ``momentum=0``).

        The defaults (PCD-1, batch 20, :math:`a = 0.1`, momentum 0.5, linear decay) are the
        Theano tutorial's rate, batch and momentum with a decaying rate; on the binarized digits
        with 16 hidden units they beat scikit-learn's ``BernoulliRBM`` at its best learning rate by
        more than a nat of exact log-likelihood after 50 epochs (``benchmarks/bench_sklearn_rbm.py``
        measures it, with the wall time).

        With ``objective="pseudo_likelihood"`` or ``"ratio_matching"``, :math:`g` is instead the
        gradient (in closed form) of :func:`pseudo_likelihood_loss` or :func:`ratio_matching_loss`
        on the batch (no sampling; ``k`` and ``persistent`` are then unused), with the same update,
        batches and order of the data.

        Parameters
        ----------
        v : torch.Tensor, shape (n, n_visible)
            Training data of 0/1.
        n_epochs : int
        batch_size : int
            Rows per update (default 20).
        learning_rate : float
            Base rate :math:`a` (default 0.1).
        k : int
            Gibbs steps per update (default 1).
        persistent : bool
            PCD (True, default) or CD (False).
        momentum : float in [0, 1)
            Default 0.5.
        weight_decay : float >= 0
            Default 0.
        schedule : {"linear", "constant"} or callable
            Multiplier :math:`s(t)` of the learning rate at update ``t`` (default ``"linear"``);
            a callable ``schedule(t)`` returns it directly, e.g.
            :func:`ebmlib.training.robbins_monro_schedule`.
        generator : torch.Generator, optional
        callbacks : sequence of callables
            ``callback(epoch, logs)`` after each epoch (``epoch`` counts from 1); ``logs`` holds
            ``"epoch"`` and ``"seconds"`` (training time of that epoch) and anything the callback
            adds. A truthy return stops.
        progress : bool
            Progress bar over epochs; ``True`` shows it unless the environment sets
            ``EBMLIB_PROGRESS=0`` (as the book build and the tests do), ``False`` never shows it.
        objective : {"contrastive", "pseudo_likelihood", "ratio_matching"}
            ``"contrastive"`` (default): CD-k or PCD-k as set by ``k`` and ``persistent``. The other
            two minimize the named loss, which needs neither :math:`Z` nor samples.

        Returns
        -------
        History
        """
        v = self._visible(v)
        n_epochs = check_int(n_epochs, "n_epochs")
        batch_size = check_int(batch_size, "batch_size")
        a = check_positive(learning_rate, "learning_rate")
        k = check_int(k, "k")
        momentum = check_positive(momentum, "momentum", allow_zero=True)
        if momentum >= 1:
            raise ValueError(f"momentum must lie in [0, 1), got {momentum}")
        weight_decay = check_positive(weight_decay, "weight_decay", allow_zero=True)
        rate = _rate_schedule(schedule, n_epochs * -(-v.shape[0] // batch_size))
        check_generator(generator)
        if isinstance(callbacks, Callable):
            callbacks = (callbacks,)
        if objective != "contrastive":
            if objective not in OBJECTIVES:
                raise ValueError(
                    f"objective must be 'contrastive' or one of {sorted(OBJECTIVES)}, "
                    f"got {objective!r}"
                )
            return self._fit_objective(
                v,
                objective,
                n_epochs=n_epochs,
                batch_size=batch_size,
                learning_rate=a,
                momentum=momentum,
                weight_decay=weight_decay,
                rate=rate,
                generator=generator,
                callbacks=callbacks,
                progress=progress,
            )
        nv, nh, dtype = self.n_visible, self.n_hidden, self.dtype
        # The update works on one augmented matrix  theta = [[W, b], [c, CLAMP]]  of shape
        # (nv + 1, nh + 1): each layer gets an extra unit, and the two extra units are coupled by a
        # huge weight, so that given either layer the extra unit of the other is on with
        # probability exactly 1 (sigmoid(1e6 + ...) == 1.0), including in the samples. Then
        # v_aug^T p_aug  holds the statistics of W, b and c at once, each half of the update is one
        # in-place addmm (the corner gets +a - a = 0), and every conditional is one matmul of the
        # full matrix.
        theta = torch.zeros(nv + 1, nh + 1, dtype=dtype)
        theta[:nv, :nh], theta[:nv, nh], theta[nv, :nh] = (
            self.weight,
            self.visible_bias,
            self.hidden_bias,
        )
        theta[nv, nh] = _CLAMP
        weights = theta[:nv, :nh]
        velocity = torch.zeros_like(theta) if momentum > 0 else None
        theta_t = theta.T  # a view: follows the in-place updates
        n = v.shape[0]
        augmented = torch.cat([v, torch.ones(n, 1, dtype=dtype)], 1)
        h = torch.ones(batch_size, nh + 1, dtype=dtype)
        h[:, :nh] = 0.0  # persistent chains start from h = 0
        history = History()
        t = 0  # updates so far
        for epoch in progress_bar(
            range(1, n_epochs + 1),
            total=n_epochs,
            desc="RBM fit",
            progress=None if progress else False,
        ):
            started = time.perf_counter()
            with torch.no_grad():
                try:
                    data = torch.index_select(augmented, 0, torch.randperm(n, generator=generator))
                    for start in range(0, n, batch_size):
                        v_pos = data[start : start + batch_size]
                        p_pos = torch.sigmoid_(v_pos @ theta)  # (m, nh+1), last column exactly 1
                        if not persistent:  # CD: the chains start at the data
                            h = torch.bernoulli(p_pos, generator=generator)
                        for _ in range(k):
                            v_neg = torch.bernoulli(
                                torch.sigmoid_(h @ theta_t), generator=generator
                            )
                            p_neg = torch.sigmoid_(v_neg @ theta)
                            h = torch.bernoulli(p_neg, generator=generator)
                        # gradient ascent on the log-likelihood:
                        # theta -= a_t * contrastive_gradient(...), all blocks at once
                        a_t = a * rate(t)
                        t += 1
                        # with momentum, u <- momentum * u + ... in the first addmm (beta=)
                        target = theta if velocity is None else velocity
                        beta = 1.0 if velocity is None else momentum
                        target.addmm_(v_pos.T, p_pos, beta=beta, alpha=a_t / v_pos.shape[0])
                        target.addmm_(v_neg.T, p_neg, alpha=-a_t / v_neg.shape[0])
                        if weight_decay:
                            target[:nv, :nh].add_(weights, alpha=-a_t * weight_decay)
                        if velocity is not None:
                            theta.add_(velocity)
                except RuntimeError:  # e.g. bernoulli() on NaN probabilities
                    if bool(torch.isfinite(theta).all()):
                        raise
                    raise FloatingPointError(
                        f"the weights became non-finite in epoch {epoch}: lower learning_rate "
                        f"(got {learning_rate})"
                    ) from None
                self.weight.copy_(weights)
                self.visible_bias.copy_(theta[:nv, nh])
                self.hidden_bias.copy_(theta[nv, :nh])
            if not bool(torch.isfinite(theta).all()):
                raise FloatingPointError(
                    f"the weights became non-finite in epoch {epoch}: lower learning_rate "
                    f"(got {learning_rate})"
                )
            if history.record(
                epoch, {"epoch": epoch, "seconds": time.perf_counter() - started}, callbacks
            ):
                break
        return history

    def _fit_objective(
        self,
        v,
        objective,
        *,
        n_epochs,
        batch_size,
        learning_rate,
        momentum,
        weight_decay,
        rate,
        generator,
        callbacks,
        progress,
    ) -> History:
        """The update of :meth:`fit` with the closed-form gradient of the named objective (checked
        inputs)."""
        params = [p.detach().clone() for p in self.parameters()]
        velocity = [torch.zeros_like(p) for p in params]
        n, a, t = v.shape[0], learning_rate, 0
        history = History()
        for epoch in progress_bar(
            range(1, n_epochs + 1),
            total=n_epochs,
            desc="RBM fit",
            progress=None if progress else False,
        ):
            started = time.perf_counter()
            data = torch.index_select(v, 0, torch.randperm(n, generator=generator))
            for start in range(0, n, batch_size):
                grads = _flip_objective_gradients(
                    *params, data[start : start + batch_size], objective
                )
                a_t = a * rate(t)
                t += 1
                with torch.no_grad():
                    for i, (p, g, u) in enumerate(zip(params, grads, velocity, strict=True)):
                        if weight_decay and i == 0:  # on the weights only
                            g = g + weight_decay * p
                        u.mul_(momentum).add_(g, alpha=-a_t)
                        p.add_(u)
            if not all(bool(torch.isfinite(p).all()) for p in params):
                raise FloatingPointError(
                    f"the weights became non-finite in epoch {epoch}: lower learning_rate "
                    f"(got {learning_rate})"
                )
            with torch.no_grad():
                for mine, p in zip(self.parameters(), params, strict=True):
                    mine.copy_(p)
            if history.record(
                epoch, {"epoch": epoch, "seconds": time.perf_counter() - started}, callbacks
            ):
                break
        return history


def _flip_gaps(
    weight: torch.Tensor, visible_bias: torch.Tensor, hidden_bias: torch.Tensor, v: torch.Tensor
) -> torch.Tensor:
    r""":math:`F(v) - F(v^{(i)})` for every row and bit, shape ``(n, n_v)``; differentiable in the
    parameters.

    :math:`v^{(i)}` is ``v`` with bit ``i`` flipped. With :math:`x = c + vW` and
    :math:`s_i = 1 - 2v_i`, :math:`F(v) - F(v^{(i)}) = s_i b_i + \sum_j[\operatorname{softplus}(x_j
    + s_i W_{ij})
    - \operatorname{softplus}(x_j)]`. Rows are processed in chunks so that memory stays bounded.
    """
    x = torch.addmm(hidden_bias, v, weight)  # (n, n_h)
    sign = 1.0 - 2.0 * v  # +1 where the bit turns on
    sp = F.softplus(x).sum(1, keepdim=True)
    gaps = []
    step = max(1, 2**22 // (weight.shape[0] * weight.shape[1]))  # rows per chunk: bounded memory
    for start in range(0, v.shape[0], step):
        xs, ss = x[start : start + step], sign[start : start + step]
        x_flip = xs[:, None, :] + ss[:, :, None] * weight[None]  # (m, n_v, n_h)
        gaps.append(ss * visible_bias + F.softplus(x_flip).sum(2) - sp[start : start + step])
    return torch.cat(gaps)


def _pl_from_parameters(weight, visible_bias, hidden_bias, v):
    return F.softplus(_flip_gaps(weight, visible_bias, hidden_bias, v)).sum(1).mean()


def _rm_from_parameters(weight, visible_bias, hidden_bias, v):
    return torch.sigmoid(_flip_gaps(weight, visible_bias, hidden_bias, v)).square().sum(1).mean()


def pseudo_likelihood_loss(rbm: BernoulliRBM, v: torch.Tensor) -> torch.Tensor:
    r"""Negative pseudo-log-likelihood, averaged over the batch :cite:p:`besag1975`: a scalar to
    minimize.

    .. math::  \mathcal L_{\rm PL}
               = -\frac1n\sum_{m=1}^n\sum_{i=1}^{n_v} \log p(v_{mi}\mid v_{m,-i})
               = \frac1n\sum_m\sum_i \operatorname{softplus}\big(F(v_m) - F(v_m^{(i)})\big),

    where :math:`v^{(i)}` is :math:`v` with bit :math:`i` flipped. Every term is a ratio
    :math:`p(v)/(p(v)+p(v^{(i)}))`, so :math:`Z` cancels; no sampling is needed. It equals
    ``-rbm.pseudo_log_likelihood(v).mean()``, but is differentiable in the RBM's parameters (set
    their ``requires_grad``), so that it can be minimized with autograd, or by
    ``rbm.fit(..., objective="pseudo_likelihood")``.

    Parameters
    ----------
    rbm : BernoulliRBM
    v : torch.Tensor, shape (n, n_visible)
        Binary data, ``n >= 1``.

    Returns
    -------
    torch.Tensor
        Scalar, in nats per data point.
    """
    if not isinstance(rbm, BernoulliRBM):
        raise TypeError(f"rbm must be an ebmlib.rbm.BernoulliRBM, got {type(rbm).__name__}")
    return _pl_from_parameters(*rbm.parameters(), rbm._visible(v))


def ratio_matching_loss(rbm: BernoulliRBM, v: torch.Tensor) -> torch.Tensor:
    r"""Ratio matching for binary data :cite:p:`hyvarinen2007extensions`, averaged over the batch: a
    scalar to minimize.

    Ratio matching fits the ratios :math:`p(v)/p(v^{(i)})` of the model at the data to those of the
    data distribution, through :math:`g(u) = 1/(1+u)`; after the terms that do not depend on the
    parameters are dropped, the objective is

    .. math::  \mathcal L_{\rm RM} = \frac1n\sum_{m=1}^n\sum_{i=1}^{n_v}
               g\Big(\frac{p(v_m)}{p(v_m^{(i)})}\Big)^2
               = \frac1n\sum_m\sum_i \sigma\big(F(v_m) - F(v_m^{(i)})\big)^2,

    with :math:`v^{(i)}` the point with bit :math:`i` flipped and :math:`\sigma` the logistic
    function. Like the pseudo-likelihood it needs neither :math:`Z` nor samples; each term is
    :math:`(1 - p(v_i\mid v_{-i}))^2`, a squared error where the pseudo-likelihood takes a log, so
    that a badly fitted bit costs at most 1. It is consistent: its expected gradient under the model
    vanishes at the model's parameters (tested by enumeration).

    Parameters
    ----------
    rbm : BernoulliRBM
    v : torch.Tensor, shape (n, n_visible)
        Binary data, ``n >= 1``.

    Returns
    -------
    torch.Tensor
        Scalar, differentiable in the RBM's parameters.
    """
    if not isinstance(rbm, BernoulliRBM):
        raise TypeError(f"rbm must be an ebmlib.rbm.BernoulliRBM, got {type(rbm).__name__}")
    return _rm_from_parameters(*rbm.parameters(), rbm._visible(v))


def _flip_objective_gradients(weight, visible_bias, hidden_bias, v, objective: str):
    r"""Closed-form gradients of the pseudo-likelihood or ratio-matching loss (the mean over rows of
    ``v``).

    With :math:`x = c + vW`, :math:`s = 1 - 2v`, :math:`A_{mij} = \sigma(x_{mj} + s_{mi}W_{ij})`,
    :math:`P = \sigma(x)`, the flip gaps :math:`G_{mi} = F(v_m) - F(v_m^{(i)})` and
    :math:`D = \partial\mathcal L/\partial G` (:math:`\sigma(G)/n` for PL,
    :math:`2\sigma(G)^2(1-\sigma(G))/n` for RM): :math:`Q_{mj} = \sum_i D_{mi}(A_{mij} - P_{mj})`,
    and :math:`\nabla_W = v^\top Q + \sum_m (D\odot s)_{m:}{}^\top A_{m::}`,
    :math:`\nabla_b = \sum_m D\odot s`, :math:`\nabla_c = \sum_m Q`. Tested against autograd;
    several times faster than it on small batches. Returns
    ``(g_weight, g_visible_bias, g_hidden_bias)``."""
    n = v.shape[0]
    x = torch.addmm(hidden_bias, v, weight)  # (n, n_h)
    sign = 1.0 - 2.0 * v  # (n, n_v)
    x_flip = x[:, None, :] + sign[:, :, None] * weight[None]  # (n, n_v, n_h)
    gaps = sign * visible_bias + (F.softplus(x_flip).sum(2) - F.softplus(x).sum(1, keepdim=True))
    sig = torch.sigmoid(gaps)
    d = sig / n if objective == "pseudo_likelihood" else 2.0 * sig * sig * (1.0 - sig) / n
    a = torch.sigmoid(x_flip)  # (n, n_v, n_h)
    ds = d * sign
    q = torch.bmm(d[:, None, :], a)[:, 0] - d.sum(1, keepdim=True) * torch.sigmoid(x)  # (n, n_h)
    g_w = torch.addmm((ds[:, :, None] * a).sum(0), v.T, q)
    return g_w, ds.sum(0), q.sum(0)


#: Objectives of :meth:`BernoulliRBM.fit` other than contrastive divergence: name -> loss of
#: (W, b, c, v).
OBJECTIVES = {"pseudo_likelihood": _pl_from_parameters, "ratio_matching": _rm_from_parameters}
