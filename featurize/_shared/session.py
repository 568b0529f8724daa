"""One call's use of the embedding cache, the same for images and texts.

Look up what is stored; compute what is missing under the namespace's cross-process
lock, after looking again (another process may have stored some meanwhile); store it.
A cache that cannot be used (damaged, read-only, full disk) is dropped for the rest
of the call and never fails it: the first reason is kept, for the caller to warn.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence

import numpy as np

from featurize._shared.cache import EmbeddingCache
from featurize.errors import CacheUnavailableError, CacheWarning


class CacheSession:
    """The cache of one embedding call, in one namespace.

    Parameters
    ----------
    cache : EmbeddingCache or None
        None: nothing is cached (the session computes everything).
    settings : dict
        What defines the embeddings (the featurizer's fingerprint): the namespace.
    n_features : int
        Width of the embeddings.
    """

    def __init__(self, cache: EmbeddingCache | None, settings: dict, n_features: int):
        self.cache = cache
        self.n_features = n_features
        self.namespace: int | None = None
        self.error: CacheUnavailableError | None = None
        if cache is not None:
            try:
                self.namespace = cache.namespace(settings, n_features)
            except CacheUnavailableError as error:
                self.drop(error)

    def drop(self, error: CacheUnavailableError) -> None:
        """Go on without the cache; keep the first reason (worker threads race)."""
        self.cache = None
        self.error = self.error or error

    def lookup(self, digests: Sequence[bytes]) -> dict[bytes, np.ndarray]:
        """The stored embeddings among ``digests`` (missing ones are absent)."""
        cache = self.cache
        if cache is None or not digests:
            return {}
        try:
            return cache.get_many(self.namespace, list(digests), self.n_features)
        except CacheUnavailableError as error:
            self.drop(error)
            return {}

    def fill(
        self, digests: Sequence[bytes], compute: Callable[[list], Sequence]
    ) -> tuple[dict[bytes, np.ndarray], list[bytes]]:
        """Embeddings of distinct ``digests`` that the cache lacked.

        ``compute(digests)`` returns their vectors in order; it runs under the
        namespace's lock, on those that no other process stored meanwhile, and
        its results are stored before the lock is released.

        Returns the vectors by digest and the digests that were computed (the
        others were stored by another process meanwhile).
        """
        digests = list(digests)
        cache = self.cache
        if cache is not None:
            vectors, missing = {}, None
            try:
                with cache.lock(self.namespace):
                    vectors = cache.get_many(self.namespace, digests, self.n_features)
                    missing = [d for d in digests if d not in vectors]
                    if missing:
                        computed = dict(zip(missing, compute(missing)))
                        vectors.update(computed)
                        cache.put_many(self.namespace, computed.items())
                return vectors, missing
            except CacheUnavailableError as error:
                self.drop(error)
                if missing is not None and all(d in vectors for d in digests):
                    return vectors, missing  # computed; only storing failed
        return dict(zip(digests, compute(digests))), digests

    def warn(self) -> None:
        """Warn, once, that the cache was dropped and why."""
        if self.error is not None:
            warnings.warn(str(self.error), CacheWarning, stacklevel=4)
