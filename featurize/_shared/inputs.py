"""Checks shared by every kind of input collection (images, texts)."""

from __future__ import annotations

from collections.abc import Mapping, Set

from featurize.errors import InvalidInputError


def refuse_unordered(X, noun: str) -> None:
    """Refuse mappings (iterating one gives its keys, not its values) and sets
    (their order is not promised, so rows would not line up with labels)."""
    if hasattr(X, "tocsr"):
        return  # a sparse matrix (scipy's DOK one is a dict): refused as such later
    if isinstance(X, Mapping):
        raise InvalidInputError(
            f"Expected a sequence of {noun}, received a {type(X).__name__}: "
            f"iterating it gives its keys, not its values. Pass list(d.values()) or "
            f"pandas.Series(d)."
        )
    if isinstance(X, Set):
        raise InvalidInputError(
            f"Expected a sequence of {noun}, received a {type(X).__name__}, whose "
            f"order is not promised. Pass a list or a pandas Series."
        )


def index_labels(X) -> list | None:
    """The pandas index labels of ``X`` (a Series or DataFrame), else None."""
    if hasattr(X, "iloc") and hasattr(X, "index"):
        return list(X.index)
    return None


def pandas_values(X, noun: str, column: str) -> list | None:
    """The values of a pandas Series or one-column DataFrame (None for anything
    else); a DataFrame of several columns is an error naming them."""
    if hasattr(X, "iloc") and hasattr(X, "columns"):
        if X.shape[1] != 1:
            raise InvalidInputError(
                f"Expected a DataFrame with one column of {noun}, received "
                f"{X.shape[1]} columns {list(X.columns)[:10]}. Select the column: "
                f"X[[{column!r}]]."
            )
        return list(X.iloc[:, 0])
    if hasattr(X, "iloc"):
        return list(X)
    return None


def short(value, limit: int = 40) -> str:
    """``repr(value)``, cut to ``limit`` characters for a message."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def collection_values(X, noun: str, column: str, singles: tuple, kind=None):
    """The start of every input check: a lone item (one of ``singles``) is refused
    with a hint, as are mappings and sets; a pandas Series or one-column
    DataFrame gives its values (None for other containers, checked by the caller).
    """
    if isinstance(X, singles):
        kind = kind or type(X).__name__
        raise InvalidInputError(
            f"Expected a collection of {noun}, received a single {kind} "
            f"{short(X, 60)}. Wrap it in a list: [{short(X)}]."
        )
    refuse_unordered(X, noun)
    return pandas_values(X, noun, column)


def column_array(X, noun: str) -> list:
    """A 1-D array, or one column of a 2-D one, as a list; other shapes refused."""
    if X.ndim == 2 and X.shape[1] == 1:
        X = X[:, 0]
    if X.ndim != 1:
        raise InvalidInputError(
            f"Expected a 1-D array of {noun} (or one column), received an array of "
            f"shape {X.shape}."
        )
    return list(X)
