"""Text inputs: the accepted containers and the check of each value."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from featurize._inputs import refuse_unordered
from featurize.errors import InvalidInputError, TextError

# A change here or in the encoders that changes embeddings bumps
# TEXT_PIPELINE_VERSION (featurize/_versions.py).


def as_text_list(X) -> tuple[Sequence, Sequence | None]:
    """Check that ``X`` is a collection of texts; return it as a sequence, with its
    pandas index labels (None when it has none).

    Accepted: a list, tuple, 1-D array or pandas Series; a single-column DataFrame or
    ``(n, 1)`` array. The values themselves are checked by :func:`check_text`.
    """
    if isinstance(X, (str, bytes)):
        raise InvalidInputError(
            f"Expected a collection of texts, received a single "
            f"{type(X).__name__} {_short(X)}. Wrap it in a list: [{_short(X)}]."
        )
    refuse_unordered(X, "texts")
    if hasattr(X, "iloc") and hasattr(X, "columns"):  # pandas DataFrame
        if X.shape[1] != 1:
            raise InvalidInputError(
                f"Expected a DataFrame with one column of texts, received "
                f"{X.shape[1]} columns {list(X.columns)[:10]}. Select the column: "
                f"X[['text']]."
            )
        return list(X.iloc[:, 0]), list(X.index)
    if hasattr(X, "iloc"):  # pandas Series
        return list(X), list(X.index)
    if isinstance(X, np.ndarray):
        if X.ndim == 2 and X.shape[1] == 1:
            X = X[:, 0]
        if X.ndim != 1:
            raise InvalidInputError(
                f"Expected a 1-D array of texts (or one column), received an array "
                f"of shape {X.shape}."
            )
        return list(X), None
    if hasattr(X, "tocsr"):
        raise InvalidInputError(
            f"Expected a collection of texts, received a sparse matrix of shape "
            f"{X.shape}."
        )
    try:
        return list(X), None
    except TypeError:
        raise InvalidInputError(
            f"Expected a collection of texts (a list, array or pandas Series of "
            f"strings), received {type(X).__name__}."
        ) from None


def check_text(value, index: int, label=None) -> tuple[str, bool]:
    """``value`` as a ``str`` that encodes to UTF-8, and whether it had to be
    repaired; or a :class:`TextError` naming the row.

    Missing values (None, NaN, pandas NA) and non-strings are errors, never an
    empty text: an embedding of "" would silently stand for data that is not there.
    Lone surrogates (what ``errors="surrogateescape"`` makes of undecodable bytes),
    which no tokenizer can read, are replaced by U+FFFD, and the repair is counted.
    """
    if isinstance(value, str):
        return repair(str(value))
    if value is None or _is_missing(value):
        reason = f"a missing value ({value!r}), not a text"
    elif isinstance(value, bytes):
        reason = "bytes, not a text: decode them first (value.decode('utf-8'))"
    else:
        reason = f"a {type(value).__name__} ({_short(value)}), not a text"
    raise TextError(
        reason, source=None if label is None or label == index else label, index=index
    )


def _is_missing(value) -> bool:
    import pandas as pd

    if isinstance(value, float):
        return math.isnan(value)
    return value is pd.NA or value is pd.NaT


def _short(value, limit: int = 40) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def repair(text: str) -> tuple[str, bool]:
    """``text`` with lone surrogates replaced by U+FFFD (surrogate pairs joined)."""
    try:
        text.encode("utf-8")
        return text, False
    except UnicodeEncodeError:
        pass
    joined = text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    return joined, True
