"""Serving without featurize, and runtime="onnx": what export buys, side by side.

Run: .venv/bin/python benchmarks/export.py HYMENOPTERA [--serve-python PY]
     [--serve-tf-python PY]
     [--parts runtime,end_to_end,exported] [--repeats 3]

Parts, each printed as Markdown for BENCHMARKS.md:

runtime
    The featurizers' networks on inputs already decoded (arrays of the input size;
    256 texts for MiniLM), images or texts per second with Keras on TensorFlow,
    Keras on JAX (a subprocess with KERAS_BACKEND=jax) and onnxruntime, batch 32,
    best of ``repeats`` rounds after a warm-up on every batch shape; cosine of the
    onnxruntime embeddings to Keras's. EfficientNet-Lite and MiniLM run their real
    weights; keras.applications families run ``weights=None`` (the same compute).
end_to_end
    ``ImageFeaturizer`` from the files of HYMENOPTERA/val, cache off: runtime
    "keras" against "onnx", interleaved rounds.
exported
    EfficientNet-Lite0 + logistic regression trained on HYMENOPTERA/train,
    exported to ONNX and LiteRT as float and int8 (calibrated on the training
    images) and to a TF SavedModel: the exported ``predict.py``'s model run by
    ``--serve-python`` (a venv holding only numpy, Pillow, onnxruntime and
    ai-edge-litert; the SavedModel by ``--serve-tf-python``, a venv holding only
    numpy, Pillow and TensorFlow) against
    ``pipelines.predict_rows`` (what ``featurize predict`` runs) on
    HYMENOPTERA/val: label agreement, largest probability gap, accuracy, model
    size, single-image latency and batch throughput.

Uses featurize's public API only.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import numpy as np

IMAGE_BACKBONES = (
    ("efficientnet_lite0", "imagenet"),
    ("efficientnet_lite1", "imagenet"),
    ("efficientnet_lite2", "imagenet"),
    ("mobilenet_v2", None),
    ("resnet50", None),
    ("efficientnet_b0", None),
)
BATCH = 32
EXPORTS = (("onnx", None), ("onnx", "int8"), ("litert", None), ("litert", "int8"),
           ("saved_model", None))  # fmt: skip
N_IMAGES = 64
N_TEXTS = 256
LATENCY_CALLS = 20
# Timed in a subprocess on JAX: the same inputs, the same warm-up and rounds.
_JAX_SCRIPT = """
import json, sys, time
import numpy as np
from featurize import ImageFeaturizer, TextFeaturizer, get_backbone
spec = json.loads(sys.argv[1])
if spec["kind"] == "text":
    texts = json.load(open(spec["texts"]))
    est = TextFeaturizer(cache=None, batch_size=spec["batch"])
    data = texts
else:
    est = ImageFeaturizer(spec["backbone"], weights=spec["weights"], cache=None,
                          batch_size=spec["batch"])
    size = get_backbone(spec["backbone"]).input_size
    data = np.random.default_rng(0).integers(0, 256, (spec["n"], *size, 3)).astype(
        np.uint8)
est.transform(data)
best = 0.0
for _ in range(spec["repeats"]):
    start = time.perf_counter()
    est.transform(data)
    best = max(best, len(data) / (time.perf_counter() - start))
print(json.dumps({"rate": best}))
"""
# Times the exported folder in the serving venv: latency of one image, throughput
# of all of them, and the rows predict.py writes.
_SERVE_SCRIPT = f"""
import json, statistics, sys, time
sys.path.insert(0, sys.argv[1])
from predict import Model
paths = json.load(open(sys.argv[2]))
model = Model(sys.argv[1])
model.run(paths[:1])
single = []
for path in paths[:{LATENCY_CALLS}]:
    start = time.perf_counter()
    model.run([path])
    single.append(time.perf_counter() - start)
model.run(paths)
start = time.perf_counter()
result = model.run(paths)
rate = len(paths) / (time.perf_counter() - start)
print(json.dumps({{"latency_ms": 1000 * statistics.median(single), "rate": rate,
    "labels": result.labels, "proba": result.probabilities.tolist(),
    "imported": sorted(m.split(".")[0] for m in sys.modules
                       if m.split(".")[0] in ("featurize", "tensorflow", "keras",
                                              "sklearn", "jax", "torch"))}}))
