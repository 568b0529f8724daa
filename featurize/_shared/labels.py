"""Class labels, checked once for every estimator and command: the one place that
decides what a missing label is and how few are too few."""

from __future__ import annotations

import math

import numpy as np

from featurize.errors import InvalidLabelsError

_SHOWN = 5


def _is_missing(value) -> bool:
    if value is None:
        return True
    if isinstance(value, float):
        return math.isnan(value)
    if isinstance(value, np.floating):
        return bool(np.isnan(value))
    import pandas as pd

    return value is pd.NA or value is pd.NaT


def missing_labels(y) -> np.ndarray:
    """Boolean mask of the labels that are missing: None, NaN, pandas NA or NaT.

    Parameters
    ----------
    y : array-like of shape (n_samples,)

    Returns
    -------
    ndarray of bool

    Examples
    --------
    >>> from featurize import missing_labels
    >>> missing_labels(["cat", None, float("nan"), "dog"]).tolist()
    [False, True, True, False]
    """
    return np.array([_is_missing(value) for value in _values(y)], dtype=bool)


def _values(y) -> list:
    if hasattr(y, "iloc") and hasattr(y, "columns"):
        if y.shape[1] != 1:
            raise InvalidLabelsError(
                f"y must be one column of labels; received a DataFrame with "
                f"{y.shape[1]} columns {list(y.columns)[:10]}."
            )
        y = y.iloc[:, 0]
    if hasattr(y, "iloc"):
        return y.tolist()
    array = np.asarray(y, dtype=object)
    if array.ndim == 2 and array.shape[1] == 1:
        array = array[:, 0]
    if array.ndim != 1:
        raise InvalidLabelsError(
            f"y must be 1-D, one label per input; received shape {array.shape}."
        )
    return array.tolist()


def check_labels(y, n_samples: int, *, what: str = "inputs") -> np.ndarray:
    """Check class labels for training; return them as a 1-D array.

    Parameters
    ----------
    y : array-like of shape (n_samples,)
        A list, array, pandas Series or one-column DataFrame of labels.
    n_samples : int
        How many inputs the labels go with.
    what : str, default="inputs"
        What the inputs are, for the messages ("images", "texts").

    Returns
    -------
    ndarray of shape (n_samples,)
        The labels (strings stay strings, numbers numbers).

    Raises
    ------
    InvalidLabelsError
        One label per input is missing, some labels are missing (naming their rows
        and pandas index labels), or there are fewer than two classes.
    """
    values = _values(y)
    if len(values) != n_samples:
        raise InvalidLabelsError(
            f"y must hold one label per input: received {n_samples} {what} and "
            f"{len(values)} labels."
        )
    missing = np.flatnonzero(missing_labels(values))
    if len(missing):
        index = list(y.index) if hasattr(y, "index") and hasattr(y, "iloc") else None
        rows = missing[:_SHOWN].tolist()
        where = f"rows {rows}"
        if index is not None and [index[r] for r in rows] != rows:
            where += f" (index labels {[index[r] for r in rows]})"
        more = f" and {len(missing) - _SHOWN} more" if len(missing) > _SHOWN else ""
        raise InvalidLabelsError(
            f"{len(missing)} of {n_samples} labels are missing (None, NaN or NA): "
            f"{where}{more}. Drop those {what} or give them a label; a missing value "
            f"is never a class."
        )
    kinds = {type(value).__name__ for value in values}
    if len({"str" if k in ("str", "str_") else "number" for k in kinds}) > 1:
        raise InvalidLabelsError(
            f"Labels mix strings and numbers ({sorted(kinds)}): a class is either; "
            f"convert them, e.g. y.astype(str)."
        )
    labels = np.asarray(values)
    classes = np.unique(labels)
    if len(classes) < 2:
        raise InvalidLabelsError(
            f"Training needs {what} of at least 2 classes; y has only "
            f"{classes.tolist()}."
        )
    return labels
