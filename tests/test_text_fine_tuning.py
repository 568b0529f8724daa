"""FineTunedTextClassifier: contrastive fine-tuning of MiniLM from a few labels.

One small fit (two texts per class, short windows) is shared by most tests: a fit
costs tens of seconds on CI's cores.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys

import joblib
import numpy as np
import pandas as pd
import pytest

from featurize import (
    ExportedModel,
    FineTunedTextClassifier,
    InvalidLabelsError,
    InvalidParameterError,
    TextError,
    TextFeaturizer,
    export,
    load_model,
)

TEXTS = [
    "win a free prize now, txt CLAIM to 80808",
    "urgent! your mobile won cash, call now",
    "see you at the station at six",
    "can you pick up some milk on the way home",
    "the meeting moved to thursday morning",
    "please send the quarterly report by friday",
]
LABELS = ["spam", "spam", "friends", "friends", "work", "work"]
PARAMS = dict(
    iterations=3, batch_size=4, learning_rate=2e-4, max_length=16, random_state=0
)


def similarity_gap(embeddings: np.ndarray, labels) -> float:
    """Mean cosine within classes minus across them (unit rows)."""
    labels = np.asarray(labels)
    cosine = embeddings @ embeddings.T
    same = labels[:, None] == labels[None, :]
    off = ~np.eye(len(labels), dtype=bool)
    return cosine[same & off].mean() - cosine[~same].mean()


@pytest.fixture(scope="module")
def tuned(tmp_path_factory):
    cache = tmp_path_factory.mktemp("cache")
    clf = FineTunedTextClassifier(**PARAMS, cache=cache, on_error="nan")
    # A missing value is left out of training, and reported.
    return clf.fit([*TEXTS, None], [*LABELS, "work"])


@pytest.mark.backend
def test_fit_predict_and_the_frame(tuned):
    assert list(tuned.classes_) == ["friends", "spam", "work"]
    history = tuned.history_
    assert history.epoch.tolist() == [0, 1, 2, 3]
    assert np.isfinite(history.loss[1:]).all()
    assert (history.pairs_per_second[1:] > 0).all()
    assert list(tuned.fit_failures_["index"]) == [6]
    proba = tuned.predict_proba(TEXTS)
    assert proba.shape == (6, 3)
    np.testing.assert_allclose(proba.sum(axis=1), 1, rtol=1e-5)
    assert (tuned.predict(TEXTS) == np.array(LABELS)).all()
    # Texts never seen in a pair embed and classify as well.
    assert tuned.predict(["free cash prize, call now to claim"])[0] == "spam"
    frame = tuned.predict_frame(pd.Series(["lunch at noon?", None]))
    assert list(frame.columns) == [
        "label", "proba_friends", "proba_spam", "proba_work", "error",
    ]  # fmt: skip
    assert frame.error[0] == ""
    assert frame.label[1] is None
    assert "missing" in frame.error[1]
    with pytest.warns(UserWarning, match="1 of 2 texts could not be used"):
        assert np.isnan(tuned.predict_proba(["ok", None])[1]).all()


def test_training_pulls_classes_together(tuned):
    """The tuned encoder separates the training classes more than MiniLM does, and
    its featurizer is what the classifier reads, under its own cache namespace."""
    frozen = TextFeaturizer(cache=None, max_length=16)
    featurizer = tuned.to_featurizer()
    assert featurizer.weights.endswith(".safetensors")
    assert featurizer.fingerprint()["weights"] != frozen.fingerprint()["weights"]
    before = similarity_gap(frozen.fit_transform(TEXTS), LABELS)
    after = similarity_gap(featurizer.fit_transform(TEXTS), LABELS)
    assert after > before + 0.05, (before, after)
    np.testing.assert_allclose(
        tuned.head_.predict_proba(featurizer.transform(TEXTS)),
        tuned.predict_proba(TEXTS),
        rtol=1e-5,
    )


def test_reloads_in_a_fresh_process_with_its_weights(tuned, tmp_path):
    """The tuned weights travel in the file: a process with an empty weights
    folder writes them again and predicts the same."""
    path = tmp_path / "tuned.joblib"
    joblib.dump(tuned, path)
    expected = tuned.predict_proba(TEXTS)
    script = (
        "import sys, numpy as np, featurize\n"
        "clf = featurize.load_model(sys.argv[1])\n"
        f"np.save(sys.argv[2], clf.predict_proba({TEXTS!r}))\n"
    )
    env = os.environ | {"FEATURIZE_WEIGHTS_DIR": str(tmp_path / "empty")}
    subprocess.run(
        [sys.executable, "-c", script, str(path), str(tmp_path / "p.npy")],
        check=True,
        env=env,
    )
    np.testing.assert_allclose(np.load(tmp_path / "p.npy"), expected, atol=1e-5)
    assert load_model(path).get_params() == tuned.get_params()


def test_exports_as_its_tuned_encoder_and_head(tuned, tmp_path):
    """The export serves the tuned encoder (not MiniLM's own weights) and the
    head, without featurize. LiteRT: ONNX conversion of the same encoder is
    tested in test_export, and costs three times as long."""
    export(tuned, format="litert").save(tmp_path / "served")
    served = ExportedModel(tmp_path / "served")
    np.testing.assert_allclose(
        served.predict_proba(TEXTS), tuned.predict_proba(TEXTS), atol=1e-4
    )
    assert list(served.predict(TEXTS)) == LABELS


def test_same_seed_same_predictions(tuned):
    again = FineTunedTextClassifier(**PARAMS, cache=None).fit(TEXTS, LABELS)
    np.testing.assert_array_equal(
        again.history_.loss[1:].to_numpy(), tuned.history_.loss[1:].to_numpy()
    )
    np.testing.assert_allclose(
        again.predict_proba(TEXTS), tuned.predict_proba(TEXTS), atol=1e-6
    )


def test_pairs_walk_every_pair_evenly(monkeypatch):
    """Each iteration brings as many similar as dissimilar pairs, and across
    iterations every possible pair recurs as evenly as can be; with too many to
    list, each text draws one partner of each kind."""
    from featurize._tuning import pairs

    codes = np.array([0, 0, 0, 0, 1, 1, 1, 1, 2, 2])
    sampler = pairs.PairSampler(codes, np.random.default_rng(0))
    seen = {}
    for _ in range(7):
        anchors, partners, same = sampler.draw()
        assert len(same) == 2 * len(codes)
        assert same.mean() == 0.5
        assert ((codes[anchors] == codes[partners]) == (same == 1)).all()
        for a, b in zip(anchors, partners):
            key = (min(a, b), max(a, b))
            seen[key] = seen.get(key, 0) + 1
    similar = [count for (a, b), count in seen.items() if codes[a] == codes[b]]
    dissimilar = [count for (a, b), count in seen.items() if codes[a] != codes[b]]
    # 4*5/2 + 4*5/2 + 2*3/2 = 23 similar pairs (self-pairs too), 32 dissimilar ones.
    assert len(similar) == 23
    assert max(similar) - min(similar) <= 1
    assert len(dissimilar) == 32
    assert max(dissimilar) - min(dissimilar) <= 1

    monkeypatch.setattr(pairs, "MAX_LISTED", 10)
    sampler = pairs.PairSampler(codes, np.random.default_rng(0))
    assert sampler.lists is None
    anchors, partners, same = sampler.draw()
    assert sorted(anchors[same == 1]) == sorted(anchors[same == 0]) == list(range(10))
    assert ((codes[anchors] == codes[partners]) == (same == 1)).all()


def test_the_rate_falls_linearly_or_as_a_cosine():
    from featurize._tuning.schedule import WarmupDecay

    linear = WarmupDecay(1.0, 2, 12, 0, "linear")
    cosine = WarmupDecay(1.0, 2, 12, 0, "cosine")
    assert linear.value(0) == cosine.value(0) == 0.5
    assert linear.value(4) == pytest.approx(0.8)
    assert cosine.value(4) == pytest.approx(0.5 * (1 + np.cos(0.2 * np.pi)))
    assert float(linear(4)) == pytest.approx(0.8)
    assert linear.value(12) == 0.0


def test_few_tuned_encoders_stay_loaded(monkeypatch, tmp_path):
    """A loop of fits loads a new tuned encoder each time; only the latest few
    stay in memory, and the registry's own stays."""
    import dataclasses

    from featurize._texts import encoders

    monkeypatch.setattr(encoders, "_LOADED", {})
    row = dataclasses.replace(
        encoders.get_text_encoder("minilm_l6"),
        implementation=f"{__name__}.CountedEncoder",
    )
    shared = encoders.load_encoder(row)
    files = [tmp_path / f"{k}.safetensors" for k in range(4)]
    loaded = [encoders.load_encoder(row, path) for path in files]
    assert encoders.load_encoder(row, files[-1]) is loaded[-1]
    assert encoders.load_encoder(row) is shared
    kept = [key[1] for key in encoders._LOADED if key[1] is not None]
    assert kept == [str(path) for path in files[-encoders.TUNED_KEPT :]]


class CountedEncoder:
    @classmethod
    def from_files(cls, folder, row, weights=None):
        return cls()


def test_errors_before_training():
    clf = FineTunedTextClassifier(cache=None)
    with pytest.raises(InvalidLabelsError, match="at least 2 classes"):
        clf.fit(TEXTS[:2], ["spam", "spam"])
    with pytest.raises(InvalidParameterError, match="glove_50d.*no network"):
        FineTunedTextClassifier("glove_50d", cache=None).fit(TEXTS, LABELS)
    with pytest.raises(TextError, match="row 1"):
        clf.fit(["fine", None], ["a", "b"])
    with pytest.raises(InvalidParameterError, match="iterations"):
        FineTunedTextClassifier(iterations=0).fit(TEXTS, LABELS)
    with pytest.raises(InvalidParameterError, match=".safetensors"):
        TextFeaturizer(weights="tuned.h5").fit()
    with pytest.raises(InvalidParameterError, match="word vectors"):
        TextFeaturizer("glove_50d", weights="x.safetensors").fit()


def test_train_fine_tunes_a_text_column_and_predict_reads_it(tmp_path, capsys):
    """`train TABLE --text-column --fine-tune` prints both held-out scores, keeps
    the one asked for, and `predict` classifies with it."""
    from pipelines._cli import main

    table = tmp_path / "few.csv"
    pd.DataFrame({"text": TEXTS + TEXTS[:2], "label": LABELS + LABELS[:2]}).to_csv(
        table, index=False
    )
    model = tmp_path / "tuned.joblib"
    argv = [
        "train", str(table), "--text-column", "text", "--fine-tune", "--keep",
        "fine-tuned", "--max-length", "16", "--test-size", "0.5", "--quiet",
        "--out", str(model),
    ]  # fmt: skip
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "held-out accuracy: frozen logreg" in out
    assert "fine-tuned" in out
    assert "pair iterations" in out
    assert isinstance(load_model(model), FineTunedTextClassifier)
    assert main(["predict", str(model), str(table), "--text-column", "text"]) == 0
    rows = pd.read_csv(io.StringIO(capsys.readouterr().out))
    assert {"predicted_label", "proba_spam", "error"} <= set(rows.columns)
    assert rows.label.tolist() == LABELS + LABELS[:2]  # the input column kept
    with pytest.raises(SystemExit):
        main(argv[:4] + ["--fine-tune", "--epochs", "2"])
    assert "--epochs sets image fine-tuning" in capsys.readouterr().err
