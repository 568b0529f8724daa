"""What one embedding call returns: the array, and everything else about that call."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from featurize.errors import ItemError

FAILURE_COLUMNS = ["index", "input", "error", "reason", "index_label"]


@dataclass(frozen=True)
class Failure:
    """One input that could not be used: where it was, what it was, and the error
    itself (raised as it is where the caller asked to raise)."""

    index: int
    input: str
    error: ItemError

    @property
    def reason(self) -> str:
        return self.error.reason

    def at(self, index: int) -> Failure:
        """The same failure at another position (a subset's row in the whole)."""
        return replace(self, index=int(index))


@dataclass(frozen=True)
class Embeddings:
    """The result of :meth:`ImageFeaturizer.embed` and :meth:`TextFeaturizer.embed`:
    one call's embeddings and report.

    Attributes
    ----------
    array : ndarray of shape (n_inputs, n_features), dtype float32
        One row per input, in input order; rows of NaN where an input failed.
    failures : pandas.DataFrame
        The inputs that could not be embedded (with ``on_error="nan"``), in input
        order: ``index`` (position in the call), ``input`` (a path, a short
        description of an in-memory image, or the value's repr for a text),
        ``error`` (the exception's class name), ``reason`` and ``index_label``
        (the input's pandas index label, where it came in a Series or DataFrame).
    digests : tuple of (str or None)
        Per input, the BLAKE2b digest of its content (of a file's bytes, of an
        array's pixels, shape and dtype, or of a text's UTF-8) as the embedding
        cache keys it; None where the input could not be read.
    stats : dict
        The same keys for every modality: ``inputs``, ``cache_hits``,
        ``computed`` (forward passes), ``failed`` and ``seconds``; and ``images``
        (or ``texts``, the same count); for texts also ``truncated``, ``chunked``,
        ``repaired`` (texts whose lone surrogates were replaced by U+FFFD) and
        ``max_length``.
    errors : tuple of ItemError
        The exceptions themselves, one per row of ``failures``, in its order:
        ``raise result.errors[0]`` raises what ``on_error="raise"`` would have.

    Examples
    --------
    >>> import numpy as np
    >>> from featurize import ImageFeaturizer
    >>> featurizer = ImageFeaturizer("mobilenet_v3_small", weights=None,
    ...                              input_size=32)
    >>> result = featurizer.embed(np.zeros((2, 32, 32, 3), np.uint8))
    >>> result.array.shape, result.stats["computed"], len(result.failures)
    ((2, 576), 1, 0)
    """

    array: np.ndarray
    failures: object
    digests: tuple
    stats: dict
    errors: tuple = field(default=(), repr=False, compare=False)

    @property
    def ok(self) -> np.ndarray:
        """Boolean mask of the inputs that were embedded."""
        mask = np.ones(len(self.array), bool)
        mask[self.failures["index"].to_numpy(dtype=int)] = False
        return mask

    def __len__(self) -> int:
        return len(self.array)


def embeddings(array, failures: list, digests, stats: dict, index_labels=None):
    """The :class:`Embeddings` of one call, from its :class:`Failure` records."""
    ordered = sorted(failures, key=_index)
    return Embeddings(
        array=array,
        failures=failures_frame(ordered, index_labels),
        digests=tuple(digests),
        stats=stats,
        errors=tuple(f.error for f in ordered),
    )


def failure_records(result: Embeddings) -> list[Failure]:
    """The :class:`Failure` records of a result, in input order."""
    return [
        Failure(int(index), source, error)
        for index, source, error in zip(
            result.failures["index"], result.failures["input"], result.errors
        )
    ]


def failures_frame(failures: list, index_labels=None):
    """:class:`Failure` records as the ``failures`` table."""
    import pandas as pd

    rows = [
        (
            f.index,
            f.input,
            type(f.error).__name__,
            f.reason,
            None if index_labels is None else index_labels[f.index],
        )
        for f in sorted(failures, key=lambda f: f.index)
    ]
    return pd.DataFrame(rows, columns=FAILURE_COLUMNS)


def merge_failures(failures: list, more: list) -> list:
    """Both lists of failures, one per input, in input order."""
    seen = {f.index for f in failures}
    return sorted(failures + [f for f in more if f.index not in seen], key=_index)


def _index(failure: Failure) -> int:
    return failure.index


def first_error(failures: list, what: str) -> ItemError:
    """The first failure's error, saying how many more there were."""
    error = failures[0].error
    more = len(failures) - 1
    if not more:
        return error
    return type(error)(
        f"{error.reason} (and {more} more {what} inputs failed: on_error='nan' skips "
        f"them with a report)",
        source=error.source,
        index=error.index,
    )
