"""Nearest neighbours by cosine similarity, the one search the audit (duplicates,
outliers), selection (typicality) and search by example share: exact and in memory
for the sizes an audit usually sees, approximate (faiss HNSW) past them."""

from __future__ import annotations

import numpy as np

from featurize import MissingDependencyError

# Measured (benchmarks/audit.py --neighbours, 1,280-wide rows, 2 cores): exact search
# took 0.09 s / 15 s / 103 s at 1,200 / 20,000 / 50,000 rows, faiss HNSW 1.9 / 40 /
# 87 s (top-1 agreement 0.999): past here the index wins, n log n against n^2.
EXACT_UP_TO = 50_000
BACKENDS = ("auto", "exact", "hnsw")


def normalised(array) -> np.ndarray:
    """Rows scaled to unit length (a zero row stays zero), as float32."""
    array = np.asarray(array, dtype=np.float32)
    norms = np.linalg.norm(array, axis=1, keepdims=True)
    return array / np.where(norms > 0, norms, 1)


def nearest(array, k: int, *, backend: str = "auto"):
    """Each row's ``k`` most similar other rows: ``(indices, similarities)``, both of
    shape ``(n, k)``, most similar first; cosine similarity of the rows as given
    (``normalised`` first). Fewer than ``k + 1`` rows give ``n - 1`` columns."""
    if backend not in BACKENDS:
        raise ValueError(f"Unknown backend {backend!r}; expected one of {BACKENDS}.")
    n = len(array)
    k = min(k, n - 1)
    if k < 1:
        return np.empty((n, 0), int), np.empty((n, 0), np.float32)
    if backend == "hnsw" or (backend == "auto" and n > EXACT_UP_TO):
        return _hnsw(array, k)
    return _exact(array, k)


def search(collection, queries, k: int, *, backend: str = "auto", index=None):
    """The ``k`` rows of ``collection`` most similar to each of ``queries``:
    ``(indices, similarities)`` of shape ``(n_queries, k)``, most similar first
    (cosine similarity of the rows as given: ``normalised`` both first). Exact
    below ``EXACT_UP_TO`` rows (or ``backend="exact"``), faiss HNSW past it:
    ``index`` (from :func:`hnsw_index`, or a callable that returns one) is used
    where given, else one is built."""
    if backend not in BACKENDS:
        raise ValueError(f"Unknown backend {backend!r}; expected one of {BACKENDS}.")
    collection = np.ascontiguousarray(collection, dtype=np.float32)
    queries = np.ascontiguousarray(np.atleast_2d(queries), dtype=np.float32)
    k = min(k, len(collection))
    if backend == "hnsw" or (backend == "auto" and len(collection) > EXACT_UP_TO):
        if callable(index):
            index = index(collection)
        if index is None:
            index = hnsw_index(collection)
        similarities, indices = index.search(queries, k)
        return indices, similarities
    # In blocks of queries, so that a block's similarities stay near 64 MB.
    step = max(1, (1 << 24) // max(1, len(collection)))
    found = [_ranked(queries[start:start + step] @ collection.T, k)
             for start in range(0, len(queries), step)]  # fmt: skip
    if not found:
        return np.empty((0, k), int), np.empty((0, k), np.float32)
    return np.concatenate([i for i, _ in found]), np.concatenate([s for _, s in found])


def closest(queries, collection) -> np.ndarray:
    """Each query's largest cosine similarity to a row of ``collection`` (rows as
    given: ``normalised`` both first), by exact search."""
    return search(collection, queries, 1, backend="exact")[1][:, 0]


def _ranked(similarities, k: int):
    if k == 1:  # argmax keeps the stable sort's first of ties, without the sort
        indices = np.argmax(similarities, axis=1)[:, None]
    else:
        indices = np.argsort(-similarities, axis=1, kind="stable")[:, :k]
    return indices, np.take_along_axis(similarities, indices, axis=1)


def hnsw_index(array):
    """A faiss HNSW index of inner products over ``array``'s rows (unit rows:
    cosine similarity), searched with a beam wide enough for k up to 32."""
    try:
        import faiss
    except ImportError:
        raise MissingDependencyError(
            f"Searching {len(array)} rows uses an approximate index (faiss): pip "
            f"install 'keras-featurize[audit]', or pass backend='exact'."
        ) from None
    index = faiss.IndexHNSWFlat(array.shape[1], 32, faiss.METRIC_INNER_PRODUCT)
    index.hnsw.efSearch = 64
    index.add(np.ascontiguousarray(array, dtype=np.float32))
    return index


def _exact(array, k: int):
    from sklearn.neighbors import NearestNeighbors

    # Inner product of unit rows through the brute-force, chunked search.
    search = NearestNeighbors(n_neighbors=k + 1, algorithm="brute", metric="cosine")
    distances, indices = search.fit(array).kneighbors(array)
    return _without_self(indices, 1 - distances, k)


def _hnsw(array, k: int):
    index = hnsw_index(array)
    index.hnsw.efSearch = max(64, 2 * k)
    similarities, indices = index.search(np.ascontiguousarray(array), k + 1)
    return _without_self(indices, similarities, k)


def _without_self(indices, similarities, k: int):
    """Drop each row's own entry (wherever ties put it), keeping ``k`` columns."""
    rows = np.arange(len(indices))[:, None]
    other = indices != rows
    # A row whose own entry did not come back loses its least similar neighbour.
    keep = np.cumsum(other, axis=1) <= k
    mask = other & keep
    return (
        indices[mask].reshape(len(indices), k),
        similarities[mask].reshape(len(indices), k).astype(np.float32),
    )
