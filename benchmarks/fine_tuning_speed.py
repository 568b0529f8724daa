"""Fine-tuning speed: steady training images/s against embedding images/s, and a
whole default fit against its ideal time, side by side in one process.

Run: .venv/bin/python benchmarks/fine_tuning_speed.py [FOLDER]

FOLDER holds ``<class>/*.jpg`` (default: ``../shared/datasets/hymenoptera/train``,
else the project's ``data/hymenoptera/train``). EfficientNet-Lite0 at 224 px, cache
off, the same images throughout:

1. **embedding**: ``ImageFeaturizer(runtime=...).transform`` from the files, for
   Keras (the engine training runs on) and onnxruntime (what the linear probe uses
   on a CPU); each the best of 2 timed passes after a warm-up pass (every batch
   shape traced).
2. **default fit**: ``FineTunedClassifier()`` with its defaults, timed whole.
3. **steady training**, per phase: for each number k of unfrozen stages the
   default fit went through, ``FineTunedClassifier(unfreeze=k, unfreeze_every=0,
   epochs=2)``; the second epoch's images/s is phase k's steady rate (the first
   traces the training step). With every stage unfrozen it is *the* steady
   training rate.

The default fit's ideal time is one onnxruntime pass over the images at its steady
rate (the probe's features) plus each epoch at its phase's steady rate; the rest
(decoding, the second candidate cut layer, the probe's cross-validation, tracing
each phase's step, Python) is the overhead ``fit_vs_ideal`` shows. Prints a table
and one JSON line.
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


def default_fit(paths, labels):
    from featurize import FineTunedClassifier

    started = time.perf_counter()
    clf = FineTunedClassifier(cache=None, random_state=0).fit(paths, labels)
    return clf, time.perf_counter() - started


def phase_rate(paths, labels, unfrozen: int) -> float:
    from featurize import FineTunedClassifier

    clf = FineTunedClassifier(
        cache=None, unfreeze=unfrozen, unfreeze_every=0, epochs=2, random_state=0
    ).fit(paths, labels)
    return float(clf.history_.images_per_second.iloc[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", nargs="?", type=Path)
    args = parser.parse_args()
    folder = args.folder or (SHARED if SHARED.is_dir() else LOCAL)
    paths, labels = images(folder)
    keras_rate = embedding_rate(paths, "keras")
    onnx_rate = embedding_rate(paths, "onnx")
    clf, seconds = default_fit(paths, labels)
    epochs = clf.history_[clf.history_.epoch > 0]
    rates = {
        k: phase_rate(paths, labels, k) for k in sorted(set(epochs.unfrozen_stages))
    }
    training_rate = rates[max(rates)]
    ideal = (len(paths) / onnx_rate) + sum(
        len(paths) / rates[k] for k in epochs.unfrozen_stages
    )
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
        "phase_rates_per_s": {k: round(v, 1) for k, v in rates.items()},
        "fit_seconds": round(seconds, 1),
        "fit_probe_seconds": round(float(clf.history_.seconds.iloc[0]), 1),
        "fit_training_seconds": round(float(epochs.seconds.sum()), 1),
        "fit_ideal_seconds": round(ideal, 1),
        "fit_vs_ideal": round(seconds / ideal, 3),
        "machine": f"{platform.machine()} x{len(os.sched_getaffinity(0))}",
        "commit": commit,
        "date": time.strftime("%Y-%m-%d"),
    }
    for name, value in row.items():
        print(f"{name:>30}  {value}", file=sys.stderr)
    print(json.dumps(row))


if __name__ == "__main__":
    main()
