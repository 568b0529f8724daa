"""The batch loop: read, hash, look up, decode in parallel; embed; store.

Per image, a worker thread reads the input (files once), hashes it, looks it up in the
embedding cache, and on a miss decodes and resizes it straight into a preallocated
batch buffer. Workers run up to :data:`PREFETCH_BATCHES` batches ahead of the backbone,
so decoding overlaps the forward pass (PIL releases the GIL while it decodes and
resizes). The calling thread runs the forward pass on the misses, under the cache
namespace's cross-process lock after a second look-up, and stores the results batch by
batch: a crash or a bad image never loses what was already done. A cache that cannot be
used (damaged, read-only, full disk) is dropped for the rest of the call, never failing
it: the plan records why, for the caller to warn.

``workers=0`` does the same work in the calling thread, one image after another: the
simple path, which the fast one must match exactly.
"""

from __future__ import annotations

import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from featurize._images.decode import describe, fetch, load_image
from featurize._images.forward import Forward
from featurize._shared.digests import content_digest
from featurize._shared.results import Failure
from featurize._shared.session import CacheSession
from featurize.errors import ImageError

PREFETCH_BATCHES = 2


@dataclass
class Plan:
    """What to embed with, and how."""

    forward: Forward
    input_size: tuple[int, int]
    resize: str
    max_pixels: int | None
    batch_size: int
    on_error: str
    session: CacheSession
    workers: int = 0


@dataclass
class Result:
    """The embeddings, the :class:`Failure` records and counts."""

    embeddings: np.ndarray
    digests: list = field(default_factory=list)  # content digest per row, or None
    failures: list = field(default_factory=list)
    cache_hits: int = 0
    computed: int = 0
    seconds: float = 0.0
    error: ImageError | None = None

    def stats(self) -> dict:
        return {
            "inputs": len(self.embeddings),
            "images": len(self.embeddings),
            "cache_hits": self.cache_hits,
            "computed": self.computed,
            "failed": len(self.failures),
            "seconds": round(self.seconds, 4),
        }


@dataclass
class _Outcome:
    index: int
    digest: bytes | None = None
    vector: np.ndarray | None = None  # a cache hit
    decoded: bool = False  # pixels are in the batch buffer
    error: ImageError | None = None


def _prepare(items, index: int, position: int, buffer, plan: Plan) -> _Outcome:
    """Read, hash, look up and (on a miss) decode one image into ``buffer``."""
    outcome = _Outcome(index)
    try:
        raw = fetch(items[index], index=index)
        outcome.digest = content_digest(raw)
        outcome.vector = plan.session.lookup([outcome.digest]).get(outcome.digest)
        if outcome.vector is not None:
            return outcome
        buffer[position] = load_image(
            raw,
            size=plan.input_size,
            resize=plan.resize,
            max_pixels=plan.max_pixels,
            index=index,
            source=describe(items[index]),
        )
        outcome.decoded = True
    except ImageError as error:
        outcome.error = error
    return outcome


def embed(items, plan: Plan, progress) -> Result:
    """Embed ``items`` (from :func:`featurize._images.decode.as_image_list`)."""
    started = time.perf_counter()
    n_images = len(items)
    result = Result(
        np.full((n_images, plan.forward.n_features), np.nan, np.float32),
        digests=[None] * n_images,
    )
    batches = [
        range(start, min(start + plan.batch_size, n_images))
        for start in range(0, n_images, plan.batch_size)
    ]
    depth = PREFETCH_BATCHES if plan.workers else 1
    height, width = plan.input_size
    rows = min(plan.batch_size, max(n_images, 1))
    buffers = [
        np.empty((rows, height, width, 3), dtype=np.float32) for _ in range(depth + 1)
    ]
    pool = ThreadPoolExecutor(plan.workers) if plan.workers else None

    def launch(k: int):
        batch, buffer = batches[k], buffers[k % len(buffers)]
        if pool is None:
            return batch, buffer, None
        futures = [
            pool.submit(_prepare, items, index, index - batch.start, buffer, plan)
            for index in batch
        ]
        return batch, buffer, futures

    try:
        pending = deque(launch(k) for k in range(min(depth, len(batches))))
        for k in range(len(batches)):
            batch, buffer, futures = pending.popleft()
            if futures is None:
                outcomes = [
                    _prepare(items, i, i - batch.start, buffer, plan) for i in batch
                ]
            else:
                outcomes = [future.result() for future in futures]
            if k + depth < len(batches):
                pending.append(launch(k + depth))
            _finish(items, batch, outcomes, buffer, plan, result)
            if result.error is not None:
                raise result.error
            progress.update(len(batch))
    finally:
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
    result.failures.sort(key=lambda failure: failure.index)
    result.seconds = time.perf_counter() - started
    return result


def _fail(result: Result, plan: Plan, index: int, item, error: ImageError) -> None:
    if plan.on_error == "raise":
        # Raised once the rest of the batch is embedded and stored: no work is lost.
        result.error = result.error or error
        return
    result.failures.append(Failure(index, describe(item), error))


def _finish(items, batch: range, outcomes, buffer, plan: Plan, result: Result) -> None:
    """Use the hits, embed the decoded misses (each distinct image once), store them."""
    groups: dict[object, list[int]] = {}  # content -> rows; the first row is decoded
    for outcome in outcomes:
        result.digests[outcome.index] = outcome.digest
        if outcome.error is not None:
            _fail(result, plan, outcome.index, items[outcome.index], outcome.error)
        elif outcome.vector is not None:
            result.embeddings[outcome.index] = outcome.vector
            result.cache_hits += 1
        elif outcome.decoded:
            groups.setdefault(outcome.digest, []).append(outcome.index)
    if not groups:
        return

    def compute(digests: list):
        positions = [groups[digest][0] - batch.start for digest in digests]
        return plan.forward(buffer[positions])

    vectors, computed = plan.session.fill(list(groups), compute)
    for digest, rows in groups.items():
        result.embeddings[rows] = vectors[digest]
    result.computed += len(computed)
    fresh = set(computed)
    result.cache_hits += sum(len(r) for d, r in groups.items() if d not in fresh)
