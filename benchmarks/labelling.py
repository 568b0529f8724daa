"""What to label first: learning curves of the selection strategies, from zero
labels, on frozen embeddings, with the same logistic-regression head for every one.

Pools and test sets: dtd10 (a seeded 60/60 split per class), chest_xray (train /
test), emotion (a seeded 4,000-row sample of train / test; MiniLM). At 1, 2, 5, 10
and 20 labels per class (the budget times the number of classes), labels are added in
rounds from zero: each round asks ``next_to_label`` for the difference. An imbalanced
pool (chest_xray with pneumonia cut to 10%; emotion's 4,000-row pool, where "love" is
8%) reports the rare class's F1 at 200 labels against training on every label.

    python benchmarks/labelling.py [--seeds 0 1 2] [--sets dtd10 chest_xray emotion]
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import time

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, f1_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from featurize import ImageFeaturizer, TextFeaturizer
from pipelines import list_splits, load_image_folder, next_to_label

SHARED = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "datasets")
PER_CLASS = (1, 2, 5, 10, 20)
STRATEGIES = ("random", "auto", "typical", "uncertain")


def images(name: str, seed: int = 0):
    """Embeddings and labels of a pool and a test set."""
    root = os.path.join(SHARED, name)
    splits = list_splits(root)
    featurizer = ImageFeaturizer().fit()
    if splits:
        pool, pool_y = load_image_folder(root, "train")
        test, test_y = load_image_folder(root, [s for s in splits if s != "train"][0])
    else:
        paths, labels = load_image_folder(root)
        rng = np.random.default_rng(seed)
        frame = pd.DataFrame({"path": paths, "label": labels})
        frame["r"] = rng.random(len(frame))
        frame["k"] = frame.groupby("label")["r"].rank()
        half = frame["k"] <= frame.groupby("label")["r"].transform("size") / 2
        pool, pool_y = frame.path[half].tolist(), frame.label[half].tolist()
        test, test_y = frame.path[~half].tolist(), frame.label[~half].tolist()
    return (featurizer.transform(pool), np.array(pool_y),
            featurizer.transform(test), np.array(test_y))  # fmt: skip


def texts(name: str, seed: int = 0, pool_size: int = 4000):
    root = os.path.join(SHARED, name)
    train = pd.read_csv(os.path.join(root, "train.csv"))
    test = pd.read_csv(os.path.join(root, "test.csv"))
    train = train.sample(pool_size, random_state=seed)
    featurizer = TextFeaturizer().fit()
    return (
        featurizer.transform(train.text), train.label.astype(str).to_numpy(),
        featurizer.transform(test.text), test.label.astype(str).to_numpy(),
    )  # fmt: skip


def head_score(X, y, labelled, test_X, test_y, rare=None):
    """Accuracy (and the rare class's F1) of the shared head on what is labelled."""
    chosen = np.flatnonzero(labelled)
    classes = np.unique(y[chosen])
    if len(classes) < 2:
        predicted = np.full(len(test_y), classes[0])
    else:
        # make_image_classifier's head: scaled features, logistic regression.
        head = make_pipeline(StandardScaler(), LogisticRegression(max_iter=3000))
        predicted = head.fit(X[chosen], y[chosen]).predict(test_X)
    accuracy = accuracy_score(test_y, predicted)
    f1 = None
    if rare is not None:
        f1 = f1_score(test_y, predicted, labels=[rare], average="macro",
                      zero_division=0)  # fmt: skip
    return accuracy, f1


def curve(X, y, test_X, test_y, budgets, strategy, seed, rare=None):
    labels = np.array([None] * len(y), dtype=object)
    scores, seconds = [], []
    for budget in budgets:
        need = budget - int((labels != None).sum())  # noqa: E711
        if need > 0:
            started = time.perf_counter()
            picked = next_to_label(X, labels, need, random_state=seed,
                                   strategy=strategy)  # fmt: skip
            seconds.append(time.perf_counter() - started)
            labels[picked] = y[picked]  # the oracle labels them
        scores.append(head_score(X, y, labels != None, test_X, test_y, rare))  # noqa: E711
    return scores, seconds


def validate(name, X, y, seeds) -> None:
    """Each strategy's accuracy minus random's on a validation quarter of the pool
    (stratified, seeded): the test set is not read."""
    from sklearn.model_selection import train_test_split

    rows = np.arange(len(y))
    pool, held = train_test_split(rows, test_size=0.25, stratify=y, random_state=0)
    n_classes = len(np.unique(y))
    budgets = [b * n_classes for b in PER_CLASS]
    args = (X[pool], y[pool], X[held], y[held], budgets)
    random = np.array([[a for a, _ in curve(*args, "random", s)[0]] for s in seeds])
    print(f"\n{name} validation ({len(pool)} pool, {len(held)} held out, seeds "
          f"{seeds}): gain over random at {PER_CLASS} per class")  # fmt: skip
    for strategy in STRATEGIES[1:]:
        scores = np.array([[a for a, _ in curve(*args, strategy, s)[0]]
                           for s in seeds])  # fmt: skip
        gain = (scores - random).mean(0)
        print(f"  {strategy:10s} " + " ".join(f"{g:+.3f}" for g in gain)
              + f"; mean {gain.mean():+.3f}, at 1-2/class {gain[:2].mean():+.3f}, "
              f"worst {gain.min():+.3f}")  # fmt: skip


def plot(curves: dict, path: str) -> None:
    """Accuracy against labels per class, random and auto, a panel per set."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, len(curves), figsize=(4.2 * len(curves), 3.4))
    for ax, (name, (table, full)) in zip(np.atleast_1d(axes), curves.items()):
        for strategy, style in (("random", "o--"), ("auto", "o-")):
            scores = table[strategy]
            ax.errorbar(PER_CLASS, scores.mean(0), yerr=scores.std(0), fmt=style,
                        capsize=3, label=strategy)  # fmt: skip
        ax.axhline(full, color="grey", lw=0.8, label="every label")
        ax.set_xscale("log")
        ax.set_xticks(PER_CLASS, [str(b) for b in PER_CLASS])
        ax.set_xlabel("labels per class")
        ax.set_title(name)
    np.atleast_1d(axes)[0].set_ylabel("test accuracy")
    np.atleast_1d(axes)[0].legend()
    figure.tight_layout()
    figure.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--sets", nargs="*", default=["dtd10", "chest_xray", "emotion"])
    parser.add_argument("--imbalanced", action="store_true")
    parser.add_argument("--plot", default=None, help="save the curves as a PNG")
    parser.add_argument(
        "--validation", action="store_true",
        help="score the strategies on a quarter of each pool held out as "
        "validation (the test sets unread), as auto's switch was chosen",
    )  # fmt: skip
    args = parser.parse_args()
    curves = {}
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"],
                            capture_output=True, text=True).stdout.strip()  # fmt: skip
    print(f"labelling benchmark: {platform.node()}, {os.cpu_count()} cores, commit "
          f"{commit}, {time.strftime('%Y-%m-%d')}")  # fmt: skip
    for name in args.sets:
        data = texts(name) if name == "emotion" else images(name)
        X, y, test_X, test_y = data
        if args.validation:
            validate(name, X, y, args.seeds)
            continue
        n_classes = len(np.unique(y))
        budgets = [b * n_classes for b in PER_CLASS]
        print(f"\n{name}: pool {len(X)}, test {len(test_X)}, {n_classes} classes; "
              f"accuracy at {PER_CLASS} labels per class, mean of seeds "
              f"{args.seeds}")  # fmt: skip
        full, _ = head_score(X, y, np.ones(len(y), bool), test_X, test_y)
        table = {}
        for strategy in STRATEGIES:
            runs = [curve(X, y, test_X, test_y, budgets, strategy, seed)
                    for seed in args.seeds]  # fmt: skip
            scores = np.array([[a for a, _ in run[0]] for run in runs])
            table[strategy] = scores
            rounds = np.mean([s for run in runs for s in run[1]])
            print(f"  {strategy:10s} " + " ".join(f"{m:.3f}" for m in scores.mean(0))
                  + f"  (per seed at 1/class: {scores[:, 0].round(3).tolist()}; "
                  f"query {rounds:.2f} s)")  # fmt: skip
        for strategy in STRATEGIES[1:]:
            gain = (table[strategy] - table["random"]).mean(0)
            print(f"  {strategy} - random: " + " ".join(f"{g:+.3f}" for g in gain)
                  + f"; mean {gain.mean():+.3f}, at 1-2/class {gain[:2].mean():+.3f}, "
                  f"worst {gain.min():+.3f}")  # fmt: skip
        print(f"  every label ({len(y)}): {full:.3f}")
        curves[name] = (table, full)
    if args.plot and curves:
        plot(curves, args.plot)
    if args.imbalanced:
        imbalanced(images("chest_xray"), "chest_xray", "pneumonia", 0.10, args.seeds)
        # A pool where 200 labels are 5% of it: emotion's "love" is 8% of train.
        imbalanced(texts("emotion"), "emotion", "love", None, args.seeds)


def imbalanced(data, name: str, rare: str, share, seeds) -> None:
    """The rare class's F1 on the test set at 20 to 200 labels, each strategy
    beside every label; ``share`` cuts the rare class to that share of the pool
    (None: as it comes)."""
    X, y, test_X, test_y = data
    if share is not None:
        rng = np.random.default_rng(0)
        keep = np.flatnonzero(y != rare)
        wanted = int(round(share * len(keep) / (1 - share)))
        rare_rows = rng.choice(np.flatnonzero(y == rare), wanted, replace=False)
        rows = np.sort(np.r_[keep, rare_rows])
        X, y = X[rows], y[rows]
    count = int((y == rare).sum())
    print(f"\nimbalanced {name} pool: {len(y)} rows, {count} {rare} "
          f"({count / len(y):.1%}); {rare} F1 on test")  # fmt: skip
    _, full = head_score(X, y, np.ones(len(y), bool), test_X, test_y, rare)
    for strategy in STRATEGIES:
        runs = [curve(X, y, test_X, test_y, [20, 50, 100, 200], strategy, seed,
                      rare)[0] for seed in seeds]  # fmt: skip
        mean = np.mean([[f for _, f in run] for run in runs], axis=0)
        print(f"  {strategy:10s} F1 at 20/50/100/200 labels: "
              + " ".join(f"{m:.3f}" for m in mean))  # fmt: skip
    bound = [[head_score(X, y, balanced(y, budget, seed), test_X, test_y, rare)[1]
              for budget in (20, 50, 100, 200)] for seed in seeds]  # fmt: skip
    print("  bound: an oracle's class-balanced picks (every label known): "
          + " ".join(f"{m:.3f}" for m in np.mean(bound, axis=0)))  # fmt: skip
    print(f"  every label: {full:.3f}")


def balanced(y, budget: int, seed: int) -> np.ndarray:
    """A mask of ``budget`` rows drawn evenly from each class (a class with too
    few gives all it has, the rest shared among the others)."""
    rng = np.random.default_rng(seed)
    classes = np.unique(y)
    rows = {c: rng.permutation(np.flatnonzero(y == c)) for c in classes}
    chosen, left = [], budget
    for i, c in enumerate(sorted(classes, key=lambda c: len(rows[c]))):
        take = min(len(rows[c]), left // (len(classes) - i))
        chosen.extend(rows[c][:take])
        left -= take
    mask = np.zeros(len(y), bool)
    mask[chosen] = True
    return mask


if __name__ == "__main__":
    main()
