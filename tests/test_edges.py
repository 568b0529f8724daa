"""Promises kept at the edges (issue 39): input cells written back as they came,
labels read as written, model selection that reports failures instead of scoring
them, group patterns checked before any work, and one-line messages that name what
the user gave."""

from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import pytest

from pipelines import compare_models, read_table, train_and_evaluate
from pipelines._audit.audit import read_items
from pipelines._cli import main

from .conftest import DATA

FAST = ["--backbone", "mobilenet_v3_small", "--weights", "none", "--input-size", "32"]
FAST_PARAMS = {
    "backbones": ["mobilenet_v3_small"], "weights": None, "input_size": 32,
}  # fmt: skip


def run(capsys, *argv):
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def usage_error(capsys, *argv) -> str:
    """The message of a command that must stop with a usage error (exit 2)."""
    with pytest.raises(SystemExit) as exited:
        main(list(argv))
    assert exited.value.code == 2
    return capsys.readouterr().err


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("model") / "m.joblib"
    assert main(["train", str(DATA), *FAST, "--quiet", "--out", str(path)]) == 0
    return path


@pytest.fixture
def manifest(tmp_path):
    """Two images with an id and a zip code that numbers would lose."""
    paths = sorted((DATA / "val" / "ants").iterdir())[:2]
    table = tmp_path / "manifest.csv"
    table.write_text(
        "path,id,zip,flag\n"
        + "".join(f"{p},00{k + 7},02139,NA\n" for k, p in enumerate(paths))
    )
    return table


def test_every_csv_column_is_read_as_the_text_it_is(manifest):
    table = read_table(manifest)
    assert table["id"].tolist() == ["007", "008"]
    assert table["zip"].tolist() == ["02139", "02139"]
    assert table["flag"].tolist() == ["NA", "NA"]  # a text, not a missing value


def test_predict_and_embed_write_the_input_cells_unchanged(
    model_file, manifest, tmp_path, capsys
):
    out = tmp_path / "predicted.csv"
    code, _, _ = run(capsys, "predict", str(model_file), str(manifest), "--out",
                     str(out))  # fmt: skip
    assert code == 0
    written = out.read_text().splitlines()
    assert written[1].split(",")[1:4] == ["007", "02139", "NA"]
    embedded = tmp_path / "embedded.parquet"
    code, _, _ = run(capsys, "embed", str(manifest), "--out", str(embedded),
                     *FAST, "--quiet")  # fmt: skip
    assert code == 0
    table = pd.read_parquet(embedded)
    assert table["id"].tolist() == ["007", "008"]
    assert table["zip"].tolist() == ["02139", "02139"]


def test_labels_are_read_as_written(tmp_path):
    texts = [f"message number {k} about topic {k % 3}" for k in range(24)]
    labels = ["01", "1", "2"] * 8
    table = tmp_path / "texts.csv"
    pd.DataFrame({"text": texts, "label": labels}).to_csv(table, index=False)
    trained = train_and_evaluate(
        str(table), text_column="text", encoder="glove_50d", cache=None,
        say=lambda _: None, verbose=0,
    )  # fmt: skip
    assert trained.model.classes_.tolist() == ["01", "1", "2"]
    # An image manifest's labels too: `01` and `1` are two classes.
    paths = sorted((DATA / "train" / "ants").iterdir())[:4]
    manifest = tmp_path / "images.csv"
    pd.DataFrame({"path": paths, "label": ["01", "1", "01", "1.0"]}).to_csv(
        manifest, index=False
    )
    assert read_items(manifest)["label"].tolist() == ["01", "1", "01", "1.0"]


def test_search_refuses_folds_a_class_cannot_fill_before_any_work(tmp_path, capsys):
    root = tmp_path / "classes"
    shutil.copytree(DATA / "train", root)
    (root / "wasps").mkdir()
    shutil.copyfile(next((root / "ants").iterdir()), root / "wasps" / "one.jpg")
    model = tmp_path / "best.joblib"
    err = usage_error(capsys, "search", str(root), *FAST, "--cv", "3", "--quiet",
                      "--model", str(model))  # fmt: skip
    assert "Class 'wasps' has 1 item, fewer than the 3 folds" in err
    assert "Traceback" not in err
    assert not model.exists()
    # With --fine-tune the cause is the same, not "y has only one class".
    err = usage_error(capsys, "search", str(root), *FAST, "--cv", "3", "--quiet",
                      "--fine-tune")  # fmt: skip
    assert "Class 'wasps' has 1 item" in err
    with pytest.raises(ValueError, match="Class 'wasps' has 1 item"):
        compare_models(*_folder(root), cv=3, **FAST_PARAMS)


def _folder(root):
    from pipelines import load_image_folder

    return load_image_folder(root)


