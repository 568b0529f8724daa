"""The four kinds of finding, each from arrays the audit already holds: content
digests, unit-length embeddings, labels. One row per finding, in ``COLUMNS``."""

from __future__ import annotations

import numpy as np

from featurize import missing_labels
from pipelines._neighbours import nearest, normalised

KINDS = ("exact_duplicate", "near_duplicate", "label_issue", "outlier")
# What the audit could not look at, one row per item, so that the table and the
# report say what "none found" covers: items that could not be read or embedded,
# and items a check left out (the reason says which check, and why).
UNSEEN = ("unreadable", "unchecked")
COLUMNS = [
    "kind", "index", "other_index", "score", "label", "other_label",
    "suggested_label", "conflict", "reason",
]  # fmt: skip
# Cosine similarity from which two items are near duplicates (BENCHMARKS.md, "Audit").
# Images (Lite0, avg-pooled final layer), with planted copies (JPEG quality 70, a 10%
# crop, a shrink to 80%): on hymenoptera every copy scored >= 0.899 and the most
# similar pair of different photos 0.82; on dtd10's textures crops fall to 0.86 while
# different textures of one class reach 0.87. Texts (MiniLM, sms_spam): 89% of edited
# copies (case and punctuation dropped, a word dropped or added) score >= 0.90; the
# pairs of different messages from 0.90 up were rewordings of one message (12 of 12
# sampled), below it they mix with different messages ("I'm at work/home. Please
# call" at 0.86).
#
# Images have no such number: on chest radiographs (one anatomy, far from ImageNet)
# the typical nearest neighbour already scores 0.89, so a fixed 0.85 linked 87% of the
# set into one group. Their rule is relative to the data set instead (None here):
# two items are near duplicates when their cosine distance is at most NEAR_RATIO of
# the distance from either to its NEIGHBOURS-th nearest neighbour (its typical
# neighbours), and their similarity at least NEAR_FLOOR. Chosen on seed 0 of the
# audit benchmark (hymenoptera, dtd10, chest_xray with planted copies; reported on
# the other seeds) and the committed sample: the two found 190 of 200 planted pairs
# on hymenoptera with no false pair (0.85: 167, 0), 177 of 197 on dtd10 (0.85: 163),
# and no false pair on chest_xray (0.85: 5,545). Without the floor, two different
# ants at 0.76 passed on the 72-image sample, whose typical neighbours are far.
NEAR_THRESHOLDS = {"image": None, "text": 0.90}
NEAR_RATIO = 0.5
NEAR_FLOOR = 0.8
# Neighbours looked at per item: duplicates beyond the k-th most similar are missed.
NEIGHBOURS = 10
# Where a set is too small to tell its typical neighbours (fewer than NEIGHBOURS
# others), images fall back to the similarity measured on photos.
SMALL_SET_THRESHOLD = 0.85
# Robust z-scores (median and MAD) from which an item is an outlier. Far from its
# neighbours: on hymenoptera the largest of a real photo was 4.3, and the set's own
# "image could not be found" placeholder scored 5.2-6.0. Far weaker activations
# than the rest (the embedding's length): a blank image scored -4.2 on both sets,
# real photos and textures no lower than -3.1.
OUTLIER_Z = 6.0
FAINT_Z = -4.0
# An out-of-fold model whose accuracy on the given labels is below chance plus this
# share of the way to perfect is too weak for confident learning: most of what it
# "confidently" disagrees with is its own error (on a brain-MRI set whose folds
# lacked whole classes it flagged 30% of the labels), so nothing is flagged.
WEAK_MODEL = 0.5
DUPLICATES = ("exact_duplicate", "near_duplicate")


def _rows(kind, pairs):
    return [dict(zip(COLUMNS, (kind, *row, None))) for row in pairs]


