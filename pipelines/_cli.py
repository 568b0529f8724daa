"""The ``featurize`` command.

Exit codes: 0 success, 1 failure (one-line message, no traceback), 2 usage error.
"""

from __future__ import annotations

import argparse
import csv
import os
import sys

import numpy as np

from featurize.errors import FeaturizeError

DEFAULT_BACKBONE = "efficientnet_lite0"
TRAIN_SPLITS = ("train", "training")
EVAL_SPLITS = ("val", "valid", "validation", "test", "testing")


class UserError(Exception):
    """A problem the user can fix; printed as one line."""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="featurize",
        description="Image embeddings from frozen pretrained Keras backbones, and "
        "classifiers trained on them.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    listing = commands.add_parser("backbones", help="list the backbone registry")
    listing.add_argument("--format", choices=("table", "csv"), default="table")

    weights = commands.add_parser(
        "weights", help="which backbones have ImageNet weights on this machine"
    )
    weights.add_argument("--missing", action="store_true", help="only missing ones")

    train = commands.add_parser(
        "train",
        help="train and evaluate a classifier on an image folder",
        description="Train on DIR/<class>/* (holding out a stratified part for "
        "evaluation) or on DIR/train/<class>/*, evaluating on DIR/val (or test).",
    )
    train.add_argument("directory", metavar="DIR")
    train.add_argument("--backbone", default=DEFAULT_BACKBONE)
    train.add_argument(
        "--classifier", default="logreg", choices=("logreg", "linear_svm", "svm")
    )
    train.add_argument(
        "--weights", default="imagenet", help="'imagenet', 'none' or a path"
    )
    train.add_argument(
        "--layer", default=None, help="layer name or negative stage index"
    )
    train.add_argument(
        "--pooling", default="avg", choices=("avg", "max", "gem", "none")
    )
    train.add_argument("--input-size", type=int, default=None)
    train.add_argument("--batch-size", type=int, default=32)
    train.add_argument("--C", type=float, default=1.0, dest="C", help="regularisation")
    train.add_argument(
        "--test-size",
        type=float,
        default=0.25,
        help="held-out fraction when DIR has no split folders",
    )
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--out", default=None, help="save the fitted pipeline (joblib)")
    train.add_argument("--quiet", action="store_true", help="no progress bars")

    predict = commands.add_parser(
        "predict",
        help="predict images with a saved pipeline (CSV to stdout)",
        description="Write path,label,probability,error rows to stdout. Unreadable "
        "images get an error and no label; the exit code is then 1.",
    )
    predict.add_argument("model", metavar="MODEL")
    predict.add_argument("paths", metavar="PATHS", nargs="+")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command line; return the exit code."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    args = _parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except BrokenPipeError:  # e.g. piped into `head`
        sys.stderr.close()
        return 0
    except (UserError, FeaturizeError, OSError, ValueError) as error:
        message = str(error).splitlines()[0] if str(error) else type(error).__name__
        print(f"featurize: error: {message}", file=sys.stderr)
        return 1


def _backbones(args) -> int:
    from featurize import list_backbones

    table = list_backbones()
    if args.format == "csv":
        table.to_csv(sys.stdout, index=False)
        return 0
    table = table.assign(
        input_size=table.input_size.map(lambda s: f"{s[0]}x{s[1]}" if s else "any"),
        stages=table.stages.map(len),
    )
    columns = [
        "name",
        "input_size",
        "preprocessing",
        "features_avg",
        "features_flatten",
        "stages",
    ]
    print(table[columns].to_string(index=False))
    return 0


def _weights(args) -> int:
    from featurize._backbones import all_backbones
    from featurize._weights import weights_status

    rows = [(b.name, *weights_status(b)) for b in all_backbones()]
    if args.missing:
        rows = [row for row in rows if row[1] == "missing"]
    width = max((len(name) for name, _, _ in rows), default=4)
    print(f"{'name':<{width}}  {'status':<34}  location")
    for name, status, location in rows:
        print(f"{name:<{width}}  {status:<34}  {location}")
    return 0


def _layer(value):
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        return value


