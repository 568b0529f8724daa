"""The featurize command: exit codes, messages, train and predict."""

from __future__ import annotations

import csv
import io
import subprocess
import sys

import pytest

from pipelines._cli import main

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
    assert len(lines) == 41
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
    code, _, err = run(capsys, "train", str(DATA), "--backbone", "resnet5")
    assert code == 1
    assert "Unknown backbone 'resnet5'" in err
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
    assert [r["path"] for r in rows] == [*map(str, good), str(broken)]
    assert all(r["label"] in ("ants", "bees") for r in rows[:2])
    assert all(0.5 <= float(r["probability"]) <= 1 for r in rows[:2])
    assert rows[2]["label"] == ""
    assert "not a recognised image" in rows[2]["error"]
    assert f"skipped '{broken}'" in err


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
    code, out, err = run(capsys, "cache", "clear", "--older-than", "soon")
    assert code == 1
    assert "--older-than must be" in err
    code, out, _ = run(capsys, "cache", "clear", "--older-than", "1d")
    assert "deleted 0" in out
    code, out, _ = run(capsys, "cache", "clear")
    assert "deleted 96" in out


def test_bench_prints_each_rate_as_the_best_of_its_rounds(capsys):
    code, out, _ = run(
        capsys, "bench", "--folder", str(DATA), "--images", "12", "--batch-size", "4",
        "--backbones", "mobilenet_v3_small", "--no-rss", "--repeats", "2",
    )  # fmt: skip
    assert code == 0
    assert "device CPU" in out
    for column in ("(a) tutorial", "(b) model", "(c) featurize", "(d) decode", "c/b"):
        assert column in out
    assert "best of 2 rounds" in out
    rounds = next(line for line in out.splitlines() if "rounds:" in line)
    per_round = {
        part.split()[0]: [float(v) for v in part.split()[1].split("/")]
        for part in rounds.split("rounds:")[1].split(",")
    }
    assert sorted(per_round) == ["a", "b", "c", "d"]
    assert all(len(values) == 2 for values in per_round.values())
    row = next(line for line in out.splitlines() if line.startswith("| mobilenet"))
    values = [float(v) for v in row.strip("| ").split("|")[1:]]
    assert len(values) == 6
    a, b, c, d, c_over_a, c_over_b = values
    # Each printed rate is the best of its rounds (to the printed precision).
    for key, value in zip("abcd", (a, b, c, d)):
        assert value == pytest.approx(max(per_round[key]), abs=0.6)
    assert c_over_a == pytest.approx(c / a, abs=0.006)
    assert c_over_b == pytest.approx(c / b, abs=0.006)
