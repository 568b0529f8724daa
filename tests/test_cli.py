"""The featurize command: exit codes, messages, train and predict."""

from __future__ import annotations

import csv
import io
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from pipelines._cli import _parser, main
from pipelines._options import FEATURIZER_OPTIONS, featurizer_params

from .conftest import DATA

FAST = ["--backbone", "mobilenet_v3_small", "--weights", "none", "--input-size", "32"]


def run(capsys, *argv):
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_help_is_fast_and_imports_no_framework():
    script = (
        "import sys, featurize, pipelines, pipelines._cli\n"
        "print(sorted(m for m in ('keras', 'tensorflow', 'jax', 'torch') "
        "if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert out.stdout.strip() == "[]"
    result = subprocess.run(
        [sys.executable, "-m", "pipelines", "--help"], capture_output=True, text=True
    )
    assert result.returncode == 0
    assert "backbones" in result.stdout
    assert "train" in result.stdout


def test_usage_errors_exit_2(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["train"])
    assert exit_info.value.code == 2
    with pytest.raises(SystemExit) as exit_info:
        main(["no-such-command"])
    assert exit_info.value.code == 2


def test_backbones(capsys):
    code, out, _ = run(capsys, "backbones")
    assert code == 0
    assert "resnet50" in out
    assert "convnext_xlarge" in out
    code, out, _ = run(capsys, "backbones", "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(out)))
    assert {"name", "features_avg", "stages"} <= set(rows[0])


def test_weights_lists_what_is_on_this_machine(capsys):
    code, out, _ = run(capsys, "weights")
    assert code == 0
    lines = {line.split()[0]: line for line in out.splitlines()[1:]}
    assert len(lines) == 43
    assert "present" in lines["efficientnet_lite2"]
    assert "present" in lines["efficientnet_lite0"]
    assert "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5" in lines["resnet50"]
    code, out, _ = run(capsys, "weights", "--missing")
    assert "efficientnet_lite0" not in out


def test_user_errors_are_one_line_and_exit_1(capsys, tmp_path):
    code, _, err = run(capsys, "train", str(tmp_path / "nowhere"), *FAST)
    assert code == 1
    assert err.startswith("featurize: error:")
    assert err.count("\n") == 1
    assert "Traceback" not in err
    code, _, err = run(capsys, "predict", str(tmp_path / "none.joblib"), "x.jpg")
    assert code == 1
    assert "not found" in err


def test_train_then_predict(capsys, tmp_path):
    model = tmp_path / "model.joblib"
    code, out, _ = run(
        capsys, "train", str(DATA), *FAST, "--quiet", "--out", str(model)
    )
    assert code == 0
    assert "48 training and 24 held-out images (train/ vs val/)" in out
    assert "accuracy: " in out
    assert "precision" in out
    assert model.stat().st_size < 1_000_000
    good = sorted((DATA / "val" / "bees").iterdir())[:2]
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not a jpeg")
    code, out, err = run(capsys, "predict", str(model), *map(str, good), str(broken))
    assert code == 1
    rows = list(csv.DictReader(io.StringIO(out)))
    assert list(rows[0]) == ["path", "label", "proba_ants", "proba_bees", "error"]
    assert [r["path"] for r in rows] == [*map(str, good), str(broken)]
    assert all(r["label"] in ("ants", "bees") for r in rows[:2])
    for row in rows[:2]:
        probabilities = float(row["proba_ants"]), float(row["proba_bees"])
        assert sum(probabilities) == pytest.approx(1, abs=2e-4)
        assert max(probabilities) == float(row[f"proba_{row['label']}"])
    assert rows[2]["label"] == ""
    assert rows[2]["proba_ants"] == ""
    assert "not a recognised image" in rows[2]["error"]
    assert err == ""

    # A folder, and a manifest whose other columns are carried through.
    preds = tmp_path / "preds.csv"
    code, _, _ = run(capsys, "predict", str(model), str(DATA / "val"), "--out",
                     str(preds))  # fmt: skip
    assert code == 0
    table = pd.read_csv(preds)
    assert len(table) == 24
    import joblib

    pipeline = joblib.load(model)
    assert table.label.tolist() == list(pipeline.predict(table.path.tolist()))
    np.testing.assert_allclose(
        table[["proba_ants", "proba_bees"]].to_numpy(),
        pipeline.predict_proba(table.path.tolist()),
        atol=1e-5,
    )
    manifest = tmp_path / "manifest.csv"
    pd.DataFrame({"image": [*map(str, good), str(broken)], "id": [7, 8, 9]}).to_csv(
        manifest, index=False
    )
    parquet = tmp_path / "preds.parquet"
    code, _, _ = run(capsys, "predict", str(model), str(manifest), "--path-column",
                     "image", "--out", str(parquet), "--batch-size", "1")  # fmt: skip
    assert code == 1
    table = pd.read_parquet(parquet)
    assert table.id.tolist() == ["7", "8", "9"]  # the CSV's cells, as written
    assert table.label.tolist()[:2] == [r["label"] for r in rows[:2]]
    assert table.error.tolist()[2].startswith("not a recognised image")
    # What defines the embeddings cannot change under a trained classifier.
    code, _, err = run(capsys, "predict", str(model), str(manifest), "--pooling",
                       "max")  # fmt: skip
    assert code == 1
    assert "pooling='max' (the model's: 'avg') would change the embeddings" in err


def test_search_and_cache_commands(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("FEATURIZE_CACHE_DIR", str(tmp_path / "cache"))
    out_csv, model = tmp_path / "results.csv", tmp_path / "best.joblib"
    code, out, _ = run(
        capsys, "search", str(DATA), "--classifiers", "logreg,linear_svm",
        "--layers", "none,-2", "--cv", "3", "--input-size", "64", "--quiet",
        "--out", str(out_csv), "--model", str(model),
    )  # fmt: skip
    assert code == 0
    assert "Comparing 48 images (3-fold cross-validation)" in out
    rows = list(csv.DictReader(io.StringIO(out_csv.read_text())))
    assert len(rows) == 2 * (3 + 3)
    assert model.stat().st_size < 1_000_000
    code, out, _ = run(capsys, "cache", "info")
    assert code == 0
    assert "96 embeddings in 2 configurations" in out
    with pytest.raises(SystemExit) as exited:  # a value outside the rules: usage
        main(["cache", "clear", "--older-than", "soon"])
    assert exited.value.code == 2
    assert "--older-than must be" in capsys.readouterr().err
    code, out, _ = run(capsys, "cache", "clear", "--older-than", "1d")
    assert "deleted 0" in out
    code, out, _ = run(capsys, "cache", "info")
    assert "0 stale" in out
    assert "last_used" in out
    code, out, _ = run(capsys, "cache", "clear", "--stale")
    assert "deleted 0" in out
    with pytest.raises(SystemExit) as exited:
        main(["cache", "info", "--stale"])
    assert exited.value.code == 2
    assert "--stale goes with `cache clear`" in capsys.readouterr().err
    code, out, _ = run(capsys, "cache", "shrink", "--max-bytes", "1MB")
    assert "evicted 0 " in out  # the 96 embeddings take about 0.3 MB
    code, out, _ = run(capsys, "cache", "shrink", "--max-bytes", "0")
    assert code == 0
    assert "evicted 96 least recently used" in out
    code, out, _ = run(capsys, "cache", "clear")
    assert "deleted 0" in out


FLAGS = [
    "--backbone", "resnet50", "--weights", "none", "--layer", "-2", "--pooling",
    "gem", "--input-size", "64x48", "--resize", "center_crop", "--precision",
    "mixed", "--batch-size", "4", "--decode-workers", "0", "--max-pixels", "1000000",
    "--cache", "none", "--runtime", "keras",
]  # fmt: skip
PARSED = {
    "backbone": "resnet50", "weights": None, "layer": -2, "pooling": "gem",
    "input_size": (64, 48), "resize": "center_crop", "precision": "mixed",
    "batch_size": 4, "decode_workers": 0, "max_pixels": 1_000_000, "cache": None,
    "runtime": "keras",
}  # fmt: skip
POSITIONAL = {
    "train": ["DIR"],
    "search": ["DIR"],
    "embed": ["INPUT", "--out", "x.parquet"],
    "predict": ["MODEL", "a.jpg"],
}


@pytest.mark.parametrize("command", sorted(POSITIONAL))
def test_every_embedding_command_takes_the_same_featurizer_flags(command):
    parser = _parser()
    args = parser.parse_args([command, *POSITIONAL[command], *FLAGS])
    params = featurizer_params(args, comparable=command == "search")
    if command == "search":
        params = {k: v[0] if isinstance(v, list) else v for k, v in params.items()}
    assert params == PARSED
    assert sorted(params) == sorted(FEATURIZER_OPTIONS)
    # Not given: not set, so the estimator's own defaults apply.
    bare = parser.parse_args([command, *POSITIONAL[command]])
    assert featurizer_params(bare) == {}


def test_flag_values_are_checked_by_the_parameter_rules(capsys):
    for flags, message in [
        (["--pooling", "sum"], "`pooling` must be one of"),
        (["--batch-size", "0"], "`batch_size` must be a positive integer"),
        (["--input-size", "big"], "expected INPUT_SIZE; received 'big'"),
        (["--backbone", "resnet5"], "Unknown backbone 'resnet5'"),
        (["--pooling", "avg,max"], "`train` takes one --pooling"),
    ]:
        with pytest.raises(SystemExit) as exit_info:
            main(["train", str(DATA), *flags])
        assert exit_info.value.code == 2, flags
        assert message in capsys.readouterr().err, flags


def test_traceback_on_request(capsys, tmp_path):
    code, _, err = run(capsys, "train", str(tmp_path / "nowhere"), *FAST)
    assert (code, err.count("\n")) == (1, 1)
    code, _, err = run(capsys, "--traceback", "train", str(tmp_path / "nowhere"),
                       *FAST)  # fmt: skip
    assert code == 1
    assert "Traceback (most recent call last)" in err
    assert err.rstrip().splitlines()[-1].startswith("featurize: error:")


def test_framework_start_up_lines_stay_out_unless_asked(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    command = [sys.executable, "-m", "pipelines", "train", str(DATA), *FAST,
               "--quiet"]  # fmt: skip
    quiet = subprocess.run(command, capture_output=True, text=True, env=env)
    assert quiet.returncode == 0, quiet.stderr
    assert quiet.stderr == ""
    assert quiet.stdout.startswith("Training logreg")
    import keras

    if keras.backend.backend() == "tensorflow":
        loud = subprocess.run(
            [*command, "--framework-logs"], capture_output=True, text=True, env=env
        )
        assert loud.returncode == 0
        assert "absl" in loud.stderr or "oneDNN" in loud.stderr


SMS = DATA.parent / "sms_spam_sample.csv"


def test_train_and_embed_a_text_column(capsys, tmp_path):
    """`train TABLE --text-column` fits TextFeaturizer + classifier; `embed` writes
    the column's embeddings with the table's other columns, failures by row."""
    import joblib

    model_file = tmp_path / "text.joblib"
    code, out, _ = run(
        capsys, "train", str(SMS), "--text-column", "text", "--label-column",
        "label", "--encoder", "glove_50d", "--quiet", "--out", str(model_file),
    )  # fmt: skip
    assert code == 0, out
    assert "glove_50d text embeddings (50 per text); 225 training and 75" in out
    accuracy = float(out.split("accuracy: ")[1].split()[0])
    assert accuracy > 0.75  # two thirds are ham: above guessing the majority
    pipeline = joblib.load(model_file)
    predicted = pipeline.predict(
        [
            "URGENT! You have won a 1 week FREE membership in our £100,000 prize "
            "Jackpot! Txt the word CLAIM to 81010",
            "Ok lar, I will see you at home later",
        ]
    )
    assert list(predicted) == ["spam", "ham"]
    code, out, _ = run(
        capsys, "predict", str(model_file), str(SMS), "--text-column", "text"
    )
    assert code == 0
    rows = pd.read_csv(io.StringIO(out))
    assert len(rows) == 300
    assert {"label", "predicted_label", "proba_spam", "error"} <= set(rows.columns)
    assert rows.label.tolist() == pd.read_csv(SMS).label.tolist()  # kept as it was
    assert (rows.predicted_label == rows.label).mean() > 0.75
    with pytest.raises(SystemExit) as exited:  # --text-column missing: usage
        main(["predict", str(model_file), str(SMS)])
    assert exited.value.code == 2
    assert "classifies texts" in capsys.readouterr().err
    code, _, err = run(
        capsys, "predict", str(model_file), str(SMS), "--text-column", "text",
        "--encoder", "minilm_l6",
    )  # fmt: skip
    assert code == 1
    assert "encoder='minilm_l6' (the model's: 'glove_50d') would change" in err

    table = pd.DataFrame(
        {"id": [7, 8, 9], "title": ["hello there", None, "free prize now"]}
    )
    table.to_csv(tmp_path / "titles.csv", index=False)
    out_file = tmp_path / "titles.parquet"
    code, out, _ = run(
        capsys, "embed", str(tmp_path / "titles.csv"), "--text-column", "title",
        "--encoder", "glove_50d", "--out", str(out_file), "--quiet",
    )  # fmt: skip
    assert code == 0
    assert "3 rows: 2 embedded, 0 from the cache, 1 failed" in out
    written = pd.read_parquet(out_file)
    assert list(written.columns) == ["id", "title", "digest", "embedding"]
    assert list(written.id) == ["7", "9"]  # the CSV's cells, as written
    assert len(written.embedding[0]) == 50
    failures = pd.read_parquet(tmp_path / "titles.failures.parquet")
    assert list(failures.row) == [1]
    assert "missing value" in failures.message[0]
    # Run again: everything comes from the cache.
    code, out, _ = run(
        capsys, "embed", str(tmp_path / "titles.csv"), "--text-column", "title",
        "--encoder", "glove_50d", "--out", str(out_file), "--quiet",
    )  # fmt: skip
    assert "2 from the cache" in out

    for argv, message in [
        (["embed", str(SMS), "--out", "x.parquet", "--max-length", "9"],
         "--max-length needs --text-column"),
        (["embed", str(SMS), "--out", "x.parquet", "--text-column", "text",
          "--layer", "-2"], "--layer applies to images"),
        (["train", str(SMS), "--text-column", "text", "--fine-tune", "--epochs",
          "2"], "--epochs sets image fine-tuning's epochs"),
    ]:  # fmt: skip
        with pytest.raises(SystemExit) as exit_info:
            main(argv)
        assert exit_info.value.code == 2
        assert message in capsys.readouterr().err
    code, _, err = run(capsys, "train", str(SMS), "--text-column", "body")
    assert code == 1
    assert "has no column 'body'" in err
    code, _, err = run(capsys, "train", str(DATA), "--text-column", "text")
    assert code == 1
    assert "CSV or Parquet table" in err
    code, _, err = run(
        capsys, "embed", str(SMS), "--text-column", "text", "--engine", "ray",
        "--out", str(tmp_path / "ray.parquet"),
    )  # fmt: skip
    assert code == 1
    assert "engine='local'" in err
    code, out, _ = run(capsys, "encoders")
    assert code == 0
    assert "minilm_l6" in out
    assert "glove_50d" in out
