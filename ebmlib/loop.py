"""The loop every trainer in :mod:`ebmlib` runs: iterate, record, call back, stop.

:func:`ebmlib.training.train` runs it with one gradient update per iteration, and
:meth:`ebmlib.rbm.BernoulliRBM.fit` with one epoch of closed-form updates per iteration; both then
return the same :class:`~ebmlib.history.History` and honour callbacks and the progress bar the
same way.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from ._progress import progress_bar
from .history import History

__all__ = ["run_loop"]


def run_loop(
    step: Callable[[int], dict],
    iterations: range,
    *,
    callbacks: Sequence[Callable[[int, dict], object]] = (),
    progress: bool | None = None,
    desc: str = "training",
) -> History:
    """Call ``logs = step(i)`` for each ``i`` in ``iterations`` and record the logs.

    After each iteration every ``callback(i, logs)`` is called (it may add entries to ``logs``,
    which are recorded); a truthy return stops the loop and sets
    :attr:`History.stopped_early <ebmlib.history.History.stopped_early>`.

    Parameters
    ----------
    step : callable
        ``step(i)`` does one iteration's work and returns a dict of numbers to record.
    iterations : range
        The iteration labels, e.g. ``range(n_updates)`` or ``range(1, n_epochs + 1)``.
    callbacks : sequence of callables
    progress : bool, optional
        Progress bar over the iterations (default: on unless ``EBMLIB_PROGRESS=0``).
    desc : str
        Label of the progress bar.

    Returns
    -------
    History
    """
    history = History()
    for i in progress_bar(iterations, total=len(iterations), desc=desc, progress=progress):
        if history.record(i, step(i), callbacks):
            break
    return history
