"""Each chapter's parameter spec (``ebmlib.book.specs``): it matches the parameters cell, passes
the defaults and the scale presets, refuses every kind of bad value with the parameter's name,
enforces the rules between parameters, and is what ``python -m ebmlib.reproduce`` checks its
overrides against, without executing a notebook."""

from __future__ import annotations

import ast
import json
import math
import re
from pathlib import Path

import pytest
import torch
import yaml

from ebmlib import reproduce
from ebmlib.book import check_parameters
from ebmlib.book.parameters import (
    Param,
    ParameterSpec,
    Rule,
    choice,
    device,
    fixed,
    flag,
    integer,
    mapping,
    read_parameters_cell,
    real,
    sequence,
)
from ebmlib.book.specs import SPECS, spec_for

BOOK = Path(__file__).resolve().parents[1] / "book"
CHAPTERS = sorted(BOOK.glob("[0-9][0-9]_*.ipynb"))
STEMS = [p.stem for p in CHAPTERS]


def parameters_cell(path: Path) -> str:
    cells = json.loads(path.read_text())["cells"]
    first = next(c for c in cells if c["cell_type"] == "code")
    assert "parameters" in first["metadata"].get("tags", [])
    return "".join(first["source"])


def defaults(stem: str) -> dict:
    return read_parameters_cell(parameters_cell(BOOK / f"{stem}.ipynb"))


def test_every_chapter_has_a_spec_and_every_spec_a_chapter():
    assert STEMS and sorted(SPECS) == STEMS


@pytest.mark.parametrize("stem", STEMS)
def test_the_spec_names_the_parameters_cell_in_order(stem):
    tree = ast.parse(parameters_cell(BOOK / f"{stem}.ipynb"))
    names = [t.id for node in tree.body if isinstance(node, ast.Assign) for t in node.targets]
    assert names == list(SPECS[stem].names)
    assert list(defaults(stem)) == names


@pytest.mark.parametrize("stem", STEMS)
def test_the_defaults_pass_unchanged_but_for_normalization(stem):
    values = defaults(stem)
    checked = check_parameters(stem, {**values, "unrelated": object(), "np": None})
    assert list(checked) == list(SPECS[stem].names), "exactly the spec's names come back"
    for name, value in values.items():
        if isinstance(value, (tuple, list)) and isinstance(checked[name], list):
            value = list(value)  # a sequence comes back as a (possibly sorted) list
        if isinstance(value, list) and all(isinstance(v, (int, float)) for v in value):
            assert sorted(checked[name]) == sorted(value), name
        else:
            assert checked[name] == value, name
    if "DEVICE" in checked:
        assert checked["DEVICE"] == "cpu"


def test_the_scale_presets_pass():
    scales = yaml.safe_load((BOOK / "scales.yml").read_text())
    assert scales
    for stem, presets in scales.items():
        for preset in presets.values():
            assert set(preset) <= set(SPECS[stem].names)
            SPECS[stem].check({**defaults(stem), **preset})


def _bad_values(param: Param) -> list:
    """(value, exception type) pairs that ``param`` must refuse."""
    bad: list = []
    if param.kind == "int":
        bad += [(2.5, TypeError), ("3", TypeError), (True, TypeError)]
        if param.minimum is not None:
            bad.append((int(param.minimum) - 1, ValueError))
        if param.maximum is not None:
            bad.append((int(param.maximum) + 1, ValueError))
    elif param.kind == "real":
        bad += [
            ("0.5", TypeError),
            (None, TypeError),
            (math.nan, ValueError),
            (math.inf, ValueError),
        ]
        outside = [
            param.minimum - 0.5 if param.minimum is not None else None,
            param.above,  # an exclusive bound is itself outside
            param.maximum + 0.5 if param.maximum is not None else None,
            param.below,
        ]
        bad += [(v, ValueError) for v in outside if v is not None]
    elif param.kind == "sequence":
        bad += [(5, TypeError), ("abc", TypeError), ([], ValueError)]
        item_bad = _bad_values(param.item)
        good = _a_good_value(param.item)
        n = param.length or max(param.min_distinct, 1)
        for value, error in item_bad[:2]:
            bad.append(([good] * (n - 1) + [value], error))
        if param.length is not None:
            bad.append(([good] * (param.length + 1), ValueError))
        if param.min_distinct > 1:
            bad.append(([good] * param.min_distinct, ValueError))
    elif param.kind == "tuple":
        goods = [_a_good_value(p) for p in param.items]
        bad += [(5, TypeError), (goods[:-1], ValueError), (goods + goods[:1], ValueError)]
        for i, p in enumerate(param.items):
            for value, error in (
                _bad_values(p)[:1] + [b for b in _bad_values(p) if b[1] is ValueError][:1]
            ):
                bad.append((goods[:i] + [value] + goods[i + 1 :], error))
    elif param.kind == "dict":
        good = {k: _a_good_value(param.item) for k in param.keys}
        bad += [([1, 2], TypeError), ({}, ValueError), ({**good, "extra": 1.0}, ValueError)]
        first = param.keys[0]
        bad += [({**good, first: v}, e) for v, e in _bad_values(param.item)[:2]]
    elif param.kind == "device":
        bad += [(3, TypeError), ("gpu", ValueError), ("meta", ValueError), ("cuda:99", ValueError)]
    return bad