"""


def machine() -> str:
    import keras
    import onnxruntime

    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    return (
        f"{platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}, Keras {keras.__version__}, onnxruntime "
        f"{onnxruntime.__version__}; commit {commit or '?'}; {date.today()}"
    )


def cosine(a, b) -> float:
    num = np.sum(a * b, axis=1)
    den = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    live = den > 1e-12  # rows of zeros on both sides (dead random units) agree
    return float(np.min(num[live] / den[live])) if live.any() else 1.0


def best_rates(estimators: dict, data, repeats: int) -> tuple[dict, dict]:
    """Warm each estimator, then time interleaved rounds; best rate each."""
    outputs = {name: est.transform(data) for name, est in estimators.items()}
    rates = {name: 0.0 for name in estimators}
    for _ in range(repeats):
        for name, est in estimators.items():
            start = time.perf_counter()
            est.transform(data)
            rates[name] = max(rates[name], len(data) / (time.perf_counter() - start))
    return rates, outputs


def jax_rate(spec: dict) -> float | None:
    env = {**os.environ, "KERAS_BACKEND": "jax", "TF_CPP_MIN_LOG_LEVEL": "3"}
    done = subprocess.run(
        [sys.executable, "-c", _JAX_SCRIPT, json.dumps(spec)],
        capture_output=True, text=True, env=env,
    )  # fmt: skip
    if done.returncode:
        print(f"  (JAX run failed: {done.stderr.strip().splitlines()[-1:]})")
        return None
    return json.loads(done.stdout.strip().splitlines()[-1])["rate"]


def runtime_table(repeats: int, networks=None, out=print) -> None:
    from featurize import ImageFeaturizer, TextFeaturizer, get_backbone

    out("| network | keras-TF /s | keras-JAX /s | onnx /s | onnx / TF | onnx / JAX "
        "| cosine |")  # fmt: skip
    out("|---|---|---|---|---|---|---|")
    for name, weights in IMAGE_BACKBONES:
        if networks and name not in networks:
            continue
        common = dict(weights=weights, cache=None, batch_size=BATCH)
        pair = {
            "keras": ImageFeaturizer(name, runtime="keras", **common),
            "onnx": ImageFeaturizer(name, runtime="onnx", **common),
        }
        size = get_backbone(name).input_size
        rng = np.random.default_rng(0)
        data = rng.integers(0, 256, (N_IMAGES, *size, 3)).astype(np.uint8)
        rates, outputs = best_rates(pair, data, repeats)
        jax = jax_rate(dict(kind="image", backbone=name, weights=weights, n=N_IMAGES,
                            batch=BATCH, repeats=repeats))  # fmt: skip
        _row(out, f"{name} ({'imagenet' if weights else 'weights=None'})", rates,
             jax, cosine(outputs["keras"], outputs["onnx"]))  # fmt: skip
    if networks and "minilm_l6" not in networks:
        return
    texts = _texts()
    pair = {
        runtime: TextFeaturizer(cache=None, batch_size=BATCH, runtime=runtime)
        for runtime in ("keras", "onnx")
    }
    rates, outputs = best_rates(pair, texts, repeats)
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as handle:
        json.dump(texts, handle)
    jax = jax_rate(dict(kind="text", texts=handle.name, batch=BATCH, repeats=repeats))
    _row(
        out, "minilm_l6 (texts)", rates, jax, cosine(outputs["keras"], outputs["onnx"])
    )


def _row(out, label, rates, jax, cos) -> None:
    tf, onnx = rates["keras"], rates["onnx"]
    jax_text = "-" if jax is None else f"{jax:.1f}"
    over_jax = "-" if jax is None else f"{onnx / jax:.2f}"
    out(f"| {label} | {tf:.1f} | {jax_text} | {onnx:.1f} | {onnx / tf:.2f} | "
        f"{over_jax} | {cos:.7f} |")  # fmt: skip


def _texts() -> list[str]:
    import pandas as pd

    path = Path(__file__).resolve().parents[1] / "data" / "sms_spam_sample.csv"
    texts = pd.read_csv(path).text.astype(str).tolist()
    return (texts * (N_TEXTS // len(texts) + 1))[:N_TEXTS]


def val_files(folder, split: str) -> tuple[list[str], list[str]]:
    files = sorted(p for p in (Path(folder) / split).rglob("*.jpg"))
    return [str(p) for p in files], [p.parent.name for p in files]


def end_to_end(folder, repeats: int, out=print) -> None:
    from featurize import ImageFeaturizer

    paths, _ = val_files(folder, "val")
    pair = {
        runtime: ImageFeaturizer(runtime=runtime, cache=None)
        for runtime in ("keras", "onnx")
    }
    rates, outputs = best_rates(pair, paths, repeats)
    ratio = rates["onnx"] / rates["keras"]
    out(f"EfficientNet-Lite0 from {len(paths)} JPEG files, cache off, best of "
        f"{repeats} interleaved rounds: keras {rates['keras']:.1f} img/s, onnx "
        f"{rates['onnx']:.1f} img/s, onnx/keras **{ratio:.2f}x**"
        f"; cosine {cosine(outputs['keras'], outputs['onnx']):.7f}")  # fmt: skip


def exported(folder, serve_python: str, serve_tf_python: str, out=print) -> None:
    import pandas as pd
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    from featurize import ImageFeaturizer, export
    from pipelines import predict_rows

    train, train_labels = val_files(folder, "train")
    paths, labels = val_files(folder, "val")
    # The reference is Keras: with runtime="auto" the featurizer would take the
    # onnxruntime graph another part of this script left in the process.
    model = make_pipeline(
        ImageFeaturizer(cache=None, runtime="keras"), LogisticRegression(max_iter=1000)
    )
    model.fit(train, train_labels)
    work = Path(tempfile.mkdtemp(prefix="featurize-export-bench-"))
    listing = work / "paths.json"
    listing.write_text(json.dumps(paths))
    # What featurize predict does, in steady state (its second call timed).
    rows = pd.DataFrame({"path": paths})
    predict_rows(model, rows, "path")
    start = time.perf_counter()
    reference = predict_rows(model, rows, "path").frame
    featurize_rate = len(paths) / (time.perf_counter() - start)
    single = []
    for path in paths[:LATENCY_CALLS]:
        start = time.perf_counter()
        model.predict_proba([path])
        single.append(time.perf_counter() - start)
    proba = reference[[f"proba_{c}" for c in model.classes_]].to_numpy()
    out(
        f"Lite0 + logistic regression, trained on {len(train)} images, served on "
        f"{len(paths)} (serving venv: `{serve_python}`)."
    )
    out("")
    out("| model | model file | label agreement | max prob gap | accuracy | "
        "1 image (ms, median) | batch img/s |")  # fmt: skip
    out("|---|---|---|---|---|---|---|")
    accuracy = np.mean(reference.label.to_numpy() == np.array(labels))
    out(
        f"| featurize predict (Keras, TF) | joblib + TF weights | - | - | "
        f"{accuracy:.3f} | {1000 * np.median(single):.1f} | {featurize_rate:.1f} |"
    )
    for format, quantize in EXPORTS:
        target = work / f"{format}-{quantize or 'float'}"
        written = export(model, format=format, quantize=quantize,
                         calibration=train if quantize else None)  # fmt: skip
        sizes = written.save(target)
        graph = sum(v for k, v in sizes.items() if k.split("/")[0] in ("model",
                    "model.onnx", "model.tflite"))  # fmt: skip
        python = serve_tf_python if format == "saved_model" else serve_python
        done = subprocess.run(
            [python, "-c", _SERVE_SCRIPT, str(target), str(listing)],
            capture_output=True, text=True,
        )  # fmt: skip
        if done.returncode:
            raise RuntimeError(done.stderr)
        served = json.loads(done.stdout.strip().splitlines()[-1])
        runtime = {"tensorflow", "keras"} if format == "saved_model" else set()
        assert not set(served["imported"]) - runtime, served["imported"]
        agree = np.mean(np.array(served["labels"]) == reference.label.to_numpy())
        gap = np.abs(np.array(served["proba"]) - proba).max()
        acc = np.mean(np.array(served["labels"]) == np.array(labels))
        out(f"| {format} {quantize or 'float32'} | {graph / 2**20:.1f} "
            f"MiB | {agree:.3f} | {gap:.1e} | {acc:.3f} | "
            f"{served['latency_ms']:.1f} | {served['rate']:.1f} |")  # fmt: skip


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", help="hymenoptera: train/ and val/ class folders")
    parser.add_argument("--serve-python", default=sys.executable)
    parser.add_argument(
        "--serve-tf-python", default=sys.executable,
        help="a venv with only numpy, Pillow and TensorFlow, to serve the SavedModel",
    )  # fmt: skip
    parser.add_argument("--parts", default="runtime,end_to_end,exported")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--networks", default=None,
        help="comma-separated rows of the runtime table (default: all)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    parts = args.parts.split(",")
    print(f"Machine: {machine()}")
    if "runtime" in parts:
        runtime_table(args.repeats, args.networks and args.networks.split(","))
    if "end_to_end" in parts:
        end_to_end(args.folder, args.repeats)
    if "exported" in parts:
        exported(args.folder, args.serve_python, args.serve_tf_python)
    return 0


if __name__ == "__main__":
    sys.exit(main())
