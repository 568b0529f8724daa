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
import warnings

from featurize import (
    FeaturizeError,
    ImageFeaturizer,
    TextFeaturizer,
    list_backbones,
    list_text_encoders,
)
from pipelines._anomaly import (
    DETECTOR_OPTIONS,
    add_anomaly_options,
    anomaly_train_command,
    predict_anomaly,
)
from pipelines._audit.command import add_audit_command
from pipelines._audit.groups import GroupPatternError, groups_from_names
from pipelines._cache_command import add_cache_command
from pipelines._classifiers import CLASSIFIERS
from pipelines._data import IMAGE_EXTENSIONS, list_splits, load_image_folder
from pipelines._embed import embed_dataset
from pipelines._export import add_export_command
from pipelines._files import (
    OverwritesInputError,
    check_output,
    dump_model,
    write_table,
)
from pipelines._label import add_label_command
from pipelines._manifests import read_manifest, read_text_table
from pipelines._options import (
    TEXT_OPTIONS,
    UsageError,
    UserError,
    add_common,
    check_no_text_options,
    common_options,
    featurizer_options,
    featurizer_params,
    model_options,
    selection_options,
    text_params,
)
from pipelines._predict import check_options, predict_rows, read_model
from pipelines._ray import RAY_CACHES
from pipelines._selection import compare_models, fold_problem
from pipelines._similar import add_similar_command
from pipelines._tables import separator
from pipelines._train import TRAIN_SPLITS, train_and_evaluate

PREDICTION_SUFFIXES = (".csv", ".tsv", ".parquet", ".pq")
# Commands that load Keras (the others answer without it, in a fraction of a second).
FRAMEWORK_COMMANDS = (
    "train", "search", "embed", "predict", "encoders", "export", "audit", "similar",
    "label",
)  # fmt: skip


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="featurize",
        description="Image embeddings from frozen pretrained Keras backbones, and "
        "classifiers trained on them.",
    )
    add_common(parser, default=False)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    common = common_options()
    featurizer = featurizer_options()
    text = featurizer_options(
        TextFeaturizer, TEXT_OPTIONS, "text options (with --text-column)"
    )
    text.add_argument(
        "--text-column", default=None,
        help="embed this column of a CSV/Parquet table as text (TextFeaturizer)",
    )  # fmt: skip
    manifest = argparse.ArgumentParser(add_help=False)
    manifest.add_argument(
        "--path-column", default=None,
        help="manifest column holding the image paths (default: path)",
    )  # fmt: skip
    tables = argparse.ArgumentParser(add_help=False)
    group = tables.add_argument_group("table options (CSV manifests and text tables)")
    group.add_argument(
        "--encoding", default=None,
        help="the CSV's text encoding, e.g. latin-1 (default: UTF-8)",
    )  # fmt: skip
    group.add_argument(
        "--sep", default=None, type=_separator,
        help="the CSV's separator: one character, or 'tab' (default: sniffed from "
        "the header among , tab ; |)",
    )  # fmt: skip

    selection = selection_options()

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
        [featurizer, text, tables, selection],
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
    train.add_argument(
        "--out", default=None,
        help="save the fitted pipeline (joblib); checked before training",
    )  # fmt: skip
    train.add_argument("--quiet", action="store_true", help="no progress bars")
    train.add_argument(
        "--fine-tune", action="store_true",
        help="also fine-tune the backbone or text encoder, and compare",
    )  # fmt: skip
    train.add_argument(
        "--epochs", type=int, default=None, help="with --fine-tune: training epochs"
    )
    train.add_argument(
        "--keep", choices=("better", "frozen", "fine-tuned"), default=None,
        help="with --fine-tune: the model --out saves (default: better)",
    )  # fmt: skip

    search = command(
        "search",
        _search,
        [featurizer, selection],
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
    search.add_argument(
        "--out", default=None, help="write the results table (CSV or Parquet)"
    )
    search.add_argument("--model", default=None, help="save the best pipeline (joblib)")
    search.add_argument(
        "--fine-tune", action="store_true",
        help="also cross-validate a FineTunedClassifier per backbone (it trains "
        "once per fold: minutes, not seconds)",
    )  # fmt: skip
    search.add_argument("--quiet", action="store_true")

    embed = command(
        "embed",
        _embed,
        [featurizer, manifest, text, tables],
        help="embed a whole collection to Parquet (resumable; local or Ray)",
        description="Embed every image of INPUT (a folder, a glob, a text file of "
        "paths, or a CSV/Parquet manifest) into OUT.parquet, with failures in "
        "OUT.failures.parquet. Killed and re-run, it recomputes nothing it stored. "
        "With --text-column, the texts of that column of a CSV/Parquet INPUT.",
    )
    embed.add_argument("input", metavar="INPUT")
    embed.add_argument(
        "--out", required=True,
        help="the Parquet file to write (never an input; checked before any work)",
    )  # fmt: skip
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
        [featurizer, manifest, text, tables, model_options()],
        help="predict images with a saved pipeline",
        description="Predict the images of INPUT (image files, or one folder, glob, "
        "text file of paths or CSV/Parquet manifest) with a pipeline saved by "
        "`featurize train --out` or `search --model`. Writes the manifest's "
        "columns unchanged, then `label`, one `proba_<class>` column per class "
        "(when the classifier has predict_proba) and `error` (each named "
        "`predicted_<name>` where the input has a column of that name), as CSV "
        "(stdout, or --out x.csv) or Parquet (--out x.parquet). The model file "
        "is loaded without running code: only the types a featurize model is "
        "made of are admitted (--trust lifts that). Unreadable images get an "
        "error and "
        "no label; the exit code is then 1. Featurizer options may change how "
        "images are read (batch size, threads, cache), not what defines the "
        "model's embeddings. A text model (`train TABLE --text-column`) predicts "
        "the --text-column of one CSV/Parquet table.",
    )
    predict.add_argument("model", metavar="MODEL")
    predict.add_argument("inputs", metavar="INPUT", nargs="+")
    predict.add_argument(
        "--out", default=None,
        help="CSV, TSV or Parquet file to write (by its name; never an input)",
    )  # fmt: skip

    add_anomaly_options(train, predict)
    add_export_command(command, model_options())
    add_audit_command(command, [featurizer, manifest, text, tables])
    add_similar_command(command, [featurizer])
    add_label_command(command, [featurizer, manifest, text, tables])

    add_cache_command(command)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command line; return the exit code."""
    parser = _parser()
    args = parser.parse_args(argv)
    shown = warnings.formatwarning
    warnings.formatwarning = _warning_line
    try:
        if args.command in FRAMEWORK_COMMANDS:
            _import_framework(show_logs=args.framework_logs)
        return args.handler(args)
    except BrokenPipeError:  # e.g. piped into `head`
        sys.stderr.close()
        return 0
    except (UsageError, OverwritesInputError, GroupPatternError) as error:
        parser.error(str(error))
    except (UserError, FeaturizeError, OSError, ValueError, ImportError) as error:
        if args.traceback:
            import traceback

            traceback.print_exc()
        message = str(error).splitlines()[0] if str(error) else type(error).__name__
        print(f"featurize: error: {message}", file=sys.stderr)
        return 1
    finally:
        warnings.formatwarning = shown


def _warning_line(message, category, *_, **__) -> str:
    """A warning as the command's other messages read: one line, no source."""
    return f"featurize: warning: {message}\n"


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


