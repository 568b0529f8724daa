"""What to label first: coverage from zero labels, uncertainty near a boundary,
diverse batches, and never an item already labelled."""

from __future__ import annotations

import numpy as np
import pytest

from pipelines import next_to_label, spread_labels
from pipelines._labelling.select import PER_CLASS


def clusters(sizes, seed=0, spread=0.3, dim=8):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(len(sizes), dim)) * 4
    rows = [centre + spread * rng.normal(size=(size, dim))
            for centre, size in zip(centres, sizes)]  # fmt: skip
    return np.concatenate(rows), np.repeat(np.arange(len(sizes)), sizes)


def test_from_zero_labels_every_cluster_is_covered_once():
    X, cluster = clusters([200, 100, 50, 30, 20])
    for seed in range(3):
        picked = next_to_label(X, [None] * len(X), 5, random_state=seed)
        assert sorted(cluster[picked]) == [0, 1, 2, 3, 4]
    # Random picks miss the small clusters most of the time.
    missed = sum(
        len(set(cluster[next_to_label(X, [None] * len(X), 5, random_state=seed,
                                      strategy="random")])) < 5
        for seed in range(10)
    )  # fmt: skip
    assert missed >= 5


def test_typical_items_sit_at_their_clusters_centres():
    X, cluster = clusters([100, 100], spread=1.0)
    picked = next_to_label(X, [None] * len(X), 2, random_state=0)
    for index in picked:
        members = X[cluster == cluster[index]]
        distances = np.linalg.norm(members - members.mean(axis=0), axis=1)
        mine = np.linalg.norm(X[index] - members.mean(axis=0))
        assert mine <= np.quantile(distances, 0.25)


def test_with_labels_it_asks_about_the_boundary_and_spreads_the_batch():
    rng = np.random.default_rng(0)
    X = rng.uniform(-1, 1, size=(2000, 2))
    truth = np.where(X[:, 0] > 0, "right", "left")
    labels = np.array([None] * len(X), dtype=object)
    known = np.r_[
        np.flatnonzero(truth == "left")[:5], np.flatnonzero(truth == "right")[:5]
    ]
    labels[known] = truth[known]
    assert min(np.unique(truth[known], return_counts=True)[1]) >= PER_CLASS
    picked = next_to_label(X, labels, 10, random_state=0)
    assert not set(picked) & set(known)
    assert np.abs(X[picked, 0]).max() < 0.25  # near the planted boundary x0 = 0
    # Spread along it, not ten copies of one confusion.
    assert np.ptp(X[picked, 1]) > 1.0


def test_it_never_proposes_a_labelled_item_and_checks_its_inputs():
    X, cluster = clusters([30, 30])
    labels = [None] * 60
    labels[0], labels[40] = 0, 1
    labels[5] = float("nan")  # NaN is "no label" too
    picked = next_to_label(X, labels, 58, random_state=0)
    assert len(set(picked)) == 58
    assert not {0, 40} & set(picked)
    with pytest.raises(ValueError, match="between 1 and the 58 unlabelled rows"):
        next_to_label(X, labels, 59)
    with pytest.raises(ValueError, match="one label \\(or None\\) per row"):
        next_to_label(X, labels[:10], 2)
    with pytest.raises(ValueError, match="strategy must be one of"):
        next_to_label(X, labels, 2, strategy="margin")
    with pytest.raises(ValueError, match="embeddings of shape"):
        next_to_label(X[0], labels, 2)


def noise_and_blobs(seed=0):
    """Isotropic noise with labels that no neighbourhood follows (as tweets'
    emotions in MiniLM's space), and two far blobs with one label each."""
    rng = np.random.default_rng(seed)
    noise = rng.normal(size=(600, 64))
    noisy = np.array([None] * 600, dtype=object)
    noisy[:9] = ["a", "b", "c"] * 3
    blobs, truth = clusters([150, 150], seed=seed, spread=1.0)
    labels = np.array([None] * 300, dtype=object)
    labels[[0, 150]] = truth[[0, 150]]
    return (noise, noisy), (blobs, labels, truth)


def test_auto_turns_to_uncertainty_only_where_the_labels_cover_the_pool():
    (noise, noisy), (blobs, labels, _) = noise_and_blobs()
    for seed in range(2):
        # Labels cover nothing of the noise: typicality goes on.
        auto = next_to_label(noise, noisy, 6, random_state=seed)
        typical = next_to_label(noise, noisy, 6, random_state=seed, strategy="typical")
        assert auto.tolist() == typical.tolist()
        # One label on each side of two far blobs places the boundary already.
        auto = next_to_label(blobs, labels, 6, random_state=seed)
        asked = next_to_label(blobs, labels, 6, random_state=seed, strategy="uncertain")
        assert auto.tolist() == asked.tolist()
        assert (
            auto.tolist()
            != next_to_label(
                blobs, labels, 6, random_state=seed, strategy="typical"
            ).tolist()
        )


def test_spread_labels_follow_the_neighbourhoods_and_only_where_they_exist():
    (noise, noisy), (blobs, labels, truth) = noise_and_blobs()
    spread = spread_labels(blobs, labels, random_state=0)
    assert spread.spread
    assert spread.coverage > 0.5
    reached = spread.labels != None  # noqa: E711
    assert reached.sum() > 250
    assert (spread.labels[reached] == truth[reached]).all()
    assert spread.weights[[0, 150]].tolist() == [1.0, 1.0]  # given labels stay
    assert ((spread.weights[reached] > 0.5) & (spread.weights[reached] <= 1)).all()
    assert type(spread.labels[1]) is type(labels[0])  # an int stays an int
    assert not spread_labels(blobs, labels, when="never").spread
    # No class-pure neighbourhoods: auto leaves the labels as they are.
    left = spread_labels(noise, noisy, random_state=0)
    assert not left.spread
    assert left.coverage < 0.1
    assert (left.labels == noisy).all()
    assert left.weights.sum() == 9
    with pytest.raises(ValueError, match="when must be one of"):
        spread_labels(blobs, labels, when="sometimes")


def test_auto_does_not_spread_where_the_folds_say_it_costs():
    # Two far blobs, but the class is a faint direction inside each: the
    # neighbourhoods cover the pool, and spreading along them would mislabel.
    rng = np.random.default_rng(0)
    centres = np.zeros((2, 9))
    centres[:, 0] = [6, -6]
    X = (
        centres[rng.integers(2, size=400)]
        + np.c_[rng.normal(size=(400, 8)), 0.05 * rng.normal(size=400)]
    )
    truth = np.where(X[:, 8] > 0, "up", "down")
    labels = np.array([None] * 400, dtype=object)
    for name in ("up", "down"):
        labels[np.flatnonzero(truth == name)[:10]] = name
    spread = spread_labels(X, labels, random_state=0)
    assert spread.coverage >= 0.1
    plain, spreading = spread.accuracy
    assert spreading < plain
    assert not spread.spread
    assert spread_labels(X, labels, when="always", random_state=0).spread
