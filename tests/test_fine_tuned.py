"""FineTunedClassifier: the recipe's steps, its contract, persistence and errors.

Fast tests use a tiny three-stage CNN registered as a backbone (seeded initialisers,
so ``weights=None`` builds the same model every time) on 32 px images whose class is
their dominant colour.
"""

from __future__ import annotations

import io
import pickle
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV, StratifiedKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from featurize import (
    FineTunedClassifier,
    ImageDecodeError,
    ImageFeaturizer,
    InvalidParameterError,
    register_backbone,
)
from tests.conftest import ROOT

TINY = "tiny_stages_cnn"
SIZE = 32


def tiny_stages_cnn(input_shape, weights):
    """Conv-BN-ReLU at three resolutions: three stages, seeded initialisation."""
    import keras
    from keras import layers

    x = inputs = keras.Input(input_shape)
    for i, width in enumerate((8, 16, 32)):
        x = layers.Conv2D(
            width, 3, strides=2, padding="same", name=f"conv{i}",
            kernel_initializer=keras.initializers.HeUniform(seed=i),
        )(x)  # fmt: skip
        x = layers.BatchNormalization(name=f"bn{i}")(x)
        x = layers.ReLU(name=f"relu{i}")(x)
    return keras.Model(inputs, x, name="tiny")


def register_tiny(weights_file=None, name=TINY) -> None:
    register_backbone(
        name, tiny_stages_cnn, preprocessing="tf", input_size=SIZE,
        weights_file=weights_file, overwrite=True,
    )  # fmt: skip


@pytest.fixture(scope="module", autouse=True)
def tiny_backbone():
    from featurize._backbones import registry as _backbones

    saved = dict(_backbones._REGISTRY)
    register_tiny()
    yield
    _backbones._REGISTRY.clear()
    _backbones._REGISTRY.update(saved)


def colour_images(n_per_class: int, seed: int = 0):
    """Noisy images, mostly red, green or blue: the colour is the class."""
    rng = np.random.default_rng(seed)
    images, labels = [], []
    for k, name in enumerate(["red", "green", "blue"]):
        batch = rng.integers(0, 90, (n_per_class, SIZE, SIZE, 3))
        batch[..., k] += 150
        images.append(batch)
        labels += [name] * n_per_class
    return np.concatenate(images).astype(np.uint8), np.array(labels)


@pytest.fixture(scope="module")
def data():
    return colour_images(8)


def tiny(**params) -> FineTunedClassifier:
    defaults = dict(
        weights=None, epochs=2, batch_size=8, validation_fraction=None,
        random_state=0, cache=None,
    )  # fmt: skip
    return FineTunedClassifier(TINY, **(defaults | params))


@pytest.fixture(scope="module")
def fitted(data):
    images, labels = data
    return tiny(epochs=3, validation_fraction=0.25).fit(images, labels)


@pytest.mark.backend
def test_fit_predict_score_and_history(fitted, data):
    images, labels = data
    assert list(fitted.classes_) == ["blue", "green", "red"]
    proba = fitted.predict_proba(images)
    assert proba.shape == (len(images), 3)
    np.testing.assert_allclose(proba.sum(axis=1), 1, rtol=1e-5)
    assert set(fitted.predict(images)) <= set(labels)
    assert fitted.score(images, labels) > 0.9  # colour is easy
    history = fitted.history_
    assert list(history.epoch) == [0, 1, 2, 3]
    assert history.phase[0] == "linear probe"
    assert list(history.unfrozen_stages) == [0, 1, 2, 3]
    assert history.val_accuracy.notna().all()
    assert history.loss[1:].notna().all()
    assert 0 <= fitted.best_epoch_ <= 3
    assert fitted.stages_ == ["relu0", "relu1", "relu2"]


def test_clone_and_grid_search(data):
    images, labels = data
    estimator = tiny(epochs=1)
    copy = clone(estimator)
    assert copy.get_params() == estimator.get_params()
    assert not hasattr(copy, "classes_")
    search = GridSearchCV(estimator, {"lr_decay": [0.3, 0.5]}, cv=2).fit(images, labels)
    assert search.best_params_["lr_decay"] in (0.3, 0.5)
    assert search.predict(images[:2]).shape == (2,)


