"""Turn whatever the caller passed into normalised RGB pixel arrays.

Two steps: :func:`as_image_list` checks the container (without decoding anything), and
:func:`load_image` reads, decodes and normalises one item: EXIF orientation applied,
every mode converted to 8-bit RGB (transparency composited on white, 16-bit scaled),
then resized with antialiasing to the backbone's input size.
"""

from __future__ import annotations

import io
import math
import os
import warnings
from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from featurize._shared.inputs import collection_values, column_array
from featurize.errors import (
    ImageDecodeError,
    ImageReadError,
    ImageTooLargeError,
    InvalidInputError,
    UnsupportedImageTypeError,
)

# PIL's own decompression-bomb threshold (about 89.5 megapixels).
DEFAULT_MAX_PIXELS = 89_478_485
_RESAMPLE = Image.Resampling.BILINEAR  # PIL filters with antialiasing when shrinking
_SIXTEEN_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I")
_ALPHA_MODES = ("RGBA", "RGBa", "LA", "La", "PA")
# A change here that changes pixels bumps PIXEL_PIPELINE_VERSION
# (featurize/_shared/versions.py).


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
        _checked_size(raw, max_pixels, source, index)
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
    """Decode image bytes into a loaded PIL image, checking the pixel limit first.

    With ``target=(size, resize)``, a JPEG much larger than ``size`` is decoded at a
    reduced scale (libjpeg's DCT scaling: 1/2, 1/4 or 1/8), never below what the final
    antialiased resize needs.
    """
    try:
        with warnings.catch_warnings():
            # We enforce our own, configurable limit below.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
    except UnidentifiedImageError:
        raise ImageDecodeError(
            "not a recognised image format", source=source, index=index
        ) from None
    except Image.DecompressionBombError as error:
        raise ImageTooLargeError(
            f"{error}; raise PIL.Image.MAX_IMAGE_PIXELS as well as max_pixels to "
            f"accept it",
            source=source,
            index=index,
        ) from None
    except Exception as error:  # PIL raises many types on malformed headers
        raise ImageDecodeError(
            f"corrupt image header ({type(error).__name__}: {error})",
            source=source,
            index=index,
        ) from None
    _checked_size(image, max_pixels, source, index)
    if target is not None:
        _draft(image, *target)
    try:
        image.load()
    except Exception as error:
        raise ImageDecodeError(
            f"truncated or corrupt image data ({type(error).__name__}: {error})",
            source=source,
            index=index,
        ) from None
    return image


def _draft(image: Image.Image, size: tuple[int, int], resize: str) -> None:
    """Ask libjpeg for the smallest DCT-scaled decode that still covers ``size``."""
    if image.format != "JPEG":
        return
    height, width = size
    shown_width, shown_height = image.size
    rotated = image.getexif().get(0x0112, 1) in (5, 6, 7, 8)
    if rotated:  # the size we need applies after the EXIF rotation
        shown_width, shown_height = shown_height, shown_width
    if resize == "center_crop":
        scale = max(width / shown_width, height / shown_height)
        width = math.ceil(shown_width * scale)
        height = math.ceil(shown_height * scale)
    image.draft(None, (height, width) if rotated else (width, height))


def _checked_size(image: Image.Image, max_pixels, source, index) -> Image.Image:
    width, height = image.size
    if max_pixels is not None and width * height > max_pixels:
        raise ImageTooLargeError(
            f"image is {width}x{height} = {width * height:,} pixels, above "
            f"max_pixels={max_pixels:,} (decompression-bomb guard); raise max_pixels "
            f"if the image is trusted",
            source=source,
            index=index,
        )
    if width == 0 or height == 0:
        raise ImageDecodeError(
            f"image has no pixels ({width}x{height})", source=source, index=index
        )
    return image


def _finish(image, size, resize, source, index, *, owned: bool) -> np.ndarray:
    """Apply EXIF orientation (never mutating a caller's image), RGB, resize."""
    try:
        if owned:
            ImageOps.exif_transpose(image, in_place=True)
        else:
            image = ImageOps.exif_transpose(image)
    except Exception:  # a malformed EXIF block must not cost the whole image
        pass
    rgb = to_rgb(image, source=source, index=index)
    return np.asarray(_resize(rgb, size, resize), dtype=np.uint8)


def to_rgb(image: Image.Image, *, source=None, index: int | None = None) -> Image.Image:
    """Convert any PIL mode to 8-bit RGB.

    Transparency is composited on white; 16-bit greyscale is scaled (not clipped) to
    8 bits; palette, greyscale, CMYK and YCbCr images are converted.
    """
    mode = image.mode
    if mode == "RGB" and "transparency" not in image.info:
        return image
    if mode in _ALPHA_MODES or "transparency" in image.info:
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    if mode in _SIXTEEN_BIT_MODES:
        values = np.asarray(image, dtype=np.float64)
        grey = np.clip(np.rint(values / 257.0), 0, 255).astype(np.uint8)
        return Image.fromarray(grey).convert("RGB")
    if mode == "F":
        raise ImageDecodeError(
            "unsupported mode 'F' (32-bit floating point); convert it to 8-bit first, "
            "or pass it as a float array with values in [0, 255]",
            source=source,
            index=index,
        )
    try:
        return image.convert("RGB")
    except (ValueError, OSError) as error:
        raise ImageDecodeError(
            f"unsupported mode {mode!r}: cannot convert to RGB ({error})",
            source=source,
            index=index,
        ) from None


def _crop_box(width: int, height: int, size, resize: str):
    if resize == "stretch":
        return None
    target_h, target_w = size
    scale = max(target_w / width, target_h / height)
    # target / scale can exceed the side it was derived from by a rounding error.
    crop_w, crop_h = min(width, target_w / scale), min(height, target_h / scale)
    left, top = (width - crop_w) / 2, (height - crop_h) / 2
    return (left, top, left + crop_w, top + crop_h)


def _resize(image: Image.Image, size, resize: str) -> Image.Image:
    height, width = size
    box = _crop_box(image.width, image.height, size, resize)
    if box is None and image.size == (width, height):
        return image
    return image.resize((width, height), _RESAMPLE, box=box)


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
    box = _crop_box(width, height, size, resize)
    if box is None and (height, width) == tuple(size):
        return array
    channels = [
        np.asarray(
            Image.fromarray(np.ascontiguousarray(array[..., c])).resize(
                (size[1], size[0]), _RESAMPLE, box=box
            )
        )
        for c in range(3)
    ]
    return np.clip(np.stack(channels, axis=-1), 0, 255)
