"""``featurize label``: the labelling loop through plain files. Each run embeds the
collection (through the cache: a re-run embeds nothing), reads every labels file
given, and writes the queue of the next items to label; the label files are the only
state, and they are only ever read."""

from __future__ import annotations

import html
import os
import re
import sys

import numpy as np

from featurize import ImageFeaturizer, InvalidLabelsError, TextFeaturizer
from pipelines._classifiers import make_image_classifier, make_text_classifier
from pipelines._files import check_distinct, check_output, dump_model, write_table
from pipelines._labelling.select import next_to_label
from pipelines._labelling.spreading import SEMI_SUPERVISED, spread_labels
from pipelines._manifests import read_manifest, read_text_table
from pipelines._options import (
    UsageError,
    check_no_text_options,
    featurizer_params,
    text_params,
)
from pipelines._pages import Thumbnails, page_html, write_page
from pipelines._tables import TABLE_SUFFIXES, read_table

# Shares of the labelled items the learning curve is estimated at.
CURVE = (0.25, 0.5, 0.75, 1.0)
# Gain over the last quarter of labels below which more labels help little.
FLAT = 0.01


def read_labels(files, keys, key: str) -> dict:
    """``{item: label}`` from labels files (the queue's columns, ``label``
    filled in), checked: every item known, no empty label, no item labelled two
    ways, no two spellings of one class.

    Raises
    ------
    InvalidLabelsError
        Naming the file and row (1 = the first row under the header).
    """
    known = set(keys)
    found, where = {}, {}
    for path in files:
        table = read_table(path, columns=[key, "label"])
        for number, (item, label) in enumerate(zip(table[key], table["label"]), 1):
            item = _key(item, key)
            place = f"{os.fspath(path)!r} row {number}"
            if item not in known:
                raise InvalidLabelsError(
                    f"{place} names {item!r}, which is not an item of the input: "
                    f"fix the {key}, or remove the row."
                )
            if label is None or label != label or not str(label).strip():
                raise InvalidLabelsError(
                    f"{place} ({item!r}) has an empty label: label it, or remove "
                    f"the row (an unlabelled item stays in the queue)."
                )
            label = str(label)
            if item in found and found[item] != label:
                raise InvalidLabelsError(
                    f"{place} labels {item!r} {label!r}, but {where[item]} labels it "
                    f"{found[item]!r}: keep one."
                )
            found[item], where[item] = label, place
    _check_spellings(found, where)
    return found


def _key(value, key: str):
    """A labels file's item as the input names it: a path, or a text's row."""
    if key == "row":
        try:
            return int(str(value).strip())
        except ValueError:
            return value
    return str(value)


def _check_spellings(found: dict, where: dict) -> None:
    """Refuse two labels that differ only in case or spaces: one class typed two
    ways would train as two."""
    spelled: dict = {}
    for item, label in found.items():
        folded = re.sub(r"\s+", " ", label.strip()).casefold()
        first = spelled.setdefault(folded, (label, item))
        if first[0] != label:
            raise InvalidLabelsError(
                f"{where[item]} labels {item!r} {label!r}, and {where[first[1]]} "
                f"labels {first[1]!r} {first[0]!r}: one class spelled two ways "
                f"(case or spaces). Use one spelling."
            )