def unseen(kind: str, indices, reason: str) -> list[dict]:
    """One ``unreadable`` or ``unchecked`` row per item of ``indices``."""
    return [
        dict(zip(COLUMNS, (kind, int(i), None, None, None, None, None, False, reason)))
        for i in indices
    ]


def _differ(labels, i: int, j: int) -> bool:
    """Two labels that contradict each other (a missing label contradicts none)."""
    pair = [labels[i], labels[j]]
    return not missing_labels(pair).any() and pair[0] != pair[1]


def first_pairs(keys) -> list[tuple[int, int]]:
    """``(first, later)`` for each item whose key an earlier item has (None is no
    key): equal digests, or members of one group."""
    first: dict = {}
    pairs = []
    for i, key in enumerate(keys):
        if key is not None:
            j = first.setdefault(key, i)
            if j != i:
                pairs.append((j, i))
    return pairs


def exact_duplicates(digests, labels) -> list[dict]:
    """Items whose content digests are equal: each later copy against the first
    one, flagged ``conflict`` where their labels differ."""
    return _rows(
        "exact_duplicate",
        [(j, i, 1.0, labels[j], labels[i], None, _differ(labels, i, j))
         for j, i in first_pairs(digests)],
    )  # fmt: skip


def near_cuts(similarities, threshold: float | None) -> np.ndarray:
    """Each item's lowest similarity to a near duplicate: ``threshold`` for every
    item, or with ``threshold=None`` the data-relative rule (see
    ``NEAR_THRESHOLDS``) from each item's ``similarities`` to its nearest
    neighbours (most similar first). A pair is a near duplicate when its
    similarity reaches both members' cuts."""
    similarities = np.asarray(similarities, dtype=np.float64)
    n = len(similarities)
    if threshold is None and similarities.ndim == 2:
        if similarities.shape[1] >= NEIGHBOURS:
            typical = similarities[:, NEIGHBOURS - 1]
            cuts = 1 - NEAR_RATIO * (1 - np.clip(typical, -1, 1))
            return np.maximum(cuts, NEAR_FLOOR)
        threshold = SMALL_SET_THRESHOLD
    return np.full(n, float(threshold))


def similar_pairs(unit, threshold: float | None, *, backend="auto", digests=None,
                  neighbours=None):  # fmt: skip
    """Pairs ``(i, j, similarity)`` with ``i < j`` that are near duplicates (see
    :func:`near_cuts`), excluding pairs of equal digests (exact duplicates are
    reported as such). ``neighbours`` is ``nearest(unit, NEIGHBOURS)`` where the
    caller has it."""
    if neighbours is None:
        neighbours = nearest(unit, NEIGHBOURS, backend=backend)
    indices, similarities = neighbours
    cuts = near_cuts(similarities, threshold)
    pairs = {}
    for i, (row, sims) in enumerate(zip(indices, similarities)):
        for j, similarity in zip(row, sims):
            if similarity < cuts[i] or j < 0:
                break
            if similarity < cuts[j]:
                continue
            a, b = (i, int(j)) if i < j else (int(j), i)
            same = digests is not None and digests[a] is not None
            if same and digests[a] == digests[b]:
                continue
            pairs[a, b] = max(float(similarity), pairs.get((a, b), -1.0))
    return [(a, b, s) for (a, b), s in sorted(pairs.items())]


