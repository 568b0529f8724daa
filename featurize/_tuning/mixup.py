"""MixUp (Zhang et al. 2018): train on convex combinations of pairs of images and of
their one-hot labels, a regulariser against memorising a small training set."""

from __future__ import annotations

import numpy as np


class MixedBatches:
    """Batches ``(inputs, labels, weights)`` of ``batches``, each mixed with a
    shuffled copy of itself by ``lam ~ Beta(alpha, alpha)``; labels become soft
    targets over ``n_classes`` (sample weights are mixed alike)."""

    def __init__(self, batches, alpha: float, n_classes: int, rng):
        self.batches = batches
        self.alpha = alpha
        self.n_classes = n_classes
        self.rng = rng

    def __len__(self) -> int:
        return len(self.batches)

    def shuffle(self) -> None:
        self.batches.shuffle()

    @property
    def late_failures(self) -> list:
        return self.batches.late_failures

    def __getitem__(self, k: int):
        inputs, labels, weights = self.batches[k]
        lam = np.float32(self.rng.beta(self.alpha, self.alpha))
        order = self.rng.permutation(len(labels))
        targets = np.eye(self.n_classes, dtype=np.float32)[labels]
        return (
            lam * inputs + (1 - lam) * inputs[order],
            lam * targets + (1 - lam) * targets[order],
            lam * weights + (1 - lam) * weights[order],
        )