def test_failed_candidates_are_failures_and_nothing_is_saved(capsys, monkeypatch):
    paths, labels = _folder(DATA / "train")
    labels = np.asarray(labels)
    # A fold whose training part holds one class: no candidate can be fitted.
    ants = np.flatnonzero(labels == "ants")
    bees = np.flatnonzero(labels == "bees")
    folds = [(ants, bees), (bees, ants)]
    results, best = compare_models(
        paths, labels, cv=folds, param_grid={"C": [0.1, 1.0]}, **FAST_PARAMS
    )
    assert best is None
    assert len(results) == 2
    assert results["mean_score"].isna().all()
    assert results["error"].str.contains("ValueError: ").all()
    assert results["error"].str.contains("class").all()
    assert "\n" not in "".join(results["error"])
    # From the command line: every candidate failed, so nothing is saved, exit 1.
    import pipelines._cli as cli

    monkeypatch.setattr(cli, "fold_problem", lambda *_: None)
    monkeypatch.setattr(
        cli, "compare_models", lambda *a, **k: (results.assign(grouped=0), None)
    )
    code, _, err = run(capsys, "search", str(DATA), *FAST, "--quiet", "--model",
                       "never.joblib")  # fmt: skip
    assert code == 1
    assert "logreg {'C': 0.1} failed: ValueError" in err
    assert "none of the 2 candidates could be scored" in err


def test_group_pattern_is_checked_before_any_work(tmp_path, capsys):
    err = usage_error(capsys, "search", str(DATA), *FAST, "--quiet",
                      "--group-pattern", "person[0-9]+")  # fmt: skip
    assert "matches none of the 48 file names" in err
    err = usage_error(capsys, "train", str(DATA / "train"), *FAST, "--quiet",
                      "--group-pattern", "person[0-9]+")  # fmt: skip
    assert "matches none of the 48 file names" in err
    # Fewer groups than folds: named before any work, not scikit-learn's message.
    err = usage_error(capsys, "search", str(DATA), *FAST, "--quiet", "--cv", "8",
                      "--group-pattern", "^[0-9]")  # fmt: skip
    assert "fall into 6 groups, fewer than the 8 folds" in err
    err = usage_error(capsys, "train", str(DATA / "train"), *FAST, "--quiet",
                      "--group-pattern", "jpg")  # fmt: skip
    assert "fall into 1 group: holding out 25%" in err
    # Matching some names warns with the counts.
    with pytest.warns(UserWarning, match="'\\^1' matches 13 of 48 file names"):
        code, _, _ = run(capsys, "search", str(DATA / "train"), *FAST, "--quiet",
                         "--cv", "2", "--group-pattern", "^1")  # fmt: skip
    assert code == 0


def test_train_names_what_it_was_given(tmp_path, capsys):
    table = tmp_path / "manifest.csv"
    table.write_text("path,label\nx.jpg,a\n")
    code, _, err = run(capsys, "train", str(table), *FAST, "--quiet")
    assert code == 1
    assert "'" + str(table) + "' is not a folder: `train` reads images" in err
    assert "Errno" not in err
    # A class held out that training never saw.
    root = tmp_path / "split"
    shutil.copytree(DATA, root)
    shutil.copytree(root / "val" / "bees", root / "val" / "wasps")
    code, _, err = run(capsys, "train", str(root), *FAST, "--quiet")
    assert code == 1
    assert "val/ has class folders that train/ does not: ['wasps']" in err


def test_predict_keeps_its_columns_when_every_input_fails(model_file, tmp_path,
                                                          capsys):  # fmt: skip
    code, out, _ = run(capsys, "predict", str(model_file), str(tmp_path / "a.jpg"),
                       str(tmp_path / "b.jpg"))  # fmt: skip
    assert code == 1
    header = out.splitlines()[0].split(",")
    assert header == ["path", "label", "proba_ants", "proba_bees", "error"]
    empty = tmp_path / "empty"
    empty.mkdir()
    code, out, err = run(capsys, "predict", str(model_file), str(empty))
    assert code == 1
    assert "no inputs found" in err
    assert out == ""


def test_options_that_do_not_apply_are_usage_errors(model_file, capsys):
    err = usage_error(capsys, "predict", str(model_file), str(DATA / "val"),
                      "--text-column", "text")  # fmt: skip
    assert "classifies images: --text-column does not apply" in err


def test_cache_info_never_creates_a_cache_where_a_path_was_mistyped(tmp_path, capsys):
    typo = tmp_path / "cahce"
    code, _, err = run(capsys, "cache", "info", "--dir", str(typo))
    assert code == 1
    assert "holds no embedding cache" in err
    assert not typo.exists()


def test_audit_thresholds_and_outputs_are_checked(tmp_path, capsys):
    for value in ("2", "-1", "0", "x"):
        err = usage_error(capsys, "audit", str(DATA), "--near-threshold", value)
        assert "above 0 and at most 1" in err
    same = str(tmp_path / "x.csv")
    err = usage_error(capsys, "audit", str(DATA), "--out", same, "--report", same)
    assert "--out and --report name the same file" in err
    assert "input" not in err
