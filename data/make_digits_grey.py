"""Regenerate the grey-level digits (package data), bit for bit, from scikit-learn's bundled copy.

Source: scikit-learn's ``load_digits()``, the test part of the UCI "Optical Recognition of Handwritten Digits" data
(Alpaydin & Kaynak 1998, CC BY 4.0): 1797 images of 8x8 pixels with grey levels 0..16.

Split: the permutation of the binarized set, ``numpy.random.default_rng(2008).permutation(1797)``, so that both
versions share their test images: its first 1250 images are the training set, the next 250 the validation set,
and the last 297 the test set (the binarized test set).

File format: one image per line, ``<split> <label> <64 grey levels 0..16 separated by commas>``, with split one of
``train``, ``valid``, ``test``, in permutation order.

Usage:  python data/make_digits_grey.py [--out FOLDER]   (then compare the sha256 with README.md)
"""

from __future__ import annotations

import argparse
import hashlib
from pathlib import Path

import numpy as np
from sklearn.datasets import load_digits

N_TRAIN, N_VALID = 1250, 250
SPLIT_SEED = 2008
NAME = "digits_grey.txt"
PACKAGE_DATA = Path(__file__).resolve().parent.parent / "ebmlib" / "datasets"


def lines(images: np.ndarray, labels: np.ndarray, order: np.ndarray) -> str:
    split = np.array(["train"] * N_TRAIN + ["valid"] * N_VALID + ["test"] * (len(order) - N_TRAIN - N_VALID))
    return "".join(f"{s} {int(labels[i])} {','.join(str(int(p)) for p in images[i])}\n"
                   for s, i in zip(split, order))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Regenerate the grey-level digits bit for bit.")
    parser.add_argument("--out", type=Path, default=PACKAGE_DATA,
                        help="folder to write to (default: the package data, ebmlib/datasets/)")
    out = parser.parse_args(argv).out
    out.mkdir(parents=True, exist_ok=True)
    digits = load_digits()
    order = np.random.default_rng(SPLIT_SEED).permutation(len(digits.target))
    text = lines(digits.data, digits.target, order).encode("ascii")
    (out / NAME).write_bytes(text)
    print(f"{NAME}: {len(order)} images, sha256 {hashlib.sha256(text).hexdigest()}")


if __name__ == "__main__":
    main()
