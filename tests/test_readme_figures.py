"""The README's figures are the chapters' committed outputs, byte for byte (``make execute`` copies
them with ``tools/readme_figures.py``)."""

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
readme_figures = pytest.importorskip("readme_figures")
sys.path.pop(0)


@pytest.mark.parametrize("stem", sorted(readme_figures.CHOICE))
def test_readme_figure_is_the_chapters_output(stem):
    images = readme_figures.figures(ROOT / "book" / f"{stem}.ipynb")
    index = readme_figures.CHOICE[stem]
    assert index < len(images), f"{stem} has {len(images)} figures; update CHOICE"
    committed = (ROOT / "figures" / f"{stem}.png").read_bytes()
    assert committed == images[index], (
        f"figures/{stem}.png is not figure {index} of book/{stem}.ipynb: run "
        "`python tools/readme_figures.py` (make execute does)"
    )


def test_readme_shows_every_figure():
    readme = (ROOT / "README.md").read_text()
    for stem in readme_figures.CHOICE:
        assert f"figures/{stem}.png" in readme, stem
