"""Export to ONNX, LiteRT and TF SavedModel: a folder served by its own predict.py
without featurize, Keras or scikit-learn (nor TensorFlow, but for a SavedModel),
agreeing with featurize; and runtime="onnx" in the featurizers."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from sklearn.calibration import CalibratedClassifierCV
from sklearn.linear_model import LogisticRegression
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC, LinearSVC

from featurize import (
    ExportedModel,
    ExportError,
    ExportFolderError,
    FineTunedClassifier,
    ImageFeaturizer,
    QuantizationWarning,
    TextFeaturizer,
    export,
    export_onnx,
    load_model,
    register_backbone,
)
from pipelines._cli import main

from .conftest import ROOT, keras_backend
from .test_fine_tuned import tiny_stages_cnn  # seeded: same weights in any process

TINY = "tiny_export_cnn"
SIZE = 32
FORBIDDEN = ("featurize", "pipelines", "tensorflow", "keras", "sklearn", "jax",
             "torch", "pandas")  # fmt: skip
# Runs a script with imports of FORBIDDEN (its first argument) refused, then names
# any that got in.
BLOCKER = """
import runpy, sys
FORBIDDEN = tuple(sys.argv.pop(1).split(","))
class Refuse:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in FORBIDDEN:
            raise ImportError("predict.py imported " + name)
sys.meta_path.insert(0, Refuse())
script, sys.argv = sys.argv[1], sys.argv[1:]
try:
    runpy.run_path(script, run_name="__main__")
finally:
    print("IMPORTED", sorted(m for m in sys.modules if m.split(".")[0] in FORBIDDEN),
          file=sys.stderr)
