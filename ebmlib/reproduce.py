r"""Re-run the book's chapters through papermill: ``python -m ebmlib.reproduce`` (``make reproduce`` runs them all).

Examples
--------
Every chapter at its defaults, two at a time::

    python -m ebmlib.reproduce --jobs 2

Chapter 9 at the larger "paper" scale defined in ``book/scales.yml``, with one parameter overridden::

    python -m ebmlib.reproduce 09 --scale paper -p SEED 1

Parameters in a YAML file, either flat (``{N_RUNS: 200}``, applied to every selected chapter that declares the
name) or by chapter (``{09_head_to_head: {N_RUNS: 200}}``)::

    python -m ebmlib.reproduce 08 09 -f params.yaml

What it guarantees
------------------
* Nothing runs until every chapter name, parameter name and parameter value has been checked: each chapter's
  parameters cell and its validation cell (the second code cell) are executed in-process with the overrides, so a
  bad value fails at once with the chapter's own message.
* Executed notebooks go to ``outputs/<run-id>/`` (ignored by git), never into ``book/``. Each one is written to a
  temporary name and renamed when it has finished, so a file ``<chapter>.ipynb`` there is always complete; a failed
  chapter leaves ``<chapter>.failed.ipynb``.
* ``--resume`` with the same ``--run-id`` skips the chapters that already finished with the same parameters, so an
  interrupted run (Ctrl-C, a killed job) continues where it stopped.
* ``summary.md`` and ``summary.json`` record, for each chapter, the status, wall time, peak memory of its process
  tree and parameters, and the environment: package versions, CPU, thread counts.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import platform
import re
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

import yaml

from ._progress import progress_bar

__all__ = ["Chapter", "find_chapters", "resolve_parameters", "preflight", "run", "main"]

REPO = Path(__file__).resolve().parent.parent
BOOK = REPO / "book"
_NAME = re.compile(r"^[A-Z][A-Z0-9_]*$")


class ReproduceError(ValueError):
    """A bad chapter name, parameter, scale or output folder, reported before anything runs."""


class Chapter:
    """A chapter notebook ``NN_topic.ipynb`` and its declared (UPPER_CASE) parameters with their defaults."""

    def __init__(self, path: Path):
        import nbformat
        self.path = Path(path)
        self.stem = self.path.stem
        self.number = self.stem.split("_", 1)[0]
        nb = nbformat.read(self.path, as_version=4)
        # Hidden set-up cells (the Colab install cell, tagged remove-cell) are not the chapter's code.
        self.code = [c.source for c in nb.cells
                     if c.cell_type == "code" and "remove-cell" not in c.metadata.get("tags", [])]
        first = next((c for c in nb.cells if c.cell_type == "code"), None)
        if first is None or "parameters" not in first.metadata.get("tags", []):
            raise ReproduceError(f"{self.path.name}: its first code cell must be tagged 'parameters'")
        namespace: dict = {}
        exec(compile(first.source, f"{self.stem}[parameters]", "exec"), namespace)
        self.defaults = {k: v for k, v in namespace.items() if _NAME.match(k)}

    def __repr__(self) -> str:
        return f"Chapter({self.stem})"


def find_chapters(book: Path = BOOK) -> list[Chapter]:
    """Every ``NN_*.ipynb`` in ``book``, in order."""
    return [Chapter(p) for p in sorted(Path(book).glob("[0-9][0-9]_*.ipynb"))]


def select(chapters: list[Chapter], names: list[str]) -> list[Chapter]:
    """Chapters by number (``9``, ``09``), stem (``09_head_to_head``) or path; all of them for no names."""
    if not names:
        return list(chapters)
    chosen = []
    for name in names:
        key = Path(name).stem
        match = [c for c in chapters if key in (c.stem, c.number) or (key.isdigit() and int(key) == int(c.number))]
        if not match:
            raise ReproduceError(f"no chapter {name!r}; choose from: {', '.join(c.stem for c in chapters)}")
        chosen.extend(c for c in match if c not in chosen)
    return chosen


def _parse_value(text: str):
    """A command-line value, read as YAML: ``3`` -> 3, ``0.5`` -> 0.5, ``[1, 2]`` -> [1, 2], ``abc`` -> 'abc'."""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise ReproduceError(f"cannot read the value {text!r}: {err}") from None


def load_scales(book: Path = BOOK) -> dict:
    """``book/scales.yml``: ``{chapter stem: {scale name: {PARAMETER: value}}}``."""
    path = Path(book) / "scales.yml"
    return (yaml.safe_load(path.read_text()) or {}) if path.is_file() else {}


def resolve_parameters(chapters: list[Chapter], *, overrides: list[tuple[str, str]] = (), param_file=None,
                       scale: str | None = None, scales: dict | None = None) -> dict[str, dict]:
    """The parameters each chapter runs with: scale preset, then the YAML file, then ``-p`` overrides.

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
            raise ReproduceError(f"no selected chapter defines the scale {scale!r} (book/scales.yml defines: "
                                 f"{', '.join(known) or 'none'})")
        for c in defined:
            per_chapter[c.stem].update(scales[c.stem][scale] or {})

    def apply(name, value, targets, origin):
        if not _NAME.match(str(name)):
            raise ReproduceError(f"parameter names are UPPER_CASE, got {name!r} ({origin})")
        hit = [c for c in targets if name in c.defaults]
        if not hit:
            raise ReproduceError(f"no selected chapter has a parameter {name!r} ({origin}); "
                                 + "; ".join(f"{c.stem}: {', '.join(c.defaults)}" for c in targets))
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


