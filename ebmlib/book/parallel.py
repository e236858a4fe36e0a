"""Run a chapter's independent fits side by side, one per core.

A chapter often trains several models that share nothing but their inputs. Run one after the
other they take the sum of their times; run in forked worker processes they take about the
longest chain of them, and give bit-for-bit the same results, because each fit draws from its
own seeded generator.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Mapping
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import torch

from ..validation import check_int

# set in each worker by _start_worker: the tasks, inherited through fork (never pickled)
_worker_tasks: list[Callable[[], Any]] = []


def _start_worker(tasks: list[Callable[[], Any]], n_threads: int) -> None:
    global _worker_tasks
    _worker_tasks = tasks
    torch.set_num_threads(n_threads)


def _run_task(index: int) -> Any:
    return _worker_tasks[index]()


def _can_fork() -> bool:
    """Fork is available and safe: no CUDA context in this process to inherit."""
    return "fork" in multiprocessing.get_all_start_methods() and not torch.cuda.is_initialized()


def available_cores() -> int:
    """The number of CPU cores this process may use (its affinity where the OS reports one)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def run_in_processes(
    tasks: Mapping[str, Callable[[], Any]], *, n_jobs: int | None = None
) -> dict[str, Any]:
    """Call every zero-argument task, ``n_jobs`` at a time in forked processes; results by name.

    Parameters
    ----------
    tasks : mapping of names to callables
        Independent computations, each called with no arguments. They may be closures or
        lambdas defined in a notebook: workers are forked, so the tasks are inherited, not
        pickled. Their *results* travel back by pickle (tensors, modules and dicts do).
    n_jobs : int, optional
        Worker processes; default :func:`available_cores`, capped at the number of tasks. With
        ``n_jobs=1``, or where the operating system cannot fork (Windows), the tasks run one
        after the other in this process, with the same results. They also run here, one by one,
        once CUDA is initialized in this process (a forked child cannot use the parent's CUDA
        context): a chapter run with ``DEVICE="cuda"`` fits on the GPU sequentially.

    Returns
    -------
    dict
        ``{name: tasks[name]()}``, in the order of ``tasks``.

    Notes
    -----
    Each worker runs PyTorch with this process's number of threads. A task must not depend on
    state that another task changes, since each works on its own copy of the process.
    """
    if not isinstance(tasks, Mapping) or not all(callable(t) for t in tasks.values()):
        raise TypeError("tasks must map names to zero-argument callables")
    names = list(tasks)
    if not names:
        return {}
    if n_jobs is None:
        n_jobs = available_cores()
    n_jobs = min(check_int(n_jobs, "n_jobs"), len(names))
    if n_jobs == 1 or not _can_fork():
        return {name: tasks[name]() for name in names}
    context = multiprocessing.get_context("fork")
    with ProcessPoolExecutor(
        n_jobs,
        mp_context=context,
        initializer=_start_worker,
        initargs=([tasks[n] for n in names], torch.get_num_threads()),
    ) as pool:
        results = list(pool.map(_run_task, range(len(names))))
    return dict(zip(names, results, strict=True))
