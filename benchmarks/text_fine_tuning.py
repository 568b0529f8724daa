"""Text fine-tuning benchmark: FineTunedTextClassifier against SetFit, the tuned
frozen MiniLM + logistic regression and TF-IDF, on the same few-label draws.

Each draw takes ``n`` training texts per class from a data set's training part
(seeded: ``numpy.random.default_rng(seed)``, classes in sorted order) and scores
on its whole test part. Every method sees the same draw:

- ``tfidf``: word 1-2-gram TF-IDF + logistic regression, C by 5-fold CV on the
  draw (at most n folds);
- ``frozen``: MiniLM embeddings + logistic regression, C by CV on the draw; and
  ``frozen_test_tuned``, C chosen on the test set itself (the optimistic figure
  the issue quotes);
- ``setfit``: SetFit 1.2 (torch) on the same MiniLM files, in its own process and
  environment (``--setfit-python``), see benchmarks/setfit_reference.py;
- ``featurize``: FineTunedTextClassifier with its defaults (or ``--params`` JSON).

Each fit runs in a fresh process, so the peak RSS is that fit's own.

    python benchmarks/text_fine_tuning.py --data emotion --sizes 16 64 \\
        --seeds 0 1 2 --setfit-python /work/setfit-venv/bin/python --out r.jsonl
    python benchmarks/text_fine_tuning.py --summarize r.jsonl
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

import numpy as np
import pandas as pd

SHARED = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "datasets")
C_GRID = (0.01, 0.1, 1.0, 10.0, 100.0)


def load(name: str, split: str) -> pd.DataFrame:
    """A data set's part as a (text, label) frame; sms_spam has no split, so a
    stratified 30% (benchmarks/text.py's) is its test part."""
    if name == "emotion":
        return pd.read_csv(os.path.join(SHARED, "emotion", f"{split}.csv"))
    frame = pd.read_csv(
        os.path.join(SHARED, "sms_spam", "SMSSpamCollection"), sep="\t", quoting=3
    )
    frame.columns = ["label", "text"]
    from sklearn.model_selection import train_test_split

    # The fixed test part of benchmarks/text.py (1,673 messages).
    train, test = train_test_split(
        frame, test_size=0.3, stratify=frame.label, random_state=0
    )
    return {"train": train, "test": test}[split].reset_index(drop=True)


def draw(frame: pd.DataFrame, per_class: int, seed: int) -> pd.DataFrame:
    """``per_class`` rows of each label, seeded."""
    rng = np.random.default_rng(seed)
    rows = []
    for label in sorted(frame.label.unique()):
        found = np.flatnonzero((frame.label == label).to_numpy())
        rows += rng.choice(found, per_class, replace=False).tolist()
    return frame.iloc[sorted(rows)].reset_index(drop=True)


def scores(truth, predicted, positive=None) -> dict:
    from sklearn.metrics import accuracy_score, f1_score

    out = {
        "accuracy": accuracy_score(truth, predicted),
        "macro_f1": f1_score(truth, predicted, average="macro"),
    }
    if positive is not None:
        out["f1_positive"] = f1_score(truth, predicted, pos_label=positive)
    return out


def tuned_lr(train_x, train_y, test_x, test_y, n) -> tuple[np.ndarray, np.ndarray]:
    """Logistic regression with C by CV on the draw, and with C tuned on test."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GridSearchCV, StratifiedKFold

    folds = StratifiedKFold(min(5, n), shuffle=True, random_state=0)
    search = GridSearchCV(
        LogisticRegression(max_iter=5000), {"C": C_GRID}, cv=folds
    ).fit(train_x, train_y)
    best_on_test = max(
        (
            LogisticRegression(C=C, max_iter=5000).fit(train_x, train_y).predict(test_x)
            for C in C_GRID
        ),
        key=lambda predicted: np.mean(predicted == np.asarray(test_y)),
    )
    return search.predict(test_x), best_on_test


def peak_rss_mib() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_featurize(spec: dict) -> dict:
    """One FineTunedTextClassifier fit (in this fresh process)."""
    from featurize import FineTunedTextClassifier

    clf = FineTunedTextClassifier(
        random_state=spec["seed"], cache=None, **spec["params"]
    )
    started = time.perf_counter()
    clf.fit(spec["train_texts"], spec["train_labels"])
    fit_seconds = time.perf_counter() - started
    predicted = clf.predict(spec["test_texts"]).astype(str).tolist()
    if spec.get("heads"):
        predicted = {"featurize": predicted} | other_heads(clf, spec)
    return {
        "predicted": predicted,
        "fit_seconds": fit_seconds,
        "peak_rss_mib": peak_rss_mib(),
        "history": clf.history_.to_dict(orient="list"),
    }


def other_heads(clf, spec: dict) -> dict:
    """Test predictions of other heads on the same tuned encoder (``--heads``):
    fixed C values, and C by cross-validation on the draw, to choose the head's
    default on a validation split without refitting the encoder."""
    from sklearn.linear_model import LogisticRegression

    featurizer = clf.to_featurizer(cache=None)
    train = featurizer.transform(spec["train_texts"])
    test = featurizer.transform(spec["test_texts"])
    labels = spec["train_labels"]
    out = {}
    for C in C_GRID:
        head = LogisticRegression(C=C, max_iter=5000).fit(train, labels)
        out[f"featurize_head_C{C:g}"] = head.predict(test).astype(str).tolist()
    by_cv, _ = tuned_lr(train, labels, test, spec["test_labels"], spec["per_class"])
    out["featurize_head_cv"] = np.asarray(by_cv).astype(str).tolist()
    return out


def run_frozen(spec: dict) -> dict:
    from sklearn.feature_extraction.text import TfidfVectorizer

    from featurize import TextFeaturizer

    n = spec["per_class"]
    out = {}
    vectorizer = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True)
    train = vectorizer.fit_transform(spec["train_texts"])
    test = vectorizer.transform(spec["test_texts"])
    out["tfidf"], _ = tuned_lr(
        train, spec["train_labels"], test, spec["test_labels"], n
    )
    featurizer = TextFeaturizer(cache=None)
    started = time.perf_counter()
    train = featurizer.fit_transform(spec["train_texts"])
    embed_seconds = time.perf_counter() - started
    test = featurizer.transform(spec["test_texts"])
    out["frozen"], out["frozen_test_tuned"] = tuned_lr(
        train, spec["train_labels"], test, spec["test_labels"], n
    )
    return {
        "predicted": {k: np.asarray(v).astype(str).tolist() for k, v in out.items()},
        "fit_seconds": embed_seconds,
        "peak_rss_mib": peak_rss_mib(),
    }


def in_process(kind: str, spec: dict, python: str) -> dict:
    with tempfile.TemporaryDirectory() as folder:
        spec_path, out_path = (os.path.join(folder, f) for f in ("in.json", "out"))
        with open(spec_path, "w") as handle:
            json.dump(spec, handle)
        if kind == "setfit":
            script = os.path.join(os.path.dirname(__file__), "setfit_reference.py")
            command = [python, script, spec_path, out_path]
        else:
            command = [python, __file__, "--child", kind, spec_path, out_path]
        subprocess.run(command, check=True)
        with open(out_path) as handle:
            return json.load(handle)


def summarize(path: str) -> str:
    """A markdown table of a results file: mean and sd over seeds per method and
    draw size."""
    with open(path) as handle:
        rows = pd.DataFrame([json.loads(line) for line in handle])
    metrics = [m for m in ("accuracy", "macro_f1", "f1_positive") if m in rows]
    lines = [
        "| method | per class | seeds | "
        + " | ".join(metrics)
        + " | fit s | peak RSS MiB |",
        "|---" * (len(metrics) + 5) + "|",
    ]
    for (method, n), group in rows.groupby(["method", "per_class"], sort=False):
        cells = [f"{group[m].mean():.3f} ± {group[m].std(ddof=1):.3f}" for m in metrics]
        lines.append(
            f"| {method} | {n} | {len(group)} | "
            + " | ".join(cells)
            + f" | {group.fit_seconds.mean():.0f} | {group.peak_rss_mib.max():.0f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="emotion", choices=("emotion", "sms_spam"))
    parser.add_argument("--split", default="test", choices=("test", "validation"))
    parser.add_argument("--sizes", type=int, nargs="+", default=[16, 64])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument(
        "--methods", nargs="+", default=["frozen", "featurize", "setfit"]
    )
    parser.add_argument("--params", default="{}", help="featurize's, as JSON")
    parser.add_argument(
        "--heads", action="store_true", help="featurize: also score other heads"
    )
    parser.add_argument("--setfit-python", default=None)
    parser.add_argument("--out", default=None, help="append results (JSON lines)")
    parser.add_argument("--summarize", default=None, help="a results file's table")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.summarize:
        print(summarize(args.summarize))
        return
    if args.child:
        kind, spec_path, out_path = args.child
        with open(spec_path) as handle:
            spec = json.load(handle)
        result = {"featurize": run_featurize, "frozen": run_frozen}[kind](spec)
        with open(out_path, "w") as handle:
            json.dump(result, handle)
        return

    import featurize

    train_part, test_part = load(args.data, "train"), load(args.data, args.split)
    positive = "spam" if args.data == "sms_spam" else None
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    header = {
        "data": args.data,
        "split": args.split,
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "commit": commit,
        "date": time.strftime("%Y-%m-%d"),
        "keras_backend": os.environ.get("KERAS_BACKEND", "tensorflow"),
    }
    model = str(featurize.get_text_encoder("minilm_l6").files())
    for n in args.sizes:
        for seed in args.seeds:
            picked = draw(train_part, n, seed)
            spec = {
                "seed": seed,
                "per_class": n,
                "model": model,
                "train_texts": picked.text.tolist(),
                "train_labels": picked.label.astype(str).tolist(),
                "test_texts": test_part.text.tolist(),
                "test_labels": test_part.label.astype(str).tolist(),
                "params": json.loads(args.params),
                "heads": args.heads,
            }
            for method in args.methods:
                python = args.setfit_python if method == "setfit" else sys.executable
                result = in_process(method, spec, python)
                predicted = result.pop("predicted")
                named = predicted if isinstance(predicted, dict) else {}
                named = named or {method: predicted}
                for name, labels in named.items():
                    row = header | {
                        "method": name,
                        "per_class": n,
                        "seed": seed,
                        "params": spec["params"] if method == "featurize" else {},
                        **scores(spec["test_labels"], labels, positive),
                        "fit_seconds": result["fit_seconds"],
                        "peak_rss_mib": result["peak_rss_mib"],
                    }
                    if "history" in result:
                        row["history"] = result["history"]
                    print(json.dumps({k: v for k, v in row.items() if k != "history"}))
                    if args.out:
                        with open(args.out, "a") as handle:
                            handle.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