def test_scikit_learn_parameter_checks():
    from sklearn.utils import estimator_checks as checks

    estimator = tiny()
    name = type(estimator).__name__
    checks.check_no_attributes_set_in_init(name, estimator)
    checks.check_parameters_default_constructible(name, estimator)
    checks.check_get_params_invariance(name, estimator)
    checks.check_set_params(name, estimator)
    assert estimator.__sklearn_tags__().estimator_type == "classifier"


def test_labels_of_any_type(data):
    images, _ = data
    labels = np.repeat([10, 20, 30], 8)
    clf = tiny(epochs=1).fit(images, labels)
    assert clf.predict(images).dtype == labels.dtype
    assert set(clf.predict(images)) <= {10, 20, 30}


def test_invalid_parameters_name_the_value(data):
    images, labels = data
    for params, text in [
        ({"unfreeze": "some"}, "unfreeze"),
        ({"lr_decay": 1.5}, "lr_decay"),
        ({"batchnorm": "train"}, "batchnorm"),
        ({"augment": "heavy"}, "augment"),
        ({"validation_fraction": 1.0}, "validation_fraction"),
        ({"learning_rate": "fast"}, "'auto' or a positive number"),
        ({"learning_rate": 0}, "learning_rate"),
    ]:
        with pytest.raises(InvalidParameterError, match=text):
            tiny(**params).fit(images, labels)


def test_trainable_variables_in_each_phase():
    from featurize._backbones.registry import get_backbone
    from featurize._tuning import model as tm

    model = tm.build(get_backbone(TINY), None, (SIZE, SIZE), None, "float32", 3)
    assert model.stages == ["relu0", "relu1", "relu2"]

    def trainable():
        return sorted(v.path.split("/")[0] for v in model.classifier.trainable_weights)

    model.set_trainable(0, "adapt")
    assert trainable() == ["head", "head"]
    model.set_trainable(1, "adapt")
    assert trainable() == ["bn2", "bn2", "conv2", "conv2", "head", "head"]
    model.set_trainable(2, "frozen")  # BatchNorm stays out
    assert trainable() == ["conv1", "conv1", "conv2", "conv2", "head", "head"]
    model.set_trainable(3, "adapt")
    assert len(trainable()) == 14


def test_each_stage_learns_at_lr_decay_times_the_one_above():
    from featurize._backbones.registry import get_backbone
    from featurize._tuning import model as tm

    model = tm.build(get_backbone(TINY), None, (SIZE, SIZE), None, "float32", 3)
    model.set_trainable(3, "adapt")
    rates = [1e-3 * 0.4**depth for depth in range(4)]
    optimizer = tm.StageOptimizers(model, rates, 0.01, 0, 100).for_phase(3, step=0)
    peak = {}
    for variable in model.classifier.trainable_weights:
        chosen = optimizer._optimizer_map(variable)
        peak[variable.path.split("/")[0]] = float(chosen.learning_rate)  # at step 0
        decays = chosen._use_weight_decay(variable)
        assert decays == (len(variable.shape) > 1), variable.path
    assert peak["head"] == pytest.approx(1e-3)  # no warm-up: at its peak
    for upper, lower in [("head", "conv2"), ("conv2", "conv1"), ("conv1", "conv0")]:
        assert peak[lower] / peak[upper] == pytest.approx(0.4)
    assert peak["bn1"] == peak["conv1"]


def test_optimizer_state_is_kept_across_phases():
    from featurize._backbones.registry import get_backbone
    from featurize._tuning import model as tm

    model = tm.build(get_backbone(TINY), None, (SIZE, SIZE), None, "float32", 3)
    stages = tm.StageOptimizers(model, [1e-3, 5e-4, 2.5e-4, 1e-4], 0.01, 2, 100)
    first = stages.for_phase(1, step=0)
    assert len(stages.optimizers) == 2  # the head's and the top stage's
    second = stages.for_phase(2, step=10)
    head = model.head.weights[0]
    assert second._optimizer_map(head) is first._optimizer_map(head)
    conv1 = model.classifier.get_layer("features").get_layer("conv1").kernel
    late = second._optimizer_map(conv1)
    assert late is stages.optimizers[2]  # created when its stage was unfrozen
    # ... on the same curve: 10 steps in, past the warm-up, at the cosine's value
    assert float(late.learning_rate) == pytest.approx(
        tm.WarmupDecay(2.5e-4, 2, 100, 0).value(10)
    )