def training_copies(rows, groups, training, digests, labels, unit) -> list[dict]:
    """Every held-out item with a copy in training, paired with a training copy.

    Duplicate ``rows`` across a training and a held-out item are turned so that
    the held-out item is ``index`` and its training copy ``other_index`` (in
    place); a held-out item whose group holds training items but no row pairs
    it with one (its pair was with another held-out copy) gets a row with the
    training copy: equal content first, else the most similar (``unit`` rows).
    ``training`` is ``(training mask, held-out mask)``, or None without both.
    """
    if training is None:
        return []
    train, held = training
    paired = set()
    for row in rows:
        a, b = row["index"], row["other_index"]
        if row["kind"] not in DUPLICATES or b is None:
            continue
        if train[a] and held[b]:
            row["index"], row["other_index"] = b, a
            row["label"], row["other_label"] = row["other_label"], row["label"]
        paired.add((row["index"], row["other_index"]))
    mates: dict = {}
    for t in np.flatnonzero(train):
        mates.setdefault(groups[t], []).append(int(t))
    added = []
    for i in np.flatnonzero(held):
        copies = mates.get(groups[i], [])
        if not copies or any((i, t) in paired for t in copies):
            continue
        same = [
            t for t in copies if digests[i] is not None and digests[t] == digests[i]
        ]
        if same:
            kind, j, score = "exact_duplicate", same[0], 1.0
        else:
            similarities = unit[copies] @ unit[i]
            best = int(np.argmax(similarities))
            kind, j, score = "near_duplicate", copies[best], float(similarities[best])
        added += _rows(kind, [(int(i), j, score, labels[i], labels[j], None,
                               _differ(labels, i, j))])  # fmt: skip
    return added


def near_duplicates(pairs, labels) -> list[dict]:
    """Near-duplicate findings of :func:`similar_pairs`, most similar first."""
    pairs = sorted(pairs, key=lambda pair: -pair[2])
    return _rows(
        "near_duplicate",
        [(a, b, s, labels[a], labels[b], None, _differ(labels, a, b))
         for a, b, s in pairs],
    )  # fmt: skip


def checkable(labels, groups=None) -> tuple[np.ndarray, dict]:
    """Which items the out-of-fold model can check: a mask, and for each class it
    cannot, why. A class needs two items (two groups, where copies are grouped)
    to be held out in one fold while the model learns it from another; and two
    such classes are needed at all."""
    labels = np.asarray(labels)
    classes, counts = np.unique(labels, return_counts=True)
    reasons = {}
    for label, count in zip(classes, counts):
        members = labels == label
        found = count if groups is None else len(np.unique(groups[members]))
        if found < 2:
            what = "item" if groups is None or count == 1 else "group of copies"
            reasons[label] = (
                f"class {str(label)!r} has {found} {what}: confident learning needs 2 "
                f"or more, one to learn the class from while the other is held out"
            )
    mask = ~np.isin(labels, list(reasons))
    left = len(classes) - len(reasons)
    if left < 2:
        for label in classes:
            reasons.setdefault(
                label,
                f"only {left} class can be checked ({len(classes)} in the set): "
                f"the out-of-fold model needs 2 or more",
            )
        mask[:] = False
    return mask, reasons


