"""Fine-tuning speed: steady training images/s against embedding images/s, and a
whole default fit against its ideal time, side by side in one process.

Run: .venv/bin/python benchmarks/fine_tuning_speed.py [FOLDER] [--epochs N]

FOLDER holds ``<class>/*.jpg`` (default: ``../shared/datasets/hymenoptera/train``,
else the project's ``data/hymenoptera/train``). EfficientNet-Lite0 at 224 px, cache
off, the same images throughout:

1. **embedding**: ``ImageFeaturizer(runtime=...).transform`` from the files, for
   Keras (the engine training runs on) and onnxruntime (what the linear probe uses
   on a CPU); each the best of 2 timed passes after a warm-up pass (every batch
   shape traced).
2. **steady training**: ``FineTunedClassifier(unfreeze_every=0)``, every stage
   trainable from the first step, the default augmentation; images/s of the
   epochs after the first (which traces the step).
3. **default fit**: ``FineTunedClassifier()`` with its defaults. Every training
   step is timed; a step's ideal cost is the median step of its epoch (the first
   step of each phase traces a new graph, a partial last batch is cheaper: both
   are counted at the median). The fit's ideal time is one onnxruntime pass over
   the images at its steady rate (the probe's features) plus the sum of the ideal
   steps; everything else (decoding, the second cut layer, the probe's
   cross-validation, tracing, Python) is the overhead the ratio shows.

Prints a table and one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared" / "datasets" / "hymenoptera" / "train"
LOCAL = ROOT / "data" / "hymenoptera" / "train"


def images(folder: Path):
    suffixes = {".jpg", ".jpeg", ".png"}
    files = sorted(p for p in folder.glob("*/*") if p.suffix.lower() in suffixes)
    return [str(p) for p in files], [p.parent.name for p in files]


def embedding_rate(paths, runtime: str) -> float:
    from featurize import ImageFeaturizer

    featurizer = ImageFeaturizer(cache=None, runtime=runtime)
    featurizer.transform(paths)  # traces every batch shape
    best = float("inf")
    for _ in range(2):
        started = time.perf_counter()
        featurizer.transform(paths)
        best = min(best, time.perf_counter() - started)
    return len(paths) / best


def steady_training_rate(paths, labels, epochs: int) -> float:
    from featurize import FineTunedClassifier

    clf = FineTunedClassifier(
        cache=None, unfreeze_every=0, epochs=epochs, random_state=0
    ).fit(paths, labels)
    steady = clf.history_[clf.history_.epoch >= 2]
    return float(len(paths) * len(steady) / steady.seconds.sum())


def default_fit(paths, labels) -> dict:
    import featurize._tuning.loop as loop
    from featurize import FineTunedClassifier

    steps: list[tuple[int, float]] = []
    epoch = [0]
    original_step, original_epoch = loop.train_step, loop.run_epoch

    def timed_step(*args, **kwargs):
        started = time.perf_counter()
        logs = original_step(*args, **kwargs)
        float(logs["loss"])  # the step has finished only once its loss is read
        steps.append((epoch[0], time.perf_counter() - started))
        return logs

    def counted_epoch(*args, **kwargs):
        epoch[0] += 1
        return original_epoch(*args, **kwargs)

    loop.train_step, loop.run_epoch = timed_step, counted_epoch
    try:
        started = time.perf_counter()
        clf = FineTunedClassifier(cache=None, random_state=0).fit(paths, labels)
        seconds = time.perf_counter() - started
    finally:
        loop.train_step, loop.run_epoch = original_step, original_epoch
    by_epoch: dict[int, list[float]] = {}
    for k, duration in steps:
        by_epoch.setdefault(k, []).append(duration)
    ideal_steps = sum(len(d) * float(np.median(d)) for d in by_epoch.values())
    return {
        "seconds": seconds,
        "ideal_training_seconds": ideal_steps,
        "training_seconds": float(clf.history_.seconds.iloc[1:].sum()),
        "probe_seconds": float(clf.history_.seconds.iloc[0]),
        "epochs": len(by_epoch),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", nargs="?", type=Path)
    parser.add_argument("--epochs", type=int, default=3, help="steady-rate epochs")
    args = parser.parse_args()
    folder = args.folder or (SHARED if SHARED.is_dir() else LOCAL)
    paths, labels = images(folder)
    keras_rate = embedding_rate(paths, "keras")
    onnx_rate = embedding_rate(paths, "onnx")
    training_rate = steady_training_rate(paths, labels, args.epochs)
    fit = default_fit(paths, labels)
    ideal = len(paths) / onnx_rate + fit["ideal_training_seconds"]
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
        text=True,
    ).stdout.strip()  # fmt: skip
    row = {
        "images": len(paths),
        "embedding_keras_per_s": round(keras_rate, 1),
        "embedding_onnx_per_s": round(onnx_rate, 1),
        "training_per_s": round(training_rate, 1),
        "training_vs_keras_embedding": round(training_rate / keras_rate, 3),
        "training_vs_onnx_embedding": round(training_rate / onnx_rate, 3),
        "fit_seconds": round(fit["seconds"], 1),
        "fit_probe_seconds": round(fit["probe_seconds"], 1),
        "fit_training_seconds": round(fit["training_seconds"], 1),
        "fit_ideal_seconds": round(ideal, 1),
        "fit_vs_ideal": round(fit["seconds"] / ideal, 3),
        "machine": f"{platform.machine()} x{len(os.sched_getaffinity(0))}",
        "commit": commit,
        "date": time.strftime("%Y-%m-%d"),
    }
    for name, value in row.items():
        print(f"{name:>30}  {value}", file=sys.stderr)
    print(json.dumps(row))


if __name__ == "__main__":
    main()
