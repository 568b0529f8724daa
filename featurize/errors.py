"""Exceptions raised by featurize.

Every exception derives from :class:`FeaturizeError`, and each specific one also
derives from the matching built-in (``ValueError``, ``OSError``), so callers can catch
either. Image errors carry the offending input and its position in the batch.
"""

from __future__ import annotations


class FeaturizeError(Exception):
    """Root of every error raised by featurize."""


class InvalidParameterError(FeaturizeError, ValueError):
    """An estimator parameter outside what it accepts; the message names the
    parameter, the value received and the values accepted."""


class InvalidParameterTypeError(InvalidParameterError, TypeError):
    """A parameter of the wrong type (a model that is not a Keras model, a
    preprocessing that is not callable)."""


class UnknownBackboneError(InvalidParameterError):
    """A backbone name that is not in the registry."""


class UnknownEncoderError(InvalidParameterError):
    """A text encoder name that is not in the registry."""


class InvalidInputError(FeaturizeError, ValueError):
    """The container passed as ``X`` is not a collection of images."""


class InvalidLabelsError(InvalidInputError):
    """Class labels that cannot be trained on: missing values (None, NaN, pandas NA)
    or too few; the message names the rows."""


class ItemError(FeaturizeError):
    """One item of a batch (an image, a text) could not be used.

    Attributes
    ----------
    source : object
        The offending input as given (a path, or a short description of an
        in-memory item).
    index : int or None
        Its position in the batch, when known.
    reason : str
        What is wrong with it, without the input's name.
    """

    def __init__(self, reason: str, *, source=None, index: int | None = None):
        self.reason = reason
        self.source = source
        self.index = index
        super().__init__(self._message())

    def _message(self) -> str:
        where = [] if self.index is None else [f"input {self.index}"]
        if self.source is not None:
            where.append(repr(str(self.source)))
        prefix = " ".join(where)
        return f"{prefix}: {self.reason}" if prefix else self.reason

    def __str__(self) -> str:
        return self._message()

    def __reduce__(self):
        return (
            _rebuild_item_error,
            (type(self), self.reason, self.source, self.index),
        )


def _rebuild_item_error(cls, reason, source, index):
    return cls(reason, source=source, index=index)


class ImageError(ItemError):
    """One image of a batch could not be used (see :class:`ItemError`)."""


class TextError(ItemError, ValueError):
    """A text value that cannot be embedded: None, NaN, or not a string.

    ``source`` is the row's pandas index label, where it differs from ``index``.
    """

    def _message(self) -> str:
        where = f"row {self.index}"
        if self.source is not None:
            where += f" (index label {self.source!r})"
        return f"{where}: {self.reason}"


class ImageReadError(ImageError, OSError):
    """The image's bytes could not be read: missing file, directory, empty file."""


class ImageDecodeError(ImageError, ValueError):
    """Not a usable image: unknown format, truncated, corrupt, unsupported mode."""


class UnsupportedImageTypeError(ImageError, TypeError):
    """An item of ``X`` is not an image: not a path, bytes, PIL image or array."""


class ImageTooLargeError(ImageDecodeError):
    """More pixels than ``max_pixels`` allows (decompression-bomb guard)."""


class CacheUnavailableError(FeaturizeError, OSError):
    """The embedding cache cannot be read or written (damaged, read-only, full disk,
    locked, not a folder). Embedding goes on without it; the message says why and how
    to fix it."""


class CacheWarning(UserWarning):
    """Embeddings were computed without the cache, which could not be used."""


class WeightsUnavailableError(FeaturizeError, OSError):
    """Pretrained weights are not on this machine and could not be downloaded."""


class WeightsMismatchError(FeaturizeError, ValueError):
    """A weights file (or checkpoint) that does not fit the model it is loaded into:
    a missing variable, another shape, another architecture."""


class MissingDependencyError(FeaturizeError, ImportError):
    """An optional package a feature needs is not installed; the message says
    which, and how to install it."""


class UnsafeWeightsFileError(FeaturizeError, ValueError):
    """A weights file asked to run code, or is not the format it claims to be."""


class ModelFileError(FeaturizeError, ValueError):
    """A model file that cannot be loaded: missing, damaged, or not a model."""


class UnsafeModelFileError(ModelFileError):
    """A model file that names a Python global outside the types a featurize model is
    made of: loading it could run code, so it is refused before anything runs."""


class TableReadError(FeaturizeError, ValueError):
    """A CSV or Parquet table that cannot be read as asked: the message names the
    file, what is wrong and how to fix it."""


class ExportError(FeaturizeError, ValueError):
    """A model (or a part of it: a scikit-learn head, a backend) that cannot be
    exported; the message names the part and what would work instead."""


class QuantizationWarning(UserWarning):
    """An int8 export whose labels agree with the float model's on fewer of the
    calibration images than ``featurize.INT8_AGREEMENT``."""


class OutputPathError(FeaturizeError, OSError):
    """An output path that cannot be written: the message names the path the
    user gave (never a temporary one beside it) and what is wrong with its
    folder."""

    @classmethod
    def unwritable(cls, what: str, path, folder, error: OSError) -> OutputPathError:
        """The error for ``path`` whose ``folder`` could not be made or written."""
        if isinstance(error, PermissionError):
            problem = "is not writable"
        elif isinstance(error, (FileExistsError, NotADirectoryError)):
            problem = "is a file, not a folder"
        else:
            problem = f"could not be used ({error.strerror or error})"
        return cls(
            f"The {what} {str(path)!r} cannot be written: its folder {str(folder)!r} "
            f"{problem}. Choose a folder you can write to."
        )


__all__ = sorted(
    name
    for name, value in dict(globals()).items()
    if isinstance(value, type)
    and issubclass(value, (FeaturizeError, CacheWarning, QuantizationWarning))
)
