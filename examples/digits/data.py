"""scikit-learn's 8×8 digits (1,797 images, shipped with the package) split once, seeded."""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import torch
from sklearn.datasets import load_digits


@dataclass(frozen=True)
class Split:
    features: torch.Tensor
    labels: torch.Tensor


@dataclass(frozen=True)
class Digits:
    train: Split
    validation: Split
    test: Split


@functools.lru_cache(maxsize=4)
def digits(seed: int = 0, validation_fraction: float = 0.2, test_fraction: float = 0.2) -> Digits:
    """Train/validation/test splits of a permutation drawn with `seed`; pixels scaled to [0, 1].

    Cached because every trial and every evaluation needs it; the tensors must not be modified.
    """
    bunch = load_digits()
    features = torch.as_tensor(np.asarray(bunch.data) / 16.0, dtype=torch.float32)
    labels = torch.as_tensor(np.asarray(bunch.target), dtype=torch.int64)
    order = torch.as_tensor(np.random.default_rng(seed).permutation(len(labels)))
    n_val = int(len(labels) * validation_fraction)
    n_test = int(len(labels) * test_fraction)
    parts = torch.split(order, [len(labels) - n_val - n_test, n_val, n_test])
    train, validation, test = (Split(features[idx], labels[idx]) for idx in parts)
    return Digits(train, validation, test)
