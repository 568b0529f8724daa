"""One chunk of the batch job: paths in, embeddings, digests and failures out.

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


def embed_chunk(featurizer, paths: list[str]) -> Chunk:
    """Embed one chunk of paths, never raising for a bad one.

    Local files go to the featurizer as paths, so its worker threads read them (once:
    the same bytes are hashed for the ``digest`` column and the cache); URLs are read
    here through fsspec and passed as bytes.
    """
    items, failures = [], {}
    for index, path in enumerate(paths):
        if "://" in path and not path.startswith("file://"):
            try:
                items.append(read_url(path))
            except (OSError, ImportError) as error:
                failures[index] = (type(error).__name__, str(error))
                items.append(None)
        else:
            items.append(path.removeprefix("file://"))
    usable = [i for i, item in enumerate(items) if item is not None]
    chunk = Chunk(
        embeddings=np.full(
            (len(paths), featurizer.n_features_out_), np.nan, np.float32
        ),
        digests=[None] * len(paths),
        failures=failures,
    )
    if usable:
        result = featurizer.embed([items[i] for i in usable], on_error="nan")
        chunk.embeddings[usable] = result.array
        chunk.cache_hits = result.stats["cache_hits"]
        chunk.computed = result.stats["computed"]
        for position, digest in zip(usable, result.digests):
            chunk.digests[position] = digest
        for row in result.failures.itertuples():
            failures[usable[row.index]] = (row.error, row.reason)
    return chunk
