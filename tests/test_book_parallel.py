"""ebmlib.book.run_in_processes: the chapters' side-by-side fits give the one-by-one results."""

import multiprocessing
import os

import pytest
import torch

from ebmlib.book import run_in_processes


def _fit(seed):
    # a closure (not picklable): workers inherit it through fork
    def task():
        g = torch.Generator().manual_seed(seed)
        model = torch.nn.Linear(3, 1)
        with torch.no_grad():
            model.weight.copy_(torch.randn(1, 3, generator=g))
        return model, torch.randn(5, generator=g)

    return task


def test_forked_results_equal_sequential_ones_in_order():
    tasks = {f"fit {s}": _fit(s) for s in (3, 1, 2)}
    forked = run_in_processes(tasks, n_jobs=2)
    serial = run_in_processes(tasks, n_jobs=1)
    assert list(forked) == list(tasks)
    for name in tasks:
        assert torch.equal(forked[name][1], serial[name][1])
        assert torch.equal(forked[name][0].weight, serial[name][0].weight)
    # different seeds give different draws, so the comparison above is not vacuous
    assert not torch.equal(forked["fit 3"][1], forked["fit 1"][1])


def test_a_failing_task_raises_its_error():
    def broken():
        raise ValueError("step_size must be positive")

    with pytest.raises(ValueError, match="step_size"):
        run_in_processes({"ok": _fit(0), "bad": broken}, n_jobs=2)


def test_bad_arguments_are_refused():
    assert run_in_processes({}) == {}
    with pytest.raises(TypeError, match="tasks"):
        run_in_processes([_fit(0)])
    with pytest.raises(TypeError, match="tasks"):
        run_in_processes({"x": 3})
    with pytest.raises(ValueError, match="n_jobs"):
        run_in_processes({"a": _fit(0)}, n_jobs=0)


def test_tasks_run_here_once_cuda_is_initialized(monkeypatch):
    """A forked child cannot use its parent's CUDA context: the tasks then run in this process."""
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: True)
    pids = run_in_processes({"a": os.getpid, "b": os.getpid}, n_jobs=2)
    assert pids == {"a": os.getpid(), "b": os.getpid()}
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: False)
    if "fork" in multiprocessing.get_all_start_methods():
        assert (
            os.getpid() not in run_in_processes({"a": os.getpid, "b": os.getpid}, n_jobs=2).values()
        )
