"""Train and evaluate: a frozen pipeline (and, if asked, a fine-tuned model) on an
image folder or a text table, scored on a held-out part.

The command line prints what these return; they print only through ``say``.
"""

from __future__ import annotations

import math
import os
import sys
from dataclasses import dataclass

import numpy as np

from featurize import (
    FineTunedClassifier,
    FineTunedTextClassifier,
    InvalidLabelsError,
    missing_labels,
)
from pipelines._audit.findings import NEAR_THRESHOLDS
from pipelines._audit.groups import (
    GroupPatternError,
    duplicate_groups,
    groups_from_names,
    held_out_copies,
    joined,
)
from pipelines._classifiers import (
    describe_featurizer,
    make_image_classifier,
    make_text_classifier,
    parameter,
)
from pipelines._data import EVAL_SPLITS, TRAIN_SPLITS, list_splits, load_image_folder
from pipelines._manifests import read_text_table


def _stderr(message: str) -> None:
    print(f"featurize: {message}", file=sys.stderr)


@dataclass
class Trained:
    """What training produced: the model to keep, and how each candidate scored."""

    model: object
    kind: str
    accuracy: float
    report: str
    tuned_accuracy: float | None = None


def holdout_split(items, labels, test_size: float, seed: int, noun: str, grouping=None):
    """A stratified train / held-out split, or an error saying what is too few;
    with ``grouping`` (items -> group ids), no group on both sides.

    Returns ``train_items, held_items, train_labels, held_labels``.
    """
    from sklearn.model_selection import train_test_split

    labels = np.asarray(labels)
    classes, counts = np.unique(labels, return_counts=True)
    n = len(labels)
    n_held = math.ceil(test_size * n)
    if len(classes) < 2:
        raise InvalidLabelsError(
            f"Training needs {noun} of at least 2 classes; the labels hold only "
            f"{classes.tolist()}."
        )
    if counts.min() < 2 or n_held < len(classes) or n - n_held < len(classes):
        rare = classes[counts.argmin()]
        raise InvalidLabelsError(
            f"Too few labelled {noun} to hold out a stratified {test_size:.0%} for "
            f"evaluation: {n} {noun} in {len(classes)} classes, the smallest "
            f"({rare!r}) with {counts.min()}. Each class needs at least 2, and the "
            f"held-out part at least one per class ({len(classes)} of {n}: "
            f"{n_held} now). Label more, or change --test-size."
        )
    if grouping is not None:
        from sklearn.model_selection import StratifiedGroupKFold

        n_folds = max(2, round(1 / test_size))
        groups = grouping(items)
        found = len(np.unique(groups))
        if found < n_folds:
            raise GroupPatternError(
                f"The {noun} fall into {found} group{'s' if found != 1 else ''}: "
                f"holding out {test_size:.0%} with no group on both sides needs at "
                f"least {n_folds}. Pass a pattern that tells more groups apart, or a "
                f"larger --test-size."
            )
        folds = StratifiedGroupKFold(n_folds, shuffle=True, random_state=seed)
        train, held = next(folds.split(labels, labels, groups))
        pick = (lambda rows: items.iloc[rows]) if hasattr(items, "iloc") else (
            lambda rows: [items[i] for i in rows]
        )  # fmt: skip
        return pick(train), pick(held), labels[train], labels[held]
    return train_test_split(
        items, labels, test_size=n_held, stratify=labels, random_state=seed
    )


def split_folder(directory: str, seed: int, test_size: float, grouping=None):
    """``DIR/train`` and ``DIR/val`` (or test), or a stratified split of
    ``DIR/<class>/``: ``train_x, train_y, test_x, test_y, how``."""
    splits = list_splits(directory)
    train = [s for s in splits if s.lower() in TRAIN_SPLITS]
    held_out = [s for s in splits if s.lower() in EVAL_SPLITS]
    if train and held_out:
        train_x, train_y = load_image_folder(directory, train[0])
        test_x, test_y = load_image_folder(directory, held_out[0])
        unseen = sorted(set(test_y) - set(train_y))
        if unseen:
            raise InvalidLabelsError(
                f"{held_out[0]}/ has class folders that {train[0]}/ does not: "
                f"{unseen[:5]}. The model could never predict them, so its "
                f"accuracy would be wrong: add training images of those classes, "
                f"or move them out of {held_out[0]}/."
            )
        return train_x, train_y, test_x, test_y, f"{train[0]}/ vs {held_out[0]}/"
    if splits:
        raise InvalidLabelsError(
            f"{directory!r} has split folders {splits} but not both a training "
            f"({'/'.join(TRAIN_SPLITS)}) and an evaluation "
            f"({'/'.join(EVAL_SPLITS)}) one."
        )
    paths, labels = load_image_folder(directory)
    train_x, test_x, train_y, test_y = holdout_split(
        paths, labels, test_size, seed, "images", grouping
    )
    how = f"stratified {1 - test_size:.0%}/{test_size:.0%} split" + (
        ", grouped" if grouping else ""
    )
    return list(train_x), list(train_y), list(test_x), list(test_y), how


