"""The batch job: embed a whole collection to Parquet, resumably, locally or on Ray.

Rows are read from a manifest (a folder, a glob, a text file of paths, or a CSV/Parquet
file), embedded chunk by chunk through the embedding cache (so a re-run after a crash
recomputes nothing that was stored), and streamed into a temporary Parquet file that is
renamed into place only when complete. Failures go to a second file with the path,
error type and message. ``engine="ray"`` runs the same job as a Ray Data pipeline, one
model per actor, writing the same output through the same cache.
"""

from __future__ import annotations

import glob
import json
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from featurize import EmbeddingCache, ImageFeaturizer, TextFeaturizer, __version__
from pipelines._chunks import embed_chunk, read_url
from pipelines._data import IMAGE_EXTENSIONS
from pipelines._ray import run_on_ray

CHUNK_ROWS = 1024
# Leading bytes of the formats PIL decodes that we look for when walking a folder.
_MAGIC = (
    b"\xff\xd8\xff",  # JPEG
    b"\x89PNG\r\n\x1a\n",
    b"GIF87a",
    b"GIF89a",
    b"BM",
    b"II*\x00",  # TIFF
    b"MM\x00*",
)
FAILURE_COLUMNS = ["path", "error", "message"]
# A text's failure is named by its row in the manifest (0-based, header excluded).
TEXT_FAILURE_COLUMNS = ["row", "error", "message"]


