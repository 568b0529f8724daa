"""The command line's parts: options declared once from the estimators' parameter
rules, and the values given on a command line turned back into parameters."""

from __future__ import annotations

import argparse

from featurize import FeaturizeError, ImageFeaturizer, TextFeaturizer
from pipelines._classifiers import CLASS_WEIGHTS

# What each command offers, read off the parameter rules: the featurizer options
# (shared by every command that embeds), and the text options with --text-column
# (those of the same name as a featurizer option are that option).
FEATURIZER_OPTIONS = tuple(
    name for name, rule in ImageFeaturizer.parameter_rules.items() if rule.cli
)
TEXT_RULES = TextFeaturizer.parameter_rules
TEXT_OPTIONS = tuple(
    name
    for name, rule in TEXT_RULES.items()
    if rule.cli and name not in FEATURIZER_OPTIONS
)
SHARED_TEXT_OPTIONS = tuple(
    name for name, rule in TEXT_RULES.items() if rule.cli and name in FEATURIZER_OPTIONS
)
# What `search` can compare several of (comma-separated); one each elsewhere.
COMPARABLE = tuple(
    name for name, rule in ImageFeaturizer.parameter_rules.items() if rule.comparable
)


class UserError(Exception):
    """A problem the user can fix; printed as one line, exit code 1."""


class UsageError(Exception):
    """Options that do not go together; exit code 2, like argparse's own errors."""


def option_type(name: str, rule, comparable: bool):
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
                    f"expected {metavar(name, rule)}; received {part!r}"
                ) from None
            values.append(value)
        if not values:
            raise argparse.ArgumentTypeError(f"no value in {text!r}")
        return values if comparable else values[0]

    convert.__name__ = name  # argparse names the type in its messages
    return convert


def metavar(name: str, rule) -> str:
    if rule.choices:
        return "{" + ",".join(rule.choices) + "}"
    return name.upper()


def featurizer_options(
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
        shown = rule.shown or ("none" if default is None else default)
        more = "; comma-separated to compare several (search)" if comparable else ""
        group.add_argument(
            *flags,
            dest=name,
            type=option_type(name, rule, comparable),
            default=argparse.SUPPRESS,
            metavar=metavar(name, rule),
            help=f"{rule.help}{more} (default: {shown})",
        )
    return parent


def model_options() -> argparse.ArgumentParser:
    """The options of every command that loads a saved model."""
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument(
        "--trust",
        action="store_true",
        help="load a model file that names types outside those a featurize model "
        "is made of (it can run code: only for files you trust)",
    )
    return parent


def selection_options() -> argparse.ArgumentParser:
    """What keeps model selection honest: class weights, and groups no split
    divides (``train`` and ``search``)."""
    selection = argparse.ArgumentParser(add_help=False)
    selection.add_argument(
        "--class-weight", choices=["none", *CLASS_WEIGHTS[1:]], default="none",
        help="'balanced' weighs classes by inverse frequency (imbalanced data)",
    )  # fmt: skip
    selection.add_argument(
        "--group-duplicates", action="store_true",
        help="keep exact and near duplicates (as `featurize audit` finds them) on "
        "one side of every split",
    )  # fmt: skip
    selection.add_argument(
        "--group-pattern", default=None, metavar="REGEX",
        help="images whose file names share this pattern's match (a patient id: "
        "'person[0-9]+') stay on one side of every split",
    )  # fmt: skip
    return selection


def common_options() -> argparse.ArgumentParser:
    parent = argparse.ArgumentParser(add_help=False)
    add_common(parent, default=argparse.SUPPRESS)
    return parent


def add_common(parser, default) -> None:
    parser.add_argument(
        "--traceback", action="store_true", default=default,
        help="on failure, print the whole error, not one line",
    )  # fmt: skip
    parser.add_argument(
        "--framework-logs", action="store_true", default=default,
        help="let TensorFlow print its start-up log lines",
    )  # fmt: skip


def featurizer_params(args, *, comparable: bool = False) -> dict:
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


def text_params(args) -> dict:
    """The TextFeaturizer options given on the command line (defaults stay out)."""
    names = (*TEXT_OPTIONS, *SHARED_TEXT_OPTIONS)
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


def check_no_text_options(args) -> None:
    given = [f"--{n.replace('_', '-')}" for n in TEXT_OPTIONS if hasattr(args, n)]
    if given:
        verb = "needs" if len(given) == 1 else "need"
        raise UsageError(f"{', '.join(given)} {verb} --text-column.")
