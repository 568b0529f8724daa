"""Anomaly detection from normal images only: planted defects are found and the map
peaks on them, the threshold holds its false-alarm rate on held-out normal images,
the scikit-learn surface, the byte cap, and the command line end to end."""

from __future__ import annotations

import gc
import subprocess
import sys
import weakref
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from sklearn.metrics import roc_auc_score

from featurize import AnomalyDetector, load_model, release_models
from pipelines._cli import main

from .conftest import needs_chromium, rendered

SIZE = 80
SETTINGS = {"input_size": 96, "random_state": 0, "false_alarm_rate": 0.15}


def texture(rng) -> np.ndarray:
    """A grey stripe texture with random phase and noise: every image differs."""
    y, x = np.mgrid[0:SIZE, 0:SIZE]
    phase = rng.uniform(0, 2 * np.pi)
    base = 128 + 40 * np.sin(x / 3.0 + phase) + rng.normal(0, 6, (SIZE, SIZE))
    return np.repeat(base.clip(0, 255)[..., None], 3, axis=2).astype(np.uint8)


def with_defect(image: np.ndarray, rng):
    """``image`` with a dark square planted; the square's box."""
    side = 14
    top, left = (int(v) for v in rng.integers(8, SIZE - side - 8, 2))
    out = image.copy()
    out[top : top + side, left : left + side] = 20
    return out, (top, left, side)


@pytest.fixture(scope="module")
def sets():
    rng = np.random.default_rng(0)
    normal = np.stack([texture(rng) for _ in range(80)])
    planted = [with_defect(texture(rng), rng) for _ in range(10)]
    return normal, planted


@pytest.fixture(scope="module")
def detector(sets, tmp_path_factory):
    normal, _ = sets
    cache = tmp_path_factory.mktemp("cache")
    return AnomalyDetector(cache=cache, **SETTINGS).fit(normal[:30])


@pytest.mark.backend
def test_planted_defects_are_found_and_the_map_peaks_on_them(detector, sets):
    normal, planted = sets
    defects = np.stack([image for image, _ in planted])
    result = detector.inspect(np.concatenate([normal[30:40], defects]), maps=True)
    truth = np.r_[np.zeros(10), np.ones(10)]
    assert roc_auc_score(truth, result.scores) >= 0.95
    assert (result.labels[10:] == -1).mean() >= 0.9
    peaks_inside = 0
    for values, (_, (top, left, side)) in zip(result.maps[10:], planted):
        assert values.shape == (SIZE, SIZE)
        row, col = np.unravel_index(np.argmax(values), values.shape)
        margin = 4
        peaks_inside += (top - margin <= row < top + side + margin) and (
            left - margin <= col < left + side + margin
        )
    assert peaks_inside >= 9


def test_the_threshold_holds_its_false_alarm_rate_on_held_out_normals(sets, tmp_path):
    normal, _ = sets
    settings = {**SETTINGS, "false_alarm_rate": 0.2, "holdout": 0.5}
    detector = AnomalyDetector(cache=tmp_path, **settings).fit(normal[:40])
    assert len(detector.holdout_scores_) == 20
    # Split conformal: at most the rate on the threshold's own sample...
    assert np.mean(detector.holdout_scores_ > 1.0) <= 0.2
    # ...and about the rate on normal images it has never seen.
    fresh = detector.inspect(normal[40:]).scores
    assert 0.0 < np.mean(fresh > 1.0) <= 0.4


def test_scikit_learn_surface_and_a_saved_detector(detector, sets, tmp_path):
    import joblib

    normal, planted = sets
    images = np.concatenate([normal[30:33], planted[0][0][None]])
    scores = detector.inspect(images).scores
    np.testing.assert_allclose(detector.score_samples(images), -scores)
    assert detector.offset_ == -1.0
    decision = detector.decision_function(images)
    np.testing.assert_array_equal(
        detector.predict(images), np.where(decision < 0, -1, 1)
    )
    path = tmp_path / "detector.joblib"
    joblib.dump(detector, path)
    loaded = load_model(path)
    np.testing.assert_allclose(loaded.inspect(images).scores, scores, rtol=1e-6)
    # The saved file holds the bank, not the images.
    assert path.stat().st_size < detector.bank_.nbytes + 200_000
    # A second scoring of the same images costs no forward pass.
    assert detector.featurizer().embed(images).stats["computed"] == 0