def learning_curve(X, y, seed: int = 0) -> list:
    """Cross-validated accuracy of the head at ``CURVE`` shares of the labelled
    items: ``[(n_labels, accuracy or None)]`` (None where too few to score)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    rng = np.random.default_rng(seed)
    order = rng.permutation(len(y))
    points = []
    for share in CURVE:
        rows = order[: max(2, int(round(share * len(y))))]
        labels = y[rows]
        _, counts = np.unique(labels, return_counts=True)
        folds = min(5, counts.min()) if len(counts) > 1 else 0
        if folds < 2:
            points.append((len(rows), None))
            continue
        head = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
        scores = cross_val_score(
            head, X[rows], labels, cv=StratifiedKFold(folds, shuffle=True,
                                                      random_state=seed),
        )  # fmt: skip
        points.append((len(rows), float(scores.mean())))
    return points


def stopping_hint(points) -> str:
    scored = [(n, a) for n, a in points if a is not None]
    if len(scored) < 2:
        return "label at least two items of each of two classes to see a curve"
    (n0, a0), (n1, a1) = scored[-2], scored[-1]
    gain = a1 - a0
    if gain < FLAT:
        return (
            f"the last {n1 - n0} labels moved accuracy {gain:+.3f}: the curve is "
            f"flat, so more labels help little (check the queue's classes first)"
        )
    return (
        f"the last {n1 - n0} labels added {gain:+.3f}: the curve still rises, so "
        f"keep labelling"
    )


def write_queue_page(queue, path, key: str) -> None:
    """The queue as a page to label from: thumbnails (or texts) with their keys."""
    thumbnails = Thumbnails()
    style = (
        ".queue{display:flex;flex-wrap:wrap;gap:8px}"
        ".item{width:170px;overflow-wrap:anywhere}"
        ".item img{width:160px;height:160px;object-fit:contain;background:#eee}"
    )
    cells = []
    for number, row in enumerate(queue.itertuples(index=False), 1):
        if key == "path":
            shown = f"<img alt='{html.escape(row.path)}' src='{thumbnails(row.path)}'>"
            name = html.escape(row.path)
        else:
            shown = f"<div class='text'>{html.escape(str(row.text))}</div>"
            name = f"row {row.row}"
        cells.append(
            f"<div class='item'>{shown}<br><small>#{number} {name}</small></div>"
        )
    body = (
        f"<h1>Label these {len(queue)} next</h1><p>Fill the <code>label</code> "
        f"column of the queue file, then pass it back with <code>--labels</code>."
        f"</p><div class='queue'>{''.join(cells)}</div>"
    )
    write_page(path, page_html("featurize label", body, style))


def label_command(args) -> int:
    """``featurize label``: read the labels so far, write the next queue."""
    if args.budget < 1:
        raise UsageError(f"--budget must be at least 1; received {args.budget}.")
    inputs = [args.input, *args.labels]
    out = check_output(args.out, inputs=inputs, what="queue", suffixes=TABLE_SUFFIXES)
    check_distinct(out, args.report)
    report = args.report and check_output(
        args.report, inputs=inputs, what="page", suffixes=(".html",)
    )
    model_file = args.model and check_output(
        args.model, inputs=[*inputs, out], what="model"
    )
    tables = {"encoding": args.encoding, "sep": args.sep}
    if args.text_column is None:
        check_no_text_options(args)
        params = featurizer_params(args)
        rows = read_manifest(args.input, args.path_column or "path", **tables)
        key, items = "path", rows["path"].tolist()
        featurizer = ImageFeaturizer(**params, on_error="nan")
    else:
        params = text_params(args)
        rows = read_text_table(args.input, args.text_column, **tables)
        key, items = "row", rows[args.text_column].tolist()
        featurizer = TextFeaturizer(**params, on_error="nan")
    keys = items if key == "path" else list(range(len(rows)))
    labelled = read_labels(args.labels, keys, key)
    result = featurizer.fit().embed(items)
    for failure in result.failures.itertuples():
        name = failure.input if key == "path" else f"row {failure.index}"
        print(f"featurize: skipped {name!r}: {failure.reason}", file=sys.stderr)
    ok = np.flatnonzero(result.ok)
    y = np.array([labelled.get(keys[i]) for i in ok], dtype=object)
    unlabelled = int(sum(label is None for label in y))
    if unlabelled == 0:
        print(f"every one of the {len(ok)} usable items is labelled: nothing to queue")
        budget = 0
    else:
        budget = min(args.budget, unlabelled)
    X = result.array[ok]
    known = np.array([label is not None for label in y], dtype=bool)
    given = y[known].astype(str)
    print(f"{len(given)} labelled of {len(ok)} usable items"
          + (f" ({len(np.unique(given))} classes)" if len(given) else ""))  # fmt: skip
    if len(np.unique(given)) >= 2:
        points = learning_curve(X[known], given, seed=args.seed)
        curve = ", ".join(f"{n}: {a:.3f}" if a is not None else f"{n}: -"
                          for n, a in points)  # fmt: skip
        print(f"cross-validated accuracy by labels so far: {curve}")
        print(f"hint: {stopping_hint(points)}")
    if model_file:
        if len(np.unique(given)) < 2:
            raise InvalidLabelsError(
                f"--model needs labels of at least two classes; the labels files "
                f"hold {sorted(set(given))}."
            )
        spread = spread_labels(X, y, when=args.semi_supervised, random_state=args.seed)
        print(describe_spread(spread, known, args.semi_supervised))
        taught = np.flatnonzero(spread.weights > 0)
        inputs = [items[i] for i in ok[taught]]
        if key == "path":
            model = make_image_classifier(**params)
        else:
            model = make_text_classifier(**params)
        model.fit(inputs, spread.labels[taught].tolist(),
                  classifier__sample_weight=spread.weights[taught])  # fmt: skip
        size = dump_model(model, model_file)
        print(f"saved the pipeline trained on {len(taught)} items to {model_file} "
              f"({size / 1024:.0f} KiB)")  # fmt: skip
    picked = next_to_label(X, y, budget, random_state=args.seed) if budget else []
    queue = rows.iloc[ok[np.asarray(picked, dtype=int)]].copy()
    if key == "row":
        queue.insert(0, "row", queue.index.to_numpy())
        queue = queue.rename(columns={args.text_column: "text"})[["row", "text"]]
    else:
        queue = queue[["path"]]
    queue["label"] = ""
    write_table(queue.reset_index(drop=True), out)
    print(f"wrote {len(queue)} items to label to {out}")
    if report:
        write_queue_page(queue, report, key)
        print(f"wrote the page to {report}")
    return 0


def describe_spread(spread, known, when: str) -> str:
    """What the semi-supervised step did, and why, in a line."""
    if when == "never":
        return "semi-supervised: not used (--semi-supervised never)"
    measured = ""
    if spread.accuracy is not None:
        plain, spread_accuracy = spread.accuracy
        measured = (f"; cross-validated accuracy {spread_accuracy:.3f} with the "
                    f"spread labels, {plain:.3f} without")  # fmt: skip
    if spread.spread:
        extra = int((spread.weights > 0).sum() - known.sum())
        return (f"semi-supervised: {extra} unlabelled items join the training with "
                f"spread labels (the labels cover {spread.coverage:.0%} of the "
                f"collection{measured})")  # fmt: skip
    return (f"semi-supervised: not used (the labels cover {spread.coverage:.0%} of "
            f"the collection{measured})")  # fmt: skip


def add_label_command(command, parents) -> None:
    """Declare ``featurize label`` (``command`` adds a sub-command)."""
    label = command(
        "label",
        label_command,
        parents,
        help="propose what to label next, and learn from what is labelled",
        description="Embed INPUT (a folder, glob, list or manifest of images, or a "
        "table with --text-column) through the cache, read the labels so far "
        "(--labels: files with the queue's columns and `label` filled in), and "
        "write the next --budget items to label to --out (path, or row and text, "
        "and an empty label column). From zero labels it picks typical items of "
        "the collection's clusters, then items the classifier is least sure of, "
        "spread over the collection. With labels it prints a cross-validated "
        "learning curve and a hint whether more labels still pay; --model saves "
        "the classifier trained on them (and, where it pays, on unlabelled items "
        "given the labels of their labelled neighbours: --semi-supervised). A "
        "labels file naming an unknown item, an empty label, an item labelled two "
        "ways or one class spelled two ways is refused by file and row; label "
        "files are only ever read.",
    )
    label.add_argument("input", metavar="INPUT")
    label.add_argument("--budget", type=int, required=True, help="items to propose")
    label.add_argument(
        "--out", required=True, help="the queue to write (CSV, TSV or Parquet)"
    )
    label.add_argument(
        "--labels", nargs="+", default=[], metavar="FILE",
        help="labelled rows so far (the queue's columns, label filled in)",
    )  # fmt: skip
    label.add_argument(
        "--model", default=None, help="save the classifier trained on the labels"
    )
    label.add_argument(
        "--report", default=None, metavar="HTML",
        help="also write the queue as a page of thumbnails (or texts)",
    )  # fmt: skip
    label.add_argument(
        "--semi-supervised", choices=SEMI_SUPERVISED, default="auto",
        help="--model also learns from the unlabelled items, their labels spread "
        "from the labelled ones over the neighbour graph: auto where the labels "
        "cover a tenth of the collection and cross-validation says it pays "
        "(default: %(default)s)",
    )  # fmt: skip
    label.add_argument("--seed", type=int, default=0, help="clustering and folds")