def _train(args) -> int:
    if args.anomaly:
        check_no_text_options(args)
        _check_no_table_options(args, "an image folder")
        return anomaly_train_command(args, featurizer_params(args), _say)
    if args.report:
        raise UsageError("--report on train is for --anomaly.")
    if any(hasattr(args, name) for name in DETECTOR_OPTIONS):
        raise UsageError("The detector's options need --anomaly.")
    if args.fine_tune is False and (args.epochs is not None or args.keep):
        given = "--epochs" if args.epochs is not None else "--keep"
        raise UsageError(f"{given} needs --fine-tune.")
    if args.text_column is not None:
        if args.epochs is not None:
            raise UsageError("--epochs sets image fine-tuning's epochs, not texts'.")
        params = text_params(args)
    else:
        check_no_text_options(args)
        _check_no_table_options(args, "an image folder")
        params = featurizer_params(args)
    out = args.out and check_output(args.out, inputs=[args.directory], what="model")
    trained = train_and_evaluate(
        args.directory, text_column=args.text_column, label_column=args.label_column,
        classifier=args.classifier, C=args.C, test_size=args.test_size, seed=args.seed,
        fine_tune=args.fine_tune, epochs=args.epochs, keep=args.keep or "better",
        group_duplicates=args.group_duplicates, group_pattern=args.group_pattern,
        class_weight=_none(args.class_weight),
        verbose=0 if args.quiet else 1, encoding=args.encoding, sep=args.sep,
        say=_say, **params,
    )  # fmt: skip
    if out:
        size = dump_model(trained.model, out)
        print(f"saved the fitted {trained.kind} to {out} ({size / 1024:.0f} KiB)")
    return 0


def _say(message: str) -> None:
    print(message, flush=True)


def _predict_rows(args, text_model: bool):
    """The rows to predict: a text table, image files, or one manifest."""
    import pandas as pd

    tables = {"encoding": args.encoding, "sep": args.sep}
    if text_model:
        if len(args.inputs) != 1:
            raise UsageError("With --text-column, pass one CSV/Parquet table.")
        return read_text_table(args.inputs[0], args.text_column, **tables)
    first = args.inputs[0]
    if len(args.inputs) == 1 and not first.lower().endswith(IMAGE_EXTENSIONS):
        return read_manifest(first, args.path_column or "path", **tables)
    _check_no_table_options(args, "image files")
    if args.path_column is not None:
        raise UsageError(
            "--path-column names a manifest's column: not with image files."
        )
    return pd.DataFrame({"path": args.inputs})


