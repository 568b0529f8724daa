"""What one embedding call returns: the array, and everything else about that call."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

FAILURE_COLUMNS = ["index", "input", "error", "reason"]


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
        ``error`` (the exception's class name) and ``reason``.
    digests : tuple of (str or None)
        Per input, the BLAKE2b digest of its content (of a file's bytes, of an
        array's pixels, shape and dtype, or of a text's UTF-8) as the embedding
        cache keys it; None where the input could not be read.
    stats : dict
        ``images`` (or ``texts``), ``cache_hits``, ``computed`` (forward passes),
        ``failed`` and ``seconds``; for texts also ``truncated``, ``chunked`` and
        ``max_length``.

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

    @property
    def ok(self) -> np.ndarray:
        """Boolean mask of the inputs that were embedded."""
        mask = np.ones(len(self.array), bool)
        mask[self.failures["index"].to_numpy(dtype=int)] = False
        return mask

    def __len__(self) -> int:
        return len(self.array)


def failures_frame(failures: list):
    """``(index, input, error, reason)`` tuples as the ``failures`` table."""
    import pandas as pd

    return pd.DataFrame(failures, columns=FAILURE_COLUMNS)
