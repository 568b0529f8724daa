"""Input containers, image normalisation, and every kind of bad input."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from featurize._images.decode import as_image_list, load_image
from featurize.errors import (
    FeaturizeError,
    ImageDecodeError,
    ImageReadError,
    ImageTooLargeError,
    InvalidInputError,
    UnsupportedImageTypeError,
)

SIZE = (24, 32)


def test_containers_of_paths(image_files):
    path = image_files["rgb"]
    assert as_image_list([str(path)]) == [str(path)]
    assert as_image_list(pd.Series([path])) == [path]
    assert as_image_list(pd.DataFrame({"path": [str(path)]})) == [str(path)]
    assert as_image_list(np.array([str(path)])) == [str(path)]
    assert as_image_list(np.array([[str(path)]], dtype=object)) == [str(path)]
    batch = np.zeros((2, 5, 5, 3), np.uint8)
    assert as_image_list(batch) is batch


@pytest.mark.parametrize(
    "single", ["cat.jpg", Path("cat.jpg"), b"\xff\xd8", Image.new("RGB", (2, 2))]
)
def test_single_image_is_refused(single):
    with pytest.raises(InvalidInputError, match="single .* Wrap it in a list"):
        as_image_list(single)


def test_bad_containers():
    with pytest.raises(InvalidInputError, match="one column"):
        as_image_list(pd.DataFrame({"a": ["x"], "b": ["y"]}))
    with pytest.raises(InvalidInputError, match=r"\(n_images, height, width"):
        as_image_list(np.zeros((5, 4)))
    with pytest.raises(InvalidInputError, match="collection of images"):
        as_image_list(42)


def test_every_input_kind_gives_the_same_pixels(image_files, photos):
    path = image_files["png"]
    expected = np.asarray(Image.open(path).convert("RGB").resize(SIZE[::-1], 2))
    kinds = [
        str(path),
        Path(path),
        path.read_bytes(),
        Image.open(path),
        photos["chelsea"],
    ]
    for item in kinds:
        np.testing.assert_array_equal(load_image(item, size=SIZE), expected)


def test_float_and_uint16_arrays(photos):
    pixels = photos["chelsea"][:64, :80]
    as_uint8 = load_image(pixels, size=(64, 80))
    np.testing.assert_array_equal(as_uint8, pixels)
    as_float = load_image(pixels.astype(np.float32), size=(64, 80))
    np.testing.assert_array_equal(as_float, pixels.astype(np.float32))
    as_uint16 = load_image(pixels.astype(np.uint16) * 257, size=(64, 80))
    np.testing.assert_array_equal(as_uint16, pixels)
    resized = load_image(pixels.astype(np.float32), size=SIZE)
    assert resized.shape == (*SIZE, 3)
    assert abs(resized.mean() - load_image(pixels, size=SIZE).mean()) < 1.0
    with pytest.raises(ImageDecodeError, match=r"\[0, 255\]"):
        load_image(pixels / 255.0 - 0.5, size=SIZE)


def test_modes_become_rgb(image_files):
    grey = load_image(image_files["grey"], size=SIZE)
    assert grey.shape == (*SIZE, 3)
    assert (grey[..., 0] == grey[..., 1]).all()
    rgb = load_image(image_files["png"], size=SIZE)
    for kind in ("palette", "cmyk", "rgba"):
        converted = load_image(image_files[kind], size=SIZE).astype(int)
        assert converted.shape == (*SIZE, 3)
        assert np.abs(converted - rgb).mean() < 12, kind
    # 16-bit greyscale is scaled to 8 bits, not clipped to white.
    sixteen = load_image(image_files["sixteen"], size=SIZE)
    np.testing.assert_allclose(sixteen, grey, atol=1)


def test_transparency_is_composited_on_white():
    clear = Image.new("RGBA", (8, 8), (255, 0, 0, 0))
    assert (load_image(clear, size=(8, 8)) == 255).all()
    half = Image.new("LA", (8, 8), (0, 128))
    assert np.abs(load_image(half, size=(8, 8)).astype(int) - 127).max() <= 1


def test_exif_orientation_is_applied(image_files, photos):
    height, width = photos["chelsea"].shape[:2]
    rotated = load_image(image_files["exif"], size=(width, height), resize="stretch")
    upright = np.rot90(photos["chelsea"], k=-1)  # orientation 6: 90 degrees clockwise
    assert np.abs(rotated.astype(int) - upright).mean() < 6


def test_center_crop_keeps_aspect_ratio():
    pixels = np.zeros((20, 60, 3), np.uint8)
    pixels[:, 20:40] = 255  # a white square in the middle
    cropped = load_image(pixels, size=(10, 10), resize="center_crop")
    assert (cropped[:, 1:-1] == 255).all()
    assert cropped.min() > 200  # edge pixels only see the filter's support
    stretched = load_image(pixels, size=(10, 10), resize="stretch")
    assert stretched.mean() < 120


def test_center_crop_never_crops_outside_the_image():
    # 427 / (240 / 427) is 427.0000000000001: the box must still fit the image.
    pixels = np.zeros((427, 640, 3), np.uint8)
    for side in range(200, 301):
        for size in ((side, side), (side, side + 7)):
            assert load_image(pixels, size=size, resize="center_crop").shape == (
                *size,
                3,
            )


@pytest.mark.parametrize(
    ("kind", "error", "message"),
    [
        ("missing", ImageReadError, "file not found"),
        ("directory", ImageReadError, "is a directory"),
        ("empty", ImageReadError, "empty file"),
        ("text", ImageDecodeError, "not a recognised image format"),
        ("truncated", ImageDecodeError, "truncated or corrupt"),
        ("corrupt", ImageDecodeError, "corrupt"),
        ("float", ImageDecodeError, "unsupported mode 'F'"),
    ],
)
def test_bad_files_name_the_file(image_files, kind, error, message):
    path = image_files[kind]
    with pytest.raises(error, match=message) as caught:
        load_image(path, size=SIZE, index=7)
    assert str(path) in str(caught.value)
    assert "input 7" in str(caught.value)
    assert caught.value.index == 7
    assert isinstance(caught.value, FeaturizeError)


def test_error_classes_match_builtins():
    assert issubclass(ImageReadError, OSError)
    assert issubclass(ImageDecodeError, ValueError)
    assert issubclass(UnsupportedImageTypeError, TypeError)


def test_pixel_limit(image_files, photos):
    with pytest.raises(ImageTooLargeError, match="max_pixels"):
        load_image(image_files["rgb"], size=SIZE, max_pixels=1000)
    with pytest.raises(ImageTooLargeError):
        load_image(photos["coffee"], size=SIZE, max_pixels=1000)
    assert load_image(image_files["rgb"], size=SIZE, max_pixels=None).shape == (
        24,
        32,
        3,
    )


def test_pixel_limit_is_checked_before_decoding():
    # A 30000x30000 PNG header over a few bytes of data: refusing it must not decode.
    buffer = io.BytesIO()
    Image.new("1", (30000, 30000)).save(buffer, format="PNG")
    with pytest.raises(ImageTooLargeError, match="900000000 pixels"):
        load_image(buffer.getvalue(), size=SIZE)


@pytest.mark.parametrize("item", [None, float("nan"), 3, {"a": 1}])
def test_unsupported_items(item):
    with pytest.raises(UnsupportedImageTypeError):
        load_image(item, size=SIZE)
