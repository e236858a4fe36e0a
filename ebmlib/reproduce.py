r"""Re-run the book's chapters through papermill, on Dask: ``python -m ebmlib.reproduce``.

Examples
--------
Every chapter at its defaults, two at a time (``make reproduce`` does this)::

    python -m ebmlib.reproduce --jobs 2

Chapter 9 at the larger "paper" scale defined in ``book/scales.yml``, one parameter overridden::

    python -m ebmlib.reproduce 09 --scale paper -p N_RUNS 500

A sweep: chapters 5 and 7 at seeds 0, 1, ..., 19 (Python's ``start:stop[:step]``), every
(chapter, seed) pair a task; ``summary.md`` adds how often each of the chapters' claims held::

    python -m ebmlib.reproduce 05 07 --seeds 0:20 --jobs 2

The same tasks on an existing Dask cluster (``dask scheduler`` and ``dask worker``, or
dask-jobqueue on SLURM); the workers need the environment, not a shared filesystem::

    python -m ebmlib.reproduce --seeds 0:20 --scheduler tcp://10.0.0.5:8786

Parameters in a YAML file, either flat (``{N_RUNS: 200}``, applied to every selected chapter
that declares the name) or by chapter (``{09_head_to_head: {N_RUNS: 200}}``)::

    python -m ebmlib.reproduce 08 09 -f params.yaml

What it guarantees
------------------
* Nothing is submitted until every chapter name, parameter name and value has been checked:
  each task's values go through its chapter's parameter spec (:mod:`ebmlib.book.specs`), the
  check its hidden ``check-parameters`` cell makes, in-process and without executing any
  notebook, so a bad value fails at once with the message the chapter would give.
* Each task ships the notebook (outputs stripped), its parameters and the files it needs to a
  Dask worker, which executes it with papermill in a temporary folder and sends the executed
  notebook back as bytes; this process writes it to ``outputs/<run-id>/`` (ignored by git),
  never into ``book/``. ``<key>.ipynb`` there is always complete (written to a temporary name
  and renamed); a failed task leaves ``<key>.failed.ipynb``. The key is the chapter's stem, or
  ``<stem>.seed-<SEED>`` in a sweep.
* ``--resume`` with the same ``--run-id`` skips the pairs that already finished with the same
  parameters (including those whose claims failed: that is a result, not an error), so an
  interrupted run (Ctrl-C, a killed job) continues where it stopped; an interrupt cancels the
  pending tasks, stops the running ones and keeps the finished ones.
* A task that runs past ``--timeout`` is stopped ("timed out"); a worker that dies fails its
  task ("worker died") instead of handing it to the next worker; neither hangs the run.
* ``summary.md`` and ``summary.json`` record, for each pair, the status, wall time, peak memory
  of its process tree, parameters, host and the outcome of every claim (:mod:`ebmlib.book.claims`),
  and the environment: package versions, CPU, thread counts.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import platform
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from ._progress import progress_enabled
from .book.claims import read_claims
from .book.parameters import read_parameters_cell
from .book.specs import SPECS

__all__ = [
    "Chapter",
    "Task",
    "find_chapters",
    "select",
    "parse_seeds",
    "resolve_parameters",
    "preflight",
    "make_tasks",
    "robustness",
    "run",
    "main",
]

REPO = Path(__file__).resolve().parent.parent
# The chapters of a repository checkout; an installed wheel has none beside it (see _default_book).
BOOK = REPO / "book"
_NAME = re.compile(r"^[A-Z][A-Z0-9_]*$")
#: Default limit on one task's wall time, in seconds (``--timeout``).
DEFAULT_TIMEOUT = 3600.0
# A worker stops a task at its timeout; the client gives up on one that a worker has held for
# twice that plus this grace (a worker may hold a task queued behind a running one, see
# `distributed.scheduler.worker-saturation`), which only a worker that stopped answering reaches.
_GRACE = 60.0
# statuses of pairs whose notebook ran to an end (finished, or failed in a cell)
_EXECUTED = ("ok", "ok (resumed)", "claims failed", "claims failed (resumed)", "failed")


class ReproduceError(ValueError):
    """A bad chapter, parameter, seed range, scale, output folder or scheduler, found up front."""


class Chapter:
    """A chapter ``NN_topic.ipynb``, its declared (UPPER_CASE) parameters with defaults, and the
    spec they are checked against (:mod:`ebmlib.book.specs`, by the notebook's stem).

    The defaults are read from the first code cell, tagged ``parameters``, without executing it:
    each of its statements assigns a literal to a name
    (:func:`~ebmlib.book.parameters.read_parameters_cell`).
    """

    def __init__(self, path: Path):
        import nbformat

        self.path = Path(path)
        self.stem = self.path.stem
        self.number = self.stem.split("_", 1)[0]
        nb = nbformat.read(self.path, as_version=4)
        first = next((c for c in nb.cells if c.cell_type == "code"), None)
        if first is None or "parameters" not in first.metadata.get("tags", []):
            raise ReproduceError(
                f"{self.path.name}: its first code cell must be tagged 'parameters'"
            )
        try:
            declared = read_parameters_cell(first.source)
        except (SyntaxError, ValueError) as err:
            raise ReproduceError(f"{self.path.name}: {err}") from None
        self.defaults = {k: v for k, v in declared.items() if _NAME.match(k)}

    @property
    def spec(self):
        """The chapter's :class:`~ebmlib.book.parameters.ParameterSpec`, or None where
        :data:`ebmlib.book.specs.SPECS` has none for its stem (a chapter of another book)."""
        return SPECS.get(self.stem)

    def stripped(self) -> bytes:
        """The notebook without outputs: what a task ships (papermill re-executes every cell)."""
        nb = json.loads(self.path.read_bytes())
        for cell in nb.get("cells", []):
            if cell.get("cell_type") == "code":
                cell["outputs"], cell["execution_count"] = [], None
        return json.dumps(nb, ensure_ascii=False).encode()

    def __repr__(self) -> str:
        return f"Chapter({self.stem})"


@dataclass
class Task:
    """One (chapter, seed) pair: the unit that runs on a worker and gets one summary record.

    ``seed`` is None outside a sweep, where the chapter runs once at its own ``SEED``;
    ``parameters`` are the overrides the task applies (with ``SEED`` in a sweep).
    """

    chapter: Chapter
    seed: int | None
    parameters: dict = field(default_factory=dict)

    @property
    def key(self) -> str:
        """The stem of its output files: ``<chapter stem>`` or ``<stem>.seed-<SEED>``."""
        return self.chapter.stem if self.seed is None else f"{self.chapter.stem}.seed-{self.seed}"


def find_chapters(book: Path = BOOK) -> list[Chapter]:
    """Every ``NN_*.ipynb`` in ``book``, in order."""
    return [Chapter(p) for p in sorted(Path(book).glob("[0-9][0-9]_*.ipynb"))]


def select(chapters: list[Chapter], names: list[str]) -> list[Chapter]:
    """Chapters by number (``9``, ``09``), stem or path; all of them for no names."""
    if not names:
        return list(chapters)
    chosen = []
    for name in names:
        key = Path(name).stem
        match = [
            c
            for c in chapters
            if key in (c.stem, c.number) or (key.isdigit() and int(key) == int(c.number))
        ]
        if not match:
            raise ReproduceError(
                f"no chapter {name!r}; choose from: {', '.join(c.stem for c in chapters)}"
            )
        chosen.extend(c for c in match if c not in chosen)
    return chosen


def parse_seeds(text: str) -> range:
    """``--seeds`` in range syntax: ``"0:20"`` -> range(0, 20), ``"0:20:5"`` -> 0, 5, 10, 15."""
    parts = str(text).split(":")
    try:
        if len(parts) not in (2, 3):
            raise ValueError
        seeds = range(*(int(p) for p in parts))
    except ValueError:
        raise ReproduceError(
            f"--seeds takes start:stop[:step] with integers (e.g. 0:20), got {text!r}"
        ) from None
    if len(seeds) == 0:
        raise ReproduceError(f"--seeds {text} is an empty range")
    if min(seeds) < 0:
        raise ReproduceError(f"--seeds {text}: seeds are >= 0")
    return seeds


def _parse_value(text: str):
    """A command-line value, read as YAML: ``3`` -> 3, ``0.5`` -> 0.5, ``[1, 2]`` -> [1, 2]."""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise ReproduceError(f"cannot read the value {text!r}: {err}") from None


def load_scales(book: Path = BOOK) -> dict:
    """``book/scales.yml``: ``{chapter stem: {scale name: {PARAMETER: value}}}``."""
    path = Path(book) / "scales.yml"
    return (yaml.safe_load(path.read_text()) or {}) if path.is_file() else {}


def resolve_parameters(
    chapters: list[Chapter],
    *,
    overrides: list[tuple[str, str]] = (),
    param_file=None,
    scale: str | None = None,
    scales: dict | None = None,
) -> dict[str, dict]:
    """The parameters each chapter runs with: scale preset, then the YAML file, then ``-p``.

    Raises
    ------
    ReproduceError
        An unknown scale, or a parameter that none of the selected chapters declares.
    """
    per_chapter: dict[str, dict] = {c.stem: {} for c in chapters}
    if scale is not None:
        scales = load_scales() if scales is None else scales
        defined = [c for c in chapters if scale in (scales.get(c.stem) or {})]
        if not defined:
            known = sorted({s for v in scales.values() for s in (v or {})})
            raise ReproduceError(
                f"no selected chapter defines the scale {scale!r} (book/scales.yml defines: "
                f"{', '.join(known) or 'none'})"
            )
        for c in defined:
            per_chapter[c.stem].update(scales[c.stem][scale] or {})

    def apply(name, value, targets, origin):
        if not _NAME.match(str(name)):
            raise ReproduceError(f"parameter names are UPPER_CASE, got {name!r} ({origin})")
        hit = [c for c in targets if name in c.defaults]
        if not hit:
            raise ReproduceError(
                f"no selected chapter has a parameter {name!r} ({origin}); "
                + "; ".join(f"{c.stem}: {', '.join(c.defaults)}" for c in targets)
            )
        for c in hit:
            per_chapter[c.stem][name] = value

    if param_file is not None:
        content = yaml.safe_load(Path(param_file).read_text()) or {}
        if not isinstance(content, dict):
            raise ReproduceError(f"{param_file} must hold a mapping of parameters")
        by_stem = {c.stem: c for c in chapters}
        for key, value in content.items():
            chapter = next((c for c in chapters if str(key) in (c.stem, c.number)), None)
            if isinstance(value, dict) and chapter is not None:
                for name, v in value.items():
                    apply(name, v, [by_stem[chapter.stem]], str(param_file))
            else:
                apply(key, value, chapters, str(param_file))
    for name, text in overrides:
        apply(name, _parse_value(text), chapters, f"-p {name}")
    return per_chapter


def make_tasks(chapters: list[Chapter], parameters: dict[str, dict], seeds=None) -> list[Task]:
    """One task per chapter (``seeds`` None) or per (chapter, seed) pair, chapter by chapter.

    Raises
    ------
    ReproduceError
        In a sweep, a chapter without a ``SEED`` parameter, or ``SEED`` also set by ``-p``, a
        parameters file or a scale.
    """
    if seeds is None:
        return [Task(c, None, dict(parameters[c.stem])) for c in chapters]
    tasks = []
    for c in chapters:
        if "SEED" not in c.defaults:
            raise ReproduceError(f"{c.stem} has no SEED parameter, so --seeds cannot sweep it")
        if "SEED" in parameters[c.stem]:
            raise ReproduceError(
                f"{c.stem}: SEED is set both by --seeds and by -p, -f or --scale; keep one"
            )
        tasks += [Task(c, int(s), {**parameters[c.stem], "SEED": int(s)}) for s in seeds]
    return tasks


def preflight(chapter: Chapter, parameters: dict) -> None:
    """Check a task's overrides against its chapter's spec, in-process, executing nothing.

    The chapter's defaults with ``parameters`` applied go through
    :meth:`ParameterSpec.check <ebmlib.book.parameters.ParameterSpec.check>`, the check the
    chapter's hidden ``check-parameters`` cell makes when it runs, so a bad value fails here with
    the same message. A chapter without a spec (not one of this book's) is checked by name only;
    its own cells check the values when it runs.

    Raises
    ------
    ReproduceError
        A name the chapter does not declare, or a value its spec refuses (the message names the
        chapter, the error's type and the parameter).
    """
    unknown = [name for name in parameters if name not in chapter.defaults]
    if unknown:
        raise ReproduceError(
            f"{chapter.stem} has no parameter {', '.join(map(repr, unknown))}; it declares: "
            + ", ".join(chapter.defaults)
        )
    spec = chapter.spec
    if spec is None:
        return
    try:
        spec.check({**chapter.defaults, **parameters})
    except (TypeError, ValueError) as err:  # the spec's message, naming the parameter
        raise ReproduceError(f"{chapter.stem}: {type(err).__name__}: {err}") from None


def source_revision(repo: Path = REPO) -> str | None:
    """The git commit of the book and library a run executes: ``"<sha>"``, ``"<sha>+dirty"`` when
    ``ebmlib/`` or ``book/`` has uncommitted changes, or None outside a git checkout."""

    def git(*args: str) -> str | None:
        try:
            proc = subprocess.run(
                ["git", *args], cwd=repo, capture_output=True, text=True, timeout=30
            )
        except (OSError, subprocess.TimeoutExpired):
            return None
        return proc.stdout.strip() if proc.returncode == 0 else None

    if not (repo / ".git").exists():
        return None
    sha = git("rev-parse", "HEAD")
    if not sha:
        return None
    dirty = git("status", "--porcelain", "--untracked-files=no", "--", "ebmlib", "book")
    return sha + ("+dirty" if dirty else "")


def environment() -> dict:
    """Versions, CPU, thread counts, date and source commit of this run (the client's machine)."""
    import numpy
    import torch

    from . import __version__

    info = {
        "ebmlib": __version__,
        "date": time.strftime("%Y-%m-%d"),
        "commit": source_revision(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
    }
    for module in ("scipy", "sklearn", "matplotlib", "papermill", "dask", "distributed"):
        try:
            info[module] = __import__(module).__version__
        except ImportError:
            pass
    cpu = platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    info["cpu"] = cpu or platform.machine()
    return info


def _write_atomic(path: Path, data: str | bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    if isinstance(data, bytes):
        tmp.write_bytes(data)
    else:
        tmp.write_text(data)
    os.replace(tmp, path)


# --------------------------------------------------------------------------------------------
# Worker side: what runs on a Dask worker. It needs the environment (papermill, ipykernel and
# what the chapters import), never the client's files: everything comes in the payload.
# --------------------------------------------------------------------------------------------

# Run by the worker as `python -c _CHILD source target parameters.json cwd error`, in a session
# of its own. It runs papermill in-process, writes a failing cell's error to `error`, and kills
# its kernel and itself if its parent (the worker) dies, so that no kernel outlives a worker.
_CHILD = r"""
import json, os, shutil, sys, threading, time
source, target, params, cwd, error = sys.argv[1:6]
_parent = os.getppid()
def _watch():
    while os.getppid() == _parent:
        time.sleep(0.5)
    try:
        import psutil
        for p in psutil.Process().children(recursive=True):
            p.kill()
        shutil.rmtree(cwd, ignore_errors=True)  # the worker's temporary folder
    finally:
        os._exit(1)
threading.Thread(target=_watch, daemon=True).start()
import papermill
with open(params) as f:
    parameters = json.load(f)
try:
    papermill.execute_notebook(source, target, parameters=parameters, cwd=cwd,
                               progress_bar=False, log_output=False)
except papermill.PapermillExecutionError as err:
    with open(error, "w") as f:
        f.write(f"cell {err.exec_count}: {err.ename}: {err.evalue}")
    sys.exit(1)
"""

_LOCK = threading.Lock()
_RUNNING: dict[str, dict[str, subprocess.Popen]] = {}  # run token -> {task key: process}
_STOPPED: set[str] = set()  # run tokens whose tasks are to stop


def _tree_rss(pid: int) -> int:
    import psutil

    try:
        proc = psutil.Process(pid)
        procs = [proc] + proc.children(recursive=True)
    except psutil.Error:
        return 0
    total = 0
    for p in procs:
        try:
            total += p.memory_info().rss
        except psutil.Error:
            pass
    return total


def _kill_tree(proc: subprocess.Popen) -> None:
    """Kill a task's process, its session and every descendant (the kernel has a session of its
    own); what they were writing is thrown away."""
    import psutil

    try:
        root = psutil.Process(proc.pid)
        procs = [root] + root.children(recursive=True)
    except psutil.Error:
        procs = []
    for p in procs:
        with contextlib.suppress(psutil.Error):
            p.kill()
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)


def _worker_threads() -> int:
    """Math threads per task when the client does not say: this machine's cores per slot."""
    try:
        from distributed import get_worker

        worker = get_worker()
        slots = getattr(getattr(worker, "state", worker), "nthreads", 1) or 1
    except (ImportError, ValueError):
        slots = 1
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, (cores or 1) // slots)


def _stop_run(token: str) -> int:
    """Stop every running task of the run ``token`` on this worker; the number stopped."""
    with _LOCK:
        _STOPPED.add(token)
        procs = list(_RUNNING.get(token, {}).values())
    for proc in procs:
        _kill_tree(proc)
    return len(procs)


def _write_payload(payload: dict, folder: Path) -> tuple[Path, Path, Path, Path]:
    """Write a task's notebook, its files and its parameters into ``folder``; return the paths of
    the notebook, the executed notebook to come, the parameters and the error file."""
    key = payload["key"]
    for relative, data in (payload.get("files") or {}).items():
        (folder / relative).parent.mkdir(parents=True, exist_ok=True)
        (folder / relative).write_bytes(data)
    source, target = folder / payload["name"], folder / f".{key}.executed.ipynb"
    source.write_bytes(payload["notebook"])
    params = folder / f".{key}.parameters.json"
    params.write_text(json.dumps(payload["parameters"], default=str))
    return source, target, params, folder / f".{key}.error.txt"


def _start_child(paths: tuple[Path, ...], folder: Path, threads: int) -> subprocess.Popen:
    """Start :data:`_CHILD` on a task's files, in a session of its own, with ``threads`` math
    threads; its stdout and stderr come through one pipe."""
    env = dict(
        os.environ,
        EBMLIB_PROGRESS="0",
        OMP_NUM_THREADS=str(threads),
        MKL_NUM_THREADS=str(threads),
    )
    source, target, params, error = paths
    command = [sys.executable, "-c", _CHILD, *map(str, (source, target, params, folder, error))]
    return subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        cwd=folder,
        start_new_session=True,
    )


def _supervise(proc: subprocess.Popen, token: str, timeout, started: float) -> tuple[int, bool]:
    """Wait for a task's process, killing it at its timeout or when its run is stopped; return its
    peak memory (bytes, of its process tree) and whether it timed out."""
    peak, timed_out = 0, False
    while proc.poll() is None:
        peak = max(peak, _tree_rss(proc.pid))
        if timeout and time.perf_counter() - started > timeout:
            timed_out = True
            _kill_tree(proc)
        elif token in _STOPPED:
            _kill_tree(proc)
        time.sleep(0.2)
    return peak, timed_out


def _run_task(payload: dict) -> dict:
    """Execute one notebook on this worker; return its record and the executed notebook's bytes.

    ``payload`` holds ``token`` (the run), ``key``, ``name`` (the notebook's file name),
    ``notebook`` (bytes), ``files`` ({relative path: bytes} written beside it), ``parameters``,
    ``threads`` (None: decided here) and ``timeout`` (seconds, None for no limit).
    """
    token, key = payload["token"], payload["key"]
    record = {
        "status": "interrupted",
        "seconds": None,
        "peak_memory_mb": None,
        "host": platform.node(),
    }
    if token in _STOPPED:
        return {"record": record, "notebook": None}
    timeout = payload.get("timeout")
    with tempfile.TemporaryDirectory(prefix="ebmlib-reproduce-") as tmp:
        paths = _write_payload(payload, Path(tmp))
        started = time.perf_counter()
        proc = _start_child(paths, Path(tmp), payload.get("threads") or _worker_threads())
        with _LOCK:
            _RUNNING.setdefault(token, {})[key] = proc
        captured: list[str] = []
        reader = threading.Thread(target=lambda: captured.append(proc.stdout.read()), daemon=True)
        reader.start()
        try:
            peak, timed_out = _supervise(proc, token, timeout, started)
        finally:
            proc.wait()
            reader.join(timeout=5)
            with _LOCK:
                _RUNNING.get(token, {}).pop(key, None)
        record["seconds"] = round(time.perf_counter() - started, 1)
        record["peak_memory_mb"] = round(peak / 2**20)
        target, error = paths[1], paths[3]
        notebook = target.read_bytes() if target.is_file() else None
        message = error.read_text() if error.is_file() else "".join(captured)
    if token in _STOPPED:
        return {"record": record, "notebook": None}
    if timed_out:
        record["status"] = "timed out"
        record["error"] = f"stopped after {timeout:g} s (--timeout)"
    elif proc.returncode == 0:
        record["status"] = "ok"
    else:
        record["status"] = "failed"
        record["error"] = (message or f"exit status {proc.returncode}")[-2000:]
    return {"record": record, "notebook": notebook}


# --------------------------------------------------------------------------------------------
# Client side: submit the tasks, write what comes back, summarize.
# --------------------------------------------------------------------------------------------


def _blank(task: Task, status: str) -> dict:
    return {
        "chapter": task.chapter.stem,
        "seed": task.parameters.get("SEED", task.chapter.defaults.get("SEED")),
        "parameters": json.loads(json.dumps(task.parameters, default=str)),
        "status": status,
        "seconds": None,
        "peak_memory_mb": None,
        "claims": None,
    }


def _resumable(task: Task, folder: Path) -> dict | None:
    """The record of a pair that already ran to its end with the same parameters, or None.

    A run whose claims failed counts as finished (its notebook is ``<key>.failed.ipynb``): in a
    sweep a failed claim is a result, and the same commit and parameters would give it again.
    A run that stopped with an error, timed out or was lost runs again."""
    done = folder / f"{task.key}.json"
    if not done.is_file():
        return None
    previous = json.loads(done.read_text())
    if previous.get("parameters") != _blank(task, "")["parameters"]:
        return None
    status = previous.get("status")
    if status == "ok" and (folder / f"{task.key}.ipynb").is_file():
        return dict(previous, status="ok (resumed)")
    if status == "claims failed" and (folder / f"{task.key}.failed.ipynb").is_file():
        return dict(previous, status="claims failed (resumed)")
    return None


def _collect(future, task: Task, folder: Path) -> dict:
    """The record of a finished future; writes its notebook and ``<key>.json`` into ``folder``."""
    from distributed.scheduler import KilledWorker

    record, notebook = _blank(task, "failed"), None
    if future.status == "finished":
        result = future.result()
        record.update(result["record"])
        notebook = result.get("notebook")
    elif future.status == "error":
        err = future.exception()
        if isinstance(err, KilledWorker):
            record["status"] = "worker died"
            record["error"] = f"the worker running it died (no retry): {err}"[:2000]
        else:
            record["error"] = f"{type(err).__name__}: {err}"[:2000]
    else:
        record["status"] = "lost"
        record["error"] = f"the scheduler reports the task as {future.status}"
    if notebook is not None:
        with contextlib.suppress(ValueError, KeyError, TypeError):
            record["claims"] = read_claims(notebook)
    claims = record["claims"] or []
    if record["status"] == "failed" and any(not c["held"] for c in claims):
        record["status"] = "claims failed"
    done, failed = folder / f"{task.key}.ipynb", folder / f"{task.key}.failed.ipynb"
    if record["status"] == "ok":
        _write_atomic(done, notebook)
        failed.unlink(missing_ok=True)
    elif record["status"] != "interrupted":
        done.unlink(missing_ok=True)  # an older run's notebook, with other parameters
        if notebook is not None:
            _write_atomic(failed, notebook)
    if record["status"] != "interrupted":
        _write_atomic(folder / f"{task.key}.json", json.dumps(record, indent=2, default=str))
    return record


def _connect(scheduler: str | None, jobs: int):
    """A Dask client: on a fresh LocalCluster of ``jobs`` workers, or on ``scheduler``."""
    import dask
    from distributed import Client, LocalCluster

    if scheduler is None:
        # Each worker only drives a papermill subprocess, so threads suffice: no worker process
        # to start, nothing to import twice. A dead task is failed, never handed on.
        # One task per worker thread at a time (saturation 1), so a worker never holds a queued
        # task that its death would fail too.
        config = {
            "distributed.scheduler.allowed-failures": 0,
            "distributed.scheduler.worker-saturation": 1.0,
        }
        with dask.config.set(config):
            cluster = LocalCluster(
                n_workers=jobs,
                threads_per_worker=1,
                processes=False,
                dashboard_address=None,
                # no dashboard; the scheduler's HTTP routes on a free loopback port, not on 8787
                scheduler_kwargs={"dashboard": False, "dashboard_address": "127.0.0.1:0"},
                silence_logs=logging.ERROR,
            )
        return Client(cluster), cluster
    try:
        return Client(scheduler, timeout="20s"), None
    except (OSError, TimeoutError, ValueError) as err:
        raise ReproduceError(f"cannot reach the Dask scheduler at {scheduler}: {err}") from None


def run(
    chapters: list[Chapter],
    parameters: dict[str, dict],
    *,
    out: Path,
    run_id: str,
    jobs: int = 1,
    seeds=None,
    resume: bool = False,
    scheduler: str | None = None,
    timeout: float | None = DEFAULT_TIMEOUT,
    files: dict[str, bytes] | None = None,
    progress: bool | None = None,
    stop: threading.Event | None = None,
) -> list[dict]:
    """Execute ``chapters`` (at each of ``seeds``) on Dask into ``out/run_id``; one record a task.

    Parameters
    ----------
    chapters, parameters
        The chapters and their overrides (:func:`resolve_parameters`), already preflighted.
    out, run_id
        The run's folder is ``out/run_id``.
    jobs : int
        Workers of the LocalCluster (ignored with ``scheduler``).
    seeds : iterable of int, optional
        A sweep: one task per (chapter, seed), with ``SEED`` set (:func:`make_tasks`).
    resume : bool
        Skip the pairs already finished in that folder with the same parameters.
    scheduler : str, optional
        The address of a running Dask scheduler (``tcp://host:8786``) instead of a LocalCluster.
    timeout : float or None
        Seconds a task may run before it is stopped ("timed out"); None for no limit.
    files : dict, optional
        ``{path relative to the book: bytes}`` written beside every notebook on the worker, for
        chapters that read files next to themselves (none of the book's do).
    progress : bool, optional
        A progress bar (default: unless ``EBMLIB_PROGRESS=0``).
    stop : threading.Event, optional
        Set it (from a signal handler, say) to stop the run as Ctrl-C does: the client checks it
        between polls, so the stop never lands inside a Dask call.

    Returns
    -------
    list of dict
        One record per task, in task order (see ``summary.json``).

    Raises
    ------
    KeyboardInterrupt
        After an interrupt has cancelled the pending tasks, stopped the running ones and written
        the summary with the finished ones.
    ReproduceError
        The scheduler cannot be reached (before anything is written).
    """
    tasks = make_tasks(chapters, parameters, seeds)
    folder = Path(out) / run_id
    records, todo = _resumed(tasks, folder) if resume else ({}, list(tasks))
    jobs = max(1, min(jobs, len(todo) or 1))
    client, cluster = _connect(scheduler, jobs) if todo else (None, None)
    folder.mkdir(parents=True, exist_ok=True)
    env, engine = environment(), _engine(scheduler, jobs, timeout, seeds)
    if not scheduler:  # a local cluster: each task's math threads (see _execute)
        env["worker_threads"] = max(1, (os.cpu_count() or 1) // jobs)
    interrupted = False
    try:
        if todo:
            engine["workers"] = _count_workers(client, scheduler)
            _execute(client, todo, folder, records, jobs, scheduler, timeout, files, progress, stop)
    except KeyboardInterrupt:
        interrupted = True
    finally:
        blank = "interrupted" if interrupted else "not run"
        ordered = [records.get(t.key) or _blank(t, blank) for t in tasks]
        _write_summary(folder, run_id, ordered, engine, env)
        _close(client, cluster)
    if interrupted:
        raise KeyboardInterrupt
    return ordered


def _engine(scheduler: str | None, jobs: int, timeout, seeds) -> dict:
    """How a run executes, as the summary records it."""
    return {
        "scheduler": scheduler or f"local Dask cluster, {jobs} worker(s)",
        "timeout_s": timeout,
        "seeds": None if seeds is None else list(seeds),
    }


def _count_workers(client, scheduler: str | None) -> int:
    """The cluster's workers now; a note when an existing cluster has none yet."""
    workers = len(client.nthreads())
    if scheduler and not workers:
        print(f"note: {scheduler} has no workers yet; the tasks wait for some", flush=True)
    return workers


def _check_same_commit(folder: Path) -> None:
    """Refuse to resume a run made at another commit: its results would mix two versions of the
    code. (Two runs on the same commit with uncommitted changes, ``<sha>+dirty``, cannot be told
    apart: a sweep the book publishes is run on a clean checkout.)"""
    summary = folder / "summary.json"
    if not summary.is_file():
        return
    before = json.loads(summary.read_text()).get("environment", {}).get("commit")
    now = source_revision()
    if before != now:
        raise ReproduceError(
            f"refusing to resume {folder.name}: it was run at commit {before}, and this is "
            f"{now}; a sweep mixes no two versions of the code. Commit your changes and start "
            "a new --run-id (or remove the folder)"
        )


def _resumed(tasks: list[Task], folder: Path) -> tuple[dict[str, dict], list[Task]]:
    """The records of the tasks already finished in ``folder`` with the same parameters, by key,
    and the tasks still to run. Raises :class:`ReproduceError` when the run in ``folder`` was made
    from another commit."""
    _check_same_commit(folder)
    records, todo = {}, []
    for task in tasks:
        previous = _resumable(task, folder)
        if previous is not None:
            records[task.key] = previous
        else:
            todo.append(task)
    return records, todo


def _write_summary(folder: Path, run_id: str, ordered: list[dict], engine: dict, env: dict):
    """Write ``summary.json`` and ``summary.md`` of a run's records, in task order."""
    summary = {
        "run_id": run_id,
        "chapters": ordered,
        "robustness": robustness(ordered),
        "engine": engine,
        "environment": env,
    }
    _write_atomic(folder / "summary.json", json.dumps(summary, indent=2, default=str))
    _write_atomic(folder / "summary.md", _summary_markdown(run_id, ordered, env, engine))


def _close(client, cluster) -> None:
    """Close the Dask client and the LocalCluster (either may be None), ignoring errors."""
    if client is not None:
        with contextlib.suppress(Exception):
            client.close(timeout=10)
    if cluster is not None:
        with contextlib.suppress(Exception):
            cluster.close(timeout=10)


def _execute(
    client, todo, folder, records, jobs, scheduler, timeout, files, progress, stop=None
) -> None:
    token = uuid.uuid4().hex[:12]
    threads = None if scheduler else max(1, (os.cpu_count() or 1) // jobs)
    shipped: dict[str, bytes] = {}
    futures = {}
    for i, task in enumerate(todo):
        stem = task.chapter.stem
        if stem not in shipped:
            shipped[stem] = task.chapter.stripped()
        payload = {
            "token": token,
            "key": task.key,
            "name": task.chapter.path.name,
            "notebook": shipped[stem],
            "files": dict(files or {}),
            "parameters": task.parameters,
            "threads": threads,
            "timeout": timeout,
        }
        future = client.submit(
            _run_task,
            payload,
            key=f"ebmlib-reproduce-{token}-{task.key}",
            pure=False,
            retries=0,
            priority=len(todo) - i,  # in order: chapter by chapter, seed by seed
        )
        futures[future] = task
    bar = None
    if progress_enabled(progress):
        from tqdm import tqdm

        bar = tqdm(total=len(futures), desc="tasks", leave=False, dynamic_ncols=True)
    pending = dict(futures)
    first_seen: dict[str, float] = {}
    last_check = 0.0
    try:
        while pending:
            if stop is not None and stop.is_set():
                raise KeyboardInterrupt
            finished = [f for f in pending if f.done()]
            for future in finished:
                task = pending.pop(future)
                record = _collect(future, task, folder)
                records[task.key] = record
                seconds = "" if record["seconds"] is None else f" ({record['seconds']} s)"
                print(f"{task.key}: {record['status']}{seconds}", flush=True)
                if bar is not None:
                    bar.update()
            if finished:
                continue
            time.sleep(0.2)
            if timeout and time.monotonic() - last_check > 2:
                last_check = time.monotonic()
                _give_up_silent(client, pending, first_seen, timeout, folder, records)
    except KeyboardInterrupt:
        client.cancel(list(pending), force=True)
        with contextlib.suppress(Exception):
            client.run(_stop_run, token, wait=True)
        raise
    finally:
        if bar is not None:
            bar.close()


def _give_up_silent(client, pending, first_seen, timeout, folder, records) -> None:
    """Fail the tasks a worker has held for longer than twice their timeout plus a grace."""
    try:
        processing = client.processing()
    except Exception:  # the scheduler is busy or gone: try again later
        return
    now = time.monotonic()
    running = {str(k) for keys in processing.values() for k in keys}
    for future, task in list(pending.items()):
        key = str(future.key)
        if key in running:
            first_seen.setdefault(key, now)
        if key in first_seen and now - first_seen[key] > 2 * timeout + _GRACE:
            future.cancel()
            pending.pop(future)
            record = _blank(task, "timed out")
            record["error"] = f"no answer from its worker within 2 x {timeout:g} s + {_GRACE:g} s"
            _write_atomic(folder / f"{task.key}.json", json.dumps(record, indent=2, default=str))
            records[task.key] = record
            print(f"{task.key}: timed out", flush=True)


def robustness(records: list[dict]) -> list[dict]:
    """For each chapter's claim, at how many of the executed pairs it held, and for a claim that
    records a margin (:meth:`~ebmlib.book.Claims.less`, :meth:`~ebmlib.book.Claims.greater`) its
    test (``"< 3"``, from the first pair; a threshold computed from the data varies by seed) and
    the smallest and median margin across the pairs, in the statistic's units.

    Pairs that did not run to an end (interrupted, timed out, worker died) are left out; a pair
    that ran but recorded no outcome for the claim (it failed before ``Claims.verify``) counts
    as not held and is listed under ``missing_seeds``.
    """
    rows = []
    for chapter in dict.fromkeys(r["chapter"] for r in records):
        runs = [r for r in records if r["chapter"] == chapter and r["status"] in _EXECUTED]
        names = dict.fromkeys(c["name"] for r in runs for c in (r.get("claims") or []))
        for name in names:
            outcome, margins, test = {}, [], None
            for r in runs:
                found = [c for c in (r.get("claims") or []) if c["name"] == name]
                outcome[r["seed"]] = found[0]["held"] if found else None
                if found and found[0].get("margin") is not None:
                    margins.append(found[0]["margin"])
                    test = test or f"{found[0]['relation']} {found[0]['bound']:.4g}"
            n_held = sum(1 for v in outcome.values() if v is True)
            margins.sort()
            rows.append(
                {
                    "chapter": chapter,
                    "claim": name,
                    "held": n_held,
                    "runs": len(runs),
                    "fraction": n_held / len(runs),
                    "failed_seeds": [s for s, v in outcome.items() if v is False],
                    "missing_seeds": [s for s, v in outcome.items() if v is None],
                    "test": test,
                    "margin_min": margins[0] if margins else None,
                    "margin_median": _median(margins),
                }
            )
    return rows


def _median(values: list[float]) -> float | None:
    """The median of sorted ``values``; None when empty."""
    if not values:
        return None
    mid = len(values) // 2
    return values[mid] if len(values) % 2 else 0.5 * (values[mid - 1] + values[mid])


def _cell(text) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _summary_markdown(run_id: str, records: list[dict], env: dict, engine: dict) -> str:
    sweep = engine.get("seeds") is not None
    head = ["chapter"] + (["seed"] if sweep else []) + ["status", "wall time", "peak memory"]
    head += ["claims held", "parameters"]
    lines = [
        f"# Reproduction run `{run_id}`",
        "",
        f"Engine: {engine['scheduler']}; per-task timeout "
        + (f"{engine['timeout_s']:g} s." if engine.get("timeout_s") else "none."),
        "",
        "| " + " | ".join(head) + " |",
        "|" + "---|" * len(head),
    ]
    for r in records:
        params = {k: v for k, v in r["parameters"].items() if not (sweep and k == "SEED")}
        shown = ", ".join(f"{k}={v}" for k, v in params.items()) or "defaults"
        claims = r.get("claims")
        held = "" if claims is None else f"{sum(c['held'] for c in claims)}/{len(claims)}"
        row = [r["chapter"]] + ([r["seed"]] if sweep else []) + [r["status"]]
        row += ["" if r["seconds"] is None else f"{r['seconds']:.1f} s"]
        row += ["" if r["peak_memory_mb"] is None else f"{r['peak_memory_mb']} MB", held, shown]
        lines.append("| " + " | ".join(_cell(x) for x in row) + " |")
    failed = [(r, c) for r in records for c in (r.get("claims") or []) if not c["held"]]
    if failed and not sweep:
        lines += ["", "## Failed claims", ""]
        lines += [
            f"- {r['chapter']}: {c['name']}" + (f" ({c['detail']})" if c["detail"] else "")
            for r, c in failed
        ]
    if sweep:
        rows = robustness(records)
        lines += ["", "## Robustness across seeds", ""]
        if rows:
            lines += [
                "For each claim, the fraction of seeds at which it held (pairs that did not run "
                "to an end are left out).",
                "",
                "| chapter | claim | held | fraction | failed at SEED |",
                "|---|---|---|---|---|",
            ]
            for row in rows:
                where = ", ".join(map(str, row["failed_seeds"]))
                if row["missing_seeds"]:
                    missing = ", ".join(map(str, row["missing_seeds"]))
                    where += ("; " if where else "") + f"not recorded at {missing}"
                lines.append(
                    f"| {row['chapter']} | {_cell(row['claim'])} | {row['held']}/{row['runs']} "
                    f"| {row['fraction']:.2f} | {where} |"
                )
        else:
            lines.append("No claims were recorded (the chapters use no `Claims`).")
        lines += [
            "",
            "## Cost per chapter",
            "",
            "| chapter | runs | mean wall time | max wall time | max peak memory |",
            "|---|---|---|---|---|",
        ]
        for chapter in dict.fromkeys(r["chapter"] for r in records):
            timed = [r for r in records if r["chapter"] == chapter and r["seconds"] is not None]
            if not timed:
                continue
            seconds = [r["seconds"] for r in timed]
            memory = max(r["peak_memory_mb"] or 0 for r in timed)
            lines.append(
                f"| {chapter} | {len(timed)} | {sum(seconds) / len(seconds):.1f} s | "
                f"{max(seconds):.1f} s | {memory} MB |"
            )
    lines += ["", "Environment: " + ", ".join(f"{k} {v}" for k, v in env.items()), ""]
    return "\n".join(lines)


def _parser() -> argparse.ArgumentParser:
    """The command line of ``python -m ebmlib.reproduce``."""
    parser = argparse.ArgumentParser(
        prog="python -m ebmlib.reproduce",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("chapters", nargs="*", help="chapter numbers or names (default: all)")
    parser.add_argument(
        "-p",
        "--parameter",
        nargs=2,
        action="append",
        default=[],
        metavar=("NAME", "VALUE"),
        help="override a parameter (value read as YAML)",
    )
    parser.add_argument("-f", "--parameters-file", help="YAML file of parameters")
    parser.add_argument("--scale", help="a preset from book/scales.yml, e.g. 'paper'")
    parser.add_argument(
        "--seeds",
        metavar="START:STOP[:STEP]",
        help="sweep SEED over range(START, STOP, STEP): one task per (chapter, seed)",
    )
    parser.add_argument(
        "--jobs", type=int, default=1, help="workers of the local Dask cluster (default 1)"
    )
    parser.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        help="run on an existing Dask cluster, e.g. tcp://10.0.0.5:8786 (then --jobs is unused)",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_TIMEOUT,
        help=f"seconds one task may run before it is stopped; 0: no limit "
        f"(default {DEFAULT_TIMEOUT:g})",
    )
    parser.add_argument("--run-id", default=None, help="output folder name (default: a timestamp)")
    parser.add_argument(
        "--resume", action="store_true", help="skip pairs already finished in --run-id"
    )
    parser.add_argument(
        "--out",
        default=None,
        help="parent folder of the runs (default: outputs/ beside the book folder)",
    )
    parser.add_argument(
        "--book",
        default=None,
        help="folder of the NN_*.ipynb chapters (default: the repository's book/, or ./book)",
    )
    return parser


def _default_book() -> Path:
    """The repository's ``book/`` when ebmlib runs from a checkout, else ``./book``."""
    return BOOK if BOOK.is_dir() else Path.cwd() / "book"


def _plan(args: argparse.Namespace) -> tuple[list[Chapter], dict[str, dict], range | None, Path]:
    """Check the command line, the chapters, their parameters and every task's values.

    Returns the chapters, their parameters, the seeds (None outside a sweep) and the parent
    folder of the runs; raises :class:`ReproduceError` before anything runs or is written.
    """
    if args.jobs < 1:
        raise ReproduceError(f"--jobs must be >= 1, got {args.jobs}")
    if args.timeout < 0:
        raise ReproduceError(f"--timeout must be >= 0, got {args.timeout:g}")
    if args.resume and not args.run_id:
        raise ReproduceError("--resume needs the --run-id of the run to continue")
    seeds = None if args.seeds is None else parse_seeds(args.seeds)
    book = Path(args.book).resolve() if args.book is not None else _default_book()
    out = Path(args.out).resolve() if args.out is not None else book.parent / "outputs"
    if out == book or book in out.parents:
        raise ReproduceError(
            f"--out {out} lies inside the book folder; executed chapters never go there"
        )
    found = find_chapters(book)
    if not found:
        raise ReproduceError(
            f"no chapters (NN_*.ipynb) in {book}: run from a clone of the book's repository, "
            "or point --book at the folder that holds the chapter notebooks"
        )
    chapters = select(found, args.chapters)
    parameters = resolve_parameters(
        chapters,
        overrides=[tuple(p) for p in args.parameter],
        param_file=args.parameters_file,
        scale=args.scale,
        scales=load_scales(book),
    )
    for task in make_tasks(chapters, parameters, seeds):
        preflight(task.chapter, task.parameters)
    return chapters, parameters, seeds, out


def _run_until_stopped(args, chapters, parameters, seeds, out: Path, run_id: str):
    """:func:`run`, with Ctrl-C and SIGTERM turned into a stop; None when interrupted."""
    # Ctrl-C and a killed job (SIGTERM) set a flag that the client checks between polls, so the
    # stop never lands inside a Dask call: running tasks are stopped, finished ones kept
    stop = threading.Event()
    previous = {
        sig: signal.signal(sig, lambda signum, frame: stop.set())
        for sig in (signal.SIGINT, signal.SIGTERM)
    }
    try:
        return run(
            chapters,
            parameters,
            out=out,
            run_id=run_id,
            jobs=args.jobs,
            seeds=seeds,
            resume=args.resume,
            scheduler=args.scheduler,
            timeout=args.timeout or None,
            stop=stop,
        )
    except KeyboardInterrupt:
        print(
            f"interrupted: finished tasks are kept; continue with --run-id {run_id} --resume",
            file=sys.stderr,
        )
        return None
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def main(argv: list[str] | None = None) -> int:
    """The command line (see the module's docstring); returns the exit status: 0 when every task
    finished with its claims held, 1 when some did not, 2 for a bad request (nothing ran), 130
    when interrupted."""
    args = _parser().parse_args(argv)
    try:
        chapters, parameters, seeds, out = _plan(args)
        n_tasks = len(make_tasks(chapters, parameters, seeds))
        run_id = args.run_id or time.strftime("%Y%m%d-%H%M%S")
        where = (
            f"the Dask cluster at {args.scheduler}"
            if args.scheduler
            else f"a local Dask cluster of {min(args.jobs, n_tasks)} worker(s)"
        )
        print(f"running {n_tasks} task(s) into {out / run_id} on {where}", flush=True)
        records = _run_until_stopped(args, chapters, parameters, seeds, out, run_id)
    except ReproduceError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if records is None:
        return 130
    print((out / run_id / "summary.md").read_text())
    return 0 if all(r["status"].startswith("ok") for r in records) else 1


if __name__ == "__main__":
    # Run from the importable module, not __main__, so that tasks pickle by reference.
    from ebmlib import reproduce

    sys.exit(reproduce.main())
