"""Contrastive pairs drawn from a few labelled texts, and their training batches.

SetFit's sampling: each iteration brings as many similar pairs (two texts of one
class, target 1) and as many dissimilar pairs (two classes, target 0) as there are
texts, so positives and negatives are balanced. With few texts, every possible
pair is listed and the iterations walk through a shuffled list of each kind,
reshuffled when used up, so that pairs recur as evenly as they can instead of at
random; a text's pair with itself counts as similar (as SetFit's list has it): its
two dropout masks differ, which is SimCSE's signal. With many texts the lists
would not fit, and each text is paired with one random text of its class and one
of another instead. numpy only.
"""

from __future__ import annotations

import numpy as np

from featurize._standalone.tokens import LENGTH_STEP

# Batches whose pairs are grouped by length (see PairBatches.shuffle).
SORT_RUN = 50
# Pairs listed at most (of each kind): 16 MB of int32 rows; about 2,800 texts.
MAX_LISTED = 2_000_000


def draw_pairs(codes: np.ndarray, rng) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One iteration's random pairs: ``(anchors, partners, same)`` row indices into
    ``codes`` and float targets, each text paired once with a text of its class and
    once with a text of another.

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


def listed_pairs(codes: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """Every similar pair (self-pairs included) and every dissimilar pair, as
    ``(k, 2)`` int32 rows, or None where there would be more than MAX_LISTED."""
    n = len(codes)
    counts = np.unique(codes, return_counts=True)[1]
    similar = int(sum(m * (m + 1) // 2 for m in counts))
    if max(similar, n * (n + 1) // 2 - similar) > MAX_LISTED:
        return None
    first, second = np.triu_indices(n)
    same = codes[first] == codes[second]
    rows = np.stack([first, second], axis=1).astype(np.int32)
    return rows[same], rows[~same]


class PairSampler:
    """Each iteration's pairs, ``draw() -> (anchors, partners, same)``: walks
    through the shuffled lists of pairs where they fit (see the module), else
    random draws.
    """

    def __init__(self, codes, rng):
        self.codes = np.asarray(codes)
        self.rng = rng
        self.lists = listed_pairs(self.codes)
        self.queues = [np.empty((0, 2), np.int32), np.empty((0, 2), np.int32)]

    def _take(self, kind: int, count: int) -> np.ndarray:
        pool = self.lists[kind]
        while len(self.queues[kind]) < count:
            self.queues[kind] = np.concatenate(
                [self.queues[kind], pool[self.rng.permutation(len(pool))]]
            )
        taken, self.queues[kind] = np.split(self.queues[kind], [count])
        return taken

    def draw(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if self.lists is None:
            return draw_pairs(self.codes, self.rng)
        n = len(self.codes)
        rows = np.concatenate([self._take(0, n), self._take(1, n)])
        same = np.concatenate([np.ones(n), np.zeros(n)]).astype(np.float32)
        return rows[:, 0], rows[:, 1], same


class PairBatches:
    """Batches of token-id pairs for a contrastive trainer, as the training loop
    takes them: ``len``, ``shuffle()`` (a new iteration: its pairs, in a new
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
        Each text's weight; a pair weighs as the mean of its two texts'.
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
        self.sampler = PairSampler(self.codes, rng)
        self.pairs = None  # drawn by each shuffle()

    def __len__(self) -> int:
        return -(-2 * len(self.codes) // self.batch_size)

    def shuffle(self) -> None:
        anchors, partners, same = self.sampler.draw()
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
        pair_weights = (self.weights[anchors] + self.weights[partners]) / 2
        return (ids, mask), same[:, None], pair_weights
