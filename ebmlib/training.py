r"""The one training loop used by every chapter.

:func:`train` minimizes a loss by ``n_updates`` stochastic gradient updates
(``n_steps``, elsewhere in :mod:`ebmlib`, always counts MCMC steps). Every
method in the book differs only in the *loss* it builds at each update (exact
NLL, contrastive loss with exact or MCMC negatives, score matching, NCE, ...),
so each is a ``loss_fn(step)`` passed to the same loop, which handles the
optimizer, the step-size schedule, the record of the run, callbacks and the
progress bar (the iterate-record-call-back part is :func:`ebmlib.loop.run_loop`,
shared with :meth:`ebmlib.rbm.BernoulliRBM.fit`).

The step-size schedule
:math:`a_t = a_0 / (1 + t/t_0)^{\kappa}` with :math:`\kappa\in(1/2, 1]`
satisfies the Robbins–Monro conditions :math:`\sum a_t=\infty`,
:math:`\sum a_t^2<\infty`, under which stochastic-gradient iterates converge
to a root of the expected gradient.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence

import torch

from .history import History
from .loop import run_loop
from .samplers import sample
from .validation import check_batch, check_generator, check_int, check_positive

__all__ = ["ReplayBuffer", "train", "robbins_monro_schedule"]


class ReplayBuffer:
    r"""Persistent chains (PCD) or a replay buffer of negative samples, advanced by
    :func:`ebmlib.samplers.sample`.

    Contrastive divergence restarts its chains at the data at every update; *persistent* CD
    :cite:p:`tieleman2008` keeps them, so that across parameter updates they keep mixing toward the
    model. A replay buffer :cite:p:`du2019implicit` generalizes this: it stores more states than a
    batch needs, draws a random batch of them, restarts a fraction ``restart_prob`` of that batch
    from a fresh distribution (to keep exploring), advances the batch a few MCMC steps and writes it
    back.

    * ``size == batch`` and ``restart_prob == 0``: plain PCD, every chain advanced at every update.
    * ``size > batch`` and ``restart_prob > 0``: the replay buffer of :cite:t:`du2019implicit`.

    Parameters
    ----------
    initial : torch.Tensor, shape (size, d)
        Initial states.
    restart_fn : callable, optional
        ``restart_fn(n, generator)`` returns ``n`` fresh states, shape ``(n, d)``. Required when
        ``restart_prob > 0``.
    restart_prob : float in [0, 1]
        Probability that a drawn state is replaced by a fresh one before sampling.

    Attributes
    ----------
    states : torch.Tensor, shape (size, d)
        The stored states.
    n_restarts : int
        Fresh restarts so far.
    """

    def __init__(
        self,
        initial: torch.Tensor,
        *,
        restart_fn: Callable | None = None,
        restart_prob: float = 0.0,
    ):
        self.states = check_batch(initial, "initial").detach().clone()
        restart_prob = check_positive(restart_prob, "restart_prob", allow_zero=True)
        if restart_prob > 1:
            raise ValueError(f"restart_prob must lie in [0, 1], got {restart_prob}")
        if restart_prob > 0 and not callable(restart_fn):
            raise ValueError(
                "restart_prob > 0 needs a restart_fn(n, generator) giving fresh states"
            )
        self.restart_fn, self.restart_prob, self.n_restarts = restart_fn, restart_prob, 0

    def __len__(self) -> int:
        return self.states.shape[0]

    def negatives(
        self,
        energy_fn: Callable,
        n: int | None = None,
        *,
        method: str,
        n_steps: int,
        step_size: float | None = None,
        generator: torch.Generator | None = None,
        n_leapfrog: int = 10,
        bounds=None,
    ) -> tuple[torch.Tensor, dict]:
        """Draw ``n`` states (all of them, in order, by default), restart some, advance them, store
        and return them.

        Everything happens on the device and in the dtype of the stored states; ``generator``, when
        given, must live on that device, and ``restart_fn`` receives it (its draws are moved to the
        states' device and dtype).

        ``method``, ``n_steps``, ``step_size``, ``n_leapfrog`` and ``bounds`` are passed to
        :func:`ebmlib.samplers.sample`; with ``bounds`` the chains stay in the box, so the buffer
        samples the model truncated to it (the stored and restarted states must lie in the box).
        ``method="gibbs"`` instead runs ``n_steps`` of the model's own block-Gibbs sampler,
        ``energy_fn.gibbs(x, n_steps, generator=generator)`` (an RBM's; ``step_size`` unused):
        persistent chains for RBMs.

        Returns
        -------
        x_neg : torch.Tensor, shape (n, d)
            Detached negative samples.
        info : dict
            The sampler's ``info`` plus ``"n_restarted"``.
        """
        size = len(self)
        n = size if n is None else check_int(n, "n", maximum=size)
        device = self.states.device
        check_generator(generator, device=device)
        idx = (
            torch.arange(size, device=device)
            if n == size
            else torch.randperm(size, generator=generator, device=device)[:n]
        )
        x = self.states[idx]
        n_restarted = 0
        if self.restart_prob > 0:
            fresh = torch.rand(n, generator=generator, device=device) < self.restart_prob
            n_restarted = int(fresh.sum())
            if n_restarted:
                x[fresh] = self.restart_fn(n_restarted, generator).to(x)
                self.n_restarts += n_restarted
        if method == "gibbs":
            x, info = _gibbs(energy_fn, x, n_steps, generator)
        else:
            x, info = sample(energy_fn, x, method=method, n_steps=n_steps, step_size=step_size,
                             generator=generator, n_leapfrog=n_leapfrog, bounds=bounds)  # fmt: skip
        self.states[idx] = x
        info["n_restarted"] = n_restarted
        return x, info


def _gibbs(model, x: torch.Tensor, n_steps, generator) -> tuple[torch.Tensor, dict]:
    if not callable(getattr(model, "gibbs", None)):
        raise TypeError(
            f"method='gibbs' needs a model with a gibbs(x, n_steps, generator=) method (an RBM), "
            f"got {type(model).__name__}"
        )
    return model.gibbs(x, n_steps, generator=generator), {"acceptance_rate": 1.0}


def robbins_monro_schedule(kappa: float = 1.0, t0: float = 1.0) -> Callable[[int], float]:
    r"""Multiplier :math:`(1 + t/t_0)^{-\kappa}` of the base learning rate at update ``t``.

    Parameters
    ----------
    kappa : float in (0.5, 1]
        Decay exponent; the Robbins–Monro conditions need :math:`1/2<\kappa\le 1`.
    t0 : float > 0
        Updates before the decay becomes noticeable.
    """
    kappa = check_positive(kappa, "kappa")
    if not 0.5 < kappa <= 1.0:
        raise ValueError(
            f"kappa must lie in (0.5, 1] for the Robbins-Monro conditions, got {kappa}"
        )
    t0 = check_positive(t0, "t0")
    return lambda t: (1.0 + t / t0) ** (-kappa)


def _make_optimizer(optimizer, params, learning_rate, momentum):
    if isinstance(optimizer, torch.optim.Optimizer):
        return optimizer
    if optimizer == "sgd":
        return torch.optim.SGD(params, lr=learning_rate, momentum=momentum)
    if optimizer == "adam":
        return torch.optim.Adam(params, lr=learning_rate)
    raise ValueError(
        f"optimizer must be 'sgd', 'adam' or a torch.optim.Optimizer, got {optimizer!r}"
    )


def _gradient_update(loss_fn, update: int, opt, params, grad_clip, scheduler) -> dict:
    """One gradient update: evaluate ``loss_fn(update)``, check that the loss is a finite scalar,
    back-propagate, clip, step the optimizer and the schedule; returns the update's record."""
    opt.zero_grad(set_to_none=True)
    out = loss_fn(update)
    loss, logs = out if isinstance(out, tuple) else (out, {})
    if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
        raise ValueError("loss_fn must return a scalar tensor (or a (loss, logs) pair)")
    loss_value = float(loss.detach())
    if not math.isfinite(loss_value):
        raise FloatingPointError(
            f"the loss became {loss_value} at step {update}: the run diverged "
            "(try a smaller learning_rate, a grad_clip, or a better-conditioned sampler)"
        )
    loss.backward()
    if grad_clip is not None:
        torch.nn.utils.clip_grad_norm_(params, grad_clip)
    lr = opt.param_groups[0]["lr"]
    opt.step()
    if scheduler is not None:
        scheduler.step()
    record = {"step": update, "loss": loss_value, "lr": lr}
    record.update({k: (float(v) if isinstance(v, torch.Tensor) else v) for k, v in logs.items()})
    return record


def train(
    loss_fn: Callable[[int], torch.Tensor | tuple],
    parameters: Iterable[torch.Tensor],
    *,
    n_updates: int,
    learning_rate: float = 1e-2,
    optimizer="sgd",
    momentum: float = 0.0,
    schedule: Callable[[int], float] | None = None,
    grad_clip: float | None = None,
    callbacks: Sequence[Callable[[int, dict], object]] = (),
    progress: bool | None = None,
    desc: str = "training",
) -> History:
    r"""Minimize ``loss_fn`` by ``n_updates`` gradient updates and return the :class:`History`.

    Parameters
    ----------
    loss_fn : callable
        ``loss_fn(step)`` returns a scalar loss tensor, or a pair
        ``(loss, logs)`` where ``logs`` is a dict of numbers to record;
        ``step`` counts the gradient updates from 0.
    parameters : iterable of tensors
        The tensors to update (for example ``energy.parameters()``).
    n_updates : int
        Number of gradient updates.
    learning_rate : float
        Base step size :math:`a_0`.
    optimizer : {"sgd", "adam"} or torch.optim.Optimizer
        Optimizer to use; an instance is used as is (``learning_rate`` ignored).
    momentum : float
        Momentum for SGD.
    schedule : callable, optional
        ``schedule(t)`` multiplies the learning rate at update ``t``, e.g.
        :func:`robbins_monro_schedule`.
    grad_clip : float, optional
        Clip the global gradient norm to this value.
    callbacks : sequence of callables
        ``callback(step, logs)`` after each update; ``logs`` holds ``"step"``,
        ``"loss"`` and ``"lr"`` and whatever ``loss_fn`` logged. A callback may
        add entries to ``logs`` (they are recorded) and returns a truthy
        value to stop early.
    progress : bool, optional
        Show a progress bar (default: on unless ``EBMLIB_PROGRESS=0``).
    desc : str
        Label of the progress bar.

    Returns
    -------
    History
    """
    n_updates = check_int(n_updates, "n_updates")
    learning_rate = check_positive(learning_rate, "learning_rate")
    momentum = check_positive(momentum, "momentum", allow_zero=True)
    if grad_clip is not None:
        grad_clip = check_positive(grad_clip, "grad_clip")
    params = [p for p in parameters]
    if not params:
        raise ValueError("parameters is empty: nothing to train")
    opt = _make_optimizer(optimizer, params, learning_rate, momentum)
    scheduler = torch.optim.lr_scheduler.LambdaLR(opt, schedule) if schedule is not None else None
    return run_loop(
        lambda step: _gradient_update(loss_fn, step, opt, params, grad_clip, scheduler),
        range(n_updates),
        callbacks=callbacks,
        progress=progress,
        desc=desc,
    )
