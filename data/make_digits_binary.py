"""Regenerate the binarized digits in this folder, bit for bit, from scikit-learn's bundled copy.

Source: scikit-learn's ``load_digits()``, the test part of the UCI "Optical Recognition of Handwritten Digits" data
(Alpaydin & Kaynak 1998, CC BY 4.0): 1797 images of 8x8 pixels with grey levels 0..16.

Rule: a pixel is 1 when its grey level exceeds half the range, ``x / 16 > 0.5`` (that is, ``x >= 9``), else 0.
Split: a fixed permutation, ``numpy.random.default_rng(2008).permutation(1797)``; its first 1500 images are the
training set and the remaining 297 the test set, each file in permutation order.

File format: one image per line, ``<label> <64 characters of 0/1, row by row>``.

Usage:  python data/make_digits_binary.py [--out FOLDER]   (then compare the sha256 sums with README.md)

The files are package data: by default they are written to ``ebmlib/datasets/``, where
``ebmlib.data.load_digits_binary`` reads them through ``importlib.resources``.
"""

from __future__ import annotations

import argparse
import hashlib
from pathlib import Path

import numpy as np
from sklearn.datasets import load_digits

N_TRAIN = 1500
SPLIT_SEED = 2008
HERE = Path(__file__).resolve().parent
PACKAGE_DATA = HERE.parent / "ebmlib" / "datasets"


def binarize(images: np.ndarray) -> np.ndarray:
    """Grey levels 0..16 to 0/1 by the rule ``x / 16 > 0.5``."""
    return (images / 16.0 > 0.5).astype(np.uint8)


def lines(bits: np.ndarray, labels: np.ndarray) -> str:
    return "".join(f"{int(y)} {''.join(map(str, row))}\n" for row, y in zip(bits, labels))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Regenerate the binarized digits bit for bit.")
    parser.add_argument("--out", type=Path, default=PACKAGE_DATA,
                        help="folder to write to (default: the package data, ebmlib/datasets/)")
    out = parser.parse_args(argv).out
    out.mkdir(parents=True, exist_ok=True)
    digits = load_digits()
    bits, labels = binarize(digits.data), digits.target
    order = np.random.default_rng(SPLIT_SEED).permutation(len(labels))
    parts = {"digits_binary_train.txt": order[:N_TRAIN], "digits_binary_test.txt": order[N_TRAIN:]}
    for name, idx in parts.items():
        text = lines(bits[idx], labels[idx]).encode("ascii")
        (out / name).write_bytes(text)
        print(f"{name}: {len(idx)} images, sha256 {hashlib.sha256(text).hexdigest()}")


if __name__ == "__main__":
    main()
