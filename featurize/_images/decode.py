"""Turn whatever the caller passed into normalised RGB pixel arrays.

Two steps: :func:`as_image_list` checks the container (without decoding anything), and
:func:`load_image` reads, decodes and normalises one item: EXIF orientation applied,
every mode converted to 8-bit RGB (transparency composited on white, 16-bit scaled),
then resized with antialiasing to the backbone's input size.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from contextlib import contextmanager

import numpy as np
from PIL import Image

from featurize._shared.inputs import collection_values, column_array
from featurize._standalone import pixels
from featurize._standalone.pixels import DEFAULT_MAX_PIXELS
from featurize.errors import (
    ImageDecodeError,
    ImageReadError,
    ImageTooLargeError,
    InvalidInputError,
    UnsupportedImageTypeError,
)

# The pixel pipeline itself is featurize._standalone.pixels (numpy and Pillow only).


def as_image_list(X) -> Sequence:
    """Check that ``X`` is a collection of images and return it as a sequence.

    Accepted: a list, tuple, 1-D array or pandas Series of paths, bytes, PIL images or
    arrays; a single-column DataFrame or ``(n, 1)`` array of those; a numeric
    ``(n, height, width, channels)`` array. Nothing is decoded here.

    Raises
    ------
    InvalidInputError
        If ``X`` is a single image (a bare path string, bytes, PIL image) or a
        container that does not hold images.
    """
    singles = (str, os.PathLike, bytes, bytearray, Image.Image)
    kind = "PIL image" if isinstance(X, Image.Image) else None
    values = collection_values(X, "images", "path", singles, kind)
    if values is not None:
        return values
    if isinstance(X, np.ndarray):
        return _array_as_images(X)
    if hasattr(X, "tocsr"):
        raise InvalidInputError(
            f"Expected a collection of images, received a sparse matrix of shape "
            f"{X.shape}."
        )
    if isinstance(X, (list, tuple)):
        return X
    try:
        return list(X)
    except TypeError:
        raise InvalidInputError(
            f"Expected a collection of images (list of paths, array batch, ...), "
            f"received {type(X).__name__}."
        ) from None


def _array_as_images(X: np.ndarray) -> Sequence:
    if X.dtype.kind in "OUS":
        return column_array(X, "paths")
    if X.ndim == 4 and X.shape[-1] in (1, 3, 4) and X.dtype.kind in "uif":
        return X
    raise InvalidInputError(
        f"A numeric array must be a batch of images of shape (n_images, height, "
        f"width, channels) with 1, 3 or 4 channels; received shape {X.shape} and "
        f"dtype {X.dtype}. For one image, pass [image] or image[np.newaxis]."
    )


def describe(item) -> str:
    """A short, printable name for an input, for error messages and reports."""
    if isinstance(item, (str, os.PathLike)):
        return os.fspath(item)
    if isinstance(item, (bytes, bytearray, memoryview)):
        return f"<{len(item)} bytes>"
    if isinstance(item, Image.Image):
        return f"<PIL image {item.mode} {item.size[0]}x{item.size[1]}>"
    if isinstance(item, np.ndarray):
        return f"<array {item.shape} {item.dtype}>"
    return f"<{type(item).__name__}>"


def fetch(item, *, index: int | None = None):
    """Check one input's type and read it: the cheap half of :func:`load_image`.

    Returns encoded ``bytes`` for paths and bytes (files are read here, once), or the
    PIL image or array itself. The embedding cache hashes this before any decoding.

    Raises
    ------
    ImageReadError, UnsupportedImageTypeError
        Naming the input.
    """
    if isinstance(item, (np.ndarray, Image.Image)):
        return item
    if isinstance(item, (str, os.PathLike)):
        return read_file(item, index=index)
    if isinstance(item, (bytes, bytearray, memoryview)):
        if not len(item):
            raise ImageReadError(
                "empty bytes object (0 bytes)", source=describe(item), index=index
            )
        return bytes(item)
    if item is None or (isinstance(item, float) and math.isnan(item)):
        raise UnsupportedImageTypeError(
            "missing value: expected a path, bytes, a PIL image or an array",
            source=None,
            index=index,
        )
    raise UnsupportedImageTypeError(
        f"unsupported input type {type(item).__name__}: expected a path, bytes, "
        f"a PIL image or an array",
        source=describe(item),
        index=index,
    )


def load_image(
    item,
    *,
    size: tuple[int, int],
    resize: str = "stretch",
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
    index: int | None = None,
    source=None,
) -> np.ndarray:
    """Read, decode and normalise one image to a ``(height, width, 3)`` array.

    Parameters
    ----------
    item : str, path-like, bytes, PIL.Image.Image or ndarray
        The image (or what :func:`fetch` returned for it).
    size : (int, int)
        Target ``(height, width)``.
    resize : {"stretch", "center_crop"}
        ``"stretch"`` resizes the whole image to ``size``; ``"center_crop"`` keeps the
        aspect ratio and crops the centre.
    max_pixels : int or None
        Refuse images with more pixels than this (decompression-bomb guard).
    index : int, optional
        The item's position in its batch, for error messages.
    source : object, optional
        The name to give in errors; by default derived from ``item``.

    Returns
    -------
    ndarray
        ``uint8`` for 8-bit sources, ``float32`` in [0, 255] for float arrays.

    Raises
    ------
    ImageReadError, ImageDecodeError, ImageTooLargeError, UnsupportedImageTypeError
        Naming the input and what is wrong with it.
    """
    source = describe(item) if source is None else source
    raw = fetch(item, index=index)
    if isinstance(raw, np.ndarray):
        return _load_array(raw, size, resize, max_pixels, source, index)
    if isinstance(raw, Image.Image):
        with _named(source, index):
            pixels.check_size(raw, max_pixels)
        return _finish(raw, size, resize, source, index, owned=False)
    image = decode(
        raw, source=source, index=index, max_pixels=max_pixels, target=(size, resize)
    )
    return _finish(image, size, resize, source, index, owned=True)


def is_url(path) -> bool:
    """Whether ``path`` is an fsspec URL (``s3://``, ``gs://``, ...)."""
    return isinstance(path, str) and "://" in path and not path.startswith("file://")


def read_file(path, *, index: int | None = None) -> bytes:
    """Read a file's bytes, turning every failure into an :class:`ImageReadError`.

    ``path`` may be an fsspec URL (needs ``fsspec`` and the filesystem's package).
    """
    source = os.fspath(path)
    if is_url(source):
        try:
            from fsspec import open as opener
        except ImportError:
            raise ImageReadError(
                "reading URLs needs fsspec and the filesystem's package (pip install "
                "fsspec s3fs, gcsfs, ...)",
                source=source,
                index=index,
            ) from None
    else:
        source, opener = source.removeprefix("file://"), open
    try:
        with opener(source, "rb") as handle:
            data = handle.read()
    except FileNotFoundError:
        raise ImageReadError("file not found", source=source, index=index) from None
    except IsADirectoryError:
        raise ImageReadError(
            "is a directory, not an image file", source=source, index=index
        ) from None
    except PermissionError:
        raise ImageReadError("permission denied", source=source, index=index) from None
    except (OSError, ValueError, ImportError) as error:
        # ValueError, ImportError: a URL of an unknown protocol, or of one whose
        # package is not installed
        reason = getattr(error, "strerror", None) or error
        raise ImageReadError(
            f"could not be read: {reason}", source=source, index=index
        ) from None
    if not data:
        raise ImageReadError("empty file (0 bytes)", source=source, index=index)
    return data


def decode(
    data: bytes,
    *,
    source=None,
    index: int | None = None,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
    target: tuple[tuple[int, int], str] | None = None,
) -> Image.Image:
    """:func:`featurize._standalone.pixels.open_image`, its errors naming the input."""
    with _named(source, index):
        return pixels.open_image(data, max_pixels, target)


@contextmanager
def _named(source, index):
    """Turn the pixel pipeline's errors into featurize's, naming the input."""
    try:
        yield
    except pixels.PixelError as error:
        kind = ImageTooLargeError if error.kind == "too_large" else ImageDecodeError
        raise kind(str(error), source=source, index=index) from None


def _finish(image, size, resize, source, index, *, owned: bool) -> np.ndarray:
    with _named(source, index):
        return pixels.finish(image, size, resize, owned=owned)


def _load_array(array, size, resize, max_pixels, source, index) -> np.ndarray:
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[-1] not in (3, 4)):
        raise ImageDecodeError(
            f"an image array must be (height, width) or (height, width, 1|3|4); "
            f"received shape {array.shape}",
            source=source,
            index=index,
        )
    height, width = array.shape[:2]
    if max_pixels is not None and height * width > max_pixels:
        raise ImageTooLargeError(
            f"image is {width}x{height} = {width * height:,} pixels, above "
            f"max_pixels={max_pixels:,}",
            source=source,
            index=index,
        )
    if array.dtype == np.uint8:
        return _finish(Image.fromarray(array), size, resize, source, index, owned=True)
    if array.dtype == np.uint16:
        scaled = np.clip(np.rint(array / 257.0), 0, 255).astype(np.uint8)
        return _finish(Image.fromarray(scaled), size, resize, source, index, owned=True)
    if array.dtype.kind == "f":
        return _load_float_array(array, size, resize, source, index)
    raise ImageDecodeError(
        f"unsupported array dtype {array.dtype}: use uint8, uint16 or float in "
        "[0, 255]",
        source=source,
        index=index,
    )


def _load_float_array(array, size, resize, source, index) -> np.ndarray:
    array = np.asarray(array, dtype=np.float32)
    if not np.isfinite(array).all() or array.min() < 0 or array.max() > 255:
        raise ImageDecodeError(
            "a float image array must hold finite values in [0, 255] (as "
            "keras.utils.img_to_array returns); scale 0-1 images by 255",
            source=source,
            index=index,
        )
    if array.ndim == 2:
        array = np.repeat(array[..., None], 3, axis=-1)
    elif array.shape[-1] == 4:
        alpha = array[..., 3:] / 255.0
        array = array[..., :3] * alpha + 255.0 * (1.0 - alpha)
    height, width = array.shape[:2]
    box = pixels.crop_box(width, height, size, resize)
    if box is None and (height, width) == tuple(size):
        return array
    channels = [
        np.asarray(
            Image.fromarray(np.ascontiguousarray(array[..., c])).resize(
                (size[1], size[0]), pixels.RESAMPLE, box=box
            )
        )
        for c in range(3)
    ]
    return np.clip(np.stack(channels, axis=-1), 0, 255)
