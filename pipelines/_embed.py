"""The batch job: embed a whole collection to Parquet, resumably, locally or on Ray.

Rows are read from a manifest (a folder, a glob, a text file of paths, or a CSV/Parquet
file), embedded chunk by chunk through the embedding cache (so a re-run after a crash
recomputes nothing that was stored), and streamed into a temporary Parquet file that is
renamed into place only when complete. Failures go to a second file with the path,
error type and message. ``engine="ray"`` runs the same job as a Ray Data pipeline, one
model per actor, writing the same output through the same cache.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass

import numpy as np

from featurize import EmbeddingCache, ImageFeaturizer, TextFeaturizer, __version__
from pipelines._chunks import embed_chunk, free_names
from pipelines._files import (
    atomic_output,
    check_output,
    publish,
    remove_stale_temporaries,
    temporary_path,
)
from pipelines._manifests import read_manifest, read_text_table
from pipelines._ray import run_on_ray

CHUNK_ROWS = 1024
# Featurizer parameters that say how inputs are read on this machine, not what
# the embeddings are: left out of the metadata that rebuilds a featurizer.
READING_PARAMS = ("batch_size", "cache", "decode_workers", "on_error", "runtime",
                  "verbose", "max_pixels")  # fmt: skip
FAILURE_COLUMNS = ["path", "error", "message"]
# A text's failure is named by its row in the manifest (0-based, header excluded).
TEXT_FAILURE_COLUMNS = ["row", "error", "message"]


@dataclass
class Summary:
    """What a job did."""

    rows: int = 0
    embedded: int = 0
    from_cache: int = 0
    failed: int = 0
    seconds: float = 0.0
    output: str = ""
    failures: str = ""
    unit: str = "images"
    truncated: int = 0

    @property
    def images_per_second(self) -> float:
        """Rows (images or texts) per second of wall time."""
        return self.rows / self.seconds if self.seconds else 0.0

    def __str__(self) -> str:
        return (
            f"{self.rows} rows: {self.embedded} embedded, {self.from_cache} from the "
            f"cache, {self.failed} failed; {self.images_per_second:.1f} {self.unit}/s, "
            f"{self.seconds:.1f} s wall time. Output: {self.output}"
            + (f"; failures: {self.failures}" if self.failed else "")
            + (
                f". {self.truncated} texts were longer than max_length and were "
                f"truncated (--long-text chunks embeds them whole)"
                if self.truncated
                else ""
            )
        )


def defining_params(featurizer) -> dict:
    """The featurizer's parameters that define its embeddings, as plain data."""
    return {
        name: list(value) if isinstance(value, tuple) else value
        for name, value in featurizer.get_params().items()
        if name not in READING_PARAMS
    }


def _arrow_table(frame, digests, embeddings, keep, schema, names):
    import pyarrow as pa

    dim = embeddings.shape[1]
    rows = frame.iloc[keep].reset_index(drop=True)
    # The manifest's schema, so that every chunk has the same column types.
    table = pa.Table.from_pandas(rows, schema=schema, preserve_index=False)
    values = pa.array(embeddings[keep].reshape(-1), type=pa.float32())
    digest = pa.array([digests[i] for i in keep], pa.string())
    table = table.append_column(names["digest"], digest)
    embedding = pa.FixedSizeListArray.from_arrays(values, dim)
    return table.append_column(names["embedding"], embedding)


class _AtomicParquet:
    """A Parquet file written to a temporary name and renamed into place on close."""

    def __init__(self, path: str, metadata: dict):
        self.path = path
        self.metadata = {k: json.dumps(v) for k, v in metadata.items()}
        remove_stale_temporaries(path)
        self.temporary = temporary_path(path)
        self.writer = None

    def write(self, table) -> None:
        import pyarrow.parquet as pq

        if self.writer is None:
            schema = table.schema.with_metadata(self.metadata)
            self.writer = pq.ParquetWriter(self.temporary, schema)
        self.writer.write_table(table.replace_schema_metadata(self.metadata))

    def close(self, empty_schema=None) -> None:
        import pyarrow.parquet as pq

        if self.writer is None and empty_schema is not None:
            self.writer = pq.ParquetWriter(
                self.temporary, empty_schema.with_metadata(self.metadata)
            )
        if self.writer is not None:
            self.writer.close()
        publish(self.temporary, self.path)

    def discard(self) -> None:
        if self.writer is not None:
            self.writer.close()
        if os.path.exists(self.temporary):
            os.unlink(self.temporary)


def _write_failures(path: str, records: list, columns=FAILURE_COLUMNS) -> None:
    import pandas as pd

    frame = pd.DataFrame(records, columns=columns)
    with atomic_output(path) as temporary:
        frame.to_parquet(temporary, index=False)


def failures_path(output: str) -> str:
    """Where the failures of ``output`` go: ``<name>.failures.parquet``."""
    stem = output[: -len(".parquet")] if output.endswith(".parquet") else output
    return f"{stem}.failures.parquet"


