"""The embedding cache: keys, namespaces, crashes, concurrency, grid search."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from types import SimpleNamespace

import numpy as np
import pytest
from sklearn.model_selection import GridSearchCV

from featurize import EmbeddingCache, ImageFeaturizer
from pipelines import load_image_folder, make_image_classifier

from .conftest import DATA, kill_once_writing

SMALL = {"input_size": 32}


@pytest.fixture
def cache(tmp_path):
    return EmbeddingCache(tmp_path / "cache")


@pytest.fixture(scope="module")
def paths():
    paths, _ = load_image_folder(DATA, "val")
    return paths[:6]


def computed(cache: EmbeddingCache) -> int:
    return int(cache.info()["computed"].sum())


def test_second_transform_is_served_from_the_cache(cache, paths):
    featurizer = ImageFeaturizer(cache=cache, **SMALL)
    result = featurizer.fit().embed(paths)
    cold = result.array
    assert result.stats["computed"] == 6
    assert result.stats["cache_hits"] == 0
    warm = ImageFeaturizer(cache=cache, **SMALL).fit_transform(paths)
    np.testing.assert_array_equal(warm, cold)
    assert computed(cache) == 6
    info = cache.info()
    assert info.loc[0, "entries"] == 6
    assert info.loc[0, "backbone"] == "efficientnet_lite0"


def test_keys_are_content_not_names(cache, paths, tmp_path):
    featurizer = ImageFeaturizer(cache=cache, **SMALL)
    original = featurizer.fit_transform(paths[:1])
    copy = tmp_path / "renamed.jpg"
    shutil.copy(paths[0], copy)
    renamed = featurizer.embed([copy])
    assert np.array_equal(renamed.array, original)
    assert renamed.stats["cache_hits"] == 1
    from_bytes = featurizer.embed([copy.read_bytes()])
    assert from_bytes.stats["cache_hits"] == 1
    np.testing.assert_array_equal(from_bytes.array, original)
    edited = bytearray(copy.read_bytes())
    edited[-3] ^= 0xFF  # still decodes, but it is another image
    copy.write_bytes(bytes(edited))
    assert featurizer.embed([copy]).stats["computed"] == 1
    pixels = np.zeros((1, 32, 32, 3), np.uint8)
    featurizer.transform(pixels)
    assert featurizer.embed(pixels.copy()).stats["cache_hits"] == 1
    other_dtype = featurizer.embed(pixels.astype(np.float32))  # same values
    assert other_dtype.stats["computed"] == 1


def test_a_hit_skips_decoding(cache, paths, monkeypatch):
    featurizer = ImageFeaturizer(cache=cache, **SMALL)
    featurizer.fit_transform(paths)
    import featurize._images.batches

    def refuse(*args, **kwargs):
        raise AssertionError("decoded an image that was cached")

    monkeypatch.setattr(featurize._images.batches, "load_image", refuse)
    assert featurizer.embed(paths).stats["cache_hits"] == 6


def test_every_setting_that_changes_the_output_is_a_new_namespace(cache, paths):
    variants = [
        {},
        {"pooling": "max"},
        {"layer": -2},
        {"input_size": 40},
        {"resize": "center_crop"},
        {"backbone": "efficientnet_lite0", "weights": "imagenet", "pooling": "gem"},
    ]
    outputs = []
    for params in variants:
        result = ImageFeaturizer(cache=cache, **{**SMALL, **params}).embed(paths[:2])
        outputs.append(result.array)
        assert result.stats["computed"] == 2, params
    assert len(cache.info()) == len(variants)
    # Batch size and error handling do not change embeddings: same namespace.
    same = ImageFeaturizer(cache=cache, batch_size=1, on_error="nan", **SMALL)
    result = same.embed(paths[:2])
    np.testing.assert_array_equal(result.array, outputs[0])
    assert result.stats["cache_hits"] == 2


def test_random_weights_and_cache_none_are_never_cached(cache, tiny_images):
    for featurizer in (
        ImageFeaturizer("mobilenet_v3_small", weights=None, cache=cache, **SMALL),
        ImageFeaturizer("efficientnet_lite0", cache=None, **SMALL),
    ):
        featurizer.fit_transform(tiny_images)
        assert featurizer.embed(tiny_images).stats["cache_hits"] == 0
    assert computed(cache) == 0


def test_failures_are_not_cached_and_good_rows_are_kept(cache, paths, tmp_path):
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"garbage")
    featurizer = ImageFeaturizer(cache=cache, **SMALL)
    with pytest.raises(ValueError, match="not a recognised image format"):
        featurizer.fit_transform([*paths[:2], broken])
    assert computed(cache) == 2  # the batch's good images were kept
    featurizer.set_params(on_error="nan", batch_size=1)
    with pytest.warns(UserWarning, match="1 of 3"):
        out = featurizer.transform([*paths[:2], broken])
    assert np.isnan(out[2]).all()
    result = featurizer.embed([*paths[:2], broken])
    assert result.stats["cache_hits"] == 2
    assert result.failures["index"].tolist() == [2]


def test_duplicates_in_a_batch_are_computed_once(cache, paths):
    featurizer = ImageFeaturizer(cache=cache, **SMALL)
    result = featurizer.embed([paths[0], paths[1], paths[0], paths[0]])
    assert result.stats["computed"] == 2
    np.testing.assert_array_equal(result.array[0], result.array[3])


def test_clear(cache, paths):
    ImageFeaturizer(cache=cache, **SMALL).fit_transform(paths)
    assert cache.clear(older_than=3600) == 0
    assert cache.clear() == 6
    assert cache.info().empty


def test_pickled_featurizer_keeps_only_the_cache_location(cache):
    import pickle

    featurizer = ImageFeaturizer(cache=cache, **SMALL)
    restored = pickle.loads(pickle.dumps(featurizer))
    assert restored.cache == cache


@pytest.mark.parametrize("n_jobs", [1, 2])
def test_grid_search_runs_each_configuration_once_per_image(tmp_path, n_jobs):
    import keras

    paths, labels = load_image_folder(DATA, "train")
    paths, labels = paths[::3][:16], labels[::3][:16]
    weights = tmp_path / "mobilenet.weights.h5"
    keras.applications.MobileNetV3Small(
        include_top=False, weights=None, input_shape=(32, 32, 3)
    ).save_weights(weights)
    cache_dir = str(tmp_path / "cache")
    clf = make_image_classifier(cache=cache_dir, **SMALL)
    c_values = [0.1, 1.0, 10.0]
    grid = [
        {"featurizer__backbone": ["efficientnet_lite0"], "classifier__C": c_values},
        {
            "featurizer__backbone": ["mobilenet_v3_small"],
            "featurizer__weights": [str(weights)],
            "classifier__C": c_values,
        },
    ]
    search = GridSearchCV(clf, grid, cv=5, n_jobs=n_jobs)
    search.fit(paths, labels)
    cache = EmbeddingCache(cache_dir)
    assert len(search.cv_results_["params"]) == 6
    assert computed(cache) == 2 * len(paths)
    search.fit(paths, labels)
    assert computed(cache) == 2 * len(paths)


CRASH_IMAGES = 2000
CRASH_WRITER = f"""
import sys
N = {CRASH_IMAGES}
import numpy as np
from featurize import ImageFeaturizer
images = np.random.default_rng(0).integers(0, 256, (N, 32, 32, 3), np.uint8)
order = np.random.default_rng(int(sys.argv[2])).permutation(N)
ImageFeaturizer(cache=sys.argv[1], input_size=32, batch_size=2).fit_transform(
    images[order]
)
print("finished")
"""


def test_killed_writers_never_leave_wrong_entries(tmp_path):
    cache_dir = tmp_path / "cache"
    rng = np.random.default_rng(1)
    killed = []
    for attempt in range(5):
        writer = subprocess.Popen(
            [sys.executable, "-c", CRASH_WRITER, str(cache_dir), str(attempt)],
            stdout=subprocess.DEVNULL,
        )
        killed.append(kill_once_writing(writer, cache_dir, rng))
    assert any(killed), "the writers should have been killed mid-way"
    cache = EmbeddingCache(cache_dir)
    stored = int(cache.info()["entries"].sum())
    assert stored > 0
    images = np.random.default_rng(0).integers(
        0, 256, (CRASH_IMAGES, 32, 32, 3), np.uint8
    )
    featurizer = ImageFeaturizer(cache=cache, input_size=32, batch_size=50)
    result = featurizer.embed(images)
    from_cache = result.array
    assert result.stats["cache_hits"] == stored
    fresh = ImageFeaturizer(cache=None, input_size=32, batch_size=50).fit_transform(
        images
    )
    np.testing.assert_allclose(from_cache, fresh, rtol=1e-4, atol=1e-5)


CONCURRENT_WRITER = """
import sys
import numpy as np
from featurize import ImageFeaturizer
images = np.random.default_rng(0).integers(0, 256, (60, 32, 32, 3), np.uint8)
start = int(sys.argv[2])
out = ImageFeaturizer(cache=sys.argv[1], input_size=32, batch_size=8).fit_transform(
    images[start : start + 30]
)
np.save(sys.argv[3], out)
"""


def test_concurrent_writers_agree_with_a_serial_run(tmp_path):
    cache_dir = tmp_path / "cache"
    # stderr goes to files: a full pipe would block a worker that holds the lock.
    logs = [tmp_path / f"err{i}.log" for i in range(4)]
    workers = []
    for i, start in enumerate([0, 10, 20, 30]):
        with open(logs[i], "w") as log:
            command = [sys.executable, "-c", CONCURRENT_WRITER, str(cache_dir),
                       str(start), str(tmp_path / f"out{i}.npy")]  # fmt: skip
            workers.append(subprocess.Popen(command, stderr=log))
    codes = [worker.wait(timeout=600) for worker in workers]
    errors = [log.read_text() for log in logs]
    assert codes == [0] * 4, errors
    assert not any("Error" in e or "Traceback" in e for e in errors)
    images = np.random.default_rng(0).integers(0, 256, (60, 32, 32, 3), np.uint8)
    serial = ImageFeaturizer(cache=None, input_size=32, batch_size=8).fit_transform(
        images
    )
    for i, start in enumerate([0, 10, 20, 30]):
        got = np.load(tmp_path / f"out{i}.npy")
        np.testing.assert_allclose(
            got, serial[start : start + 30], rtol=1e-4, atol=1e-5
        )
    cache = EmbeddingCache(cache_dir)
    assert int(cache.info()["entries"].sum()) == 60
    assert computed(cache) == 60  # the lock kept overlapping images from running twice
    assert os.path.getsize(cache.path) > 0


def test_grid_over_layers_and_poolings_embeds_each_configuration_once(tmp_path):
    paths, labels = load_image_folder(DATA, "train")
    paths, labels = paths[::4], labels[::4]
    cache_dir = str(tmp_path / "cache")
    grid = {
        "featurizer__layer": [None, -2],
        "featurizer__pooling": ["avg", "gem"],
        "classifier__C": [0.1, 1.0],
    }
    search = GridSearchCV(make_image_classifier(cache=cache_dir, **SMALL), grid, cv=3)
    search.fit(paths, labels)
    assert len(search.cv_results_["params"]) == 8
    assert computed(EmbeddingCache(cache_dir)) == 4 * len(paths)


@pytest.mark.usefixtures("scratch_registry")
def test_registered_models_are_cached_by_their_weight_values(cache, tiny_images):
    import keras

    from featurize import register_backbone

    inputs = keras.Input((16, 16, 3))
    model = keras.Model(inputs, keras.layers.Conv2D(4, 3, strides=2)(inputs))
    register_backbone("cached_cnn", model, overwrite=True)
    featurizer = ImageFeaturizer("cached_cnn", cache=cache)
    first = featurizer.fit_transform(tiny_images)
    second = featurizer.embed(tiny_images)
    assert second.stats["cache_hits"] == 3
    np.testing.assert_array_equal(first, second.array)
    register_backbone("cached_builder", lambda shape, weights: model, overwrite=True)
    builder = ImageFeaturizer("cached_builder", cache=cache, input_size=16)
    builder.fit_transform(tiny_images)
    assert builder.embed(tiny_images).stats["cache_hits"] == 0  # no identity


# -- size cap, least recently used eviction, stale namespaces


def _fill(cache, settings, n, clock, monkeypatch, start=0):
    """``n`` 4-d entries, one per simulated minute; returns their digests."""
    monkeypatch.setattr(
        "featurize._shared.cache.time",
        SimpleNamespace(time=lambda: clock[0], strftime=time.strftime),
    )
    namespace = cache.namespace(settings, 4)
    digests = []
    for k in range(start, start + n):
        clock[0] += 120
        digest = k.to_bytes(20, "big")
        cache.put_many(namespace, [(digest, np.full(4, k, np.float32))])
        digests.append(digest)
    return namespace, digests


def _current(backbone="x"):
    from featurize._shared.versions import installed_versions

    return {"backbone": backbone, **installed_versions()}


def _entry_bytes():
    from featurize._shared.database import CHECKSUM_SIZE
    from featurize._shared.digests import DIGEST_SIZE

    return 4 * 4 + CHECKSUM_SIZE + DIGEST_SIZE


def test_filled_past_max_bytes_it_shrinks_least_recently_used_first(
    tmp_path, monkeypatch
):
    clock = [1e9]
    cache = EmbeddingCache(tmp_path / "cache", max_bytes=None)
    namespace, digests = _fill(cache, _current(), 10, clock, monkeypatch)
    assert cache.info().entries[0] == 10
    assert cache.info().megabytes[0] == round(10 * _entry_bytes() / 2**20, 3)
    clock[0] += 120  # read the three oldest: now the most recently used
    assert len(cache.get_many(namespace, digests[:3], 4)) == 3
    assert cache.shrink(6 * _entry_bytes()) == 4
    assert cache.info().entries[0] == 6
    # a cache with a cap enforces it on every write
    capped = EmbeddingCache(tmp_path / "cache", max_bytes=5 * _entry_bytes())
    _fill(capped, _current(), 2, clock, monkeypatch, start=10)
    left = capped.get_many(namespace, [k.to_bytes(20, "big") for k in range(12)], 4)
    assert len(left) == 5
    # 3..6 were evicted by shrink, then 7..9 (older than the read) for the new two
    assert k_of(left) == {0, 1, 2, 10, 11}
    assert int(capped.info().entries.sum()) == 5


def k_of(found) -> set:
    return {int.from_bytes(digest, "big") for digest in found}


def test_max_bytes_from_the_environment_and_bad_values(tmp_path, monkeypatch):
    from featurize import InvalidParameterError

    monkeypatch.setenv("FEATURIZE_CACHE_MAX_BYTES", "2GiB")
    assert EmbeddingCache(tmp_path).max_bytes == 2 * 2**30
    monkeypatch.setenv("FEATURIZE_CACHE_MAX_BYTES", "none")
    assert EmbeddingCache(tmp_path).max_bytes is None
    monkeypatch.delenv("FEATURIZE_CACHE_MAX_BYTES")
    assert EmbeddingCache(tmp_path).max_bytes == 10 * 2**30
    assert EmbeddingCache(tmp_path, max_bytes="500MB").max_bytes == 500 * 10**6
    with pytest.raises(InvalidParameterError, match="Cannot read 'lots' as a size"):
        EmbeddingCache(tmp_path, max_bytes="lots")


def test_stale_namespaces_are_marked_and_cleared(tmp_path, monkeypatch):
    clock = [1e9]
    cache = EmbeddingCache(tmp_path / "cache", max_bytes=None)
    old = _current("old") | {"keras": "2.15"}
    _fill(cache, old, 3, clock, monkeypatch)
    namespace, digests = _fill(cache, _current("new"), 2, clock, monkeypatch, start=3)
    info = cache.info().set_index("backbone")
    assert info.loc["old", "stale"].startswith("keras 2.15 (installed 3.")
    assert info.loc["new", "stale"] == ""
    assert cache.clear_stale() == 3
    assert list(cache.info().backbone) == ["new"]
    assert len(cache.get_many(namespace, digests, 4)) == 2


def test_a_database_from_the_first_release_gains_the_new_columns(tmp_path):
    import sqlite3

    from featurize._shared.cache import fingerprint
    from featurize._shared.database import CHECKSUM_SIZE
    from featurize._shared.database import checksum as _checksum

    folder = tmp_path / "cache"
    folder.mkdir()
    connection = sqlite3.connect(folder / "embeddings.sqlite3")
    connection.executescript(
        """
        CREATE TABLE namespaces (id INTEGER PRIMARY KEY, fingerprint TEXT NOT NULL
            UNIQUE, description TEXT NOT NULL, n_features INTEGER NOT NULL,
            computed INTEGER NOT NULL DEFAULT 0, created REAL NOT NULL);
        CREATE TABLE embeddings (namespace INTEGER NOT NULL, digest BLOB NOT NULL,
            vector BLOB NOT NULL, created REAL NOT NULL,
            PRIMARY KEY (namespace, digest)) WITHOUT ROWID;
        """
    )
    settings = _current()
    connection.execute(
        "INSERT INTO namespaces VALUES (1, ?, ?, 4, 2, 1e9)",
        (fingerprint(settings), json.dumps(settings)),
    )
    data = np.ones(4, "<f4").tobytes()
    for k in range(2):
        connection.execute(
            "INSERT INTO embeddings VALUES (1, ?, ?, 1e9)",
            (bytes([k]) * 20, data + _checksum(data)),
        )
    connection.commit()
    connection.close()
    cache = EmbeddingCache(folder, max_bytes=None)
    info = cache.info()
    assert info.entries[0] == 2
    assert info.megabytes[0] == round(2 * (16 + CHECKSUM_SIZE + 20) / 2**20, 3)
    assert len(cache.get_many(1, [bytes([0]) * 20, bytes([1]) * 20], 4)) == 2
    assert cache.shrink(0) == 2
