"""The batch job on Ray Data: one featurizer (one model) per actor, GPUs per actor.

The driver sends the manifest's paths through ``map_batches`` to a pool of actors, each
of which builds its ImageFeaturizer once and embeds chunks exactly as the local engine
does (same reading, same cache), and streams the results back in order; the driver
writes them with the same writer as the local engine.

Where the actors' cache lives (``ray_cache``): ``"shared"`` (default) is the driver's
cache folder (or the ``cache`` path given), which every node must reach at the same
path: a network filesystem with working file locks (NFS v4, Lustre, CephFS), so that
no image is computed twice anywhere; ``"node"`` gives each node its own cache (the
default folder, or the ``cache`` path, on that node's disk), for clusters without a
shared filesystem; ``"none"`` turns caching off.

Each actor reserves CPUs (2 per actor on CPU clusters, the node's share per GPU on GPU
clusters) and decodes with as many threads as it was given, so that several actors on
a node do not oversubscribe its cores.
"""

from __future__ import annotations

import os

import numpy as np

from featurize import EmbeddingCache, ImageFeaturizer
from pipelines._chunks import Chunk, embed_chunk

RAY_CACHES = ("shared", "node", "none")
# On CPU clusters: one core for the model's threads to lean on, one to decode.
CPUS_PER_CPU_ACTOR = 2

_FORWARDED_ENV = (
    "KERAS_BACKEND",
    "FEATURIZE_CACHE_DIR",
    "FEATURIZE_WEIGHTS_DIR",
    "TF_CPP_MIN_LOG_LEVEL",
    "KERAS_HOME",
)


class _Embedder:
    """A Ray actor: builds the featurizer once, embeds chunks of paths."""

    def __init__(self, backbone: str, params: dict):
        import ray

        params = dict(params)
        if params.get("decode_workers") is None:
            given = ray.get_runtime_context().get_assigned_resources().get("CPU", 1)
            params["decode_workers"] = max(1, int(given))
        self.decode_workers = params["decode_workers"]
        self.node = ray.get_runtime_context().get_node_id()
        self.featurizer = ImageFeaturizer(backbone, **params).fit()

    def __call__(self, batch: dict) -> dict:
        paths = [str(p) for p in batch["path"]]
        chunk = embed_chunk(self.featurizer, paths)
        failures = chunk.failures
        counts = np.zeros((2, len(paths)), np.int64)
        if len(paths):
            counts[:, 0] = chunk.cache_hits, chunk.computed
        return {
            "row": batch["row"],
            "digest": np.array([d or "" for d in chunk.digests], dtype=object),
            "embedding": chunk.embeddings,
            "error": np.array(
                [failures.get(i, ("", ""))[0] for i in range(len(paths))], dtype=object
            ),  # fmt: skip
            "message": np.array(
                [failures.get(i, ("", ""))[1] for i in range(len(paths))], dtype=object
            ),
            "hits": counts[0],
            "computed": counts[1],
            "node": np.array([self.node] * len(paths), dtype=object),
            "decode_workers": np.full(len(paths), self.decode_workers, np.int64),
        }


def actor_params(params: dict, ray_cache: str) -> dict:
    """The featurizer parameters an actor gets, its ``cache`` set by ``ray_cache``."""
    if ray_cache not in RAY_CACHES:
        raise ValueError(
            f"`ray_cache` must be one of {list(RAY_CACHES)}; received {ray_cache!r}."
        )
    params = dict(params)
    if ray_cache == "none":
        params["cache"] = None
    elif ray_cache == "shared" and params.get("cache", True) is True:
        params["cache"] = str(EmbeddingCache().path.parent)
    return params


def run_on_ray(
    manifest,
    backbone: str,
    params: dict,
    address,
    chunk_rows: int,
    ray_cache: str = "shared",
    report=None,
):
    """Yield ``(frame, Chunk)`` per chunk, in manifest order.

    ``report``, a dict if given, receives each chunk's node id and actor decode
    threads (``"nodes"``, ``"decode_workers"``).
    """
    try:
        import ray
    except ImportError:
        raise ImportError(
            "engine='ray' needs Ray Data: pip install 'keras-featurize[ray]' (from "
            "a checkout: pip install '.[ray]')."
        ) from None
    params = actor_params(params, ray_cache)
    if not ray.is_initialized():
        env = {k: os.environ[k] for k in _FORWARDED_ENV if k in os.environ}
        ray.init(
            address=address,
            include_dashboard=False,
            log_to_driver=False,
            runtime_env={"env_vars": env},
        )
    context = ray.data.DataContext.get_current()
    context.execution_options.preserve_order = True
    gpus = int(ray.cluster_resources().get("GPU", 0))
    cpus = int(ray.cluster_resources().get("CPU", 1))
    per_actor = max(1, cpus // gpus) if gpus else min(CPUS_PER_CPU_ACTOR, cpus)
    actors = gpus or max(1, cpus // per_actor)
    rows = manifest[["path"]].astype({"path": str}).assign(row=np.arange(len(manifest)))
    # One block per chunk: a single block would go to a single actor.
    dataset = ray.data.from_pandas(
        [
            rows.iloc[start : start + chunk_rows]
            for start in range(0, len(rows), chunk_rows)
        ]
        or [rows]
    )
    results = dataset.map_batches(
        _Embedder,
        fn_constructor_args=(backbone, params),
        batch_size=chunk_rows,
        batch_format="numpy",
        concurrency=actors,
        num_gpus=1 if gpus else 0,
        num_cpus=per_actor,
    )
    for batch in results.iter_batches(batch_format="numpy", batch_size=None):
        rows = np.asarray(batch["row"])
        frame = manifest.iloc[rows]
        if report is not None:
            report.setdefault("nodes", []).extend(str(n) for n in batch["node"])
            report.setdefault("decode_workers", []).extend(
                int(n) for n in batch["decode_workers"]
            )
        failures = {
            i: (str(error), str(message))
            for i, (error, message) in enumerate(zip(batch["error"], batch["message"]))
            if error
        }
        yield (
            frame,
            Chunk(
                embeddings=np.asarray(batch["embedding"], dtype=np.float32),
                digests=[str(d) or None for d in batch["digest"]],
                failures=failures,
                cache_hits=int(batch["hits"].sum()),
                computed=int(batch["computed"].sum()),
            ),
        )
