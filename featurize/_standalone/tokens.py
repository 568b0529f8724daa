"""Token ids to the batches a BERT encoder runs, and its pooled windows back to one
embedding per text: windows of ``max_length`` tokens ([CLS] and [SEP] included),
sorted by length and padded per batch, then averaged per text by token count.

Standard library and numpy only: an exported text model's folder carries a copy (see
:mod:`featurize._standalone`).
"""

from __future__ import annotations

import numpy as np

# Sequences are padded to a multiple of this many tokens (and, on JAX, batches to a
# power of two): jax.jit compiles once per shape, so this bounds the compilations (at
# most max_tokens / 8 lengths) at the cost of a few padded positions.
LENGTH_STEP = 8


def windows(ids: list[int], max_length: int, cls: int, sep: int) -> list[list[int]]:
    """Consecutive pieces of at most ``max_length`` tokens, [CLS] and [SEP]
    included (one empty window for an empty text)."""
    step = max_length - 2
    pieces = [ids[start : start + step] for start in range(0, len(ids), step)]
    return [[cls, *piece, sep] for piece in pieces or [[]]]


def too_long(ids: list[list[int]], max_length: int) -> list[bool]:
    """Whether each text's tokens, with [CLS] and [SEP], exceed ``max_length``."""
    return [len(tokens) > max_length - 2 for tokens in ids]


def encode(
    ids, max_length: int, chunks: bool, batch_size: int, cls, sep, positions, run
):
    """Mean-pooled embeddings (not normalised) of texts given as token ids.

    ``run(ids, mask)`` maps padded int32 batches to pooled states; a text longer than
    ``max_length`` is truncated, or with ``chunks`` gets the token-weighted mean of
    its windows' embeddings.
    """
    pieces, owners, sizes = [], [], []
    for k, tokens in enumerate(ids):
        own = windows(tokens, max_length, cls, sep)
        if not chunks:
            own = own[:1]
        pieces += own
        owners += [k] * len(own)
        sizes += [len(p) - 2 for p in own]
    pooled = forward(pieces, batch_size, positions, run)
    vectors = np.zeros((len(ids), pooled.shape[1] if len(pieces) else 0), np.float32)
    weights = np.zeros(len(ids), np.float32)
    for k, size, vector in zip(owners, sizes, pooled):
        # A window's weight is its token count: the mean over windows is then close
        # to one mean over all of the text's tokens.
        vectors[k] += max(size, 1) * vector
        weights[k] += max(size, 1)
    return vectors / np.maximum(weights, 1)[:, None]


def forward(pieces: list[list[int]], batch_size: int, positions: int, run):
    """Pooled states of token windows, batched by length."""
    order = np.argsort([len(w) for w in pieces], kind="stable")
    out = None
    for start in range(0, len(order), batch_size):
        rows = order[start : start + batch_size]
        longest = max(len(pieces[r]) for r in rows)
        length = min(-(-longest // LENGTH_STEP) * LENGTH_STEP, positions)
        ids = np.zeros((len(rows), length), np.int32)
        mask = np.zeros((len(rows), length), np.int32)
        for k, r in enumerate(rows):
            ids[k, : len(pieces[r])] = pieces[r]
            mask[k, : len(pieces[r])] = 1
        pooled = np.asarray(run(ids, mask), np.float32)
        if out is None:
            out = np.empty((len(pieces), pooled.shape[1]), np.float32)
        out[rows] = pooled
    return np.empty((0, 0), np.float32) if out is None else out


def normalized(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (all-zero rows stay zero)."""
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return (vectors / np.where(norms > 0, norms, 1)).astype(np.float32)
