"""Seed sweeps of ``python -m ebmlib.reproduce`` on Dask, with a tiny one-chapter test book.

The chapter checks two claims through :class:`ebmlib.book.Claims`; one of them ("SEED is not 1")
fails at seed 1 only. Sweeps run on a LocalCluster and on a scheduler with two workers started
here on 127.0.0.1; one is interrupted and resumed. Every command is bounded by a subprocess
timeout, every task by ``--timeout``.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("distributed", reason="the reproduce extra (dask) is not installed")
pytest.importorskip("papermill", reason="the reproduce extra (papermill) is not installed")

import nbformat  # noqa: E402

from ebmlib import reproduce  # noqa: E402
from ebmlib.book import read_claims, specs  # noqa: E402
from ebmlib.book.parameters import ParameterSpec, integer  # noqa: E402

# The claims module alone, by its file: `import ebmlib` would cost each kernel ~3 s of torch.
LOAD_CLAIMS = """\
import importlib.util, os, pathlib, time
_file = pathlib.Path(importlib.util.find_spec("ebmlib").origin).parent / "book" / "claims.py"
_spec = importlib.util.spec_from_file_location("ebmlib_book_claims", _file)
_claims = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_claims)
claims = _claims.Claims()
if SEED > 50:
    raise ValueError(f"SEED must be <= 50, got {SEED}")
"""

MISBEHAVE = """\
if SEED == CRASH_SEED:  # kill the Dask worker running this task: kernel -> papermill -> worker
    import psutil
    psutil.Process().parent().parent().kill()
    time.sleep(60)
if str(SEED) == os.environ.get("SWEEP_SLEEP_AT_SEED"):
    time.sleep(120)
"""

CHECKS = """\
claims.check("SEED is a natural number", SEED >= 0, f"SEED = {SEED}")
claims.check("SEED is not 1", SEED != 1, f"SEED = {SEED}")
"""


@pytest.fixture
def sweep_book(tmp_path):
    book = tmp_path / "book"
    book.mkdir()
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {
        "display_name": "Python 3",
        "language": "python",
        "name": "python3",
    }
    sources = ["SEED = 0\nCRASH_SEED = -1", LOAD_CLAIMS, MISBEHAVE, CHECKS, "claims.verify()"]
    nb.cells = [nbformat.v4.new_code_cell(s) for s in sources]
    nb.cells[0].metadata["tags"] = ["parameters"]
    nbformat.write(nb, book / "01_claims.ipynb")
    nb.cells = nb.cells[:1]
    nb.cells[0].source = "VALUE = 1"  # a chapter without SEED
    nbformat.write(nb, book / "02_seedless.ipynb")
    return book


def sweep(book, out, *args) -> int:
    """``python -m ebmlib.reproduce`` in this process (no second ~3 s import of torch); each task
    is bounded by ``--timeout``, the scheduler's address by a connect timeout."""
    return reproduce.main(["--book", str(book), "--out", str(out), "--timeout", "60", *args])


def summary(folder: Path) -> dict:
    return json.loads((folder / "summary.json").read_text())


@pytest.mark.parametrize(
    "args, message",
    [
        (["01", "--seeds", "3"], "--seeds takes start:stop[:step]"),
        (["01", "--seeds", "a:b"], "--seeds takes start:stop[:step]"),
        (["01", "--seeds", "5:5"], "empty range"),
        (["01", "--seeds=-2:2"], "seeds are >= 0"),
        (["--seeds", "0:3"], "02_seedless has no SEED parameter"),
        (["01", "--seeds", "0:3", "-p", "SEED", "4"], "SEED is set both by --seeds and by -p"),
        (
            ["01", "--seeds", "48:53"],
            "01_claims: ValueError: SEED must be an integer in [0, 50], got 51",
        ),
        (["01", "--timeout", "-1"], "--timeout must be >= 0"),
    ],
)
def test_bad_sweeps_are_refused_before_anything_runs(
    sweep_book, tmp_path, capsys, monkeypatch, args, message
):
    # the tiny chapter's spec, as ebmlib.book.specs holds the book's: every seed of a sweep is
    # checked against it before anything runs
    spec = ParameterSpec({"SEED": integer(minimum=0, maximum=50), "CRASH_SEED": integer(-1)})
    monkeypatch.setitem(specs.SPECS, "01_claims", spec)
    out = tmp_path / "outputs"
    assert reproduce.main(["--book", str(sweep_book), "--out", str(out), *args]) == 2
    assert message in capsys.readouterr().err
    assert not out.exists()


