"""Text inputs: the accepted containers and the check of each value."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from featurize._shared.inputs import collection_values, column_array, short
from featurize.errors import InvalidInputError, TextError

# A change here or in the encoders that changes embeddings bumps
# TEXT_PIPELINE_VERSION (featurize/_shared/versions.py).


def as_text_list(X) -> tuple[Sequence, Sequence | None]:
    """Check that ``X`` is a collection of texts; return it as a sequence, with its
    pandas index labels (None when it has none).

    Accepted: a list, tuple, 1-D array or pandas Series; a single-column DataFrame or
    ``(n, 1)`` array. The values themselves are checked by :func:`check_text`.
    """
    values = collection_values(X, "texts", "text", (str, bytes))
    if values is not None:
        return values, list(X.index)
    if isinstance(X, np.ndarray):
        return column_array(X, "texts"), None
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
        reason = f"a {type(value).__name__} ({short(value)}), not a text"
    raise TextError(
        reason, source=None if label is None or label == index else label, index=index
    )


def _is_missing(value) -> bool:
    import pandas as pd

    if isinstance(value, float):
        return math.isnan(value)
    return value is pd.NA or value is pd.NaT


def repair(text: str) -> tuple[str, bool]:
    """``text`` with lone surrogates replaced by U+FFFD (surrogate pairs joined)."""
    try:
        text.encode("utf-8")
        return text, False
    except UnicodeEncodeError:
        pass
    joined = text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    return joined, True
