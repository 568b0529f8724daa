"""Folder loading, ready-made pipelines, grid search."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV
from sklearn.svm import SVC, LinearSVC

from pipelines import list_splits, load_image_folder, make_image_classifier

from .conftest import DATA


def test_load_image_folder_with_splits():
    assert list_splits(DATA) == ["train", "val"]
    paths, labels = load_image_folder(DATA, split="train")
    assert len(paths) == len(labels) == 48
    assert labels.count("ants") == labels.count("bees") == 24
    assert all(p.endswith(".jpg") for p in paths)
    with pytest.raises(
        ValueError, match=r"split folders \['train', 'val'\]: pass split"
    ):
        load_image_folder(DATA)
    with pytest.raises(ValueError, match="no split folder 'test'"):
        load_image_folder(DATA, split="test")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_image_folder(DATA / "nope")


def test_load_image_folder_flat(tmp_path):
    for label in ("cat", "dog"):
        (tmp_path / label).mkdir()
        (tmp_path / label / "b.png").write_bytes(b"x")
        (tmp_path / label / "a.JPG").write_bytes(b"x")
        (tmp_path / label / ".hidden.jpg").write_bytes(b"x")
        (tmp_path / label / "notes.txt").write_text("x")
    paths, labels = load_image_folder(tmp_path)
    assert [p.split("/")[-2:] for p in paths] == [
        ["cat", "a.JPG"], ["cat", "b.png"], ["dog", "a.JPG"], ["dog", "b.png"]
    ]  # fmt: skip
    assert labels == ["cat", "cat", "dog", "dog"]
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValueError, match="No images found"):
        load_image_folder(empty)


def test_make_image_classifier():
    clf = make_image_classifier("resnet50", "logreg", layer=-2, pooling="max")
    assert [name for name, _ in clf.steps] == ["featurizer", "scaler", "classifier"]
    assert clf.get_params()["featurizer__layer"] == -2
    assert isinstance(clf["classifier"], LogisticRegression)
    # The SVMs come calibrated (test_audit.py); uncalibrated on request.
    linear = make_image_classifier(classifier="linear_svm", calibrate=False)
    assert isinstance(linear[-1], LinearSVC)
    assert isinstance(make_image_classifier(classifier="svm")[-1].estimator, SVC)
    unscaled = make_image_classifier(scale=False)
    assert [name for name, _ in unscaled.steps] == ["featurizer", "classifier"]
    with pytest.raises(ValueError, match="Unknown classifier 'forest'"):
        make_image_classifier(classifier="forest")


@pytest.mark.backend
def test_grid_search_over_a_pipeline():
    paths, labels = load_image_folder(DATA, split="train")
    clf = make_image_classifier("mobilenet_v3_small", weights=None, input_size=32)
    search = GridSearchCV(clf, {"classifier__C": [0.1, 1.0]}, cv=2).fit(paths, labels)
    assert search.best_params_["classifier__C"] in (0.1, 1.0)
    predictions = search.predict(paths[:3])
    assert set(predictions) <= {"ants", "bees"}
    assert np.isfinite(search.cv_results_["mean_test_score"]).all()


def test_compare_models_embeds_each_configuration_once(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    from featurize import EmbeddingCache
    from pipelines import compare_models, plot_comparison

    paths, labels = load_image_folder(DATA, split="train")
    cache = EmbeddingCache(tmp_path / "cache")
    kwargs = dict(
        backbones=["efficientnet_lite0"],
        layers=[None, -2],
        classifiers=["logreg", "linear_svm"],
        param_grid={"logreg": {"C": [0.1, 1.0]}, "linear_svm": {"C": [0.1]}},
        cv=3,
        input_size=64,
        cache=cache,
        scoring=["accuracy", "f1_macro"],
    )
    results, best = compare_models(paths, labels, **kwargs)
    assert len(results) == 2 * 3
    expected_columns = {"mean_accuracy", "std_accuracy", "mean_f1_macro", "fit_time",
                        "embedding_time", "cache_hits", "computed"}  # fmt: skip
    assert expected_columns <= set(results.columns)
    assert results.mean_accuracy.is_monotonic_decreasing
    assert set(results.layer) == {"top_activation", "block6a_expand_activation"}
    assert results.computed.tolist() == [len(paths)] * 6
    assert int(cache.info()["computed"].sum()) == 2 * len(paths)
    top = results.iloc[0]
    assert best["featurizer"].layer_ == top.layer
    assert top.params["C"] == best["classifier"].C
    assert set(best.predict(paths[:4])) <= {"ants", "bees"}  # noqa: SIM300
    again, _ = compare_models(paths, labels, refit=False, **kwargs)
    assert again.computed.sum() == 0
    assert (again.cache_hits == len(paths)).all()
    ax = plot_comparison(results, metric="accuracy")
    assert len(ax.patches) == 2 * 2  # 2 configurations x 2 classifiers
    assert ax.get_ylabel() == "accuracy (cross-validated)"


def test_pickle_size_does_not_grow_with_the_data_transformed():
    import pickle

    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (300, 24, 24, 3), np.uint8)
    labels = np.arange(300) % 2
    clf = make_image_classifier(
        "mobilenet_v3_small", weights=None, input_size=32, cache=None
    ).fit(images[:10], labels[:10])
    clf.predict(images[:10])
    after_10 = len(pickle.dumps(clf))
    clf.predict(images)
    clf["featurizer"].transform(images)
    after_300 = len(pickle.dumps(clf))
    assert abs(after_300 - after_10) < 1024
    assert after_10 < 50_000