def out_of_fold_probabilities(features, labels, *, groups=None, seed=0):
    """Cross-validated class probabilities of a logistic regression on the
    embeddings: ``(probabilities, classes)``. Every class needs two items (two
    groups with ``groups``): see :func:`checkable`."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import (
        StratifiedGroupKFold,
        StratifiedKFold,
        cross_val_predict,
    )
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    labels = np.asarray(labels)
    classes, counts = np.unique(labels, return_counts=True)
    folds = int(min(5, counts.min()))
    splits = None
    if groups is not None:
        groups = np.asarray(groups)
        # Each class needs a group per fold, or some fold trains without it.
        for label in classes:
            folds = min(folds, len(np.unique(groups[labels == label])))
        splits = _every_class_trained(
            StratifiedGroupKFold(folds, shuffle=True, random_state=seed),
            labels, groups, classes,
        )  # fmt: skip
    if splits is None:  # ungrouped, or groups that empty a class from a fold: split
        splits = list(
            StratifiedKFold(folds, shuffle=True, random_state=seed).split(
                labels, labels
            )
        )
    # Strong regularisation: out-of-fold probabilities should be calibrated, not
    # confident, for confident learning to rank them.
    head = make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=5000))
    probabilities = cross_val_predict(
        head, features, labels, cv=splits, method="predict_proba"
    )
    return probabilities, classes


def _every_class_trained(cv, labels, groups, classes):
    """``cv``'s folds where every training part holds every class; None where a
    group arrangement leaves one out (the caller then splits the groups)."""
    splits = list(cv.split(labels, labels, groups))
    for train, _ in splits:
        if len(np.unique(labels[train])) < len(classes):
            return None
    return splits


def label_issues(probabilities, classes, labels) -> tuple[list[dict], np.ndarray]:
    """Likely label errors by confident learning (cleanlab's defaults), worst
    first, and every item's label quality (cleanlab's self-confidence: the
    out-of-fold probability of its given label); the score is one minus it."""
    from cleanlab.filter import find_label_issues
    from cleanlab.rank import get_label_quality_scores

    codes = np.searchsorted(classes, labels)
    ranked = find_label_issues(
        codes, probabilities, return_indices_ranked_by="self_confidence"
    )
    quality = get_label_quality_scores(codes, probabilities)
    suggested = classes[probabilities.argmax(axis=1)]
    rows = _rows(
        "label_issue",
        [(int(i), None, 1 - float(quality[i]), labels[i], None, suggested[i], False)
         for i in ranked],
    )  # fmt: skip
    return rows, quality


def model_strength(probabilities, classes, labels) -> dict:
    """How well the out-of-fold model predicts the given labels: ``accuracy``,
    ``chance`` (the largest class's share) and ``weak`` (see ``WEAK_MODEL``)."""
    labels = np.asarray(labels)
    accuracy = float(np.mean(classes[probabilities.argmax(axis=1)] == labels))
    chance = float(np.unique(labels, return_counts=True)[1].max() / len(labels))
    weak = accuracy < chance + WEAK_MODEL * (1 - chance)
    return {"accuracy": accuracy, "chance": chance, "weak": bool(weak)}


def outliers(embeddings, labels, *, neighbours=None) -> list[dict]:
    """Items unlike the rest: far from their nearest neighbours in the whole set or
    in their class (a robust z-score of the mean cosine distance to the
    ``NEIGHBOURS`` nearest, at least ``OUTLIER_Z``), or with far fainter features
    than the rest (a blank image: the robust z-score of the embedding's length at
    most ``FAINT_Z``). The score is the larger of the isolation z and minus the
    length z, scaled to the same cut-off. ``neighbours`` is ``nearest(unit rows,
    NEIGHBOURS)`` over the whole set, where the caller has it."""
    labels = np.asarray(labels, dtype=object)
    unit = normalised(embeddings)
    z = _isolation(unit, neighbours)
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        if len(members) > 2 * NEIGHBOURS:
            z[members] = np.fmax(z[members], _isolation(unit[members]))
    length = _robust_z(np.linalg.norm(np.asarray(embeddings, np.float64), axis=1))
    z = np.fmax(z, length * (OUTLIER_Z / FAINT_Z))
    found = np.flatnonzero(z >= OUTLIER_Z)
    found = found[np.argsort(-z[found], kind="stable")]
    return _rows(
        "outlier", [(int(i), None, float(z[i]), labels[i], None, None, False)
                    for i in found],
    )  # fmt: skip


def _isolation(unit, neighbours=None) -> np.ndarray:
    """Robust z-scores of each row's mean distance to its nearest neighbours."""
    _, similarities = nearest(unit, NEIGHBOURS) if neighbours is None else neighbours
    if similarities.shape[1] == 0:
        return np.zeros(len(unit))
    return _robust_z(1 - similarities.mean(axis=1).astype(np.float64))


def _robust_z(values) -> np.ndarray:
    """(value - median) / (1.4826 MAD), the spread floored at 5% of the median so
    that a set of near-identical items does not make every small gap an outlier."""
    median = np.median(values)
    spread = 1.4826 * np.median(np.abs(values - median))
    return (values - median) / max(spread, 1e-6, 0.05 * abs(median))
