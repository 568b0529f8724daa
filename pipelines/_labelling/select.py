"""Which unlabelled items a person should label next, from embeddings alone.

Stateless, as scikit-activeml's ``query(X, y)``: the label vector with its missing
entries is the only state. From few labels the pick is by **typicality** (TypiClust,
Hacohen et al. 2022): the pool is clustered into as many clusters as there will be
labels, and the most typical item (densest neighbourhood) of each of the largest
clusters without a label is taken, which covers the data's modes first. The pick
turns to **uncertainty made diverse** when the method judges the head worth asking
(``_warm``): every class has a label on each side of its boundaries (one each for two
classes, two each for more) and the labels cover ``COVERED`` of the pool in
ProbCover's sense (Yehuda et al. 2022). Then a class-balanced logistic regression on
the labelled items scores the pool, the ``CANDIDATES`` x n items with the smallest
margin between their two likeliest classes are clustered into n clusters, and the
most uncertain item of each is taken (so a batch is not n copies of one confusion).
No n x n matrix is formed: clustering is k-means (mini-batch past ``MINIBATCH_FROM``
rows), typicality is computed within clusters on at most ``TYPICALITY_SAMPLE``
members, and coverage on a sample of ``COVERAGE_SAMPLE`` rows.
"""

from __future__ import annotations

import numpy as np

from featurize import InvalidInputError, missing_labels
from pipelines._neighbours import closest, nearest, normalised

STRATEGIES = ("auto", "typical", "uncertain", "random")
# The switch's two parts were chosen on validation quarters of the dtd10,
# chest_xray, hymenoptera and emotion pools, their test sets unread (BENCHMARKS.md,
# "What to label first"). Labels per class before the head is asked: a two-class
# head has one boundary, which one label on each side places (chest_xray: +16
# points over random at 2 labels per class, against +7 when it waited for two);
# with more classes one each left dtd10 7 points behind typicality.
PER_CLASS_BINARY, PER_CLASS = 1, 2
# Share of the pool within a class-pure radius of a label before uncertainty pays.
# On tweets (emotion, MiniLM) the labels covered 1-10% even at 20 per class, and
# staying with typicality there gained up to 3.5 points a budget over switching
# (+1.6 on the mean); the image pools passed 10% from 1-2 labels per class.
COVERED = 0.10
# ProbCover's purity: the radius is the largest within which this share of the
# sample has no item of another k-means cluster.
PURITY = 0.95
COVERAGE_SAMPLE = 2_000
CANDIDATES = 10
TYPICALITY_NEIGHBOURS = 20
TYPICALITY_SAMPLE = 1_000
MINIBATCH_FROM = 20_000


def next_to_label(X, y, n: int, *, random_state=None, strategy: str = "auto",
                  featurizer=None) -> np.ndarray:  # fmt: skip
    """Indices of ``n`` unlabelled rows of ``X`` to label next.

    Parameters
    ----------
    X : array-like of shape (n_items, n_features), or inputs with ``featurizer``
        The pool's embeddings (``featurize embed``'s, or any), or the images or
        texts themselves, embedded by ``featurizer`` through its cache.
    y : array-like of shape (n_items,)
        Labels so far; ``None`` or NaN where an item has none.
    n : int
        How many to propose.
    random_state : int, optional
        Seeds the clustering (and ``strategy="random"``).
    strategy : {"auto", "typical", "uncertain", "random"}
        ``"auto"``: typicality until the labels place the head's boundaries
        and cover a tenth of the pool, then uncertainty made diverse (the method
        decides, round by round, from ``X`` and ``y`` alone). The others force
        one of them, or a uniform draw (a baseline).
    featurizer : ImageFeaturizer or TextFeaturizer, optional
        Embeds ``X`` first.

    Returns
    -------
    ndarray of int
        Positions in ``X``, none of them labelled, the most useful first.

    Examples
    --------
    >>> import numpy as np
    >>> from pipelines import next_to_label
    >>> rng = np.random.default_rng(0)
    >>> X = np.r_[rng.normal(0, 1, (50, 4)), rng.normal(6, 1, (50, 4))]
    >>> picked = next_to_label(X, [None] * 100, 2, random_state=0)
    >>> sorted(int(i) // 50 for i in picked)  # one from each cluster
    [0, 1]
    """
    if strategy not in STRATEGIES:
        raise ValueError(
            f"strategy must be one of {list(STRATEGIES)}; received {strategy!r}."
        )
    if featurizer is not None:
        X = featurizer.fit().transform(X)
    X = np.asarray(X, dtype=np.float32)
    if X.ndim != 2:
        raise InvalidInputError(
            f"X must be embeddings of shape (n_items, n_features); received shape "
            f"{X.shape}. Pass featurizer= to embed images or texts first."
        )
    missing = missing_labels(y)
    if len(missing) != len(X):
        raise InvalidInputError(
            f"y must hold one label (or None) per row of X: received {len(X)} rows "
            f"and {len(missing)} labels."
        )
    pool = np.flatnonzero(missing)
    n = int(n)
    if not 0 < n <= len(pool):
        raise ValueError(
            f"n must be between 1 and the {len(pool)} unlabelled rows; received {n}."
        )
    rng = np.random.default_rng(random_state)
    labels = np.asarray(y, dtype=object)[~missing]
    if strategy == "random":
        return rng.choice(pool, n, replace=False)
    unit = normalised(X)
    if strategy == "auto":
        # Its own generator, so that the picks of a round that stays typical are
        # those of strategy="typical".
        warm = _warm(unit, ~missing, labels, np.random.default_rng(random_state))
        strategy = "uncertain" if warm else "typical"
    if strategy == "uncertain" and len(np.unique(labels.astype(str))) >= 2:
        return _uncertain(unit, ~missing, labels, pool, n, rng)
    return _typical(unit, ~missing, pool, n, rng)


