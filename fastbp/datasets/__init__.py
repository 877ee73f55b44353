"""Data sets that ship with fastbp."""

import gzip
from importlib import resources

import numpy as np

__all__ = ["digits"]


def digits():
    """The UCI optical handwritten digits: 1,797 8×8 images, pixel counts 0..16.

    Returns
    -------
    X : ndarray, float32, shape (1797, 64)
        Pixels scaled to [0, 1] (divided by 16).
    y : ndarray, int64, shape (1797,)
        The digit, 0..9.

    Source: E. Alpaydin and C. Kaynak, UCI Machine Learning Repository (CC BY 4.0),
    the copy scikit-learn ships as ``digits.csv.gz``.
    """
    with resources.files(__package__).joinpath("digits.csv.gz").open("rb") as f:
        data = np.loadtxt(gzip.open(f), delimiter=",", dtype=np.float32)
    return data[:, :-1] / np.float32(16.0), data[:, -1].astype(np.int64)