def _a_good_value(param: Param):
    if param.kind == "int":
        return int(param.minimum if param.minimum is not None else 1)
    if param.kind == "real":
        lo = param.minimum if param.minimum is not None else param.above
        hi = param.maximum if param.maximum is not None else param.below
        if lo is not None and hi is not None:
            return (lo + hi) / 2
        return float(lo + 1) if lo is not None else float(hi - 1) if hi is not None else 0.0
    if param.kind == "tuple":
        return [_a_good_value(p) for p in param.items]
    raise AssertionError(f"no good value for a {param.kind} here")


def _bad_cases():
    for stem, spec in SPECS.items():
        for name, param in spec.params.items():
            for value, error in _bad_values(param):
                yield pytest.param(stem, name, value, error, id=f"{stem[:2]}-{name}-{value!r}")


@pytest.mark.parametrize("stem, name, value, error", list(_bad_cases()))
def test_every_kind_of_bad_value_is_refused_naming_the_parameter(stem, name, value, error):
    with pytest.raises(error) as info:
        check_parameters(stem, {**defaults(stem), name: value})
    assert str(info.value).startswith(name), str(info.value)


RULES = [
    ("02_importance_sampling_mle", {"THETA_GRID": (6.0, 0.5, 111)}, "THETA_GRID must have min <"),
    ("03_proposal_choice", {"THETA_GRID": (1.0, 1.0, 11)}, "THETA_GRID must have min < max"),
    ("04_mcmc_samplers", {"N_LEAPFROG": 60}, "GRAD_BUDGET must be >= 20 * N_LEAPFROG = 1200"),
    ("04_mcmc_samplers", {"PT_TEMPERATURES": 51}, "PT_TEMPERATURES must be <= GRAD_BUDGET // 20"),
    ("05_contrastive_divergence", {"LONG_STEPS": 999}, "LONG_STEPS must be >= MLP_STEPS = 1000"),
    ("05_contrastive_divergence", {"BATCH": 3000}, "BUFFER must be >= BATCH = 3000, got 2000"),
    ("07_noise_contrastive_estimation", {"NU_VALUES": [0.0009]}, "NU_VALUES must give at least"),
    (
        "07_noise_contrastive_estimation",
        {"N_OBS": 10, "NU_VALUES": [0.04, 1]},
        "NU_VALUES must give at least one noise point, round(nu * N_OBS) >= 1, at N_OBS = 10",
    ),
    ("08_rbm_ais", {"TRACK_EVERY": 26}, "TRACK_EVERY must be <= N_EPOCHS // 2 = 25, got 26"),
    ("09_head_to_head", {"BOUNDS": (6.0, -6.0)}, "BOUNDS must have low < high"),
    ("09_head_to_head", {"CD_STEPS": 59}, "CD_STEPS must be >= CD_BURN_IN + 10 = 60, got 59"),
    ("10_neural_ebm_digits", {"BUFFER": 127}, "BUFFER must be >= BATCH = 128"),
    ("10_neural_ebm_digits", {"AIS_MAX_TEMPERATURES": 599}, "AIS_MAX_TEMPERATURES must be >= 2 *"),
    ("10_neural_ebm_digits", {"TRACK_EVERY": 2001}, "TRACK_EVERY must be <= STEPS = 2000"),
]


@pytest.mark.parametrize("stem, overrides, message", RULES, ids=lambda x: str(x)[:30])
def test_the_rules_between_parameters_are_enforced(stem, overrides, message):
    with pytest.raises(ValueError, match="^" + re.escape(message)):
        check_parameters(stem, {**defaults(stem), **overrides})


