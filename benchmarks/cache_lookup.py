"""Batch look-ups in a large embedding cache: SQLite (what featurize uses) vs LMDB.

Run: .venv/bin/python benchmarks/cache_lookup.py [N_ENTRIES] [DIM]
(default 1,000,000 entries of 64 float32 values; real embeddings are wider, which
changes the bytes copied, not the index walk). LMDB is measured only if the `lmdb`
package is installed. Prints milliseconds per batch of random keys (all hits, and a
half-miss batch) and the time to fill the store. The SQLite cache is measured twice:
fresh (every entry used just now: a hit writes nothing), and aged by a day
(every hit's last use is recorded, batched by the cache: the worst case of a warm run
over an old cache).
"""

from __future__ import annotations

import hashlib
import os
import sys
import tempfile
import time

import numpy as np

from featurize import EmbeddingCache

DIGEST_SIZE = 20  # bytes of a content digest, as the cache stores them


def digests(n: int, offset: int = 0) -> list[bytes]:
    return [
        hashlib.blake2b(i.to_bytes(8, "little"), digest_size=DIGEST_SIZE).digest()
        for i in range(offset, offset + n)
    ]


def time_batches(lookup, keys, batch: int, repeats: int = 200) -> float:
    rng = np.random.default_rng(0)
    started = time.perf_counter()
    for _ in range(repeats):
        chosen = [keys[i] for i in rng.integers(0, len(keys), batch)]
        lookup(chosen)
    return (time.perf_counter() - started) / repeats * 1000


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    dim = int(sys.argv[2]) if len(sys.argv) > 2 else 64
    keys = digests(n)
    misses = digests(n, offset=n)
    vector = np.random.default_rng(0).normal(size=dim).astype(np.float32)
    rows = []

    cache = EmbeddingCache(tempfile.mkdtemp(prefix="featurize-lookup-"))
    namespace = cache.namespace({"benchmark": dim}, dim)
    started = time.perf_counter()
    for start in range(0, n, 20_000):
        cache.put_many(namespace, ((k, vector) for k in keys[start : start + 20_000]))
    fill = time.perf_counter() - started

    def sqlite_lookup(batch):
        return cache.get_many(namespace, batch, dim)

    assert len(sqlite_lookup(keys[:10])) == 10
    size = os.path.getsize(cache.path)
    rows.append(("sqlite (WAL)", fill, sqlite_lookup, size))
    rows.append(("sqlite, aged", fill, sqlite_lookup, size))

    try:
        import lmdb
    except ImportError:
        lmdb = None
    if lmdb is not None:
        folder = tempfile.mkdtemp(prefix="featurize-lmdb-")
        env = lmdb.open(folder, map_size=8 * 2**30, writemap=True)
        started = time.perf_counter()
        payload = vector.tobytes()
        for start in range(0, n, 20_000):
            with env.begin(write=True) as txn:
                for key in keys[start : start + 20_000]:
                    txn.put(key, payload)
        lmdb_fill = time.perf_counter() - started

        def lmdb_lookup(batch):
            with env.begin() as txn:
                return {k: np.frombuffer(v, "<f4") for k in batch
                        if (v := txn.get(k)) is not None}  # fmt: skip

        # The data file is sparse (map_size is reserved, not written): count blocks.
        size = sum(os.stat(os.path.join(folder, f)).st_blocks * 512
                   for f in os.listdir(folder))  # fmt: skip
        rows.append(("lmdb", lmdb_fill, lmdb_lookup, size))

    print(f"{n:,} entries of {dim} float32; ms per batch of random keys (mean of 200)")
    header = f"{'store':<14}{'fill s':>9}{'MB':>8}"
    for batch in (32, 256):
        header += f"{f'hit {batch}':>10}{f'half-miss {batch}':>16}"
    print(header)
    for name, fill_seconds, lookup, size in rows:
        if name.startswith("sqlite"):
            import sqlite3

            age = 86400 if name == "sqlite, aged" else 0  # fresh: just used
            with sqlite3.connect(cache.path) as connection:
                connection.execute(
                    "UPDATE embeddings SET used = ?", (time.time() - age,)
                )
        line = f"{name:<14}{fill_seconds:>9.1f}{size / 2**20:>8.0f}"
        for batch in (32, 256):
            mixed = keys[: n // 2] + misses[: n // 2]
            line += f"{time_batches(lookup, keys, batch):>10.2f}"
            line += f"{time_batches(lookup, mixed, batch):>16.2f}"
        print(line)


if __name__ == "__main__":
    main()