def embed_dataset(
    source,
    out: str,
    *,
    backbone: str = "efficientnet_lite0",
    path_column: str = "path",
    text_column: str | None = None,
    engine: str = "local",
    address: str | None = None,
    ray_cache: str = "shared",
    chunk_rows: int = CHUNK_ROWS,
    progress: bool = True,
    encoding: str | None = None,
    sep: str | None = None,
    **featurizer_params,
) -> Summary:
    """Embed every image of ``source`` (or every text of its ``text_column``) into
    a Parquet file.

    Parameters
    ----------
    source : path-like
        A folder, a glob, a text file of paths, or a CSV/Parquet manifest.
    out : str
        The Parquet file to write (``.parquet`` or ``.pq``; never one of the
        inputs; checked before any work): the manifest's other columns, ``path``,
        ``digest`` (BLAKE2b of the file's content) and ``embedding`` (fixed-size
        list of float32), with the featurizer's settings in the file metadata
        (its fingerprint, and the parameters that rebuild it: ``featurize
        similar`` embeds queries with them); where
        the manifest has columns of those names, the added ones are
        ``featurize_digest`` and ``featurize_embedding``. Failures go to
        ``<out>.failures.parquet`` (``path``, ``error``, ``message``).
    backbone : str
        Any registry name; other featurizer settings go in ``featurizer_params``.
    path_column : str, default="path"
        The manifest column holding the paths.
    text_column : str or None, default=None
        Embed this column of a CSV/Parquet manifest as text, with
        :class:`featurize.TextFeaturizer` (``featurizer_params`` are its parameters:
        ``encoder``, ``max_length``, ...; ``backbone`` is not used). Every column
        is kept; a missing or non-text value is a failure named by its ``row``.
        Local engine only.
    engine : {"local", "ray"}, default="local"
        ``"ray"`` runs on a Ray cluster (``address``; a local one by default).
    ray_cache : {"shared", "node", "none"}, default="shared"
        With ``engine="ray"``: the actors' cache is the driver's (or ``cache``'s)
        folder, which every node must reach at the same path (a network filesystem
        with file locks); or each node's own; or none.
    chunk_rows : int
        Rows embedded and written per step.
    progress : bool
        Show a progress bar with rate and ETA.
    encoding, sep : str, optional
        A CSV manifest's encoding and separator (see ``read_table``).

    Returns
    -------
    Summary
        Rows, embedded, from cache, failed, images/s, wall time, output paths.
    """
    started = time.perf_counter()
    check_output(out, inputs=[source], what="output", suffixes=(".parquet", ".pq"))
    check_output(failures_path(out), inputs=[source], what="failures file")
    if text_column is not None:
        if engine != "local":
            raise ValueError(
                f"Text columns are embedded with engine='local' (received "
                f"{engine!r}): the text encoders embed thousands of texts a second "
                f"on one machine."
            )
        manifest = read_text_table(source, text_column, encoding=encoding, sep=sep)
        featurizer = TextFeaturizer(**featurizer_params).fit()
        items = manifest[text_column]
    else:
        manifest = read_manifest(source, path_column, encoding=encoding, sep=sep)
        featurizer = ImageFeaturizer(backbone, **featurizer_params).fit()
        items = manifest.path
    settings = featurizer.fingerprint()
    metadata = {
        "featurize": {
            "fingerprint": EmbeddingCache.fingerprint(settings),
            "settings": settings,
            "n_features": featurizer.n_features_out_,
            "version": __version__,
            # What embeds a query the same way (`featurize similar`).
            "modality": "image" if text_column is None else "text",
            "column": "path" if text_column is None else text_column,
            "params": defining_params(featurizer),
        }
    }
    if engine == "ray":
        chunks = run_on_ray(
            manifest, backbone, featurizer_params, address, chunk_rows, ray_cache
        )
    elif engine == "local":
        chunks = _run_local(manifest, items, featurizer, chunk_rows)
    else:
        raise ValueError(f"`engine` must be 'local' or 'ray'; received {engine!r}.")
    summary = Summary(rows=len(manifest), output=out, failures=failures_path(out))
    if text_column is not None:
        summary.unit = "texts"
    import pyarrow as pa

    schema = pa.Schema.from_pandas(manifest, preserve_index=False)
    added = free_names(["digest", "embedding"], manifest.columns, "featurize_")
    writer = _AtomicParquet(out, metadata)
    failures = []
    bar = _bar(len(manifest), progress, summary.unit)
    try:
        for frame, chunk in chunks:
            keep = [i for i in range(len(frame)) if i not in chunk.failures]
            if keep:
                writer.write(
                    _arrow_table(
                        frame, chunk.digests, chunk.embeddings, keep, schema, added
                    )
                )
            for i, (error, message) in sorted(chunk.failures.items()):
                name = frame.path.iloc[i] if text_column is None else frame.index[i]
                failures.append((name, error, message))
            summary.from_cache += chunk.cache_hits
            summary.embedded += chunk.computed
            summary.truncated += chunk.truncated
            bar.update(len(frame))
        empty = np.zeros((0, featurizer.n_features_out_), np.float32)
        nothing = _arrow_table(manifest.iloc[:0], [], empty, [], schema, added)
        writer.close(empty_schema=nothing.schema)
    except BaseException:
        writer.discard()
        raise
    finally:
        bar.close()
    columns = FAILURE_COLUMNS if text_column is None else TEXT_FAILURE_COLUMNS
    _write_failures(summary.failures, failures, columns)
    summary.failed = len(failures)
    summary.seconds = time.perf_counter() - started
    return summary


def _run_local(manifest, items, featurizer, chunk_rows: int):
    images = isinstance(featurizer, ImageFeaturizer)
    for start in range(0, len(manifest), chunk_rows):
        frame = manifest.iloc[start : start + chunk_rows]
        values = items.iloc[start : start + chunk_rows].tolist()
        if images:  # a missing path stays missing: reported, never read as "nan"
            values = [None if _missing(v) else str(v) for v in values]
        yield frame, embed_chunk(featurizer, values)


def _missing(value) -> bool:
    import pandas as pd

    return value is None or (not isinstance(value, str) and bool(pd.isna(value)))


def _bar(total: int, enabled: bool, unit: str = "images"):
    from tqdm.auto import tqdm

    return tqdm(total=total, unit=unit[:-1], desc="embedding", disable=not enabled,
                smoothing=0.1)  # fmt: skip