def test_fit_reports_the_per_stage_rates(fitted):
    rates = fitted.stage_learning_rates_
    assert list(rates) == ["head", "relu0", "relu1", "relu2"]
    assert rates["relu2"] / rates["head"] == pytest.approx(0.5)
    assert rates["relu0"] / rates["relu1"] == pytest.approx(0.5)
    # Warm-up then cosine: the rate at the end of the last epoch is near zero.
    history = fitted.history_
    assert history.lr_head.iloc[-1] < 0.05 * rates["head"]
    ratio = history.lr_lowest[1:] / history.lr_head[1:]
    np.testing.assert_allclose(ratio, 0.5 ** history.unfrozen_stages[1:])


def test_auto_learning_rate_follows_the_cut_layer(fitted, data):
    from featurize._tuning.classifier import AUTO_LEARNING_RATES

    # Random weights: the final layer, so the gentler rate.
    assert fitted.learning_rate_ == AUTO_LEARNING_RATES["final"]
    assert fitted.stage_learning_rates_["head"] == AUTO_LEARNING_RATES["final"]
    images, labels = data
    below = tiny(layer=-2, epochs=1).fit(images, labels)
    assert below.layer_ == "relu1"
    assert below.learning_rate_ == AUTO_LEARNING_RATES["below"]
    given = tiny(learning_rate=0.02, epochs=1).fit(images, labels)
    assert given.stage_learning_rates_["head"] == given.learning_rate_ == 0.02


def _bn_statistics(clf):
    return {
        f"bn{i}": clf._model().backbone.get_layer(f"bn{i}").moving_mean.numpy()
        for i in range(3)
    }


def test_batchnorm_frozen_keeps_statistics_adapt_updates_them(data):
    images, labels = data
    frozen = _bn_statistics(
        tiny(batchnorm="frozen", unfreeze_every=0).fit(images, labels)
    )
    reestimated = _bn_statistics(
        tiny(batchnorm="adabn", unfreeze_every=0).fit(images, labels)
    )
    adapted = _bn_statistics(
        tiny(batchnorm="adapt", unfreeze_every=0).fit(images, labels)
    )
    for name in frozen:
        np.testing.assert_array_equal(frozen[name], 0.0)  # the initial moving mean
        assert np.abs(reestimated[name]).max() > 1e-3
        assert np.abs(adapted[name] - reestimated[name]).max() > 1e-4  # trained on
    partial = _bn_statistics(
        tiny(batchnorm="adapt", unfreeze=1, unfreeze_every=0).fit(images, labels)
    )
    # A frozen stage keeps the re-estimated statistics; an unfrozen one moves on.
    np.testing.assert_allclose(partial["bn0"], reestimated["bn0"], rtol=1e-5)
    assert np.abs(partial["bn2"] - reestimated["bn2"]).max() > 1e-4


@pytest.mark.backend
def test_adabn_takes_the_training_images_statistics_and_refits_the_probe(data):
    """AdaBN: each BatchNorm's moving mean becomes its input's mean over the
    training images, and the probe (epochs=0) is the logistic regression tuned on
    the features those statistics give."""
    import keras
    from sklearn.linear_model import LogisticRegression

    images, labels = data
    clf = tiny(batchnorm="adabn", epochs=0).fit(images, labels)
    backbone = tiny_stages_cnn((SIZE, SIZE, 3), None)  # the seeded initial weights
    conv0 = keras.Model(backbone.inputs, backbone.get_layer("conv0").output)
    expected = conv0.predict(images / 127.5 - 1.0, verbose=0).mean(axis=(0, 1, 2))
    # The mean of equal batches' means is the mean over all the images.
    np.testing.assert_allclose(_bn_statistics(clf)["bn0"], expected, atol=1e-4)
    table = clf.probe_cv_
    assert list(table.statistics) == ["pretrained", "re-estimated"]
    assert list(table.chosen) == [False, True]
    features = keras.Model(
        clf.keras_model().inputs, clf.keras_model().get_layer("pool").output
    ).predict(images.astype("float32"), verbose=0)
    reference = make_pipeline(
        StandardScaler(), LogisticRegression(C=table.C.iloc[1], max_iter=2000)
    ).fit(features, labels)
    np.testing.assert_allclose(
        clf.predict_proba(images), reference.predict_proba(features), atol=5e-4
    )


