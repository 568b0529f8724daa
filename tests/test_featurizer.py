"""ImageFeaturizer: parity with hand-written Keras, the estimator contract, errors."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import warnings

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from sklearn.base import clone

from featurize import ImageFeaturizer, ImageReadError
from featurize._backbones.registry import get_backbone
from featurize._images.forward import get_forward

SIZE = 96
# One backbone per preprocessing mode (the preprocessing is the same NumPy code on
# every backend: two of the four models suffice there).
REFERENCE = [
    pytest.param("resnet50", "ResNet50", "resnet", marks=pytest.mark.tf_only),  # caffe
    ("mobilenet_v2", "MobileNetV2", "mobilenet_v2"),  # tf
    pytest.param(
        "densenet121", "DenseNet121", "densenet", marks=pytest.mark.tf_only
    ),  # torch
    ("efficientnet_b0", "EfficientNetB0", "efficientnet"),  # none (inside the model)
]


@pytest.fixture(scope="module")
def saved_weights(tmp_path_factory):
    """Random weights of a reference backbone, saved once, and the model (built
    when a test first asks for it)."""
    import keras

    folder = tmp_path_factory.mktemp("weights")
    saved = {}

    def get(name, constructor):
        if name not in saved:
            model = getattr(keras.applications, constructor)(
                include_top=False, weights=None, input_shape=(SIZE, SIZE, 3)
            )
            path = folder / f"{name}.weights.h5"
            model.save_weights(path)
            saved[name] = (path, model)
        return saved[name]

    return get


@pytest.mark.backend
@pytest.mark.parametrize(("name", "constructor", "module"), REFERENCE)
def test_matches_hand_written_keras(saved_weights, photos, name, constructor, module):
    import importlib

    path, reference = saved_weights(name, constructor)
    preprocess_input = importlib.import_module(f"keras.applications.{module}")
    pictures = [
        photos[k] for k in ("chelsea", "coffee", "astronaut", "china", "flower")
    ]
    resized = np.stack(
        [
            np.asarray(
                Image.fromarray(p).resize((SIZE, SIZE), Image.Resampling.BILINEAR)
            )
            for p in pictures
        ]
    ).astype(np.float32)
    want = np.asarray(
        reference(preprocess_input.preprocess_input(resized.copy()), training=False)
    ).mean(axis=(1, 2))
    featurizer = ImageFeaturizer(name, weights=path, input_size=SIZE, batch_size=2)
    got = featurizer.fit_transform(pictures)
    assert got.shape == want.shape
    scale = np.abs(want).max()
    assert np.abs(got - want).max() <= 1e-5 * scale, np.abs(got - want).max() / scale
    # The same pixels from files, bytes and PIL images give the same numbers.
    assert np.abs(featurizer.transform(resized.astype(np.uint8)) - want).max() <= (
        1e-5 * scale
    )


@pytest.fixture(scope="module")
def small():
    return dict(weights=None, input_size=48)


def test_poolings(tiny_images, small):
    from featurize._backbones.models import feature_model

    backbone = get_backbone("mobilenet_v2")
    features = feature_model(backbone, None, (48, 48), None)
    pixels = load_all(tiny_images, 48)
    fmap = np.asarray(features.model(backbone.preprocess_function()(pixels)))
    expected = {
        "avg": fmap.mean(axis=(1, 2)),
        "max": fmap.max(axis=(1, 2)),
        "gem": (np.maximum(fmap, 1e-6) ** 3).mean(axis=(1, 2)) ** (1 / 3),
        None: fmap.reshape(len(fmap), -1),
    }
    for pooling, want in expected.items():
        got = ImageFeaturizer("mobilenet_v2", pooling=pooling, **small).fit_transform(
            tiny_images
        )
        np.testing.assert_allclose(
            got, want, rtol=1e-4, atol=1e-5, err_msg=str(pooling)
        )


def load_all(images, size):
    from featurize._images.decode import load_image

    return np.stack([load_image(i, size=(size, size)) for i in images]).astype(
        np.float32
    )


def test_flatten_warns_above_100k_features():
    with pytest.warns(UserWarning, match="100,352 features"):
        ImageFeaturizer("resnet50", weights=None, pooling=None).fit()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ImageFeaturizer("resnet50", weights=None, pooling=None, input_size=64).fit()


@pytest.mark.backend
def test_batch_size_does_not_change_results(tiny_images, small):
    many = np.concatenate([tiny_images] * 3)
    one = ImageFeaturizer("mobilenet_v3_small", batch_size=1, **small).fit_transform(
        many
    )
    four = ImageFeaturizer("mobilenet_v3_small", batch_size=4, **small).fit_transform(
        many
    )
    np.testing.assert_allclose(one, four, rtol=1e-5, atol=1e-6)


def test_every_input_container_gives_the_same_embedding(image_files, small):
    path = image_files["png"]
    featurizer = ImageFeaturizer("mobilenet_v3_small", **small).fit()
    want = featurizer.transform([str(path)])
    image = Image.open(path)
    for X in (
        [path],
        pd.Series([str(path)]),
        pd.DataFrame({"path": [str(path)]}),
        np.array([str(path)]),
        [path.read_bytes()],
        [image],
        [np.asarray(image)],
        np.asarray(image)[np.newaxis],
    ):
        np.testing.assert_allclose(featurizer.transform(X), want, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="Wrap it in a list"):
        featurizer.transform(str(path))


def test_bad_images_raise_or_become_nan(image_files, small):
    good = image_files["rgb"]
    bad = [
        image_files[k] for k in ("missing", "empty", "text", "truncated", "directory")
    ]
    X = [good, *bad, good]
    with pytest.raises(ImageReadError, match=f"input 1 '{bad[0]}': file not found"):
        ImageFeaturizer("mobilenet_v3_small", **small).fit_transform(X)
    featurizer = ImageFeaturizer("mobilenet_v3_small", on_error="nan", **small)
    with pytest.warns(UserWarning, match="5 of 7 images could not be used"):
        out = featurizer.fit_transform(X)
    assert np.isnan(out[1:6]).all()
    assert np.isfinite(out[[0, 6]]).all()
    np.testing.assert_allclose(out[0], out[6], atol=1e-4 * np.abs(out[0]).max())
    assert not hasattr(featurizer, "failures_")  # per-call data is on the result
    result = featurizer.embed(X)
    np.testing.assert_array_equal(result.array, out)
    assert result.ok.tolist() == [True, False, False, False, False, False, True]
    assert result.digests[1] is None
    assert len(result.digests[0]) == 40
    assert result.stats["failed"] == 5
    failures = result.failures
    assert list(failures.columns) == [
        "index",
        "input",
        "error",
        "reason",
        "index_label",
    ]
    assert failures["index"].tolist() == [1, 2, 3, 4, 5]
    assert failures["input"].tolist() == [str(p) for p in bad]
    assert failures["error"].tolist() == [
        "ImageReadError", "ImageReadError", "ImageDecodeError", "ImageDecodeError",
        "ImageReadError",
    ]  # fmt: skip


def test_pandas_output_and_feature_names(tiny_images, small):
    featurizer = ImageFeaturizer("mobilenet_v3_small", **small).set_output(
        transform="pandas"
    )
    frame = featurizer.fit_transform(tiny_images)
    assert isinstance(frame, pd.DataFrame)
    assert frame.shape == (3, 576)
    names = featurizer.get_feature_names_out()
    assert names[0] == "imagefeaturizer0"
    assert len(names) == 576
    assert list(frame.columns) == list(names)
    assert frame.dtypes.unique().tolist() == [np.float32]


def test_parameters_are_validated_in_fit_not_init():
    featurizer = ImageFeaturizer("nope", pooling="sum", batch_size=0, input_size="x")
    assert featurizer.get_params()["pooling"] == "sum"
    with pytest.raises(ValueError, match="Unknown backbone 'nope'"):
        featurizer.fit()
    checks = [
        ({"pooling": "sum"}, "`pooling` must be one of"),
        ({"batch_size": 0}, "`batch_size` must be a positive integer"),
        ({"input_size": "x"}, "`input_size` must be"),
        ({"on_error": "skip"}, "`on_error` must be one of"),
        ({"resize": "pad"}, "`resize` must be one of"),
    ]
    for params, message in checks:
        with pytest.raises(ValueError, match=message):
            ImageFeaturizer("mobilenet_v3_small", weights=None, **params).fit()


def test_clones_share_one_model_and_pickles_hold_none(small):
    featurizer = ImageFeaturizer("mobilenet_v3_small", **small).fit()
    twin = clone(featurizer).fit()
    backbone = get_backbone("mobilenet_v3_small")
    shared = get_forward(backbone, None, (48, 48), None, "avg")
    assert featurizer._forward(featurizer._settings()) is shared
    assert twin._forward(twin._settings()) is shared
    assert shared.features.model is twin._forward(twin._settings()).features.model
    other = clone(featurizer).set_params(pooling="max")
    assert other._forward(other._settings()).features.model is shared.features.model
    assert twin.n_features_out_ == featurizer.n_features_out_
    assert len(pickle.dumps(featurizer)) < 2000


@pytest.mark.backend
def test_fitted_pipeline_pickle_is_small_and_reloads_in_a_fresh_process(tmp_path):
    import joblib
    import keras

    from pipelines import load_image_folder, make_image_classifier

    model = keras.applications.MobileNetV3Small(
        include_top=False, weights=None, input_shape=(64, 64, 3)
    )
    weights = tmp_path / "backbone.weights.h5"
    model.save_weights(weights)
    paths, labels = load_image_folder(
        os.path.join(os.path.dirname(__file__), "..", "data", "hymenoptera"), "train"
    )
    paths, labels = paths[::4], labels[::4]
    clf = make_image_classifier(
        "mobilenet_v3_small", weights=str(weights), input_size=64
    ).fit(paths, labels)
    want = clf.predict_proba(paths)
    saved = tmp_path / "model.joblib"
    joblib.dump(clf, saved)
    assert saved.stat().st_size < 1_000_000
    script = (
        "import joblib, numpy as np, sys\n"
        f"clf = joblib.load({str(saved)!r})\n"
        f"np.save({str(tmp_path / 'got.npy')!r}, clf.predict_proba({paths!r}))\n"
    )
    subprocess.run([sys.executable, "-c", script], check=True, env=os.environ.copy())
    got = np.load(tmp_path / "got.npy")
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
