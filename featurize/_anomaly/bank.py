"""The memory bank: a greedy coreset of the training patches, built chunk by chunk.

Greedy k-centre selection (PatchCore's coreset) keeps the patches farthest from those
already kept, so rare normal patterns stay in the bank while the common ones are
thinned. Run over all patches at once it costs time linear in their number for every
pick and memory for all of them (anomalib's reported hours and out-of-memory errors).
Here each chunk of images is reduced on its own, in blocks of :data:`BLOCK` patches
in a random projection: every pick costs one pass over a block that stays in cache,
the whole coreset costs ``bank size x BLOCK x PROJECTION`` operations whatever the
number of images, and only one chunk of patches is ever held.
"""

from __future__ import annotations

import numpy as np

BLOCK = 20_000
# About sqrt(bank rows) cells balances the two costs of a search (centroids, then
# the probed cells' rows); beyond 1,024 the centroids alone cost too much.
MAX_CELLS = 1024
# Distances between projected patches keep their order well enough for the greedy
# picks (Johnson-Lindenstrauss); the bank itself keeps the full features.
PROJECTION = 128


def projection(n_features: int, random_state) -> np.ndarray | None:
    """A Gaussian random projection to :data:`PROJECTION` dimensions (None where the
    features are no wider)."""
    if n_features <= PROJECTION:
        return None
    rng = np.random.default_rng(random_state)
    matrix = rng.normal(size=(n_features, PROJECTION)) / np.sqrt(PROJECTION)
    return matrix.astype(np.float32)


def greedy_coreset(
    patches: np.ndarray, size: int, project: np.ndarray | None, rng
) -> np.ndarray:
    """Indices of ``size`` rows of ``patches`` picked greedily, block by block.

    Each block gets its share of ``size`` (at least one pick); the first pick of a
    block is random, each next one the row farthest from the block's picks so far.
    """
    n = len(patches)
    size = int(min(max(size, 1), n))
    order = rng.permutation(n)
    starts = range(0, n, BLOCK)
    shares = _shares(size, [min(BLOCK, n - s) for s in starts])
    picked = []
    for start, share in zip(starts, shares):
        rows = order[start : start + BLOCK]
        block = patches[rows]
        if project is not None:
            block = block @ project
        picked.append(rows[_greedy(block, share, rng)])
    return np.concatenate(picked)


def _shares(total: int, lengths: list) -> list:
    """``total`` picks split in proportion to ``lengths`` (largest remainders)."""
    exact = np.asarray(lengths, float) * total / max(sum(lengths), 1)
    shares = np.floor(exact).astype(int)
    for k in np.argsort(shares - exact)[: total - shares.sum()]:
        shares[k] += 1
    return [int(min(s, n)) for s, n in zip(shares, lengths)]


def _greedy(block: np.ndarray, k: int, rng) -> np.ndarray:
    if k <= 0:
        return np.empty(0, int)
    norms = np.einsum("ij,ij->i", block, block)
    chosen = [int(rng.integers(len(block)))]
    distance = norms + norms[chosen[0]] - 2.0 * (block @ block[chosen[0]])
    for _ in range(k - 1):
        j = int(np.argmax(distance))
        chosen.append(j)
        np.minimum(distance, norms + norms[j] - 2.0 * (block @ block[j]), out=distance)
    return np.asarray(chosen)


def inverted_file(bank: np.ndarray, random_state):
    """The bank sorted by k-means cell, the cells' centroids and where each cell's
    rows start (None for the cells where the bank is too small to need them)."""
    from sklearn.cluster import KMeans

    from featurize._standalone.anomaly import PROBES

    n_cells = int(min(MAX_CELLS, round(np.sqrt(len(bank)))))
    if n_cells <= PROBES:
        return bank, None
    kmeans = KMeans(n_cells, n_init=1, max_iter=20, random_state=random_state)
    cells = kmeans.fit_predict(bank)
    order = np.argsort(cells, kind="stable")
    starts = np.searchsorted(cells[order], np.arange(n_cells + 1))
    centroids = kmeans.cluster_centers_.astype(np.float32)
    return np.ascontiguousarray(bank[order]), (centroids, starts.astype(np.int64))


def bank_rows(n_patches: int, ratio: float, max_bytes: int | None, width: int) -> int:
    """The bank's size: ``ratio`` of the patches, within ``max_bytes`` of float32."""
    rows = int(np.ceil(ratio * n_patches))
    if max_bytes is not None:
        rows = min(rows, max(1, max_bytes // (4 * width)))
    return max(1, min(rows, n_patches))