def _warm(unit, labelled, labels, rng) -> bool:
    """Whether the head is worth asking: each class labelled on each side of
    its boundaries, and the labels covering ``COVERED`` of the pool."""
    classes, counts = np.unique(labels.astype(str), return_counts=True)
    if len(classes) < 2:
        return False
    if counts.min() < (PER_CLASS_BINARY if len(classes) == 2 else PER_CLASS):
        return False
    return coverage(unit, labelled, len(classes), rng) >= COVERED


def coverage(unit, labelled, n_classes: int, rng) -> float:
    """ProbCover's coverage, label-free: the share of (a sample of) the pool
    within the class-pure radius of a labelled item. The radius is the largest
    within which ``PURITY`` of the sample has no item of another of
    ``n_classes`` k-means clusters."""
    rows = np.arange(len(unit))
    if len(rows) > COVERAGE_SAMPLE:
        rows = rng.choice(rows, COVERAGE_SAMPLE, replace=False)
    sample = unit[rows]
    ids = _clusters(sample, n_classes, rng)
    if ids.max() == 0:  # one cluster: every radius is pure
        return 1.0
    other = np.empty(len(sample), np.float32)
    for cluster in np.unique(ids):
        mine = ids == cluster
        other[mine] = closest(sample[mine], sample[~mine])
    radius = np.quantile(1 - other, 1 - PURITY)
    return float(np.mean(1 - closest(sample, unit[labelled]) <= radius))


def _clusters(rows, k: int, rng) -> np.ndarray:
    """k-means cluster ids of ``rows`` (mini-batch for large sets)."""
    from sklearn.cluster import KMeans, MiniBatchKMeans

    k = max(1, min(k, len(rows)))
    seed = int(rng.integers(2**31))
    if len(rows) >= MINIBATCH_FROM:
        model = MiniBatchKMeans(k, random_state=seed, batch_size=4096, n_init=3)
    else:
        model = KMeans(k, random_state=seed, n_init=1)
    return model.fit_predict(rows)


def _typical(unit, labelled, pool, n: int, rng) -> np.ndarray:
    """TypiClust: the most typical item of each of the largest clusters that
    hold no label yet (then of the largest others)."""
    k = int(labelled.sum()) + n
    ids = _clusters(unit, k, rng)
    sizes = np.bincount(ids, minlength=ids.max() + 1)
    covered = np.zeros(len(sizes), bool)
    covered[np.unique(ids[labelled])] = True
    order = sorted(range(len(sizes)), key=lambda c: (covered[c], -sizes[c]))
    in_pool = np.zeros(len(unit), bool)
    in_pool[pool] = True
    picked = []
    for cluster in order:
        members = np.flatnonzero((ids == cluster) & in_pool)
        if len(members):
            picked.append(_most_typical(unit, members, rng))
        if len(picked) == n:
            break
    if len(picked) < n:  # fewer non-empty clusters than asked: fill at random
        rest = np.setdiff1d(pool, picked)
        picked += list(rng.choice(rest, n - len(picked), replace=False))
    return np.asarray(picked, dtype=int)


def _most_typical(unit, members, rng) -> int:
    """The member with the densest neighbourhood: the smallest mean cosine
    distance to its nearest fellow members (on a sample of a large cluster)."""
    if len(members) <= 2:
        return int(members[0])
    if len(members) > TYPICALITY_SAMPLE:
        members = rng.choice(members, TYPICALITY_SAMPLE, replace=False)
    _, similarities = nearest(unit[members], TYPICALITY_NEIGHBOURS)
    return int(members[np.argmax(similarities.mean(axis=1))])


def _uncertain(unit, labelled, labels, pool, n: int, rng) -> np.ndarray:
    """The most uncertain item of each of n clusters of the most uncertain
    candidates (smallest margin between the two likeliest classes)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    # The head featurize's pipelines fit (scaled features, logistic regression),
    # class-balanced so that a rare class's boundary is asked about too.
    head = make_pipeline(
        StandardScaler(), LogisticRegression(max_iter=2000, class_weight="balanced")
    )
    head.fit(unit[labelled], labels.astype(str))
    probabilities = head.predict_proba(unit[pool])
    top = np.sort(probabilities, axis=1)[:, -2:]
    margin = top[:, 1] - top[:, 0]
    candidates = np.argsort(margin, kind="stable")[: min(len(pool), CANDIDATES * n)]
    if len(candidates) <= n:
        return pool[candidates]
    ids = _clusters(unit[pool[candidates]], n, rng)
    picked = []
    for cluster in range(ids.max() + 1):
        members = candidates[ids == cluster]
        if len(members):
            picked.append(members[np.argmin(margin[members])])
    picked = sorted(picked, key=lambda k: margin[k])
    if len(picked) < n:
        rest = [c for c in candidates if c not in set(picked)]
        picked += rest[: n - len(picked)]
    return pool[np.asarray(picked, dtype=int)]
