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
DEFAULT_BENCH_BACKBONES = ("mobilenet_v3_small", "efficientnet_lite0", "resnet50")
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
    train.add_argument("--batch-size", type=int, default=None)
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

    search = commands.add_parser(
        "search",
        help="cross-validate backbones x classifiers on an image folder",
        description="Compare featurizer configurations and classifiers by "
        "cross-validation on DIR/<class>/* (or DIR/train/<class>/*). Each image is "
        "embedded once per configuration, through the embedding cache.",
    )
    search.add_argument("directory", metavar="DIR")
    search.add_argument("--backbones", default=DEFAULT_BACKBONE,
                        help="comma-separated backbone names")  # fmt: skip
    search.add_argument("--classifiers", default="logreg",
                        help="comma-separated: logreg, linear_svm, svm")  # fmt: skip
    search.add_argument(
        "--layers", default="none", help="comma-separated: none (final), -2, a name"
    )
    search.add_argument("--poolings", default="avg", help="comma-separated poolings")
    search.add_argument("--weights", default="imagenet")
    search.add_argument("--input-size", type=int, default=None)
    search.add_argument("--cv", type=int, default=5)
    search.add_argument("--scoring", default="accuracy")
    search.add_argument("--out", default=None, help="write the results table (CSV)")
    search.add_argument("--model", default=None, help="save the best pipeline (joblib)")
    search.add_argument("--quiet", action="store_true")

    cache = commands.add_parser("cache", help="inspect or clear the embedding cache")
    cache.add_argument("action", choices=("info", "clear"))
    cache.add_argument(
        "--older-than", default=None, metavar="AGE",
        help="with clear: entries older than AGE (30d, 12h, 45m)",
    )  # fmt: skip
    cache.add_argument(
        "--dir", default=None, help="cache folder (default: the default)"
    )

    embed = commands.add_parser(
        "embed",
        help="embed a whole collection to Parquet (resumable; local or Ray)",
        description="Embed every image of INPUT (a folder, a glob, a text file of "
        "paths, or a CSV/Parquet manifest) into OUT.parquet, with failures in "
        "OUT.failures.parquet. Killed and re-run, it recomputes nothing it stored.",
    )
    embed.add_argument("input", metavar="INPUT")
    embed.add_argument("--out", required=True, help="the Parquet file to write")
    embed.add_argument("--backbone", default=DEFAULT_BACKBONE)
    embed.add_argument("--weights", default="imagenet")
    embed.add_argument("--layer", default=None)
    embed.add_argument(
        "--pooling", default="avg", choices=("avg", "max", "gem", "none")
    )
    embed.add_argument("--input-size", type=int, default=None)
    embed.add_argument("--batch-size", type=int, default=None)
    embed.add_argument("--path-column", default="path", help="manifest column of paths")
    embed.add_argument("--engine", choices=("local", "ray"), default="local")
    embed.add_argument("--address", default=None, help="Ray cluster address")
    embed.add_argument("--no-cache", action="store_true", help="not resumable then")
    embed.add_argument("--strict", action="store_true", help="exit 1 if any failed")
    embed.add_argument("--quiet", action="store_true", help="no progress bar")

    bench = commands.add_parser(
        "bench",
        help="measure images/s: tutorial baseline, model-only bound, featurize",
    )
    bench.add_argument(
        "--folder", default=None,
        help="JPEG folder (default ../shared/datasets/hymenoptera, else data/)",
    )  # fmt: skip
    bench.add_argument("--images", type=int, default=400, help="repeat files to N")
    bench.add_argument("--backbones", default=",".join(DEFAULT_BENCH_BACKBONES))
    bench.add_argument(
        "--batch-size", type=int, default=None,
        help="for (b) and (c); default: featurize's choice for the device",
    )  # fmt: skip
    bench.add_argument(
        "--repeats", type=int, default=3, help="rounds; each rate is the best one"
    )
    bench.add_argument("--no-rss", action="store_true", help="skip the memory check")

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
    import warnings

    previous = featurizer.on_error
    featurizer.set_params(on_error="nan")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            features = featurizer.transform(paths)
    finally:
        featurizer.set_params(on_error=previous)
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


def _csv_list(text: str, convert=str) -> list:
    return [convert(part.strip()) for part in text.split(",") if part.strip()]


