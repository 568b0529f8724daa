"""``audit_dataset``: read a data set as ``featurize train`` would, embed it once
(through the cache), and list what would make a score on it lie."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field

import numpy as np

from featurize import (
    ImageFeaturizer,
    InvalidLabelsError,
    MissingDependencyError,
    TextFeaturizer,
    missing_labels,
)
from pipelines._audit import findings as find
from pipelines._audit.groups import copies, linked_groups
from pipelines._audit.report import write_report
from pipelines._classifiers import describe_featurizer
from pipelines._data import TRAIN_SPLITS, list_splits, load_image_folder
from pipelines._manifests import read_manifest, read_text_table
from pipelines._neighbours import nearest, normalised
from pipelines._tables import TABLE_SUFFIXES, table_suffix


@dataclass
class Audit:
    """What :func:`audit_dataset` found.

    Attributes
    ----------
    findings : pandas.DataFrame
        One row per finding, sorted by kind then score: ``kind`` (one of
        ``exact_duplicate``, ``near_duplicate``, ``label_issue``, ``outlier``;
        then ``unreadable``, an item that could not be read or embedded, and
        ``unchecked``, an item a check left out, each with its ``reason``),
        ``path`` (``row`` and ``text`` for a text table), ``other_path`` (the other
        member of a duplicate pair), ``split``, ``other_split``, ``label``,
        ``other_label``, ``suggested_label`` (label issues), ``score`` (cosine
        similarity for duplicates, 1 - label quality for label issues, robust
        z-score of isolation for outliers), ``conflict`` (a duplicate pair with
        different labels) and ``reason`` (why an item was not read or checked).
    items : pandas.DataFrame
        One row per item read: ``path`` (or ``row`` and ``text``), ``split``,
        ``label``, ``embedded``, ``group`` (items joined by exact or near
        duplicates share a group; pass it as ``groups=`` to model selection) and
        ``label_quality`` (the out-of-fold probability of the given label: sort by
        it to look past the label issues confident learning flags).
    skipped : pandas.DataFrame
        The items that could not be embedded (the featurizer's ``failures``).
    modality, description, near_threshold, seconds
        ``"image"`` or ``"text"``, the featurizer used, the similarity from which
        a pair is a near duplicate (None: the data-relative rule, see
        :meth:`near_rule`), and the audit's wall time.
    stats : dict
        The embedding call's ``stats`` (``cache_hits``, ``computed``, ...): after a
        search, every item is a cache hit.
    label_model : dict
        The out-of-fold model label issues come from: its ``accuracy`` on the
        given labels, the ``chance`` level (the largest class's share), and
        ``weak`` (too close to chance for its confidence to flag labels: then no
        item is flagged, and ``items.label_quality`` ranks them instead).
    """

    findings: object
    items: object
    skipped: object
    modality: str
    description: str
    near_threshold: float | None
    seconds: float
    stats: dict = field(default_factory=dict)
    label_model: dict = field(default_factory=dict)

    @property
    def key(self) -> str:
        """The column naming an item: ``path`` for images, ``row`` for texts."""
        return key_column(self.modality)

    def counts(self):
        """Findings per kind and split (the split of the first member)."""
        table = self.findings.assign(split=self.findings["split"].fillna("-"))
        return (
            table.groupby(["kind", "split"]).size().unstack(fill_value=0)
            if len(table)
            else table
        )

    def leaks(self):
        """Duplicate pairs whose members sit in different (named) splits."""
        table = self.findings
        pairs = table["kind"].isin(["exact_duplicate", "near_duplicate"])
        named = table["split"].notna() & table["other_split"].notna()
        return table[pairs & named & (table["split"] != table["other_split"])]

    def near_rule(self) -> str:
        """The rule that made two items near duplicates, in words."""
        if self.near_threshold is not None:
            return f"cosine similarity >= {self.near_threshold:.2f}"
        return (
            f"cosine distance at most {find.NEAR_RATIO:g} of the distance from "
            f"either item to its {find.NEIGHBOURS}th nearest neighbour (relative "
            f"to the data set), and similarity >= {find.NEAR_FLOOR:g}"
        )

    def leaking(self):
        """Held-out items with a copy (exact or near) in a training split, counted
        per held-out split: the items that make its score optimistic."""
        import pandas as pd

        leaks, key = self.leaks(), self.key

        def training(column):
            return leaks[column].astype(str).str.lower().isin(TRAIN_SPLITS)

        first, second = training("split"), training("other_split")
        held = pd.concat([
            leaks.loc[first & ~second, [f"other_{key}", "other_split"]].set_axis(
                [key, "split"], axis=1
            ),
            leaks.loc[second & ~first, [key, "split"]],
        ])  # fmt: skip
        return held.drop_duplicates(key).groupby("split").size()

    def write_report(self, path) -> None:
        """Write the self-contained HTML report (thumbnails inlined) to ``path``."""
        write_report(self, path)

    def summary(self) -> str:
        """One paragraph: what was audited, what was found, and what was not
        looked at (unreadable items, checks skipped and why)."""
        kinds = self.findings["kind"].value_counts()
        parts = [
            f"{kinds.get(kind, 0)} {kind.replace('_', ' ')}s" for kind in find.KINDS
        ]
        leaks = len(self.leaks())
        conflicts = int(self.findings["conflict"].sum())
        text = (
            f"audited {int(self.items['embedded'].sum())} of {len(self.items)} "
            f"{'images' if self.modality == 'image' else 'texts'} with "
            f"{self.description} in {self.seconds:.1f} s: {', '.join(parts)}; "
            f"{leaks} duplicate pairs across splits, {conflicts} with different "
            f"labels"
        )
        leaking = self.leaking()
        if len(leaking):
            shown = ", ".join(f"{n} in {split}" for split, n in leaking.items())
            text += f"; held-out items with a copy in training: {shown}"
        model = self.label_model
        if model.get("weak"):
            text += (
                f"; label issues not flagged: the out-of-fold model's accuracy "
                f"{model['accuracy']:.2f} is close to chance ({model['chance']:.2f}), "
                f"so its confidence says little (sort items by label_quality to "
                f"review the least likely labels first)"
            )
        if kinds.get("unreadable", 0):
            text += f"; {kinds['unreadable']} unreadable, not audited"
        unchecked = self.findings[self.findings["kind"] == "unchecked"]
        for reason, rows in unchecked.groupby("reason", sort=False):
            text += f"; {len(rows)} not checked ({reason})"
        return text


def key_column(modality: str) -> str:
    return "path" if modality == "image" else "row"


def read_items(source, *, text_column=None, label_column="label", path_column="path",
               split_column="split", encoding=None, sep=None):  # fmt: skip
    """The items of a data set: a frame with ``path`` (or ``text``), ``split`` and
    ``label``, from an image folder (split folders or class folders), a CSV/Parquet
    manifest of paths, or a text table."""
    import pandas as pd

    text = os.fspath(source)
    if text_column is not None:
        frame = read_text_table(text, text_column, encoding=encoding, sep=sep)
        items = pd.DataFrame({"row": frame.index, "text": frame[text_column]})
    elif os.path.isdir(text):
        parts = []
        for split in list_splits(text) or [None]:
            paths, labels = load_image_folder(text, split)
            parts.append(pd.DataFrame({"path": paths, "split": split, "label": labels}))
        return pd.concat(parts, ignore_index=True)
    elif table_suffix(text) in TABLE_SUFFIXES:
        frame = read_manifest(text, path_column, encoding=encoding, sep=sep)
        items = pd.DataFrame({"path": frame["path"]})
    else:
        raise ValueError(
            f"Cannot audit {text!r}: expected an image folder, a CSV/Parquet "
            f"manifest of paths, or a table with --text-column."
        )
    if label_column not in frame.columns:
        raise InvalidLabelsError(
            f"{text!r} has no column {label_column!r}; its columns are "
            f"{list(frame.columns)}. Pass the column of the classes (--label-column)."
        )
    items["split"] = frame[split_column] if split_column in frame.columns else None
    items["label"] = frame[label_column].to_numpy()
    return items


def audit_dataset(
    source,
    *,
    text_column: str | None = None,
    label_column: str = "label",
    path_column: str = "path",
    split_column: str = "split",
    kinds=find.KINDS,
    near_threshold: float | None = None,
    backend: str = "auto",
    seed: int = 0,
    verbose: int = 0,
    encoding=None,
    sep=None,
    **featurizer_params,
) -> Audit:
    """Find exact and near duplicates (within and across splits), likely label
    errors and outliers in an image folder, a manifest or a text table.

    Parameters
    ----------
    source : str
        As for ``featurize train``: ``DIR/<split>/<class>/*`` or ``DIR/<class>/*``,
        a CSV/Parquet manifest with ``path_column``, ``label_column`` and optionally
        ``split_column``, or with ``text_column`` a table of texts.
    kinds : sequence of str
        Which findings to look for (all four by default).
    near_threshold : float, optional
        Cosine similarity from which two items are near duplicates. By default,
        the modality's (``pipelines.NEAR_THRESHOLDS``): 0.90 for texts, and for
        images a rule relative to the data set (a pair's cosine distance at most
        half the distance from either item to its typical neighbours, and a
        similarity of at least 0.8), which holds on photos, textures and scans
        alike. Near duplicates are grouped so that every member of a group is a
        near duplicate of every other: groups never chain.
    backend : {"auto", "exact", "hnsw"}
        Nearest neighbours: exact (scikit-learn) up to 50,000 items, faiss HNSW
        past that with ``"auto"``.
    seed : int
        The cross-validation folds of the out-of-fold probabilities.
    **featurizer_params
        The :class:`featurize.ImageFeaturizer` (or, with ``text_column``,
        :class:`featurize.TextFeaturizer`) parameters: ``backbone``, ``cache``, ...

    Returns
    -------
    Audit

    Examples
    --------
    >>> from pipelines import audit_dataset
    >>> audit = audit_dataset("data/hymenoptera", input_size=96)
    >>> sorted(audit.findings.columns)[:4]
    ['conflict', 'kind', 'label', 'other_label']
    """

    unknown = sorted(set(kinds) - set(find.KINDS))
    if unknown:
        raise ValueError(f"Unknown kinds {unknown}; expected some of {find.KINDS}.")
    if "label_issue" in kinds:
        try:
            import cleanlab  # noqa: F401
        except ImportError:
            raise MissingDependencyError(
                "Label issues are ranked by cleanlab, which is not installed: pip "
                "install 'keras-featurize[audit]', or leave 'label_issue' out of kinds."
            ) from None
    if near_threshold is not None and not 0 < near_threshold <= 1:
        raise ValueError(
            f"near_threshold is a cosine similarity above 0 and at most 1; "
            f"received {near_threshold!r}."
        )
    started = time.perf_counter()
    items = read_items(
        source, text_column=text_column, label_column=label_column,
        path_column=path_column, split_column=split_column, encoding=encoding, sep=sep,
    )  # fmt: skip
    modality = "text" if text_column is not None else "image"
    make = TextFeaturizer if modality == "text" else ImageFeaturizer
    featurizer = make(**featurizer_params, on_error="nan", verbose=verbose).fit()
    column = "text" if modality == "text" else "path"
    result = featurizer.embed(items[column].tolist())
    ok = result.ok
    items["embedded"] = ok
    threshold = (
        find.NEAR_THRESHOLDS[modality] if near_threshold is None else near_threshold
    )
    labels = items["label"].to_numpy(dtype=object)
    labelled = ~missing_labels(labels)
    digests = list(result.digests)

    kept = np.flatnonzero(ok)
    # One neighbour search serves the near duplicates and the outliers.
    neighbours = nearest(
        normalised(result.array[kept]), find.NEIGHBOURS, backend=backend
    )
    exact, near, linkage = copies(result, threshold, neighbours=neighbours)
    items["group"] = linked_groups(len(items), exact, near, linkage)
    rows = []
    if "exact_duplicate" in kinds:
        rows += find.exact_duplicates(digests, labels)
    if "near_duplicate" in kinds:
        rows += find.near_duplicates(near, labels)
    if {"exact_duplicate", "near_duplicate"} <= set(kinds):
        rows += find.training_copies(
            rows, items["group"].to_numpy(), _training(items["split"]), digests,
            labels, linkage[0],
        )  # fmt: skip
    for failure in result.failures.itertuples():
        rows += find.unseen("unreadable", [failure.index], failure.reason)
    usable = kept[labelled[kept]]
    label_model = {}
    if "label_issue" in kinds:
        rows += _label_issues(items, result.array, usable, labels, seed, label_model)
        rows += find.unseen(
            "unchecked", kept[~labelled[kept]],
            "no label: not checked for label issues or conflicts",
        )  # fmt: skip
    if "outlier" in kinds:
        outliers = find.outliers(
            result.array[kept], labels[kept].astype(str), neighbours=neighbours
        )
        rows += _at(outliers, kept)
    findings = _table(rows, items, modality)
    return Audit(
        findings=findings,
        items=items,
        skipped=result.failures,
        modality=modality,
        description=describe_featurizer(featurizer),
        near_threshold=threshold,
        seconds=time.perf_counter() - started,
        stats=dict(result.stats),
        label_model=label_model,
    )


def _training(splits):
    """``(training, held out)`` masks of the items: a training split (``train``,
    ``training``) and the other named ones; None without both."""
    named = splits.notna().to_numpy()
    training = named & splits.astype(str).str.lower().isin(TRAIN_SPLITS).to_numpy()
    held = named & ~training
    return (training, held) if training.any() and held.any() else None


def _label_issues(items, embeddings, usable, labels, seed: int, model: dict):
    """Label issues among the labelled, embedded items (``usable``) of the
    classes the out-of-fold model can learn, and an ``unchecked`` row for each
    item of the others; every checked item's ``label_quality`` set in ``items``,
    and what the out-of-fold model scored in ``model``.

    Where that model is too weak for its confidence to mean much (see
    ``find.WEAK_MODEL``), no item is flagged: its label quality still ranks them.
    """
    given = labels[usable].astype(str)
    groups = items["group"].to_numpy()[usable]
    mask, reasons = find.checkable(given, groups)
    checked = usable[mask]
    items["label_quality"] = np.nan
    rows = []
    if len(checked):
        probabilities, classes = find.out_of_fold_probabilities(
            normalised(embeddings[checked]), given[mask], groups=groups[mask],
            seed=seed,
        )  # fmt: skip
        issues, quality = find.label_issues(probabilities, classes, given[mask])
        model.update(find.model_strength(probabilities, classes, given[mask]))
        if not model["weak"]:
            rows += _at(issues, checked)
        items.loc[checked, "label_quality"] = quality
    for label, reason in reasons.items():
        members = usable[~mask & (given == label)]
        rows += find.unseen("unchecked", members, f"label check skipped: {reason}")
    return rows


def _at(rows: list[dict], positions) -> list[dict]:
    """Findings on a subset, their indices mapped back to the whole."""
    for row in rows:
        row["index"] = int(positions[row["index"]])
        if row["other_index"] is not None:
            row["other_index"] = int(positions[row["other_index"]])
    return rows


def _table(rows, items, modality: str):
    import pandas as pd

    table = pd.DataFrame(rows, columns=find.COLUMNS)
    order = {kind: k for k, kind in enumerate(find.KINDS + find.UNSEEN)}
    table = table.assign(order=table["kind"].map(order)).sort_values(
        ["order", "score"], ascending=[True, False], kind="stable"
    )
    key = key_column(modality)
    index, other = table["index"].to_numpy(int), table["other_index"]
    has_other = other.notna().to_numpy()
    other = other.fillna(0).to_numpy(int)

    def pick(column, where):
        return items[column].to_numpy(dtype=object)[where]

    out = pd.DataFrame({"kind": table["kind"].to_numpy()})
    out[key] = pick(key, index)
    out[f"other_{key}"] = np.where(has_other, pick(key, other), None)
    if modality == "text":
        out["text"] = pick("text", index)
        out["other_text"] = np.where(has_other, pick("text", other), None)
    out["split"] = pick("split", index)
    out["other_split"] = np.where(has_other, pick("split", other), None)
    unseen = table["kind"].isin(find.UNSEEN).to_numpy()
    out["label"] = np.where(unseen, pick("label", index), table["label"].to_numpy())
    for column in ("other_label", "suggested_label", "score", "conflict", "reason"):
        out[column] = table[column].to_numpy()
    out["conflict"] = out["conflict"].astype(bool)
    return out
