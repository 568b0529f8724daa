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
