r"""The one training loop used by every chapter.

:func:`train` minimizes a loss by stochastic gradient steps. Every method in
the book differs only in the *loss* it builds at each step (exact NLL,
contrastive loss with exact or MCMC negatives, score matching, NCE, ...), so
each is a ``loss_fn(step)`` passed to the same loop, which handles the
optimizer, the step-size schedule, the record of the run, callbacks and the
progress bar.

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

from .validation import check_int, check_positive
from ._progress import progress_bar

__all__ = ["History", "train", "robbins_monro_schedule"]


class History(dict):
    """Record of a run: a dict mapping a name (``"step"``, ``"loss"``, any logged key) to a list.

    Attributes
    ----------
    stopped_early : bool
        True when a callback asked the loop to stop.
    """

    stopped_early: bool = False

    def append(self, logs: dict) -> None:
        for key, value in logs.items():
            self.setdefault(key, []).append(value)

    def as_tensor(self, key: str) -> torch.Tensor:
        """The record ``key`` as a float64 tensor."""
        return torch.as_tensor(self[key], dtype=torch.float64)


def robbins_monro_schedule(kappa: float = 1.0, t0: float = 1.0) -> Callable[[int], float]:
    r"""Multiplier :math:`(1 + t/t_0)^{-\kappa}` of the base learning rate at step ``t``.

    Parameters
    ----------
    kappa : float in (0.5, 1]
        Decay exponent; the Robbins–Monro conditions need :math:`1/2<\kappa\le 1`.
    t0 : float > 0
        Steps before the decay becomes noticeable.
    """
    kappa = check_positive(kappa, "kappa")
    if not 0.5 < kappa <= 1.0:
        raise ValueError(f"kappa must lie in (0.5, 1] for the Robbins-Monro conditions, got {kappa}")
    t0 = check_positive(t0, "t0")
    return lambda t: (1.0 + t / t0) ** (-kappa)


def _make_optimizer(optimizer, params, learning_rate, momentum):
    if isinstance(optimizer, torch.optim.Optimizer):
        return optimizer
    if optimizer == "sgd":
        return torch.optim.SGD(params, lr=learning_rate, momentum=momentum)
    if optimizer == "adam":
        return torch.optim.Adam(params, lr=learning_rate)
    raise ValueError(f"optimizer must be 'sgd', 'adam' or a torch.optim.Optimizer, got {optimizer!r}")


def train(loss_fn: Callable[[int], torch.Tensor | tuple], parameters: Iterable[torch.Tensor], *, n_steps: int,
          learning_rate: float = 1e-2, optimizer="sgd", momentum: float = 0.0,
          schedule: Callable[[int], float] | None = None, grad_clip: float | None = None,
          callbacks: Sequence[Callable[[int, dict], object]] = (), progress: bool | None = None,
          desc: str = "training") -> History:
    r"""Minimize ``loss_fn`` by ``n_steps`` gradient steps and return the :class:`History`.

    Parameters
    ----------
    loss_fn : callable
        ``loss_fn(step)`` returns a scalar loss tensor, or a pair
        ``(loss, logs)`` where ``logs`` is a dict of numbers to record.
    parameters : iterable of tensors
        The tensors to update (for example ``energy.parameters()``).
    n_steps : int
        Number of gradient steps.
    learning_rate : float
        Base step size :math:`a_0`.
    optimizer : {"sgd", "adam"} or torch.optim.Optimizer
        Optimizer to use; an instance is used as is (``learning_rate`` ignored).
    momentum : float
        Momentum for SGD.
    schedule : callable, optional
        ``schedule(t)`` multiplies the learning rate at step ``t``, e.g.
        :func:`robbins_monro_schedule`.
    grad_clip : float, optional
        Clip the global gradient norm to this value.
    callbacks : sequence of callables
        ``callback(step, logs)`` after each step; ``logs`` holds ``"step"``,
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
    n_steps = check_int(n_steps, "n_steps")
    learning_rate = check_positive(learning_rate, "learning_rate")
    momentum = check_positive(momentum, "momentum", allow_zero=True)
    if grad_clip is not None:
        grad_clip = check_positive(grad_clip, "grad_clip")
    params = [p for p in parameters]
    if not params:
        raise ValueError("parameters is empty: nothing to train")
    opt = _make_optimizer(optimizer, params, learning_rate, momentum)
    scheduler = torch.optim.lr_scheduler.LambdaLR(opt, schedule) if schedule is not None else None
    history = History()
    for step in progress_bar(range(n_steps), total=n_steps, desc=desc, progress=progress):
        opt.zero_grad(set_to_none=True)
        out = loss_fn(step)
        loss, logs = (out if isinstance(out, tuple) else (out, {}))
        if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
            raise ValueError("loss_fn must return a scalar tensor (or a (loss, logs) pair)")
        loss_value = float(loss.detach())
        if not math.isfinite(loss_value):
            raise FloatingPointError(
                f"the loss became {loss_value} at step {step}: the run diverged "
                "(try a smaller learning_rate, a grad_clip, or a better-conditioned sampler)"
            )
        loss.backward()
        if grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(params, grad_clip)
        lr = opt.param_groups[0]["lr"]
        opt.step()
        if scheduler is not None:
            scheduler.step()
        record = {"step": step, "loss": loss_value, "lr": lr}
        record.update({k: (float(v) if isinstance(v, torch.Tensor) else v) for k, v in logs.items()})
        stop = False
        for callback in callbacks:
            stop = bool(callback(step, record)) or stop
        history.append(record)
        if stop:
            history.stopped_early = True
            break
    return history