def _embed_usable(featurizer, items, labels, noun: str):
    """Embed ``items``, dropping (and reporting on stderr) the unusable ones."""
    result = featurizer.embed(items, on_error="nan")
    for row in result.failures.itertuples():
        where = repr(row.input) if row.index_label is None else f"row {row.index_label}"
        _stderr(f"skipped {where}: {row.reason}")
    if result.stats.get("truncated"):
        _stderr(
            f"{result.stats['truncated']} of {len(items)} {noun} were longer than "
            f"max_length={result.stats['max_length']} tokens and were truncated "
            f"(--long-text chunks embeds them whole)"
        )
    keep = np.flatnonzero(result.ok)
    return result.array[keep], [labels[i] for i in keep], result


def _report_leaks(train, held_out, noun: str, say) -> None:
    """Say how many held-out items have copies in the training part."""
    modality = "image" if noun == "images" else "text"
    exact, near = held_out_copies(train, held_out, NEAR_THRESHOLDS[modality])
    if exact or near:
        say(
            f"warning: {exact + near} of {len(held_out)} held-out {noun} have copies "
            f"in the training part ({exact} exact, {near} near duplicates), so the "
            f"held-out accuracy is optimistic. `featurize audit` lists them; "
            f"--group-duplicates keeps them on one side of a split featurize makes."
        )


def _evaluate(head, features, labels) -> tuple[float, str]:
    from sklearn.metrics import accuracy_score, classification_report

    predictions = head.predict(features)
    return (
        accuracy_score(labels, predictions),
        classification_report(labels, predictions, digits=4),
    )


def split_table(
    table, text_column, label_column, seed, test_size, grouping=None, **read
):
    """The labelled rows of a text table, split stratified: ``train_x, train_y,
    test_x, test_y, how`` (texts as Series indexed by row). Rows without a label
    are reported and left out."""
    frame = read_text_table(table, text_column, **read)
    if label_column not in frame.columns:
        raise InvalidLabelsError(
            f"{table!r} has no column {label_column!r}; its columns are "
            f"{list(frame.columns)}. Pass --label-column."
        )
    unlabelled = missing_labels(frame[label_column])
    if unlabelled.any():
        rows = np.flatnonzero(unlabelled)
        shown = ", ".join(map(str, rows[:10])) + (" ..." if len(rows) > 10 else "")
        _stderr(
            f"skipped {len(rows)} rows without a label in {label_column!r} "
            f"(rows {shown})"
        )
    labelled = frame[~unlabelled]
    train_x, test_x, train_y, test_y = holdout_split(
        labelled[text_column], labelled[label_column].to_numpy(), test_size, seed,
        "texts", grouping,
    )  # fmt: skip
    how = f"stratified {1 - test_size:.0%}/{test_size:.0%} split" + (
        ", grouped" if grouping else ""
    )
    return train_x, list(train_y), test_x, list(test_y), how


