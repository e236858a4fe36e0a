"""The pinned environment: requirements.txt and environment.yml must agree, every pin exact."""

import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def _requirements():
    pins = {}
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        assert re.fullmatch(r"[A-Za-z0-9_.\-]+==[A-Za-z0-9_.+\-]+", line), (
            f"not an exact pin: {line!r}"
        )
        name, version = line.split("==")
        pins[name.lower().replace("_", "-")] = version
    return pins


def _conda_pip():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip = [d for d in env["dependencies"] if isinstance(d, dict) and "pip" in d][0]["pip"]
    return {p.split("==")[0].lower().replace("_", "-"): p.split("==")[1] for p in pip}, env


def test_requirements_are_exact_pins_with_the_cpu_torch():
    pins = _requirements()
    assert pins["torch"] == "2.13.0"
    assert pins["jupyter-book"] == "1.0.4.post1"
    assert pins["sphinx-mathjax-offline"] == "0.0.2"


def test_environment_yml_lists_the_same_versions():
    req = _requirements()
    conda, env = _conda_pip()
    assert conda == req
    assert "python=3.11" in env["dependencies"]
