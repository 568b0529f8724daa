"""What to embed or predict: the rows of a folder, a glob, a list or a table."""

from __future__ import annotations

import glob
import os

from featurize import TableReadError
from pipelines._chunks import read_url
from pipelines._data import IMAGE_EXTENSIONS
from pipelines._tables import TABLE_SUFFIXES, is_url, read_table, table_suffix

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


def is_image_file(path) -> bool:
    """Whether a file starts like an image (content sniffing, not the extension)."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(16)
    except OSError:
        return False
    return head.startswith(_MAGIC) or (head[:4] == b"RIFF" and head[8:12] == b"WEBP")


def read_manifest(source, path_column: str = "path", *, encoding=None, sep=None):
    """The rows to embed, as a DataFrame with a ``path`` column (plus carried ones).

    ``source`` is a folder (walked recursively: files with an image extension, and
    any other file whose content starts like an image; a broken ``.jpg`` is kept so
    that it is reported as a failure),
    a glob pattern, a ``.txt`` file with one path per line, or a ``.csv``/``.parquet``
    manifest whose ``path_column`` holds the paths (its other columns are carried
    through; the paths are read as strings, and only an empty cell is missing).
    Paths, and the manifest itself, may be fsspec URLs (``s3://...``). ``encoding``
    and ``sep`` are the CSV's (see :func:`read_table`).
    """
    import pandas as pd

    text = os.fspath(source)
    url = is_url(text)
    if url:
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
    if table_suffix(text) in TABLE_SUFFIXES:
        table = read_table(text, columns=[path_column], encoding=encoding, sep=sep)
        table = table.rename(columns={path_column: "path"})
        return table[["path", *[c for c in table.columns if c != "path"]]]
    if url:
        lines = read_url(text).decode("utf-8").splitlines()
    else:
        with open(text, encoding=encoding or "utf-8-sig") as handle:
            lines = handle.read().splitlines()
    return pd.DataFrame({"path": [line.strip() for line in lines if line.strip()]})


def read_text_table(source, text_column: str, *, encoding=None, sep=None):
    """The rows of a CSV/Parquet table (or a URL to one) with a ``text_column``,
    read as strings (only an empty cell is a missing text)."""
    text = os.fspath(source)
    if table_suffix(text) not in TABLE_SUFFIXES:
        raise TableReadError(
            f"Texts are read from a column of a CSV or Parquet table; received "
            f"{text!r}. Pass a .csv, .tsv or .parquet file and its text column."
        )
    table = read_table(text, columns=[text_column], encoding=encoding, sep=sep)
    return table.reset_index(drop=True)  # failures are named by row number


def _check_url_manifest(url: str) -> None:
    """A manifest at a URL must be a file (a table or a list): folders and globs are
    walked on local disks only."""
    if table_suffix(url) not in (*TABLE_SUFFIXES, ".txt"):
        raise ValueError(
            f"Input {url!r} is a URL: pass a CSV/Parquet manifest or a .txt list of "
            f"paths there (folders and globs are read from local disks only)."
        )