def _split_folder(directory: str, seed: int, test_size: float):
    from sklearn.model_selection import train_test_split

    from pipelines import list_splits, load_image_folder

    splits = list_splits(directory)
    train = [s for s in splits if s.lower() in TRAIN_SPLITS]
    held_out = [s for s in splits if s.lower() in EVAL_SPLITS]
    if train and held_out:
        return (
            *load_image_folder(directory, train[0]),
            *load_image_folder(directory, held_out[0]),
            f"{train[0]}/ vs {held_out[0]}/",
        )
    if splits:
        raise UserError(
            f"{directory!r} has split folders {splits} but not both a training "
            f"({'/'.join(TRAIN_SPLITS)}) and an evaluation "
            f"({'/'.join(EVAL_SPLITS)}) one."
        )
    paths, labels = load_image_folder(directory)
    train_x, test_x, train_y, test_y = train_test_split(
        paths, labels, test_size=test_size, stratify=labels, random_state=seed
    )
    return (
        train_x,
        train_y,
        test_x,
        test_y,
        f"stratified {1 - test_size:.0%}/{test_size:.0%} split",
    )


def embed_usable(featurizer, paths, labels=None):
    """Embed ``paths``, dropping (and reporting on stderr) the unreadable ones."""
    featurizer.set_params(on_error="nan")
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        features = featurizer.transform(paths)
    featurizer.set_params(on_error="raise")
    failures = featurizer.failures_
    for row in failures.itertuples():
        print(f"featurize: skipped {row.input!r}: {row.reason}", file=sys.stderr)
    keep = np.setdiff1d(np.arange(len(paths)), failures["index"].to_numpy())
    kept_labels = None if labels is None else [labels[i] for i in keep]
    return features[keep], kept_labels, failures


def _train(args) -> int:
    import joblib
    from sklearn.metrics import accuracy_score, classification_report

    from pipelines import make_image_classifier

    train_x, train_y, test_x, test_y, how = _split_folder(
        args.directory, args.seed, args.test_size
    )
    weights = None if args.weights.lower() == "none" else args.weights
    pipeline = make_image_classifier(
        args.backbone,
        args.classifier,
        weights=weights,
        layer=_layer(args.layer),
        pooling=None if args.pooling == "none" else args.pooling,
        input_size=args.input_size,
        batch_size=args.batch_size,
        verbose=0 if args.quiet else 1,
    )
    pipeline.set_params(classifier__C=args.C)
    featurizer, head = pipeline["featurizer"], pipeline[1:]
    featurizer.fit()
    print(
        f"Training {args.classifier} on {featurizer.backbone_} features "
        f"({featurizer.n_features_out_} per image, layer {featurizer.layer_!r}); "
        f"{len(train_x)} training and {len(test_x)} held-out images ({how}).",
        flush=True,
    )
    features, labels, _ = embed_usable(featurizer, train_x, train_y)
    if len(set(labels)) < 2:
        raise UserError("Training needs images of at least two classes.")
    head.fit(features, labels)
    test_features, test_labels, _ = embed_usable(featurizer, test_x, test_y)
    predictions = head.predict(test_features)
    accuracy = accuracy_score(test_labels, predictions)
    print(f"accuracy: {accuracy:.4f} ({len(test_labels)} held-out images)")
    print(classification_report(test_labels, predictions, digits=4))
    if args.out:
        joblib.dump(pipeline, args.out)
        size = os.path.getsize(args.out)
        print(f"saved the fitted pipeline to {args.out} ({size / 1024:.0f} KiB)")
    return 0


def _predict(args) -> int:
    import joblib

    try:
        pipeline = joblib.load(args.model)
    except FileNotFoundError:
        raise UserError(f"model file {args.model!r} not found") from None
    featurizer, head = pipeline["featurizer"], pipeline[1:]
    features, _, failures = embed_usable(featurizer, args.paths)
    failed = dict(zip(failures["index"], failures["reason"]))
    usable = [i for i in range(len(args.paths)) if i not in failed]
    labels = head.predict(features) if usable else []
    probabilities = [""] * len(usable)
    if usable and hasattr(head, "predict_proba"):
        probabilities = [f"{p:.4f}" for p in head.predict_proba(features).max(axis=1)]
    writer = csv.writer(sys.stdout, lineterminator="\n")
    writer.writerow(["path", "label", "probability", "error"])
    results = dict(zip(usable, zip(labels, probabilities)))
    for index, path in enumerate(args.paths):
        label, probability = results.get(index, ("", ""))
        writer.writerow([path, label, probability, failed.get(index, "")])
    return 1 if failed else 0


COMMANDS = {
    "backbones": _backbones,
    "weights": _weights,
    "train": _train,
    "predict": _predict,
}