@pytest.mark.parametrize(
    "stem, overrides",
    [
        ("04_mcmc_samplers", {"N_LEAPFROG": 50, "PT_TEMPERATURES": 50}),  # both at the bound
        ("05_contrastive_divergence", {"LONG_STEPS": 1000, "BUFFER": 256}),
        ("08_rbm_ais", {"TRACK_EVERY": 25}),
        ("09_head_to_head", {"CD_STEPS": 60}),
        ("10_neural_ebm_digits", {"AIS_MAX_TEMPERATURES": 600, "TRACK_EVERY": 2000}),
    ],
)
def test_values_at_a_rule_bound_pass(stem, overrides):
    check_parameters(stem, {**defaults(stem), **overrides})


def test_values_are_normalized_as_the_chapters_rely_on():
    ch01 = check_parameters(
        "01_mle_gradient",
        {**defaults("01_mle_gradient"), "POLY_THETA": [1, 2], "M_VALUES": [50, 5]},
    )
    assert ch01["POLY_THETA"] == (1.0, 2.0) and isinstance(ch01["POLY_THETA"][0], float)
    assert ch01["M_VALUES"] == [5, 50]
    ch03 = check_parameters(
        "03_proposal_choice", {**defaults("03_proposal_choice"), "DIMS": (8, 2, 8)}
    )
    assert ch03["DIMS"] == [2, 8]
    assert ch03["THETA_GRID"] == (0.5, 6.0, 111)
    stem = "07_noise_contrastive_estimation"
    ch07 = check_parameters(stem, {**defaults(stem), "CNCE_EPS": (0.01, 0.3, 0.01), "MLP_NU": 3})
    assert ch07["CNCE_EPS"] == [0.3, 0.01] and ch07["MLP_NU"] == 3.0
    stem = "10_neural_ebm_digits"
    rates = {"NCE": 1, "DSM": 2, "PCD-Langevin": 3, "PCD-HMC": 4}
    ch10 = check_parameters(stem, {**defaults(stem), "LEARNING_RATES": rates})
    assert list(ch10["LEARNING_RATES"]) == ["PCD-HMC", "PCD-Langevin", "DSM", "NCE"]
    assert ch10["LEARNING_RATES"]["DSM"] == 2.0
    ch09 = check_parameters(
        "09_head_to_head", {**defaults("09_head_to_head"), "IS_PROPOSALS": [[0, 1]]}
    )
    assert ch09["IS_PROPOSALS"] == [(0.0, 1.0)]


def test_device_accepts_the_cpu_and_an_available_accelerator(monkeypatch):
    param = device()
    assert param.check("cpu", "DEVICE") == "cpu"
    assert param.check(torch.device("cpu"), "DEVICE") == "cpu"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ValueError, match="^DEVICE must be .*0 CUDA device"):
        param.check("cuda", "DEVICE")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert param.check("cuda", "DEVICE") == "cuda"
    assert param.check("cuda:1", "DEVICE") == "cuda:1"
    with pytest.raises(ValueError, match="^DEVICE must be .*2 CUDA device"):
        param.check("cuda:2", "DEVICE")


def test_the_spec_machinery():
    assert flag().check(True, "F") is True
    with pytest.raises(TypeError, match="^F must be True or False, got int 1"):
        flag().check(1, "F")
    assert choice("a", "b").check("b", "C") == "b"
    with pytest.raises(ValueError, match="^C must be one of 'a', 'b', got 'c'"):
        choice("a", "b").check("c", "C")
    with pytest.raises(TypeError, match="^C must be a string"):
        choice("a", "b").check(1, "C")
    assert real(0, 1).describe() == "a finite number in [0, 1]"
    assert real(above=0, below=1).describe() == "a finite number in (0, 1)"
    assert integer(minimum=None).describe() == "an integer"
    assert sequence(integer(), length=2).describe().startswith("a list or tuple of 2 entries")
    assert fixed(real(), real(), labels=("a", "b")).describe() == "a tuple (a, b)"
    assert mapping(("x",), real()).check({"x": 1}, "M") == {"x": 1.0}
    with pytest.raises(ValueError, match="kind"):
        Param("complex")
    with pytest.raises(ValueError, match="a rule reads"):
        ParameterSpec({"A": integer()}, rules=(Rule(("A", "B"), lambda a, b: a < b, ""),))
    spec = ParameterSpec(
        {"A": integer(), "B": integer()},
        rules=(Rule(("A", "B"), lambda a, b: a < b, "A must be < B = {B}, got {A}"),),
    )
    assert spec.check({"A": 1, "B": 2, "C": 3}) == {"A": 1, "B": 2}
    with pytest.raises(ValueError, match="^A must be < B = 2, got 3$"):
        spec.check({"A": 3, "B": 2})
    with pytest.raises(ValueError, match="B not set"):
        spec.check({"A": 1})
    with pytest.raises(KeyError, match="no parameter spec for chapter '99_nope'"):
        spec_for("99_nope")


