"""The package and the repository as a reader outside it meets them.

* one repository address, written in ``_config.yml``, ``CITATION.cff`` and ``pyproject.toml``;
* one version, in ``pyproject.toml`` (``ebmlib.__version__`` reads it), ``CITATION.cff`` and the
  CHANGELOG; every chapter's install cell installs from the branch the launch buttons open;
* ``CITATION.cff`` validates (cffconvert) and every GitHub workflow passes actionlint (both from
  ``.venv-tools``, which ``make`` installs from ``requirements-tools.txt``);
* the floors of pyproject's ranges are the versions ``tests/floors.txt`` pins (``make test-floors``
  runs on them);
* no package-index host is named anywhere in the repository;
* (slow) the wheel, installed into a fresh virtual environment, runs a chapter copied alone into an
  empty folder;
* (slow) Colab's path: in a fresh venv holding only what Colab ships, the install cell installs
  ebmlib from (a local clone of) the repository, and the chapter then runs alone in an empty
  folder.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

import ebmlib

ROOT = Path(__file__).resolve().parents[1]
TOOLS_BIN = ROOT / ".venv-tools" / "bin"
CHAPTERS = sorted((ROOT / "book").glob("[0-9][0-9]_*.ipynb"))
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
VERSION = PYPROJECT["project"]["version"]


def _tool(name: str) -> str:
    path = TOOLS_BIN / name
    if path.exists():
        return str(path)
    found = shutil.which(name)
    if found is None:
        pytest.fail(
            f"{name} is not installed: run `make tools` (it installs requirements-tools.txt into "
            ".venv-tools)"
        )
    return found


def _repository_from_config() -> str:
    return yaml.safe_load((ROOT / "_config.yml").read_text())["repository"]["url"]


def test_one_repository_address_everywhere():
    sys.path.insert(0, str(ROOT / "tools"))
    try:
        from set_repository_url import pages_url
    finally:
        sys.path.pop(0)
    repo = _repository_from_config()
    cff = yaml.safe_load((ROOT / "CITATION.cff").read_text())
    urls = PYPROJECT["project"]["urls"]
    assert cff["repository-code"] == repo
    assert urls["Repository"] == repo
    assert urls["Issues"] == f"{repo}/issues"
    assert urls["Changelog"].startswith(f"{repo}/")
    assert urls["Homepage"] == cff["url"] == pages_url(repo)
    intro = (ROOT / "book" / "intro.md").read_text()
    assert pages_url(repo) in intro, "the intro's citation gives the published book's address"


def test_set_repository_url_rewrites_every_copy(tmp_path):
    (tmp_path / "book").mkdir()
    for name in ("_config.yml", "CITATION.cff", "pyproject.toml", "README.md", "book/intro.md"):
        shutil.copy(ROOT / name, tmp_path / name)
    shutil.copy(CHAPTERS[0], tmp_path / "book" / CHAPTERS[0].name)
    (tmp_path / "tools").mkdir()
    shutil.copy(ROOT / "tools" / "set_repository_url.py", tmp_path / "tools")
    fork = "https://github.com/Someone/ebm-fork"
    subprocess.run(
        [sys.executable, str(tmp_path / "tools" / "set_repository_url.py"), fork],
        check=True,
        capture_output=True,
    )
    assert yaml.safe_load((tmp_path / "_config.yml").read_text())["repository"]["url"] == fork
    cff = yaml.safe_load((tmp_path / "CITATION.cff").read_text())
    assert cff["repository-code"] == fork and cff["url"] == "https://someone.github.io/ebm-fork/"
    urls = tomllib.loads((tmp_path / "pyproject.toml").read_text())["project"]["urls"]
    assert urls["Repository"] == fork and urls["Homepage"] == "https://someone.github.io/ebm-fork/"
    for name in ("pyproject.toml", "README.md", "book/intro.md", f"book/{CHAPTERS[0].name}"):
        assert _repository_from_config() not in (tmp_path / name).read_text(), name
    assert _install_target(tmp_path / "book" / CHAPTERS[0].name) == (
        f"ebmlib[book] @ git+{fork}@main"
    )


def test_one_version_everywhere():
    cff = yaml.safe_load((ROOT / "CITATION.cff").read_text())
    assert str(cff["version"]) == VERSION
    assert ebmlib.__version__ == VERSION
    releases = re.findall(
        r"^## \[(\d+\.\d+\.\d+)\]", (ROOT / "CHANGELOG.md").read_text(), re.MULTILINE
    )
    assert releases and releases[0] == VERSION, (
        "the CHANGELOG's newest release is the package version"
    )


def _install_target(path: Path) -> str:
    """The requirement a chapter's install cell hands to pip."""
    cells = json.loads(path.read_text())["cells"]
    install = [c for c in cells if c.get("id") == "install-ebmlib"]
    assert len(install) == 1, f"{path.name}: one hidden install cell"
    found = re.findall(r'^EBMLIB = "([^"]+)"$', "".join(install[0]["source"]), re.MULTILINE)
    assert len(found) == 1, f"{path.name}: the install cell names its requirement once, as EBMLIB"
    return found[0]


