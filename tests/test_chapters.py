"""Book-level checks of the chapter notebooks: conventions, committed outputs, and bad parameters
failing early."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
BOOK = ROOT / "book"


def _toc_files() -> list[str]:
    toc = yaml.safe_load((BOOK / "_toc.yml").read_text())
    files = [toc["root"]]
    for part in toc.get("parts", []):
        files += [c["file"] for c in part.get("chapters", [])]
    return files


NOTEBOOKS = sorted(BOOK.glob("[0-9][0-9]_*.ipynb"))


def test_every_chapter_notebook_is_in_the_toc():
    listed = set(_toc_files())
    assert NOTEBOOKS, "no chapter notebooks found"
    for nb in NOTEBOOKS:
        assert nb.stem in listed, f"{nb.name} is not listed in book/_toc.yml"
    for stem in listed:
        sources = list(BOOK.glob(f"{stem}.*"))
        assert len(sources) == 1, (
            f"{stem} must have exactly one source file in book/, found {sources}"
        )


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_no_checked_cell_glues_a_number(path):
    """A cell whose output nbval compares prints rounded, portable text; the full-precision
    numbers the prose quotes are glued in an unchecked cell (last digits differ across CPUs)."""
    nb = json.loads(path.read_text())
    for cell in nb["cells"]:
        source = "".join(cell["source"])
        if cell["cell_type"] != "code" or "# NBVAL_CHECK_OUTPUT" not in source:
            continue
        glued = [
            o
            for o in cell.get("outputs", [])
            if any(k.startswith("application/papermill.record/") for k in o.get("data", {}))
        ]
        assert not glued, f"{path.name}, cell {cell.get('id')}: glue in a checked cell"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_chapter_follows_the_notebook_conventions(path):
    nb = json.loads(path.read_text())
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    first = code[0]
    assert "parameters" in first.get("metadata", {}).get("tags", []), (
        "first code cell must be tagged 'parameters'"
    )
    src = "".join(first["source"])
    assert "SEED" in src, "the parameters cell must define SEED"
    names = [
        line.split("=")[0].strip()
        for line in src.splitlines()
        if "=" in line and not line.startswith("#")
    ]
    assert all(n.isupper() for n in names), f"parameter names must be UPPER_CASE: {names}"
    # the parameters are checked in one hidden call, right after the install cell; no check is
    # shown to the reader (the spec is ebmlib.book.specs)
    check = code[2]
    assert check.get("id") == "check-parameters", "the third code cell checks the parameters"
    assert "remove-cell" in check.get("metadata", {}).get("tags", [])
    assert f'check_parameters("{path.stem}", globals())' in "".join(check["source"])
    for c in code[3:]:
        src = "".join(c["source"])
        assert "check_parameters" not in src and "ebmlib.validation" not in src, (
            "the visible cells do no parameter checking"
        )
    assert any("# NBVAL_CHECK_OUTPUT" in "".join(c["source"]) for c in code), (
        "no cell marked # NBVAL_CHECK_OUTPUT"
    )
    assert any("assert " in "".join(c["source"]) for c in code), "a chapter asserts its claims"
    # claims: shown once before the exercises, asserted in the last (hidden) cell, so that a run
    # at other parameters reaches the exercises and still ends by naming every failed claim
    show = [i for i, c in enumerate(nb["cells"]) if "claims.show()" in "".join(c["source"])]
    exercises = [
        i
        for i, c in enumerate(nb["cells"])
        if c["cell_type"] == "markdown" and "".join(c["source"]).lstrip().startswith("## Exercises")
    ]
    assert len(show) == 1 and exercises and show[0] < exercises[0], "claims shown before exercises"
    assert "".join(code[-1]["source"]).rstrip().endswith("claims.verify(display=False)"), (
        "the last code cell asserts the claims"
    )
    assert "remove-cell" in code[-1]["metadata"].get("tags", [])
    for c in code:
        assert c.get("execution_count") is not None, "commit the chapter executed"
        if "plt.show()" in "".join(c["source"]):
            assert any("image/png" in o.get("data", {}) for o in c.get("outputs", [])), (
                "a plotting cell has no committed figure "
                "(was MPLBACKEND set to a non-inline backend?)"
            )
        for out in c.get("outputs", []):
            assert out["output_type"] != "error", f"committed error output: {out.get('ename')}"
            text = "".join(out.get("text", ""))
            assert "it/s]" not in text and "s/it]" not in text, "a progress bar was committed"


# Each case launches a papermill kernel (about 5 s). The default run keeps one launch as a smoke
# test of the mechanism; the other chapters' cases run under the `slow` marker (`make test-slow`,
# and CI).
BAD_PARAMETERS = [
    ("01_mle_gradient.ipynb", ["-p", "THETA_STAR", "-1"], "THETA_STAR must be a finite number > 0"),
    (
        "02_importance_sampling_mle.ipynb",
        ["-y", "M_VALUES: [-5, 100]"],
        "M_VALUES[0] must be an integer >= 2",
    ),
    (
        "02_importance_sampling_mle.ipynb",
        ["-y", "Q1: [2.0, 0.0]"],
        "Q1[1] (standard deviation) must be a finite number > 0",
    ),
    ("03_proposal_choice.ipynb", ["-p", "NARROW_SD", "0"], "NARROW_SD must be a finite number > 0"),
    ("03_proposal_choice.ipynb", ["-p", "GRAD_M", "-3"], "GRAD_M must be an integer >= 2"),
    (
        "04_mcmc_samplers.ipynb",
        ["-y", "ULA_STEPS: [0.1, -0.2]"],
        "ULA_STEPS[1] must be a finite number in (0, 1)",
    ),
    (
        "04_mcmc_samplers.ipynb",
        ["-p", "CORRELATION", "1.5"],
        "CORRELATION must be a finite number in (-0.999, 0.999)",
    ),
    (
        "05_contrastive_divergence.ipynb",
        ["-y", "CD_KS: [1, 0]"],
        "CD_KS[1] must be an integer >= 1",
    ),
    (
        "05_contrastive_divergence.ipynb",
        ["-p", "RESTART", "1.5"],
        "RESTART must be a finite number in [0, 1]",
    ),
    (
        "05_contrastive_divergence.ipynb",
        ["-p", "LONG_STEPS", "500"],
        "LONG_STEPS must be >= MLP_STEPS = 1000, got 500",
    ),
    ("05_contrastive_divergence.ipynb", ["-p", "DEVICE", "gpu"], "DEVICE must be a torch device"),
    (
        "06_score_matching.ipynb",
        ["-y", "SIGMAS: [0.1, -0.2]"],
        "SIGMAS[1] must be a finite number > 0",
    ),
    ("06_score_matching.ipynb", ["-p", "BATCH", "0"], "BATCH must be an integer >= 2"),
    (
        "07_noise_contrastive_estimation.ipynb",
        ["-y", "NU_VALUES: [0, 10]"],
        "NU_VALUES[0] must be a finite number > 0",
    ),
    (
        "07_noise_contrastive_estimation.ipynb",
        ["-y", "NOISE_SCALES: [-1.0]"],
        "NOISE_SCALES[0] must be a finite number > 0",
    ),
    ("08_rbm_ais.ipynb", ["-p", "N_HIDDEN", "40"], "N_HIDDEN must be an integer in [1, 22]"),
    (
        "08_rbm_ais.ipynb",
        ["-y", "AIS_TEMPERATURES: [100, 1]"],
        "AIS_TEMPERATURES[1] must be an integer >= 2",
    ),
    (
        "08_rbm_ais.ipynb",
        ["-p", "LEARNING_RATE", "-0.1"],
        "LEARNING_RATE must be a finite number > 0",
    ),
    (
        "09_head_to_head.ipynb",
        ["-y", "THETA_STAR: [-1.0, -0.25]"],
        "THETA_STAR[1] (theta_2) must be a finite number > 0",
    ),
    ("09_head_to_head.ipynb", ["-y", "N_VALUES: [100, 5]"], "N_VALUES[1] must be an integer >= 20"),
    (
        "09_head_to_head.ipynb",
        ["-y", "DSM_SIGMAS: [0.1, 0]"],
        "DSM_SIGMAS[1] must be a finite number > 0",
    ),
    (
        "10_neural_ebm_digits.ipynb",
        ["-p", "GRBM_HIDDEN", "20"],
        "GRBM_HIDDEN must be an integer in [1, 16]",
    ),
    (
        "10_neural_ebm_digits.ipynb",
        ["-y", "LEARNING_RATES: {DSM: 0.001}"],
        "LEARNING_RATES must be a dict with exactly the keys",
    ),
]


SMOKE = {("01_mle_gradient.ipynb", "THETA_STAR")}


def _bad_parameter_cases():
    for name, args, message in BAD_PARAMETERS:
        param = args[1].split(":")[0]
        marks = () if (name, param) in SMOKE else (pytest.mark.slow,)
        yield pytest.param(name, args, message, id=f"{name[:2]}-{param}", marks=marks)


@pytest.mark.parametrize("name, args, message", list(_bad_parameter_cases()))
def test_bad_parameter_fails_early_and_overwrites_nothing(name, args, message, tmp_path):
    path = BOOK / name
    before = hashlib.sha256(path.read_bytes()).hexdigest()
    out = tmp_path / "out.ipynb"
    proc = subprocess.run(
        [sys.executable, "-m", "papermill", str(path), str(out), *args, "--cwd", str(BOOK)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode != 0
    assert message in proc.stderr + proc.stdout
    assert hashlib.sha256(path.read_bytes()).hexdigest() == before
    executed = json.loads(out.read_text())
    ran = [c for c in executed["cells"] if c["cell_type"] == "code" and c.get("execution_count")]
    # parameters, papermill's injected cell, the hidden install cell, then the failing hidden
    # check-parameters cell
    assert len(ran) <= 4, "the error must come from the first cells, before any computation"


def test_readme_links_every_chapter_with_its_figure():
    readme = (BOOK.parent / "README.md").read_text()
    for path in sorted(BOOK.glob("[0-9][0-9]_*.ipynb")):
        assert f"(book/{path.name})" in readme, f"README does not link {path.name}"
        figure = BOOK.parent / "figures" / f"{path.stem}.png"
        assert f'src="figures/{path.stem}.png"' in readme and figure.is_file(), (
            f"no README figure for {path.stem}"
        )
        assert figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_every_bibliography_entry_is_cited():
    """Each entry of references.bib is cited by some chapter or page (a bibliography lists what the
    book uses)."""
    import re

    keys = re.findall(r"@\w+\{([^,\s]+),", (BOOK / "references.bib").read_text())
    sources = [p.read_text() for p in [*BOOK.glob("*.ipynb"), *BOOK.glob("*.md")]]
    cited = re.compile(r"\{cite(?::[a-z]+)?\}`([^`]+)`")
    used = {k.strip() for s in sources for m in cited.findall(s) for k in m.split(",")}
    assert keys and not [k for k in keys if k not in used], [k for k in keys if k not in used]