def test_progress_bar_shows_the_training_rate(data, capsys):
    images, labels = data
    clf = tiny(epochs=1, verbose=1).fit(images, labels)
    err = capsys.readouterr().err
    rate = clf.history_.images_per_second[1]
    assert "fine-tuning (tiny_stages_cnn)" in err
    assert f"images/s={rate:.1f}" in err


def test_mixed_precision_trains_and_predicts_like_float32(data):
    """precision="mixed" (bfloat16 compute, float32 variables, head and loss) is
    for GPUs; on a CPU it must still train to the same answers."""
    images, labels = data
    mixed = tiny(precision="mixed", batchnorm="adabn").fit(images, labels)
    full = tiny(batchnorm="adabn").fit(images, labels)
    assert mixed._model().backbone.get_layer("conv0").compute_dtype == "bfloat16"
    assert mixed.history_.loss[1:].notna().all()
    proba = mixed.predict_proba(images)
    assert proba.dtype == np.float32
    np.testing.assert_allclose(proba.sum(axis=1), 1, rtol=1e-5)
    assert mixed.score(images, labels) == full.score(images, labels) == 1.0
    np.testing.assert_allclose(proba, full.predict_proba(images), atol=0.1)


@pytest.mark.backend
def test_same_random_state_same_predictions(data):
    images, labels = data
    first = tiny(random_state=3).fit(images, labels).predict_proba(images)
    second = tiny(random_state=3).fit(images, labels).predict_proba(images)
    np.testing.assert_array_equal(first, second)


def test_linear_probe_head_starts_where_logistic_regression_is(data):
    from sklearn.linear_model import LogisticRegression

    from featurize._backbones.registry import get_backbone
    from featurize._tuning import model as tm

    images, labels = data
    probe = tiny(epochs=0).fit(images, labels)
    model = tm.build(get_backbone(TINY), None, (SIZE, SIZE), None, "float32", 3)
    features = tm.pooled_model(model).predict(images.astype("float32"), verbose=0)
    (chosen,) = probe.probe_cv_.itertuples()  # random weights: one layer, the last
    assert chosen.layer == probe.layer_ == "relu2"
    assert chosen.chosen
    search = GridSearchCV(
        make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)),
        {"logisticregression__C": [0.01, 0.1, 1.0, 10.0]},
        cv=StratifiedKFold(5, shuffle=True, random_state=0),
    ).fit(features, labels)
    best_c = search.best_params_["logisticregression__C"]
    assert best_c == chosen.C
    assert chosen.cv_accuracy == pytest.approx(search.best_score_)
    np.testing.assert_allclose(
        probe.predict_proba(images), search.predict_proba(features), atol=5e-4
    )
    random = tiny(epochs=0, head_init="random").fit(images, labels)
    assert not np.allclose(random.predict_proba(images), probe.predict_proba(images))


@pytest.mark.backend
def test_pickle_reloads_in_a_fresh_process_with_identical_predictions(
    fitted, data, tmp_path
):
    images, _ = data
    path = tmp_path / "model.pkl"
    path.write_bytes(pickle.dumps(fitted))
    np.save(tmp_path / "images.npy", images)
    weights = sum(np.prod(w.shape) for w in fitted._model().backbone.weights) * 4
    assert path.stat().st_size < 2 * weights + 200_000  # weights, not data
    script = (
        "import pickle, sys, numpy as np\n"
        "from tests.test_fine_tuned import register_tiny\n"
        "register_tiny()\n"
        f"clf = pickle.load(open({str(path)!r}, 'rb'))\n"
        f"images = np.load({str(tmp_path / 'images.npy')!r})\n"
        f"np.save({str(tmp_path / 'proba.npy')!r}, clf.predict_proba(images))\n"
    )
    subprocess.run([sys.executable, "-c", script], check=True, cwd=ROOT)
    np.testing.assert_array_equal(
        np.load(tmp_path / "proba.npy"), fitted.predict_proba(images)
    )


def test_keras_model_saves_for_serving_in_one_call(fitted, data, tmp_path):
    import keras

    images, _ = data
    path = tmp_path / "model.keras"
    fitted.keras_model().save(path)
    served = keras.saving.load_model(path)  # no custom objects needed
    np.testing.assert_allclose(
        served.predict(images.astype("float32"), verbose=0),
        fitted.predict_proba(images),
        atol=1e-5,
    )