def _pooling(value: str):
    return None if value.lower() == "none" else value


def _search(args) -> int:
    import joblib

    from pipelines import compare_models, list_splits, load_image_folder

    splits = [s for s in list_splits(args.directory) if s.lower() in TRAIN_SPLITS]
    paths, labels = load_image_folder(args.directory, splits[0] if splits else None)
    layers = [
        None if v.lower() == "none" else _layer(v) for v in _csv_list(args.layers)
    ]
    print(
        f"Comparing {len(paths)} images ({args.cv}-fold cross-validation): backbones "
        f"{args.backbones}, layers {args.layers}, poolings {args.poolings}, "
        f"classifiers {args.classifiers}.",
        flush=True,
    )
    results, best = compare_models(
        paths,
        labels,
        backbones=_csv_list(args.backbones),
        classifiers=_csv_list(args.classifiers),
        layers=layers,
        poolings=[_pooling(v) for v in _csv_list(args.poolings)],
        cv=args.cv,
        scoring=args.scoring,
        refit=args.model is not None,
        weights=None if args.weights.lower() == "none" else args.weights,
        input_size=args.input_size,
        verbose=0 if args.quiet else 1,
    )
    columns = ["backbone", "layer", "pooling", "classifier", "params", "mean_score",
               "std_score", "computed", "cache_hits"]  # fmt: skip
    print(results[columns].to_string(index=False, float_format="%.4f"))
    if args.out:
        results.to_csv(args.out, index=False)
        print(f"wrote {len(results)} rows to {args.out}")
    if args.model:
        joblib.dump(best, args.model)
        print(f"saved the best pipeline to {args.model}")
    return 0


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_age(text: str) -> float:
    """Seconds in an age like ``30d``, ``12h``, ``45m``, ``90s`` or ``2w``."""
    number, unit = text[:-1], text[-1:].lower()
    try:
        if unit not in _UNITS:
            raise ValueError
        return float(number) * _UNITS[unit]
    except ValueError:
        raise UserError(
            f"--older-than must be a number and a unit (s, m, h, d, w), like 30d; "
            f"received {text!r}."
        ) from None


def _cache(args) -> int:
    from featurize import EmbeddingCache

    cache = EmbeddingCache(args.dir)
    if args.action == "clear":
        age = None if args.older_than is None else parse_age(args.older_than)
        deleted = cache.clear(older_than=age)
        print(f"deleted {deleted} cached embeddings from {cache.path}")
        return 0
    info = cache.info()
    size = cache.path.stat().st_size if cache.path.exists() else 0
    print(f"cache: {cache.path} ({size / 2**20:.1f} MiB, {int(info.entries.sum())} "
          f"embeddings in {len(info)} configurations)")  # fmt: skip
    if len(info):
        print(info.drop(columns="namespace").to_string(index=False))
    return 0


def _embed(args) -> int:
    from pipelines import embed_dataset

    summary = embed_dataset(
        args.input,
        args.out,
        backbone=args.backbone,
        path_column=args.path_column,
        engine=args.engine,
        address=args.address,
        progress=not args.quiet,
        weights=None if args.weights.lower() == "none" else args.weights,
        layer=_layer(args.layer),
        pooling=_pooling(args.pooling),
        input_size=args.input_size,
        batch_size=args.batch_size,
        cache=None if args.no_cache else True,
    )
    print(summary)
    return 1 if args.strict and summary.failed else 0


def _bench(args) -> int:
    from pathlib import Path

    from pipelines._bench import run_benchmark

    folder = args.folder
    if folder is None:
        here = Path(__file__).resolve().parent.parent
        shared = here.parent / "shared" / "datasets" / "hymenoptera"
        folder = shared if shared.is_dir() else here / "data" / "hymenoptera"
    run_benchmark(
        folder,
        count=args.images,
        backbones=_csv_list(args.backbones),
        batch_size=args.batch_size,
        repeats=args.repeats,
        rss=not args.no_rss,
    )
    return 0


COMMANDS = {
    "bench": _bench,
    "embed": _embed,
    "backbones": _backbones,
    "weights": _weights,
    "train": _train,
    "search": _search,
    "predict": _predict,
    "cache": _cache,
}
