"""Selection and search at scale, on clustered synthetic rows (384 wide, MiniLM's
width): the seconds and peak memory of one ``next_to_label`` round (from zero
labels, and with labels), of ``spread_labels`` on those labels, and the latency of
``find_similar``'s search per query with the index build beside it.

    python benchmarks/labelling_scale.py [--sizes 5000 50000 1000000]
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import subprocess
import time

import numpy as np
from sklearn.preprocessing import normalize

from pipelines import (
    neighbour_index,
    next_to_label,
    search_neighbours,
    spread_labels,
)

WIDTH = 384


def rows(n: int, seed: int = 0):
    """Unit rows around n/500 centres, and a class per centre group (10)."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(max(10, n // 500), WIDTH)).astype(np.float32)
    which = rng.integers(len(centres), size=n)
    out = np.empty((n, WIDTH), np.float32)
    for start in range(0, n, 100_000):  # bounded temporaries
        part = which[start : start + 100_000]
        noise = rng.normal(size=(len(part), WIDTH)).astype(np.float32)
        out[start : start + len(part)] = centres[part] + 0.8 * noise
    return normalize(out), which % 10


def peak_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def kept(X, index) -> str:
    """What `find_similar` pays on a later call: reading the embeddings from
    Parquet (flattened in Arrow) and the index it kept beside them."""
    import tempfile

    import faiss
    import pyarrow as pa
    import pyarrow.parquet as pq

    with tempfile.TemporaryDirectory() as folder:
        column = pa.FixedSizeListArray.from_arrays(pa.array(X.ravel()), WIDTH)
        pq.write_table(pa.table({"embedding": column}), f"{folder}/e.parquet")
        faiss.write_index(index, f"{folder}/e.hnsw")
        started = time.perf_counter()
        values = pq.read_table(f"{folder}/e.parquet").column(0).combine_chunks()
        np.asarray(values.flatten(), dtype=np.float32).reshape(len(values), -1)
        parquet = time.perf_counter() - started
        started = time.perf_counter()
        faiss.read_index(f"{folder}/e.hnsw")
        read = time.perf_counter() - started
    return (
        f"later calls read the Parquet in {parquet:.1f} s and the index in {read:.1f} s"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=int, nargs="+",
                        default=[5_000, 50_000, 1_000_000])  # fmt: skip
    parser.add_argument("--budget", type=int, default=100)
    args = parser.parse_args()
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"],
                            capture_output=True, text=True).stdout.strip()  # fmt: skip
    print(f"selection and search at scale: {platform.node()}, {os.cpu_count()} "
          f"cores, commit {commit}, {time.strftime('%Y-%m-%d')}; rows {WIDTH} wide, "
          f"budget {args.budget} a round")  # fmt: skip
    for n in args.sizes:
        X, classes = rows(n)
        labels = np.array([None] * n, dtype=object)
        started = time.perf_counter()
        picked = next_to_label(X, labels, args.budget, random_state=0)
        cold = time.perf_counter() - started
        labels[picked] = classes[picked]
        seed_rows = np.flatnonzero(labels == None)[: 3 * 10]  # noqa: E711
        labels[seed_rows] = classes[seed_rows]  # every class has labels
        started = time.perf_counter()
        next_to_label(X, labels, args.budget, random_state=0)
        warm = time.perf_counter() - started
        started = time.perf_counter()
        spread = spread_labels(X, labels, random_state=0)
        spreading = time.perf_counter() - started
        queries = X[:: max(1, n // 200)][:200]
        search_neighbours(X, queries[:5], 10, backend="exact")  # warm
        started = time.perf_counter()
        search_neighbours(X, queries, 10, backend="exact")
        exact_ms = 1000 * (time.perf_counter() - started) / len(queries)
        line = (f"{n:>9} rows: round from zero {cold:6.1f} s, with labels "
                f"{warm:6.1f} s; spread_labels {spreading:5.1f} s (spread: "
                f"{spread.spread}); exact search {exact_ms:7.2f} ms/query (200 in "
                f"one call)")  # fmt: skip
        if n >= 50_000:
            started = time.perf_counter()
            index = neighbour_index(X)
            build = time.perf_counter() - started
            index.search(queries[:5], 10)
            started = time.perf_counter()
            for query in queries:
                index.search(query[None], 10)
            hnsw_ms = 1000 * (time.perf_counter() - started) / len(queries)
            exact, _ = search_neighbours(X, queries, 1, backend="exact")
            recall = float(np.mean(exact[:, 0] == index.search(queries, 1)[1][:, 0]))
            line += (f"; HNSW build {build:6.1f} s, {hnsw_ms:5.2f} ms/query, top-1 "
                     f"as exact {recall:.3f}")  # fmt: skip
            line += "; " + kept(X, index)
        print(line + f"; peak RSS {peak_gib():.1f} GiB", flush=True)


if __name__ == "__main__":
    main()