@pytest.mark.backend
def test_flip_tta_averages_each_image_and_its_mirror_also_when_served(
    fitted, data, tmp_path
):
    import keras

    images, _ = data
    plain = fitted.predict_proba(images)
    mirrored = fitted.predict_proba(images[:, :, ::-1])
    assert np.abs(plain - mirrored).max() > 1e-3  # the model is not symmetric
    assert fitted.keras_model() is fitted._tuned.classifier  # tta=None: as trained
    fitted.set_params(tta="flip")  # read at prediction: no refit
    try:
        tta = fitted.predict_proba(images)
        path = tmp_path / "tta.keras"
        fitted.keras_model().save(path)
        served = keras.saving.load_model(path)  # the mirror is built-in layers
        served = served.predict(images.astype("float32"), verbose=0)
    finally:
        fitted.set_params(tta=None)
    np.testing.assert_allclose(tta, (plain + mirrored) / 2, atol=1e-6)
    np.testing.assert_allclose(served, tta, atol=1e-6)


@pytest.mark.parametrize("tta", [None, "flip"])
def test_onnx_runtime_predicts_as_keras_batch_by_batch(fitted, data, tta, monkeypatch):
    pytest.importorskip("tf2onnx")
    from featurize._onnx import runtime

    images, _ = data
    calls = []
    original = runtime.run

    def counted(made, pixels):
        calls.append(len(pixels))
        return original(made, pixels)

    monkeypatch.setattr(runtime, "run", counted)
    fitted.set_params(tta=tta)
    try:
        expected = fitted.set_params(runtime="keras").predict_proba(images)
        found = fitted.set_params(runtime="onnx").predict_proba(images)
    finally:
        fitted.set_params(tta=None, runtime="auto")
    np.testing.assert_allclose(found, expected, atol=1e-5)
    # onnxruntime keeps the largest activations it has held: never a whole chunk.
    assert calls
    assert max(calls) <= fitted.batch_size < len(images)


def test_auto_tta_mirrors_where_classes_are_mirror_symmetric():
    from featurize._tuning.probe import choose_tta

    rng = np.random.default_rng(0)
    codes = np.repeat([0, 1, 2], 40)
    centres = rng.normal(0, 1, (3, 16))
    features = centres[codes] + rng.normal(0, 1.5, (120, 16))
    weights = np.ones(120)
    # A mirror image is another noisy view of its class, or looks like another class.
    same = centres[codes] + rng.normal(0, 1.5, (120, 16))
    other = centres[(codes + 1) % 3] + rng.normal(0, 1.5, (120, 16))
    chosen, table = choose_tta(features, same, codes, weights, 1.0, 0)
    assert chosen == "flip"
    assert table.cv_log_loss[1] < table.cv_log_loss[0]
    chosen, table = choose_tta(features, other, codes, weights, 1.0, 0)
    assert chosen is None
    assert table.cv_accuracy[1] < table.cv_accuracy[0]
    assert table.chosen.tolist() == [True, False]


