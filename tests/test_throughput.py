"""The fast input pipeline: parallel decoding, JPEG draft decoding, OOM back-off."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from featurize import ImageFeaturizer
from featurize._images.decode import decode, load_image
from featurize._images.forward import Forward
from pipelines import load_image_folder

from .conftest import DATA


@pytest.mark.backend
def test_parallel_decoding_gives_the_same_numbers_as_the_simple_path(image_files):
    paths, _ = load_image_folder(DATA, "val")
    # Every kind of input, bad ones included, in batches that straddle them.
    items = [*paths, image_files["exif"], image_files["cmyk"], image_files["missing"]]
    results = []
    for workers in (0, 1, 3):
        featurizer = ImageFeaturizer(
            decode_workers=workers, cache=None, batch_size=5, on_error="nan"
        )
        result = featurizer.embed(items)
        assert result.failures["index"].tolist() == [26]
        results.append(result.array)
    simple = results[0]
    scale = np.nanmax(np.abs(simple))
    for fast in results[1:]:
        assert np.isnan(fast[26]).all()
        assert np.nanmax(np.abs(fast - simple)) <= 1e-5 * scale


def test_large_jpegs_are_decoded_at_reduced_scale(photos):
    big = Image.fromarray(photos["chelsea"]).resize((1804, 1200))
    buffer = io.BytesIO()
    big.save(buffer, format="JPEG", quality=92)
    data = buffer.getvalue()
    reduced = decode(data, target=((224, 224), "stretch"))
    assert reduced.size == (451, 300)  # 1/4 scale: the smallest that covers 224x224
    cropped = decode(data, target=((224, 224), "center_crop"))
    assert cropped.size == (451, 300)
    assert decode(data, target=((400, 400), "stretch")).size == (902, 600)
    assert decode(data).size == (1804, 1200)
    # The result is what a full decode and antialiased resize gives, within rounding.
    full = np.asarray(Image.open(io.BytesIO(data)).convert("RGB").resize((224, 224), 2))
    fast = load_image(data, size=(224, 224))
    assert np.abs(fast.astype(int) - full).mean() < 1.5


def test_exif_rotation_is_respected_by_reduced_decoding(photos):
    wide = Image.fromarray(photos["chelsea"]).resize((1804, 1200))
    exif = Image.Exif()
    exif[0x0112] = 6
    buffer = io.BytesIO()
    wide.save(buffer, format="JPEG", exif=exif)
    # Displayed 1200x1804: to reach 600 rows x 100 columns, only 1/2 scale fits.
    image = decode(buffer.getvalue(), target=((600, 100), "stretch"))
    assert image.size == (902, 600)
    assert load_image(buffer.getvalue(), size=(600, 100)).shape == (600, 100, 3)


@pytest.mark.parametrize(
    ("accelerator", "cores", "workers", "batch"),
    [(False, 2, 2, 8), (False, 16, 4, 8), (True, 16, 16, 64), (True, 1, 1, 64)],
)
def test_defaults_follow_the_device(
    monkeypatch, tiny_images, accelerator, cores, workers, batch
):
    import featurize._images.featurizer
    import featurize._images.forward

    monkeypatch.setattr(
        featurize._images.forward, "on_accelerator", lambda: accelerator
    )
    monkeypatch.setattr(featurize._images.forward, "available_cores", lambda: cores)
    plans = []
    real_embed = featurize._images.featurizer.embed

    def spy(items, plan, progress):
        plans.append(plan)
        return real_embed(items, plan, progress)

    monkeypatch.setattr(featurize._images.featurizer, "embed", spy)
    ImageFeaturizer(
        "mobilenet_v3_small", weights=None, input_size=32, cache=None
    ).fit_transform(tiny_images)
    assert (plans[-1].workers, plans[-1].batch_size) == (workers, batch)
    ImageFeaturizer(
        "mobilenet_v3_small", weights=None, input_size=32, decode_workers=3,
        batch_size=5, cache=None,
    ).fit_transform(tiny_images)  # fmt: skip
    assert (plans[-1].workers, plans[-1].batch_size) == (3, 5)


class _Exhausted(Exception):
    """Stands for tf.errors.ResourceExhaustedError."""


_Exhausted.__name__ = "ResourceExhaustedError"


def test_out_of_memory_halves_the_batch(tiny_images):
    featurizer = ImageFeaturizer("mobilenet_v3_small", weights=None, input_size=32,
                                 cache=None).fit()  # fmt: skip
    forward = Forward(
        featurizer._settings().backbone,
        featurizer._forward(featurizer._settings()).features,
        "avg",
    )
    run = forward._run
    sizes = []

    def limited(batch):
        sizes.append(len(batch))
        if len(batch) > 2:
            raise _Exhausted("OOM when allocating tensor")
        return run(batch)

    forward._run = limited
    pixels = np.random.default_rng(0).uniform(0, 255, (7, 32, 32, 3)).astype("float32")
    with pytest.warns(ResourceWarning, match="batches of 3"):
        out = forward(pixels)
    assert forward.max_batch == 1  # 7 -> 3 -> 1
    np.testing.assert_allclose(out, run(pixels), rtol=1e-4, atol=1e-6)
    assert max(sizes[-3:]) <= 2
    forward._run = lambda batch: (_ for _ in ()).throw(ValueError("not memory"))
    with pytest.raises(ValueError, match="not memory"):
        forward(pixels)


@pytest.mark.backend
def test_mixed_precision_is_close_to_float32_and_cached_apart(photos, tmp_path):
    pictures = [photos["chelsea"], photos["coffee"]]
    common = {"input_size": 96, "cache": str(tmp_path)}
    full = ImageFeaturizer(**common).fit_transform(pictures)
    result = ImageFeaturizer(precision="mixed", **common).embed(pictures)
    mixed = result.array
    assert mixed.dtype == np.float32
    assert result.stats["computed"] == 2  # not float32's entries
    relative = np.abs(mixed - full).max() / np.abs(full).max()
    assert 0 < relative < 0.1
    with pytest.raises(ValueError, match="`precision` must be one of"):
        ImageFeaturizer(precision="half").fit()
