"""Fine-tuning vs a tuned frozen baseline, and the ablations behind the defaults.

Run: .venv/bin/python benchmarks/fine_tuning.py DATASET [--set NAME=VALUE ...]
     .venv/bin/python benchmarks/fine_tuning.py DATASET --frozen [--split N]

DATASET is ``dtd10`` (fixed stratified split: per class, a permutation by
``numpy.random.default_rng(0)`` of the sorted files, the first 60 train, the next 60
test), ``digits`` (scikit-learn's 8x8 digits as uint8 images, 30 per class train by a
seeded stratified split, the rest test), ``chest_xray`` (its own patient-disjoint
train/test split, 200 and 300 per class) or ``hymenoptera`` (its own train/val split).
``--frozen`` runs the baseline: EfficientNet-Lite0 embeddings (final and penultimate
stage), StandardScaler + LogisticRegression with C in {0.01, 0.1, 1, 10} chosen by
5-fold CV on the training part. Otherwise ``FineTunedClassifier`` with its defaults,
changed by ``--set`` (values are Python literals). Prints one JSON line: accuracy
(and with ``tta="flip"``, read at prediction: one fit scores both), wall time,
training images/s (images seen by training steps over the seconds spent in them),
peak RSS. Each configuration runs in its own process so peak RSS is its own.
``--split N`` draws another split (seed N instead of 0; chest_xray and hymenoptera
pool their two parts and draw as many per class to train as their own split has:
chest_xray has one image per patient, so every split stays patient-disjoint): data
the defaults were not chosen on.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
DATASETS = ROOT.parent / "shared" / "datasets"
C_GRID = (0.01, 0.1, 1.0, 10.0)


def folder_split(root: Path, train_per_class, split: int):
    """``(X_train, y_train, X_test, y_test)`` from the JPEGs of ``root/**/<class>/``.

    Per class, a permutation by ``default_rng(split)`` of the sorted files: the first
    ``train_per_class`` (an int, or a dict by class) train; the next as many test for
    an int, every other file for a dict.
    """
    rng = np.random.default_rng(split)
    by_class = isinstance(train_per_class, dict)
    parts = [[], [], [], []]
    for label in sorted({p.parent.name for p in root.glob("**/*.jpg")}):
        files = sorted(str(p) for p in root.glob(f"**/{label}/*.jpg"))
        order = rng.permutation(len(files))
        n = train_per_class[label] if by_class else train_per_class
        stop = len(files) if by_class else 2 * n
        for k, chosen in ((0, order[:n]), (2, order[n:stop])):
            parts[k] += [files[i] for i in chosen]
            parts[k + 1] += [label] * len(chosen)
    return tuple(parts)


def given_split(root: Path, train: str, test: str):
    """The folder's own ``root/{train,test}/<class>/`` split."""
    parts = []
    for part in (train, test):
        files = sorted((root / part).glob("*/*.jpg"))
        parts += [[str(p) for p in files], [p.parent.name for p in files]]
    return tuple(parts)


def load(name: str, split: int = 0):
    """``(X_train, y_train, X_test, y_test)``: paths, or uint8 arrays for digits."""
    if name == "dtd10":
        return folder_split(DATASETS / "dtd10", 60, split)
    if name == "digits":
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split

        digits = load_digits()
        images = (digits.images * (255 / 16)).round().astype(np.uint8)
        images = np.repeat(images[..., None], 3, axis=-1)
        x_train, x_test, y_train, y_test = train_test_split(
            images, digits.target, train_size=300, stratify=digits.target,
            random_state=split,
        )  # fmt: skip
        return x_train, y_train, x_test, y_test
    if name == "chest_xray":
        root = DATASETS / "chest_xray"
        if split == 0:
            return given_split(root, "train", "test")
        return folder_split(root, {"normal": 200, "pneumonia": 200}, split)
    if name == "hymenoptera":
        root = DATASETS / "hymenoptera"
        if split == 0:
            return given_split(root, "train", "val")
        return folder_split(root, {"ants": 124, "bees": 121}, split)
    raise SystemExit(
        f"unknown dataset {name!r}: dtd10, digits, chest_xray or hymenoptera"
    )


def frozen(data, overrides: dict) -> dict:
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GridSearchCV, StratifiedKFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from featurize import ImageFeaturizer

    x_train, y_train, x_test, y_test = data
    best = None
    for layer in (None, -2):
        featurizer = ImageFeaturizer(
            layer=layer, cache=None, input_size=overrides.get("input_size")
        )
        train, test = featurizer.transform(x_train), featurizer.transform(x_test)
        search = GridSearchCV(
            make_pipeline(StandardScaler(), LogisticRegression(max_iter=5000)),
            {"logisticregression__C": C_GRID},
            cv=StratifiedKFold(5, shuffle=True, random_state=0),
        ).fit(train, y_train)
        row = {
            "layer": "final" if layer is None else "penultimate",
            "C": search.best_params_["logisticregression__C"],
            "cv": round(search.best_score_, 4),
            "accuracy": round(search.score(test, y_test), 4),
        }
        if best is None or row["cv"] > best["cv"]:
            best = row
        print(json.dumps(row), file=sys.stderr)
    return best


def fine_tuned(data, overrides: dict) -> dict:
    from featurize import FineTunedClassifier

    x_train, y_train, x_test, y_test = data
    clf = FineTunedClassifier(**{"cache": None, "random_state": 0} | overrides)
    clf.fit(x_train, y_train)
    history = clf.history_
    print(history.round(4).to_string(), file=sys.stderr)
    trained = history[history.epoch > 0]
    n_train = round(len(y_train) * (1 - (clf.validation_fraction or 0)))
    # Test-time augmentation is read at prediction, so one fit scores every way.
    configured = clf.score(x_test, y_test)
    scores = {
        f"accuracy_tta_{tta}": round(clf.set_params(tta=tta).score(x_test, y_test), 4)
        for tta in (None, "flip")
        if tta != clf.tta_
    }
    return {
        "accuracy": round(configured, 4),
        "tta": clf.tta_,
        **scores,
        "best_epoch": int(clf.best_epoch_),
        "epochs_run": int(trained.epoch.max()) if len(trained) else 0,
        "probe_val": round(float(history.val_accuracy.iloc[0]), 4),
        "train_images_per_s": round(n_train * len(trained) / trained.seconds.sum(), 1)
        if len(trained)
        else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dataset")
    parser.add_argument("--frozen", action="store_true")
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE")
    parser.add_argument("--split", type=int, default=0, help="seed of the split")
    args = parser.parse_args()
    overrides = {}
    for item in args.set:
        name, _, value = item.partition("=")
        overrides[name] = ast.literal_eval(value)
    data = load(args.dataset, args.split)
    started = time.perf_counter()
    row = frozen(data, overrides) if args.frozen else fine_tuned(data, overrides)
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
        text=True,
    ).stdout.strip()  # fmt: skip
    row |= {
        "dataset": args.dataset,
        "split": args.split,
        "config": "frozen" if args.frozen else overrides or "defaults",
        "seconds": round(time.perf_counter() - started, 1),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "machine": f"{platform.machine()} x{len(os.sched_getaffinity(0))}",
        "commit": commit,
        "date": time.strftime("%Y-%m-%d"),
    }
    print(json.dumps(row, default=str))


if __name__ == "__main__":
    main()
