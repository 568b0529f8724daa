"""One chunk of the batch job: paths (or texts) in; embeddings, digests and failures
out.

Both engines (local and Ray) embed through this, so that their output is the same.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class Chunk:
    """A chunk's embeddings, content digests, failures ``{row: (error, message)}``
    and counts."""

    embeddings: np.ndarray
    digests: list
    failures: dict = field(default_factory=dict)
    cache_hits: int = 0
    computed: int = 0
    truncated: int = 0


def read_url(url: str) -> bytes:
    """The bytes behind an fsspec URL (``s3://``, ``gs://``, ``memory://``, ...)."""
    try:
        import fsspec
    except ImportError:
        raise ImportError(
            f"Reading {url!r} needs fsspec and the filesystem's package "
            f"(pip install fsspec s3fs, ...)."
        ) from None
    with fsspec.open(url, "rb") as handle:
        return handle.read()


def embed_chunk(featurizer, paths: list) -> Chunk:
    """Embed one chunk of paths (or texts, with a TextFeaturizer), never raising for
    a bad one.

    Paths and fsspec URLs go to the featurizer as they are, so its decode threads
    read them (once: the same bytes are hashed for the ``digest`` column and the
    cache), remote ones concurrently.
    """
    chunk = Chunk(
        embeddings=np.full(
            (len(paths), featurizer.n_features_out_), np.nan, np.float32
        ),
        digests=[None] * len(paths),
    )
    if not paths:
        return chunk
    result = featurizer.embed(list(paths), on_error="nan")
    chunk.embeddings[:] = result.array
    chunk.cache_hits = result.stats["cache_hits"]
    chunk.computed = result.stats["computed"]
    chunk.truncated = result.stats.get("truncated", 0)
    chunk.digests = list(result.digests)
    for row in result.failures.itertuples():
        chunk.failures[row.index] = (row.error, row.reason)
    return chunk


def free_names(wanted, taken, prefix: str) -> dict:
    """Names for added columns that collide with none of ``taken``: each wanted
    name as it is where free, else with ``prefix`` (repeated until it is)."""
    used = {str(name) for name in taken}
    names = {}
    for name in wanted:
        chosen = name
        while chosen in used:
            chosen = prefix + chosen
        used.add(chosen)
        names[name] = chosen
    return names
