"""python -m ebmlib.reproduce on a tiny two-chapter book: errors before running, outputs,
interruption and resume."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest

from ebmlib import reproduce
from ebmlib.book import specs
from ebmlib.book.parameters import ParameterSpec, integer, positive


def notebook(path: Path, cells: list[str]) -> None:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {
        "display_name": "Python 3",
        "language": "python",
        "name": "python3",
    }
    nb.cells = [nbformat.v4.new_code_cell(src) for src in cells]
    nb.cells[0].metadata["tags"] = ["parameters"]
    nbformat.write(nb, path)


@pytest.fixture
def tiny_book(tmp_path):
    book = tmp_path / "book"
    book.mkdir()
    notebook(
        book / "01_fast.ipynb",
        [
            "SEED = 0\nVALUE = 1.5",
            "from ebmlib.validation import check_positive\nVALUE = check_positive(VALUE, 'VALUE')",
            "print(f'value {VALUE * 2}')",
        ],
    )
    notebook(
        book / "02_slow.ipynb",
        [
            "SEED = 0",
            "import os, time",
            "time.sleep(float(os.environ.get('REPRO_TEST_SLEEP', '0')))\nprint('done')",
        ],
    )
    (book / "scales.yml").write_text("01_fast:\n  big: {VALUE: 10}\n")
    return book


@pytest.fixture
def fast_spec(monkeypatch):
    """A parameter spec for the tiny book's 01_fast, as ebmlib.book.specs holds the book's."""
    spec = ParameterSpec({"SEED": integer(minimum=0), "VALUE": positive()})
    monkeypatch.setitem(specs.SPECS, "01_fast", spec)


def cli(book, out, *args, env=None, **kwargs):
    command = [
        sys.executable,
        "-m",
        "ebmlib.reproduce",
        "--book",
        str(book),
        "--out",
        str(out),
        *args,
    ]
    return subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=300,
        env=dict(os.environ, EBMLIB_PROGRESS="0", **(env or {})),
        **kwargs,
    )


@pytest.mark.parametrize(
    "args, message",
    [
        (["07"], "no chapter '07'; choose from: 01_fast, 02_slow"),
        (["-p", "NOPE", "1"], "no selected chapter has a parameter 'NOPE'"),
        (["-p", "VALUE", "-2"], "01_fast: ValueError: VALUE must be a finite number > 0, got -2.0"),
        (["-p", "VALUE", "abc"], "01_fast: TypeError: VALUE must be a real number, got str 'abc'"),
        (["-p", "SEED", "1.5"], "01_fast: TypeError: SEED must be an integer, got float 1.5"),
        (["--scale", "huge"], "no selected chapter defines the scale 'huge'"),
        (["--resume"], "--resume needs the --run-id"),
    ],
)
def test_bad_requests_fail_before_anything_runs(
    tiny_book, fast_spec, tmp_path, capsys, args, message
):
    # in-process: these fail before any kernel starts (the command line itself is run by the tests
    # below)
    out = tmp_path / "outputs"
    assert reproduce.main(["--book", str(tiny_book), "--out", str(out), *args]) == 2
    assert message in capsys.readouterr().err
    assert not out.exists()


def test_output_inside_the_book_is_refused(tiny_book, capsys):
    assert reproduce.main(["--book", str(tiny_book), "--out", str(tiny_book / "outputs")]) == 2
    assert "inside the book folder" in capsys.readouterr().err
    assert not (tiny_book / "outputs").exists()


def test_parameters_from_scale_file_and_command_line(tiny_book, tmp_path):
    chapters = reproduce.find_chapters(tiny_book)
    assert [c.stem for c in chapters] == ["01_fast", "02_slow"]
    assert chapters[0].defaults == {"SEED": 0, "VALUE": 1.5}
    params_file = tmp_path / "p.yaml"
    params_file.write_text("SEED: 3\n01_fast: {VALUE: 4}\n")
    resolved = reproduce.resolve_parameters(
        chapters,
        overrides=[("SEED", "7")],
        param_file=params_file,
        scale="big",
        scales=reproduce.load_scales(tiny_book),
    )
    assert resolved == {"01_fast": {"VALUE": 4, "SEED": 7}, "02_slow": {"SEED": 7}}
    assert [c.stem for c in reproduce.select(chapters, ["2"])] == ["02_slow"]


def test_preflight_checks_values_against_the_spec_without_running_the_chapter(
    tiny_book, fast_spec, tmp_path, monkeypatch
):
    # the chapter's cells would leave a mark and fail; the preflight runs none of them
    notebook(
        tiny_book / "01_fast.ipynb",
        ["SEED = 0\nVALUE = 1.5", "open('ran', 'w').close()\nraise RuntimeError('ran')"],
    )
    monkeypatch.chdir(tmp_path)
    chapter = reproduce.find_chapters(tiny_book)[0]
    assert chapter.spec is specs.SPECS["01_fast"]
    reproduce.preflight(chapter, {"VALUE": 3})
    with pytest.raises(reproduce.ReproduceError, match="01_fast: ValueError: VALUE must be a fin"):
        reproduce.preflight(chapter, {"VALUE": 0})
    with pytest.raises(reproduce.ReproduceError, match="01_fast has no parameter 'NOPE'"):
        reproduce.preflight(chapter, {"NOPE": 1})
    assert not (tmp_path / "ran").exists()


def test_a_chapter_without_a_spec_is_checked_by_name_only(tiny_book):
    slow = reproduce.find_chapters(tiny_book)[1]
    assert slow.spec is None
    reproduce.preflight(slow, {"SEED": "anything"})  # its own cells check the value when it runs
    with pytest.raises(reproduce.ReproduceError, match="02_slow has no parameter 'VALUE'"):
        reproduce.preflight(slow, {"VALUE": 1})


def test_a_parameters_cell_must_assign_literals(tiny_book):
    notebook(tiny_book / "03_computed.ipynb", ["import math\nSEED = 0"])
    with pytest.raises(reproduce.ReproduceError, match="03_computed.ipynb: line 1 of the param"):
        reproduce.find_chapters(tiny_book)


def test_a_run_writes_executed_chapters_and_a_summary_without_touching_the_book(
    tiny_book, tmp_path
):
    before = {p.name: p.read_bytes() for p in tiny_book.iterdir()}
    out = tmp_path / "outputs"
    proc = cli(tiny_book, out, "--run-id", "r1", "--jobs", "2", "-p", "VALUE", "2.5")
    assert proc.returncode == 0, proc.stderr
    folder = out / "r1"
    executed = nbformat.read(folder / "01_fast.ipynb", as_version=4)
    assert "value 5.0" in "".join(o.get("text", "") for o in executed.cells[-1].outputs)
    summary = json.loads((folder / "summary.json").read_text())
    assert [(c["chapter"], c["status"]) for c in summary["chapters"]] == [
        ("01_fast", "ok"),
        ("02_slow", "ok"),
    ]
    assert summary["chapters"][0]["parameters"] == {"VALUE": 2.5}
    assert summary["chapters"][0]["peak_memory_mb"] > 0 and summary["chapters"][0]["seconds"] > 0
    assert {"python", "torch", "cpu", "cpu_count", "torch_threads"} <= set(summary["environment"])
    assert "| 01_fast | ok |" in (folder / "summary.md").read_text()
    assert {p.name: p.read_bytes() for p in tiny_book.iterdir()} == before
    assert not [p for p in folder.iterdir() if p.name.startswith(".")], (
        "no temporary files left behind"
    )


@pytest.mark.slow  # three runs and a 120 s sleeper interrupted: about 20 s of kernels
# (tests/test_sweeps.py interrupts and resumes a sweep within the fast tests)
def test_an_interrupted_run_resumes_where_it_stopped(tiny_book, tmp_path):
    out = tmp_path / "outputs"
    folder = out / "r2"
    command = [
        sys.executable,
        "-m",
        "ebmlib.reproduce",
        "--book",
        str(tiny_book),
        "--out",
        str(out),
        "--run-id",
        "r2",
    ]
    proc = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=dict(os.environ, EBMLIB_PROGRESS="0", REPRO_TEST_SLEEP="120"),
    )
    deadline = time.time() + 120
    while not (folder / "01_fast.ipynb").exists():
        assert proc.poll() is None and time.time() < deadline, proc.communicate()
        time.sleep(0.2)
    time.sleep(2.0)  # the second chapter is now sleeping inside its kernel, on a Dask worker
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "--resume" in err
    summary = json.loads((folder / "summary.json").read_text())
    assert [c["status"] for c in summary["chapters"]] == ["ok", "interrupted"]
    assert not (folder / "02_slow.ipynb").exists()
    first = (folder / "01_fast.ipynb").stat().st_mtime_ns

    resumed = cli(tiny_book, out, "--run-id", "r2", "--resume")
    assert resumed.returncode == 0, resumed.stderr
    summary = json.loads((folder / "summary.json").read_text())
    assert [c["status"] for c in summary["chapters"]] == ["ok (resumed)", "ok"]
    assert (folder / "01_fast.ipynb").stat().st_mtime_ns == first, (
        "a finished chapter is not run again"
    )
    assert (folder / "02_slow.ipynb").exists()
    # different parameters are a different run: nothing is skipped
    rerun = cli(tiny_book, out, "--run-id", "r2", "--resume", "-p", "VALUE", "3")
    assert rerun.returncode == 0
    assert json.loads((folder / "summary.json").read_text())["chapters"][0]["status"] == "ok"


def test_without_chapters_it_says_where_to_point_it(tmp_path, monkeypatch, capsys):
    """From an installed wheel there is no book/ beside the package: say what to do."""
    monkeypatch.setattr(reproduce, "BOOK", tmp_path / "no-such-book")
    monkeypatch.chdir(tmp_path)
    assert reproduce.main([]) == 2
    err = capsys.readouterr().err
    assert f"no chapters (NN_*.ipynb) in {tmp_path / 'book'}" in err
    assert "point --book at the folder that holds the chapter notebooks" in err