def preflight(chapter: Chapter, parameters: dict) -> None:
    """Run the chapter's parameters cell, the overrides and its validation cell in-process; re-raise with context."""
    import matplotlib
    matplotlib.use("Agg")
    namespace: dict = {}
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            exec(compile(chapter.code[0], f"{chapter.stem}[parameters]", "exec"), namespace)
            namespace.update(parameters)
            if len(chapter.code) > 1:
                exec(compile(chapter.code[1], f"{chapter.stem}[validation]", "exec"), namespace)
    except Exception as err:          # the chapter's own message, named
        raise ReproduceError(f"{chapter.stem}: {type(err).__name__}: {err}") from None


def environment() -> dict:
    """Versions, CPU and thread counts of this run."""
    import numpy
    import torch
    info = {"python": platform.python_version(), "platform": platform.platform(), "torch": torch.__version__,
            "numpy": numpy.__version__, "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads()}
    for module in ("scipy", "sklearn", "matplotlib", "papermill"):
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


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


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


class _Runner:
    def __init__(self, out: Path, threads: int):
        self.out, self.threads = out, threads
        self.procs: dict[str, subprocess.Popen] = {}
        self.stopping = threading.Event()

    def execute(self, chapter: Chapter, parameters: dict) -> dict:
        record = {"chapter": chapter.stem, "parameters": parameters, "status": "interrupted", "seconds": None,
                  "peak_memory_mb": None}
        if self.stopping.is_set():
            return record
        partial = self.out / f".{chapter.stem}.partial.ipynb"
        params_file = self.out / f".{chapter.stem}.params.yaml"
        params_file.write_text(yaml.safe_dump(parameters))
        env = dict(os.environ, EBMLIB_PROGRESS="0", OMP_NUM_THREADS=str(self.threads),
                   MKL_NUM_THREADS=str(self.threads))
        command = [sys.executable, "-m", "papermill", str(chapter.path), str(partial), "-f", str(params_file),
                   "--cwd", str(chapter.path.parent), "--no-progress-bar", "--log-level", "ERROR"]
        started = time.perf_counter()
        proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                                start_new_session=True)
        self.procs[chapter.stem] = proc
        peak = 0
        reader = threading.Thread(target=lambda: setattr(proc, "captured", proc.stdout.read()), daemon=True)
        reader.start()
        while proc.poll() is None:
            peak = max(peak, _tree_rss(proc.pid))
            time.sleep(0.2)
        reader.join()
        self.procs.pop(chapter.stem, None)
        record["seconds"] = round(time.perf_counter() - started, 1)
        record["peak_memory_mb"] = round(peak / 2 ** 20)
        params_file.unlink(missing_ok=True)
        if proc.returncode == 0:
            os.replace(partial, self.out / f"{chapter.stem}.ipynb")
            record["status"] = "ok"
        elif self.stopping.is_set():
            partial.unlink(missing_ok=True)
        else:
            if partial.exists():
                os.replace(partial, self.out / f"{chapter.stem}.failed.ipynb")
            record["status"] = "failed"
            record["error"] = (getattr(proc, "captured", "") or "")[-2000:]
        _write_atomic(self.out / f"{chapter.stem}.json", json.dumps(record, indent=2, default=str))
        return record

    def stop(self) -> None:
        self.stopping.set()
        for proc in list(self.procs.values()):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)


def _summary_markdown(run_id: str, records: list[dict], env: dict) -> str:
    lines = [f"# Reproduction run `{run_id}`", "", "| chapter | status | wall time | peak memory | parameters |",
             "|---|---|---|---|---|"]
    for r in records:
        params = ", ".join(f"{k}={v}" for k, v in r["parameters"].items()) or "defaults"
        seconds = "" if r["seconds"] is None else f"{r['seconds']:.1f} s"
        memory = "" if r["peak_memory_mb"] is None else f"{r['peak_memory_mb']} MB"
        lines.append(f"| {r['chapter']} | {r['status']} | {seconds} | {memory} | {params} |")
    lines += ["", "Environment: " + ", ".join(f"{k} {v}" for k, v in env.items()), ""]
    return "\n".join(lines)


