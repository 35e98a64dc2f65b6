"""The two-spirals data and the network's forward pass, shared by train.py and evaluate.py."""

from __future__ import annotations

import numpy as np

HIDDEN = 32


def spirals(seed: int, n: int = 1000, noise: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """Two interleaved spirals in the plane; `seed` 1 is the training set, 2 the validation set."""
    rng = np.random.default_rng(seed)
    t = np.sqrt(rng.uniform(0, 1, n)) * 3 * np.pi
    label = rng.integers(0, 2, n)
    sign = np.where(label == 0, 1.0, -1.0)
    x = np.stack([sign * t * np.cos(t), sign * t * np.sin(t)], axis=1) / (3 * np.pi)
    return x + rng.normal(0, noise / (3 * np.pi), x.shape), label


def forward(state: dict[str, np.ndarray], x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Hidden activations and class probabilities of a 2 -> 32 -> 32 -> 2 tanh network."""
    h1 = np.tanh(x @ state["w1"] + state["b1"])
    h2 = np.tanh(h1 @ state["w2"] + state["b2"])
    logits = h2 @ state["w3"] + state["b3"]
    logits -= logits.max(axis=1, keepdims=True)
    probs = np.exp(logits)
    return h1, h2, probs / probs.sum(axis=1, keepdims=True)
