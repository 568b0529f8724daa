"""Semi-supervised heads on the labels ``next_to_label`` picks: does the pool's
unlabelled part help? The same picks (auto, seeds 0-2) scored by the logistic
regression every strategy uses; by that logistic regression trained with
``spread_labels``'s rows (``when="always"`` and the default ``"auto"``, which
decides per round); and, for reference, by scikit-learn's ``LabelSpreading`` itself
(kNN kernel, 10 neighbours, on the unit-length pool: it keeps the pool to predict)
and ``SelfTrainingClassifier`` around the logistic regression (threshold 0.9, 5
rounds). Pools and test sets as in ``labelling.py``.

    python benchmarks/labelling_heads.py [--sets dtd10 chest_xray emotion]
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import time

import numpy as np
from labelling import PER_CLASS, images, texts
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.preprocessing import normalize as normalised
from sklearn.semi_supervised import LabelSpreading, SelfTrainingClassifier

from pipelines import next_to_label, spread_labels


def scores(X, y, test_X, test_y, seed: int) -> dict:
    classes = np.unique(y)
    labels = np.array([None] * len(y), dtype=object)
    out = {"logistic": [], "spread always": [], "spread auto": [],
           "auto spread (share of rounds)": [], "LabelSpreading": [],
           "self-training": []}  # fmt: skip
    for per_class in PER_CLASS:
        need = per_class * len(classes) - int((labels != None).sum())  # noqa: E711
        if need > 0:
            picked = next_to_label(X, labels, need, random_state=seed)
            labels[picked] = y[picked]
        known = labels != None  # noqa: E711
        codes = np.array([-1 if label is None else int(np.searchsorted(classes, label))
                          for label in labels])  # fmt: skip

        def head():
            return make_pipeline(StandardScaler(), LogisticRegression(max_iter=3000))

        logistic = head().fit(X[known], y[known].astype(str))
        out["logistic"].append(accuracy_score(test_y, logistic.predict(test_X)))
        for when in ("always", "auto"):
            spread = spread_labels(X, labels, when=when, random_state=seed)
            rows = spread.weights > 0
            weights = {"logisticregression__sample_weight": spread.weights[rows]}
            taught = head().fit(X[rows], spread.labels[rows].astype(str), **weights)
            out[f"spread {when}"].append(accuracy_score(test_y, taught.predict(test_X)))
        out["auto spread (share of rounds)"].append(float(spread.spread))
        spreading = LabelSpreading(kernel="knn", n_neighbors=10, max_iter=100)
        spreading.fit(normalised(X), codes)
        predicted = classes[spreading.predict(normalised(test_X))]
        out["LabelSpreading"].append(accuracy_score(test_y, predicted))
        selfish = SelfTrainingClassifier(head(), threshold=0.9, max_iter=5)
        predicted = classes[selfish.fit(X, codes).predict(test_X)]
        out["self-training"].append(accuracy_score(test_y, predicted))
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sets", nargs="+", default=["dtd10", "chest_xray", "emotion"])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    args = parser.parse_args()
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"],
                            capture_output=True, text=True).stdout.strip()  # fmt: skip
    print(f"semi-supervised heads: {platform.node()}, {os.cpu_count()} cores, commit "
          f"{commit}, {time.strftime('%Y-%m-%d')}; accuracy at {PER_CLASS} labels "
          f"per class, mean of seeds {args.seeds}")  # fmt: skip
    for name in args.sets:
        X, y, test_X, test_y = texts(name) if name == "emotion" else images(name)
        runs = [scores(X, y, test_X, test_y, seed) for seed in args.seeds]
        for head in runs[0]:
            mean = np.mean([run[head] for run in runs], axis=0)
            print(f"{name:11s} {head:30s} " + " ".join(f"{m:.3f}" for m in mean))


if __name__ == "__main__":
    main()