def is_image_file(path) -> bool:
    """Whether a file starts like an image (content sniffing, not the extension)."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(16)
    except OSError:
        return False
    return head.startswith(_MAGIC) or (head[:4] == b"RIFF" and head[8:12] == b"WEBP")


def read_manifest(source, path_column: str = "path"):
    """The rows to embed, as a DataFrame with a ``path`` column (plus carried ones).

    ``source`` is a folder (walked recursively: files with an image extension, and
    any other file whose content starts like an image; a broken ``.jpg`` is kept so
    that it is reported as a failure),
    a glob pattern, a ``.txt`` file with one path per line, or a ``.csv``/``.parquet``
    manifest whose ``path_column`` holds the paths (its other columns are carried
    through). Paths, and the manifest itself, may be fsspec URLs (``s3://...``).
    """
    import pandas as pd

    text = os.fspath(source)
    is_url = "://" in text and not text.startswith("file://")
    if is_url:
        _check_url_manifest(text)
    elif os.path.isdir(text):
        found = sorted(
            os.path.join(root, name)
            for root, dirs, files in os.walk(text)
            for name in files
            if not name.startswith(".")
        )
        keep = [
            p for p in found if p.lower().endswith(IMAGE_EXTENSIONS) or is_image_file(p)
        ]
        return pd.DataFrame({"path": keep})
    elif any(char in text for char in "*?[") and not os.path.exists(text):
        return pd.DataFrame({"path": sorted(glob.glob(text, recursive=True))})
    elif not os.path.exists(text):
        raise FileNotFoundError(f"Input {text!r} does not exist.")
    suffix = Path(text).suffix.lower()
    if suffix in (".csv", ".parquet", ".pq"):
        table = pd.read_csv(text) if suffix == ".csv" else pd.read_parquet(text)
        if path_column not in table.columns:
            raise ValueError(
                f"Manifest {text!r} has no column {path_column!r}; its columns are "
                f"{list(table.columns)}. Pass path_column=... (--path-column)."
            )
        table = table.rename(columns={path_column: "path"})
        return table[["path", *[c for c in table.columns if c != "path"]]]
    if is_url:
        lines = read_url(text).decode("utf-8").splitlines()
    else:
        with open(text, encoding="utf-8") as handle:
            lines = handle.read().splitlines()
    return pd.DataFrame({"path": [line.strip() for line in lines if line.strip()]})


def read_text_table(source, text_column: str):
    """The rows of a CSV/Parquet manifest (or a URL to one) with a ``text_column``."""
    import pandas as pd

    text = os.fspath(source)
    suffix = Path(text.split("?")[0]).suffix.lower()
    if suffix not in (".csv", ".parquet", ".pq"):
        raise ValueError(
            f"Texts are read from a column of a CSV or Parquet table; received "
            f"{text!r}. Pass a .csv or .parquet file and its text column."
        )
    if "://" not in text and not os.path.exists(text):
        raise FileNotFoundError(f"Input {text!r} does not exist.")
    table = pd.read_csv(text) if suffix == ".csv" else pd.read_parquet(text)
    if text_column not in table.columns:
        raise ValueError(
            f"Table {text!r} has no column {text_column!r}; its columns are "
            f"{list(table.columns)}. Pass text_column=... (--text-column)."
        )
    return table.reset_index(drop=True)  # failures are named by row number


def _check_url_manifest(url: str) -> None:
    """A manifest at a URL must be a file (a table or a list): folders and globs are
    walked on local disks only."""
    suffix = Path(url.split("?")[0]).suffix.lower()
    if suffix not in (".csv", ".parquet", ".pq", ".txt"):
        raise ValueError(
            f"Input {url!r} is a URL: pass a CSV/Parquet manifest or a .txt list of "
            f"paths there (folders and globs are read from local disks only)."
        )


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
        )


def _arrow_table(frame, digests, embeddings, keep, schema):
    import pyarrow as pa

    dim = embeddings.shape[1]
    rows = frame.iloc[keep].reset_index(drop=True)
    # The manifest's schema, so that every chunk has the same column types.
    table = pa.Table.from_pandas(rows, schema=schema, preserve_index=False)
    values = pa.array(embeddings[keep].reshape(-1), type=pa.float32())
    digest = pa.array([digests[i] for i in keep], pa.string())
    table = table.append_column("digest", digest)
    embedding = pa.FixedSizeListArray.from_arrays(values, dim)
    return table.append_column("embedding", embedding)


class _AtomicParquet:
    """A Parquet file written to a temporary name and renamed into place on close."""

    def __init__(self, path: str, metadata: dict):
        self.path = path
        self.metadata = {k: json.dumps(v) for k, v in metadata.items()}
        folder = os.path.dirname(os.path.abspath(path))
        os.makedirs(folder, exist_ok=True)
        handle, self.temporary = tempfile.mkstemp(
            prefix=f".{os.path.basename(path)}.", suffix=".tmp", dir=folder
        )
        os.close(handle)
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
        os.replace(self.temporary, self.path)

    def discard(self) -> None:
        if self.writer is not None:
            self.writer.close()
        if os.path.exists(self.temporary):
            os.unlink(self.temporary)


def _write_failures(path: str, records: list, columns=FAILURE_COLUMNS) -> None:
    import pandas as pd

    frame = pd.DataFrame(records, columns=columns)
    folder = os.path.dirname(os.path.abspath(path))
    handle, temporary = tempfile.mkstemp(prefix=".failures.", dir=folder)
    os.close(handle)
    try:
        if path.endswith(".csv"):
            frame.to_csv(temporary, index=False)
        else:
            frame.to_parquet(temporary, index=False)
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)


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
    **featurizer_params,
) -> Summary:
    """Embed every image of ``source`` (or every text of its ``text_column``) into
    a Parquet file.

    Parameters
    ----------
    source : path-like
        A folder, a glob, a text file of paths, or a CSV/Parquet manifest.
    out : str
        The Parquet file to write: the manifest's other columns, ``path``, ``digest``
        (BLAKE2b of the file's content) and ``embedding`` (fixed-size list of
        float32), with the featurizer's settings in the file metadata. Failures go to
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

    Returns
    -------
    Summary
        Rows, embedded, from cache, failed, images/s, wall time, output paths.
    """
    started = time.perf_counter()
    if text_column is not None:
        if engine != "local":
            raise ValueError(
                f"Text columns are embedded with engine='local' (received "
                f"{engine!r}): the text encoders embed thousands of texts a second "
                f"on one machine."
            )
        manifest = read_text_table(source, text_column)
        featurizer = TextFeaturizer(**featurizer_params).fit()
        items = manifest[text_column]
    else:
        manifest = read_manifest(source, path_column)
        featurizer = ImageFeaturizer(backbone, **featurizer_params).fit()
        items = manifest.path
    settings = featurizer.fingerprint()
    metadata = {
        "featurize": {
            "fingerprint": EmbeddingCache.fingerprint(settings),
            "settings": settings,
            "n_features": featurizer.n_features_out_,
            "version": __version__,
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
    writer = _AtomicParquet(out, metadata)
    failures = []
    bar = _bar(len(manifest), progress, summary.unit)
    try:
        for frame, chunk in chunks:
            keep = [i for i in range(len(frame)) if i not in chunk.failures]
            if keep:
                writer.write(
                    _arrow_table(frame, chunk.digests, chunk.embeddings, keep, schema)
                )
            for i, (error, message) in sorted(chunk.failures.items()):
                name = frame.path.iloc[i] if text_column is None else frame.index[i]
                failures.append((name, error, message))
            summary.from_cache += chunk.cache_hits
            summary.embedded += chunk.computed
            bar.update(len(frame))
        empty = np.zeros((0, featurizer.n_features_out_), np.float32)
        nothing = _arrow_table(manifest.iloc[:0], [], empty, [], schema)
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
        values = items.iloc[start : start + chunk_rows]
        values = values.astype(str).tolist() if images else values.tolist()
        yield frame, embed_chunk(featurizer, values)


def _bar(total: int, enabled: bool, unit: str = "images"):
    from tqdm.auto import tqdm

    return tqdm(total=total, unit=unit[:-1], desc="embedding", disable=not enabled,
                smoothing=0.1)  # fmt: skip