def run(chapters: list[Chapter], parameters: dict[str, dict], *, out: Path, run_id: str, jobs: int = 1,
        resume: bool = False, progress: bool | None = None) -> list[dict]:
    """Execute ``chapters`` with their ``parameters`` into ``out/run_id``; returns one record per chapter.

    Chapters already finished in that folder with the same parameters are skipped when ``resume`` is true. On
    KeyboardInterrupt the running chapters are stopped, the summary is written, and the interrupt is re-raised.
    """
    folder = Path(out) / run_id
    folder.mkdir(parents=True, exist_ok=True)
    records: dict[str, dict] = {}
    todo = []
    for c in chapters:
        done = folder / f"{c.stem}.json"
        if resume and done.is_file() and (folder / f"{c.stem}.ipynb").is_file():
            previous = json.loads(done.read_text())
            if previous.get("status") == "ok" and previous.get("parameters") == json.loads(
                    json.dumps(parameters[c.stem], default=str)):
                records[c.stem] = dict(previous, status="ok (resumed)")
                continue
        todo.append(c)
    jobs = max(1, min(jobs, len(todo) or 1))
    runner = _Runner(folder, threads=max(1, (os.cpu_count() or 1) // jobs))
    env = environment()
    interrupted = False
    pool = ThreadPoolExecutor(max_workers=jobs)
    futures: dict = {}
    try:
        futures = {pool.submit(runner.execute, c, parameters[c.stem]): c for c in todo}
        for future in progress_bar(as_completed(futures), total=len(futures), desc="chapters", progress=progress):
            record = future.result()
            records[record["chapter"]] = record
            print(f"{record['chapter']}: {record['status']} ({record['seconds']} s)", flush=True)
    except KeyboardInterrupt:
        interrupted = True
        runner.stop()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        for future in futures:              # chapters that finished while the interrupt was handled
            if future.done() and not future.cancelled() and future.exception() is None:
                record = future.result()
                records.setdefault(record["chapter"], record)
        ordered = [records.get(c.stem) or {"chapter": c.stem, "parameters": parameters[c.stem],
                                           "status": "interrupted" if interrupted else "not run", "seconds": None,
                                           "peak_memory_mb": None} for c in chapters]
        _write_atomic(folder / "summary.json", json.dumps({"run_id": run_id, "chapters": ordered,
                                                           "environment": env}, indent=2, default=str))
        _write_atomic(folder / "summary.md", _summary_markdown(run_id, ordered, env))
    if interrupted:
        raise KeyboardInterrupt
    return ordered


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ebmlib.reproduce", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("chapters", nargs="*", help="chapter numbers or names (default: all)")
    parser.add_argument("-p", "--parameter", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"),
                        help="override a parameter (value read as YAML)")
    parser.add_argument("-f", "--parameters-file", help="YAML file of parameters")
    parser.add_argument("--scale", help="a preset from book/scales.yml, e.g. 'paper'")
    parser.add_argument("--jobs", type=int, default=1, help="chapters run in parallel (default 1)")
    parser.add_argument("--run-id", default=None, help="output folder name (default: a timestamp)")
    parser.add_argument("--resume", action="store_true", help="skip chapters already finished in --run-id")
    parser.add_argument("--out", default=str(REPO / "outputs"), help="parent folder of the runs (default outputs/)")
    parser.add_argument("--book", default=str(BOOK), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    try:
        if args.jobs < 1:
            raise ReproduceError(f"--jobs must be >= 1, got {args.jobs}")
        if args.resume and not args.run_id:
            raise ReproduceError("--resume needs the --run-id of the run to continue")
        book, out = Path(args.book).resolve(), Path(args.out).resolve()
        if out == book or book in out.parents:
            raise ReproduceError(f"--out {out} lies inside the book folder; executed chapters never go there")
        chapters = select(find_chapters(book), args.chapters)
        if not chapters:
            raise ReproduceError(f"no chapters found in {book}")
        parameters = resolve_parameters(chapters, overrides=[tuple(p) for p in args.parameter],
                                        param_file=args.parameters_file, scale=args.scale,
                                        scales=load_scales(book))
        for c in chapters:
            preflight(c, parameters[c.stem])
    except ReproduceError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    run_id = args.run_id or time.strftime("%Y%m%d-%H%M%S")
    # a killed job (SIGTERM) stops like Ctrl-C: running chapters are stopped, finished ones kept
    signal.signal(signal.SIGTERM, lambda signum, frame: (_ for _ in ()).throw(KeyboardInterrupt()))
    print(f"running {len(chapters)} chapter(s) into {out / run_id} with {args.jobs} job(s)", flush=True)
    try:
        records = run(chapters, parameters, out=out, run_id=run_id, jobs=args.jobs, resume=args.resume)
    except KeyboardInterrupt:
        print(f"interrupted: finished chapters are kept; continue with --run-id {run_id} --resume", file=sys.stderr)
        return 130
    print((out / run_id / "summary.md").read_text())
    return 0 if all(r["status"].startswith("ok") for r in records) else 1


if __name__ == "__main__":
    sys.exit(main())
