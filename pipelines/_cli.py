"""The ``featurize`` command.

Built from parts: the featurizer options are declared once, from
``ImageFeaturizer.parameter_rules``, and shared by ``train``, ``search``, ``embed`` and
``predict``. Exit codes: 0 success, 1 failure (one-line message; ``--traceback`` for
the whole error), 2 usage error.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np

from featurize import (
    EmbeddingCache,
    FeaturizeError,
    FineTunedClassifier,
    ImageFeaturizer,
    TextFeaturizer,
    list_backbones,
    list_text_encoders,
)
from pipelines._chunks import embed_chunk
from pipelines._classifiers import (
    CLASSIFIERS,
    make_image_classifier,
    make_text_classifier,
)
from pipelines._data import IMAGE_EXTENSIONS, list_splits, load_image_folder
from pipelines._embed import embed_dataset, read_manifest, read_text_table
from pipelines._ray import RAY_CACHES
from pipelines._selection import compare_models

TRAIN_SPLITS = ("train", "training")
EVAL_SPLITS = ("val", "valid", "validation", "test", "testing")
# Featurizer parameters offered as options, in the order --help lists them.
FEATURIZER_OPTIONS = (
    "backbone", "weights", "layer", "pooling", "input_size", "resize", "precision",
    "batch_size", "decode_workers", "max_pixels", "cache",
)  # fmt: skip
# TextFeaturizer parameters offered with --text-column (batch_size and cache are the
# featurizer options of the same names).
TEXT_OPTIONS = ("encoder", "max_length", "long_text")
# What `search` can compare several of (comma-separated); one each elsewhere.
COMPARABLE = ("backbone", "layer", "pooling")
# What defines a saved model's embeddings: `predict` may not change these.
DEFINING = ("backbone", "weights", "layer", "pooling", "input_size", "resize",
            "precision")  # fmt: skip


class UserError(Exception):
    """A problem the user can fix; printed as one line, exit code 1."""


class UsageError(Exception):
    """Options that do not go together; exit code 2, like argparse's own errors."""


# -- the parts


def _option_type(name: str, rule, comparable: bool):
    """argparse ``type=``: text to checked value(s), from the parameter's rule."""

    def convert(text: str):
        parts = (
            [p.strip() for p in text.split(",") if p.strip()] if comparable else [text]
        )
        values = []
        for part in parts:
            try:
                value = rule.check(name, rule.from_text(part))
            except FeaturizeError as error:
                raise argparse.ArgumentTypeError(str(error)) from None
            except ValueError:
                raise argparse.ArgumentTypeError(
                    f"expected {_metavar(name, rule)}; received {part!r}"
                ) from None
            values.append(value)
        if not values:
            raise argparse.ArgumentTypeError(f"no value in {text!r}")
        return values if comparable else values[0]

    convert.__name__ = name  # argparse names the type in its messages
    return convert


def _metavar(name: str, rule) -> str:
    if rule.choices:
        return "{" + ",".join(rule.choices) + "}"
    return name.upper()


def _featurizer_options(
    estimator=ImageFeaturizer, names=FEATURIZER_OPTIONS, title="featurizer options"
) -> argparse.ArgumentParser:
    """An estimator's options, declared once for every command that embeds."""
    parent = argparse.ArgumentParser(add_help=False)
    group = parent.add_argument_group(title)
    defaults = estimator().get_params()
    for name in names:
        rule = estimator.parameter_rules[name]
        comparable = name in COMPARABLE
        flags = [f"--{name.replace('_', '-')}"]
        if comparable:
            flags.append(f"--{name.replace('_', '-')}s")
        default = defaults[name]
        shown = "none" if default is None else default
        if name == "cache":
            shown = "the default folder"
        if name == "input_size":
            shown = "the backbone's native size"
        if name == "max_length":
            shown = "the encoder's limit"
        more = "; comma-separated to compare several (search)" if comparable else ""
        group.add_argument(
            *flags,
            dest=name,
            type=_option_type(name, rule, comparable),
            default=argparse.SUPPRESS,
            metavar=_metavar(name, rule),
            help=f"{rule.help}{more} (default: {shown})",
        )
    return parent


