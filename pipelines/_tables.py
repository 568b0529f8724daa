"""Tables read as the user meant them: CSV and Parquet, with one-line errors.

pandas guesses: it turns the texts ``NA``, ``null``, ``None``, ``N/A`` and ``nan``
into missing values and a column of digits into numbers (``007`` into 7, labels ``01``
and ``1`` into one class). Every column of a CSV is read as the text it is instead,
and only an empty cell is missing, so outputs carry the input's own cells; a Parquet
table keeps the types it was written with. The
separator of a CSV is sniffed among ``, \\t ; |`` where the header makes it plain; the
encoding is UTF-8 (with or without a byte-order mark) unless given. Whatever goes
wrong names the file, says what is wrong and how to fix it.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path

from featurize import TableReadError

TABLE_SUFFIXES = (".csv", ".tsv", ".parquet", ".pq")
_SNIFFED = ",\t;|"
_SAMPLE_BYTES = 1 << 16


def is_url(text: str) -> bool:
    return "://" in text and not text.startswith("file://")


def table_suffix(source) -> str:
    """The lower-case suffix of a table's name (a URL's query left out)."""
    return Path(os.fspath(source).split("?")[0]).suffix.lower()


def read_table(source, *, columns=(), encoding=None, sep=None):
    """A CSV or Parquet table; a CSV's cells as strings, as written.

    Parameters
    ----------
    source : path-like or str
        A ``.csv``, ``.tsv``, ``.parquet`` or ``.pq`` file, or an fsspec URL to one.
    columns : sequence of str
        Columns that must exist. Every column of a CSV is read as strings (no
        number, boolean or missing-value guessing: an empty cell is the only
        missing value).
    encoding : str, optional
        The CSV's text encoding; by default UTF-8 (a byte-order mark is skipped).
    sep : str, optional
        The CSV's separator; by default tab for ``.tsv`` and otherwise sniffed from
        the header among comma, tab, semicolon and bar (comma where unsure).

    Raises
    ------
    TableReadError
        Naming the file: missing, empty, not in its encoding, not parseable, or
        without one of ``columns`` (listing the columns it has).
    """
    import pandas as pd

    text = os.fspath(source)
    suffix = table_suffix(text)
    if suffix not in TABLE_SUFFIXES:
        raise TableReadError(
            f"{text!r} is not a table: expected a .csv, .tsv, .parquet or .pq file."
        )
    if not is_url(text):
        text = text.removeprefix("file://")
        if not os.path.exists(text):
            raise TableReadError(f"Table {text!r} does not exist.")
        if os.path.isdir(text):
            raise TableReadError(f"Table {text!r} is a directory, not a file.")
        if os.path.getsize(text) == 0:
            raise TableReadError(
                f"Table {text!r} is empty (0 bytes): expected a header row and rows."
            )
    if suffix in (".parquet", ".pq"):
        try:
            table = pd.read_parquet(text)
        except Exception as error:
            raise TableReadError(
                f"{text!r} is not a readable Parquet file ({type(error).__name__}: "
                f"{_first_line(error)})."
            ) from None
    else:
        table = _read_csv(text, suffix, encoding, sep)
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise TableReadError(
            f"Table {text!r} has no column {missing[0]!r}; its columns are "
            f"{list(table.columns)[:20]}. Name the column that holds the "
            f"{'texts' if len(columns) else 'data'} (--text-column, --path-column, "
            f"--label-column), or pass --sep if the header was not split."
        )
    return table


def _read_csv(path: str, suffix: str, encoding, sep):
    import pandas as pd

    encoding = encoding or "utf-8-sig"
    if sep is None:
        sep = "\t" if suffix == ".tsv" else _sniff(path, encoding)
    try:
        return pd.read_csv(
            path,
            sep=sep,
            encoding=encoding,
            dtype=str,
            keep_default_na=False,
            na_values=[""],
        )
    except UnicodeDecodeError as error:
        shown = "UTF-8" if encoding.lower().startswith("utf") else encoding
        raise TableReadError(
            f"{path!r} is not {shown} text (byte {error.object[error.start]:#04x} at "
            f"position {error.start} cannot be decoded); pass its encoding, e.g. "
            f"--encoding latin-1 (or cp1252)."
        ) from None
    except LookupError:
        raise TableReadError(
            f"Unknown encoding {encoding!r} for {path!r}: use a Python codec name "
            f"such as utf-8, latin-1 or cp1252."
        ) from None
    except pd.errors.EmptyDataError:
        raise TableReadError(
            f"Table {path!r} holds no header row: expected column names on its "
            f"first line."
        ) from None
    except (pd.errors.ParserError, ValueError) as error:
        raise TableReadError(
            f"{path!r} could not be read as CSV with separator {sep!r} "
            f"({_first_line(error)}); pass the right one with --sep (e.g. --sep "
            f"';' or --sep tab)."
        ) from None


def _sniff(path: str, encoding: str) -> str:
    """The separator the header line makes plain; comma where it does not."""
    if is_url(path):
        return ","
    try:
        with open(path, encoding=encoding, errors="replace", newline="") as handle:
            sample = handle.read(_SAMPLE_BYTES)
    except (OSError, LookupError):
        return ","  # read_csv reports it, naming the file
    header = sample.splitlines()[0] if sample else ""
    if "," in header:
        return ","
    try:
        return csv.Sniffer().sniff(sample, delimiters=_SNIFFED).delimiter
    except csv.Error:
        return ","


def separator(text: str) -> str:
    """``--sep`` as typed: ``tab`` or ``\\t`` for a tab, else the character."""
    if text.lower() in ("tab", "\\t"):
        return "\t"
    if len(text) != 1:
        raise TableReadError(
            f"--sep must be one character (or 'tab'); received {text!r}."
        )
    return text


def _first_line(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    return lines[0][:160] if lines else type(error).__name__
