r"""Binary restricted Boltzmann machines: the model, its core, its likelihood proxies and its
trainer.

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

- :mod:`ebmlib.rbm.core`: the conditionals, the Gibbs step (with an inverse temperature) and the
  free energy, written once and shared by the model, its trainer and AIS (:mod:`ebmlib.partition`).
- :mod:`ebmlib.rbm.model`: :class:`BernoulliRBM`, exact where it can be (log Z by enumerating the
  smaller layer).
- :mod:`ebmlib.rbm.proxies`: pseudo-likelihood, ratio matching, reconstruction error.
- :mod:`ebmlib.rbm.trainer`: :meth:`BernoulliRBM.fit`.
"""

from .model import MAX_EXACT_BITS, BernoulliRBM
from .proxies import OBJECTIVES, pseudo_likelihood_loss, ratio_matching_loss

__all__ = [
    "BernoulliRBM",
    "MAX_EXACT_BITS",
    "pseudo_likelihood_loss",
    "ratio_matching_loss",
    "OBJECTIVES",
]