def test_auto_tta_does_not_mirror_left_right_classes():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 60, (24, SIZE, SIZE, 3)).astype(np.uint8)
    images[:12, :, : SIZE // 2] += 180  # "left": bright left half
    images[12:, :, SIZE // 2 :] += 180
    labels = ["left"] * 12 + ["right"] * 12
    clf = tiny(epochs=1, tta="auto").fit(images, labels)
    assert clf.tta_ is None
    assert clf.tta_cv_.cv_accuracy[1] < clf.tta_cv_.cv_accuracy[0]
    assert clf.keras_model() is clf._tuned.classifier


class _CountingTrainer:
    """Each step adds 1 to its one weight: after epoch k (one step each) it is k."""

    def __init__(self):
        self.weight = np.zeros(2)

    def train_on_batch(self, inputs, labels, sample_weight=None, return_dict=True):
        self.weight = self.weight + 1
        return {"loss": 0.0, "accuracy": 1.0}


class _OneBatch:
    def __len__(self):
        return 1

    def shuffle(self):
        pass

    def __getitem__(self, k):
        return np.zeros((1, 1)), np.zeros(1), np.ones(1)


@pytest.mark.parametrize(("average_last", "kept"), [(0.0, 4.0), (0.5, 3.5), (1.0, 2.5)])
def test_weight_averaging_keeps_the_mean_of_the_last_epochs(average_last, kept):
    from featurize._tuning.loop import Phase, averaged_from, fit_loop

    trainer = _CountingTrainer()

    def set_weights(arrays):
        trainer.weight = arrays[0]

    nan = {"val_loss": np.nan, "val_accuracy": np.nan}
    fit_loop(
        trainer, _OneBatch(), epochs=4,
        phase=lambda epoch: Phase(0, lambda e: None, lambda e: {}),
        evaluate=lambda: nan, weights=(lambda: [trainer.weight], set_weights),
        validated=False, patience=None, first={"epoch": 0, **nan},
        average_from=averaged_from(4, average_last),
    )  # fmt: skip
    np.testing.assert_array_equal(trainer.weight, [kept, kept])


def test_average_last_is_wired_into_the_fit(fitted, data):
    images, labels = data
    last = tiny(epochs=2).fit(images, labels).predict_proba(images)
    averaged = tiny(epochs=2, average_last=1.0).fit(images, labels)
    assert np.abs(averaged.predict_proba(images) - last).max() > 1e-4


def test_mixup_mixes_images_and_labels_alike():
    from featurize._tuning.mixup import MixedBatches

    class LabelsAsImages(_OneBatch):
        def __getitem__(self, k):  # each "image" is its own one-hot label
            labels = np.array([0, 1, 2, 2, 1, 0, 1, 2])
            return np.eye(3, dtype=np.float32)[labels], labels, np.ones(8, np.float32)

    mixed = MixedBatches(LabelsAsImages(), 0.4, 3, np.random.default_rng(0))
    for k in range(5):
        images, targets, weights = mixed[k]
        np.testing.assert_allclose(images, targets, atol=1e-6)
        np.testing.assert_allclose(targets.sum(axis=1), 1.0, atol=1e-6)
        np.testing.assert_allclose(weights, 1.0)
    assert np.abs(targets - np.eye(3)[[0, 1, 2, 2, 1, 0, 1, 2]]).max() > 0


def test_mixup_trains_on_soft_targets(data):
    images, labels = data
    plain = tiny(epochs=2).fit(images, labels)
    mixed = tiny(epochs=2, mixup=0.4).fit(images, labels)
    # Mixed targets cannot be fitted as closely as one-hot ones.
    assert (mixed.history_.loss.iloc[1:] > plain.history_.loss.iloc[1:] + 0.05).all()
    assert mixed.score(images, labels) == 1.0


def test_interpolation_keeps_a_mix_of_the_probe_and_the_fine_tuned_weights(data):
    images, labels = data
    tuned = tiny(epochs=2, interpolation=1.0).fit(images, labels)
    probe = tiny(epochs=0).fit(images, labels)
    half = tiny(epochs=2, interpolation=0.5).fit(images, labels)
    for mixed, a, b in zip(
        half.keras_model().get_weights(),
        tuned.keras_model().get_weights(),
        probe.keras_model().get_weights(),
    ):
        np.testing.assert_allclose(mixed, (np.asarray(a) + b) / 2, rtol=1e-5, atol=1e-6)
    assert not np.allclose(tuned.predict_proba(images), probe.predict_proba(images))


def test_label_smoothing_trains_towards_the_smoothed_targets(data):
    images, labels = data
    fit = dict(epochs=6, learning_rate=1e-2, head_init="random", augment=None)
    sharp = tiny(**fit).fit(images, labels)
    smooth = tiny(**fit, label_smoothing=0.3).fit(images, labels)
    # Targets (0.8, 0.1, 0.1): no prediction has a cross-entropy below their entropy.
    floor = -(0.8 * np.log(0.8) + 0.2 * np.log(0.1))
    assert sharp.history_.loss.iloc[-1] < floor - 0.1
    assert (smooth.history_.loss.iloc[1:] > floor - 1e-4).all()
    assert smooth.history_.loss.iloc[-1] < floor + 0.2  # and it does approach them


def _with_bad_file(images, labels, tmp_path):
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"not a jpeg at all")
    return [*images[:-1], str(bad)], labels


def test_bad_image_raises_before_training(data, tmp_path):
    items, labels = _with_bad_file(*data, tmp_path)
    clf = tiny()
    with pytest.raises(ImageDecodeError, match="broken.jpg"):
        clf.fit(items, labels)
    assert not hasattr(clf, "history_")


def test_bad_image_is_skipped_with_a_report(data, tmp_path):
    items, labels = _with_bad_file(*data, tmp_path)
    clf = tiny(on_error="nan").fit(items, labels)
    assert list(clf.fit_failures_["index"]) == [len(items) - 1]
    assert "broken.jpg" in clf.fit_failures_["input"].iloc[0]
    with pytest.warns(UserWarning, match="broken.jpg"):
        proba = clf.predict_proba(items)
    assert np.isnan(proba[-1]).all()
    assert not np.isnan(proba[:-1]).any()
    with pytest.raises(ValueError, match="predict_proba"):
        clf.predict(items)


def test_streaming_when_the_set_does_not_fit_in_memory(data, tmp_path):
    images, labels = data
    items, labels = _with_bad_file(images, labels, tmp_path)
    streamed = tiny(preload_bytes=0, on_error="nan").fit(items, labels)
    preloaded = tiny(on_error="nan").fit(items, labels)
    assert list(streamed.fit_failures_["index"]) == [len(items) - 1]
    np.testing.assert_allclose(
        streamed.predict_proba(images), preloaded.predict_proba(images), atol=1e-5
    )


def test_class_weight(data):
    images, labels = data
    tiny(class_weight="balanced", epochs=1).fit(images[:20], labels[:20])
    with pytest.raises(InvalidParameterError, match="purple"):
        tiny(class_weight={"purple": 2.0}).fit(images, labels)


def test_auto_layer_is_the_probe_layer_with_the_best_cross_validated_accuracy(
    data, tmp_path
):
    from sklearn.linear_model import LogisticRegression

    pretrained = tmp_path / "pretrained.weights.h5"
    tiny_stages_cnn((SIZE, SIZE, 3), None).save_weights(pretrained)
    register_tiny(weights_file=pretrained, name="tiny_pretrained")
    images, labels = data
    cache = tmp_path / "cache"
    clf = FineTunedClassifier(
        "tiny_pretrained", epochs=0, validation_fraction=None, random_state=0,
        cache=cache,
    ).fit(images, labels)  # fmt: skip
    table = clf.probe_cv_
    names = [
        ImageFeaturizer("tiny_pretrained", layer=k, cache=None).fit().layer_
        for k in (None, -2)
    ]
    assert list(table.layer) == names
    assert table.chosen.sum() == 1
    best = table[table.chosen].iloc[0]
    assert best.cv_accuracy == table.cv_accuracy.max()
    featurizer = ImageFeaturizer("tiny_pretrained", layer=best.layer, cache=cache)
    assert clf.layer_ == featurizer.fit().layer_
    features = featurizer.embed(images)
    assert features.stats["cache_hits"] == len(images)  # the probe's embeddings
    reference = make_pipeline(
        StandardScaler(), LogisticRegression(C=best.C, max_iter=2000)
    ).fit(features.array, labels)
    np.testing.assert_allclose(
        clf.predict_proba(images), reference.predict_proba(features.array), atol=5e-4
    )


def test_to_featurizer_has_its_own_weights_and_cache_namespace(
    data, tmp_path, monkeypatch
):
    import keras

    monkeypatch.setenv("FEATURIZE_WEIGHTS_DIR", str(tmp_path / "weights"))
    images, labels = data
    pretrained = tmp_path / "pretrained.weights.h5"
    tiny_stages_cnn((SIZE, SIZE, 3), None).save_weights(pretrained)
    register_tiny(weights_file=pretrained, name="tiny_pretrained")
    cache = tmp_path / "cache"
    clf = FineTunedClassifier(
        "tiny_pretrained", epochs=2, batch_size=8, validation_fraction=None,
        random_state=0, cache=cache, batchnorm="adapt",
    ).fit(images, labels)  # fmt: skip
    base = ImageFeaturizer("tiny_pretrained", cache=cache)
    tuned = clf.to_featurizer()
    assert tuned.fingerprint()["weights"] != base.fingerprint()["weights"]
    assert str(tmp_path / "weights" / "fine-tuned") in tuned.weights
    first = tuned.embed(images)
    assert first.stats["computed"] == len(images)
    again = clf.to_featurizer().embed(images)  # same file, same namespace
    assert again.stats["cache_hits"] == len(images)
    np.testing.assert_array_equal(again.array, first.array)
    assert not np.allclose(first.array, base.transform(images))
    keras_features = keras.Model(
        clf.keras_model().inputs, clf.keras_model().get_layer("pool").output
    ).predict(images.astype("float32"), verbose=0)
    np.testing.assert_allclose(first.array, keras_features, rtol=1e-4, atol=1e-5)


def test_plot_history(fitted):
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    ax = fitted.plot_history()
    assert ax.get_xlabel().startswith("epoch")
    losses = {line.get_label(): line for line in ax.get_lines()}
    epochs, val_loss = losses["validation loss"].get_data()
    assert list(epochs) == list(fitted.history_.epoch)
    np.testing.assert_allclose(val_loss, fitted.history_.val_loss)


@pytest.mark.slow
def test_fine_tuning_real_lite0_beats_frozen_on_digits():
    """Digits are far from ImageNet: fine-tuning must beat the tuned frozen model."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import fine_tuning

    data = fine_tuning.load("digits")
    frozen = fine_tuning.frozen(data, {})
    tuned = fine_tuning.fine_tuned(data, {})
    assert tuned["accuracy"] > frozen["accuracy"] + 0.01, (tuned, frozen)


def test_cli_train_fine_tune_compares_and_saves_then_predicts(capsys, tmp_path):
    import joblib

    from pipelines._cli import main
    from tests.conftest import DATA

    flags = ["--backbone", TINY, "--weights", "none", "--input-size", "32"]
    out = tmp_path / "model.joblib"
    code = main(
        ["train", str(DATA), *flags, "--fine-tune", "--epochs", "1",
         "--keep", "fine-tuned", "--out", str(out), "--quiet"]
    )  # fmt: skip
    printed = capsys.readouterr().out
    assert code == 0
    assert "held-out accuracy: frozen logreg" in printed
    assert "fine-tuned" in printed
    assert isinstance(joblib.load(out), FineTunedClassifier)
    images = sorted(str(p) for p in DATA.glob("val/*/*.jpg"))[:3]
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"nope")
    code = main(["predict", str(out), *images, str(bad)])
    table = pd.read_csv(io.StringIO(capsys.readouterr().out))
    assert code == 1  # one image could not be read
    assert table["label"].notna().sum() == 3
    assert "not a recognised image format" in table["error"].iloc[-1]
    assert {c for c in table.columns if c.startswith("proba_")} == {
        "proba_ants", "proba_bees",
    }  # fmt: skip


def test_predicts_images_at_fsspec_urls(fitted, data):
    import fsspec
    from PIL import Image

    images, _ = data
    memory = fsspec.filesystem("memory")
    urls = []
    for k in range(3):
        buffer = io.BytesIO()
        Image.fromarray(images[k]).save(buffer, format="PNG")
        memory.pipe(f"/tuned/{k}.png", buffer.getvalue())
        urls.append(f"memory://tuned/{k}.png")
    frame = fitted.predict_frame(urls + ["memory://tuned/missing.png"])
    np.testing.assert_allclose(
        frame.filter(like="proba_").to_numpy()[:3],
        fitted.predict_proba(images[:3]),
        rtol=1e-5,
    )
    assert frame.error.iloc[3] == "file not found"


def test_compare_models_with_a_fine_tuned_candidate(data):
    import matplotlib

    matplotlib.use("Agg")
    from pipelines import compare_models, plot_comparison

    images, labels = data
    candidate = {"epochs": 1, "batch_size": 8, "validation_fraction": None}
    results, best = compare_models(
        images, labels, backbones=[TINY], weights=None, input_size=SIZE,
        cache=None, param_grid={"C": [1.0]}, cv=2, fine_tune=[candidate],
    )  # fmt: skip
    assert sorted(results.classifier) == ["fine_tuned", "logreg"]
    tuned = results[results.classifier == "fine_tuned"].iloc[0]
    assert tuned.params["epochs"] == 1
    assert tuned.params["random_state"] == 0  # reproducible unless asked otherwise
    assert 0 <= tuned.mean_score <= 1
    assert tuned.fit_time > 0
    assert np.isfinite(tuned.log_loss)
    assert best.predict(images[:3]).shape == (3,)
    if results.classifier.iloc[0] == "fine_tuned":
        assert isinstance(best, FineTunedClassifier)
    ax = plot_comparison(results)
    heights = [bar.get_height() for bar in ax.patches]
    assert np.isfinite(heights).sum() == 2  # one bar per candidate
    with pytest.raises(ValueError, match="list of dicts"):
        compare_models(images, labels, backbones=[TINY], weights=None,
                       fine_tune="yes", cv=2)  # fmt: skip