def train_and_evaluate(
    source: str,
    *,
    text_column: str | None = None,
    label_column: str = "label",
    classifier: str = "logreg",
    C: float = 1.0,
    test_size: float = 0.25,
    seed: int = 0,
    fine_tune: bool = False,
    group_duplicates: bool = False,
    group_pattern: str | None = None,
    class_weight=None,
    epochs: int | None = None,
    keep: str = "better",
    verbose: int = 1,
    encoding: str | None = None,
    sep: str | None = None,
    say=print,
    **featurizer_params,
) -> Trained:
    """Train a frozen pipeline and score it on a held-out part; with
    ``fine_tune``, also a fine-tuned classifier, keeping the better (or the one
    ``keep`` names).

    Parameters
    ----------
    source : str
        An image folder (``DIR/train`` and ``DIR/val`` or ``test``, else
        ``DIR/<class>/`` split stratified), or with ``text_column`` a CSV/Parquet
        table whose ``label_column`` holds the classes.
    text_column : str, optional
        Train on this column's texts (a TextFeaturizer) instead of images.
    classifier, C : the head (see ``make_image_classifier``) and its C.
    test_size, seed : the held-out fraction (where ``source`` has no split) and
        the seed of the split and of fine-tuning.
    fine_tune, epochs, keep : fine-tuning (a :class:`featurize.FineTunedClassifier`
        for images, a :class:`featurize.FineTunedTextClassifier` for texts), its
        epochs (images), and which model to keep: ``"better"``, ``"frozen"`` or
        ``"fine-tuned"``.
    group_duplicates : keep exact and near duplicates on one side of the split
        made where ``source`` has none (see :func:`audit_dataset`). Either way a
        held-out part with copies in the training part is reported through ``say``.
    group_pattern : a regular expression whose match in an image's file name is
        its group (a patient id), kept on one side of that split too.
    class_weight : the classifier's (None, ``"balanced"`` or a dict).
    verbose : progress bars; ``say`` receives the report's lines.
    encoding, sep : a CSV table's (see ``read_table``).
    **featurizer_params
        The featurizer's parameters.

    Returns
    -------
    Trained
    """
    make = make_image_classifier if text_column is None else make_text_classifier
    noun = "images" if text_column is None else "texts"
    pipeline = make(
        classifier=classifier, class_weight=class_weight, verbose=verbose,
        **featurizer_params,
    )  # fmt: skip
    pipeline.set_params(**{f"classifier__{parameter(pipeline[-1], 'C')}": C})
    if group_pattern is not None and text_column is not None:
        raise ValueError("group_pattern groups images by file name, not texts.")
    grouping = None
    if group_duplicates or group_pattern is not None:
        threshold = NEAR_THRESHOLDS["image" if text_column is None else "text"]

        def grouping(items):
            found = []
            if group_pattern is not None:
                found.append(groups_from_names(items, group_pattern))
            if group_duplicates:
                result = pipeline["featurizer"].fit().embed(items, on_error="nan")
                found.append(duplicate_groups(result, threshold))
            return joined(*found)

    if text_column is None:
        if not os.path.isdir(source):
            raise InvalidLabelsError(
                f"{source!r} is not a folder: `train` reads images from "
                f"DIR/<class>/* or DIR/train/<class>/* (for a table of texts, "
                f"pass its --text-column)."
                if os.path.exists(source)
                else f"{source!r} does not exist: pass an image folder, or a table "
                f"of texts with --text-column."
            )
        train_x, train_y, test_x, test_y, how = split_folder(
            source, seed, test_size, grouping
        )
    else:
        train_x, train_y, test_x, test_y, how = split_table(
            source, text_column, label_column, seed, test_size, grouping,
            encoding=encoding, sep=sep,
        )  # fmt: skip
    featurizer, head = pipeline["featurizer"], pipeline[1:]
    featurizer.fit()
    say(
        f"Training {classifier} on {describe_featurizer(featurizer)}; "
        f"{len(train_x)} training and {len(test_x)} held-out {noun} ({how})."
    )
    features, labels, seen = _embed_usable(featurizer, train_x, train_y, noun)
    if len(set(labels)) < 2:
        raise InvalidLabelsError(f"Training needs {noun} of at least two classes.")
    head.fit(features, labels)
    test_features, test_labels, held = _embed_usable(featurizer, test_x, test_y, noun)
    _report_leaks(seen, held, noun, say)
    accuracy, report = _evaluate(head, test_features, test_labels)
    say(f"accuracy: {accuracy:.4f} ({len(test_labels)} held-out {noun})")
    say(report)
    trained = Trained(pipeline, "pipeline", accuracy, report)
    if fine_tune:
        kind = FineTunedClassifier if text_column is None else FineTunedTextClassifier
        tuned, tuned_accuracy = _fine_tune(
            kind, featurizer_params, epochs, seed, verbose, train_x, train_y,
            test_x, test_y, say,
        )  # fmt: skip
        say(
            f"held-out accuracy: frozen {classifier} {accuracy:.4f}, "
            f"fine-tuned {tuned_accuracy:.4f}"
        )
        trained.tuned_accuracy = tuned_accuracy
        if keep == "fine-tuned" or (keep == "better" and tuned_accuracy > accuracy):
            trained.model, trained.kind = tuned, "fine-tuned classifier"
    return trained


def _fine_tune(
    kind, params, epochs, seed, verbose, train_x, train_y, test_x, test_y, say
):
    """Fit a fine-tuned classifier (``kind``) on the same split; its held-out
    accuracy."""
    from sklearn.metrics import accuracy_score

    shared = {k: v for k, v in params.items() if k in kind.parameter_rules}
    # The featurizer's inference batch, not training's.
    shared.pop("batch_size", None)
    if epochs is not None:
        shared["epochs"] = epochs
    tuned = kind(**shared, on_error="nan", random_state=seed, verbose=verbose)
    say(
        "Fine-tuning (linear probe first, then stages from the top)..."
        if kind is FineTunedClassifier
        else "Fine-tuning the encoder on pairs of training texts, then its head..."
    )
    tuned.fit(train_x, train_y)
    for row in tuned.fit_failures_.itertuples():
        _stderr(f"skipped {row.input!r}: {row.reason}")
    frame = tuned.predict_frame(test_x)
    ok = (frame["error"] == "").to_numpy()
    labels = [y for y, good in zip(test_y, ok) if good]
    accuracy = accuracy_score(labels, frame["label"][ok].tolist())
    last = int(tuned.history_.epoch.max())
    how = (
        f"best epoch {tuned.best_epoch_} of {last}"
        if kind is FineTunedClassifier
        else f"{last} pair iterations"
    )
    say(
        f"fine-tuned accuracy: {accuracy:.4f} ({ok.sum()} held-out {tuned.noun}; {how})"
    )
    return tuned, accuracy