def _common_options() -> argparse.ArgumentParser:
    parent = argparse.ArgumentParser(add_help=False)
    _add_common(parent, default=argparse.SUPPRESS)
    return parent


def _add_common(parser, default) -> None:
    parser.add_argument(
        "--traceback", action="store_true", default=default,
        help="on failure, print the whole error, not one line",
    )  # fmt: skip
    parser.add_argument(
        "--framework-logs", action="store_true", default=default,
        help="let TensorFlow print its start-up log lines",
    )  # fmt: skip


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="featurize",
        description="Image embeddings from frozen pretrained Keras backbones, and "
        "classifiers trained on them.",
    )
    _add_common(parser, default=False)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    common = _common_options()
    featurizer = _featurizer_options()
    text = _featurizer_options(
        TextFeaturizer, TEXT_OPTIONS, "text options (with --text-column)"
    )
    text.add_argument(
        "--text-column", default=None,
        help="embed this column of a CSV/Parquet table as text (TextFeaturizer)",
    )  # fmt: skip
    manifest = argparse.ArgumentParser(add_help=False)
    manifest.add_argument(
        "--path-column", default="path", help="manifest column holding the paths"
    )

    def command(name, handler, parents=(), **kwargs):
        sub = commands.add_parser(name, parents=[common, *parents], **kwargs)
        sub.set_defaults(handler=handler)
        return sub

    listing = command("backbones", _backbones, help="list the backbone registry")
    listing.add_argument("--format", choices=("table", "csv"), default="table")

    weights = command(
        "weights",
        _weights,
        help="which backbones have pretrained weights on this machine",
    )
    weights.add_argument("--missing", action="store_true", help="only missing ones")

    command("encoders", _encoders, help="list the text encoders")

    train = command(
        "train",
        _train,
        [featurizer, text],
        help="train and evaluate a classifier on an image folder or a text column",
        description="Train on DIR/<class>/* (holding out a stratified part for "
        "evaluation) or on DIR/train/<class>/*, evaluating on DIR/val (or test). "
        "With --text-column, DIR is a CSV/Parquet table: its text column embedded "
        "by a TextFeaturizer, its --label-column the classes, a stratified part "
        "held out.",
    )
    train.add_argument("directory", metavar="DIR")
    train.add_argument(
        "--label-column", default="label",
        help="with --text-column: the column holding the classes",
    )  # fmt: skip
    train.add_argument("--classifier", default="logreg", choices=list(CLASSIFIERS))
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
    train.add_argument(
        "--fine-tune", action="store_true",
        help="also fine-tune the backbone (FineTunedClassifier) and compare",
    )  # fmt: skip
    train.add_argument(
        "--epochs", type=int, default=None, help="with --fine-tune: training epochs"
    )
    train.add_argument(
        "--keep", choices=("better", "frozen", "fine-tuned"), default="better",
        help="with --fine-tune: the model --out saves",
    )  # fmt: skip

    search = command(
        "search",
        _search,
        [featurizer],
        help="cross-validate backbones x classifiers on an image folder",
        description="Compare featurizer configurations and classifiers by "
        "cross-validation on DIR/<class>/* (or DIR/train/<class>/*). Each image is "
        "embedded once per configuration, through the embedding cache.",
    )
    search.add_argument("directory", metavar="DIR")
    search.add_argument(
        "--classifiers",
        default="logreg",
        help=f"comma-separated: {', '.join(list(CLASSIFIERS))}",
    )
    search.add_argument("--cv", type=int, default=5)
    search.add_argument("--scoring", default="accuracy")
    search.add_argument("--out", default=None, help="write the results table (CSV)")
    search.add_argument("--model", default=None, help="save the best pipeline (joblib)")
    search.add_argument("--quiet", action="store_true")

    embed = command(
        "embed",
        _embed,
        [featurizer, manifest, text],
        help="embed a whole collection to Parquet (resumable; local or Ray)",
        description="Embed every image of INPUT (a folder, a glob, a text file of "
        "paths, or a CSV/Parquet manifest) into OUT.parquet, with failures in "
        "OUT.failures.parquet. Killed and re-run, it recomputes nothing it stored. "
        "With --text-column, the texts of that column of a CSV/Parquet INPUT.",
    )
    embed.add_argument("input", metavar="INPUT")
    embed.add_argument("--out", required=True, help="the Parquet file to write")
    embed.add_argument("--engine", choices=("local", "ray"), default="local")
    embed.add_argument("--address", default=None, help="Ray cluster address")
    embed.add_argument(
        "--ray-cache", choices=RAY_CACHES, default="shared",
        help="with --engine ray: the driver's cache folder on every node (a shared "
        "filesystem), each node's own, or none",
    )  # fmt: skip
    embed.add_argument("--strict", action="store_true", help="exit 1 if any failed")
    embed.add_argument("--quiet", action="store_true", help="no progress bar")

    predict = command(
        "predict",
        _predict,
        [featurizer, manifest, text],
        help="predict images with a saved pipeline",
        description="Predict the images of INPUT (image files, or one folder, glob, "
        "text file of paths or CSV/Parquet manifest) with a pipeline saved by "
        "`featurize train --out` or `search --model`. Writes the manifest's "
        "columns, `label`, one `proba_<class>` column per class (when the "
        "classifier has predict_proba) and `error`, as CSV (stdout, or --out "
        "x.csv) or Parquet (--out x.parquet). Unreadable images get an error and "
        "no label; the exit code is then 1. Featurizer options may change how "
        "images are read (batch size, threads, cache), not what defines the "
        "model's embeddings. A text model (`train TABLE --text-column`) predicts "
        "the --text-column of one CSV/Parquet table.",
    )
    predict.add_argument("model", metavar="MODEL")
    predict.add_argument("inputs", metavar="INPUT", nargs="+")
    predict.add_argument("--out", default=None, help="CSV or Parquet file to write")

    cache = command(
        "cache", _cache, help="inspect, clear or shrink the embedding cache"
    )
    cache.add_argument("action", choices=("info", "clear", "shrink"))
    cache.add_argument(
        "--older-than", default=None, metavar="AGE",
        help="with clear: entries older than AGE (30d, 12h, 45m)",
    )  # fmt: skip
    cache.add_argument(
        "--stale", action="store_true",
        help="with clear: only the configurations this installation can no longer "
        "produce (marked in `cache info`)",
    )  # fmt: skip
    cache.add_argument(
        "--max-bytes", default=None, metavar="SIZE",
        help="with shrink: evict least recently used entries down to SIZE (2GB, "
        "500MiB; default: the cap, $FEATURIZE_CACHE_MAX_BYTES or 10GiB)",
    )  # fmt: skip
    cache.add_argument(
        "--dir", default=None, help="cache folder (default: the default)"
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command line; return the exit code."""
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        if args.command in ("train", "search", "embed", "predict", "encoders"):
            _import_framework(show_logs=args.framework_logs)
        return args.handler(args)
    except BrokenPipeError:  # e.g. piped into `head`
        sys.stderr.close()
        return 0
    except UsageError as error:
        parser.error(str(error))
    except (UserError, FeaturizeError, OSError, ValueError, ImportError) as error:
        if args.traceback:
            import traceback

            traceback.print_exc()
        message = str(error).splitlines()[0] if str(error) else type(error).__name__
        print(f"featurize: error: {message}", file=sys.stderr)
        return 1


def _import_framework(*, show_logs: bool) -> None:
    """Import Keras (and TensorFlow) now, silencing TensorFlow's C++ start-up lines.

    TensorFlow logs them through absl before its own log level applies, straight
    to file descriptor 2, so only redirecting that descriptor keeps them out. An
    explicit ``TF_CPP_MIN_LOG_LEVEL`` or ``--framework-logs`` leaves them alone.
    """
    if show_logs or "TF_CPP_MIN_LOG_LEVEL" in os.environ:
        import keras  # noqa: F401

        return
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            import keras  # noqa: F401
    finally:
        os.dup2(saved, 2)
        os.close(saved)


# -- option values


def _featurizer_params(args, *, comparable: bool = False) -> dict:
    """The featurizer options given on the command line (defaults stay out)."""
    params = {name: getattr(args, name) for name in FEATURIZER_OPTIONS
              if hasattr(args, name)}  # fmt: skip
    if not comparable:
        for name in COMPARABLE:
            if name in params:
                if len(params[name]) > 1:
                    raise UsageError(
                        f"`{args.command}` takes one --{name}; received "
                        f"{len(params[name])}. Compare several with `featurize "
                        f"search`."
                    )
                params[name] = params[name][0]
    return params


def _text_params(args) -> dict:
    """The TextFeaturizer options given on the command line (defaults stay out)."""
    names = (*TEXT_OPTIONS, "batch_size", "cache")
    given = {name: getattr(args, name) for name in names if hasattr(args, name)}
    image_only = [
        f"--{name.replace('_', '-')}"
        for name in FEATURIZER_OPTIONS
        if hasattr(args, name) and name not in given
    ]
    if image_only:
        verb = "applies" if len(image_only) == 1 else "apply"
        raise UsageError(
            f"{', '.join(image_only)} {verb} to images, not to --text-column; the "
            f"text options are --encoder, --max-length and --long-text."
        )
    return given


def _check_no_text_options(args) -> None:
    given = [f"--{n.replace('_', '-')}" for n in TEXT_OPTIONS if hasattr(args, n)]
    if given:
        verb = "needs" if len(given) == 1 else "need"
        raise UsageError(f"{', '.join(given)} {verb} --text-column.")


# -- commands


def _backbones(args) -> int:
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


def _encoders(args) -> int:
    print(list_text_encoders().to_string(index=False))
    return 0


def _weights(args) -> int:
    table = list_backbones(weights_status=True)
    if args.missing:
        table = table[table.weights_status == "missing"]
    width = max((len(name) for name in table.name), default=4)
    print(f"{'name':<{width}}  {'status':<34}  location")
    for row in table.itertuples():
        print(f"{row.name:<{width}}  {row.weights_status:<34}  {row.weights_location}")
    return 0


def _split_folder(directory: str, seed: int, test_size: float):
    from sklearn.model_selection import train_test_split

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


def _embed_usable(featurizer, paths, labels):
    """Embed ``paths``, dropping (and reporting on stderr) the unreadable ones."""
    result = featurizer.embed(paths, on_error="nan")
    for row in result.failures.itertuples():
        print(f"featurize: skipped {row.input!r}: {row.reason}", file=sys.stderr)
    keep = np.flatnonzero(result.ok)
    return result.array[keep], [labels[i] for i in keep]


def _train(args) -> int:
    import joblib
    from sklearn.metrics import accuracy_score, classification_report

    if args.text_column is not None:
        return _train_text(args)
    _check_no_text_options(args)
    params = _featurizer_params(args)
    train_x, train_y, test_x, test_y, how = _split_folder(
        args.directory, args.seed, args.test_size
    )
    pipeline = make_image_classifier(
        classifier=args.classifier, verbose=0 if args.quiet else 1, **params
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
    features, labels = _embed_usable(featurizer, train_x, train_y)
    if len(set(labels)) < 2:
        raise UserError("Training needs images of at least two classes.")
    head.fit(features, labels)
    test_features, test_labels = _embed_usable(featurizer, test_x, test_y)
    predictions = head.predict(test_features)
    accuracy = accuracy_score(test_labels, predictions)
    print(f"accuracy: {accuracy:.4f} ({len(test_labels)} held-out images)")
    print(classification_report(test_labels, predictions, digits=4))
    model, kind = pipeline, "pipeline"
    if args.fine_tune:
        tuned, tuned_accuracy = _fine_tune(
            args, params, train_x, train_y, test_x, test_y
        )
        print(
            f"held-out accuracy: frozen {args.classifier} {accuracy:.4f}, "
            f"fine-tuned {tuned_accuracy:.4f}"
        )
        if args.keep == "fine-tuned" or (
            args.keep == "better" and tuned_accuracy > accuracy
        ):
            model, kind = tuned, "fine-tuned classifier"
    if args.out:
        joblib.dump(model, args.out)
        size = os.path.getsize(args.out)
        print(f"saved the fitted {kind} to {args.out} ({size / 1024:.0f} KiB)")
    return 0


def _train_text(args) -> int:
    """A TextFeaturizer + classifier on a table's text and label columns."""
    import joblib
    from sklearn.metrics import accuracy_score, classification_report
    from sklearn.model_selection import train_test_split

    if args.fine_tune:
        raise UsageError("--fine-tune applies to images, not to --text-column.")
    params = _text_params(args)
    table = read_text_table(args.directory, args.text_column)
    if args.label_column not in table.columns:
        raise UserError(
            f"{args.directory!r} has no column {args.label_column!r}; its columns "
            f"are {list(table.columns)}. Pass --label-column."
        )
    pipeline = make_text_classifier(
        classifier=args.classifier, verbose=0 if args.quiet else 1, **params
    )
    pipeline.set_params(classifier__C=args.C)
    featurizer, head = pipeline["featurizer"], pipeline[1:]
    featurizer.fit()
    labelled = table[table[args.label_column].notna()]
    if len(labelled) < len(table):
        print(
            f"featurize: skipped {len(table) - len(labelled)} rows without a label "
            f"in {args.label_column!r}",
            file=sys.stderr,
        )
    result = featurizer.embed(labelled[args.text_column], on_error="nan")
    for row in result.failures.itertuples():
        print(
            f"featurize: skipped row {labelled.index[row.index]}: {row.reason}",
            file=sys.stderr,
        )
    keep = np.flatnonzero(result.ok)
    features = result.array[keep]
    labels = labelled[args.label_column].to_numpy()[keep]
    if len(set(labels)) < 2:
        raise UserError("Training needs texts of at least two classes.")
    train_x, test_x, train_y, test_y = train_test_split(
        features, labels, test_size=args.test_size, stratify=labels,
        random_state=args.seed,
    )  # fmt: skip
    print(
        f"Training {args.classifier} on {featurizer.encoder_} text embeddings "
        f"({featurizer.n_features_out_} per text); {len(train_y)} training and "
        f"{len(test_y)} held-out texts (stratified {1 - args.test_size:.0%}/"
        f"{args.test_size:.0%} split).",
        flush=True,
    )
    head.fit(train_x, train_y)
    predictions = head.predict(test_x)
    accuracy = accuracy_score(test_y, predictions)
    print(f"accuracy: {accuracy:.4f} ({len(test_y)} held-out texts)")
    print(classification_report(test_y, predictions, digits=4))
    if args.out:
        joblib.dump(pipeline, args.out)
        size = os.path.getsize(args.out)
        print(f"saved the fitted pipeline to {args.out} ({size / 1024:.0f} KiB)")
    return 0


def _fine_tune(args, params, train_x, train_y, test_x, test_y):
    """Fit a FineTunedClassifier on the same split; its held-out accuracy."""
    from sklearn.metrics import accuracy_score

    shared = {
        k: v for k, v in params.items() if k in FineTunedClassifier.parameter_rules
    }
    shared.pop("batch_size", None)  # the featurizer's inference batch, not training's
    if args.epochs is not None:
        shared["epochs"] = args.epochs
    tuned = FineTunedClassifier(
        **shared, on_error="nan", random_state=args.seed, verbose=0 if args.quiet else 1
    )
    print("Fine-tuning (linear probe first, then stages from the top)...", flush=True)
    tuned.fit(train_x, train_y)
    for row in tuned.fit_failures_.itertuples():
        print(f"featurize: skipped {row.input!r}: {row.reason}", file=sys.stderr)
    frame = tuned.predict_frame(test_x)
    ok = (frame["error"] == "").to_numpy()
    labels = [y for y, good in zip(test_y, ok) if good]
    accuracy = accuracy_score(labels, frame["label"][ok].tolist())
    print(
        f"fine-tuned accuracy: {accuracy:.4f} ({ok.sum()} held-out images; best "
        f"epoch {tuned.best_epoch_} of {int(tuned.history_.epoch.max())})"
    )
    return tuned, accuracy


def _predict_sources(args):
    """The rows to predict: image files, or one manifest (folder, glob, list, table)."""
    import pandas as pd

    if len(args.inputs) == 1 and not args.inputs[0].lower().endswith(IMAGE_EXTENSIONS):
        return read_manifest(args.inputs[0], args.path_column)
    return pd.DataFrame({"path": args.inputs})


def _predict(args) -> int:
    import joblib

    try:
        pipeline = joblib.load(args.model)
    except FileNotFoundError:
        raise UserError(f"model file {args.model!r} not found") from None
    text_model = not isinstance(pipeline, FineTunedClassifier) and isinstance(
        pipeline["featurizer"], TextFeaturizer
    )
    if text_model != (args.text_column is not None):
        raise UserError(
            f"{args.model!r} classifies texts: pass a CSV/Parquet table and its "
            f"--text-column."
            if text_model
            else f"{args.model!r} classifies images: --text-column does not apply."
        )
    if isinstance(pipeline, FineTunedClassifier):
        return _predict_fine_tuned(pipeline, args)
    featurizer, head = pipeline["featurizer"], pipeline[1:]
    if text_model:
        if len(args.inputs) != 1:
            raise UserError("With --text-column, pass one CSV/Parquet table.")
        given = _text_params(args)
        for name in TEXT_OPTIONS:
            saved = TextFeaturizer.parameter_rules[name].check(
                name, featurizer.get_params()[name]
            )
            if name in given and given[name] != saved:
                raise UserError(
                    f"--{name.replace('_', '-')} {given[name]!r} differs from the "
                    f"model's {saved!r}: the classifier was trained on those "
                    f"embeddings. Leave it out, or train a new model."
                )
        featurizer.set_params(
            **{k: v for k, v in given.items() if k not in TEXT_OPTIONS}
        )
        frame = read_text_table(args.inputs[0], args.text_column)
        items = frame[args.text_column].tolist()
    else:
        _check_no_text_options(args)
        params = _featurizer_params(args)
        saved = featurizer.get_params()
        for name in DEFINING:
            rule = ImageFeaturizer.parameter_rules[name]
            if name in params and params[name] != rule.check(name, saved[name]):
                raise UserError(
                    f"--{name.replace('_', '-')} {params[name]!r} differs from the "
                    f"model's {saved[name]!r}: the classifier was trained on those "
                    f"embeddings. Leave it out, or train a new model."
                )
        featurizer.set_params(**{k: v for k, v in params.items() if k not in DEFINING})
        frame = _predict_sources(args)
        items = frame.path.astype(str).tolist()
    chunk = embed_chunk(featurizer.fit(), items)
    usable = [i for i in range(len(frame)) if i not in chunk.failures]
    out = frame.reset_index(drop=True).copy()
    out["label"] = None
    if usable:
        features = chunk.embeddings[usable]
        out.loc[usable, "label"] = head.predict(features)
        if hasattr(head, "predict_proba"):
            probabilities = head.predict_proba(features)
            for k, label in enumerate(head.classes_):
                column = np.full(len(frame), np.nan)
                column[usable] = probabilities[:, k]
                out[f"proba_{label}"] = column
    out["error"] = [chunk.failures.get(i, ("", ""))[1] for i in range(len(frame))]
    _write_table(out, args.out)
    return 1 if chunk.failures else 0


def _predict_fine_tuned(model, args) -> int:
    params = _featurizer_params(args)
    defining = [n for n in DEFINING if n in params and n in model.parameter_rules]
    for name in defining:
        rule = model.parameter_rules[name]
        if params[name] != rule.check(name, getattr(model, name)):
            raise UserError(
                f"--{name.replace('_', '-')} {params[name]!r} differs from the "
                f"fine-tuned model's {getattr(model, name)!r}. Leave it out."
            )
    runtime = ("decode_workers", "max_pixels", "verbose")
    model.set_params(**{k: v for k, v in params.items() if k in runtime})
    frame = _predict_sources(args)
    paths = frame.path.astype(str).tolist()
    result = model.predict_frame(paths)  # URLs too: read by the decode threads
    import pandas as pd

    out = pd.concat([frame.reset_index(drop=True), result], axis=1)
    _write_table(out, args.out)
    return 1 if (result["error"] != "").any() else 0


def _write_table(frame, path: str | None) -> None:
    if path is None:
        frame.to_csv(sys.stdout, index=False, float_format="%.4f")
    elif Path(path).suffix.lower() in (".parquet", ".pq"):
        frame.to_parquet(path, index=False)
    else:
        frame.to_csv(path, index=False, float_format="%.6g")


def _csv_list(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def _search(args) -> int:
    import joblib

    params = _featurizer_params(args, comparable=True)
    backbones = params.pop("backbone", [ImageFeaturizer().backbone])
    layers = params.pop("layer", [None])
    poolings = params.pop("pooling", [ImageFeaturizer().pooling])
    splits = [s for s in list_splits(args.directory) if s.lower() in TRAIN_SPLITS]
    paths, labels = load_image_folder(args.directory, splits[0] if splits else None)
    print(
        f"Comparing {len(paths)} images ({args.cv}-fold cross-validation): backbones "
        f"{backbones}, layers {layers}, poolings {poolings}, classifiers "
        f"{args.classifiers}.",
        flush=True,
    )
    results, best = compare_models(
        paths,
        labels,
        backbones=backbones,
        classifiers=_csv_list(args.classifiers),
        layers=layers,
        poolings=poolings,
        cv=args.cv,
        scoring=args.scoring,
        refit=args.model is not None,
        verbose=0 if args.quiet else 1,
        **params,
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
    cache = EmbeddingCache(args.dir)
    if args.stale and (args.action != "clear" or args.older_than is not None):
        raise UsageError("--stale goes with `cache clear`, without --older-than.")
    if args.max_bytes is not None and args.action != "shrink":
        raise UsageError("--max-bytes goes with `cache shrink`.")
    if args.action == "clear":
        if args.stale:
            deleted = cache.clear_stale()
        else:
            age = None if args.older_than is None else parse_age(args.older_than)
            deleted = cache.clear(older_than=age)
        print(f"deleted {deleted} cached embeddings from {cache.path}")
        return 0
    if args.action == "shrink":
        limit = "cap" if args.max_bytes is None else args.max_bytes
        evicted = cache.shrink(limit)
        print(f"evicted {evicted} least recently used embeddings from {cache.path}")
        return 0
    info = cache.info()
    size = cache.path.stat().st_size if cache.path.exists() else 0
    cap = (
        "no cap"
        if cache.max_bytes is None
        else f"cap {cache.max_bytes / 2**20:.0f} MiB"
    )
    print(f"cache: {cache.path} ({size / 2**20:.1f} MiB, {cap}; "
          f"{int(info.entries.sum())} embeddings in {len(info)} configurations, "
          f"{int((info.stale != '').sum())} stale)")  # fmt: skip
    if len(info):
        shown = info.drop(columns="namespace")
        shown["stale"] = shown["stale"].where(shown["stale"] != "", "-")
        print(shown.to_string(index=False))
    return 0


def _embed(args) -> int:
    if args.text_column is None:
        _check_no_text_options(args)
    summary = embed_dataset(
        args.input,
        args.out,
        path_column=args.path_column,
        text_column=args.text_column,
        engine=args.engine,
        address=args.address,
        ray_cache=args.ray_cache,
        progress=not args.quiet,
        **(
            _featurizer_params(args) if args.text_column is None else _text_params(args)
        ),
    )
    print(summary)
    return 1 if args.strict and summary.failed else 0