def test_a_parameters_cell_is_read_without_running_it():
    source = "# comment\nA = 1  # note\nB = (-1.0, 2)\nC = {'x': [1, 2]}\nD = 'cpu'\n"
    assert read_parameters_cell(source) == {"A": 1, "B": (-1.0, 2), "C": {"x": [1, 2]}, "D": "cpu"}
    for source in ("import os\nA = 1", "A = B = 1", "A = len('x')", "A, B = 1, 2"):
        with pytest.raises(ValueError, match="parameters cell"):
            read_parameters_cell(source)


@pytest.fixture
def sabotaged_book(tmp_path, monkeypatch):
    """The book's chapters, every cell after the parameters replaced by one that leaves a mark."""
    nbformat = pytest.importorskip("nbformat", reason="the reproduce extra is not installed")
    book = tmp_path / "book"
    book.mkdir()
    for path in CHAPTERS:
        nb = nbformat.read(path, as_version=4)
        code = [c for c in nb.cells if c.cell_type == "code"]
        for cell in code[1:]:
            cell.source = "open('ran', 'w').close()\nraise RuntimeError('a chapter cell ran')"
        nbformat.write(nb, book / path.name)
    monkeypatch.chdir(tmp_path)
    return book


BAD_OVERRIDES = {
    "01_mle_gradient": ("POLY_THETA", [1.0, -1.0]),
    "02_importance_sampling_mle": ("Q2", [0.0, -1.0]),
    "03_proposal_choice": ("WIDE_FACTOR", 0.7),
    "04_mcmc_samplers": ("PT_BETA_MIN", 1.0),
    "05_contrastive_divergence": ("LONG_STEPS", 10),
    "06_score_matching": ("DEVICE", "tpu"),
    "07_noise_contrastive_estimation": ("CNCE_EPS", [0.1]),
    "08_rbm_ais": ("MOMENTUM", 1.0),
    "09_head_to_head": ("N_RUNS", 2.0),
    "10_neural_ebm_digits": ("LAMBDA", 0.5),
}


def test_preflight_checks_every_chapter_against_its_spec_without_running_it(
    sabotaged_book, tmp_path
):
    chapters = reproduce.find_chapters(sabotaged_book)
    assert sorted(BAD_OVERRIDES) == [c.stem for c in chapters]
    for chapter in chapters:
        assert chapter.spec is SPECS[chapter.stem]
        reproduce.preflight(chapter, {})
        name, value = BAD_OVERRIDES[chapter.stem]
        with pytest.raises(reproduce.ReproduceError, match=rf"^{chapter.stem}: \w+Error: {name}"):
            reproduce.preflight(chapter, {name: value})
    assert not (tmp_path / "ran").exists(), "a chapter cell was executed"


def test_the_command_line_refuses_a_bad_override_before_anything_runs(
    sabotaged_book, tmp_path, capsys
):
    out = tmp_path / "outputs"
    args = ["--book", str(sabotaged_book), "--out", str(out), "05", "09", "-p", "LONG_STEPS", "10"]
    assert reproduce.main(args) == 2
    err = capsys.readouterr().err
    assert "05_contrastive_divergence: ValueError: LONG_STEPS must be >= MLP_STEPS = 1000" in err
    assert reproduce.main([*args[:6], "-p", "N_RUNZ", "5"]) == 2
    assert "no selected chapter has a parameter 'N_RUNZ'" in capsys.readouterr().err
    assert reproduce.main([*args[:6], "--seeds", "0:3", "-p", "N_RUNS", "-1"]) == 2
    assert "09_head_to_head: ValueError: N_RUNS must be an integer >= 20" in capsys.readouterr().err
    assert not out.exists() and not (tmp_path / "ran").exists()
