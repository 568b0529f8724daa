"""Contrastive pairs drawn from a few labelled texts, and their training batches.

SetFit's sampling: in each iteration every text is paired once with a text of its
class (similar, target 1) and once with a text of another class (dissimilar,
target 0), so positives and negatives are balanced and every text anchors as many
pairs as any other. Fresh pairs are drawn for each iteration. numpy only.
"""

from __future__ import annotations

import numpy as np

from featurize._standalone.tokens import LENGTH_STEP

# Batches whose pairs are grouped by length (see PairBatches.shuffle).
SORT_RUN = 50


def sample_pairs(codes: np.ndarray, rng) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One iteration's pairs: ``(anchors, partners, same)`` row indices into
    ``codes`` and float targets, two pairs per text.

    A text whose class has no other member is paired with itself as its similar
    partner (a class of one text still pulls nothing apart).
    """
    n = len(codes)
    members = {c: np.flatnonzero(codes == c) for c in np.unique(codes)}
    similar = np.empty(n, np.int64)
    dissimilar = np.empty(n, np.int64)
    for code, rows in members.items():
        others = np.flatnonzero(codes != code)
        for row in rows:
            mates = rows[rows != row]
            similar[row] = rng.choice(mates) if len(mates) else row
        dissimilar[rows] = rng.choice(others, len(rows))
    anchors = np.concatenate([np.arange(n), np.arange(n)])
    partners = np.concatenate([similar, dissimilar])
    same = np.concatenate([np.ones(n), np.zeros(n)]).astype(np.float32)
    return anchors, partners, same


class PairBatches:
    """Batches of token-id pairs for a contrastive trainer, as the training loop
    takes them: ``len``, ``shuffle()`` (a new iteration: fresh pairs, in a new
    order) and ``[k] -> ((ids, mask), targets, weights)``, where ``ids`` and
    ``mask`` are ``(pairs, 2, length)`` int32, padded to the batch's longest text
    (rounded up to a multiple of 8: JAX compiles once per shape).

    Parameters
    ----------
    windows : list of list of int
        Each training text's token ids, [CLS] and [SEP] included.
    codes : ndarray of int
        Each text's class.
    weights : ndarray of float
        Each text's weight; a pair weighs as its anchor.
    batch_size : int
        Pairs per step.
    rng : numpy.random.Generator
    """

    def __init__(self, windows, codes, weights, batch_size: int, rng):
        self.windows = windows
        self.codes = np.asarray(codes)
        self.weights = np.asarray(weights, np.float32)
        self.batch_size = batch_size
        self.rng = rng
        self.pairs = None  # drawn by each shuffle()

    def __len__(self) -> int:
        return -(-2 * len(self.codes) // self.batch_size)

    def shuffle(self) -> None:
        anchors, partners, same = sample_pairs(self.codes, self.rng)
        order = self.rng.permutation(len(anchors))
        # Sortish batches: within each run of SORT_RUN shuffled batches, pairs of
        # like length go together, and the batches are then shuffled. Random
        # pairs padded to their batch's longest text computed ~40% padding.
        lengths = np.array([len(w) for w in self.windows])
        longest = np.maximum(lengths[anchors], lengths[partners])
        run = SORT_RUN * self.batch_size
        for start in range(0, len(order), run):
            piece = order[start : start + run]
            order[start : start + run] = piece[
                np.argsort(longest[piece], kind="stable")
            ]
        batches = [
            order[k : k + self.batch_size]
            for k in range(0, len(order), self.batch_size)
        ]
        order = np.concatenate([batches[k] for k in self.rng.permutation(len(batches))])
        self.pairs = anchors[order], partners[order], same[order]

    def __getitem__(self, k: int):
        rows = slice(k * self.batch_size, (k + 1) * self.batch_size)
        anchors, partners, same = (part[rows] for part in self.pairs)
        longest = max(len(self.windows[r]) for r in (*anchors, *partners))
        length = -(-longest // LENGTH_STEP) * LENGTH_STEP
        ids = np.zeros((len(anchors), 2, length), np.int32)
        mask = np.zeros_like(ids)
        for at, pair in enumerate(zip(anchors, partners)):
            for side, row in enumerate(pair):
                tokens = self.windows[row]
                ids[at, side, : len(tokens)] = tokens
                mask[at, side, : len(tokens)] = 1
        return (ids, mask), same[:, None], self.weights[anchors]
