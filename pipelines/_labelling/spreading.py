"""The pool's unlabelled items as training data: labels spread from the labelled
items over the pool's neighbour graph (scikit-learn's ``LabelSpreading``, kNN
kernel, on unit-length embeddings), then given to an ordinary head as weighted
rows. The head stays what it was (a scaler and a logistic regression): its size
does not grow with the pool and it exports as before, where ``LabelSpreading``
itself would keep every pool row to predict.

Spreading pays where the embedding space has class-pure neighbourhoods around the
labels (images: +9 to +33 points at 1-2 labels per class) and costs where it has
none (tweets: up to -9; BENCHMARKS.md, "Semi-supervised heads"), so ``"auto"``
spreads only where the labels cover ``COVERED`` of the pool (the selection's
switch, one measure) and, once the labels allow two folds, where the spread head's
cross-validated accuracy is no worse than the plain head's on the user's own labels.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from featurize import InvalidInputError, missing_labels
from pipelines._labelling.select import COVERED, coverage
from pipelines._neighbours import normalised

SEMI_SUPERVISED = ("auto", "always", "never")
# Unlabelled rows spread to at most (a seeded sample past it): the gain comes from
# the first thousands, and the head trains on every spread row.
MAX_SPREAD = 5_000
NEIGHBOURS = 10
# LabelSpreading's clamping: the share of a labelled item's own label it may give up.
ALPHA = 0.2
FOLDS = 3


class Spread(NamedTuple):
    """What :func:`spread_labels` decided: ``labels`` (the given label, a spread
    one, or None), ``weights`` (1 for a given label, the spread label's share of
    its row's label distribution, 0 for none), ``spread`` (whether it spread),
    ``coverage`` (the share of the pool near a label) and ``accuracy`` (the
    cross-validated accuracy of the plain and the spread head, where measured)."""

    labels: np.ndarray
    weights: np.ndarray
    spread: bool
    coverage: float
    accuracy: tuple | None


def spread_labels(X, y, *, when: str = "auto", random_state=None) -> Spread:
    """Labels for unlabelled rows of ``X``, spread from the labelled ones.

    Parameters
    ----------
    X : array-like of shape (n_items, n_features)
        Embeddings of the whole pool, labelled or not.
    y : array-like of shape (n_items,)
        Labels so far; ``None`` or NaN where an item has none.
    when : {"auto", "always", "never"}
        ``"auto"`` spreads where the labels cover a tenth of the pool and, with
        at least two labels per class, where it cross-validates no worse than
        the labels alone.
    random_state : int, optional
        Seeds the pool sample, the coverage clustering and the folds.

    Returns
    -------
    Spread
        Fit a head on the rows with a label, weighted: with ``rows =
        spread.weights > 0``, ``model.fit(X[rows], spread.labels[rows],
        classifier__sample_weight=spread.weights[rows])`` for a pipelines model.

    Examples
    --------
    >>> import numpy as np
    >>> from pipelines import spread_labels
    >>> rng = np.random.default_rng(0)
    >>> X = np.r_[rng.normal(0, 1, (50, 4)) + 5, rng.normal(0, 1, (50, 4)) - 5]
    >>> y = [None] * 100
    >>> y[0], y[50] = "a", "b"
    >>> spread = spread_labels(X, y, when="always", random_state=0)
    >>> sorted(set(spread.labels[:50])), sorted(set(spread.labels[50:]))
    (['a'], ['b'])
    """
    if when not in SEMI_SUPERVISED:
        raise ValueError(
            f"when must be one of {list(SEMI_SUPERVISED)}; received {when!r}."
        )
    X = np.asarray(X, dtype=np.float32)
    missing = missing_labels(y)
    if X.ndim != 2 or len(missing) != len(X):
        raise InvalidInputError(
            f"X must be embeddings of shape (n_items, n_features) with one label "
            f"(or None) per row in y; received shape {X.shape} and {len(missing)} "
            f"labels."
        )
    given = np.asarray(y, dtype=object).copy()
    given[missing] = None
    weights = (~missing).astype(np.float64)
    classes = np.unique(given[~missing].astype(str))
    unit = normalised(X)
    if len(classes) < 2 or not missing.any():
        return Spread(given, weights, False, 1.0, None)
    rng = np.random.default_rng(random_state)
    covered = coverage(unit, ~missing, len(classes), rng)
    if when == "never" or (when == "auto" and covered < COVERED):
        return Spread(given, weights, False, covered, None)
    accuracy = None
    if when == "auto":
        accuracy = _cross_validated(X, unit, given, ~missing, rng)
        if accuracy is not None and accuracy[1] < accuracy[0]:
            return Spread(given, weights, False, covered, accuracy)
    rows, labels, shares = _spread(unit, given, ~missing, rng)
    # Spread labels as the caller wrote them (1 stays an int, not "1").
    written = {str(label): label for label in given[~missing]}
    given[rows] = [written[label] for label in labels]
    weights[rows] = shares
    return Spread(given, weights, True, covered, accuracy)


def _spread(unit, given, labelled, rng):
    """(rows, labels, shares) of the unlabelled rows the spreading reached, on
    a sample of at most ``MAX_SPREAD`` of them."""
    from sklearn.semi_supervised import LabelSpreading

    pool = np.flatnonzero(~labelled)
    if len(pool) > MAX_SPREAD:
        pool = np.sort(rng.choice(pool, MAX_SPREAD, replace=False))
    rows = np.r_[np.flatnonzero(labelled), pool]
    classes, codes = np.unique(given[labelled].astype(str), return_inverse=True)
    targets = np.r_[codes, np.full(len(pool), -1)]
    model = LabelSpreading(kernel="knn", n_neighbors=min(NEIGHBOURS, len(rows) - 1),
                           alpha=ALPHA, max_iter=100)  # fmt: skip
    with np.errstate(invalid="ignore", divide="ignore"):
        model.fit(unit[rows], targets)
    spread = model.label_distributions_[-len(pool) :]
    # An item no labelled neighbour reached keeps a uniform (or NaN) distribution.
    reached = np.isfinite(spread).all(axis=1) & (np.ptp(spread, axis=1) > 1e-9)
    winners = model.classes_[spread.argmax(axis=1)]
    return pool[reached], classes[winners[reached]], spread.max(axis=1)[reached]


def _cross_validated(X, unit, given, labelled, rng):
    """(plain, spread) mean accuracy over stratified folds of the labelled rows,
    the spread head learning from the folds' labels and the pool (the graph on
    ``unit``, the heads on ``X`` as the pipelines' are); None where a class has
    fewer than two labels."""
    from sklearn.model_selection import StratifiedKFold

    rows = np.flatnonzero(labelled)
    labels = given[rows].astype(str)
    _, counts = np.unique(labels, return_counts=True)
    folds = min(FOLDS, counts.min())
    if folds < 2:
        return None
    seed = int(rng.integers(2**31))
    splitter = StratifiedKFold(folds, shuffle=True, random_state=seed)
    plain, spread = [], []
    for train, test in splitter.split(rows, labels):
        known = np.zeros(len(unit), bool)
        known[rows[train]] = True
        fold = np.where(known, given, None)
        head = _head().fit(X[known], labels[train])
        plain.append(np.mean(head.predict(X[rows[test]]) == labels[test]))
        extra, extra_labels, shares = _spread(unit, fold, known, rng)
        taught = np.r_[rows[train], extra]
        weights = np.r_[np.ones(len(train)), shares]
        head = _head().fit(X[taught], np.r_[labels[train], extra_labels],
                           logisticregression__sample_weight=weights)  # fmt: skip
        spread.append(np.mean(head.predict(X[rows[test]]) == labels[test]))
    return float(np.mean(plain)), float(np.mean(spread))


def _head():
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    # The head featurize's pipelines fit: scaled features, logistic regression.
    return make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