def _predict(args) -> int:
    out = args.out and check_output(
        args.out, inputs=[args.model, *args.inputs], what="predictions file",
        suffixes=PREDICTION_SUFFIXES,
    )  # fmt: skip
    model, modality = read_model(args.model, trust=args.trust)
    if modality != "anomaly" and (args.maps or args.overlay or args.report):
        raise UsageError("--maps, --overlay and --report are for anomaly detectors.")
    text_model = modality == "text"
    if text_model != (args.text_column is not None):
        raise UsageError(
            f"{args.model!r} classifies texts: pass a CSV/Parquet table and its "
            f"--text-column."
            if text_model
            else f"{args.model!r} classifies images: --text-column does not apply."
        )
    if text_model:
        if args.path_column is not None:
            raise UsageError("--path-column names image paths: not with --text-column.")
        options = text_params(args)
        column = args.text_column
    else:
        check_no_text_options(args)
        options, column = featurizer_params(args), "path"
    check_options(model, options)
    rows = _predict_rows(args, text_model)
    if not len(rows):
        raise UserError(
            f"{' '.join(args.inputs)}: no inputs found (no image files in a folder, "
            f"no matches for a glob, no rows in a table); nothing was written."
        )
    if modality == "anomaly":
        frame, failed = predict_anomaly(args, model, rows, options)
        write_table(frame, out or None)
        return 1 if failed else 0
    predictions = predict_rows(model, rows, column, options)
    for name, used in predictions.renamed.items():
        print(
            f"featurize: the input has a column {name!r}: the prediction's is "
            f"{used!r} (input columns are never overwritten)",
            file=sys.stderr,
        )
    if predictions.truncated:
        print(
            f"featurize: {predictions.truncated} texts were longer than max_length "
            f"and were truncated",
            file=sys.stderr,
        )
    frame = predictions.frame
    for name in predictions.added:  # the input's own numbers are written as they came
        if frame[name].dtype.kind == "f":
            frame[name] = frame[name].round(6 if out else 4)
    write_table(frame, out or None)
    return 1 if predictions.failed else 0


def _none(text: str):
    return None if text == "none" else text


def _csv_list(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def _search(args) -> int:
    inputs = [args.directory]
    if args.out:
        check_output(
            args.out, inputs=inputs, what="results table", suffixes=PREDICTION_SUFFIXES
        )
    if args.model:
        check_output(args.model, inputs=[*inputs, args.out], what="model")
    params = featurizer_params(args, comparable=True)
    backbones = params.pop("backbone", [ImageFeaturizer().backbone])
    layers = params.pop("layer", [None])
    poolings = params.pop("pooling", [ImageFeaturizer().pooling])
    splits = [s for s in list_splits(args.directory) if s.lower() in TRAIN_SPLITS]
    paths, labels = load_image_folder(args.directory, splits[0] if splits else None)
    groups = None
    if args.group_pattern is not None:
        groups = groups_from_names(paths, args.group_pattern)
    problem = fold_problem(labels, args.cv, groups)
    if problem:
        raise UsageError(problem)
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
        group_duplicates=args.group_duplicates,
        fine_tune=args.fine_tune,
        groups=groups,
        class_weight=_none(args.class_weight),
        verbose=0 if args.quiet else 1,
        **params,
    )
    columns = ["backbone", "layer", "pooling", "classifier", "params", "mean_score",
               "std_score", "log_loss", "fit_time", "computed", "grouped"]  # fmt: skip
    scored = results[results["error"] == ""]
    if len(scored):
        print(scored[columns].to_string(index=False, float_format="%.4f"))
    for row in results[results["error"] != ""].itertuples():
        print(
            f"featurize: {row.backbone} / {row.classifier} {row.params} failed: "
            f"{row.error}",
            file=sys.stderr,
        )
    if args.out:
        write_table(results, args.out)
        print(f"wrote {len(results)} rows to {args.out}")
    if not len(scored):
        print(
            f"featurize: error: none of the {len(results)} candidates could be "
            f"scored (see above); nothing was saved",
            file=sys.stderr,
        )
        return 1
    if args.model:
        dump_model(best, args.model)
        print(f"saved the best pipeline to {args.model}")
    return 0


def _embed(args) -> int:
    if args.text_column is None:
        check_no_text_options(args)
    elif args.path_column is not None:
        raise UsageError("--path-column names image paths: not with --text-column.")
    summary = embed_dataset(
        args.input,
        args.out,
        path_column=args.path_column or "path",
        text_column=args.text_column,
        engine=args.engine,
        address=args.address,
        ray_cache=args.ray_cache,
        progress=not args.quiet,
        encoding=args.encoding,
        sep=args.sep,
        **(featurizer_params(args) if args.text_column is None else text_params(args)),
    )
    print(summary)
    if summary.rows and summary.failed == summary.rows:
        print(
            f"featurize: error: none of the {summary.rows} rows could be embedded; "
            f"see {summary.failures}",
            file=sys.stderr,
        )
        return 1
    return 1 if args.strict and summary.failed else 0


def _separator(text: str) -> str:
    try:
        return separator(text)
    except FeaturizeError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _check_no_table_options(args, what: str) -> None:
    given = [f"--{n}" for n in ("encoding", "sep") if getattr(args, n, None)]
    if given:
        raise UsageError(f"{', '.join(given)} applies to CSV tables, not to {what}.")