def test_seed_ranges_and_tasks(sweep_book):
    assert list(reproduce.parse_seeds("0:20:5")) == [0, 5, 10, 15]
    assert list(reproduce.parse_seeds("3:0:-1")) == [3, 2, 1]
    chapters = reproduce.find_chapters(sweep_book)[:1]
    tasks = reproduce.make_tasks(chapters, {"01_claims": {"CRASH_SEED": 5}}, range(2))
    assert [(t.key, t.parameters) for t in tasks] == [
        ("01_claims.seed-0", {"CRASH_SEED": 5, "SEED": 0}),
        ("01_claims.seed-1", {"CRASH_SEED": 5, "SEED": 1}),
    ]
    assert [t.key for t in reproduce.make_tasks(chapters, {"01_claims": {}})] == ["01_claims"]


def test_robustness_counts_the_pairs_that_ran():
    def rec(seed, status, held):
        claims = None if held is None else [{"name": "c", "held": held, "detail": ""}]
        return {"chapter": "01_x", "seed": seed, "status": status, "claims": claims}

    records = [
        rec(0, "ok", True),
        rec(1, "claims failed", False),
        rec(2, "failed", None),  # crashed before Claims.verify: counted, not held
        rec(3, "worker died", None),  # did not run to an end: left out
        rec(4, "ok (resumed)", True),
    ]
    assert reproduce.robustness(records) == [
        {
            "chapter": "01_x",
            "claim": "c",
            "held": 2,
            "runs": 4,
            "fraction": 0.5,
            "failed_seeds": [1],
            "missing_seeds": [2],
            "test": None,
            "margin_min": None,
            "margin_median": None,
        }
    ]


def test_robustness_gives_the_smallest_and_median_margin():
    def rec(seed, margin):
        claim = {"name": "z", "held": margin > 0, "detail": "", "margin": margin}
        claim.update(value=3 - margin, bound=3.0, relation="<")
        return {"chapter": "01_x", "seed": seed, "status": "ok", "claims": [claim]}

    [row] = reproduce.robustness([rec(0, 0.5), rec(1, -0.1), rec(2, 0.2), rec(3, 0.9)])
    assert row["held"] == 3 and row["failed_seeds"] == [1]
    assert row["margin_min"] == -0.1 and row["margin_median"] == pytest.approx(0.35)
    assert row["test"] == "< 3"


def test_a_sweep_made_at_another_commit_is_not_resumed(tmp_path, monkeypatch):
    folder = tmp_path / "r1"
    folder.mkdir()
    (folder / "summary.json").write_text(json.dumps({"environment": {"commit": "0" * 40}}))
    monkeypatch.setattr(reproduce, "source_revision", lambda: "1" * 40)
    with pytest.raises(reproduce.ReproduceError, match="refusing to resume r1: it was run at"):
        reproduce._resumed([], folder)
    monkeypatch.setattr(reproduce, "source_revision", lambda: "0" * 40)
    assert reproduce._resumed([], folder) == ({}, [])


def test_the_robustness_page_states_where_when_and_how_close(tmp_path):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
    try:
        from robustness_page import page
    finally:
        sys.path.pop(0)
    claims = [
        lambda m: {
            "name": "z below 3",
            "held": m > 0,
            "detail": "",
            "value": 3 - m,
            "bound": 3.0,
            "relation": "<",
            "margin": m,
        },
        lambda m: {"name": "plain", "held": True, "detail": ""},
    ]
    records = [
        {
            "chapter": "01_x",
            "seed": seed,
            "status": "ok" if margin > 0 else "claims failed",
            "seconds": 1.0,
            "peak_memory_mb": 10,
            "claims": [c(margin) for c in claims],
        }
        for seed, margin in enumerate([0.5] * 18 + [-0.2, -0.1])
    ]
    env = {"date": "2026-12-07", "commit": "abc1234", "cpu": "Some CPU", "cpu_count": 2}
    text = page({"chapters": records, "environment": env, "engine": {"workers": 2}})
    assert "at 20 seeds" in text and "2026-12-07" in text and "`abc1234`" in text
    assert "**Not in these sweeps:** 01_mle_gradient, 02_importance_sampling_mle" in text
    assert "Some CPU" in text
    assert "| 01_x | z below 3 | 18/20 | 2/20 (" in text, "its failure rate and bound"
    assert "| z below 3 | < 3 | 18/20 | -0.2 | +0.5 |" in text, "its test and margins"
    assert "| 01_x | 18/20 ok | 2 | 1 | 1 |" in text, "one claim fails at more than 1 seed in 20"

    # a second sweep, of another chapter at another commit, joins the page with its own line
    other = [dict(r, chapter="02_y") for r in records]
    env2 = dict(env, commit="def5678", date="2026-12-08")
    second = {"chapters": other, "environment": env2, "engine": {"workers": 2}}
    text = page(
        [{"chapters": records, "environment": env, "engine": {"workers": 2}}, second],
        {"abc1234": ["ebmlib/x.py"], "def5678": []},
    )
    assert "**Chapters 01** measured on 2026-12-07, at commit `abc1234`" in text
    assert "Code changed since, in the library or these chapters: `ebmlib/x.py`." in text
    assert "**Chapters 02** measured on 2026-12-08, at commit `def5678`" in text
    assert "The code of the library and of these chapters is unchanged since." in text
    assert "| 02_y | z below 3 | 18/20 | 2/20 (" in text
    with pytest.raises(ValueError, match="more than one sweep"):
        page([second, second])