"""

needs_tf = pytest.mark.skipif(
    keras_backend() != "tensorflow", reason="ONNX conversion traces with TensorFlow"
)


@pytest.fixture(scope="module", autouse=True)
def tiny_backbone():
    from featurize._backbones import registry as _backbones

    saved = dict(_backbones._REGISTRY)
    register_backbone(TINY, tiny_stages_cnn, preprocessing="tf", input_size=SIZE,
                      overwrite=True)  # fmt: skip
    yield
    _backbones._REGISTRY.clear()
    _backbones._REGISTRY.update(saved)


def colour_images(n_per_class: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    images, labels = [], []
    for k, name in enumerate(["red", "green", "blue"]):
        batch = rng.integers(0, 90, (n_per_class, 40, 48, 3))
        batch[..., k] += 150
        images.append(batch.astype(np.uint8))
        labels += [name] * n_per_class
    return np.concatenate(images), np.array(labels)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """DIR/{train,val}/<colour>/*.png, and val's paths and labels."""
    root = tmp_path_factory.mktemp("colours")
    for split, n, seed in (("train", 8, 0), ("val", 4, 1)):
        images, labels = colour_images(n, seed)
        for k, (image, label) in enumerate(zip(images, labels)):
            (root / split / label).mkdir(parents=True, exist_ok=True)
            Image.fromarray(image).save(root / split / label / f"{k}.png")
    val = sorted((root / "val").rglob("*.png"))
    return root, [str(p) for p in val], [p.parent.name for p in val]


def featurizer(**params):
    return ImageFeaturizer(TINY, weights=None, cache=None, **params)


def fitted_pipeline(folder, head=None):
    root, _, _ = folder
    train = sorted((root / "train").rglob("*.png"))
    pipeline = make_pipeline(
        featurizer(), StandardScaler(), head or LogisticRegression()
    )
    return pipeline.fit([str(p) for p in train], [p.parent.name for p in train])


def serve(export_dir, *args, cwd=None, forbidden=FORBIDDEN):
    """Run the folder's predict.py with featurize, TF, Keras, sklearn refused."""
    script = str(export_dir / "predict.py")
    done = subprocess.run(
        [sys.executable, "-c", BLOCKER, ",".join(forbidden), script, *map(str, args)],
        capture_output=True, text=True, cwd=cwd, timeout=300,
    )  # fmt: skip
    assert "IMPORTED []" in done.stderr, done.stderr
    return done


@needs_tf
def test_image_pipeline_served_without_featurize(folder, tmp_path):
    root, paths, labels = folder
    pipeline = fitted_pipeline(folder)
    out = tmp_path / "exported"
    sizes = export_onnx(pipeline).save(out)
    assert {"model.onnx", "metadata.json", "predict.py", "requirements.txt"} <= set(
        sizes
    )
    assert not [p for p in out.iterdir() if p.suffix in (".pkl", ".joblib")]
    metadata = json.loads((out / "metadata.json").read_text())
    assert metadata["classes"] == ["blue", "green", "red"]
    assert metadata["input"]["size"] == [SIZE, SIZE]
    assert metadata["backbone"] == TINY
    assert metadata["preprocessing"] == "tf"
    assert set(metadata["files"]) == set(sizes) - {"metadata.json"}

    broken = tmp_path / "broken.jpg"
    broken.write_text("not an image")
    manifest = tmp_path / "manifest.csv"
    pd.DataFrame(
        {"label": labels + ["?"], "file": paths + [str(broken)], "note": "n"}
    ).to_csv(manifest, index=False)
    done = serve(out, manifest, "--path-column", "file", "--out", tmp_path / "p.csv")
    assert done.returncode == 1, done.stderr  # one input failed
    served = pd.read_csv(tmp_path / "p.csv", keep_default_na=False)
    # The input's columns intact (its paths first, as `path`), ours prefixed.
    assert list(served.columns) == ["path", "label", "note", "predicted_label",
        "proba_blue", "proba_green", "proba_red", "error"]  # fmt: skip
    assert served.error.iloc[-1] == "not a recognised image format"
    assert served.predicted_label.iloc[-1] == ""
    good = served.iloc[:-1]
    assert list(good.predicted_label) == list(pipeline.predict(paths))
    proba = good[["proba_blue", "proba_green", "proba_red"]].to_numpy(float)
    np.testing.assert_allclose(proba, pipeline.predict_proba(paths), atol=1e-5)
    assert (good.error == "").all()
    # Where its runtime is missing, the folder says what to install.
    missing = serve(out, paths[0], forbidden=FORBIDDEN + ("onnxruntime",))
    assert missing.returncode != 0
    assert "served by onnx" in missing.stderr
    assert "requirements.txt" in missing.stderr


@needs_tf
# skl2onnx reads SVC's deprecated probA_ (scikit-learn 1.9).
@pytest.mark.filterwarnings("ignore:Attribute `prob:FutureWarning")
@pytest.mark.parametrize(
    "head",
    [LinearSVC(), SVC(), KNeighborsClassifier(3),
     CalibratedClassifierCV(LinearSVC(), cv=3)],
    ids=["linear_svc", "svc_rbf", "knn", "calibrated_linear_svc"],
)  # fmt: skip
def test_other_heads_agree_as_a_module(folder, tmp_path, head):
    _, paths, _ = folder
    pipeline = fitted_pipeline(folder, head)
    formats = ["onnx"]
    if isinstance(head, CalibratedClassifierCV):  # pipelines' SVMs: every format
        formats += ["litert", "saved_model"]
    for format in formats:
        export(pipeline, format=format).save(tmp_path / format)
        model = ExportedModel(tmp_path / format)
        assert list(model.predict(paths)) == list(pipeline.predict(paths))
        if hasattr(pipeline, "predict_proba"):
            np.testing.assert_allclose(
                model.predict_proba(paths), pipeline.predict_proba(paths), atol=1e-4
            )
        else:
            with pytest.raises(ValueError, match="no probabilities"):
                model.predict_proba(paths)
    if isinstance(head, KNeighborsClassifier):  # no TensorFlow form: refused, named
        with pytest.raises(ExportError, match="KNeighborsClassifier.*--format onnx"):
            export(pipeline, format="litert")


@pytest.mark.parametrize("classes", [2, 4])
def test_calibrated_linear_heads_fold(classes):
    from featurize._export.heads import fold_calibrated

    rng = np.random.default_rng(0)
    x = (
        rng.normal(size=(120, 6))
        + np.repeat(np.arange(classes), 120 // classes)[:, None]
    )
    y = np.repeat(np.arange(classes), 120 // classes)
    steps = [StandardScaler(), CalibratedClassifierCV(LinearSVC(), cv=3)]
    make_pipeline(*steps).fit(x, y)
    folded = fold_calibrated(steps, 6)
    assert folded.kernels.shape == (3, 6, 1 if classes == 2 else classes)
    probe = rng.normal(size=(50, 6)) * 2
    np.testing.assert_allclose(
        folded.probabilities(probe), make_pipeline(*steps).predict_proba(probe),
        atol=1e-5,
    )  # fmt: skip
    steps = CalibratedClassifierCV(LinearSVC(), cv=3, method="isotonic")
    isotonic = [StandardScaler(), steps]
    make_pipeline(*isotonic).fit(x, y)
    assert fold_calibrated(isotonic, 6) is None  # steps, not sigmoids: ONNX only


@needs_tf
def test_featurizer_alone_and_inputs_of_every_kind(folder, tmp_path):
    _, paths, _ = folder
    alone = featurizer().fit()
    export_onnx(alone).save(tmp_path / "f")
    model = ExportedModel(tmp_path / "f")
    data = Path(paths[0]).read_bytes()
    inputs = [paths[0], data, Image.open(paths[0])]
    embeddings = model.transform(inputs)
    expected = alone.transform([paths[0]])
    np.testing.assert_allclose(embeddings, np.repeat(expected, 3, 0), atol=1e-4)
    result = model.run([paths[0], str(tmp_path / "missing.png"), b"", 3])
    assert result.errors == [
        "",
        "file not found",
        "empty bytes object (0 bytes)",
        "unsupported input type int: expected a path, bytes or a PIL image",
    ]
    assert np.isnan(result.embeddings[1:]).all()
    with pytest.raises(ValueError, match="input 1 .*file not found"):
        model.transform([paths[0], str(tmp_path / "missing.png")])


@needs_tf
def test_folder_is_checked_and_replaced_only_when_it_is_an_export(folder, tmp_path):
    export = export_onnx(featurizer().fit())
    out = tmp_path / "f"
    export.save(out)
    export.save(out)  # an earlier export is replaced
    first_release = json.loads((out / "metadata.json").read_text())
    del first_release["runtime"]
    first_release.update(format="featurize-onnx", graphs=["model"])
    (out / "metadata.json").write_text(json.dumps(first_release))
    assert ExportedModel(out).runtime == "onnx"  # its folders still serve
    export.save(out)  # and are replaced
    with open(out / "requirements.txt", "a") as handle:
        handle.write("pandas\n")
    with pytest.raises(ExportFolderError, match="requirements.txt.*changed since"):
        ExportedModel(out)
    ExportedModel(out, verify=False)  # the check can be waived
    (out / "model.onnx").unlink()
    with pytest.raises(ExportFolderError, match="model.onnx.*missing"):
        ExportedModel(out)
    other = tmp_path / "mine"
    other.mkdir()
    (other / "notes.txt").write_text("keep me")
    with pytest.raises(ExportError, match="not an export folder"):
        export.save(other)
    assert (other / "notes.txt").read_text() == "keep me"
    # Re-exporting never deletes what the user put beside an earlier export;
    # Python's bytecode of the export's own modules is the export's.
    cached = out / "__pycache__" / "_featurize_serving.cpython-311.pyc"
    cached.parent.mkdir()
    cached.write_bytes(b"bytecode")
    export.save(out)
    (out / "predictions.csv").write_text("path,label\n")
    (out / "mine" / "deep").mkdir(parents=True)
    (out / "mine" / "deep" / "model.joblib").write_text("another model")
    with pytest.raises(
        ExportError,
        match="'mine/deep/model.joblib', "
        "'predictions.csv'\\): replacing the folder would delete",
    ):
        export.save(out)
    assert (out / "predictions.csv").read_text() == "path,label\n"
    assert (out / "mine" / "deep" / "model.joblib").exists()
    assert (out / "model.onnx").exists()
    # A folder that cannot be made is named as given, not by a temporary name.
    (tmp_path / "file").write_text("")
    with pytest.raises(
        OSError,
        match="export folder '.*file/sub' cannot be written: "
        "its folder '.*file' is a file, not a folder",
    ):
        export.save(tmp_path / "file" / "sub")
    with pytest.raises(ExportError, match="quantize"):
        export_onnx(featurizer().fit(), quantize="int4")
    with pytest.raises(ExportError, match="calibration"):
        export_onnx(featurizer().fit(), quantize="int8")


@needs_tf
def test_int8_is_calibrated_and_close_to_float(folder, tmp_path):
    root, paths, _ = folder
    pipeline = fitted_pipeline(folder)
    train = [str(p) for p in sorted((root / "train").rglob("*.png"))]
    export_onnx(pipeline, quantize="int8", calibration=train).save(tmp_path / "q")
    model = ExportedModel(tmp_path / "q")
    assert model.metadata["quantize"] == "int8"
    agree = np.mean(model.predict(paths) == pipeline.predict(paths))
    assert agree >= 0.9
    gap = np.abs(model.predict_proba(paths) - pipeline.predict_proba(paths)).max()
    assert gap < 0.2


@needs_tf
def test_fine_tuned_classifier_exports(tmp_path):
    images, labels = colour_images(6)
    clf = FineTunedClassifier(
        TINY, weights=None, epochs=1, batch_size=8, validation_fraction=None,
        random_state=0, cache=None,
    ).fit(images, labels)  # fmt: skip
    files = []
    for k, image in enumerate(images[::3]):
        files.append(tmp_path / f"{k}.png")
        Image.fromarray(image).save(files[-1])
    expected = clf.predict_proba(files)
    for format in ("onnx", "litert"):
        export(clf, format=format).save(tmp_path / format)
        model = ExportedModel(tmp_path / format)
        assert (model.runtime, model.classes) == (format, list(clf.classes_))
        np.testing.assert_allclose(model.predict_proba(files), expected, atol=1e-4)
    # int8 LiteRT keeps the head inside the one graph in float.
    export(clf, format="litert", quantize="int8", calibration=files).save(
        tmp_path / "int8"
    )
    proba = ExportedModel(tmp_path / "int8").predict_proba(files)
    assert not np.allclose(proba * 256, np.round(proba * 256), atol=1e-3)
    np.testing.assert_allclose(proba.sum(axis=1), 1, atol=1e-5)


@needs_tf
def test_cli_train_export_predict_agree(folder, tmp_path, capsys):
    root, paths, _ = folder
    fast = ["--backbone", TINY, "--weights", "none", "--quiet"]
    model_file = tmp_path / "m.joblib"
    assert main(["train", str(root), *fast, "--out", str(model_file)]) == 0
    out = tmp_path / "exported"
    assert main(["export", str(model_file), str(out)]) == 0
    assert "predict.py" in capsys.readouterr().out
    assert main(["predict", str(model_file), str(root / "val"), "--out",
                 str(tmp_path / "ref.csv")]) == 0  # fmt: skip
    done = serve(out, root / "val", "--out", tmp_path / "served.csv")
    assert done.returncode == 0, done.stderr
    ref = pd.read_csv(tmp_path / "ref.csv")
    served = pd.read_csv(tmp_path / "served.csv")
    assert list(served.columns) == list(ref.columns)
    assert list(served.path) == list(ref.path)
    assert (served.label == ref.label).mean() >= 0.99
    proba = [c for c in ref.columns if c.startswith("proba_")]
    assert np.abs(served[proba].to_numpy() - ref[proba].to_numpy()).max() <= 1e-3
    # An empty folder and a thread count below one are errors, not silence.
    (tmp_path / "empty").mkdir()
    done = serve(out, tmp_path / "empty")
    assert done.returncode == 1
    assert "no inputs found" in done.stderr
    done = serve(out, root / "val", "--threads", "-3")
    assert done.returncode == 2
    assert "--threads: expected a whole number of at least 1; received '-3'" in (
        done.stderr
    )
    # A folder holding the user's files is refused before any work.
    capsys.readouterr()
    (out / "served.csv").write_text("mine")
    assert main(["export", str(model_file), str(out)]) == 1
    assert "'served.csv'" in capsys.readouterr().err
    assert (out / "served.csv").read_text() == "mine"
    # The folder is never the model file, and an unknown format is refused.
    assert main(["export", str(model_file), str(tmp_path)]) == 1
    with pytest.raises(SystemExit):
        main(["export", str(model_file), str(out), "--format", "tflite"])


@needs_tf
@pytest.mark.parametrize("format", ["onnx", "litert"])
def test_text_pipeline_served_without_featurize(tmp_path, format):
    table = pd.read_csv(ROOT / "data" / "sms_spam_sample.csv").iloc[:60]
    texts = list(table.text)
    pipeline = make_pipeline(
        TextFeaturizer(cache=None, long_text="chunks", max_length=32),
        LogisticRegression(),
    ).fit(texts, table.label)
    out = tmp_path / "text"
    sizes = export(pipeline, format=format).save(out)
    suffix = {"onnx": "onnx", "litert": "tflite"}[format]
    assert {f"encoder.{suffix}", f"head.{suffix}", "tokenizer.json"} <= set(sizes)
    rows = pd.DataFrame({"text": texts + [None], "label": list(table.label) + ["x"]})
    rows.to_csv(tmp_path / "in.csv", index=False)
    done = serve(out, tmp_path / "in.csv", "--text-column", "text",
                 "--out", tmp_path / "out.csv")  # fmt: skip
    assert done.returncode == 1, done.stderr  # the missing text
    served = pd.read_csv(tmp_path / "out.csv", keep_default_na=False)
    assert list(served.columns) == ["text", "label", "predicted_label", "proba_ham",
                                    "proba_spam", "error"]  # fmt: skip
    assert "missing value" in served.error.iloc[-1]
    good = served.iloc[:-1]
    assert list(good.predicted_label) == list(pipeline.predict(texts))
    np.testing.assert_allclose(
        good[["proba_ham", "proba_spam"]].to_numpy(float),
        pipeline.predict_proba(texts),
        atol=1e-4,
    )


@needs_tf
def test_litert_from_the_cli_is_served_without_tensorflow(folder, tmp_path):
    root, paths, _ = folder
    model_file = tmp_path / "m.joblib"
    assert main(["train", str(root), "--backbone", TINY, "--weights", "none",
                 "--quiet", "--out", str(model_file)]) == 0  # fmt: skip
    pipeline = load_model(model_file)
    out = tmp_path / "lite"
    assert main(["export", str(model_file), str(out), "--format", "litert"]) == 0
    assert "ai-edge-litert" in (out / "requirements.txt").read_text()
    assert "onnxruntime" not in (out / "requirements.txt").read_text()
    done = serve(out, root / "val", "--out", tmp_path / "served.csv",
                 forbidden=FORBIDDEN + ("onnxruntime",))  # fmt: skip
    assert done.returncode == 0, done.stderr
    served = pd.read_csv(tmp_path / "served.csv")
    assert list(served.label) == list(pipeline.predict(paths))
    proba = served[["proba_blue", "proba_green", "proba_red"]].to_numpy()
    np.testing.assert_allclose(proba, pipeline.predict_proba(paths), atol=1e-5)
    train = [str(p) for p in sorted((root / "train").rglob("*.png"))]
    int8 = export(pipeline, format="litert", quantize="int8", calibration=train)
    int8.save(tmp_path / "lite8")
    quantized = ExportedModel(tmp_path / "lite8")
    assert quantized.metadata["quantize"] == "int8"
    assert np.mean(quantized.predict(paths) == pipeline.predict(paths)) >= 0.9
    # The head stays float: its probabilities are not in steps of 1/256.
    assert quantized.metadata["graphs"] == {"model": "model.tflite",
                                            "head": "head.tflite"}  # fmt: skip
    proba = quantized.predict_proba(paths)
    np.testing.assert_allclose(proba.sum(axis=1), 1, atol=1e-5)
    assert not np.allclose(proba * 256, np.round(proba * 256), atol=1e-3)
    # Agreement with float, measured on the calibration images, in the metadata.
    measured = quantized.metadata["int8_agreement"]
    assert measured["images"] == len(train)
    expected = np.mean(
        [a == b for a, b in zip(quantized.predict(train), pipeline.predict(train))]
    )
    assert measured["labels"] == pytest.approx(expected)


@needs_tf
def test_int8_warns_when_labels_drift_and_text_int8_takes_no_calibration(
    folder, tmp_path, monkeypatch
):
    from featurize._export import agreement

    root, _, _ = folder
    pipeline = fitted_pipeline(folder)
    train = [str(p) for p in sorted((root / "train").rglob("*.png"))]
    monkeypatch.setattr(agreement, "INT8_AGREEMENT", 1.01)  # no model agrees more
    with pytest.warns(QuantizationWarning, match="agree with the float model's on"):
        int8 = export_onnx(pipeline, quantize="int8", calibration=train)
    assert 0 < int8.metadata["int8_agreement"]["labels"] <= 1
    features = export_onnx(featurizer().fit(), quantize="int8", calibration=train)
    assert features.metadata["int8_agreement"]["cosine"] > 0.9
    table = pd.read_csv(ROOT / "data" / "sms_spam_sample.csv").iloc[:20]
    text = make_pipeline(
        TextFeaturizer(cache=None, max_length=32), LogisticRegression()
    ).fit(table.text, table.label)
    with pytest.raises(ExportError, match="calibration is for image models"):
        export_onnx(text, quantize="int8", calibration=train)


@needs_tf
def test_saved_model_is_served_by_tensorflow_alone(folder, tmp_path):
    _, paths, _ = folder
    pipeline = fitted_pipeline(folder, LinearSVC())
    sizes = export(pipeline, format="saved_model").save(tmp_path / "tf")
    assert {"model/saved_model.pb", "model/variables/variables.index"} <= set(sizes)
    # TensorFlow imports Keras itself (its package depends on it); nothing else.
    allowed = tuple(m for m in FORBIDDEN if m not in ("tensorflow", "keras"))
    done = serve(tmp_path / "tf", *paths, forbidden=allowed + ("onnxruntime",))
    assert done.returncode == 0, done.stderr
    served = pd.read_csv(io.StringIO(done.stdout))
    assert list(served.label) == list(pipeline.predict(paths))
    assert not [c for c in served.columns if c.startswith("proba_")]  # scores only
    with pytest.raises(ExportError, match="int8.*litert"):
        export(pipeline, format="saved_model", quantize="int8")
    with pytest.raises(ExportError, match="calibration=\\[paths"):
        export(pipeline, format="litert", quantize="int8")
    with pytest.raises(ExportError, match="format.*received 'tflite'"):
        export(pipeline, format="tflite")


@needs_tf
def test_runtime_onnx_matches_keras_and_stores_its_graph(folder, tmp_path):
    from featurize import EmbeddingCache

    _, paths, _ = folder
    # Seeded weights have no identity: their graph is traced once per process.
    keras_side = featurizer(runtime="keras").transform(paths)
    onnx_side = featurizer(runtime="onnx").transform(paths)
    cosine = np.sum(keras_side * onnx_side, 1) / (
        np.linalg.norm(keras_side, axis=1) * np.linalg.norm(onnx_side, axis=1)
    )
    assert cosine.min() >= 0.9999
    lite = dict(backbone="efficientnet_lite0", input_size=64)
    cache = EmbeddingCache(tmp_path / "cache")
    first = ImageFeaturizer(runtime="onnx", cache=cache, **lite).transform(paths[:2])
    assert len(list((tmp_path / "cache").rglob("*.onnx"))) == 1  # stored for later
    reference = ImageFeaturizer(runtime="keras", cache=None, **lite).transform(
        paths[:2]
    )
    np.testing.assert_allclose(first, reference, atol=1e-3)


def test_runtime_choice():
    from featurize._onnx import runtime as onnx_runtime

    assert onnx_runtime.choose("keras", 10_000, True) == "keras"
    assert onnx_runtime.choose("onnx", 3, False) == "onnx"
    with pytest.raises(ValueError, match="precision"):
        onnx_runtime.choose("onnx", 3, False, precision="mixed_float16")
    if keras_backend() == "tensorflow":
        # Tracing would cost more than a small call gains.
        assert onnx_runtime.choose("auto", 3, False) == "keras"
        assert onnx_runtime.choose("auto", 3, True) == "onnx"
        assert onnx_runtime.choose("auto", 3, True, accelerator=True) == "keras"


@pytest.mark.backend
def test_other_backends_run_keras_and_say_why_onnx_cannot(folder):
    _, paths, _ = folder
    assert featurizer(runtime="auto").transform(paths[:2]).shape[0] == 2
    if keras_backend() != "tensorflow":
        with pytest.raises(ExportError, match="KERAS_BACKEND=tensorflow"):
            featurizer(runtime="onnx").transform(paths[:2])