def test_install_cells_install_the_branch_the_launch_buttons_open():
    config = yaml.safe_load((ROOT / "_config.yml").read_text())["repository"]
    expected = f"ebmlib[book] @ git+{config['url']}@{config['branch']}"
    for path in CHAPTERS:
        assert _install_target(path) == expected, path.name


def test_install_cell_is_hidden_second_and_a_no_op_here():
    for path in CHAPTERS:
        code = [c for c in json.loads(path.read_text())["cells"] if c["cell_type"] == "code"]
        assert "parameters" in code[0]["metadata"].get("tags", []), path.name
        assert code[1].get("id") == "install-ebmlib", (
            f"{path.name}: the install cell follows the parameters"
        )
        assert "remove-cell" in code[1]["metadata"].get("tags", []), (
            f"{path.name}: hidden in the page"
        )
        assert not code[1].get("outputs"), f"{path.name}: the install cell printed something here"
        calls: list = []
        source = "".join(code[1]["source"]).replace("import subprocess\n", "")
        fake = type("S", (), {"run": staticmethod(lambda *a, _calls=calls, **k: _calls.append(a))})
        exec(source, {"subprocess": fake})
        assert not calls, f"{path.name}: the install cell ran pip although ebmlib is importable"


def test_citation_cff_validates():
    proc = subprocess.run(
        [_tool("cffconvert"), "--validate", "-i", str(ROOT / "CITATION.cff")],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_every_workflow_passes_actionlint():
    workflows = sorted((ROOT / ".github" / "workflows").glob("*.yml"))
    assert {p.stem for p in workflows} >= {"ci", "book", "release"}
    proc = subprocess.run(
        [_tool("actionlint"), *map(str, workflows)], capture_output=True, text=True, cwd=ROOT
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    ci = yaml.safe_load((ROOT / ".github" / "workflows" / "ci.yml").read_text())
    assert any("make test" == step.get("run") for step in ci["jobs"]["test"]["steps"])
    book = (ROOT / ".github" / "workflows" / "book.yml").read_text()
    assert "actions/upload-pages-artifact" in book and "actions/deploy-pages" in book
    release = yaml.safe_load((ROOT / ".github" / "workflows" / "release.yml").read_text())
    assert release["jobs"]["publish"]["permissions"] == {"id-token": "write"}, (
        "trusted publishing (OIDC)"
    )
    assert "password" not in json.dumps(release), "no stored token"


def _floor(requirement: str) -> tuple[str, str]:
    name, floor = re.fullmatch(r"([A-Za-z0-9_.\-]+)>=([0-9.]+)", requirement).groups()
    return name.lower(), floor


def test_floors_are_pinned_for_test_floors():
    floors = {}
    for line in (ROOT / "tests" / "floors.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, version = line.split("==")
            floors[name.lower()] = version
    ranges = (
        PYPROJECT["project"]["dependencies"] + PYPROJECT["project"]["optional-dependencies"]["book"]
    )
    for requirement in ranges:
        name, floor = _floor(requirement)
        assert name in floors, f"tests/floors.txt does not pin {name}"
        pinned = tuple(int(p) for p in floors[name].split("."))
        assert pinned[: len(floor.split("."))] == tuple(int(p) for p in floor.split(".")), (
            f"{name}: pyproject's floor {floor} is not the tested version {floors[name]}"
        )


def test_no_package_index_host_is_named():
    hosts = [
        "pypi" + ".org",
        "pythonhosted" + ".org",
        "download" + ".pytorch.org",
        "anaconda" + ".org",
        "conda" + ".anaconda",
    ]
    files = subprocess.run(
        ["git", "ls-files"], cwd=ROOT, capture_output=True, text=True
    ).stdout.split()
    for name in files:
        path = ROOT / name
        if path.suffix in {".png", ".ipynb"} or not path.is_file():
            continue
        text = path.read_text(errors="ignore")
        for host in hosts:
            assert host not in text, f"{name} names the package index {host}"


def test_binder_installs_cpu_torch_and_ebmlib_from_the_repository():
    env = yaml.safe_load((ROOT / "binder" / "environment.yml").read_text())
    assert any(str(d).startswith("pytorch-cpu") for d in env["dependencies"])
    post = (ROOT / "binder" / "postBuild").read_text()
    assert 'pip install --no-cache-dir ".[book]"' in post


def _run_chapter_alone(
    venv: Path, folder: Path, name: str, extra_env: dict[str, str] | None = None
) -> list[str]:
    """Run the chapter ``folder/name`` with papermill in ``venv``, with nothing of this machine's
    environment but ``PATH``'s system folders; return the ``ebmlib`` version and file it imported.

    One math thread: `make test-slow` runs two of these side by side (pytest-xdist, 2 processes),
    and two chapters with torch's default two threads each on a 2-core machine oversubscribe it
    (measured in CI: chapter 8 past 600 s instead of about 70 s). A chapter's claims hold at any
    thread count, so one thread checks the same things.
    """
    python = venv / "bin" / "python"
    env = {
        "PATH": f"{venv / 'bin'}:/usr/bin:/bin",
        "EBMLIB_PROGRESS": "0",
        "HOME": str(folder.parent),
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        **(extra_env or {}),
    }
    proc = subprocess.run(
        [str(python), "-m", "papermill", name, "out.ipynb", "-k", "python3"],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=900,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return subprocess.run(
        [str(python), "-c", "import ebmlib; print(ebmlib.__version__, ebmlib.__file__)"],
        cwd=folder,
        capture_output=True,
        text=True,
        check=True,
        env=env,
    ).stdout.split()


@pytest.mark.slow
def test_wheel_runs_a_chapter_from_an_empty_folder(tmp_path):
    """Build the wheel, install it into a fresh venv, and run chapter 8 (it loads the packaged data)
    alone."""
    dist = tmp_path / "dist"
    subprocess.run(
        [_tool("python"), "-m", "build", "--wheel", "--outdir", str(dist), str(ROOT)],
        check=True,
        capture_output=True,
    )
    wheel = next(dist.glob("ebmlib-*.whl"))
    subprocess.run(
        [_tool("twine"), "check", "--strict", str(wheel)], check=True, capture_output=True
    )
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    subprocess.run(
        [
            str(python),
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            f"{wheel}[book]",
            "papermill",
            "-c",
            str(ROOT / "requirements.txt"),
        ],
        check=True,
    )
    empty = tmp_path / "reader"
    empty.mkdir()
    name = "08_rbm_ais.ipynb"
    shutil.copy(ROOT / "book" / name, empty / name)
    installed = _run_chapter_alone(venv, empty, name)
    assert str(venv) in installed[1], "the chapter ran on the repository, not on the wheel"


#: What Colab ships that a chapter needs, with the kernel that runs it; ebmlib is not there.
COLAB = ["torch", "numpy", "scipy", "matplotlib", "scikit-learn", "ipykernel", "papermill"]


@pytest.mark.slow
def test_colab_install_cell_installs_an_ebmlib_that_runs_the_chapter(tmp_path):
    """Colab's path, offline but for the package registries: a fresh venv with only the packages
    Colab ships (at the lock's versions, not Colab's), chapter 8 of HEAD copied alone into an
    empty folder with its install cell pointed at this repository's HEAD (``git+file://`` in
    place of the GitHub address), run by papermill. Commit first: it tests HEAD."""
    venv = tmp_path / "colab"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    pip = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    subprocess.run([*pip, *COLAB, "-c", str(ROOT / "requirements.txt")], check=True)
    missing = subprocess.run(
        [str(python), "-c", "import ebmlib"], cwd=tmp_path, capture_output=True
    )
    assert missing.returncode != 0, "the fresh venv must not have ebmlib before the install cell"

    # A checkout owned by another user (a CI container) is still read: git's safe.directory, for
    # this test's git and for the git that pip runs.
    git_env = {"GIT_CONFIG_COUNT": "1", "GIT_CONFIG_KEY_0": "safe.directory"}
    git_env["GIT_CONFIG_VALUE_0"] = "*"

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, **git_env},
        ).stdout

    head = git("rev-parse", "HEAD").strip()
    name = "08_rbm_ais.ipynb"
    text = git("show", f"HEAD:book/{name}")  # the chapter and the library of one commit
    github = _install_target(ROOT / "book" / name)
    # file://localhost/...: older pip (23.2, a fresh venv's) refuses an empty host, file:///...
    local = f"ebmlib[book] @ git+file://localhost{ROOT}@{head}"
    reader = tmp_path / "reader"
    reader.mkdir()
    assert text.count(github) == 1, "HEAD's chapter installs what the working tree's does"
    (reader / name).write_text(text.replace(github, local))
    installed = _run_chapter_alone(venv, reader, name, git_env)
    assert installed[0] == VERSION and str(venv) in installed[1], installed
