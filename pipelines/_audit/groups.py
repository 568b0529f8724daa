"""Groups of copies: items joined by exact or near duplicates, so that model
selection keeps each group on one side of every split."""

from __future__ import annotations

import os
import re
import warnings

import numpy as np

from pipelines._audit.findings import (
    NEIGHBOURS,
    first_pairs,
    near_cuts,
    similar_pairs,
)
from pipelines._neighbours import nearest, normalised


def components(n: int, pairs) -> np.ndarray:
    """Group ids (0..g-1, numbered by first member) of the graph on ``n`` items
    whose edges are ``pairs``."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    pairs = np.asarray(list(pairs), dtype=int).reshape(-1, 2)
    graph = coo_matrix((np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])), shape=(n, n))
    _, labels = connected_components(graph, directed=False)
    _, first = np.unique(labels, return_index=True)
    return np.argsort(np.argsort(first))[labels]


def copies(result, threshold: float | None, *, backend="auto", neighbours=None):
    """The exact-duplicate pairs, the near-duplicate ``(i, j, similarity)``
    triples of one :class:`featurize.Embeddings` (in its positions), and what
    :func:`linked_groups` needs to group them: ``(unit rows, cuts)`` of every
    position (zero rows and infinite cuts where an item failed). ``neighbours``:
    those of its embedded rows, where the caller has them."""
    digests = list(result.digests)
    kept = np.flatnonzero(result.ok)
    unit = normalised(result.array[kept])
    if neighbours is None:
        neighbours = nearest(unit, NEIGHBOURS, backend=backend)
    near = similar_pairs(
        unit, threshold, digests=[digests[i] for i in kept], neighbours=neighbours
    )
    rows = np.zeros((len(digests), unit.shape[1]), np.float32)
    rows[kept] = unit
    cuts = np.full(len(digests), np.inf)
    cuts[kept] = near_cuts(neighbours[1], threshold)
    pairs = [(int(kept[a]), int(kept[b]), s) for a, b, s in near]
    return first_pairs(digests), pairs, (rows, cuts)


def linked_groups(n: int, exact, near, linkage) -> np.ndarray:
    """Group ids (0..g-1, numbered by first member) in which every two members are
    near duplicates of each other (complete linkage), so that groups never chain:
    exact copies (``exact`` pairs) always share a group; ``near`` pairs, most
    similar first, join two groups only where every pair across them reaches both
    members' cuts. ``linkage`` is ``(unit rows, cuts)`` from :func:`copies`."""
    rows, cuts = linkage
    group = np.arange(n)
    members = {i: [i] for i in range(n)}

    def join(a: int, b: int) -> None:
        big, small = (a, b) if len(members[a]) >= len(members[b]) else (b, a)
        group[members[small]] = big
        members[big] += members.pop(small)

    for a, b in exact:
        if group[a] != group[b]:
            join(group[a], group[b])
    for a, b, _ in sorted(near, key=lambda pair: -pair[2]):
        first, second = group[a], group[b]
        if first == second:
            continue
        left, right = members[first], members[second]
        similarity = rows[left] @ rows[right].T
        needed = np.maximum(cuts[left][:, None], cuts[right][None, :])
        if (similarity >= needed - 1e-6).all():
            join(first, second)
    _, first, inverse = np.unique(group, return_index=True, return_inverse=True)
    return np.argsort(np.argsort(first))[inverse]


def duplicate_groups(result, threshold: float | None, *, backend="auto"):
    """Group ids of one embedding call's items: equal content digests share a
    group, and so do near duplicates (see :func:`similar_pairs`; ``None``: the
    data-relative rule) that are all near duplicates of each other; failed items
    stand alone."""
    exact, near, linkage = copies(result, threshold, backend=backend)
    return linked_groups(len(result), exact, near, linkage)


def held_out_copies(train, held_out, threshold: float | None) -> tuple[int, int]:
    """How many items of ``held_out`` have an exact copy in ``train``, and how many
    more a near duplicate there (both :class:`featurize.Embeddings`)."""
    seen = {digest for digest in train.digests if digest is not None}
    exact = {i for i, digest in enumerate(held_out.digests) if digest in seen}
    a, b = np.flatnonzero(train.ok), np.flatnonzero(held_out.ok)
    unit = normalised(np.concatenate([train.array[a], held_out.array[b]]))
    near = set()
    for i, j, _ in similar_pairs(unit, threshold):
        if i < len(a) <= j:  # pairs come with i < j: train first, held-out second
            near.add(int(b[j - len(a)]))
    return len(exact), len(near - exact)


def joined(*groupings) -> np.ndarray:
    """One group per set of items that share a group in any of ``groupings``."""
    pairs = [pair for grouping in groupings for pair in first_pairs(grouping)]
    return components(len(groupings[0]), pairs)


class GroupPatternError(ValueError):
    """A ``--group-pattern`` that cannot group the images: not a regular
    expression, or matching none of their file names."""


def groups_from_names(paths, pattern: str) -> np.ndarray:
    """Group ids from file names: images whose names hold the same first match of
    the regular expression ``pattern`` (a patient id such as ``person\\d+``) share
    a group; a name without a match is a group of its own.

    Raises
    ------
    GroupPatternError
        ``pattern`` is not a regular expression, or matches no file name (it would
        group nothing while the split says it is grouped). A pattern that matches
        only some names warns, with the counts.
    """
    try:
        expression = re.compile(pattern)
    except re.error as error:
        raise GroupPatternError(
            f"The group pattern {pattern!r} is not a regular expression ({error}); "
            f"pass one such as 'person\\d+' that matches the shared part of names."
        ) from None
    keys = []
    for i, path in enumerate(paths):
        found = expression.search(os.path.basename(os.fspath(path)))
        keys.append(("name", found.group(0)) if found else ("alone", i))
    matched = sum(1 for kind, _ in keys if kind == "name")
    names = [os.path.basename(os.fspath(path)) for path in list(paths)[:3]]
    if keys and not matched:
        raise GroupPatternError(
            f"The group pattern {pattern!r} matches none of the {len(keys)} file "
            f"names (such as {names}): it would group nothing. Pass a pattern that "
            f"matches the shared part of the names, e.g. 'person[0-9]+'."
        )
    if matched < len(keys):
        unmatched = [
            os.path.basename(os.fspath(path))
            for path, (kind, _) in zip(paths, keys)
            if kind == "alone"
        ]
        warnings.warn(
            f"The group pattern {pattern!r} matches {matched} of {len(keys)} file "
            f"names; the other {len(keys) - matched} (such as {unmatched[:3]}) are "
            f"each a group of their own.",
            UserWarning,
            stacklevel=2,
        )
    return joined(keys)