def test_the_bank_keeps_within_its_byte_cap(sets):
    normal, _ = sets
    cap = 50_000
    detector = AnomalyDetector(max_bank_bytes=cap, cache=None, **SETTINGS)
    detector.fit(normal[:30])
    assert 0 < detector.bank_.nbytes <= cap
    assert detector.bank_.shape[1] == detector.grid_shape_[2]
    # Its network is derived state: released on request, rebuilt on use.
    held = weakref.ref(detector.featurizer().keras_model())
    release_models()
    gc.collect()
    assert held() is None
    assert detector.predict(normal[30:32]).shape == (2,)


def test_global_method_scores_whole_images(sets):
    normal, planted = sets
    detector = AnomalyDetector(method="global", cache=None, **SETTINGS)
    detector.fit(normal[:30])
    assert detector.grid_shape_[:2] == (1, 1)
    maps = detector.anomaly_maps(normal[30:31])
    assert maps[0].shape == (SIZE, SIZE)
    assert np.ptp(maps[0]) < 1e-5
    with pytest.raises(ValueError, match="layers"):
        AnomalyDetector(method="global", layers=["block3b_add"]).fit(normal[:4])


def test_unreadable_images_are_named_or_reported(detector, tmp_path):
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not an image")
    good = tmp_path / "good.png"
    Image.fromarray(texture(np.random.default_rng(5))).save(good)
    with pytest.raises(ValueError, match="broken.png"):
        detector.inspect([str(good), str(broken)])
    result = detector.inspect([str(good), str(broken)], on_error="nan", maps=True)
    assert np.isnan(result.scores[1])
    assert result.labels[1] == 0
    # In training: named, or left out with a warning where the caller asked.
    paths = [str(good)] * 4 + [str(broken)]
    settings = {**SETTINGS, "false_alarm_rate": 0.5, "cache": None}
    with pytest.raises(ValueError, match="broken.png"):
        AnomalyDetector(**settings).fit(paths)
    left_out = "1 of 5 training images could not be used and were left out"
    with pytest.warns(UserWarning, match=left_out):
        AnomalyDetector(on_error="nan", **settings).fit(paths)
    assert result.maps[1] is None
    assert result.failures["input"].iloc[0].endswith("broken.png")


@pytest.fixture(scope="module")
def mvtec(sets, tmp_path_factory):
    """A tiny folder in MVTec AD's layout, with masks."""
    normal, planted = sets
    root = tmp_path_factory.mktemp("mvtec")
    for folder in ("train/good", "test/good", "test/spot", "ground_truth/spot"):
        (root / folder).mkdir(parents=True)
    for k, image in enumerate(normal[:24]):
        Image.fromarray(image).save(root / "train" / "good" / f"{k:03d}.png")
    for k, image in enumerate(normal[50:56]):
        Image.fromarray(image).save(root / "test" / "good" / f"{k:03d}.png")
    for k, (image, (top, left, side)) in enumerate(planted[:6]):
        Image.fromarray(image).save(root / "test" / "spot" / f"{k:03d}.png")
        mask = np.zeros((SIZE, SIZE), np.uint8)
        mask[top : top + side, left : left + side] = 255
        Image.fromarray(mask).save(root / "ground_truth" / "spot" / f"{k:03d}_mask.png")
    return root


