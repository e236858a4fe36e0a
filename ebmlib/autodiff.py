r"""Derivatives of an energy that the estimators need.

* :func:`energy_gradients`: per-sample parameter gradients
  :math:`\nabla_\theta E(x_i\mid\theta)`, one row per point. Their average over
  data is the *positive phase*; their average under the model is the
  *negative phase* of the likelihood gradient.
* :func:`energy_input_grad`: :math:`E(x)` and :math:`\nabla_x E(x)` (minus the model's score
  :math:`\nabla_x\log p(x)`) in one forward and one backward pass, the one implementation that
  the gradient-based samplers (:mod:`ebmlib.samplers`) and the score-matching losses
  (:mod:`ebmlib.losses`, with ``create_graph=True``) share. It never touches the parameters'
  ``.grad``.
"""

from __future__ import annotations

import torch
from torch.func import functional_call, grad, vmap

from .validation import check_batch, check_energy_output

__all__ = ["energy_gradients", "energy_input_grad", "parameter_names"]


def parameter_names(energy: torch.nn.Module) -> list[str]:
    """Names of the parameters of ``energy`` that require grad, in
    :meth:`~torch.nn.Module.named_parameters` order."""
    return [name for name, p in energy.named_parameters() if p.requires_grad]


def energy_gradients(energy: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    r"""Per-sample gradients :math:`\nabla_\theta E(x_i\mid\theta)`, flattened into one row per
    point.

    Parameters
    ----------
    energy : torch.nn.Module
        The energy; its parameters that require grad are differentiated, in
        the order of :func:`parameter_names` (each flattened).
    x : torch.Tensor, shape (n, d)

    Returns
    -------
    torch.Tensor, shape (n, P)
        ``P`` is the total number of trainable scalars. Not attached to the graph.
    """
    check_batch(x, "x")
    names = parameter_names(energy)
    if not names:
        raise ValueError("energy has no parameters that require grad")
    params = {n: p.detach() for n, p in energy.named_parameters() if n in names}
    buffers = dict(energy.named_buffers())

    def single(p, xi):
        return functional_call(energy, (p, buffers), (xi[None, :],))[0]

    per_sample = vmap(grad(single), in_dims=(None, 0))(params, x.detach())
    return torch.cat([per_sample[n].reshape(x.shape[0], -1) for n in names], dim=1)


def energy_input_grad(
    energy_fn, x: torch.Tensor, *, create_graph: bool = False
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Energies and their input gradients :math:`\nabla_x E(x_i)`.

    Parameters
    ----------
    energy_fn : callable
        Maps ``(n, d)`` to ``(n,)``.
    x : torch.Tensor, shape (n, d)
    create_graph : bool
        Keep the graph (needed when the result enters a loss, as in score matching): the results
        are then differentiable in the parameters and, when ``x`` requires grad, in ``x`` itself
        (second derivatives). With the default ``False`` both results are detached and the
        parameters' ``.grad`` fields are not touched.

    Returns
    -------
    energies : torch.Tensor, shape (n,)
    grad_x : torch.Tensor, shape (n, d)
    """
    with torch.enable_grad():
        x_req = x if (create_graph and x.requires_grad) else x.detach().requires_grad_(True)
        e = check_energy_output(energy_fn(x_req), x.shape[0])
        (g,) = torch.autograd.grad(e.sum(), x_req, create_graph=create_graph)
    if not create_graph:
        e = e.detach()
    return e, g
