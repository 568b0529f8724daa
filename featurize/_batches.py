"""The batch loop: fetch, look up the cache, decode what is missing, embed, store.

Each batch is fetched (files read once) and hashed; cached embeddings are used as they
are; only the misses are decoded and sent through the backbone, under the namespace's
cross-process lock, after a second look-up (another process may just have computed
them). Computed embeddings are stored batch by batch, so a crash or a bad image never
loses what was already done.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from featurize._cache import EmbeddingCache, content_digest
from featurize._images import describe, fetch, load_image
from featurize._inference import Forward
from featurize.errors import ImageError


@dataclass
class Plan:
    """What to embed with, and how to treat failures."""

    forward: Forward
    input_size: tuple[int, int]
    resize: str
    max_pixels: int | None
    batch_size: int
    on_error: str
    cache: EmbeddingCache | None = None
    namespace: int | None = None


@dataclass
class Result:
    """The embeddings, the failures ``(index, input, error, reason)`` and counts."""

    embeddings: np.ndarray
    failures: list = field(default_factory=list)
    cache_hits: int = 0
    computed: int = 0
    seconds: float = 0.0
    error: ImageError | None = None

    def stats(self) -> dict:
        return {
            "images": len(self.embeddings),
            "cache_hits": self.cache_hits,
            "computed": self.computed,
            "failed": len(self.failures),
            "seconds": round(self.seconds, 4),
        }


def embed(items, plan: Plan, progress) -> Result:
    """Embed ``items`` (a sequence from :func:`featurize._images.as_image_list`)."""
    started = time.perf_counter()
    n_images = len(items)
    result = Result(np.full((n_images, plan.forward.n_features), np.nan, np.float32))
    height, width = plan.input_size
    buffer = np.empty((min(plan.batch_size, max(n_images, 1)), height, width, 3),
                      dtype=np.float32)  # fmt: skip
    for start in range(0, n_images, plan.batch_size):
        stop = min(start + plan.batch_size, n_images)
        _embed_batch(items, range(start, stop), plan, buffer, result)
        if result.error is not None:
            raise result.error
        progress.update(stop - start)
    result.failures.sort(key=lambda failure: failure[0])
    result.seconds = time.perf_counter() - started
    return result


def _fail(result: Result, plan: Plan, index: int, item, error: ImageError) -> None:
    if plan.on_error == "raise":
        # Raised once the rest of the batch is embedded and stored: no work is lost.
        result.error = result.error or error
        return
    result.failures.append((index, describe(item), type(error).__name__, error.reason))


def _embed_batch(items, indices: range, plan: Plan, buffer, result: Result) -> None:
    fetched = {}
    for index in indices:
        try:
            fetched[index] = fetch(items[index], index=index)
        except ImageError as error:
            _fail(result, plan, index, items[index], error)
    if plan.cache is None:
        _compute(items, {i: (i,) for i in fetched}, fetched, plan, buffer, result)
        return
    digests = {index: content_digest(raw) for index, raw in fetched.items()}
    n_features = plan.forward.n_features
    hits = plan.cache.get_many(plan.namespace, list(digests.values()), n_features)
    # Rows that still need a forward pass, grouped by content (duplicates once).
    missing: dict[bytes, list[int]] = {}
    for index, digest in digests.items():
        if digest in hits:
            result.embeddings[index] = hits[digest]
            result.cache_hits += 1
        else:
            missing.setdefault(digest, []).append(index)
    if not missing:
        return
    groups = {rows[0]: tuple(rows) for rows in missing.values()}
    decoded = _decode(items, groups, fetched, plan, buffer, result)
    if not decoded:
        return
    with plan.cache.lock(plan.namespace):
        late = plan.cache.get_many(
            plan.namespace, [digests[i] for i in decoded], n_features
        )
        todo = []
        for position, first in enumerate(decoded):
            vector = late.get(digests[first])
            if vector is None:
                todo.append((position, first))
                continue
            result.embeddings[list(groups[first])] = vector
            result.cache_hits += len(groups[first])
        if not todo:
            return
        positions = [position for position, _ in todo]
        vectors = plan.forward(buffer[positions])
        result.computed += len(todo)
        for (_, first), vector in zip(todo, vectors):
            result.embeddings[list(groups[first])] = vector
        plan.cache.put_many(
            plan.namespace,
            [(digests[first], v) for (_, first), v in zip(todo, vectors)],
        )


def _decode(items, groups, fetched, plan: Plan, buffer, result: Result) -> list[int]:
    """Decode each group's first row into ``buffer``; return those rows in order."""
    decoded = []
    for first, rows in groups.items():
        try:
            buffer[len(decoded)] = load_image(
                fetched[first],
                size=plan.input_size,
                resize=plan.resize,
                max_pixels=plan.max_pixels,
                index=first,
                source=describe(items[first]),
            )
        except ImageError as error:
            for index in rows:
                _fail(result, plan, index, items[index], error)
            continue
        decoded.append(first)
    return decoded


def _compute(items, groups, fetched, plan: Plan, buffer, result: Result) -> None:
    decoded = _decode(items, groups, fetched, plan, buffer, result)
    if decoded:
        result.embeddings[decoded] = plan.forward(buffer[: len(decoded)])
        result.computed += len(decoded)
