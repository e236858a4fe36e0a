"""Copy one representative figure of each chapter, from its committed outputs, to ``figures/`` for
the README.

The figures are the chapters' own executed outputs (nothing is re-plotted); re-run this after
``make execute``.

Usage:  python tools/readme_figures.py
"""

from __future__ import annotations

import base64
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parent.parent
#: chapter file stem -> which of its figures (0-based, in order of appearance)
CHOICE = {
    "01_mle_gradient": 0,
    "02_importance_sampling_mle": 0,
    "03_proposal_choice": 0,
    "04_mcmc_samplers": 2,
    "05_contrastive_divergence": 1,
    "06_score_matching": 0,
    "07_noise_contrastive_estimation": 0,
    "08_rbm_ais": 1,
    "09_head_to_head": 1,
    "10_neural_ebm_digits": 0,
}


def figures(path: Path) -> list[bytes]:
    nb = nbformat.read(path, as_version=4)
    return [
        base64.b64decode(out["data"]["image/png"])
        for cell in nb.cells
        if cell.cell_type == "code"
        for out in cell.get("outputs", [])
        if "image/png" in out.get("data", {})
    ]


def main() -> None:
    out = ROOT / "figures"
    out.mkdir(exist_ok=True)
    for stem, index in CHOICE.items():
        images = figures(ROOT / "book" / f"{stem}.ipynb")
        if index >= len(images):
            raise SystemExit(f"{stem} has {len(images)} figures, not {index + 1}: update CHOICE")
        (out / f"{stem}.png").write_bytes(images[index])
        print(f"figures/{stem}.png")


if __name__ == "__main__":
    main()