def test_a_sweep_on_a_local_cluster_tabulates_how_robust_each_claim_is(
    sweep_book, tmp_path, monkeypatch
):
    monkeypatch.setenv("EBMLIB_PROGRESS", "0")
    before = {p.name: p.read_bytes() for p in sweep_book.iterdir()}
    out = tmp_path / "outputs"
    args = ["01", "--seeds", "0:3", "--jobs", "2", "--run-id", "s1"]
    assert sweep(sweep_book, out, *args) == 1  # a claim failed at one seed
    folder = out / "s1"
    records = summary(folder)["chapters"]
    assert [(r["chapter"], r["parameters"], r["status"]) for r in records] == [
        ("01_claims", {"SEED": 0}, "ok"),
        ("01_claims", {"SEED": 1}, "claims failed"),
        ("01_claims", {"SEED": 2}, "ok"),
    ]
    for r in records:
        assert r["seconds"] > 0 and r["peak_memory_mb"] > 0
        assert [c["name"] for c in r["claims"]] == ["SEED is a natural number", "SEED is not 1"]
    assert [c["held"] for c in records[1]["claims"]] == [True, False]
    assert "1 of 2 claims failed" in records[1]["error"] and "SEED is not 1" in records[1]["error"]
    robust = {r["claim"]: r for r in summary(folder)["robustness"]}
    assert robust["SEED is not 1"]["held"] == 2 and robust["SEED is not 1"]["runs"] == 3
    assert robust["SEED is not 1"]["failed_seeds"] == [1]
    assert robust["SEED is a natural number"]["fraction"] == 1.0
    md = (folder / "summary.md").read_text()
    assert "| 01_claims | SEED is not 1 | 2/3 | 0.67 | 1 |" in md
    assert "| 01_claims | SEED is a natural number | 3/3 | 1.00 |  |" in md
    assert "## Cost per chapter" in md and "| 01_claims | 3 |" in md
    # the executed notebooks came back from the workers as bytes; this process wrote them
    assert read_claims(folder / "01_claims.seed-1.failed.ipynb") == records[1]["claims"]
    assert read_claims(folder / "01_claims.seed-2.ipynb") == records[2]["claims"]
    assert not (folder / "01_claims.seed-1.ipynb").exists()
    assert {p.name: p.read_bytes() for p in sweep_book.iterdir()} == before
    assert not [p for p in folder.iterdir() if p.name.startswith(".")], "no temporary files"

    # resuming runs nothing again: a run whose claims failed is a finished result
    stamps = {p.name: p.stat().st_mtime_ns for p in folder.glob("01_claims.seed-*")}
    assert sweep(sweep_book, out, *args, "--resume") == 1
    statuses = [r["status"] for r in summary(folder)["chapters"]]
    assert statuses == ["ok (resumed)", "claims failed (resumed)", "ok (resumed)"]
    assert {p.name: p.stat().st_mtime_ns for p in folder.glob("01_claims.seed-*")} == stamps
    robust = {r["claim"]: r for r in summary(folder)["robustness"]}
    assert robust["SEED is not 1"]["held"] == 2 and robust["SEED is not 1"]["runs"] == 3


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# starts processes and waits on them (about 9 s): run by `make test-slow` and CI
@pytest.mark.slow
def test_a_sweep_on_a_dask_scheduler_survives_a_dead_worker(
    sweep_book, tmp_path, capsys, monkeypatch
):
    monkeypatch.setenv("EBMLIB_PROGRESS", "0")
    from distributed import Client

    address = f"tcp://127.0.0.1:{_free_port()}"
    # as the appendix says: a task whose worker dies fails at once, and a worker holds only the
    # tasks it runs
    env = dict(
        os.environ,
        DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES="0",
        DASK_DISTRIBUTED__SCHEDULER__WORKER_SATURATION="1.0",
        EBMLIB_PROGRESS="0",
    )
    dask = [sys.executable, "-m", "dask"]
    port = address.rsplit(":", 1)[1]
    procs = [
        subprocess.Popen(
            [*dask, "scheduler", "--host", "127.0.0.1", "--port", port, "--no-dashboard"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    ]
    try:
        for _ in range(2):
            worker = [*dask, "worker", address, "--nthreads", "1", "--no-nanny"]
            worker += ["--no-dashboard", "--host", "127.0.0.1"]
            procs.append(
                subprocess.Popen(
                    worker, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
                )
            )
        with Client(address, timeout=30) as client:
            client.wait_for_workers(2, timeout=30)
        out = tmp_path / "outputs"
        args = ["01", "--seeds", "0:3", "--scheduler", address, "--run-id", "d1"]
        assert sweep(sweep_book, out, *args, "-p", "CRASH_SEED", "2") == 1
        assert f"on the Dask cluster at {address}" in capsys.readouterr().out
        result = summary(out / "d1")
        assert [r["status"] for r in result["chapters"]] == ["ok", "claims failed", "worker died"]
        assert "died" in result["chapters"][2]["error"]
        assert result["engine"]["scheduler"] == address
        robust = {r["claim"]: r for r in result["robustness"]}
        assert (robust["SEED is not 1"]["held"], robust["SEED is not 1"]["runs"]) == (1, 2)
        assert "| 01_claims | 2 | worker died |" in (out / "d1" / "summary.md").read_text()
        assert sum(p.poll() is None for p in procs[1:]) == 1, "one worker was killed"
    finally:
        for p in reversed(procs):
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()


# starts processes and waits on them (about 9 s): run by `make test-slow` and CI
@pytest.mark.slow
def test_an_interrupted_sweep_resumes_only_the_missing_pairs(
    sweep_book, tmp_path, capsys, monkeypatch
):
    monkeypatch.setenv("EBMLIB_PROGRESS", "0")
    out = tmp_path / "outputs"
    folder = out / "r1"
    command = [sys.executable, "-m", "ebmlib.reproduce", "--book", str(sweep_book)]
    command += ["--out", str(out), "01", "--seeds", "2:5", "--run-id", "r1", "--timeout", "60"]
    proc = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=dict(os.environ, EBMLIB_PROGRESS="0", SWEEP_SLEEP_AT_SEED="4"),
    )
    try:
        deadline = time.time() + 60
        done = [folder / f"01_claims.seed-{s}.ipynb" for s in (2, 3)]
        while not all(p.exists() for p in done):
            assert proc.poll() is None and time.time() < deadline, proc.communicate()
            time.sleep(0.2)
        time.sleep(1.0)  # seed 4 is now sleeping inside its kernel
        proc.send_signal(signal.SIGINT)
        out_text, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, (out_text, err)
    assert "--resume" in err
    statuses = [r["status"] for r in summary(folder)["chapters"]]
    assert statuses == ["ok", "ok", "interrupted"]
    assert not list(folder.glob("01_claims.seed-4*"))
    first = [p.stat().st_mtime_ns for p in done]

    assert sweep(sweep_book, out, "01", "--seeds", "2:5", "--run-id", "r1", "--resume") == 0
    printed = capsys.readouterr().out
    assert "01_claims.seed-4: ok" in printed
    assert "01_claims.seed-2: ok" not in printed, "finished pairs do not run again"
    statuses = [r["status"] for r in summary(folder)["chapters"]]
    assert statuses == ["ok (resumed)", "ok (resumed)", "ok"]
    assert [p.stat().st_mtime_ns for p in done] == first
    assert (folder / "01_claims.seed-4.ipynb").exists()


def test_a_task_past_its_timeout_is_stopped(sweep_book, tmp_path, monkeypatch):
    monkeypatch.setenv("EBMLIB_PROGRESS", "0")
    monkeypatch.setenv("SWEEP_SLEEP_AT_SEED", "4")  # the kernel would sleep 120 s
    out = tmp_path / "outputs"
    started = time.perf_counter()
    assert sweep(sweep_book, out, "01", "--seeds", "4:5", "--run-id", "t1", "--timeout", "2") == 1
    # The kernel would sleep 120 s: stopped well before it, however loaded the machine. The bounds
    # are not a speed test: tighter ones (10 s, 30 s) depend on the load of the other test process.
    assert time.perf_counter() - started < 100
    [record] = summary(out / "t1")["chapters"]
    assert record["status"] == "timed out" and record["error"] == "stopped after 2 s (--timeout)"
    assert 2 <= record["seconds"] < 60
    assert "| 01_claims | 4 | timed out |" in (out / "t1" / "summary.md").read_text()