def test_command_line_train_then_predict_with_maps(mvtec, tmp_path, capsys):
    model = tmp_path / "detector.joblib"
    report = tmp_path / "report.html"
    cache = ["--cache", str(tmp_path / "cache"), "--input-size", "96"]
    train = ["train", str(mvtec), "--anomaly", "--out", str(model), "--report",
             str(report), "--false-alarm-rate", "0.2", "--quiet", *cache]  # fmt: skip
    code = main(train)
    said = capsys.readouterr().out
    assert code == 0, said
    assert "image AUROC" in said
    assert "pixel AUROC" in said
    assert report.exists()
    scores = tmp_path / "scores.csv"
    code = main(["predict", str(model), str(mvtec / "test"), "--out", str(scores),
                 "--maps", str(tmp_path / "maps"), "--overlay", str(tmp_path / "over"),
                 "--batch-size", "4"])  # fmt: skip
    assert code == 0, capsys.readouterr().err
    table = pd.read_csv(scores)
    assert {"path", "score", "label", "error"} <= set(table.columns)
    assert set(table["label"]) <= {"normal", "anomaly"}
    spots = table[table["path"].str.contains("spot")]
    goods = table[~table["path"].str.contains("spot")]
    assert spots["score"].min() > goods["score"].median()
    grey = Image.open(tmp_path / "maps" / "spot" / "000.png")
    assert grey.mode == "L"
    assert grey.size == (SIZE, SIZE)
    assert Image.open(tmp_path / "over" / "good" / "000.png").mode == "RGB"
    # Exported, then served by predict.py alone: the same ranking, labels and maps.
    served_folder = tmp_path / "served"
    assert main(["export", str(model), str(served_folder)]) == 0
    served_csv = tmp_path / "served.csv"
    run = subprocess.run(
        [sys.executable, str(served_folder / "predict.py"), str(mvtec / "test"),
         "--out", str(served_csv), "--maps", str(tmp_path / "served_maps")],
        capture_output=True, text=True,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    served = pd.read_csv(served_csv).set_index("path").loc[table["path"]]
    assert list(np.argsort(served["score"].to_numpy())) == list(
        np.argsort(table["score"].to_numpy())
    )
    assert list(served["label"]) == list(table["label"])
    spot = Path("spot") / "000.png"
    ours = np.asarray(Image.open(tmp_path / "maps" / spot), float)
    theirs = np.asarray(Image.open(tmp_path / "served_maps" / spot), float)
    assert np.abs(ours - theirs).max() <= 1
    # What would change the scores is refused on a saved detector.
    # (How images are read, --batch-size above, is free to change.)
    code = main(["predict", str(model), str(mvtec / "test"), "--input-size", "64"])
    assert code == 1
    assert "input_size=(64, 64) (the model's: (96, 96))" in capsys.readouterr().err
    code = main(["predict", str(model), str(mvtec / "test"), "--pooling", "max"])
    assert code == 1
    assert "pooling set a classifier's embedding" in capsys.readouterr().err


def test_a_folder_of_good_images_alone_trains_without_evaluation(mvtec, capsys):
    code = main(["train", str(mvtec / "train" / "good"), "--anomaly", "--quiet",
                 "--false-alarm-rate", "0.2",
                 "--input-size", "96", "--cache", "none"])  # fmt: skip
    said = capsys.readouterr().out
    assert code == 0
    assert "nothing to evaluate" in said


@needs_chromium
def test_the_report_renders(mvtec, tmp_path, capsys):
    report = tmp_path / "report.html"
    main(["train", str(mvtec), "--anomaly", "--report", str(report), "--quiet",
          "--false-alarm-rate", "0.2",
          "--input-size", "96", "--cache", str(tmp_path / "cache")])  # fmt: skip
    dom = rendered(report)
    assert "loaded 24 of 24" in dom  # 12 test images, each with its overlay
    assert "Image AUROC" in dom


def test_the_exported_folder_agrees_with_featurize(detector, sets, tmp_path):
    from featurize import ExportedModel, export

    normal, planted = sets
    folder = tmp_path / "exported"
    export(detector).save(folder)
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    images = [normal[40], normal[41], planted[0][0], planted[1][0]]
    paths = []
    for k, image in enumerate(images):
        Image.fromarray(image).save(inputs / f"{k}.png")
        paths.append(str(inputs / f"{k}.png"))
    ours = detector.inspect(paths, maps=True)
    served = ExportedModel(folder).run(paths, maps=True)
    np.testing.assert_allclose(served.scores, ours.scores, rtol=1e-3, atol=1e-4)
    assert list(np.argsort(served.scores)) == list(np.argsort(ours.scores))
    assert served.labels == ["anomaly" if s > 1 else "normal" for s in ours.scores]
    np.testing.assert_allclose(served.maps[2], ours.maps[2], rtol=1e-3, atol=1e-3)
    # predict.py with numpy, Pillow and onnxruntime: scores, labels and maps.
    out = tmp_path / "served.csv"
    run = subprocess.run(
        [sys.executable, str(folder / "predict.py"), str(inputs), "--out", str(out),
         "--maps", str(tmp_path / "maps")],
        capture_output=True, text=True,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    table = pd.read_csv(out)
    assert list(table.columns) == ["path", "score", "label", "error"]
    assert Image.open(tmp_path / "maps" / "2.png").size == (SIZE, SIZE)
    with pytest.raises(ValueError, match="float ONNX"):
        export(detector, format="litert")
