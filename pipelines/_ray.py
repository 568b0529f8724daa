"""The batch job on Ray Data: one featurizer (one model) per actor, GPUs per actor.

The driver sends the manifest's paths through ``map_batches`` to a pool of actors, each
of which builds its ImageFeaturizer once and embeds chunks exactly as the local engine
does (same reading, same cache), and streams the results back in order; the driver
writes them with the same writer as the local engine.
"""

from __future__ import annotations

import os

import numpy as np

from featurize import EmbeddingCache, ImageFeaturizer
from pipelines._chunks import Chunk, embed_chunk

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
        }


def run_on_ray(manifest, backbone: str, params: dict, address, chunk_rows: int):
    """Yield ``(frame, Chunk)`` per chunk, in manifest order."""
    try:
        import ray
    except ImportError:
        raise ImportError(
            "engine='ray' needs Ray Data: pip install 'featurize[ray]'."
        ) from None
    params = dict(params)
    if params.get("cache", True) is True:  # actors must share the driver's cache
        params["cache"] = str(EmbeddingCache().path.parent)
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
    actors = gpus or max(1, cpus // 2)
    dataset = ray.data.from_pandas(
        manifest[["path"]].astype({"path": str}).assign(row=np.arange(len(manifest)))
    )
    results = dataset.map_batches(
        _Embedder,
        fn_constructor_args=(backbone, params),
        batch_size=chunk_rows,
        batch_format="numpy",
        concurrency=actors,
        num_gpus=1 if gpus else 0,
        num_cpus=1,
    )
    for batch in results.iter_batches(batch_format="numpy", batch_size=None):
        rows = np.asarray(batch["row"])
        frame = manifest.iloc[rows]
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
