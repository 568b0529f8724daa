"""Nothing the user gave is lost, overwritten, misread or run: outputs beside inputs,
tables read as meant, labels checked, model files that cannot run code."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import time

import joblib
import numpy as np
import pandas as pd
import pytest
from PIL import Image

from featurize import (
    FineTunedClassifier,
    ImageFeaturizer,
    InvalidInputError,
    InvalidLabelsError,
    InvalidParameterError,
    TextFeaturizer,
    UnsafeModelFileError,
    check_labels,
    load_model,
    missing_labels,
)
from pipelines import read_table
from pipelines._cli import main

FAST = ["--backbone", "mobilenet_v3_small", "--weights", "none", "--input-size", "32"]
GLOVE = ["--encoder", "glove_50d", "--cache", "none"]
COLUMN = ["--text-column", "text"]
TEXT = [*COLUMN, *GLOVE]


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def usage(capsys, *argv) -> str:
    with pytest.raises(SystemExit) as stopped:
        main([str(a) for a in argv])
    assert stopped.value.code == 2
    return capsys.readouterr().err


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """A tiny two-class image folder."""
    root = tmp_path_factory.mktemp("folder")
    rng = np.random.default_rng(0)
    for label, shade in (("cats", 40), ("dogs", 200)):
        (root / label).mkdir()
        for k in range(6):
            pixels = np.clip(rng.normal(shade, 30, (24, 24, 3)), 0, 255)
            Image.fromarray(pixels.astype(np.uint8)).save(root / label / f"{k}.png")
    return root


@pytest.fixture(scope="module")
def image_model(folder, tmp_path_factory):
    path = tmp_path_factory.mktemp("model") / "model.joblib"
    assert main(["train", str(folder), *FAST, "--quiet", "--out", str(path)]) == 0
    return path


@pytest.fixture(scope="module")
def texts(tmp_path_factory):
    """A labelled text table, and a model trained on it."""
    folder = tmp_path_factory.mktemp("texts")
    spam = ["win a free prize now", "claim your cash reward", "free entry to win"]
    ham = ["see you at six", "are we still on for lunch", "call me when home"]
    table = pd.DataFrame(
        {"text": (spam + ham) * 3, "label": (["spam"] * 3 + ["ham"] * 3) * 3}
    )
    table.to_csv(folder / "train.csv", index=False)
    model = folder / "spam.joblib"
    code = main(
        [
            "train",
            str(folder / "train.csv"),
            "--text-column",
            "text",
            *GLOVE,
            "--quiet",
            "--out",
            str(model),
        ]
    )
    assert code == 0
    return folder, model


# 1. predictions never replace the input's columns


def test_predict_keeps_every_input_column(capsys, image_model, folder, tmp_path):
    paths = sorted(str(p) for p in folder.rglob("*.png"))[:3]
    manifest = pd.DataFrame(
        {
            "path": paths,
            "label": ["truth"] * 3,
            "error": ["kept"] * 3,
            "proba_cats": [7.0] * 3,
        }
    )
    manifest.to_csv(tmp_path / "in.csv", index=False)
    code, _, err = run(
        capsys,
        "predict",
        image_model,
        tmp_path / "in.csv",
        "--out",
        tmp_path / "out.csv",
    )
    assert code == 0
    out = pd.read_csv(tmp_path / "out.csv", keep_default_na=False)
    for column in manifest.columns:
        assert out[column].astype(str).tolist() == manifest[column].astype(str).tolist()
    assert {"predicted_label", "predicted_proba_cats", "proba_dogs"} <= set(out)
    assert set(out.predicted_label) <= {"cats", "dogs"}
    assert "'label'" in err
    assert "predicted_label" in err


def test_text_predict_keeps_a_true_label_column(capsys, texts, tmp_path):
    folder, model = texts
    code, out, _ = run(capsys, "predict", model, folder / "train.csv", *COLUMN)
    assert code == 0
    frame = pd.read_csv(pd.io.common.StringIO(out))
    original = pd.read_csv(folder / "train.csv")
    assert frame.label.tolist() == original.label.tolist()
    assert frame.predicted_label.notna().all()


# 2. outputs never overwrite inputs, and follow their names


def test_out_equal_to_an_input_is_a_usage_error(capsys, texts, image_model, tmp_path):
    folder, model = texts
    table = tmp_path / "t.csv"
    table.write_bytes((folder / "train.csv").read_bytes())
    before = table.read_bytes()
    err = usage(capsys, "embed", table, *TEXT, "--out", table)
    assert "also an input" in err
    err = usage(
        capsys, "predict", model, table, *COLUMN, "--out", tmp_path / "." / "t.csv"
    )
    assert "also an input" in err
    os.link(table, tmp_path / "hard-link.csv")
    usage(capsys, "predict", model, table, *COLUMN, "--out", tmp_path / "hard-link.csv")
    usage(capsys, "predict", model, table, *COLUMN, "--out", model)
    assert table.read_bytes() == before


def test_output_format_follows_its_name(capsys, texts, tmp_path):
    folder, model = texts
    code, _, err = run(
        capsys, "embed", folder / "train.csv", *TEXT, "--out", tmp_path / "e.csv"
    )
    assert code == 1
    assert ".parquet" in err
    code, _, err = run(
        capsys,
        "predict",
        model,
        folder / "train.csv",
        *COLUMN,
        "--out",
        tmp_path / "p.json",
    )
    assert code == 1
    assert ".csv or .tsv or .parquet" in err
    code, _, _ = run(
        capsys,
        "predict",
        model,
        folder / "train.csv",
        *COLUMN,
        "--out",
        tmp_path / "p.parquet",
    )
    assert code == 0
    assert len(pd.read_parquet(tmp_path / "p.parquet")) == 18


# 3 and 8. model files cannot run code; damaged ones are named in one line


class _Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_a_model_file_cannot_run_code(capsys, tmp_path, image_model):
    marker = tmp_path / "ran"
    evil = tmp_path / "evil.joblib"
    joblib.dump(_Evil(marker), evil)
    code, _, err = run(capsys, "predict", evil, tmp_path / "a.jpg")
    assert code == 1
    assert "system" in err
    assert "refusing" in err
    assert "--trust" in err
    assert err.count("\n") == 1
    with pytest.raises(UnsafeModelFileError, match="evil.joblib"):
        load_model(evil)
    # Hidden in an honest pipeline's object array, and behind getattr.
    pipeline = load_model(image_model)
    pipeline[-1].classes_ = np.array([_Evil(marker), "dogs"], dtype=object)
    joblib.dump(pipeline, tmp_path / "inside.joblib")
    with pytest.raises(UnsafeModelFileError):
        load_model(tmp_path / "inside.joblib")
    assert not marker.exists()
    joblib.dump(_Evil(marker), evil)
    load_model(evil, trust=True)  # the user's choice, as joblib.load
    assert marker.exists()


def test_honest_model_files_load_without_a_flag(image_model, texts):
    from sklearn.pipeline import Pipeline

    for path in (image_model, texts[1]):
        model = load_model(path)
        assert isinstance(model, Pipeline)
    classifier = FineTunedClassifier(
        "mobilenet_v3_small", weights=None, input_size=32, epochs=1, random_state=0
    )
    images = np.random.default_rng(0).integers(0, 256, (6, 32, 32, 3), np.uint8)
    classifier.fit(images, ["a", "b"] * 3)
    path = os.path.join(os.path.dirname(image_model), "tuned.joblib")
    joblib.dump(classifier, path)
    np.testing.assert_allclose(
        load_model(path).predict_proba(images),
        classifier.predict_proba(images),
        atol=1e-6,
    )


def test_damaged_model_files_give_one_line_naming_the_file(
    capsys, tmp_path, image_model
):
    data = image_model.read_bytes()
    cases = {
        "truncated.joblib": data[: len(data) // 3],
        "empty.joblib": b"",
        "text.joblib": b"not a model\n",
        "noise.joblib": np.random.default_rng(0).bytes(4096),
        "flipped.joblib": data[:40] + bytes(b ^ 0xFF for b in data[40:80]) + data[80:],
    }
    for name, content in cases.items():
        (tmp_path / name).write_bytes(content)
        code, _, err = run(capsys, "predict", tmp_path / name, tmp_path / "a.jpg")
        assert code == 1, name
        assert name in err
        assert err.count("\n") == 1, err
        assert "Traceback" not in err
    joblib.dump({"not": "a model"}, tmp_path / "dict.joblib")
    code, _, err = run(capsys, "predict", tmp_path / "dict.joblib", tmp_path / "a.jpg")
    assert code == 1
    assert "holds a dict" in err
    code, _, err = run(capsys, "predict", tmp_path / "missing.joblib", "a.jpg")
    assert code == 1
    assert "not found" in err


# 4. tables are read as the user meant


def test_text_values_are_never_guessed(tmp_path):
    (tmp_path / "t.csv").write_text(
        'text,n\nNA,1\nnull,2\nNone,3\nN/A,4\nnan,5\n123,6\nTRUE,7\n,8\n"a, b",9\n'
    )
    table = read_table(tmp_path / "t.csv", columns=["text"])
    assert table.text.tolist()[:7] == [
        "NA",
        "null",
        "None",
        "N/A",
        "nan",
        "123",
        "TRUE",
    ]
    assert pd.isna(table.text[7])  # an empty cell is the one missing value
    assert table.text[8] == "a, b"
    # Every other column as written too: digits stay the text they are.
    assert table.n.tolist() == [str(k) for k in range(1, 10)]
    result = TextFeaturizer("glove_50d", cache=None, on_error="nan").embed(table.text)
    assert result.failures["index"].tolist() == [7]


def test_encodings_separators_and_empty_files(capsys, tmp_path):
    latin = tmp_path / "latin.csv"
    latin.write_bytes("text,label\ncaf\xe9 cr\xe8me,a\nna\xefve,b\n".encode("latin-1"))
    code, _, err = run(capsys, "embed", latin, *TEXT, "--out", tmp_path / "e.parquet")
    assert code == 1
    assert "latin.csv" in err
    assert "--encoding" in err
    assert err.count("\n") == 1
    code, _, _ = run(
        capsys,
        "embed",
        latin,
        *TEXT,
        "--encoding",
        "latin-1",
        "--out",
        tmp_path / "e.parquet",
    )
    assert code == 0
    out = pd.read_parquet(tmp_path / "e.parquet")
    assert out.text.tolist() == ["café crème", "naïve"]
    tsv = tmp_path / "tabs.csv"
    tsv.write_text("text\tlabel\nhello there, friend\ta\nbye\tb\n")
    assert read_table(tsv, columns=["text"]).text.tolist() == [
        "hello there, friend",
        "bye",
    ]
    semi = tmp_path / "semi.csv"
    semi.write_text("text;label\nx,y;a\n")
    assert read_table(semi, columns=["text"], sep=";").text.tolist() == ["x,y"]
    (tmp_path / "empty.csv").write_bytes(b"")
    code, _, err = run(
        capsys, "embed", tmp_path / "empty.csv", *TEXT, "--out", tmp_path / "f.parquet"
    )
    assert code == 1
    assert "empty.csv" in err
    assert "empty" in err
    code, _, err = run(
        capsys,
        "embed",
        tsv,
        "--text-column",
        "body",
        *GLOVE,
        "--out",
        tmp_path / "g.parquet",
    )
    assert code == 1
    assert "no column 'body'" in err
    assert "'label'" in err


def test_embed_fails_when_nothing_could_be_embedded(capsys, tmp_path):
    pd.DataFrame({"text": [None, None]}, dtype=object).to_parquet(
        tmp_path / "n.parquet"
    )
    code, _, err = run(
        capsys, "embed", tmp_path / "n.parquet", *TEXT, "--out", tmp_path / "o.parquet"
    )
    assert code == 1
    assert "none of the 2 rows" in err


# 5. labels are checked in one place


def test_missing_labels_are_named(tiny_images):
    classifier = FineTunedClassifier("mobilenet_v3_small", weights=None, input_size=32)
    images = np.concatenate([tiny_images, tiny_images])
    for y in (
        ["a", "b", np.nan, "a", "b", "a"],
        pd.Series(["a", "b", "a", np.nan, "b", "a"], index=list("uvwxyz")),
        pd.Series(["a", "b", "a", pd.NA, "b", "a"], dtype="string"),
    ):
        with pytest.raises(InvalidLabelsError, match="1 of 6 labels are missing"):
            classifier.fit(images, y)
    with pytest.raises(InvalidLabelsError, match=r"index labels \['x'\]"):
        check_labels(pd.Series(["a", "b", "a", None], index=list("uvwx")), 4)
    with pytest.raises(InvalidLabelsError, match="2 classes"):
        check_labels(["a", "a"], 2)
    with pytest.raises(InvalidLabelsError, match="one label per input"):
        check_labels(["a", "b"], 3)
    assert missing_labels([1, None, float("nan"), pd.NA, "x"]).tolist() == [
        False,
        True,
        True,
        True,
        False,
    ]


def test_tiny_tables_get_our_own_messages(capsys, tmp_path):
    pd.DataFrame({"text": ["a b", "c d", "e f"], "label": ["x", "y", "y"]}).to_csv(
        tmp_path / "tiny.csv", index=False
    )
    code, _, err = run(capsys, "train", tmp_path / "tiny.csv", *TEXT)
    assert code == 1
    assert "Too few labelled texts" in err
    assert "'x'" in err
    assert "with 1" in err
    assert "test_size" not in err
    pd.DataFrame(
        {"text": ["a", "b", "c", "d"], "label": ["x", None, "y", None]}
    ).to_csv(tmp_path / "gaps.csv", index=False)
    code, _, err = run(capsys, "train", tmp_path / "gaps.csv", *TEXT)
    assert "skipped 2 rows without a label" in err
    assert "rows 1, 3" in err


# 6. output paths are checked before any work


def test_train_checks_its_out_before_training(capsys, folder, tmp_path):
    blocked = tmp_path / "a_file"
    blocked.write_text("")
    for out in (blocked / "model.joblib", tmp_path, tmp_path / "dir.joblib"):
        if out.name == "dir.joblib":
            out.mkdir()
        started = time.perf_counter()
        code, stdout, err = run(capsys, "train", folder, *FAST, "--out", out)
        assert code == 1, out
        assert str(out) in err
        assert "Training" not in stdout  # nothing was embedded or fitted
        assert time.perf_counter() - started < 5
    code, _, _ = run(
        capsys,
        "train",
        folder,
        *FAST,
        "--quiet",
        "--out",
        tmp_path / "new" / "deep" / "m.joblib",
    )
    assert code == 0
    assert (tmp_path / "new" / "deep" / "m.joblib").is_file()


# 7. one text cannot lose a batch


def test_lone_surrogates_are_repaired_and_counted():
    texts = ["abc\udcffdef", "fine text", "\ud800"]
    for on_error in ("raise", "nan"):
        featurizer = TextFeaturizer("glove_50d", cache=None, on_error=on_error)
        result = featurizer.embed(texts)
        assert np.isfinite(result.array[:2]).all()
        assert result.stats["repaired"] == 2
        assert len(result.failures) == 0
    with pytest.warns(UserWarning, match="2 of 3 texts held lone surrogates"):
        TextFeaturizer("glove_50d", cache=None).transform(texts)


# 9. the smaller findings


def test_truncated_texts_are_counted_on_the_command_line(capsys, tmp_path):
    table = pd.DataFrame({"text": ["one two three four five six", "short"]})
    table.to_csv(tmp_path / "long.csv", index=False)
    code, out, _ = run(
        capsys,
        "embed",
        tmp_path / "long.csv",
        *TEXT,
        "--max-length",
        "3",
        "--out",
        tmp_path / "o.parquet",
    )
    assert code == 0
    assert "1 texts were longer than max_length" in out


def test_cache_none_as_a_string_is_refused(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for featurizer in (
        TextFeaturizer("glove_50d", cache="none"),
        ImageFeaturizer("mobilenet_v3_small", cache="None"),
    ):
        with pytest.raises(InvalidParameterError, match="cache=None"):
            featurizer.fit()
    assert not (tmp_path / "none").exists()
    assert not (tmp_path / "None").exists()


def test_dicts_and_sets_are_refused():
    with pytest.raises(InvalidInputError, match="keys, not its values"):
        TextFeaturizer("glove_50d", cache=None).embed({"a": "hello", "b": "bye"})
    with pytest.raises(InvalidInputError, match="order is not promised"):
        ImageFeaturizer("mobilenet_v3_small", weights=None).embed({"x.jpg"})


def test_failures_carry_index_labels(tiny_images):
    texts = pd.Series(["ok", None, "fine"], index=["first", "second", "third"])
    featurizer = TextFeaturizer("glove_50d", cache=None, on_error="nan")
    result = featurizer.embed(texts)
    assert result.failures.index_label.tolist() == ["second"]
    with pytest.warns(UserWarning, match=r"input 1 \(index label 'second'\)"):
        featurizer.transform(texts)
    images = pd.Series([tiny_images[0], "gone.jpg"], index=[10, 20])
    result = ImageFeaturizer(
        "mobilenet_v3_small", weights=None, input_size=32, on_error="nan"
    ).embed(images)
    assert result.failures.index_label.tolist() == [20]
    assert {"inputs", "cache_hits", "computed", "failed", "seconds"} <= set(
        result.stats
    )
    assert isinstance(result.errors[0], OSError)


def test_temporaries_of_killed_runs_are_removed(capsys, texts, tmp_path):
    folder, _ = texts
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
    )
    pid = int(dead.stdout)
    stale = tmp_path / f".out.parquet.{pid}.abcd.tmp"
    stale.write_bytes(b"partial")
    live = tmp_path / f".out.parquet.{os.getpid()}.beef.tmp"
    live.write_bytes(b"another writer")
    code, _, _ = run(
        capsys, "embed", folder / "train.csv", *TEXT, "--out", tmp_path / "out.parquet"
    )
    assert code == 0
    assert not stale.exists()
    assert live.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        live.name,
        "out.failures.parquet",
        "out.parquet",
    ]


def test_outputs_follow_the_umask(capsys, texts, tmp_path):
    folder, model = texts
    previous = os.umask(0o022)
    try:
        run(
            capsys,
            "embed",
            folder / "train.csv",
            *TEXT,
            "--out",
            tmp_path / "e.parquet",
        )
        run(
            capsys,
            "predict",
            model,
            folder / "train.csv",
            *COLUMN,
            "--out",
            tmp_path / "p.csv",
        )
    finally:
        os.umask(previous)
    for name in ("e.parquet", "e.failures.parquet", "p.csv"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o644, name


def test_options_equal_in_effect_are_accepted(capsys, texts):
    folder, model = texts
    code, _, err = run(
        capsys,
        "predict",
        model,
        folder / "train.csv",
        *COLUMN,
        "--max-length",
        "none",
        "--batch-size",
        "8",
    )
    assert code == 0, err
    code, _, err = run(
        capsys, "predict", model, folder / "train.csv", *COLUMN, "--long-text", "chunks"
    )
    assert code == 1
    assert "would change the embeddings" in err


def test_image_options_with_a_text_column_are_usage_errors(capsys, texts, folder):
    table = texts[0] / "train.csv"
    assert "--path-column" in usage(
        capsys, "embed", table, *COLUMN, "--path-column", "p", "--out", "x.parquet"
    )
    for flags in (["--epochs", "2"], ["--keep", "frozen"]):
        err = usage(capsys, "train", table, *COLUMN, *flags)
        assert "--fine-tune" in err
    assert "--encoding" in usage(capsys, "train", folder, "--encoding", "latin-1")


def test_max_length_equal_to_the_encoders_limit_is_the_same_model():
    from pipelines._predict import featurizer_with

    saved = TextFeaturizer("minilm_l6", cache=None)  # max_length None: 256 tokens
    assert featurizer_with(saved, {"max_length": 256}).max_length == 256
    with pytest.raises(InvalidParameterError, match="max_length=128"):
        featurizer_with(saved, {"max_length": 128})
