"""``featurize audit``: the audit's sub-command."""

from __future__ import annotations

import argparse

from pipelines._audit.audit import audit_dataset
from pipelines._files import check_distinct, check_output, write_table
from pipelines._options import (
    check_no_text_options,
    featurizer_params,
    text_params,
)
from pipelines._tables import TABLE_SUFFIXES

# Findings printed per kind on the terminal (the table and the report hold all).
PRINTED = 5


def add_audit_command(command, parents) -> None:
    """Declare ``featurize audit`` (``command`` adds a sub-command)."""
    audit = command(
        "audit",
        audit_command,
        parents,
        help="find duplicates, train/test leaks, likely label errors and outliers",
        description="Embed DIR once (through the cache) and list exact duplicates "
        "(by content), near duplicates (cosine similarity of embeddings), likely "
        "label errors (confident learning on out-of-fold probabilities) and "
        "outliers, within and across splits. DIR is laid out as for `featurize "
        "train`, or is a CSV/Parquet manifest (path, label[, split] columns) or, "
        "with --text-column, a table of texts.",
    )
    audit.add_argument("directory", metavar="DIR")
    audit.add_argument(
        "--label-column", default="label", help="a table's column of classes"
    )
    audit.add_argument(
        "--split-column", default="split", help="a table's column of splits, if any"
    )
    audit.add_argument(
        "--out", default=None,
        help="write every finding as CSV or Parquet (by its name; never an input)",
    )  # fmt: skip
    audit.add_argument(
        "--report", default=None, metavar="HTML",
        help="write a self-contained HTML page with thumbnails of each finding",
    )  # fmt: skip
    audit.add_argument(
        "--near-threshold", type=cosine, default=None, metavar="COSINE",
        help="a fixed similarity from which two items are near duplicates "
        "(default: for images a rule relative to the data set, a pair's distance "
        "at most half its members' distance to their typical neighbours; 0.90 "
        "for texts; measured, see BENCHMARKS.md)",
    )  # fmt: skip
    audit.add_argument("--seed", type=int, default=0, help="cross-validation folds")
    audit.add_argument("--quiet", action="store_true", help="no progress bar")


def cosine(text: str) -> float:
    """A similarity threshold as typed: a number above 0 and at most 1."""
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(
            f"expected a cosine similarity above 0 and at most 1 (0.85, 0.9); "
            f"received {text!r}"
        )
    return value


def audit_command(args) -> int:
    out = args.out and check_output(
        args.out, inputs=[args.directory], what="audit table", suffixes=TABLE_SUFFIXES
    )
    check_distinct(out, args.report)
    report = args.report and check_output(
        args.report, inputs=[args.directory], what="report", suffixes=(".html",)
    )
    if args.text_column is None:
        check_no_text_options(args)
        params = featurizer_params(args)
    else:
        params = text_params(args)
    audit = audit_dataset(
        args.directory, text_column=args.text_column, label_column=args.label_column,
        path_column=args.path_column or "path", split_column=args.split_column,
        near_threshold=args.near_threshold, seed=args.seed,
        verbose=0 if args.quiet else 1, encoding=args.encoding, sep=args.sep, **params,
    )  # fmt: skip
    # Files first: a reader that closes the pipe early loses nothing.
    if out:
        write_table(audit.findings, out)
    if report:
        audit.write_report(report)
    print(audit.summary())
    key = audit.key
    for kind, rows in audit.findings.groupby("kind", sort=False):
        print(f"\n{kind} ({len(rows)}):")
        columns = [key, f"other_{key}", "split", "other_split", "label",
                   "suggested_label", "score", "reason"]  # fmt: skip
        shown = rows[columns].head(PRINTED).dropna(axis=1, how="all")
        print(shown.to_string(index=False, float_format="%.3f"))
    if out:
        print(f"wrote {len(audit.findings)} findings to {out}")
    if report:
        print(f"wrote the report to {report}")
    return 0
