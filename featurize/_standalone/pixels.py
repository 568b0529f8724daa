"""Encoded image bytes to the pixels a backbone sees: decode (JPEG at a reduced DCT
scale where that is enough), EXIF orientation, 8-bit RGB, antialiased resize.

Standard library, numpy and Pillow only: an exported model's folder carries a copy
(see :mod:`featurize._standalone`). A change here that changes pixels bumps
``PIXEL_PIPELINE_VERSION`` (featurize/_shared/versions.py).
"""

from __future__ import annotations

import io
import math
import warnings

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

# PIL's own decompression-bomb threshold (about 89.5 megapixels).
DEFAULT_MAX_PIXELS = 89_478_485
RESAMPLE = Image.Resampling.BILINEAR  # PIL filters with antialiasing when shrinking
RESIZE_POLICIES = ("stretch", "center_crop")
_SIXTEEN_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I")
_ALPHA_MODES = ("RGBA", "RGBa", "LA", "La", "PA")


class PixelError(ValueError):
    """An image that cannot be used; ``kind`` is ``"decode"`` or ``"too_large"``."""

    def __init__(self, reason: str, kind: str = "decode"):
        super().__init__(reason)
        self.kind = kind


def open_image(
    data: bytes,
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
        raise PixelError("not a recognised image format") from None
    except Image.DecompressionBombError as error:
        raise PixelError(
            f"{error}; raise PIL.Image.MAX_IMAGE_PIXELS as well as max_pixels to "
            f"accept it",
            "too_large",
        ) from None
    except Exception as error:  # PIL raises many types on malformed headers
        raise PixelError(
            f"corrupt image header ({type(error).__name__}: {error})"
        ) from None
    check_size(image, max_pixels)
    if target is not None:
        draft(image, *target)
    try:
        image.load()
    except Exception as error:
        raise PixelError(
            f"truncated or corrupt image data ({type(error).__name__}: {error})"
        ) from None
    return image


def draft(image: Image.Image, size: tuple[int, int], resize: str) -> None:
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


def check_size(image: Image.Image, max_pixels: int | None) -> Image.Image:
    width, height = image.size
    if max_pixels is not None and width * height > max_pixels:
        raise PixelError(
            f"image is {width}x{height} = {width * height:,} pixels, above "
            f"max_pixels={max_pixels:,} (decompression-bomb guard); raise max_pixels "
            f"if the image is trusted",
            "too_large",
        )
    if width == 0 or height == 0:
        raise PixelError(f"image has no pixels ({width}x{height})")
    return image


def finish(image, size, resize: str, *, owned: bool) -> np.ndarray:
    """Apply EXIF orientation (never mutating a caller's image), RGB, resize."""
    try:
        if owned:
            ImageOps.exif_transpose(image, in_place=True)
        else:
            image = ImageOps.exif_transpose(image)
    except Exception:  # a malformed EXIF block must not cost the whole image
        pass
    return np.asarray(resize_image(to_rgb(image), size, resize), dtype=np.uint8)


def image_pixels(
    data: bytes,
    size: tuple[int, int],
    resize: str = "stretch",
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
) -> np.ndarray:
    """Encoded bytes to ``(height, width, 3)`` uint8 pixels, as featurize reads them."""
    image = open_image(data, max_pixels, (size, resize))
    return finish(image, size, resize, owned=True)


def to_rgb(image: Image.Image) -> Image.Image:
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
        raise PixelError(
            "unsupported mode 'F' (32-bit floating point); convert it to 8-bit first, "
            "or pass it as a float array with values in [0, 255]"
        )
    try:
        return image.convert("RGB")
    except (ValueError, OSError) as error:
        raise PixelError(
            f"unsupported mode {mode!r}: cannot convert to RGB ({error})"
        ) from None


def crop_box(width: int, height: int, size, resize: str):
    """The source box a ``center_crop`` resize reads (None: the whole image)."""
    if resize == "stretch":
        return None
    target_h, target_w = size
    scale = max(target_w / width, target_h / height)
    # target / scale can exceed the side it was derived from by a rounding error.
    crop_w, crop_h = min(width, target_w / scale), min(height, target_h / scale)
    left, top = (width - crop_w) / 2, (height - crop_h) / 2
    return (left, top, left + crop_w, top + crop_h)


def resize_image(image: Image.Image, size, resize: str) -> Image.Image:
    height, width = size
    box = crop_box(image.width, image.height, size, resize)
    if box is None and image.size == (width, height):
        return image
    return image.resize((width, height), RESAMPLE, box=box)
